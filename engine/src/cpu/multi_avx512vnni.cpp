// Small-batch matmul kernels (2..16 activation rows, e.g. a speculative
// verification pass) for the AVX512-VNNI path: each weight row is read once and
// dotted with every activation row while it is in L1. Lanes are tokens: a weight
// dword (4 unsigned bytes u = q + B) is broadcast and one vpdpbusd per 4 columns
// advances all tokens, so no horizontal sums are needed; the float steps are
// vec_dot.h's canonical chains per token lane (bit-identical to the decode kernels).
// Compiled with -mavx512f -mavx512bw -mavx512vl -mavx512vnni; matmul.cpp calls it
// only when the CPU has them. NOTE: anonymous namespace, no inline library templates.
#include "cpu/vec_dot.h"
#include "quants.h"
#include "cpu/avx2_helpers.h"

#include <immintrin.h>

#include <atomic>
#include <cstring>
#include <type_traits>

namespace gb::cpu {

namespace {

// V int32 / float lanes (8: ymm, 16: zmm), one per token.
template <int V> struct Lanes;
template <> struct Lanes<8> {
    using I = __m256i;
    using F = __m256;
    static GB_AVX2_INLINE I load(const void * p) { return _mm256_load_si256(static_cast<const __m256i *>(p)); }
    static GB_AVX2_INLINE F loadf(const void * p) { return _mm256_load_ps(static_cast<const float *>(p)); }
    static GB_AVX2_INLINE I bcast(const uint8_t * p) {
        int32_t v;
        std::memcpy(&v, p, 4);
        return _mm256_set1_epi32(v);
    }
    // J dwords at p in every group of J lanes
    template <int J> static GB_AVX2_INLINE I bcastj(const uint8_t * p) {
        if constexpr (J == 1) return bcast(p);
        else if constexpr (J == 2) {
            long long v;
            std::memcpy(&v, p, 8);
            return _mm256_set1_epi64x(v);
        } else {
            static_assert(J == 4);
            return _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i *>(p)));
        }
    }
    // lane J*t = the sum of lanes J*t .. J*t+J-1 (other lanes: partial sums)
    template <int J> static GB_AVX2_INLINE I reduce(I v) {
        if constexpr (J == 1) return v;
        v = _mm256_add_epi32(v, _mm256_srli_epi64(v, 32));
        if constexpr (J == 4) v = _mm256_add_epi32(v, _mm256_bsrli_epi128(v, 8));
        return v;
    }
    static GB_AVX2_INLINE I dp(I acc, I u, I s) { return _mm256_dpbusd_epi32(acc, u, s); }
    static GB_AVX2_INLINE I dpw(I acc, I a, I b) { return _mm256_dpwssd_epi32(acc, a, b); }
    static GB_AVX2_INLINE I add(I a, I b) { return _mm256_add_epi32(a, b); }
    static GB_AVX2_INLINE I sub(I a, I b) { return _mm256_sub_epi32(a, b); }
    static GB_AVX2_INLINE I mul(I a, int32_t s) { return _mm256_mullo_epi32(a, _mm256_set1_epi32(s)); }
    static GB_AVX2_INLINE I slli(I a, int s) { return _mm256_slli_epi32(a, s); }
    static GB_AVX2_INLINE I zero() { return _mm256_setzero_si256(); }
    static GB_AVX2_INLINE I set1(int32_t v) { return _mm256_set1_epi32(v); }
    static GB_AVX2_INLINE F zerof() { return _mm256_setzero_ps(); }
    static GB_AVX2_INLINE F cvt(I a) { return _mm256_cvtepi32_ps(a); }
    static GB_AVX2_INLINE F mulf(F a, float s) { return _mm256_mul_ps(a, _mm256_set1_ps(s)); }
    static GB_AVX2_INLINE F fma(F a, F b, F c) { return _mm256_fmadd_ps(a, b, c); }
    static GB_AVX2_INLINE F fnma(F a, F b, F c) { return _mm256_fnmadd_ps(a, b, c); }
    static GB_AVX2_INLINE void storef(float * p, F v) { _mm256_store_ps(p, v); }
};
template <> struct Lanes<16> {
    using I = __m512i;
    using F = __m512;
    static GB_AVX2_INLINE I load(const void * p) { return _mm512_load_si512(p); }
    static GB_AVX2_INLINE F loadf(const void * p) { return _mm512_load_ps(p); }
    static GB_AVX2_INLINE I bcast(const uint8_t * p) {
        int32_t v;
        std::memcpy(&v, p, 4);
        return _mm512_set1_epi32(v);
    }
    template <int J> static GB_AVX2_INLINE I bcastj(const uint8_t * p) {
        static_assert(J == 1);
        return bcast(p);
    }
    template <int J> static GB_AVX2_INLINE I reduce(I v) {
        static_assert(J == 1);
        return v;
    }
    static GB_AVX2_INLINE I dp(I acc, I u, I s) { return _mm512_dpbusd_epi32(acc, u, s); }
    static GB_AVX2_INLINE I dpw(I acc, I a, I b) { return _mm512_dpwssd_epi32(acc, a, b); }
    static GB_AVX2_INLINE I add(I a, I b) { return _mm512_add_epi32(a, b); }
    static GB_AVX2_INLINE I sub(I a, I b) { return _mm512_sub_epi32(a, b); }
    static GB_AVX2_INLINE I mul(I a, int32_t s) { return _mm512_mullo_epi32(a, _mm512_set1_epi32(s)); }
    static GB_AVX2_INLINE I slli(I a, int s) { return _mm512_slli_epi32(a, static_cast<unsigned>(s)); }
    static GB_AVX2_INLINE I zero() { return _mm512_setzero_si512(); }
    static GB_AVX2_INLINE I set1(int32_t v) { return _mm512_set1_epi32(v); }
    static GB_AVX2_INLINE F zerof() { return _mm512_setzero_ps(); }
    static GB_AVX2_INLINE F cvt(I a) { return _mm512_cvtepi32_ps(a); }
    static GB_AVX2_INLINE F mulf(F a, float s) { return _mm512_mul_ps(a, _mm512_set1_ps(s)); }
    static GB_AVX2_INLINE F fma(F a, F b, F c) { return _mm512_fmadd_ps(a, b, c); }
    static GB_AVX2_INLINE F fnma(F a, F b, F c) { return _mm512_fnmadd_ps(a, b, c); }
    static GB_AVX2_INLINE void storef(float * p, F v) { _mm512_store_ps(p, v); }
};

