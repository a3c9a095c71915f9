// JPEG decoding for clpool's CAM overlays: one call, from bytes in memory to 8-bit RGB.
#ifndef CLPOOL_JPEG_H
#define CLPOOL_JPEG_H

#include <stddef.h>

/// Decodes the JPEG in `data[0..<size]` (baseline or progressive; grey, YCbCr or RGB) to RGB,
/// 3 bytes a pixel, rows top to bottom. An image wider or taller than `max_side` or of more than
/// `max_pixels` pixels is refused from its header, before any pixel memory is allocated. libjpeg's
/// warnings (truncated data, corrupt segments) are errors here: a damaged photo is refused rather
/// than drawn half grey.
/// Returns 0 and a malloc'd `*pixels` (the caller frees it) with its size; 2 with only the size
/// set when the image is beyond the limits; or 1 with a one-line reason in `message` (always
/// NUL-terminated).
int clpool_jpeg_decode(const unsigned char *data, size_t size, size_t max_side, size_t max_pixels,
                       unsigned char **pixels, size_t *width, size_t *height, char *message,
                       size_t message_size);

#endif
