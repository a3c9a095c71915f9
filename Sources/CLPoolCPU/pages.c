/* The operating system's side of streamed files: faulting in the pages of a fresh file mapping
 * (clpool_touch_pages) and writes around the page cache (clpool_set_direct). */
#define _GNU_SOURCE /* O_DIRECT */
#include <errno.h>
#include <fcntl.h>

#include "clpool_cpu.h"

void clpool_touch_pages(const void *start, size_t length, size_t stride) {
  const volatile unsigned char *bytes = start;
  for (size_t offset = 0; offset < length; offset += stride) (void)bytes[offset];
}

int clpool_set_direct(int descriptor, int on) {
#ifdef O_DIRECT
  int flags = fcntl(descriptor, F_GETFL);
  if (flags < 0) return -1;
  return fcntl(descriptor, F_SETFL, on ? flags | O_DIRECT : flags & ~O_DIRECT);
#else
  (void)descriptor;
  (void)on;
  errno = EINVAL;
  return -1;
#endif
}
