// Optimizer kernels over the flat parameter store: SGD with momentum, global-norm reduction,
// scaling. Each is one pass over a contiguous range, split across the kd worker pool.
#include "kdkernels.h"
#include <math.h>

#define KD_OPT_GRAIN 16384L
#define KD_OPT_BLOCKS 64

typedef struct {
    float *p; const float *g; float *m;
    float lr, mu, wd; int nesterov;
} kd_sgd_ctx;

static void kd_sgd_range(void *vctx, long b, long e) {
    const kd_sgd_ctx *c = (const kd_sgd_ctx *)vctx;
    float *restrict p = c->p; const float *restrict g = c->g; float *restrict m = c->m;
    const float lr = c->lr, mu = c->mu, wd = c->wd;
    if (mu == 0.0f) {
        for (long i = b; i < e; i++) p[i] -= lr * (g[i] + wd * p[i]);
    } else if (c->nesterov) {
        for (long i = b; i < e; i++) {
            float d = g[i] + wd * p[i];
            float buf = mu * m[i] + d;
            m[i] = buf;
            p[i] -= lr * (d + mu * buf);
        }
    } else {
        for (long i = b; i < e; i++) {
            float d = g[i] + wd * p[i];
            float buf = mu * m[i] + d;
            m[i] = buf;
            p[i] -= lr * buf;
        }
    }
}

void kd_sgd_update(float *p, const float *g, float *m, long n, float lr, float mu, float wd,
                   int nesterov) {
    kd_sgd_ctx c = { p, g, m, lr, mu, wd, nesterov };
    kd_parallel_for(n, KD_OPT_GRAIN, kd_sgd_range, &c);
}

typedef struct { const float *x; long n, block; double partial[KD_OPT_BLOCKS]; } kd_ss_ctx;

static void kd_ss_range(void *vctx, long b, long e) {
    kd_ss_ctx *c = (kd_ss_ctx *)vctx;
    for (long blk = b; blk < e; blk++) {
        long lo = blk * c->block, hi = lo + c->block < c->n ? lo + c->block : c->n;
        double acc = 0;
        for (long i = lo; i < hi; i++) { double v = c->x[i]; acc += v * v; }
        c->partial[blk] = acc;
    }
}

double kd_sum_squares(const float *x, long n) {
    if (n <= 0) return 0;
    kd_ss_ctx c;
    c.x = x; c.n = n;
    c.block = (n + KD_OPT_BLOCKS - 1) / KD_OPT_BLOCKS;
    if (c.block < 1) c.block = 1;
    long blocks = (n + c.block - 1) / c.block;
    long grain = KD_OPT_GRAIN / c.block; if (grain < 1) grain = 1;
    kd_parallel_for(blocks, grain, kd_ss_range, &c);
    double total = 0;
    for (long i = 0; i < blocks; i++) total += c.partial[i];
    return total;
}

typedef struct { float *x; float a; } kd_scale_ctx;

static void kd_scale_range(void *vctx, long b, long e) {
    const kd_scale_ctx *c = (const kd_scale_ctx *)vctx;
    for (long i = b; i < e; i++) c->x[i] *= c->a;
}

void kd_scale(float *x, long n, float a) {
    kd_scale_ctx c = { x, a };
    kd_parallel_for(n, KD_OPT_GRAIN, kd_scale_range, &c);
}
