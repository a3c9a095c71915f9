// libpng 1.6's simplified API (png_image_write_to_file): no setjmp error handling needed.
#ifndef CLPOOL_CPNG_SHIM_H
#define CLPOOL_CPNG_SHIM_H
#include <png.h>
#endif
