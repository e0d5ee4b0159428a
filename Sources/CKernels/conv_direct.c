// Direct convolution in the CNHW layout for convolutions with few channels per group
// (CBAM's 2->1 7x7 spatial conv, ResNeXt's grouped 3x3 with group width 4 or 8), where
// im2col + sgemm writes a (Cig*K*K, L) column matrix for a GEMV-sized computation.
//
// Legend: N batch, Ci/Co channels, G groups, Cig = Ci/G, Cog = Co/G, K kernel, s stride, p pad,
// H x W input plane, Ho x Wo output plane, Hp = H + 2p, Wp = W + 2p (zero-padded plane),
// OB output channels per register block, TV 8-float vectors per output row tile.
//
// Padding: the input planes are first copied into a zero-padded buffer xp (Ci, N, Hp, Wp)
// (one pass, ~1x the input, instead of K*K x for im2col), so the inner loops have no bounds
// checks and no branches at all.
//
// forward          y[oc][n][oy][ox] = sum_{ci,ky,kx} w[oc][ci][ky][kx] xp[ci][n][oy*s+ky][ox*s+kx]
//                  Items (g, n) on the worker pool; per item, blocks of OB output channels x
//                  TV*8 columns of one output row are accumulated in registers over all taps.
// backward input   stride 1: dx += conv(dyp, w') where dyp is dy zero-padded by K-1-p and
//                  w'[ci][oc][ky][kx] = w[oc][ci][K-1-ky][K-1-kx] (the same tile kernel).
//                  stride 2: scatter into a zero-padded dxp per (g, n) (tap pairs kx, kx+1
//                  interleaved into contiguous vectors), then dx += its interior.
// backward weight  dw[oc][ci][ky][kx] += sum_{n,oy,ox} dy[oc][n][oy][ox] xp[ci][n][oy*s+ky][ox*s+kx]
//                  Items (g, image block) with a FIXED number of image blocks (min(N, 8)), each
//                  writing its own partial sums; partials are then added in block order. The
//                  result does not depend on the thread count.
//
// dy is first copied to dyr with rows rounded up to 8 floats (zero lanes) for the weight gradient
// and the stride-2 scatter, so every vector load of dy is a whole, in-bounds chunk.
//
// Every kernel body is compiled twice: for AVX2+FMA (target attribute, chosen at run time by
// kd_cpu_supports_avx2_fma) and for the baseline ISA. The compile flags (-O3, no -march) stay
// as Package.swift sets them.
#include "kdkernels.h"
#include <string.h>

// kd_v8 values only cross always-inline helpers, never a real call boundary.
#pragma clang diagnostic ignored "-Wpsabi"

#define KD_CD_MAX_BLOCKS 8          // image blocks of the weight-gradient reduction
#define KD_CD_INLINE static inline __attribute__((always_inline))

static int kd_cd_avx2 = -1;         // -1 unknown, else kd_cpu_supports_avx2_fma()
static int kd_cd_use_avx2(void) {
    if (kd_cd_avx2 < 0) kd_cd_avx2 = kd_cpu_supports_avx2_fma();
    return kd_cd_avx2;
}

static long kd_cd_slack(int stride) { return 16L * stride + 64; }

static long kd_cd_scatter_item_floats(int Cig, int H, int W, int pad);

/// Row stride of dyr, dy copied with rows rounded up to whole 8-float chunks (zero tail lanes).
static int kd_cd_wr(int Wo) { return (Wo + 7) & ~7; }
static long kd_cd_dyr_floats(int Co, int N, int Ho, int Wo) { return (long)Co * N * Ho * kd_cd_wr(Wo); }

static int kd_cd_blocks(int N) { return N < KD_CD_MAX_BLOCKS ? N : KD_CD_MAX_BLOCKS; }

// ---- zero padding ---------------------------------------------------------------------------
typedef struct { const float *src; float *dst; int H, W, top, left, Hp, Wp; } kd_cd_pad_args;

