// Flatten and the CBAM attention helpers (channel scale, spatial scale, channel pool); see
// kdkernels.h. Spatial kernels split (image, block of pixels) tasks between threads so the
// reductions over channels never race.
#include "kdkernels.h"
#include <math.h>

#define KD_GRAIN 32768L
#define KD_PBLOCK 2048L    // pixels per spatial task

typedef struct {
    float *y, *dx, *ds; const float *x, *dy, *s; int *arg; const int *carg;
    int C, N; long P, nb;
} kd_rs_args;

static void kd_flatten_fwd_range(void *v, long c0, long c1) {
    const kd_rs_args *a = v;
    const int N = a->N; const long P = a->P;
    for (long c = c0; c < c1; c++) {
        const float *x = a->x + c * N * P; float *y = a->y + c * N * P;
        for (long p = 0; p < P; p++) for (int n = 0; n < N; n++) y[p * N + n] = x[n * P + p];
    }
}
void kd_flatten_forward(float *y, const float *x, int C, int N, long P) {
    kd_rs_args a = { .y = y, .x = x, .C = C, .N = N, .P = P };
    long per = (long)N * P;
    kd_parallel_for(C, per >= KD_GRAIN ? 1 : (KD_GRAIN + per - 1) / per, kd_flatten_fwd_range, &a);
}

static void kd_flatten_bwd_range(void *v, long c0, long c1) {
    const kd_rs_args *a = v;
    const int N = a->N; const long P = a->P;
    for (long c = c0; c < c1; c++) {
        float *dx = a->dx + c * N * P; const float *dy = a->dy + c * N * P;
        for (int n = 0; n < N; n++) for (long p = 0; p < P; p++) dx[n * P + p] += dy[p * N + n];
    }
}
void kd_flatten_backward(float *dx, const float *dy, int C, int N, long P) {
    kd_rs_args a = { .dx = dx, .dy = dy, .C = C, .N = N, .P = P };
    long per = (long)N * P;
    kd_parallel_for(C, per >= KD_GRAIN ? 1 : (KD_GRAIN + per - 1) / per, kd_flatten_bwd_range, &a);
}

static long kd_row_grain(long P) { return P >= KD_GRAIN ? 1 : (KD_GRAIN + P - 1) / P; }

static void kd_cscale_fwd_range(void *v, long r0, long r1) {
    const kd_rs_args *a = v;
    const long P = a->P;
    for (long r = r0; r < r1; r++) {
        const float *restrict x = a->x + r * P; float *restrict y = a->y + r * P;
        const float s = a->s[r];
        for (long p = 0; p < P; p++) y[p] = x[p] * s;
    }
}
void kd_channel_scale_forward(float *y, const float *x, const float *s, long CN, long P) {
    kd_rs_args a = { .y = y, .x = x, .s = s, .P = P };
    kd_parallel_for(CN, kd_row_grain(P), kd_cscale_fwd_range, &a);
}

static void kd_cscale_bwd_range(void *v, long r0, long r1) {
    const kd_rs_args *a = v;
    const long P = a->P;
    for (long r = r0; r < r1; r++) {
        const float *restrict x = a->x + r * P, *restrict dy = a->dy + r * P;
        if (a->dx) {
            float *restrict dx = a->dx + r * P; const float s = a->s[r];
            for (long p = 0; p < P; p++) dx[p] += dy[p] * s;
        }
        if (a->ds) {
            double acc = 0;
            long i = 0;
            while (i < P) {
                long end = i + 1024 < P ? i + 1024 : P;
                float l[16] = {0};
                for (; i + 16 <= end; i += 16) for (int j = 0; j < 16; j++) l[j] += dy[i + j] * x[i + j];
                for (; i < end; i++) acc += (double)dy[i] * x[i];
                for (int j = 0; j < 16; j++) acc += l[j];
            }
            a->ds[r] += (float)acc;
        }
    }
}
void kd_channel_scale_backward(float *dx, float *ds, const float *dy, const float *x,
                               const float *s, long CN, long P) {
    kd_rs_args a = { .dx = dx, .ds = ds, .dy = dy, .x = x, .s = s, .P = P };
    kd_parallel_for(CN, kd_row_grain(P), kd_cscale_bwd_range, &a);
}

static long kd_spatial_grain(const kd_rs_args *a) {
    long per = (long)a->C * (a->P < KD_PBLOCK ? a->P : KD_PBLOCK);
    return per >= KD_GRAIN ? 1 : (KD_GRAIN + per - 1) / per;
}

