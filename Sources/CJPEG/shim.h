// libjpeg (libjpeg-turbo on Debian). Only CLPoolJPEG calls it: libjpeg reports errors by a
// callback that must not return, which takes setjmp/longjmp, so the decoding lives in C.
#ifndef CLPOOL_CJPEG_SHIM_H
#define CLPOOL_CJPEG_SHIM_H
#include <stddef.h>
#include <stdio.h>
#include <jpeglib.h>
#endif
