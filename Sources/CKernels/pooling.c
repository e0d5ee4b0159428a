// Pooling kernels over CN independent planes of H x W (see kdkernels.h). Threads split planes,
// so scatter-adds in backward never race.
#include "kdkernels.h"
#include <math.h>

#define KD_GRAIN 16384L

static long kd_plane_grain(long P) { return P >= KD_GRAIN ? 1 : (KD_GRAIN + P - 1) / P; }

// Sum of n floats: 16 float lanes per block of 1024, flushed into double.
static double kd_sum(const float *restrict x, long n) {
    double s = 0;
    long i = 0;
    while (i < n) {
        long end = i + 1024 < n ? i + 1024 : n;
        float l[16] = {0};
        for (; i + 16 <= end; i += 16)
            for (int j = 0; j < 16; j++) l[j] += x[i + j];
        for (; i < end; i++) s += x[i];
        for (int j = 0; j < 16; j++) s += l[j];
    }
    return s;
}

typedef struct {
    float *y, *dx; const float *x, *dy; int *idx; const int *cidx;
    int H, W, K, stride, pad, Ho, Wo, include_pad; long P;
} kd_pool_args;

// Each output keeps its running maximum and argmax in registers; the updates are selects
// (cmov/blend), not branches, which matters: random data mispredicts a branch per tap. Taps come in
// row-major window order, so strict ">" keeps the first maximum; a NaN wins and then sticks
// (as PyTorch).
static void kd_maxpool_fwd_range(void *v, long p0, long p1) {
    const kd_pool_args *a = v;
    const int H = a->H, W = a->W, K = a->K, s = a->stride, pad = a->pad, Ho = a->Ho, Wo = a->Wo;
    for (long q = p0; q < p1; q++) {
        const float *restrict x = a->x + q * H * W;
        float *restrict y = a->y + q * Ho * Wo; int *restrict idx = a->idx + q * Ho * Wo;
        for (int oy = 0; oy < Ho; oy++) {
            int y0 = oy * s - pad, ya = y0 < 0 ? 0 : y0, yb = y0 + K < H ? y0 + K : H;
            for (int ox = 0; ox < Wo; ox++) {
                int x0 = ox * s - pad, xa = x0 < 0 ? 0 : x0, xb = x0 + K < W ? x0 + K : W;
                float best = -INFINITY; int bi = ya * W + xa;
                for (int iy = ya; iy < yb; iy++)
                    for (int ix = xa; ix < xb; ix++) {
                        float v2 = x[iy * W + ix];
                        int gt = (v2 > best) | (v2 != v2);
                        best = gt ? v2 : best;
                        bi = gt ? iy * W + ix : bi;
                    }
                y[oy * Wo + ox] = best; idx[oy * Wo + ox] = bi;
            }
        }
    }
}

void kd_maxpool_forward(float *y, int *idx, const float *x, long planes, int H, int W,
                        int K, int stride, int pad, int Ho, int Wo) {
    kd_pool_args a = { y, 0, x, 0, idx, 0, H, W, K, stride, pad, Ho, Wo, 0, (long)H * W };
    kd_parallel_for(planes, kd_plane_grain((long)H * W), kd_maxpool_fwd_range, &a);
}

static void kd_maxpool_bwd_range(void *v, long p0, long p1) {
    const kd_pool_args *a = v;
    const long P = (long)a->H * a->W, O = (long)a->Ho * a->Wo;
    for (long q = p0; q < p1; q++) {
        float *dx = a->dx + q * P; const float *dy = a->dy + q * O; const int *idx = a->cidx + q * O;
        for (long o = 0; o < O; o++) dx[idx[o]] += dy[o];
    }
}

void kd_maxpool_backward(float *dx, const float *dy, const int *idx, long planes, int H, int W,
                         int Ho, int Wo) {
    kd_pool_args a = { 0, dx, 0, dy, 0, idx, H, W, 0, 0, 0, Ho, Wo, 0, (long)H * W };
    kd_parallel_for(planes, kd_plane_grain((long)H * W), kd_maxpool_bwd_range, &a);
}

