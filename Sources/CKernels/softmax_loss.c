// Row-wise kernels for the recognition and distillation losses and the margin heads: softmax
// cross-entropy, Hinton KD, and L2 row normalization with its adjoint. Rows are independent, so
// each kernel splits the rows into at most KD_LOSS_BLOCKS fixed blocks run on the kd worker pool;
// per-block partial sums are added in block order, so results do not depend on the thread count.
#include "kdkernels.h"
#include <math.h>

#define KD_LOSS_BLOCKS 64
#define KD_LOSS_GRAIN_ELEMS 32768L

typedef struct {
    const float *a, *b; const int32_t *labels; float *d;
    long n, k, rows_per_block; float scale, inv_t;
    double partial[KD_LOSS_BLOCKS];
} kd_rows_ctx;

static long kd_blocks(kd_rows_ctx *c) {
    c->rows_per_block = (c->n + KD_LOSS_BLOCKS - 1) / KD_LOSS_BLOCKS;
    if (c->rows_per_block < 1) c->rows_per_block = 1;
    return (c->n + c->rows_per_block - 1) / c->rows_per_block;
}

static long kd_grain(const kd_rows_ctx *c) {
    long per = c->rows_per_block * c->k;
    long g = (KD_LOSS_GRAIN_ELEMS + per - 1) / per;
    return g < 1 ? 1 : g;
}

static void kd_ce_range(void *vctx, long b, long e) {
    kd_rows_ctx *c = (kd_rows_ctx *)vctx;
    const long k = c->k;
    for (long blk = b; blk < e; blk++) {
        long lo = blk * c->rows_per_block, hi = lo + c->rows_per_block < c->n ? lo + c->rows_per_block : c->n;
        double acc = 0;
        for (long r = lo; r < hi; r++) {
            const float *z = c->a + r * k;
            float mx = z[0];
            for (long j = 1; j < k; j++) mx = z[j] > mx ? z[j] : mx;
            double sum = 0;
            for (long j = 0; j < k; j++) sum += (double)expf(z[j] - mx);
            int32_t y = c->labels[r];
            acc += (double)mx + log(sum) - (double)z[y];
            if (c->d) {
                float *d = c->d + r * k;
                const float g = c->scale, inv = (float)(1.0 / sum);
                for (long j = 0; j < k; j++) d[j] += g * expf(z[j] - mx) * inv;
                d[y] -= g;
            }
        }
        c->partial[blk] = acc;
    }
}

double kd_cross_entropy(const float *logits, const int32_t *labels, float *dlogits, long n, long k,
                        float grad_scale) {
    kd_rows_ctx c = {0};
    c.a = logits; c.labels = labels; c.d = dlogits; c.n = n; c.k = k; c.scale = grad_scale;
    long blocks = kd_blocks(&c);
    kd_parallel_for(blocks, kd_grain(&c), kd_ce_range, &c);
    double total = 0;
    for (long i = 0; i < blocks; i++) total += c.partial[i];
    return total;
}

static void kd_kl_range(void *vctx, long b, long e) {
    kd_rows_ctx *c = (kd_rows_ctx *)vctx;
    const long k = c->k;
    const float it = c->inv_t;
    for (long blk = b; blk < e; blk++) {
        long lo = blk * c->rows_per_block, hi = lo + c->rows_per_block < c->n ? lo + c->rows_per_block : c->n;
        double acc = 0;
        for (long r = lo; r < hi; r++) {
            const float *s = c->a + r * k, *t = c->b + r * k;
            float ms = s[0] * it, mt = t[0] * it;
            for (long j = 1; j < k; j++) {
                float vs = s[j] * it, vt = t[j] * it;
                ms = vs > ms ? vs : ms; mt = vt > mt ? vt : mt;
            }
            double ss = 0, st = 0;
            for (long j = 0; j < k; j++) { ss += (double)expf(s[j] * it - ms); st += (double)expf(t[j] * it - mt); }
            const float lss = (float)log(ss), lst = (float)log(st);
            double kl = 0;
            float *d = c->d ? c->d + r * k : 0;
            for (long j = 0; j < k; j++) {
                float log_pt = t[j] * it - mt - lst, log_ps = s[j] * it - ms - lss;
                float pt = expf(log_pt);
                if (pt > 0) kl += (double)pt * (double)(log_pt - log_ps);
                if (d) d[j] += c->scale * (expf(log_ps) - pt);
            }
            acc += kl;
        }
        c->partial[blk] = acc;
    }
}

double kd_distill_kl(const float *student, const float *teacher, float *dstudent, long n, long k,
                     float temperature, float grad_scale) {
    kd_rows_ctx c = {0};
    c.a = student; c.b = teacher; c.d = dstudent; c.n = n; c.k = k; c.scale = grad_scale;
    c.inv_t = 1.0f / temperature;
    long blocks = kd_blocks(&c);
    kd_parallel_for(blocks, kd_grain(&c), kd_kl_range, &c);
    double total = 0;
    for (long i = 0; i < blocks; i++) total += c.partial[i];
    return total;
}

typedef struct { const float *x, *xhat, *dxhat; float *out, *norms, *dx; const float *cnorms; long cols; float eps; } kd_norm_ctx;

static void kd_norm_range(void *vctx, long b, long e) {
    const kd_norm_ctx *c = (const kd_norm_ctx *)vctx;
    const long m = c->cols;
    for (long r = b; r < e; r++) {
        const float *x = c->x + r * m; float *o = c->out + r * m;
        float ss = 0;
        for (long i = 0; i < m; i++) ss += x[i] * x[i];
        float nrm = sqrtf(ss);
        if (!(nrm > c->eps)) nrm = c->eps;
        c->norms[r] = nrm;
        const float inv = 1.0f / nrm;
        for (long i = 0; i < m; i++) o[i] = x[i] * inv;
    }
}

void kd_normalize_rows(const float *x, float *out, float *norms, long rows, long cols, float eps) {
    kd_norm_ctx c = {0};
    c.x = x; c.out = out; c.norms = norms; c.cols = cols; c.eps = eps;
    long grain = (KD_LOSS_GRAIN_ELEMS + cols - 1) / cols;
    kd_parallel_for(rows, grain, kd_norm_range, &c);
}

static void kd_norm_back_range(void *vctx, long b, long e) {
    const kd_norm_ctx *c = (const kd_norm_ctx *)vctx;
    const long m = c->cols;
    for (long r = b; r < e; r++) {
        const float *xh = c->xhat + r * m, *dh = c->dxhat + r * m; float *dx = c->dx + r * m;
        float dot = 0;
        for (long i = 0; i < m; i++) dot += xh[i] * dh[i];
        const float inv = 1.0f / c->cnorms[r];
        for (long i = 0; i < m; i++) dx[i] += (dh[i] - xh[i] * dot) * inv;
    }
}

void kd_normalize_rows_backward_add(const float *xhat, const float *norms, const float *dxhat, float *dx,
                                    long rows, long cols) {
    kd_norm_ctx c = {0};
    c.xhat = xhat; c.cnorms = norms; c.dxhat = dxhat; c.dx = dx; c.cols = cols;
    long grain = (KD_LOSS_GRAIN_ELEMS + cols - 1) / cols;
    kd_parallel_for(rows, grain, kd_norm_back_range, &c);
}
