// CBLAS from OpenBLAS (Debian: libopenblas-dev puts cblas.h on the multiarch include path).
#ifndef CLPOOL_CBLAS_SHIM_H
#define CLPOOL_CBLAS_SHIM_H
#include <cblas.h>
#endif