static void kd_cd_pad_range(void *vctx, long p0, long p1) {
    const kd_cd_pad_args *a = vctx;
    const long plane = (long)a->H * a->W, pplane = (long)a->Hp * a->Wp;
    for (long pl = p0; pl < p1; pl++) {
        const float *s = a->src + pl * plane;
        float *d = a->dst + pl * pplane;
        memset(d, 0, sizeof(float) * (size_t)a->Wp * a->top);
        for (int y = 0; y < a->H; y++) {
            float *row = d + (long)(y + a->top) * a->Wp;
            memset(row, 0, sizeof(float) * a->left);
            memcpy(row + a->left, s + (long)y * a->W, sizeof(float) * a->W);
            memset(row + a->left + a->W, 0, sizeof(float) * (a->Wp - a->left - a->W));
        }
        long done = (long)(a->top + a->H) * a->Wp;
        memset(d + done, 0, sizeof(float) * (pplane - done));
    }
}

/// dst (planes, Hp, Wp) = src (planes, H, W) placed at (top, left), zeros elsewhere; plus a zeroed
/// slack after the last plane (the tile kernel's masked last tile reads past a row end).
static void kd_cd_pad(const float *src, float *dst, long planes, int H, int W, int top, int left,
                      int Hp, int Wp, long slack) {
    kd_cd_pad_args a = { src, dst, H, W, top, left, Hp, Wp };
    long pplane = (long)Hp * Wp;
    long grain = pplane >= 4096 ? 1 : (4096 + pplane - 1) / pplane;
    kd_parallel_for(planes, grain, kd_cd_pad_range, &a);
    memset(dst + planes * pplane, 0, sizeof(float) * slack);
}

// ---- 8-float vectors (GCC/Clang vector extensions: ymm under avx2, two xmm otherwise) -------------
typedef float kd_v8 __attribute__((vector_size(32)));
typedef float kd_v8u __attribute__((vector_size(32), aligned(4), may_alias));
KD_CD_INLINE kd_v8 kd_ld(const float *p) { return *(const kd_v8u *)p; }
KD_CD_INLINE void kd_st(float *p, kd_v8 v) { *(kd_v8u *)p = v; }
KD_CD_INLINE kd_v8 kd_splat(float f) { return (kd_v8){ f, f, f, f, f, f, f, f }; }
/// p[0], p[S], ..., p[7S] for S = 1 or 2 (stride 2: two loads and a shuffle; reads p[0..15]).
KD_CD_INLINE kd_v8 kd_ld_s(const float *p, int S) {
    if (S == 1) return kd_ld(p);
    kd_v8 a = kd_ld(p), b = kd_ld(p + 8);
    return __builtin_shufflevector(a, b, 0, 2, 4, 6, 8, 10, 12, 14);
}
/// Lanes summed in a fixed order.
KD_CD_INLINE float kd_hsum(kd_v8 v) {
    return ((v[0] + v[4]) + (v[1] + v[5])) + ((v[2] + v[6]) + (v[3] + v[7]));
}

// ---- the tile kernel: y (Cout, N, Ho, Wo) (+)= conv(xp (Cin, N, Hp, Wp), w (Cout, CinG, K, K)) ----
typedef struct {
    const float *xp; const float *w; float *y;
    int Cin, Cout, G, N, Hp, Wp, K, s, Ho, Wo, accumulate;
} kd_cd_tile_args;