std::atomic<bool> g_pipelined{true};  // set_small_batch_pipelining

constexpr int k_rows = 4;          // weight rows in flight
constexpr int k_pf_groups = 2;     // software prefetch: the row group this many groups ahead
constexpr int64_t k_chunk_blocks = 32;  // 32-blocks decoded at a time (4 rows x 1 KiB)

// Vector shape for nt tokens: V lanes, J consecutive dwords of the activations
// per token (lanes J*t .. J*t+J-1; a broadcast of J weight dwords feeds them), so
// fewer tokens take fewer vpdpbusd per weight block: 8/J per 32 columns.
struct Shape {
    int V, J;
};
GB_AVX2_INLINE Shape shape_for(int nt) { return nt <= 2 ? Shape{8, 4} : nt <= 4 ? Shape{8, 2} : nt <= 8 ? Shape{8, 1} : Shape{16, 1}; }

// ---- 32-element blocks: Q4_0 / Q5_0 / Q8_0 x Q8_0 -----------------------------
// Prepared activations, per block b (V lanes each, 64-byte aligned): X[e],
// e < 8/J: lane J*t + j = dword J*e + j of token t's qs; NB: lane J*t =
// -B * sum(qs_t); DX: lane J*t = float(d_t). All other lanes are 0.
size_t prep_bytes_32(int64_t n_cols, int nt) {
    const Shape sh = shape_for(nt);
    return size_t(n_cols / 32) * size_t(8 / sh.J + 2) * size_t(sh.V) * 4;
}

void prep_32(const uint8_t * act, size_t stride, int nt, int64_t n_cols, int bias, void * dst) {
    const Shape sh = shape_for(nt);
    const int V = sh.V, J = sh.J, NX = 8 / J;
    const int64_t nb = n_cols / 32;
    int32_t * o = static_cast<int32_t *>(dst);
    std::memset(o, 0, prep_bytes_32(n_cols, nt));
    for (int t = 0; t < nt; ++t) {
        const block_q8_0 * xb = reinterpret_cast<const block_q8_0 *>(act + size_t(t) * stride);
        for (int64_t b = 0; b < nb; ++b) {
            int32_t * ob = o + b * (NX + 2) * V;
            int32_t s = 0;
            for (int k = 0; k < 32; ++k) s += xb[b].qs[k];
            for (int c = 0; c < 8; ++c) std::memcpy(&ob[(c / J) * V + J * t + c % J], xb[b].qs + 4 * c, 4);
            ob[NX * V + J * t] = -bias * s;
            const float d = h2f(xb[b].d);
            std::memcpy(&ob[(NX + 1) * V + J * t], &d, 4);
        }
    }
}

