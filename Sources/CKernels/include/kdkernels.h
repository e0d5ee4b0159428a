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

// ---- GEMM -----------------------------------------------------------------------------------
/// Row-major C (M, N) = alpha op(A) op(B) + beta C, op = transpose when trans* != 0 (as
/// cblas_sgemm with CblasRowMajor), threaded on this pool: slices of C's columns (or rows) each
/// computed by single-threaded OpenBLAS over the full K; deterministic for a given thread count.
/// OpenBLAS itself must run with one thread (Compute.setThreads does that).
void kd_sgemm(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
              const float *B, int ldb, float beta, float *C, int ldc);

// ---- convolution lowering (CNHW) ---------------------------------------------------------
/// col (C*K*K, N*Ho*Wo) from x (C, N, H, W): col[(c*K+ky)*K+kx][(n*Ho+oy)*Wo+ox] =
/// x[c][n][oy*stride-pad+ky][ox*stride-pad+kx], zero outside the image.
void kd_im2col(const float *x, float *col, int C, int N, int H, int W,
               int K, int stride, int pad, int Ho, int Wo);
/// The adjoint of kd_im2col: dx (C, N, H, W) += scatter of dcol (C*K*K, N*Ho*Wo).
void kd_col2im_add(const float *dcol, float *dx, int C, int N, int H, int W,
                   int K, int stride, int pad, int Ho, int Wo);

// ==== basic layers (layers branch): batch norm, activations, pooling, reshapes, elementwise ====
// Legend: C channels (or features F), N batch, H x W plane, P = H*W, M = N*H*W elements per
// channel. All tensors CNHW. "+=" kernels ACCUMULATE into their output (backward contract).
// Per-channel reductions accumulate float lanes over short blocks and flush into double.

// ---- batch norm over (C, M) --------------------------------------------------------------
/// sum[c] = sum_i x[c][i], sumsq[c] = sum_i x[c][i]^2 (double) for x (C, M).
void kd_bn_stats(const float *x, double *sum, double *sumsq, int C, long M);
/// y[c][i] = x[c][i] * scale[c] + shift[c] for x, y (C, M).
void kd_channel_affine(float *y, const float *x, const float *scale, const float *shift, int C, long M);
/// sdy[c] = sum_i dy[c][i], sdyx[c] = sum_i dy[c][i] * (x[c][i] - mean[c]) (double).
void kd_bn_backward_reduce(const float *dy, const float *x, const float *mean,
                           double *sdy, double *sdyx, int C, long M);
/// dx[c][i] += a[c] * dy[c][i] + b[c] * (x[c][i] - mean[c]) + d[c].
void kd_bn_backward_dx(float *dx, const float *dy, const float *x, const float *mean,
                       const float *a, const float *b, const float *d, int C, long M);

// ---- activations (flat, n elements) --------------------------------------------------------
/// y = max(x, 0); y may be x (in place).
void kd_relu_forward(float *y, const float *x, long n);
/// dx += y > 0 ? dy : 0 (y is the forward output).
void kd_relu_backward(float *dx, const float *dy, const float *y, long n);
/// y = 1 / (1 + exp(-x)), overflow-safe.
void kd_sigmoid_forward(float *y, const float *x, long n);
/// dx += dy * y * (1 - y).
void kd_sigmoid_backward(float *dx, const float *dy, const float *y, long n);
/// y[c][i] = x > 0 ? x : slope[c] * x for x (C, M).
void kd_prelu_forward(float *y, const float *x, const float *slope, int C, long M);
/// dx += dy * (x > 0 ? 1 : slope[c]) (when dx != NULL); dslope[c] += sum_{x <= 0} dy * x
/// (when dslope != NULL).
void kd_prelu_backward(float *dx, float *dslope, const float *dy, const float *x,
                       const float *slope, int C, long M);
/// y = x * mask (mask holds 0 or 1/(1-p)); dx += dy * mask is the same kernel with accumulate = 1.
void kd_mul_mask(float *y, const float *x, const float *mask, long n, int accumulate);
/// y = a + b.
void kd_add(float *y, const float *a, const float *b, long n);
/// y += x.
void kd_accumulate(float *y, const float *x, long n);

// ---- pooling (planes: CN planes of H x W) --------------------------------------------------
/// Max pooling with implicit -inf padding; idx[plane][o] = argmax offset within the H x W
/// input plane (first maximum wins). Requires pad <= K/2 so every window holds an input pixel.
void kd_maxpool_forward(float *y, int *idx, const float *x, long planes, int H, int W,
                        int K, int stride, int pad, int Ho, int Wo);
/// dx[plane][idx] += dy[plane][o].
void kd_maxpool_backward(float *dx, const float *dy, const int *idx, long planes, int H, int W,
                         int Ho, int Wo);
/// Average pooling with zero padding; divisor K*K (count_include_pad) or the count of input
/// pixels in the window.
void kd_avgpool_forward(float *y, const float *x, long planes, int H, int W, int K, int stride,
                        int pad, int Ho, int Wo, int count_include_pad);
void kd_avgpool_backward(float *dx, const float *dy, long planes, int H, int W, int K, int stride,
                         int pad, int Ho, int Wo, int count_include_pad);