// OB output channels x TV*8 columns starting at (oy, ox0), accumulated in OB*TV vector registers
// over all Cin/G*K*K taps; `valid` columns are stored (< 8 only with TV = 1). S: stride (1, 2).
KD_CD_INLINE void kd_cd_tile(const kd_cd_tile_args *a, const float *xg, const float *wb, float *yb,
                             int oy, int ox0, int valid, int OB, int TV, int S) {
    const int K = a->K, cing = a->Cin / a->G;
    const long pplane = (long)a->Hp * a->Wp, inStride = (long)a->N * pplane;   // next input channel
    const long kk = (long)K * K, wStride = (long)cing * kk;                     // next output channel
    const long outStride = (long)a->N * a->Ho * a->Wo;
    kd_v8 acc[4][4];
    for (int o = 0; o < OB; o++) for (int t = 0; t < TV; t++) acc[o][t] = kd_splat(0.f);
    for (int ci = 0; ci < cing; ci++) {
        const float *xc = xg + ci * inStride + (long)oy * S * a->Wp + (long)ox0 * S;
        const float *wc = wb + ci * kk;
        for (int ky = 0; ky < K; ky++) {
            const float *row = xc + (long)ky * a->Wp;
            for (int kx = 0; kx < K; kx++) {
                kd_v8 xv[4];
                for (int t = 0; t < TV; t++) xv[t] = kd_ld_s(row + kx + 8 * S * t, S);
                for (int o = 0; o < OB; o++) {
                    const kd_v8 wv = kd_splat(wc[o * wStride + ky * K + kx]);
                    for (int t = 0; t < TV; t++) acc[o][t] += wv * xv[t];
                }
            }
        }
    }
    const long orow = (long)oy * a->Wo + ox0;
    for (int o = 0; o < OB; o++) {
        float *yr = yb + o * outStride + orow;
        if (valid == 8 * TV) {
            for (int t = 0; t < TV; t++) kd_st(yr + 8 * t, a->accumulate ? kd_ld(yr + 8 * t) + acc[o][t] : acc[o][t]);
        } else {
            float tmp[8];
            kd_st(tmp, acc[o][0]);
            if (a->accumulate) { for (int j = 0; j < valid; j++) yr[j] += tmp[j]; }
            else { for (int j = 0; j < valid; j++) yr[j] = tmp[j]; }
        }
    }
}

// One (group, image) item: all output channels of the group, all rows.
KD_CD_INLINE void kd_cd_tile_item(const kd_cd_tile_args *a, long item, int OB, int TV, int S) {
    const int g = (int)(item / a->N), n = (int)(item % a->N);
    const int cing = a->Cin / a->G, coutg = a->Cout / a->G, K = a->K;
    const long pplane = (long)a->Hp * a->Wp, oplane = (long)a->Ho * a->Wo;
    const float *xg = a->xp + ((long)g * cing * a->N + n) * pplane;
    for (int ob = 0; ob < coutg; ob += OB) {
        const int oc = g * coutg + ob;
        const float *wb = a->w + (long)oc * cing * K * K;
        float *yb = a->y + ((long)oc * a->N + n) * oplane;
        for (int oy = 0; oy < a->Ho; oy++) {
            int ox = 0;
            for (; ox + 8 * TV <= a->Wo; ox += 8 * TV) kd_cd_tile(a, xg, wb, yb, oy, ox, 8 * TV, OB, TV, S);
            for (; ox + 8 <= a->Wo; ox += 8) kd_cd_tile(a, xg, wb, yb, oy, ox, 8, OB, 1, S);
            if (ox < a->Wo) kd_cd_tile(a, xg, wb, yb, oy, ox, a->Wo - ox, OB, 1, S);
        }
    }
}

// Register blocks: 4 channels x 16 columns, 2 x 32, or 1 x 32 (8, 8 or 4 accumulators).
KD_CD_INLINE void kd_cd_tile_range_body(void *vctx, long i0, long i1) {
    const kd_cd_tile_args *a = vctx;
    const int coutg = a->Cout / a->G;
    for (long it = i0; it < i1; it++) {
        if (coutg % 4 == 0) {
            if (a->s == 1) kd_cd_tile_item(a, it, 4, 2, 1); else kd_cd_tile_item(a, it, 4, 2, 2);
        } else if (coutg % 2 == 0) {
            if (a->s == 1) kd_cd_tile_item(a, it, 2, 4, 1); else kd_cd_tile_item(a, it, 2, 4, 2);
        } else {
            if (a->s == 1) kd_cd_tile_item(a, it, 1, 4, 1); else kd_cd_tile_item(a, it, 1, 4, 2);
        }
    }
}

#if defined(__x86_64__)
__attribute__((target("avx2,fma")))
static void kd_cd_tile_range_avx2(void *c, long b, long e) { kd_cd_tile_range_body(c, b, e); }
#endif
static void kd_cd_tile_range_base(void *c, long b, long e) { kd_cd_tile_range_body(c, b, e); }