// u = q + B as 32 bytes
GB_AVX2_INLINE __m256i dec_u_q4_0(const uint8_t * b) { return nibbles32(reinterpret_cast<const block_q4_0 *>(b)->qs); }
GB_AVX2_INLINE __m256i dec_u_q5_0(const uint8_t * b) {
    const block_q5_0 * q = reinterpret_cast<const block_q5_0 *>(b);
    uint32_t hb;
    std::memcpy(&hb, q->qh, 4);
    const __m256i nib = nibbles32(q->qs);
    return _mm256_mask_add_epi8(nib, static_cast<__mmask32>(hb), nib, _mm256_set1_epi8(16));
}
GB_AVX2_INLINE __m256i dec_u_q8_0(const uint8_t * b) {
    const block_q8_0 * q = reinterpret_cast<const block_q8_0 *>(b);
    return _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i *>(q->qs)), _mm256_set1_epi8(static_cast<char>(0x80)));
}

// R rows starting at w (row_bytes apart) x the prepared tokens; out[t * ldo + i] for i < R, t < nt.
template <int V, int J, int R, size_t BlockBytes, __m256i (*Dec)(const uint8_t *)>
GB_AVX2_INLINE void rows_32(int64_t nb, const uint8_t * w, size_t rb, const int32_t * px, int nt, float * out, size_t ldo) {
    using L = Lanes<V>;
    alignas(64) uint8_t wq[R][k_chunk_blocks * 32];
    alignas(64) float dw[R][k_chunk_blocks];
    typename L::F acc[R];
    for (int i = 0; i < R; ++i) acc[i] = L::zerof();
    const char * pf = reinterpret_cast<const char *>(w) + k_pf_groups * k_rows * rb;
    for (int64_t b0 = 0; b0 < nb; b0 += k_chunk_blocks) {
        const int64_t nbc = nb - b0 < k_chunk_blocks ? nb - b0 : k_chunk_blocks;
        for (int i = 0; i < R; ++i) {
            const uint8_t * row = w + i * rb + b0 * BlockBytes;
            for (int64_t b = 0; b < nbc; ++b) {
                _mm_prefetch(pf + i * rb + (b0 + b) * BlockBytes, _MM_HINT_T0);
                _mm256_store_si256(reinterpret_cast<__m256i *>(wq[i] + 32 * b), Dec(row + b * BlockBytes));
                uint16_t d;
                std::memcpy(&d, row + b * BlockBytes, 2);
                dw[i][b] = h2f(d);
            }
        }
        for (int64_t b = 0; b < nbc; ++b) {
            constexpr int NX = 8 / J;
            const int32_t * pb = px + (b0 + b) * (NX + 2) * V;
            typename L::I xc[NX];
            for (int e = 0; e < NX; ++e) xc[e] = L::load(pb + e * V);
            const typename L::I nbias = L::load(pb + NX * V);
            const typename L::F dx = L::loadf(pb + (NX + 1) * V);
            for (int i = 0; i < R; ++i) {
                const uint8_t * u = wq[i] + 32 * b;
                typename L::I s0 = nbias, s1 = L::zero();
                for (int e = 0; e < NX; e += 2) {
                    s0 = L::dp(s0, L::template bcastj<J>(u + 4 * J * e), xc[e]);
                    if (e + 1 < NX) s1 = L::dp(s1, L::template bcastj<J>(u + 4 * J * (e + 1)), xc[e + 1]);
                }
                // lane J*t: acc = fmaf(float(isum_b), d_w * d_x, acc)
                acc[i] = L::fma(L::cvt(L::template reduce<J>(L::add(s0, s1))), L::mulf(dx, dw[i][b]), acc[i]);
            }
        }
    }
    alignas(64) float res[V];
    for (int i = 0; i < R; ++i) {
        L::storef(res, acc[i]);
        for (int t = 0; t < nt; ++t) out[size_t(t) * ldo + i] = res[J * t];
    }
}

// Decode of block b of the k_rows rows at w into wq / dw (u = q + B, d_w as
// float), with a prefetch of the same block of the rows k_pf_groups groups on.
template <size_t BlockBytes, __m256i (*Dec)(const uint8_t *)>
GB_AVX2_INLINE void decode_block_32(const uint8_t * w, size_t rb, int64_t b, uint8_t (*wq)[k_chunk_blocks * 32], float (*dw)[k_chunk_blocks]) {
    const char * pf = reinterpret_cast<const char *>(w) + k_pf_groups * k_rows * rb + b * BlockBytes;
    for (int i = 0; i < k_rows; ++i) {
        const uint8_t * blk = w + i * rb + b * BlockBytes;
        _mm_prefetch(pf + i * rb, _MM_HINT_T0);
        _mm256_store_si256(reinterpret_cast<__m256i *>(wq[i] + 32 * b), Dec(blk));
        uint16_t d;
        std::memcpy(&d, blk, 2);
        dw[i][b] = h2f(d);
    }
}