static float kd_avg_divisor(const kd_pool_args *a, int ya, int yb, int xa, int xb) {
    return a->include_pad ? (float)(a->K * a->K) : (float)((yb - ya) * (xb - xa));
}

static void kd_avgpool_fwd_range(void *v, long p0, long p1) {
    const kd_pool_args *a = v;
    const int H = a->H, W = a->W, K = a->K, s = a->stride, pad = a->pad, Ho = a->Ho, Wo = a->Wo;
    for (long q = p0; q < p1; q++) {
        const float *x = a->x + q * H * W; float *y = a->y + q * Ho * Wo;
        for (int oy = 0; oy < Ho; oy++) {
            int y0 = oy * s - pad, ya = y0 < 0 ? 0 : y0, yb = y0 + K < H ? y0 + K : H;
            for (int ox = 0; ox < Wo; ox++) {
                int x0 = ox * s - pad, xa = x0 < 0 ? 0 : x0, xb = x0 + K < W ? x0 + K : W;
                float acc = 0.f;
                for (int iy = ya; iy < yb; iy++) for (int ix = xa; ix < xb; ix++) acc += x[iy * W + ix];
                y[oy * Wo + ox] = acc / kd_avg_divisor(a, ya, yb, xa, xb);
            }
        }
    }
}

void kd_avgpool_forward(float *y, const float *x, long planes, int H, int W, int K, int stride,
                        int pad, int Ho, int Wo, int count_include_pad) {
    kd_pool_args a = { y, 0, x, 0, 0, 0, H, W, K, stride, pad, Ho, Wo, count_include_pad, (long)H * W };
    kd_parallel_for(planes, kd_plane_grain((long)H * W), kd_avgpool_fwd_range, &a);
}

static void kd_avgpool_bwd_range(void *v, long p0, long p1) {
    const kd_pool_args *a = v;
    const int H = a->H, W = a->W, K = a->K, s = a->stride, pad = a->pad, Ho = a->Ho, Wo = a->Wo;
    for (long q = p0; q < p1; q++) {
        float *dx = a->dx + q * H * W; const float *dy = a->dy + q * Ho * Wo;
        for (int oy = 0; oy < Ho; oy++) {
            int y0 = oy * s - pad, ya = y0 < 0 ? 0 : y0, yb = y0 + K < H ? y0 + K : H;
            for (int ox = 0; ox < Wo; ox++) {
                int x0 = ox * s - pad, xa = x0 < 0 ? 0 : x0, xb = x0 + K < W ? x0 + K : W;
                float g = dy[oy * Wo + ox] / kd_avg_divisor(a, ya, yb, xa, xb);
                for (int iy = ya; iy < yb; iy++) for (int ix = xa; ix < xb; ix++) dx[iy * W + ix] += g;
            }
        }
    }
}

void kd_avgpool_backward(float *dx, const float *dy, long planes, int H, int W, int K, int stride,
                         int pad, int Ho, int Wo, int count_include_pad) {
    kd_pool_args a = { 0, dx, 0, dy, 0, 0, H, W, K, stride, pad, Ho, Wo, count_include_pad, (long)H * W };
    kd_parallel_for(planes, kd_plane_grain((long)H * W), kd_avgpool_bwd_range, &a);
}

static void kd_gavg_fwd_range(void *v, long p0, long p1) {
    const kd_pool_args *a = v;
    for (long q = p0; q < p1; q++) a->y[q] = (float)(kd_sum(a->x + q * a->P, a->P) / (double)a->P);
}
void kd_global_avgpool_forward(float *y, const float *x, long planes, long P) {
    kd_pool_args a = { y, 0, x, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, P };
    kd_parallel_for(planes, kd_plane_grain(P), kd_gavg_fwd_range, &a);
}