static void kd_cd_tile_run(kd_cd_tile_args *a) {
    kd_range_fn fn = kd_cd_tile_range_base;
#if defined(__x86_64__)
    if (kd_cd_use_avx2()) fn = kd_cd_tile_range_avx2;
#endif
    kd_parallel_for((long)a->G * a->N, 1, fn, a);
}

// ---- public entry points ------------------------------------------------------------------------
static long kd_cd_xp_floats(int Ci, int N, int H, int W, int pad, int stride) {
    return (long)Ci * N * (H + 2L * pad) * (W + 2L * pad) + kd_cd_slack(stride);
}

size_t kd_conv_direct_scratch(int Ci, int Co, int G, int N, int H, int W, int K, int stride, int pad,
                              int Ho, int Wo) {
    long taps = (long)Co * (Ci / G) * K * K;
    long fwd = kd_cd_xp_floats(Ci, N, H, W, pad, stride);
    long bwdW = fwd + (long)kd_cd_blocks(N) * taps + kd_cd_dyr_floats(Co, N, Ho, Wo);
    long bwdX;
    if (stride == 1) {
        int q = K - 1 - pad;
        bwdX = (long)Co * N * (Ho + 2L * q) * (Wo + 2L * q) + kd_cd_slack(1) + taps;
    } else {
        bwdX = (long)G * N * kd_cd_scatter_item_floats(Ci / G, H, W, pad) + kd_cd_dyr_floats(Co, N, Ho, Wo);
    }
    long m = fwd > bwdW ? fwd : bwdW;
    if (bwdX > m) m = bwdX;
    return (size_t)m;
}

void kd_conv_direct_forward(const float *x, const float *w, float *y, float *scratch,
                            int Ci, int Co, int G, int N, int H, int W, int K, int stride, int pad,
                            int Ho, int Wo) {
    const int Hp = H + 2 * pad, Wp = W + 2 * pad;
    kd_cd_pad(x, scratch, (long)Ci * N, H, W, pad, pad, Hp, Wp, kd_cd_slack(stride));
    kd_cd_tile_args a = { scratch, w, y, Ci, Co, G, N, Hp, Wp, K, stride, Ho, Wo, 0 };
    kd_cd_tile_run(&a);
}

// ---- backward input, stride 2: scatter into a zero-padded dxp per (g, n) -------------------------
// dxp for item (g, n) is Cig planes of Hp x Wp plus slack, owned by that item alone (the vector
// read-modify-writes may touch one float past a row end; with per-item slack no other item's
// plane is ever touched).
typedef struct {
    const float *dy; const float *w; float *dx; float *dxp;
    int Ci, Co, G, N, H, W, K, s, pad, Ho, Wo;
} kd_cd_scatter_args;

static long kd_cd_scatter_item_floats(int Cig, int H, int W, int pad) {
    return (long)Cig * (H + 2L * pad) * (W + 2L * pad) + 64;
}

// Stride 2: taps kx and kx+1 of one output column land on adjacent dxp columns, so for each pair
// the two products are interleaved into 16 contiguous floats. OB output channels are summed
// before each read-modify-write. dy is read from dyr (rows rounded up to 8 with zero lanes): the
// last chunk of a row adds zeros past the row end (inside this item's own planes or slack).
KD_CD_INLINE void kd_cd_scatter_chunk(float *p, const kd_v8 *dv, const kd_v8 *we, const kd_v8 *wf, int OB) {
    kd_v8 e = kd_splat(0.f), f = kd_splat(0.f);
    for (int o = 0; o < OB; o++) { e += we[o] * dv[o]; f += wf[o] * dv[o]; }
    kd_v8 lo = __builtin_shufflevector(e, f, 0, 8, 1, 9, 2, 10, 3, 11);
    kd_v8 hi = __builtin_shufflevector(e, f, 4, 12, 5, 13, 6, 14, 7, 15);
    kd_st(p, kd_ld(p) + lo);
    kd_st(p + 8, kd_ld(p + 8) + hi);
}

