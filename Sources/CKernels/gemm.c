// Single-precision GEMM threaded on kdtrain's own worker pool (see kdkernels.h).
//
// OpenBLAS runs with one thread; each worker calls it on its own slice of C. Having a single
// pool matters on small nodes: OpenBLAS's own workers spin for a while after every call, and on
// two cores they took the core the elementwise kernels' second thread needed (2 threads ran the
// small preset's step only 1.17x faster than 1).
//
// Slices: columns of C (N) when C is wide, else rows (M); every element of C comes from one
// single-threaded call over the full K. Results are deterministic for a given thread count.
#include "kdkernels.h"
#include <cblas.h>

typedef struct {
    int ta, tb, M, N, K; float alpha; const float *A; int lda; const float *B; int ldb; float beta;
    float *C; int ldc; int byColumns; long unit;
} kd_gemm_args;

static void kd_gemm_range(void *v, long b, long e) {
    const kd_gemm_args *g = v;
    long i0 = b * g->unit, i1 = e * g->unit;
    enum CBLAS_TRANSPOSE ta = g->ta ? CblasTrans : CblasNoTrans, tb = g->tb ? CblasTrans : CblasNoTrans;
    if (g->byColumns) {
        if (i1 > g->N) i1 = g->N;
        const float *B = g->tb ? g->B + i0 * g->ldb : g->B + i0;
        cblas_sgemm(CblasRowMajor, ta, tb, g->M, (int)(i1 - i0), g->K, g->alpha, g->A, g->lda, B, g->ldb,
                    g->beta, g->C + i0, g->ldc);
    } else {
        if (i1 > g->M) i1 = g->M;
        const float *A = g->ta ? g->A + i0 : g->A + i0 * g->lda;
        cblas_sgemm(CblasRowMajor, ta, tb, (int)(i1 - i0), g->N, g->K, g->alpha, A, g->lda, g->B, g->ldb,
                    g->beta, g->C + i0 * g->ldc, g->ldc);
    }
}

void kd_sgemm(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
              const float *B, int ldb, float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
    kd_gemm_args g = { transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, 1, 64 };
    int threads = kd_get_threads();
    double flops = 2.0 * M * N * (K > 0 ? K : 1);
    if (threads <= 1 || flops < 4e6) { kd_gemm_range(&g, 0, (N + 63) / 64); return; }
    // Columns in units of 64 when there are enough for every thread, else rows in units of 16.
    if ((long)N >= 64L * threads * 2 || N >= M) {
        g.byColumns = 1; g.unit = 64;
        kd_parallel_for((N + 63) / 64, 1, kd_gemm_range, &g);
    } else {
        g.byColumns = 0; g.unit = 16;
        kd_parallel_for((M + 15) / 16, 1, kd_gemm_range, &g);
    }
}
