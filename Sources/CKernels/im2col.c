// Convolution lowering in the CNHW layout (see kdkernels.h).
#include "kdkernels.h"
#include <string.h>

typedef struct {
    const float *x; float *col; int C, N, H, W, K, stride, pad, Ho, Wo;
} kd_im2col_args;

// One row of col per (c, ky, kx): rows are independent, so threads split rows.
static void kd_im2col_rows(void *vctx, long r0, long r1) {
    const kd_im2col_args *a = vctx;
    const int K = a->K, N = a->N, H = a->H, W = a->W, Ho = a->Ho, Wo = a->Wo;
    const int s = a->stride, p = a->pad;
    const long plane = (long)H * W, oplane = (long)Ho * Wo;
    for (long r = r0; r < r1; r++) {
        int c = (int)(r / (K * K)), ky = (int)(r / K % K), kx = (int)(r % K);
        float *dst = a->col + r * (long)N * oplane;
        for (int n = 0; n < N; n++) {
            const float *src = a->x + ((long)c * N + n) * plane;
            for (int oy = 0; oy < Ho; oy++) {
                int iy = oy * s - p + ky;
                float *d = dst + (long)n * oplane + (long)oy * Wo;
                if (iy < 0 || iy >= H) { memset(d, 0, sizeof(float) * Wo); continue; }
                const float *srow = src + (long)iy * W;
                if (s == 1) {
                    int ox0 = p - kx; if (ox0 < 0) ox0 = 0;             // first ox with ix >= 0
                    int ox1 = W + p - kx; if (ox1 > Wo) ox1 = Wo;       // first ox with ix >= W
                    if (ox1 < ox0) ox1 = ox0;
                    for (int ox = 0; ox < ox0; ox++) d[ox] = 0.f;
                    if (ox1 > ox0) memcpy(d + ox0, srow + ox0 - p + kx, sizeof(float) * (ox1 - ox0));
                    for (int ox = ox1; ox < Wo; ox++) d[ox] = 0.f;
                } else {
                    for (int ox = 0; ox < Wo; ox++) {
                        int ix = ox * s - p + kx;
                        d[ox] = (ix >= 0 && ix < W) ? srow[ix] : 0.f;
                    }
                }
            }
        }
    }
}

void kd_im2col(const float *x, float *col, int C, int N, int H, int W,
               int K, int stride, int pad, int Ho, int Wo) {
    kd_im2col_args a = { x, col, C, N, H, W, K, stride, pad, Ho, Wo };
    long rows = (long)C * K * K;
    long per_row = (long)N * Ho * Wo;
    long grain = per_row >= 4096 ? 1 : (4096 + per_row - 1) / per_row;
    kd_parallel_for(rows, grain, kd_im2col_rows, &a);
}

typedef struct {
    const float *dcol; float *dx; int C, N, H, W, K, stride, pad, Ho, Wo;
} kd_col2im_args;

// Threads split channels: all K*K rows of one channel scatter into the same dx plane.
static void kd_col2im_channels(void *vctx, long c0, long c1) {
    const kd_col2im_args *a = vctx;
    const int K = a->K, N = a->N, H = a->H, W = a->W, Ho = a->Ho, Wo = a->Wo;
    const int s = a->stride, p = a->pad;
    const long plane = (long)H * W, oplane = (long)Ho * Wo;
    for (long c = c0; c < c1; c++) {
        for (int ky = 0; ky < K; ky++) for (int kx = 0; kx < K; kx++) {
            const float *src = a->dcol + ((c * K + ky) * K + kx) * (long)N * oplane;
            for (int n = 0; n < N; n++) {
                float *dst = a->dx + (c * N + n) * plane;
                for (int oy = 0; oy < Ho; oy++) {
                    int iy = oy * s - p + ky;
                    if (iy < 0 || iy >= H) continue;
                    const float *srow = src + (long)n * oplane + (long)oy * Wo;
                    float *drow = dst + (long)iy * W;
                    if (s == 1) {
                        int ox0 = p - kx; if (ox0 < 0) ox0 = 0;
                        int ox1 = W + p - kx; if (ox1 > Wo) ox1 = Wo;
                        for (int ox = ox0; ox < ox1; ox++) drow[ox - p + kx] += srow[ox];
                    } else {
                        for (int ox = 0; ox < Wo; ox++) {
                            int ix = ox * s - p + kx;
                            if (ix >= 0 && ix < W) drow[ix] += srow[ox];
                        }
                    }
                }
            }
        }
    }
}

void kd_col2im_add(const float *dcol, float *dx, int C, int N, int H, int W,
                   int K, int stride, int pad, int Ho, int Wo) {
    kd_col2im_args a = { dcol, dx, C, N, H, W, K, stride, pad, Ho, Wo };
    kd_parallel_for(C, 1, kd_col2im_channels, &a);
}