KD_CD_INLINE void kd_cd_scatter_item(const kd_cd_scatter_args *a, long it, int OB) {
    const int cig = a->Ci / a->G, cog = a->Co / a->G, K = a->K;
    const int Hp = a->H + 2 * a->pad, Wp = a->W + 2 * a->pad;
    const long pplane = (long)Hp * Wp, plane = (long)a->H * a->W;
    const long kk = (long)K * K;
    const int g = (int)(it / a->N), n = (int)(it % a->N);
    const int Wr = kd_cd_wr(a->Wo);
    const long dplane = (long)a->Ho * Wr;
    float *dxi = a->dxp + it * kd_cd_scatter_item_floats(cig, a->H, a->W, a->pad);
    for (int ci = 0; ci < cig; ci++) {
        const int c = g * cig + ci;
        float *d = dxi + ci * pplane;
        memset(d, 0, sizeof(float) * pplane);
        for (int ob = 0; ob < cog; ob += OB) {
            const float *dyo[4]; const float *wo[4];
            for (int o = 0; o < OB; o++) {
                const int oc = g * cog + ob + o;
                dyo[o] = a->dy + ((long)oc * a->N + n) * dplane;
                wo[o] = a->w + ((long)oc * cig + ci) * kk;
            }
            for (int oy = 0; oy < a->Ho; oy++) {
                for (int ky = 0; ky < K; ky++) {
                    float *row = d + (long)(oy * 2 + ky) * Wp;
                    // kx pairs outermost: successive read-modify-writes move on by 16 floats and
                    // never overlap a store still in flight (overlapping ones stall forwarding).
                    for (int kx = 0; kx < K; kx += 2) {
                        kd_v8 we[4], wf[4];
                        for (int o = 0; o < OB; o++) {
                            we[o] = kd_splat(wo[o][ky * K + kx]);
                            wf[o] = kd_splat(kx + 1 < K ? wo[o][ky * K + kx + 1] : 0.f);
                        }
                        for (int ox = 0; ox < a->Wo; ox += 8) {
                            kd_v8 dv[4];
                            for (int o = 0; o < OB; o++) dv[o] = kd_ld(dyo[o] + (long)oy * Wr + ox);
                            kd_cd_scatter_chunk(row + 2L * ox + kx, dv, we, wf, OB);
                        }
                    }
                }
            }
        }
        float *dxc = a->dx + ((long)c * a->N + n) * plane;
        for (int y = 0; y < a->H; y++) {
            const float *src = d + (long)(y + a->pad) * Wp + a->pad;
            float *dst = dxc + (long)y * a->W;
            for (int x = 0; x < a->W; x++) dst[x] += src[x];
        }
    }
}

KD_CD_INLINE void kd_cd_scatter_range_body(void *vctx, long i0, long i1) {
    const kd_cd_scatter_args *a = vctx;
    const int cog = a->Co / a->G;
    for (long it = i0; it < i1; it++) {
        if (cog % 4 == 0) kd_cd_scatter_item(a, it, 4);
        else kd_cd_scatter_item(a, it, 1);
    }
}

#if defined(__x86_64__)
__attribute__((target("avx2,fma")))
static void kd_cd_scatter_range_avx2(void *c, long b, long e) { kd_cd_scatter_range_body(c, b, e); }
#endif
static void kd_cd_scatter_range_base(void *c, long b, long e) { kd_cd_scatter_range_body(c, b, e); }

