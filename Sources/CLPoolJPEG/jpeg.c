#include "clpool_jpeg.h"

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>

#include <jpeglib.h>

// libjpeg's error manager, extended with where to jump back to: its error_exit must not return.
struct failure {
  struct jpeg_error_mgr manager;
  jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

static void fail(j_common_ptr decoder) {
  struct failure *failure = (struct failure *)decoder->err;
  (*decoder->err->format_message)(decoder, failure->message);
  longjmp(failure->jump, 1);
}

// Level -1 is a warning (premature end of data, corrupt data); higher levels are trace messages.
static void warn(j_common_ptr decoder, int level) {
  if (level < 0) fail(decoder);
}

int clpool_jpeg_decode(const unsigned char *data, size_t size, size_t max_side, size_t max_pixels,
                       unsigned char **pixels, size_t *width, size_t *height, char *message,
                       size_t message_size) {
  struct jpeg_decompress_struct decoder;
  struct failure failure;
  // Written after setjmp and read after longjmp, so it must not live in a register.
  unsigned char *volatile image = NULL;
  decoder.err = jpeg_std_error(&failure.manager);
  failure.manager.error_exit = fail;
  failure.manager.emit_message = warn;
  if (setjmp(failure.jump)) {
    snprintf(message, message_size, "%s", failure.message);
    jpeg_destroy_decompress(&decoder);
    free(image);
    return 1;
  }
  jpeg_create_decompress(&decoder);
  jpeg_mem_src(&decoder, data, (unsigned long)size);
  jpeg_read_header(&decoder, TRUE);
  size_t columns = decoder.image_width, rows = decoder.image_height;
  if (columns > max_side || rows > max_side || columns * rows > max_pixels) {
    *width = columns;
    *height = rows;
    jpeg_destroy_decompress(&decoder);
    return 2;
  }
  decoder.out_color_space = JCS_RGB;
  jpeg_start_decompress(&decoder);
  size_t stride = (size_t)decoder.output_width * 3;
  image = malloc(stride * decoder.output_height);
  if (image == NULL) {
    snprintf(message, message_size, "out of memory for a %ux%u image", decoder.output_width,
             decoder.output_height);
    jpeg_destroy_decompress(&decoder);
    return 1;
  }
  while (decoder.output_scanline < decoder.output_height) {
    JSAMPROW row = image + decoder.output_scanline * stride;
    jpeg_read_scanlines(&decoder, &row, 1);
  }
  *width = decoder.output_width;
  *height = decoder.output_height;
  jpeg_finish_decompress(&decoder);
  jpeg_destroy_decompress(&decoder);
  *pixels = image;
  return 0;
}
