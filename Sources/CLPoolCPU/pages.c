/* The operating system's side of streamed files: faulting in the pages of a fresh file mapping
 * (clpool_touch_pages) and opening a file for writes around the page cache (clpool_open_direct). */
#define _GNU_SOURCE /* O_DIRECT */
#include <fcntl.h>

#include "clpool_cpu.h"

void clpool_touch_pages(const void *start, size_t length, size_t stride) {
  const volatile unsigned char *bytes = start;
  for (size_t offset = 0; offset < length; offset += stride) (void)bytes[offset];
}

int clpool_open_direct(const char *path) {
#ifdef O_DIRECT
  return open(path, O_WRONLY | O_DIRECT | O_CLOEXEC);
#else
  (void)path;
  return -1;
#endif
}
