/* The standard descriptors of a program started with one of them closed: the first file it
 * opens would take that number, and `-o /dev/stdout` would then name that file (an input it is
 * about to replace) or its error messages land in an output. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include "clpool_cpu.h"

void clpool_occupy_standard_descriptors(void) {
  for (int descriptor = 0; descriptor <= 2; ++descriptor) {
    if (fcntl(descriptor, F_GETFD) >= 0 || errno != EBADF) continue;
    /* A folder: no write to it succeeds, and no path that leads to it (/dev/stdout) opens for writing. */
    int placeholder = open("/", O_RDONLY | O_DIRECTORY); /* the lowest free number: this one */
    if (placeholder >= 0 && placeholder != descriptor) close(placeholder);
  }
}

int clpool_flush_standard_output(void) {
  if (fflush(stdout) != 0) return errno ? errno : EIO;
  return ferror(stdout) ? EIO : 0;
}
