// kdtrain hot kernels in C: a persistent worker pool and the conv lowering kernels.
//
// Layout legend used throughout kdtrain: N batch, C channels, H height, W width, K kernel size,
// G groups. Activations are stored channel-major, (C, N, H, W) ("CNHW"): every channel is one
// contiguous run of N*H*W floats, so a 1x1 convolution over the whole batch is one GEMM, and
// batch norm reduces over a contiguous run.
#ifndef KDTRAIN_KDKERNELS_H
#define KDTRAIN_KDKERNELS_H
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

// ---- worker pool -------------------------------------------------------------------------
// A fixed pool of worker threads (created on first use). Workers sleep on a condition variable
// between jobs, so they do not compete with OpenBLAS's own threads.
typedef void (*kd_range_fn)(void *ctx, long begin, long end);
/// Sets the number of threads kernels use (>= 1). Takes effect on the next parallel call.
void kd_set_threads(int n);
int kd_get_threads(void);
/// Runs fn over [0, n) split into at most kd_get_threads() contiguous chunks of at least
/// `grain` items each; returns when all chunks are done. Runs inline when one chunk suffices.
void kd_parallel_for(long n, long grain, kd_range_fn fn, void *ctx);

// ---- convolution lowering (CNHW) ---------------------------------------------------------
/// col (C*K*K, N*Ho*Wo) from x (C, N, H, W): col[(c*K+ky)*K+kx][(n*Ho+oy)*Wo+ox] =
/// x[c][n][oy*stride-pad+ky][ox*stride-pad+kx], zero outside the image.
void kd_im2col(const float *x, float *col, int C, int N, int H, int W,
               int K, int stride, int pad, int Ho, int Wo);
/// The adjoint of kd_im2col: dx (C, N, H, W) += scatter of dcol (C*K*K, N*Ho*Wo).
void kd_col2im_add(const float *dcol, float *dx, int C, int N, int H, int W,
                   int K, int stride, int pad, int Ho, int Wo);

// ---- optimizer kernels (owner: losses/optimizer; implemented in sgd_loss.c) ---------------
// Flat float buffers of n entries; all threaded with kd_parallel_for.
/// PyTorch SGD on one range: d = g + wd*p; m = mu*m + d; d = nesterov ? d + mu*m : m; p -= lr*d.
/// With mu == 0 the momentum buffer is left untouched and d = g + wd*p.
void kd_sgd_update(float *p, const float *g, float *m, long n, float lr, float mu, float wd,
                   int nesterov);
/// Sum of squares of x in double, deterministic for a given n (fixed blocking, independent of
/// the thread count). Non-finite if any entry is non-finite.
double kd_sum_squares(const float *x, long n);
/// x *= a.
void kd_scale(float *x, long n, float a);
// ---- end optimizer kernels ------------------------------------------------------------------

// ---- loss and margin-head kernels (owner: losses; implemented in softmax_loss.c) -----------
// Row-major (N, K) logits; rows split into fixed blocks on the worker pool; sums in double,
// independent of the thread count. Gradients are ADDED.
#include <stdint.h>
/// Sum over rows of softmax cross-entropy (logsumexp(z) - z[y]); when dlogits is non-null adds
/// grad_scale * (softmax(z) - onehot(y)). labels in [0, K) (checked by the caller).
double kd_cross_entropy(const float *logits, const int32_t *labels, float *dlogits, long n, long k,
                        float grad_scale);
/// Sum over rows of KL(softmax(t/T) || softmax(s/T)); when dstudent is non-null adds
/// grad_scale * (softmax(s/T) - softmax(t/T)).
double kd_distill_kl(const float *student, const float *teacher, float *dstudent, long n, long k,
                     float temperature, float grad_scale);
/// out (rows, cols) = x / max(|x_row|, eps); norms (rows) = max(|x_row|, eps).
void kd_normalize_rows(const float *x, float *out, float *norms, long rows, long cols, float eps);
/// dx (rows, cols) += (dxhat - xhat <xhat, dxhat>) / norms, the adjoint of kd_normalize_rows.
void kd_normalize_rows_backward_add(const float *xhat, const float *norms, const float *dxhat, float *dx,
                                    long rows, long cols);
// ---- end loss kernels ------------------------------------------------------------------------

#ifdef __cplusplus
}
#endif
#endif
