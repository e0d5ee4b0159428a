// libjpeg-turbo (TurboJPEG API) and libpng, for decoding and encoding face images.
#ifndef KDTRAIN_CIMAGE_SHIM_H
#define KDTRAIN_CIMAGE_SHIM_H
#include <turbojpeg.h>
#include <png.h>
#endif