// Whole groups of k_rows rows, software-pipelined: while block b of group g is
// dotted with the tokens, block b of group g + 1 is decoded into the other
// buffer, so its weight loads overlap the vpdpbusd work instead of stalling
// a separate decode phase (rows_32 decodes first, then computes). Rows of at
// most k_chunk_blocks blocks; the same float steps per token lane as rows_32.
template <int V, int J, size_t BlockBytes, __m256i (*Dec)(const uint8_t *)>
void groups_32_pipelined(int64_t nb, const uint8_t * w, size_t rb, int64_t n_groups, const int32_t * px, int nt, float * out, size_t ldo) {
    using L = Lanes<V>;
    constexpr int R = k_rows, NX = 8 / J;
    alignas(64) uint8_t wq[2][R][k_chunk_blocks * 32];
    alignas(64) float dw[2][R][k_chunk_blocks];
    for (int64_t b = 0; b < nb; ++b) decode_block_32<BlockBytes, Dec>(w, rb, b, wq[0], dw[0]);
    for (int64_t g = 0; g < n_groups; ++g) {
        const int cur = int(g & 1);
        const bool has_next = g + 1 < n_groups;
        const uint8_t * wn = w + (g + 1) * R * rb;
        typename L::F acc[R];
        for (int i = 0; i < R; ++i) acc[i] = L::zerof();
        for (int64_t b = 0; b < nb; ++b) {
            if (has_next) decode_block_32<BlockBytes, Dec>(wn, rb, b, wq[cur ^ 1], dw[cur ^ 1]);
            const int32_t * pb = px + b * (NX + 2) * V;
            typename L::I xc[NX];
            for (int e = 0; e < NX; ++e) xc[e] = L::load(pb + e * V);
            const typename L::I nbias = L::load(pb + NX * V);
            const typename L::F dx = L::loadf(pb + (NX + 1) * V);
            for (int i = 0; i < R; ++i) {
                const uint8_t * u = wq[cur][i] + 32 * b;
                typename L::I s0 = nbias, s1 = L::zero();
                for (int e = 0; e < NX; e += 2) {
                    s0 = L::dp(s0, L::template bcastj<J>(u + 4 * J * e), xc[e]);
                    if (e + 1 < NX) s1 = L::dp(s1, L::template bcastj<J>(u + 4 * J * (e + 1)), xc[e + 1]);
                }
                // lane J*t: acc = fmaf(float(isum_b), d_w * d_x, acc)
                acc[i] = L::fma(L::cvt(L::template reduce<J>(L::add(s0, s1))), L::mulf(dx, dw[cur][i][b]), acc[i]);
            }
        }
        alignas(64) float res[V];
        float * o = out + g * R;
        for (int i = 0; i < R; ++i) {
            L::storef(res, acc[i]);
            for (int t = 0; t < nt; ++t) o[size_t(t) * ldo + i] = res[J * t];
        }
    }
}

template <int V, int J, size_t BlockBytes, __m256i (*Dec)(const uint8_t *)>
void run_32v(int64_t n, const uint8_t * w, size_t rb, int64_t n_rows, const int32_t * px, int nt, float * out, size_t ldo) {
    int64_t r = 0;
    if (g_pipelined.load(std::memory_order_relaxed) && n / 32 <= k_chunk_blocks && n_rows >= 2 * k_rows) {
        const int64_t n_groups = n_rows / k_rows;
        groups_32_pipelined<V, J, BlockBytes, Dec>(n / 32, w, rb, n_groups, px, nt, out, ldo);
        r = n_groups * k_rows;
    }
    for (; r + k_rows <= n_rows; r += k_rows) rows_32<V, J, k_rows, BlockBytes, Dec>(n / 32, w + r * rb, rb, px, nt, out + r, ldo);
    for (; r < n_rows; ++r) rows_32<V, J, 1, BlockBytes, Dec>(n / 32, w + r * rb, rb, px, nt, out + r, ldo);
}