void kd_conv_direct_backward_input(const float *dy, const float *w, float *dx, float *scratch,
                                   int Ci, int Co, int G, int N, int H, int W, int K, int stride, int pad,
                                   int Ho, int Wo) {
    const int cig = Ci / G, cog = Co / G;
    if (stride == 1) {
        // dx (Ci, N, H, W) += conv of dy padded by q = K-1-p with the flipped, transposed kernel.
        const int q = K - 1 - pad, Hq = Ho + 2 * q, Wq = Wo + 2 * q;
        const long dypFloats = (long)Co * N * Hq * Wq + kd_cd_slack(1);
        float *dyp = scratch, *wf = scratch + dypFloats;     // wf (Ci, Cog, K, K)
        kd_cd_pad(dy, dyp, (long)Co * N, Ho, Wo, q, q, Hq, Wq, kd_cd_slack(1));
        const long kk = (long)K * K;
        for (int g = 0; g < G; g++)
            for (int ci = 0; ci < cig; ci++)
                for (int oc = 0; oc < cog; oc++) {
                    const float *src = w + ((long)(g * cog + oc) * cig + ci) * kk;
                    float *dst = wf + ((long)(g * cig + ci) * cog + oc) * kk;
                    for (long t = 0; t < kk; t++) dst[t] = src[kk - 1 - t];
                }
        kd_cd_tile_args a = { dyp, wf, dx, Co, Ci, G, N, Hq, Wq, K, 1, H, W, 1 };
        kd_cd_tile_run(&a);
        return;
    }
    float *dyr = scratch + (long)G * N * kd_cd_scatter_item_floats(cig, H, W, pad);
    kd_cd_pad(dy, dyr, (long)Co * N, Ho, Wo, 0, 0, Ho, kd_cd_wr(Wo), 0);
    kd_cd_scatter_args a = { dyr, w, dx, scratch, Ci, Co, G, N, H, W, K, stride, pad, Ho, Wo };
    kd_range_fn fn = kd_cd_scatter_range_base;
#if defined(__x86_64__)
    if (kd_cd_use_avx2()) fn = kd_cd_scatter_range_avx2;
#endif
    kd_parallel_for((long)G * N, 1, fn, &a);
}

// ---- backward weight ----------------------------------------------------------------------------
typedef struct {
    const float *xp; const float *dy; float *part;
    int Ci, Co, G, N, Hp, Wp, K, s, Ho, Wo, blocks;
} kd_cd_dw_args;

// For OB output channels and one ky: out[o][kx] += sum over the plane of dy_o[oy][ox] *
// xp[oy*S+ky][ox*S+kx] for all kx < K. OB*K vector accumulators (8 lanes each, summed in a fixed
// order at the end), one dy load per channel and one xp load per kx per 8 columns. dy is read
// from dyr (rows rounded up to 8, zero lanes): the last chunk of a row has zero dy lanes; its xp lanes read past the row end (padded buffer + slack), which
// contributes 0 * finite value (a non-finite activation would poison the step anyway).
KD_CD_INLINE void kd_cd_dw_chunk(kd_v8 lane[4][7], const kd_v8 *dv, const float *r, int OB, int K, int S) {
    for (int kx = 0; kx < K; kx++) {
        const kd_v8 xv = kd_ld_s(r + kx, S);
        for (int o = 0; o < OB; o++) lane[o][kx] += dv[o] * xv;
    }
}

KD_CD_INLINE void kd_cd_dw_rows(const kd_cd_dw_args *a, const float *const *dyo, const float *xc, int ky,
                                float *const *out, int OB, int K, int S) {
    kd_v8 lane[4][7];
    for (int o = 0; o < OB; o++) for (int kx = 0; kx < K; kx++) lane[o][kx] = kd_splat(0.f);
    const int Wr = kd_cd_wr(a->Wo);
    for (int oy = 0; oy < a->Ho; oy++) {
        const float *row = xc + (long)(oy * S + ky) * a->Wp;
        const long drow = (long)oy * Wr;
        for (int ox = 0; ox < a->Wo; ox += 8) {
            kd_v8 dv[4];
            for (int o = 0; o < OB; o++) dv[o] = kd_ld(dyo[o] + drow + ox);
            kd_cd_dw_chunk(lane, dv, row + (long)ox * S, OB, K, S);
        }
    }
    for (int o = 0; o < OB; o++)
        for (int kx = 0; kx < K; kx++) out[o][ky * K + kx] += kd_hsum(lane[o][kx]);
}