/// y[plane] = mean of the P values of each plane (double accumulation).
void kd_global_avgpool_forward(float *y, const float *x, long planes, long P);
/// dx[plane][i] += dy[plane] / P.
void kd_global_avgpool_backward(float *dx, const float *dy, long planes, long P);
/// y[plane] = max of each plane, idx[plane] = first argmax.
void kd_global_maxpool_forward(float *y, int *idx, const float *x, long planes, long P);
void kd_global_maxpool_backward(float *dx, const float *dy, const int *idx, long planes, long P);

// ---- reshapes and attention helpers --------------------------------------------------------
/// Flatten: y[(c*P + p)*N + n] = x[(c*N + n)*P + p] (per-channel transpose (N, P) -> (P, N)).
void kd_flatten_forward(float *y, const float *x, int C, int N, long P);
/// dx[(c*N + n)*P + p] += dy[(c*P + p)*N + n].
void kd_flatten_backward(float *dx, const float *dy, int C, int N, long P);
/// y[c][n][p] = x[c][n][p] * s[c*N + n] for x (C, N, P), s (C, N).
void kd_channel_scale_forward(float *y, const float *x, const float *s, long CN, long P);
/// dx += dy * s (when dx != NULL); ds[cn] += sum_p dy * x (when ds != NULL).
void kd_channel_scale_backward(float *dx, float *ds, const float *dy, const float *x,
                               const float *s, long CN, long P);
/// y[c][n][p] = x[c][n][p] * m[n*P + p] for x (C, N, P), m (1, N, P).
void kd_spatial_scale_forward(float *y, const float *x, const float *m, int C, int N, long P);
/// dx += dy * m (when dx != NULL); dm[n][p] += sum_c dy * x (when dm != NULL).
void kd_spatial_scale_backward(float *dx, float *dm, const float *dy, const float *x,
                               const float *m, int C, int N, long P);
/// CBAM channel pool: y (2, N, P) with y[0] = max over c, y[1] = mean over c of x (C, N, P);
/// arg[n*P + p] = first argmax channel.
void kd_channel_pool_forward(float *y, int *arg, const float *x, int C, int N, long P);
/// dx[c][n][p] += dy[1][n][p] / C + (c == arg ? dy[0][n][p] : 0).
void kd_channel_pool_backward(float *dx, const float *dy, const int *arg, int C, int N, long P);
// ---- fused forward passes (each gives the bits of the unfused sequence it replaces) ----------
/// y[c][i] = max(x[c][i] * scale[c] + shift[c], 0): batch-norm affine then ReLU.
void kd_channel_affine_relu(float *y, const float *x, const float *scale, const float *shift, int C, long M);
/// avg[plane] and mx[plane], idx[plane] as kd_global_avgpool_forward and kd_global_maxpool_forward.
void kd_global_avgmax_forward(float *avg, float *mx, int *idx, const float *x, long planes, long P);
/// xs = x * s (kd_channel_scale_forward) and pooled, arg = channel pool of xs
/// (kd_channel_pool_forward) in one pass.
void kd_channel_scale_pool_forward(float *xs, float *pooled, int *arg, const float *x, const float *s,
                                   int C, int N, long P);
/// y = max(x * m + r, 0) for x, r, y (C, N, P), m (1, N, P): CBAM's spatial scaling, the
/// residual add and the block's ReLU.
void kd_spatial_scale_add_relu(float *y, const float *x, const float *m, const float *r, int C, int N, long P);
// ==== end basic layers ====
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

// ---- cpu features ---------------------------------------------------------------------------
/// 1 when the CPU executes AVX2 and FMA instructions (x86 only).
int kd_cpu_supports_avx2_fma(void);

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

// ==== direct convolution (owner: conv branch; implemented in conv_direct.c) ==================
// Legend: N batch, Ci/Co channels, G groups, Cig = Ci/G, Cog = Co/G, K kernel, H x W input,
// Ho x Wo output; x, dx (Ci, N, H, W), y, dy (Co, N, Ho, Wo), w, dw (Co, Cig, K, K). CNHW.
// For few channels per group (see Conv2d's selection rule). Requires K <= 7, stride 1 or 2,
// pad <= K - 1. Results do not depend on the thread count.
/// Floats of scratch the three kernels below need (the largest of the three).
size_t kd_conv_direct_scratch(int Ci, int Co, int G, int N, int H, int W, int K, int stride, int pad,
                              int Ho, int Wo);
/// y = conv(x, w) (no bias). scratch: kd_conv_direct_scratch floats.
void kd_conv_direct_forward(const float *x, const float *w, float *y, float *scratch,
                            int Ci, int Co, int G, int N, int H, int W, int K, int stride, int pad,
                            int Ho, int Wo);
/// dx += dL/dx of y = conv(x, w) given dy.
void kd_conv_direct_backward_input(const float *dy, const float *w, float *dx, float *scratch,
                                   int Ci, int Co, int G, int N, int H, int W, int K, int stride, int pad,
                                   int Ho, int Wo);
/// dw += dL/dw given x and dy (per-image-block partials added in a fixed order).
void kd_conv_direct_backward_weight(const float *x, const float *dy, float *dw, float *scratch,
                                    int Ci, int Co, int G, int N, int H, int W, int K, int stride, int pad,
                                    int Ho, int Wo);
// ==== end direct convolution ====

#ifdef __cplusplus
}
#endif
#endif