template <size_t BlockBytes, __m256i (*Dec)(const uint8_t *)>
void run_32(int64_t n, const void * w, size_t rb, int64_t n_rows, const void * prep, int nt, float * out, size_t ldo) {
    const uint8_t * wb = static_cast<const uint8_t *>(w);
    const int32_t * px = static_cast<const int32_t *>(prep);
    const Shape sh = shape_for(nt);
    if (sh.J == 4) run_32v<8, 4, BlockBytes, Dec>(n, wb, rb, n_rows, px, nt, out, ldo);
    else if (sh.J == 2) run_32v<8, 2, BlockBytes, Dec>(n, wb, rb, n_rows, px, nt, out, ldo);
    else if (sh.V == 8) run_32v<8, 1, BlockBytes, Dec>(n, wb, rb, n_rows, px, nt, out, ldo);
    else run_32v<16, 1, BlockBytes, Dec>(n, wb, rb, n_rows, px, nt, out, ldo);
}

void prep_q4_0(const uint8_t * act, size_t stride, int nt, int64_t n_cols, void * dst) { prep_32(act, stride, nt, n_cols, 8, dst); }
void prep_q5_0(const uint8_t * act, size_t stride, int nt, int64_t n_cols, void * dst) { prep_32(act, stride, nt, n_cols, 16, dst); }
void prep_q8_0(const uint8_t * act, size_t stride, int nt, int64_t n_cols, void * dst) { prep_32(act, stride, nt, n_cols, 128, dst); }

// ---- k-quants x Q8_K: Q4_K / Q5_K / Q6_K ---------------------------------------
// Prepared activations, per superblock b (V lanes each): X[e], e < 64/J: lane
// J*t + j = dword J*e + j of token t's qs; then NS pair vectors (int16 pairs,
// lane J*t): Q4_K/Q5_K (NS = 4): (bsum32_2i, bsum32_2i+1), bsum32_g = bsums[2g] +
// bsums[2g+1]; Q6_K (NS = 8): (bsums[2i], bsums[2i+1]); then DX: lane J*t = d_t.
// Integer superblock sums are exact (so equal to the decode kernels' whatever
// the order); the float steps are vec_dot.h's, per token lane.
template <int NS>
size_t prep_bytes_k(int64_t n_cols, int nt) {
    const Shape sh = shape_for(nt);
    return size_t(n_cols / 256) * size_t(64 / sh.J + NS + 1) * size_t(sh.V) * 4;
}

template <int NS>
void prep_k(const uint8_t * act, size_t stride, int nt, int64_t n_cols, void * dst) {
    const Shape sh = shape_for(nt);
    const int V = sh.V, J = sh.J, NX = 64 / J;
    const int64_t nb = n_cols / 256;
    int32_t * o = static_cast<int32_t *>(dst);
    std::memset(o, 0, prep_bytes_k<NS>(n_cols, nt));
    for (int t = 0; t < nt; ++t) {
        const block_q8_K * xb = reinterpret_cast<const block_q8_K *>(act + size_t(t) * stride);
        for (int64_t b = 0; b < nb; ++b) {
            int32_t * ob = o + b * (NX + NS + 1) * V;
            for (int c = 0; c < 64; ++c) std::memcpy(&ob[(c / J) * V + J * t + c % J], xb[b].qs + 4 * c, 4);
            for (int i = 0; i < NS; ++i) {
                int16_t pair[2];
                if constexpr (NS == 4) {
                    pair[0] = int16_t(xb[b].bsums[4 * i] + xb[b].bsums[4 * i + 1]);
                    pair[1] = int16_t(xb[b].bsums[4 * i + 2] + xb[b].bsums[4 * i + 3]);
                } else {
                    pair[0] = xb[b].bsums[2 * i];
                    pair[1] = xb[b].bsums[2 * i + 1];
                }
                std::memcpy(&ob[(NX + i) * V + J * t], pair, 4);
            }
            std::memcpy(&ob[(NX + NS) * V + J * t], &xb[b].d, 4);
        }
    }
}

GB_AVX2_INLINE void prefetch_block(const char * p, size_t bytes) {
    for (size_t k = 0; k < bytes; k += 64) _mm_prefetch(p + k, _MM_HINT_T0);
    _mm_prefetch(p + bytes - 1, _MM_HINT_T0);
}

// One row's superblock, decoded: u bytes, integer scales, d / dmin as floats.
struct SbQ45 {
    alignas(64) uint8_t wq[256];
    alignas(32) int32_t sc[8], mp[4];  // scales; mins as int16 pairs (m_2i, m_2i+1)
    float dw, dm;
};
struct SbQ6 {
    alignas(64) uint8_t wq[256];  // u = q + 32
    alignas(32) int32_t sc[16], sp[8];  // scales; scales as int16 pairs
    float dw;
};