KD_CD_INLINE void kd_cd_dw_item(const kd_cd_dw_args *a, long item, int OB, int KC, int S) {
    const int g = (int)(item / a->blocks), b = (int)(item % a->blocks);
    const int cig = a->Ci / a->G, cog = a->Co / a->G, K = KC;
    const long taps = (long)a->Co * cig * K * K;
    const int n0 = (int)((long)a->N * b / a->blocks), n1 = (int)((long)a->N * (b + 1) / a->blocks);
    const long pplane = (long)a->Hp * a->Wp, dplane = (long)a->Ho * kd_cd_wr(a->Wo);
    float *part = a->part + b * taps + (long)g * cog * cig * K * K;   // this group's taps, block b
    memset(part, 0, sizeof(float) * (size_t)cog * cig * K * K);
    for (int n = n0; n < n1; n++)
        for (int ob = 0; ob < cog; ob += OB) {
            const float *dyo[4];
            for (int o = 0; o < OB; o++) dyo[o] = a->dy + ((long)(g * cog + ob + o) * a->N + n) * dplane;
            for (int ci = 0; ci < cig; ci++) {
                const float *xc = a->xp + ((long)(g * cig + ci) * a->N + n) * pplane;
                float *out[4];
                for (int o = 0; o < OB; o++) out[o] = part + ((long)(ob + o) * cig + ci) * K * K;
                for (int ky = 0; ky < K; ky++) kd_cd_dw_rows(a, dyo, xc, ky, out, OB, K, S);
            }
        }
}

// K is made a constant (1..7) so the accumulators live in registers; 4 output channels share the
// xp loads when K <= 3 (4*3 = 12 accumulators), else 1.
#define KD_CD_DW_K(OB, S) switch (a->K) {                                     \
    case 1: kd_cd_dw_item(a, it, OB, 1, S); break;                             \
    case 2: kd_cd_dw_item(a, it, OB, 2, S); break;                             \
    case 3: kd_cd_dw_item(a, it, OB, 3, S); break;                             \
    case 4: kd_cd_dw_item(a, it, 1, 4, S); break;                              \
    case 5: kd_cd_dw_item(a, it, 1, 5, S); break;                              \
    case 6: kd_cd_dw_item(a, it, 1, 6, S); break;                              \
    default: kd_cd_dw_item(a, it, 1, 7, S); break; }

KD_CD_INLINE void kd_cd_dw_range_body(void *vctx, long i0, long i1) {
    const kd_cd_dw_args *a = vctx;
    const int cog = a->Co / a->G;
    for (long it = i0; it < i1; it++) {
        if (cog % 4 == 0) { if (a->s == 1) { KD_CD_DW_K(4, 1) } else { KD_CD_DW_K(4, 2) } }
        else { if (a->s == 1) { KD_CD_DW_K(1, 1) } else { KD_CD_DW_K(1, 2) } }
    }
}

#if defined(__x86_64__)
__attribute__((target("avx2,fma")))
static void kd_cd_dw_range_avx2(void *c, long b, long e) { kd_cd_dw_range_body(c, b, e); }
#endif
static void kd_cd_dw_range_base(void *c, long b, long e) { kd_cd_dw_range_body(c, b, e); }

void kd_conv_direct_backward_weight(const float *x, const float *dy, float *dw, float *scratch,
                                    int Ci, int Co, int G, int N, int H, int W, int K, int stride, int pad,
                                    int Ho, int Wo) {
    const int Hp = H + 2 * pad, Wp = W + 2 * pad;
    const long xpFloats = kd_cd_xp_floats(Ci, N, H, W, pad, stride);
    kd_cd_pad(x, scratch, (long)Ci * N, H, W, pad, pad, Hp, Wp, kd_cd_slack(stride));
    const int blocks = kd_cd_blocks(N);
    const long taps = (long)Co * (Ci / G) * K * K;
    float *dyr = scratch + xpFloats + blocks * taps;
    kd_cd_pad(dy, dyr, (long)Co * N, Ho, Wo, 0, 0, Ho, kd_cd_wr(Wo), 0);
    kd_cd_dw_args a = { scratch, dyr, scratch + xpFloats, Ci, Co, G, N, Hp, Wp, K, stride, Ho, Wo, blocks };
    kd_range_fn fn = kd_cd_dw_range_base;
#if defined(__x86_64__)
    if (kd_cd_use_avx2()) fn = kd_cd_dw_range_avx2;
#endif
    kd_parallel_for((long)G * blocks, 1, fn, &a);
    // dw += partials in block order (fixed, independent of the thread count).
    for (int b = 0; b < blocks; b++) {
        const float *p = a.part + b * taps;
        for (long t = 0; t < taps; t++) dw[t] += p[t];
    }
}
