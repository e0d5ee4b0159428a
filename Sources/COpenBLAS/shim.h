// OpenBLAS's CBLAS interface plus its thread and core queries (Debian's openblas-pthread build).
#ifndef KDTRAIN_COPENBLAS_SHIM_H
#define KDTRAIN_COPENBLAS_SHIM_H
#include <cblas.h>
#endif