template <bool Five>
GB_AVX2_INLINE void decode_sb_q45(const uint8_t * blk, SbQ45 & o) {
    using Block = std::conditional_t<Five, block_q5_K, block_q4_K>;
    const Block & bw = *reinterpret_cast<const Block *>(blk);
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    const __m256i m1 = _mm256_set1_epi8(1);
    __m256i hbits = _mm256_setzero_si256();
    if constexpr (Five) hbits = load256(bw.qh);
    for (int j = 0; j < 4; ++j) {
        const __m256i bits = load256(bw.qs + 32 * j);
        __m256i ql = _mm256_and_si256(bits, m4);
        __m256i qh = _mm256_and_si256(_mm256_srli_epi16(bits, 4), m4);
        if constexpr (Five) {
            ql = _mm256_or_si256(ql, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hbits, 2 * j), m1), 4));
            qh = _mm256_or_si256(qh, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hbits, 2 * j + 1), m1), 4));
        }
        _mm256_store_si256(reinterpret_cast<__m256i *>(o.wq + 64 * j), ql);
        _mm256_store_si256(reinterpret_cast<__m256i *>(o.wq + 64 * j + 32), qh);
    }
    // 8 scales, 8 mins (6-bit), unpacked as in the decode kernels
    const __m256i smw = q4k_mins_scales(bw.scales);  // int16: 0-7 scales, 8-15 mins
    alignas(32) int16_t sm[16];
    _mm256_store_si256(reinterpret_cast<__m256i *>(sm), smw);
    for (int g = 0; g < 8; ++g) o.sc[g] = sm[g];
    std::memcpy(o.mp, sm + 8, 16);
    o.dw = h2f(bw.d);
    o.dm = h2f(bw.dmin);
}

GB_AVX2_INLINE void decode_sb_q6(const uint8_t * blk, SbQ6 & o) {
    const block_q6_K & bw = *reinterpret_cast<const block_q6_K *>(blk);
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    const __m256i m2 = _mm256_set1_epi8(3);
    for (int h = 0; h < 2; ++h) {
        const __m256i l0 = load256(bw.ql + 64 * h);
        const __m256i l1 = load256(bw.ql + 64 * h + 32);
        const __m256i hb = load256(bw.qh + 32 * h);
        uint8_t * d = o.wq + 128 * h;
        _mm256_store_si256(reinterpret_cast<__m256i *>(d), _mm256_or_si256(_mm256_and_si256(l0, m4), _mm256_slli_epi16(_mm256_and_si256(hb, m2), 4)));
        _mm256_store_si256(reinterpret_cast<__m256i *>(d + 32),
                           _mm256_or_si256(_mm256_and_si256(l1, m4), _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 2), m2), 4)));
        _mm256_store_si256(reinterpret_cast<__m256i *>(d + 64),
                           _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4),
                                           _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 4), m2), 4)));
        _mm256_store_si256(reinterpret_cast<__m256i *>(d + 96),
                           _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
                                           _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 6), m2), 4)));
    }
    for (int g = 0; g < 16; ++g) o.sc[g] = bw.scales[g];
    for (int q = 0; q < 8; ++q) {
        const int16_t pair[2] = {int16_t(bw.scales[2 * q]), int16_t(bw.scales[2 * q + 1])};
        std::memcpy(&o.sp[q], pair, 4);
    }
    o.dw = h2f(bw.d);
}

// Kind: 4 = Q4_K, 5 = Q5_K, 6 = Q6_K
template <int Kind> using SbOf = std::conditional_t<Kind == 6, SbQ6, SbQ45>;
template <int Kind> constexpr size_t k_sb_bytes = Kind == 6 ? sizeof(block_q6_K) : Kind == 5 ? sizeof(block_q5_K) : sizeof(block_q4_K);

// superblock b of the row at row (rb bytes a row) into o, with a prefetch of the
// same superblock of the row k_pf_groups groups on
template <int Kind>
GB_AVX2_INLINE void decode_sb(const uint8_t * row, size_t rb, int64_t b, SbOf<Kind> & o) {
    constexpr size_t bytes = k_sb_bytes<Kind>;
    prefetch_block(reinterpret_cast<const char *>(row) + k_pf_groups * k_rows * rb + b * bytes, bytes);
    if constexpr (Kind == 6) decode_sb_q6(row + b * bytes, o);
    else decode_sb_q45<Kind == 5>(row + b * bytes, o);
}

