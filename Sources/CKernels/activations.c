// Elementwise activation kernels (see kdkernels.h). Flat kernels split the element range
// between threads; per-channel kernels split channels.
#include "kdkernels.h"
#include <math.h>

#define KD_GRAIN 32768L

static long kd_channel_grain(long M) { return M >= KD_GRAIN ? 1 : (KD_GRAIN + M - 1) / M; }

// One argument block for the flat kernels: out (+)= f(in0, in1).
typedef struct { float *out; const float *in0, *in1, *in2; int flag; } kd_ew_args;

static void kd_relu_fwd_range(void *v, long b, long e) {
    const kd_ew_args *a = v;
    float *y = a->out; const float *x = a->in0;   // y may be x (in place): no restrict
    for (long i = b; i < e; i++) y[i] = x[i] > 0.f ? x[i] : 0.f;
}
void kd_relu_forward(float *y, const float *x, long n) {
    kd_ew_args a = { y, x, 0, 0, 0 };
    kd_parallel_for(n, KD_GRAIN, kd_relu_fwd_range, &a);
}

static void kd_relu_bwd_range(void *v, long b, long e) {
    const kd_ew_args *a = v;
    float *restrict dx = a->out; const float *restrict dy = a->in0, *restrict y = a->in1;
    for (long i = b; i < e; i++) { float g = dy[i]; dx[i] += y[i] > 0.f ? g : 0.f; }  // unconditional load: vectorizes
}
void kd_relu_backward(float *dx, const float *dy, const float *y, long n) {
    kd_ew_args a = { dx, dy, y, 0, 0 };
    kd_parallel_for(n, KD_GRAIN, kd_relu_bwd_range, &a);
}

static void kd_sigmoid_fwd_range(void *v, long b, long e) {
    const kd_ew_args *a = v;
    float *restrict y = a->out; const float *restrict x = a->in0;
    for (long i = b; i < e; i++) {
        float t = expf(-fabsf(x[i]));          // in (0, 1]: never overflows
        y[i] = x[i] >= 0.f ? 1.f / (1.f + t) : t / (1.f + t);
    }
}
void kd_sigmoid_forward(float *y, const float *x, long n) {
    kd_ew_args a = { y, x, 0, 0, 0 };
    kd_parallel_for(n, KD_GRAIN / 8, kd_sigmoid_fwd_range, &a);
}

static void kd_sigmoid_bwd_range(void *v, long b, long e) {
    const kd_ew_args *a = v;
    float *restrict dx = a->out; const float *restrict dy = a->in0, *restrict y = a->in1;
    for (long i = b; i < e; i++) dx[i] += dy[i] * y[i] * (1.f - y[i]);
}
void kd_sigmoid_backward(float *dx, const float *dy, const float *y, long n) {
    kd_ew_args a = { dx, dy, y, 0, 0 };
    kd_parallel_for(n, KD_GRAIN, kd_sigmoid_bwd_range, &a);
}

static void kd_mul_mask_range(void *v, long b, long e) {
    const kd_ew_args *a = v;
    float *restrict y = a->out; const float *restrict x = a->in0, *restrict m = a->in1;
    if (a->flag) { for (long i = b; i < e; i++) y[i] += x[i] * m[i]; }
    else { for (long i = b; i < e; i++) y[i] = x[i] * m[i]; }
}
void kd_mul_mask(float *y, const float *x, const float *mask, long n, int accumulate) {
    kd_ew_args a = { y, x, mask, 0, accumulate };
    kd_parallel_for(n, KD_GRAIN, kd_mul_mask_range, &a);
}

static void kd_add_range(void *v, long b, long e) {
    const kd_ew_args *a = v;
    float *restrict y = a->out; const float *restrict p = a->in0, *restrict q = a->in1;
    for (long i = b; i < e; i++) y[i] = p[i] + q[i];
}
void kd_add(float *y, const float *a, const float *b, long n) {
    kd_ew_args args = { y, a, b, 0, 0 };
    kd_parallel_for(n, KD_GRAIN, kd_add_range, &args);
}

static void kd_accumulate_range(void *v, long b, long e) {
    const kd_ew_args *a = v;
    float *restrict y = a->out; const float *restrict x = a->in0;
    for (long i = b; i < e; i++) y[i] += x[i];
}
void kd_accumulate(float *y, const float *x, long n) {
    kd_ew_args a = { y, x, 0, 0, 0 };
    kd_parallel_for(n, KD_GRAIN, kd_accumulate_range, &a);
}

typedef struct { float *y, *dslope; const float *x, *dy, *slope; long M; } kd_prelu_args;

static void kd_prelu_fwd_range(void *v, long c0, long c1) {
    const kd_prelu_args *a = v;
    const long M = a->M;
    for (long c = c0; c < c1; c++) {
        float *restrict y = a->y + c * M; const float *restrict x = a->x + c * M;
        const float s = a->slope[c];
        for (long i = 0; i < M; i++) y[i] = x[i] > 0.f ? x[i] : s * x[i];
    }
}
void kd_prelu_forward(float *y, const float *x, const float *slope, int C, long M) {
    kd_prelu_args a = { y, 0, x, 0, slope, M };
    kd_parallel_for(C, kd_channel_grain(M), kd_prelu_fwd_range, &a);
}

static void kd_prelu_bwd_range(void *v, long c0, long c1) {
    const kd_prelu_args *a = v;
    const long M = a->M;
    for (long c = c0; c < c1; c++) {
        const float *restrict x = a->x + c * M, *restrict dy = a->dy + c * M;
        const float s = a->slope[c];
        if (a->y) {
            float *restrict dx = a->y + c * M;
            for (long i = 0; i < M; i++) dx[i] += x[i] > 0.f ? dy[i] : s * dy[i];
        }
        if (a->dslope) {
            double acc = 0;
            long i = 0;
            while (i < M) {
                long end = i + 1024 < M ? i + 1024 : M;
                float l[16] = {0};
                for (; i + 16 <= end; i += 16)
                    for (int j = 0; j < 16; j++) l[j] += x[i + j] > 0.f ? 0.f : dy[i + j] * x[i + j];
                for (; i < end; i++) if (!(x[i] > 0.f)) acc += (double)dy[i] * x[i];
                for (int j = 0; j < 16; j++) acc += l[j];
            }
            a->dslope[c] += (float)acc;
        }
    }
}
void kd_prelu_backward(float *dx, float *dslope, const float *dy, const float *x,
                       const float *slope, int C, long M) {
    kd_prelu_args a = { dx, dslope, x, dy, slope, M };
    kd_parallel_for(C, kd_channel_grain(M), kd_prelu_bwd_range, &a);
}