static void kd_sscale_fwd_range(void *v, long t0, long t1) {
    const kd_rs_args *a = v;
    const int C = a->C, N = a->N; const long P = a->P;
    for (long t = t0; t < t1; t++) {
        long n = t / a->nb, pb = t % a->nb * KD_PBLOCK, pe = pb + KD_PBLOCK < P ? pb + KD_PBLOCK : P;
        const float *restrict m = a->s + n * P;
        for (int c = 0; c < C; c++) {
            const float *restrict x = a->x + ((long)c * N + n) * P; float *restrict y = a->y + ((long)c * N + n) * P;
            for (long p = pb; p < pe; p++) y[p] = x[p] * m[p];
        }
    }
}
void kd_spatial_scale_forward(float *y, const float *x, const float *m, int C, int N, long P) {
    kd_rs_args a = { .y = y, .x = x, .s = m, .C = C, .N = N, .P = P, .nb = (P + KD_PBLOCK - 1) / KD_PBLOCK };
    kd_parallel_for(N * a.nb, kd_spatial_grain(&a), kd_sscale_fwd_range, &a);
}

static void kd_sscale_bwd_range(void *v, long t0, long t1) {
    const kd_rs_args *a = v;
    const int C = a->C, N = a->N; const long P = a->P;
    for (long t = t0; t < t1; t++) {
        long n = t / a->nb, pb = t % a->nb * KD_PBLOCK, pe = pb + KD_PBLOCK < P ? pb + KD_PBLOCK : P;
        const float *restrict m = a->s + n * P;
        float *restrict dm = a->ds ? a->ds + n * P : 0;
        for (int c = 0; c < C; c++) {
            const float *restrict x = a->x + ((long)c * N + n) * P, *restrict dy = a->dy + ((long)c * N + n) * P;
            if (a->dx) {
                float *restrict dx = a->dx + ((long)c * N + n) * P;
                for (long p = pb; p < pe; p++) dx[p] += dy[p] * m[p];
            }
            if (dm) for (long p = pb; p < pe; p++) dm[p] += dy[p] * x[p];
        }
    }
}
void kd_spatial_scale_backward(float *dx, float *dm, const float *dy, const float *x,
                               const float *m, int C, int N, long P) {
    kd_rs_args a = { .dx = dx, .ds = dm, .dy = dy, .x = x, .s = m, .C = C, .N = N, .P = P,
                     .nb = (P + KD_PBLOCK - 1) / KD_PBLOCK };
    kd_parallel_for(N * a.nb, kd_spatial_grain(&a), kd_sscale_bwd_range, &a);
}

static void kd_cpool_fwd_range(void *v, long t0, long t1) {
    const kd_rs_args *a = v;
    const int C = a->C, N = a->N; const long P = a->P;
    for (long t = t0; t < t1; t++) {
        long n = t / a->nb, pb = t % a->nb * KD_PBLOCK, pe = pb + KD_PBLOCK < P ? pb + KD_PBLOCK : P;
        float *restrict mx = a->y + n * P, *restrict mean = a->y + ((long)N + n) * P;
        int *restrict arg = a->arg + n * P;
        const float *x0 = a->x + n * P;
        for (long p = pb; p < pe; p++) { mx[p] = x0[p]; mean[p] = x0[p]; arg[p] = 0; }
        for (int c = 1; c < C; c++) {
            const float *restrict x = a->x + ((long)c * N + n) * P;
            for (long p = pb; p < pe; p++) {
                float v2 = x[p], m = mx[p];
                int gt = v2 > m;                 // selects, not branches: vectorizes
                mean[p] += v2;
                mx[p] = gt ? v2 : m; arg[p] = gt ? c : arg[p];
            }
        }
        const float inv = 1.f / (float)C;
        for (long p = pb; p < pe; p++) mean[p] *= inv;
    }
}
void kd_channel_pool_forward(float *y, int *arg, const float *x, int C, int N, long P) {
    kd_rs_args a = { .y = y, .arg = arg, .x = x, .C = C, .N = N, .P = P, .nb = (P + KD_PBLOCK - 1) / KD_PBLOCK };
    kd_parallel_for(N * a.nb, kd_spatial_grain(&a), kd_cpool_fwd_range, &a);
}