// acc[i] += superblock b of rows s[0..R) x the prepared tokens (pb: its block)
// Q4_K / Q5_K: isum = sum_g sc_g * sum_g(u*q8), summs = sum_g m_g * bsum32_g;
//   acc = fmaf(float(isum), d_w * d_x, acc); acc = fmaf(-(dmin_w * d_x), float(summs), acc)
// Q6_K: u = q + 32 (6 bits); isum = sum_g sc_g * sum_g(u*q8) - 32 * sum_g sc_g * bsum16_g;
//   acc = fmaf(float(isum), d_w * d_x, acc)
template <int V, int J, int R, int Kind>
GB_AVX2_INLINE void compute_sb(const SbOf<Kind> * const * s, const int32_t * pb, typename Lanes<V>::F * acc) {
    using L = Lanes<V>;
    constexpr int NS = Kind == 6 ? 8 : 4, NX = 64 / J;
    constexpr int NG = 8 / J;  // X vectors per 32 columns
    typename L::I isum[R];
    for (int i = 0; i < R; ++i) isum[i] = L::zero();
    for (int g = 0; g < 8; ++g) {
        typename L::I xc[NG];
        for (int e = 0; e < NG; ++e) xc[e] = L::load(pb + (NG * g + e) * V);
        for (int i = 0; i < R; ++i) {
            const uint8_t * u = s[i]->wq + 32 * g;
            typename L::I s0 = L::zero(), s1 = L::zero();
            if constexpr (Kind == 6) {  // two groups of 16: the first half of the X vectors is group 2g
                for (int e = 0; e < NG / 2; ++e) {
                    s0 = L::dp(s0, L::template bcastj<J>(u + 4 * J * e), xc[e]);
                    s1 = L::dp(s1, L::template bcastj<J>(u + 16 + 4 * J * e), xc[NG / 2 + e]);
                }
                isum[i] = L::add(isum[i], L::add(L::mul(s0, s[i]->sc[2 * g]), L::mul(s1, s[i]->sc[2 * g + 1])));
            } else {
                for (int e = 0; e < NG; e += 2) {
                    s0 = L::dp(s0, L::template bcastj<J>(u + 4 * J * e), xc[e]);
                    if (e + 1 < NG) s1 = L::dp(s1, L::template bcastj<J>(u + 4 * J * (e + 1)), xc[e + 1]);
                }
                isum[i] = L::add(isum[i], L::mul(L::add(s0, s1), s[i]->sc[g]));
            }
        }
    }
    const typename L::F dx = L::loadf(pb + (NX + NS) * V);
    for (int i = 0; i < R; ++i) {
        if constexpr (Kind == 6) {
            typename L::I corr = L::zero();
            for (int q = 0; q < NS; ++q) corr = L::dpw(corr, L::bcast(reinterpret_cast<const uint8_t *>(&s[i]->sp[q])), L::load(pb + (NX + q) * V));
            const typename L::I is = L::sub(L::template reduce<J>(isum[i]), L::slli(corr, 5));
            acc[i] = L::fma(L::cvt(is), L::mulf(dx, s[i]->dw), acc[i]);
        } else {
            typename L::I summs = L::zero();
            for (int q = 0; q < NS; ++q) summs = L::dpw(summs, L::bcast(reinterpret_cast<const uint8_t *>(&s[i]->mp[q])), L::load(pb + (NX + q) * V));
            acc[i] = L::fma(L::cvt(L::template reduce<J>(isum[i])), L::mulf(dx, s[i]->dw), acc[i]);
            acc[i] = L::fnma(L::mulf(dx, s[i]->dm), L::cvt(summs), acc[i]);
        }
    }
}

template <int V, int J, int R>
GB_AVX2_INLINE void store_rows(const typename Lanes<V>::F * acc, int nt, float * out, size_t ldo) {
    alignas(64) float res[V];
    for (int i = 0; i < R; ++i) {
        Lanes<V>::storef(res, acc[i]);
        for (int t = 0; t < nt; ++t) out[size_t(t) * ldo + i] = res[J * t];
    }
}

// R rows starting at w, each superblock decoded right before it is dotted
template <int V, int J, int R, int Kind>
GB_AVX2_INLINE void rows_k(int64_t nb, const uint8_t * w, size_t rb, const int32_t * px, int nt, float * out, size_t ldo) {
    constexpr int NS = Kind == 6 ? 8 : 4, PV = 64 / J + NS + 1;
    SbOf<Kind> sb[R];
    const SbOf<Kind> * sp[R];
    for (int i = 0; i < R; ++i) sp[i] = &sb[i];
    typename Lanes<V>::F acc[R];
    for (int i = 0; i < R; ++i) acc[i] = Lanes<V>::zerof();
    for (int64_t b = 0; b < nb; ++b) {
        for (int i = 0; i < R; ++i) decode_sb<Kind>(w + i * rb, rb, b, sb[i]);
        compute_sb<V, J, R, Kind>(sp, px + b * PV * V, acc);
    }
    store_rows<V, J, R>(acc, nt, out, ldo);
}