static void kd_gavg_bwd_range(void *v, long p0, long p1) {
    const kd_pool_args *a = v;
    const long P = a->P;
    for (long q = p0; q < p1; q++) {
        float *restrict dx = a->dx + q * P; const float g = a->dy[q] / (float)P;
        for (long i = 0; i < P; i++) dx[i] += g;
    }
}
void kd_global_avgpool_backward(float *dx, const float *dy, long planes, long P) {
    kd_pool_args a = { 0, dx, 0, dy, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, P };
    kd_parallel_for(planes, kd_plane_grain(P), kd_gavg_bwd_range, &a);
}

static void kd_gmax_fwd_range(void *v, long p0, long p1) {
    const kd_pool_args *a = v;
    const long P = a->P;
    for (long q = p0; q < p1; q++) {
        const float *x = a->x + q * P;
        float best = x[0]; long bi = 0;
        for (long i = 1; i < P && !isnan(best); i++) if (x[i] > best || isnan(x[i])) { best = x[i]; bi = i; }
        a->y[q] = best; a->idx[q] = (int)bi;
    }
}
void kd_global_maxpool_forward(float *y, int *idx, const float *x, long planes, long P) {
    kd_pool_args a = { y, 0, x, 0, idx, 0, 0, 0, 0, 0, 0, 0, 0, 0, P };
    kd_parallel_for(planes, kd_plane_grain(P), kd_gmax_fwd_range, &a);
}

static void kd_gmax_bwd_range(void *v, long p0, long p1) {
    const kd_pool_args *a = v;
    for (long q = p0; q < p1; q++) a->dx[q * a->P + a->cidx[q]] += a->dy[q];
}
void kd_global_maxpool_backward(float *dx, const float *dy, const int *idx, long planes, long P) {
    kd_pool_args a = { 0, dx, 0, dy, 0, idx, 0, 0, 0, 0, 0, 0, 0, 0, P };
    kd_parallel_for(planes, kd_plane_grain(P), kd_gmax_bwd_range, &a);
}

// ---- fused CBAM pooling: global average and global max of each plane in one pass -------------
// The average is kd_sum's (as kd_global_avgpool_forward); the max runs in 16 float lanes and the
// first index holding it is found afterwards, which gives exactly the scalar scan's result
// (first maximum) unless the plane holds a NaN, where the scalar scan (NaN wins) runs instead.

static void kd_gavgmax_fwd_range(void *v, long p0, long p1) {
    const kd_pool_args *a = v;
    const long P = a->P;
    for (long q = p0; q < p1; q++) {
        const float *restrict x = a->x + q * P;
        a->y[q] = (float)(kd_sum(x, P) / (double)P);
        float lane[16];
        for (int j = 0; j < 16; j++) lane[j] = x[0];
        int nan = 0;
        long i = 0;
        for (; i + 16 <= P; i += 16)
            for (int j = 0; j < 16; j++) { float u = x[i + j]; nan |= u != u; lane[j] = u > lane[j] ? u : lane[j]; }
        float best = lane[0];
        for (int j = 1; j < 16; j++) best = lane[j] > best ? lane[j] : best;
        for (; i < P; i++) { nan |= x[i] != x[i]; best = x[i] > best ? x[i] : best; }
        long bi = 0;
        if (nan) {
            best = x[0];
            for (long k = 1; k < P && !isnan(best); k++) if (x[k] > best || isnan(x[k])) { best = x[k]; bi = k; }
        } else {
            while (x[bi] != best) bi++;
            best = x[bi];
        }
        a->dx[q] = best; a->idx[q] = (int)bi;
    }
}
void kd_global_avgmax_forward(float *avg, float *mx, int *idx, const float *x, long planes, long P) {
    kd_pool_args a = { avg, mx, x, 0, idx, 0, 0, 0, 0, 0, 0, 0, 0, 0, P };
    kd_parallel_for(planes, kd_plane_grain(P), kd_gavgmax_fwd_range, &a);
}
