// Batch-norm kernels over (C, M) in the CNHW layout (see kdkernels.h). Threads split channels.
//
// Reductions: 16 float lanes accumulate a block of at most KD_BLOCK elements (so each lane sums
// at most KD_BLOCK/16 values), then the block total is flushed into a double accumulator. The
// lane loop is plain elementwise code the compiler vectorizes without -ffast-math.
#include "kdkernels.h"

#define KD_LANES 16
#define KD_BLOCK 1024
#define KD_GRAIN 32768L   // minimum elements per thread chunk

static long kd_channel_grain(long M) { return M >= KD_GRAIN ? 1 : (KD_GRAIN + M - 1) / M; }

typedef struct { const float *x; double *sum, *sumsq; long M; } kd_stats_args;

static void kd_bn_stats_range(void *vctx, long c0, long c1) {
    const kd_stats_args *a = vctx;
    const long M = a->M;
    for (long c = c0; c < c1; c++) {
        const float *restrict x = a->x + c * M;
        double s = 0, ss = 0;
        long i = 0;
        while (i < M) {
            long end = i + KD_BLOCK < M ? i + KD_BLOCK : M;
            float ls[KD_LANES] = {0}, lq[KD_LANES] = {0};
            for (; i + KD_LANES <= end; i += KD_LANES)
                for (int j = 0; j < KD_LANES; j++) { float v = x[i + j]; ls[j] += v; lq[j] += v * v; }
            for (; i < end; i++) { s += x[i]; ss += (double)x[i] * x[i]; }
            for (int j = 0; j < KD_LANES; j++) { s += ls[j]; ss += lq[j]; }
        }
        a->sum[c] = s; a->sumsq[c] = ss;
    }
}

void kd_bn_stats(const float *x, double *sum, double *sumsq, int C, long M) {
    kd_stats_args a = { x, sum, sumsq, M };
    kd_parallel_for(C, kd_channel_grain(M), kd_bn_stats_range, &a);
}

typedef struct { float *y; const float *x, *scale, *shift; long M; } kd_affine_args;

static void kd_affine_range(void *vctx, long c0, long c1) {
    const kd_affine_args *a = vctx;
    const long M = a->M;
    for (long c = c0; c < c1; c++) {
        const float *restrict x = a->x + c * M;
        float *restrict y = a->y + c * M;
        const float k = a->scale[c], b = a->shift[c];
        for (long i = 0; i < M; i++) y[i] = x[i] * k + b;
    }
}

void kd_channel_affine(float *y, const float *x, const float *scale, const float *shift, int C, long M) {
    kd_affine_args a = { y, x, scale, shift, M };
    kd_parallel_for(C, kd_channel_grain(M), kd_affine_range, &a);
}

typedef struct { const float *dy, *x, *mean; double *sdy, *sdyx; long M; } kd_bnr_args;

static void kd_bn_backward_reduce_range(void *vctx, long c0, long c1) {
    const kd_bnr_args *a = vctx;
    const long M = a->M;
    for (long c = c0; c < c1; c++) {
        const float *restrict x = a->x + c * M;
        const float *restrict dy = a->dy + c * M;
        const float mu = a->mean[c];
        double s = 0, sx = 0;
        long i = 0;
        while (i < M) {
            long end = i + KD_BLOCK < M ? i + KD_BLOCK : M;
            float ls[KD_LANES] = {0}, lx[KD_LANES] = {0};
            for (; i + KD_LANES <= end; i += KD_LANES)
                for (int j = 0; j < KD_LANES; j++) {
                    float g = dy[i + j];
                    ls[j] += g; lx[j] += g * (x[i + j] - mu);
                }
            for (; i < end; i++) { s += dy[i]; sx += (double)dy[i] * (x[i] - mu); }
            for (int j = 0; j < KD_LANES; j++) { s += ls[j]; sx += lx[j]; }
        }
        a->sdy[c] = s; a->sdyx[c] = sx;
    }
}

void kd_bn_backward_reduce(const float *dy, const float *x, const float *mean,
                           double *sdy, double *sdyx, int C, long M) {
    kd_bnr_args a = { dy, x, mean, sdy, sdyx, M };
    kd_parallel_for(C, kd_channel_grain(M), kd_bn_backward_reduce_range, &a);
}

typedef struct { float *dx; const float *dy, *x, *mean, *ka, *kb, *kd; long M; } kd_bndx_args;

static void kd_bn_backward_dx_range(void *vctx, long c0, long c1) {
    const kd_bndx_args *a = vctx;
    const long M = a->M;
    for (long c = c0; c < c1; c++) {
        float *restrict dx = a->dx + c * M;
        const float *restrict dy = a->dy + c * M;
        const float *restrict x = a->x + c * M;
        const float mu = a->mean[c], ka = a->ka[c], kb = a->kb[c], kd = a->kd[c];
        for (long i = 0; i < M; i++) dx[i] += ka * dy[i] + kb * (x[i] - mu) + kd;
    }
}

void kd_bn_backward_dx(float *dx, const float *dy, const float *x, const float *mean,
                       const float *a, const float *b, const float *d, int C, long M) {
    kd_bndx_args args = { dx, dy, x, mean, a, b, d, M };
    kd_parallel_for(C, kd_channel_grain(M), kd_bn_backward_dx_range, &args);
}

// ---- fused forward: batch-norm affine + ReLU (one pass instead of two) ---------------------

static void kd_affine_relu_range(void *vctx, long c0, long c1) {
    const kd_affine_args *a = vctx;
    const long M = a->M;
    for (long c = c0; c < c1; c++) {
        const float *restrict x = a->x + c * M;
        float *restrict y = a->y + c * M;
        const float k = a->scale[c], b = a->shift[c];
        for (long i = 0; i < M; i++) { float v = x[i] * k + b; y[i] = v > 0.f ? v : 0.f; }
    }
}

void kd_channel_affine_relu(float *y, const float *x, const float *scale, const float *shift, int C, long M) {
    kd_affine_args a = { y, x, scale, shift, M };
    kd_parallel_for(C, kd_channel_grain(M), kd_affine_relu_range, &a);
}
