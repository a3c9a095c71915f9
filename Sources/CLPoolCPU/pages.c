/* Faulting in the pages of a fresh file mapping (clpool_touch_pages). */
#include "clpool_cpu.h"

void clpool_touch_pages(const void *start, size_t length, size_t stride) {
  const volatile unsigned char *bytes = start;
  for (size_t offset = 0; offset < length; offset += stride) (void)bytes[offset];
}