static void kd_cpool_bwd_range(void *v, long t0, long t1) {
    const kd_rs_args *a = v;
    const int C = a->C, N = a->N; const long P = a->P;
    const float inv = 1.f / (float)C;
    for (long t = t0; t < t1; t++) {
        long n = t / a->nb, pb = t % a->nb * KD_PBLOCK, pe = pb + KD_PBLOCK < P ? pb + KD_PBLOCK : P;
        const float *restrict gmax = a->dy + n * P, *restrict gmean = a->dy + ((long)N + n) * P;
        const int *restrict arg = a->carg + n * P;
        for (int c = 0; c < C; c++) {
            float *restrict dx = a->dx + ((long)c * N + n) * P;
            for (long p = pb; p < pe; p++) {
                float g = gmax[p];               // unconditional load: vectorizes
                dx[p] += gmean[p] * inv + (arg[p] == c ? g : 0.f);
            }
        }
    }
}
void kd_channel_pool_backward(float *dx, const float *dy, const int *arg, int C, int N, long P) {
    kd_rs_args a = { .dx = dx, .dy = dy, .carg = arg, .C = C, .N = N, .P = P, .nb = (P + KD_PBLOCK - 1) / KD_PBLOCK };
    kd_parallel_for(N * a.nb, kd_spatial_grain(&a), kd_cpool_bwd_range, &a);
}

// ---- fused CBAM forward passes ---------------------------------------------------------------

static void kd_cscale_pool_range(void *v, long t0, long t1) {
    const kd_rs_args *a = v;
    const int C = a->C, N = a->N; const long P = a->P;
    for (long t = t0; t < t1; t++) {
        long n = t / a->nb, pb = t % a->nb * KD_PBLOCK, pe = pb + KD_PBLOCK < P ? pb + KD_PBLOCK : P;
        float *restrict mx = a->dx + n * P, *restrict mean = a->dx + ((long)N + n) * P;
        int *restrict arg = a->arg + n * P;
        for (int c = 0; c < C; c++) {
            const float s = a->s[(long)c * N + n];
            const float *restrict x = a->x + ((long)c * N + n) * P;
            float *restrict xs = a->y + ((long)c * N + n) * P;
            if (c == 0) {
                for (long p = pb; p < pe; p++) { float v2 = x[p] * s; xs[p] = v2; mx[p] = v2; mean[p] = v2; arg[p] = 0; }
                continue;
            }
            for (long p = pb; p < pe; p++) {
                float v2 = x[p] * s, m = mx[p];
                xs[p] = v2;
                int gt = v2 > m;
                mean[p] += v2;
                mx[p] = gt ? v2 : m; arg[p] = gt ? c : arg[p];
            }
        }
        const float inv = 1.f / (float)C;
        for (long p = pb; p < pe; p++) mean[p] *= inv;
    }
}
void kd_channel_scale_pool_forward(float *xs, float *pooled, int *arg, const float *x, const float *s,
                                   int C, int N, long P) {
    kd_rs_args a = { .y = xs, .dx = pooled, .arg = arg, .x = x, .s = s, .C = C, .N = N, .P = P,
                     .nb = (P + KD_PBLOCK - 1) / KD_PBLOCK };
    kd_parallel_for(N * a.nb, kd_spatial_grain(&a), kd_cscale_pool_range, &a);
}

static void kd_sscale_add_relu_range(void *v, long t0, long t1) {
    const kd_rs_args *a = v;
    const int C = a->C, N = a->N; const long P = a->P;
    for (long t = t0; t < t1; t++) {
        long n = t / a->nb, pb = t % a->nb * KD_PBLOCK, pe = pb + KD_PBLOCK < P ? pb + KD_PBLOCK : P;
        const float *restrict m = a->s + n * P;
        for (int c = 0; c < C; c++) {
            long o = ((long)c * N + n) * P;
            const float *restrict x = a->x + o, *restrict r = a->dy + o; float *restrict y = a->y + o;
            for (long p = pb; p < pe; p++) {
                float u = x[p] * m[p];      // two statements: rounds as the unfused scale, then add
                u = u + r[p];
                y[p] = u > 0.f ? u : 0.f;
            }
        }
    }
}
void kd_spatial_scale_add_relu(float *y, const float *x, const float *m, const float *r, int C, int N, long P) {
    kd_rs_args a = { .y = y, .x = x, .s = m, .dy = r, .C = C, .N = N, .P = P, .nb = (P + KD_PBLOCK - 1) / KD_PBLOCK };
    kd_parallel_for(N * a.nb, kd_spatial_grain(&a), kd_sscale_add_relu_range, &a);
}