// Whole groups of k_rows rows of at most k_pipe_sb superblocks, software-
// pipelined as groups_32_pipelined: superblock b of group g + 1 is decoded
// while superblock b of group g is dotted. Same float steps as rows_k.
constexpr int64_t k_pipe_sb = 8;
template <int V, int J, int Kind>
void groups_k_pipelined(int64_t nb, const uint8_t * w, size_t rb, int64_t n_groups, const int32_t * px, int nt, float * out, size_t ldo) {
    constexpr int R = k_rows, NS = Kind == 6 ? 8 : 4, PV = 64 / J + NS + 1;
    SbOf<Kind> buf[2][k_pipe_sb][R];
    for (int64_t b = 0; b < nb; ++b)
        for (int i = 0; i < R; ++i) decode_sb<Kind>(w + i * rb, rb, b, buf[0][b][i]);
    for (int64_t g = 0; g < n_groups; ++g) {
        const int cur = int(g & 1);
        const bool has_next = g + 1 < n_groups;
        const uint8_t * wn = w + (g + 1) * R * rb;
        typename Lanes<V>::F acc[R];
        for (int i = 0; i < R; ++i) acc[i] = Lanes<V>::zerof();
        for (int64_t b = 0; b < nb; ++b) {
            if (has_next)
                for (int i = 0; i < R; ++i) decode_sb<Kind>(wn + i * rb, rb, b, buf[cur ^ 1][b][i]);
            const SbOf<Kind> * sp[R];
            for (int i = 0; i < R; ++i) sp[i] = &buf[cur][b][i];
            compute_sb<V, J, R, Kind>(sp, px + b * PV * V, acc);
        }
        store_rows<V, J, R>(acc, nt, out + g * R, ldo);
    }
}

template <int V, int J, int Kind>
void run_kv(int64_t n, const uint8_t * w, size_t rb, int64_t n_rows, const int32_t * px, int nt, float * out, size_t ldo) {
    int64_t r = 0;
    if (g_pipelined.load(std::memory_order_relaxed) && n / 256 <= k_pipe_sb && n_rows >= 2 * k_rows) {
        const int64_t n_groups = n_rows / k_rows;
        groups_k_pipelined<V, J, Kind>(n / 256, w, rb, n_groups, px, nt, out, ldo);
        r = n_groups * k_rows;
    }
    for (; r + k_rows <= n_rows; r += k_rows) rows_k<V, J, k_rows, Kind>(n / 256, w + r * rb, rb, px, nt, out + r, ldo);
    for (; r < n_rows; ++r) rows_k<V, J, 1, Kind>(n / 256, w + r * rb, rb, px, nt, out + r, ldo);
}

template <int Kind>
void run_k(int64_t n, const void * w, size_t rb, int64_t n_rows, const void * prep, int nt, float * out, size_t ldo) {
    const uint8_t * wb = static_cast<const uint8_t *>(w);
    const int32_t * px = static_cast<const int32_t *>(prep);
    const Shape sh = shape_for(nt);
    if (sh.J == 4) run_kv<8, 4, Kind>(n, wb, rb, n_rows, px, nt, out, ldo);
    else if (sh.J == 2) run_kv<8, 2, Kind>(n, wb, rb, n_rows, px, nt, out, ldo);
    else if (sh.V == 8) run_kv<8, 1, Kind>(n, wb, rb, n_rows, px, nt, out, ldo);
    else run_kv<16, 1, Kind>(n, wb, rb, n_rows, px, nt, out, ldo);
}

}  // namespace

void set_small_batch_pipelining(bool on) { g_pipelined.store(on, std::memory_order_relaxed); }

bool avx512vnni_multi(TensorType t, MultiKernels * m) {
    switch (t) {
        case TensorType::Q4_0: *m = {prep_bytes_32, prep_q4_0, run_32<sizeof(block_q4_0), dec_u_q4_0>}; return true;
        case TensorType::Q5_0: *m = {prep_bytes_32, prep_q5_0, run_32<sizeof(block_q5_0), dec_u_q5_0>}; return true;
        case TensorType::Q8_0: *m = {prep_bytes_32, prep_q8_0, run_32<sizeof(block_q8_0), dec_u_q8_0>}; return true;
        case TensorType::Q4_K: *m = {prep_bytes_k<4>, prep_k<4>, run_k<4>}; return true;
        case TensorType::Q5_K: *m = {prep_bytes_k<4>, prep_k<4>, run_k<5>}; return true;
        case TensorType::Q6_K: *m = {prep_bytes_k<8>, prep_k<8>, run_k<6>}; return true;
        default: return false;
    }
}

}  // namespace gb::cpu
