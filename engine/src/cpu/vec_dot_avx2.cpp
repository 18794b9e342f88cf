// AVX2/FMA/F16C CPU kernels (this file alone is compiled with -mavx2 -mfma
// -mf16c; matmul.cpp calls it only when the CPU reports those features).
// Each kernel is a template over NC, the number of activation rows dotted with
// one weight row, so a decoded weight block is reused across NC tokens. Integer
// sums are reduced per block / superblock, then the float steps run per token
// in lanes of an xmm exactly as the canonical formulas in vec_dot.h say.
// NOTE: keep everything here in the anonymous namespace and use no inline
// library templates, so no AVX2 code can leak into other translation units.
#include "cpu/vec_dot.h"
#include "quants.h"
#include "cpu/avx2_helpers.h"

#include <immintrin.h>

#include <cstring>
#include <type_traits>

namespace gb::cpu {

namespace {

// Lane c < NC: the exact int32 sum of the 8 lanes of p[c] (NC = 1 or 4).
template <int NC>
GB_AVX2_INLINE __m128i hsum_lanes(const __m256i * p) {
    if constexpr (NC == 1) {
        return _mm_cvtsi32_si128(hsum_i32(p[0]));
    } else {
        static_assert(NC == 4);
        const __m256i h = _mm256_hadd_epi32(_mm256_hadd_epi32(p[0], p[1]), _mm256_hadd_epi32(p[2], p[3]));
        return _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
    }
}

// Same for 4-lane inputs.
template <int NC>
GB_AVX2_INLINE __m128i hsum_lanes(const __m128i * p) {
    if constexpr (NC == 1) {
        __m128i r = _mm_add_epi32(p[0], _mm_unpackhi_epi64(p[0], p[0]));
        return _mm_add_epi32(r, _mm_shuffle_epi32(r, 1));
    } else {
        static_assert(NC == 4);
        return _mm_hadd_epi32(_mm_hadd_epi32(p[0], p[1]), _mm_hadd_epi32(p[2], p[3]));
    }
}

// (f(0), .., f(NC - 1), 0, ..)
template <int NC, typename F>
GB_AVX2_INLINE __m128 token_lanes(F f) {
    if constexpr (NC == 1) return _mm_set_ss(f(0));
    else return _mm_setr_ps(f(0), f(1), f(2), f(3));
}

template <int NC>
GB_AVX2_INLINE void store_lanes(__m128 v, float * out) {
    if constexpr (NC == 1) out[0] = _mm_cvtss_f32(v);
    else _mm_storeu_ps(out, v);
}


// ---- 32-element block types ------------------------------------------------

// Q4_0, Q5_0, Q8_0 x Q8_0: signed weights; per block d_w*d_x * sum q_w*q_x.
// The sign trick: q_w*q_x = |q_w| * (q_x with the sign of q_w), for maddubs.
template <int NC, typename Decode, typename Block>
GB_AVX2_INLINE void dot_signed32(int64_t n, const Block * a, const void * x, size_t xs, float * out, Decode decode) {
    const int64_t nb = n / 32;
    // per token c (lane c): acc = fmaf(float(isum_b), d_w * d_x, acc), blocks in order
    __m128 acc = _mm_setzero_ps();
    for (int64_t ib = 0; ib < nb; ++ib) {
        const __m256i qw = decode(a[ib]);
        const __m256i aw = _mm256_sign_epi8(qw, qw);
        __m256i p[NC];
        for (int c = 0; c < NC; ++c) {
            const __m256i qx = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(act_row<block_q8_0>(x, xs, c)[ib].qs));
            p[c] = dot_us8(aw, _mm256_sign_epi8(qx, qw));
        }
        const __m128 dx = token_lanes<NC>([&](int c) { return h2f(act_row<block_q8_0>(x, xs, c)[ib].d); });
        const __m128 d = _mm_mul_ps(_mm_set1_ps(h2f(a[ib].d)), dx);
        acc = _mm_fmadd_ps(_mm_cvtepi32_ps(hsum_lanes<NC>(p)), d, acc);
    }
    store_lanes<NC>(acc, out);
}

// signed quants of one block as 32 bytes
GB_AVX2_INLINE __m256i decode_q4_0(const block_q4_0 & b) {
    return _mm256_sub_epi8(nibbles32(b.qs), _mm256_set1_epi8(8));
}

GB_AVX2_INLINE __m256i decode_q5_0(const block_q5_0 & b) {
    const __m256i hi = _mm256_andnot_si256(bits_to_bytes(b.qh), _mm256_set1_epi8(static_cast<char>(0xf0)));
    return _mm256_or_si256(nibbles32(b.qs), hi);
}

GB_AVX2_INLINE __m256i decode_q8_0(const block_q8_0 & b) {
    return _mm256_loadu_si256(reinterpret_cast<const __m256i *>(b.qs));
}

// Software prefetch for a decode matvec: a group of rows G bytes per block
// column wide (G = rows * block bytes) is fetched ahead in shares of G rounded up
// to cache lines, one share per block, so the group is in L1 when it is reached.
template <size_t G>
GB_AVX2_INLINE void prefetch_share(const char * group, int64_t ib) {
    constexpr size_t k_step = (G + 63) / 64 * 64;
    const char * p = group + static_cast<size_t>(ib) * k_step;
    for (size_t k = 0; k < k_step; k += 64) _mm_prefetch(p + k, _MM_HINT_T0);
}

// Decode: 4 weight rows x 1 token, lane r = row r (its own canonical chain).
template <typename Decode, typename Block>
GB_AVX2_INLINE void rows4_signed32(int64_t n, const void * w, size_t rb, const void * x, float * out, Decode decode) {
    const int64_t nb = n / 32;
    const Block * a[4];
    for (int r = 0; r < 4; ++r) a[r] = reinterpret_cast<const Block *>(static_cast<const uint8_t *>(w) + r * rb);
    const block_q8_0 * xb = static_cast<const block_q8_0 *>(x);
    // the 4-row group after next, a block column's share per block (decode streams from DRAM)
    const char * pf = static_cast<const char *>(w) + 8 * rb;
    __m128 acc = _mm_setzero_ps();
    for (int64_t ib = 0; ib < nb; ++ib) {
        prefetch_share<4 * sizeof(Block)>(pf, ib);
        const __m256i qx = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(xb[ib].qs));
        __m256i p[4];
        for (int r = 0; r < 4; ++r) {
            const __m256i qw = decode(a[r][ib]);
            p[r] = dot_us8(_mm256_sign_epi8(qw, qw), _mm256_sign_epi8(qx, qw));
        }
        const __m128 dw = _mm_cvtph_ps(_mm_setr_epi16(static_cast<short>(a[0][ib].d), static_cast<short>(a[1][ib].d),
                                                      static_cast<short>(a[2][ib].d), static_cast<short>(a[3][ib].d), 0, 0, 0, 0));
        const __m128 d = _mm_mul_ps(dw, _mm_set1_ps(h2f(xb[ib].d)));
        acc = _mm_fmadd_ps(_mm_cvtepi32_ps(hsum_lanes<4>(p)), d, acc);
    }
    _mm_storeu_ps(out, acc);
}

template <int NC>
void dot_q4_0(int64_t n, const void * w, const void * x, size_t xs, float * out) {
    dot_signed32<NC>(n, static_cast<const block_q4_0 *>(w), x, xs, out, decode_q4_0);
}

void rows4_q4_0(int64_t n, const void * w, size_t rb, const void * x, float * out) {
    rows4_signed32<decltype(&decode_q4_0), block_q4_0>(n, w, rb, x, out, &decode_q4_0);
}

template <int NC>
void dot_q5_0(int64_t n, const void * w, const void * x, size_t xs, float * out) {
    // q - 16 = nibble | (bit ? 0 : 0xf0) read as int8
    dot_signed32<NC>(n, static_cast<const block_q5_0 *>(w), x, xs, out, decode_q5_0);
}

void rows4_q5_0(int64_t n, const void * w, size_t rb, const void * x, float * out) {
    rows4_signed32<decltype(&decode_q5_0), block_q5_0>(n, w, rb, x, out, &decode_q5_0);
}

template <int NC>
void dot_q8_0(int64_t n, const void * w, const void * x, size_t xs, float * out) {
    dot_signed32<NC>(n, static_cast<const block_q8_0 *>(w), x, xs, out, decode_q8_0);
}

void rows4_q8_0(int64_t n, const void * w, size_t rb, const void * x, float * out) {
    rows4_signed32<decltype(&decode_q8_0), block_q8_0>(n, w, rb, x, out, &decode_q8_0);
}

// Q4_1, Q5_1 x Q8_1: unsigned weights; d_w*d_x * sum q_w*q_x + m_w * s_x.
template <int NC, typename Decode, typename Block>
GB_AVX2_INLINE void dot_unsigned32(int64_t n, const Block * a, const void * x, size_t xs, float * out, Decode decode) {
    const int64_t nb = n / 32;
    // acc = fmaf(float(isum_b), d_w * d_x, acc); acc = fmaf(m_w, s_x, acc)
    __m128 acc = _mm_setzero_ps();
    for (int64_t ib = 0; ib < nb; ++ib) {
        const __m256i qw = decode(a[ib]);
        __m256i p[NC];
        for (int c = 0; c < NC; ++c) {
            const __m256i qx = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(act_row<block_q8_1>(x, xs, c)[ib].qs));
            p[c] = dot_us8(qw, qx);
        }
        const __m128 dx = token_lanes<NC>([&](int c) { return h2f(act_row<block_q8_1>(x, xs, c)[ib].d); });
        const __m128 sx = token_lanes<NC>([&](int c) { return h2f(act_row<block_q8_1>(x, xs, c)[ib].s); });
        acc = _mm_fmadd_ps(_mm_cvtepi32_ps(hsum_lanes<NC>(p)), _mm_mul_ps(_mm_set1_ps(h2f(a[ib].d)), dx), acc);
        acc = _mm_fmadd_ps(_mm_set1_ps(h2f(a[ib].m)), sx, acc);
    }
    store_lanes<NC>(acc, out);
}

template <int NC>
void dot_q4_1(int64_t n, const void * w, const void * x, size_t xs, float * out) {
    dot_unsigned32<NC>(n, static_cast<const block_q4_1 *>(w), x, xs, out,
                       [](const block_q4_1 & b) { return nibbles32(b.qs); });
}

template <int NC>
void dot_q5_1(int64_t n, const void * w, const void * x, size_t xs, float * out) {
    dot_unsigned32<NC>(n, static_cast<const block_q5_1 *>(w), x, xs, out, [](const block_q5_1 & b) {
        return _mm256_or_si256(nibbles32(b.qs), _mm256_and_si256(bits_to_bytes(b.qh), _mm256_set1_epi8(0x10)));
    });
}

// ---- k-quants x Q8_K ---------------------------------------------------------

// Superblock float steps (vec_dot.h), lane c = token c:
// acc = fmaf(float(isum), d_w * d_x, acc) [; acc = fmaf(-(dmin_w * d_x), float(summs), acc)]
template <int NC>
GB_AVX2_INLINE __m128 k_step(__m128 acc, __m128i isum, float dw, const void * x, size_t xs, int64_t ib) {
    const __m128 dx = token_lanes<NC>([&](int c) { return act_row<block_q8_K>(x, xs, c)[ib].d; });
    return _mm_fmadd_ps(_mm_cvtepi32_ps(isum), _mm_mul_ps(_mm_set1_ps(dw), dx), acc);
}
template <int NC>
GB_AVX2_INLINE __m128 k_step_min(__m128 acc, __m128i isum, __m128i summs, float dw, float dmin, const void * x, size_t xs,
                                 int64_t ib) {
    const __m128 dx = token_lanes<NC>([&](int c) { return act_row<block_q8_K>(x, xs, c)[ib].d; });
    acc = _mm_fmadd_ps(_mm_cvtepi32_ps(isum), _mm_mul_ps(_mm_set1_ps(dw), dx), acc);
    return _mm_fnmadd_ps(_mm_mul_ps(_mm_set1_ps(dmin), dx), _mm_cvtepi32_ps(summs), acc);
}

// Q2_K: dot = d_x * (d * sum_g sc_g * sum(q*q8) - dmin * sum_g m_g * bsum_g), q in 0..3
template <int NC>
void dot_q2_K(int64_t n, const void * w, const void * x, size_t xs, float * out) {
    const block_q2_K * a = static_cast<const block_q2_K *>(w);
    const __m256i m3 = _mm256_set1_epi8(3);
    __m128 acc = _mm_setzero_ps();
    for (int64_t ib = 0; ib < n / 256; ++ib) {
        const block_q2_K & bw = a[ib];
        const __m128i sm = _mm_loadu_si128(reinterpret_cast<const __m128i *>(bw.scales));
        const __m256i mins = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(sm, 4), _mm_set1_epi8(0x0f)));
        const __m256i sc16 = _mm256_cvtepu8_epi16(_mm_and_si128(sm, _mm_set1_epi8(0x0f)));
        const float dw = h2f(bw.d), mw = h2f(bw.dmin);
        __m256i sumi[NC];
        for (int c = 0; c < NC; ++c) sumi[c] = _mm256_setzero_si256();
#pragma GCC unroll 2
        for (int half = 0; half < 2; ++half) {
            const __m256i q2bits = load256(bw.qs + 32 * half);
            const __m256i sc8 = half_scales(sc16, half);
#pragma GCC unroll 4
            for (int s = 0; s < 4; ++s) {
                const __m256i q2 = _mm256_and_si256(_mm256_srli_epi16(q2bits, 2 * s), m3);
                const __m256i sc = pick_pair(sc8, s);
                for (int c = 0; c < NC; ++c) {
                    const int8_t * q8 = act_row<block_q8_K>(x, xs, c)[ib].qs + 128 * half + 32 * s;
                    const __m256i p = _mm256_madd_epi16(sc, _mm256_maddubs_epi16(q2, load256(q8)));
                    sumi[c] = _mm256_add_epi32(sumi[c], p);
                }
            }
        }
        __m256i prod[NC];
        for (int c = 0; c < NC; ++c) prod[c] = _mm256_madd_epi16(mins, load256(act_row<block_q8_K>(x, xs, c)[ib].bsums));
        acc = k_step_min<NC>(acc, hsum_lanes<NC>(sumi), hsum_lanes<NC>(prod), dw, mw, x, xs, ib);
    }
    store_lanes<NC>(acc, out);
}

// Q3_K: q = low 2 bits - (hmask bit ? 0 : 4), signed 6-bit scales.
template <int NC>
void dot_q3_K(int64_t n, const void * w, const void * x, size_t xs, float * out) {
    const block_q3_K * a = static_cast<const block_q3_K *>(w);
    const __m256i m3 = _mm256_set1_epi8(3);
    const __m256i m1 = _mm256_set1_epi8(1);
    __m128 acc = _mm_setzero_ps();
    for (int64_t ib = 0; ib < n / 256; ++ib) {
        const block_q3_K & bw = a[ib];
        // 16 6-bit scales: low 4 bits in bytes 0..7 (two nibbles each), high 2 bits in bytes 8..11
        uint32_t u[3];
        std::memcpy(u, bw.scales, 12);
        const uint32_t s0 = (u[0] & 0x0f0f0f0f) | (((u[2] >> 0) & 0x03030303) << 4);
        const uint32_t s1 = (u[1] & 0x0f0f0f0f) | (((u[2] >> 2) & 0x03030303) << 4);
        const uint32_t s2 = ((u[0] >> 4) & 0x0f0f0f0f) | (((u[2] >> 4) & 0x03030303) << 4);
        const uint32_t s3 = ((u[1] >> 4) & 0x0f0f0f0f) | (((u[2] >> 6) & 0x03030303) << 4);
        const __m256i sc16 = _mm256_sub_epi16(
            _mm256_cvtepu8_epi16(_mm_set_epi32(static_cast<int>(s3), static_cast<int>(s2), static_cast<int>(s1), static_cast<int>(s0))),
            _mm256_set1_epi16(32));
        const __m256i hmask = load256(bw.hmask);
        const float dw = h2f(bw.d);
        __m256i sumi[NC];
        for (int c = 0; c < NC; ++c) sumi[c] = _mm256_setzero_si256();
#pragma GCC unroll 2
        for (int half = 0; half < 2; ++half) {
            const __m256i q3bits = load256(bw.qs + 32 * half);
            const __m256i sc8 = half_scales(sc16, half);
#pragma GCC unroll 4
            for (int sh = 0; sh < 4; ++sh) {
                const __m256i lo = _mm256_and_si256(_mm256_srli_epi16(q3bits, 2 * sh), m3);
                const __m256i hb = _mm256_and_si256(_mm256_srli_epi16(hmask, 4 * half + sh), m1);
                const __m256i qw = _mm256_sub_epi8(lo, _mm256_slli_epi16(_mm256_xor_si256(hb, m1), 2));
                const __m256i aw = _mm256_sign_epi8(qw, qw);
                const __m256i scv = pick_pair(sc8, sh);
                for (int c = 0; c < NC; ++c) {
                    const int8_t * q8 = act_row<block_q8_K>(x, xs, c)[ib].qs + 128 * half + 32 * sh;
                    const __m256i p16 = _mm256_maddubs_epi16(aw, _mm256_sign_epi8(load256(q8), qw));
                    sumi[c] = _mm256_add_epi32(sumi[c], _mm256_madd_epi16(scv, p16));
                }
            }
        }
        acc = k_step<NC>(acc, hsum_lanes<NC>(sumi), dw, x, xs, ib);
    }
    store_lanes<NC>(acc, out);
}

// Q4_K / Q5_K: 8 groups of 32, 6-bit scales and mins;
// dot = d_x * (d * sum_g sc_g * sum(q*q8) - dmin * sum_g m_g * (bsum_2g + bsum_2g+1))
template <int NC, bool Five>
GB_AVX2_INLINE void dot_q45_K(int64_t n, const void * w, const void * x, size_t xs, float * out) {
    using Block = std::conditional_t<Five, block_q5_K, block_q4_K>;
    const Block * a = static_cast<const Block *>(w);
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    const __m256i m1 = _mm256_set1_epi8(1);
    __m128 acc = _mm_setzero_ps();
    for (int64_t ib = 0; ib < n / 256; ++ib) {
        const Block & bw = a[ib];
        const __m256i mins_scales = q4k_mins_scales(bw.scales);
        const __m128i mins = _mm256_extracti128_si256(mins_scales, 1);
        const __m256i sc8 = half_scales(mins_scales, 0);
        const float dw = h2f(bw.d), mw = h2f(bw.dmin);
        __m256i hbits = _mm256_setzero_si256();
        if constexpr (Five) hbits = load256(bw.qh);
        __m256i sumi[NC];
        for (int c = 0; c < NC; ++c) sumi[c] = _mm256_setzero_si256();
#pragma GCC unroll 4
        for (int j = 0; j < 4; ++j) {
            const __m256i q4bits = load256(bw.qs + 32 * j);
            __m256i ql = _mm256_and_si256(q4bits, m4);
            __m256i qh = _mm256_and_si256(_mm256_srli_epi16(q4bits, 4), m4);
            if constexpr (Five) {
                ql = _mm256_or_si256(ql, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hbits, 2 * j), m1), 4));
                qh = _mm256_or_si256(qh, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hbits, 2 * j + 1), m1), 4));
            }
            const __m256i sl = pick_one(sc8, 2 * j);
            const __m256i sh = pick_one(sc8, 2 * j + 1);
            for (int c = 0; c < NC; ++c) {
                const int8_t * q8 = act_row<block_q8_K>(x, xs, c)[ib].qs + 64 * j;
                const __m256i pl = _mm256_madd_epi16(sl, _mm256_maddubs_epi16(ql, load256(q8)));
                const __m256i ph = _mm256_madd_epi16(sh, _mm256_maddubs_epi16(qh, load256(q8 + 32)));
                sumi[c] = _mm256_add_epi32(sumi[c], _mm256_add_epi32(pl, ph));
            }
        }
        __m128i prod[NC];
        for (int c = 0; c < NC; ++c) {
            const block_q8_K & b = act_row<block_q8_K>(x, xs, c)[ib];
            const __m128i bs_lo = _mm_loadu_si128(reinterpret_cast<const __m128i *>(b.bsums));
            const __m128i bs_hi = _mm_loadu_si128(reinterpret_cast<const __m128i *>(b.bsums + 8));
            prod[c] = _mm_madd_epi16(mins, _mm_hadd_epi16(bs_lo, bs_hi));
        }
        acc = k_step_min<NC>(acc, hsum_lanes<NC>(sumi), hsum_lanes<NC>(prod), dw, mw, x, xs, ib);
    }
    store_lanes<NC>(acc, out);
}

template <int NC>
void dot_q4_K(int64_t n, const void * w, const void * x, size_t xs, float * out) {
    dot_q45_K<NC, false>(n, w, x, xs, out);
}

template <int NC>
void dot_q5_K(int64_t n, const void * w, const void * x, size_t xs, float * out) {
    dot_q45_K<NC, true>(n, w, x, xs, out);
}

// Q6_K: q = (4 low bits | 2 high bits << 4) - 32, 16 groups of 16, int8 scales.
// sum_g sc_g * sum (q - 32) * q8 = sum_g sc_g * sum q*q8 - 32 * sum_g sc_g * bsum_g
template <int NC>
void dot_q6_K(int64_t n, const void * w, const void * x, size_t xs, float * out) {
    const block_q6_K * a = static_cast<const block_q6_K *>(w);
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    const __m256i m2 = _mm256_set1_epi8(3);
    __m128 acc = _mm_setzero_ps();
    for (int64_t ib = 0; ib < n / 256; ++ib) {
        const block_q6_K & bw = a[ib];
        const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i *>(bw.scales)));
        const float dw = h2f(bw.d);
        __m256i sumi[NC];
        for (int c = 0; c < NC; ++c) {
            // -32 * sum_g sc_g * bsum_g
            const block_q8_K & b = act_row<block_q8_K>(x, xs, c)[ib];
            sumi[c] = _mm256_slli_epi32(_mm256_madd_epi16(sc16, load256(b.bsums)), 5);
            sumi[c] = _mm256_sub_epi32(_mm256_setzero_si256(), sumi[c]);
        }
#pragma GCC unroll 2
        for (int half = 0; half < 2; ++half) {
            const __m256i sc8 = half_scales(sc16, half);
            const __m256i l0 = load256(bw.ql + 64 * half);
            const __m256i l1 = load256(bw.ql + 64 * half + 32);
            const __m256i hb = load256(bw.qh + 32 * half);
            __m256i q[4];
            q[0] = _mm256_or_si256(_mm256_and_si256(l0, m4), _mm256_slli_epi16(_mm256_and_si256(hb, m2), 4));
            q[1] = _mm256_or_si256(_mm256_and_si256(l1, m4),
                                   _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 2), m2), 4));
            q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4),
                                   _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 4), m2), 4));
            q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
                                   _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 6), m2), 4));
#pragma GCC unroll 4
            for (int p = 0; p < 4; ++p) {
                const __m256i scv = pick_pair(sc8, p);
                for (int c = 0; c < NC; ++c) {
                    const int8_t * q8 = act_row<block_q8_K>(x, xs, c)[ib].qs + 128 * half + 32 * p;
                    const __m256i p16 = _mm256_maddubs_epi16(q[p], load256(q8));
                    sumi[c] = _mm256_add_epi32(sumi[c], _mm256_madd_epi16(scv, p16));
                }
            }
        }
        acc = k_step<NC>(acc, hsum_lanes<NC>(sumi), dw, x, xs, ib);
    }
    store_lanes<NC>(acc, out);
}

#ifdef GB_VEC_DOT_VNNI
// ---- decode, 8 rows x 1 token of Q4_0 / Q5_0 / Q8_0 ---------------------------
// (this part is compiled only in the AVX512 translation unit.) Weights as
// unsigned bytes u = q + B (B = 8, 16, 128: the raw 4/5-bit value, or q ^ 0x80),
// so one vpdpbusd per row and block needs no sign trick; it starts from the lanes
// of -B * qx, so a row's 8 int32 lanes sum to isum_b exactly. The 8 rows' lanes
// are then reduced together (transpose-add tree) and the float step of vec_dot.h
// runs per row in lane r of a ymm: acc = fmaf(float(isum_b), d_w * d_x, acc).

// (a, b) -> per 128-bit half [a0+a2, b0+b2, a1+a3, b1+b3]
GB_AVX2_INLINE __m256i tsum_32(__m256i a, __m256i b) {
    return _mm256_add_epi32(_mm256_unpacklo_epi32(a, b), _mm256_unpackhi_epi32(a, b));
}
GB_AVX2_INLINE __m256i tsum_64(__m256i a, __m256i b) {
    return _mm256_add_epi32(_mm256_unpacklo_epi64(a, b), _mm256_unpackhi_epi64(a, b));
}
// lane r = the sum of the 8 lanes of p[r], r < 8
GB_AVX2_INLINE __m256i tsum8(const __m256i * p) {
    const __m256i a = tsum_64(tsum_32(p[0], p[1]), tsum_32(p[2], p[3]));  // halves: rows 0-3 (lanes 0-3 / 4-7)
    const __m256i b = tsum_64(tsum_32(p[4], p[5]), tsum_32(p[6], p[7]));  // rows 4-7
    return _mm256_add_epi32(_mm256_permute2x128_si256(a, b, 0x20), _mm256_permute2x128_si256(a, b, 0x31));
}

template <int Bias, typename Block, typename DecodeU>
GB_AVX2_INLINE void rows8_biased(int64_t nb, const uint8_t * w, size_t rb, const block_q8_0 * xb, float * out, DecodeU decode) {
    // d of row r's block: the low half of the dword gathered at its start
    const __m256i idx = _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32(static_cast<int>(rb)));
    const __m256i bias = _mm256_set1_epi8(static_cast<char>(Bias));
    // two 8-row groups ahead (~16 rows: what the measurements liked)
    const char * pf = reinterpret_cast<const char *>(w) + 16 * rb;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t ib = 0; ib < nb; ++ib) {
        prefetch_share<8 * sizeof(Block)>(pf, ib);
        const uint8_t * b = w + ib * static_cast<int64_t>(sizeof(Block));
        const __m256i qx = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(xb[ib].qs));
        const __m256i neg = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_dpbusd_epi32(_mm256_setzero_si256(), bias, qx));
        __m256i p[8];
        for (int r = 0; r < 8; ++r) p[r] = _mm256_dpbusd_epi32(neg, decode(reinterpret_cast<const Block *>(b + r * rb)), qx);
        const __m128i dwh = _mm256_cvtepi32_epi16(_mm256_i32gather_epi32(reinterpret_cast<const int *>(b), idx, 1));
        const __m256 d = _mm256_mul_ps(_mm256_cvtph_ps(dwh), _mm256_set1_ps(h2f(xb[ib].d)));
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(tsum8(p)), d, acc);
    }
    _mm256_storeu_ps(out, acc);
}

GB_AVX2_INLINE __m256i decode_u_q4_0(const block_q4_0 * b) { return nibbles32(b->qs); }
GB_AVX2_INLINE __m256i decode_u_q5_0(const block_q5_0 * b) {
    uint32_t hb;
    std::memcpy(&hb, b->qh, 4);
    const __m256i nib = nibbles32(b->qs);
    return _mm256_mask_add_epi8(nib, static_cast<__mmask32>(hb), nib, _mm256_set1_epi8(16));
}
GB_AVX2_INLINE __m256i decode_u_q8_0(const block_q8_0 * b) {
    return _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i *>(b->qs)), _mm256_set1_epi8(static_cast<char>(0x80)));
}

// rows in groups of 8, then 4, then 1 (all the same canonical chains)
template <int Bias, typename Block, typename DecodeU>
GB_AVX2_INLINE void rows_biased(int64_t n, const void * w, size_t rb, int64_t n_rows, const void * x, float * out, DecodeU decode,
                                DotRowsFn rows4, DotFn dot1) {
    const uint8_t * wb = static_cast<const uint8_t *>(w);
    int64_t r = 0;
    for (; r + 8 <= n_rows; r += 8) rows8_biased<Bias, Block>(n / 32, wb + r * rb, rb, static_cast<const block_q8_0 *>(x), out + r, decode);
    for (; r + 4 <= n_rows; r += 4) rows4(n, wb + r * rb, rb, x, out + r);
    for (; r < n_rows; ++r) dot1(n, wb + r * rb, x, 0, out + r);
}

void rows_q4_0(int64_t n, const void * w, size_t rb, int64_t n_rows, const void * x, float * out) {
    rows_biased<8, block_q4_0>(n, w, rb, n_rows, x, out, decode_u_q4_0, rows4_q4_0, dot_q4_0<1>);
}
void rows_q5_0(int64_t n, const void * w, size_t rb, int64_t n_rows, const void * x, float * out) {
    rows_biased<16, block_q5_0>(n, w, rb, n_rows, x, out, decode_u_q5_0, rows4_q5_0, dot_q5_0<1>);
}
void rows_q8_0(int64_t n, const void * w, size_t rb, int64_t n_rows, const void * x, float * out) {
    rows_biased<128, block_q8_0>(n, w, rb, n_rows, x, out, decode_u_q8_0, rows4_q8_0, dot_q8_0<1>);
}

// ---- decode, 4 rows x 1 token of Q4_K / Q6_K with 512-bit integer sums -------
// (this part is compiled only in the AVX512 translation unit). The integer
// superblock sums are exact, so they equal the 256-bit kernels' whatever the
// order; the float steps run per row in lane r of an xmm as k_step(_min).

// The same 8 scales and 8 mins as bytes 0-7 / 8-15, unpacked with vector ops
// (reads 16 bytes from scales: the 12 of the field and 4 of qs, which follow).
GB_AVX2_INLINE __m128i q4k_scales_mins_bytes(const uint8_t * scales) {
    const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i *>(scales));
    // P: s0-3 (sc0-3), s8-11 (sc4-7 low), s4-7 (m0-3), s8-11 (m4-7 low, high nibbles)
    const __m128i p = _mm_shuffle_epi8(raw, _mm_setr_epi8(0, 1, 2, 3, 8, 9, 10, 11, 4, 5, 6, 7, 8, 9, 10, 11));
    // R: the bytes whose top 2 bits are bits 4-5 of sc4-7 (s0-3) and of m4-7 (s4-7)
    const __m128i r = _mm_shuffle_epi8(raw, _mm_setr_epi8(-1, -1, -1, -1, 0, 1, 2, 3, -1, -1, -1, -1, 4, 5, 6, 7));
    const __m128i lo_a = _mm_and_si128(p, _mm_setr_epi8(63, 63, 63, 63, 15, 15, 15, 15, 63, 63, 63, 63, 0, 0, 0, 0));
    const __m128i lo_b = _mm_and_si128(_mm_srli_epi16(p, 4), _mm_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 15, 15, 15, 15));
    const __m128i hi = _mm_and_si128(_mm_srli_epi16(r, 2), _mm_set1_epi8(0x30));
    return _mm_or_si128(_mm_or_si128(lo_a, lo_b), hi);
}

// int16 lane i of a 32-lane index vector: base + i / 16 (pair of 32-groups) or base + i / 8
struct PermIdx {
    alignas(64) int16_t by16[4][32];  // Q4_K pair j: scales 2j (lanes 0-15), 2j+1 (16-31)
    alignas(64) int16_t by8[4][32];   // Q6_K: 4 groups of 16 from scale 4k
    constexpr PermIdx() : by16{}, by8{} {
        for (int j = 0; j < 4; ++j)
            for (int i = 0; i < 32; ++i) {
                by16[j][i] = static_cast<int16_t>(2 * j + i / 16);
                by8[j][i] = static_cast<int16_t>(4 * j + i / 8);
            }
    }
};
constexpr PermIdx k_perm;

GB_AVX2_INLINE __m256i fold512(__m512i v) { return _mm256_add_epi32(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64(v, 1)); }

void rows4_q4_K(int64_t n, const void * w, size_t rb, const void * x, float * out) {
    const block_q8_K * xb = static_cast<const block_q8_K *>(x);
    const block_q4_K * a[4];
    for (int r = 0; r < 4; ++r) a[r] = reinterpret_cast<const block_q4_K *>(static_cast<const uint8_t *>(w) + r * rb);
    const __m256i m4y = _mm256_set1_epi8(0x0f);
    const char * pf = static_cast<const char *>(w) + 8 * rb;  // the 4-row group after next
    __m128 acc = _mm_setzero_ps();
    for (int64_t ib = 0; ib < n / 256; ++ib) {
        prefetch_share<4 * sizeof(block_q4_K)>(pf, ib);
        const block_q8_K & bx = xb[ib];
        __m256i q8y[8];
        for (int j = 0; j < 8; ++j) q8y[j] = load256(bx.qs + 32 * j);
        const __m128i bsum8 = _mm_hadd_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i *>(bx.bsums)),
                                             _mm_loadu_si128(reinterpret_cast<const __m128i *>(bx.bsums + 8)));
        __m256i sumi[4];
        __m128i prod[4];
        for (int r = 0; r < 4; ++r) {
            const block_q4_K & bw = a[r][ib];
            const __m128i o = q4k_scales_mins_bytes(bw.scales);
            // each scale twice in a dword, broadcast from memory (a load, no shuffle port)
            alignas(32) int32_t sc32[8];
            const __m256i s32 = _mm256_cvtepu8_epi32(o);
            _mm256_store_si256(reinterpret_cast<__m256i *>(sc32), _mm256_or_si256(s32, _mm256_slli_epi32(s32, 16)));
            // NOTE: opaque to the compiler, so the broadcasts below read memory
            // (vpbroadcastd from memory needs no shuffle port; from a register it does)
            __asm__ __volatile__("" : : "r"(sc32) : "memory");
            __m256i s = _mm256_setzero_si256();
#pragma GCC unroll 4
            for (int j = 0; j < 4; ++j) {
                const __m256i bits = load256(bw.qs + 32 * j);
                const __m256i ql = _mm256_and_si256(bits, m4y);
                const __m256i qh = _mm256_and_si256(_mm256_srli_epi16(bits, 4), m4y);
                const __m256i pl = _mm256_madd_epi16(_mm256_set1_epi32(sc32[2 * j]), _mm256_maddubs_epi16(ql, q8y[2 * j]));
                const __m256i ph = _mm256_madd_epi16(_mm256_set1_epi32(sc32[2 * j + 1]), _mm256_maddubs_epi16(qh, q8y[2 * j + 1]));
                s = _mm256_add_epi32(s, _mm256_add_epi32(pl, ph));
            }
            sumi[r] = s;
            prod[r] = _mm_madd_epi16(_mm_cvtepu8_epi16(_mm_srli_si128(o, 8)), bsum8);
        }
        const __m128 dx = _mm_set1_ps(bx.d);
        const __m128 dw = _mm_cvtph_ps(_mm_setr_epi16(static_cast<short>(a[0][ib].d), static_cast<short>(a[1][ib].d),
                                                      static_cast<short>(a[2][ib].d), static_cast<short>(a[3][ib].d), 0, 0, 0, 0));
        const __m128 dm = _mm_cvtph_ps(_mm_setr_epi16(static_cast<short>(a[0][ib].dmin), static_cast<short>(a[1][ib].dmin),
                                                      static_cast<short>(a[2][ib].dmin), static_cast<short>(a[3][ib].dmin), 0, 0, 0, 0));
        acc = _mm_fmadd_ps(_mm_cvtepi32_ps(hsum_lanes<4>(sumi)), _mm_mul_ps(dw, dx), acc);
        acc = _mm_fnmadd_ps(_mm_mul_ps(dm, dx), _mm_cvtepi32_ps(hsum_lanes<4>(prod)), acc);
    }
    _mm_storeu_ps(out, acc);
}

void rows4_q6_K(int64_t n, const void * w, size_t rb, const void * x, float * out) {
    const block_q8_K * xb = static_cast<const block_q8_K *>(x);
    const block_q6_K * a[4];
    for (int r = 0; r < 4; ++r) a[r] = reinterpret_cast<const block_q6_K *>(static_cast<const uint8_t *>(w) + r * rb);
    const __m512i m4 = _mm512_set1_epi8(0x0f);
    const __m512i m2 = _mm512_set1_epi8(3);
    // qh shifts for [q0 | q1] and [q2 | q3]
    const __m512i sh_a = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(2), 1);
    const __m512i sh_b = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set1_epi16(4)), _mm256_set1_epi16(6), 1);
    __m512i idx[4];
    for (int j = 0; j < 4; ++j) idx[j] = _mm512_load_si512(k_perm.by8[j]);
    const char * pf = static_cast<const char *>(w) + 8 * rb;  // the 4-row group after next
    __m128 acc = _mm_setzero_ps();
    for (int64_t ib = 0; ib < n / 256; ++ib) {
        prefetch_share<4 * sizeof(block_q6_K)>(pf, ib);
        const block_q8_K & bx = xb[ib];
        const __m256i bsums = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(bx.bsums));
        __m256i sumi[4];
        for (int r = 0; r < 4; ++r) {
            const block_q6_K & bw = a[r][ib];
            const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i *>(bw.scales)));
            const __m512i sc512 = _mm512_castsi256_si512(sc16);
            // -32 * sum_g sc_g * bsum_g
            __m512i s = _mm512_castsi256_si512(_mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(_mm256_madd_epi16(sc16, bsums), 5)));
            s = _mm512_inserti64x4(s, _mm256_setzero_si256(), 1);
#pragma GCC unroll 2
            for (int h = 0; h < 2; ++h) {
                const __m512i l = _mm512_loadu_si512(bw.ql + 64 * h);
                const __m512i hb = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i *>(bw.qh + 32 * h)));
                const __m512i qa = _mm512_or_si512(_mm512_and_si512(l, m4), _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi16(hb, sh_a), m2), 4));
                const __m512i qb = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(l, 4), m4),
                                                   _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi16(hb, sh_b), m2), 4));
                const __m512i q8a = _mm512_loadu_si512(bx.qs + 128 * h);
                const __m512i q8b = _mm512_loadu_si512(bx.qs + 128 * h + 64);
                const __m512i sca = _mm512_permutexvar_epi16(idx[2 * h], sc512);
                const __m512i scb = _mm512_permutexvar_epi16(idx[2 * h + 1], sc512);
                s = _mm512_add_epi32(s, _mm512_madd_epi16(sca, _mm512_maddubs_epi16(qa, q8a)));
                s = _mm512_add_epi32(s, _mm512_madd_epi16(scb, _mm512_maddubs_epi16(qb, q8b)));
            }
            sumi[r] = fold512(s);
        }
        const __m128 dw = _mm_cvtph_ps(_mm_setr_epi16(static_cast<short>(a[0][ib].d), static_cast<short>(a[1][ib].d),
                                                      static_cast<short>(a[2][ib].d), static_cast<short>(a[3][ib].d), 0, 0, 0, 0));
        acc = _mm_fmadd_ps(_mm_cvtepi32_ps(hsum_lanes<4>(sumi)), _mm_mul_ps(dw, _mm_set1_ps(bx.d)), acc);
    }
    _mm_storeu_ps(out, acc);
}
#endif

// ---- float types: fp32 FMA over 8 lanes ---------------------------------------

GB_AVX2_INLINE __m256 load8_f32(const void * p, int64_t i) { return _mm256_loadu_ps(static_cast<const float *>(p) + i); }
GB_AVX2_INLINE __m256 load8_f16(const void * p, int64_t i) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i *>(static_cast<const uint16_t *>(p) + i)));
}
GB_AVX2_INLINE __m256 load8_bf16(const void * p, int64_t i) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i *>(static_cast<const uint16_t *>(p) + i));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}
GB_AVX2_INLINE float load1_f32(const void * p, int64_t i) { return static_cast<const float *>(p)[i]; }

GB_AVX2_INLINE float load1_f16(const void * p, int64_t i) { return h2f(static_cast<const uint16_t *>(p)[i]); }
GB_AVX2_INLINE float load1_bf16(const void * p, int64_t i) {
    const uint32_t b = static_cast<uint32_t>(static_cast<const uint16_t *>(p)[i]) << 16;
    float f;
    std::memcpy(&f, &b, 4);
    return f;
}

// Canonical 16-lane float dot (vec_dot.h): lanes 0..7 in lo, 8..15 in hi, one
// FMA chain each; the tail is zero-padded to 16; then the fixed reduction tree.
// W is read with Load8 / Load1; X (already rounded to the activation type) is f32.
template <int NC, __m256 (*Load8)(const void *, int64_t), float (*Load1)(const void *, int64_t)>
GB_AVX2_INLINE void dot_float(int64_t n, const void * w, const void * x, size_t xs, float * out) {
    __m256 lo[NC], hi[NC];
    for (int c = 0; c < NC; ++c) lo[c] = hi[c] = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m256 w0 = Load8(w, i), w1 = Load8(w, i + 8);
        for (int c = 0; c < NC; ++c) {
            lo[c] = _mm256_fmadd_ps(w0, load8_f32(act_row<uint8_t>(x, xs, c), i), lo[c]);
            hi[c] = _mm256_fmadd_ps(w1, load8_f32(act_row<uint8_t>(x, xs, c), i + 8), hi[c]);
        }
    }
    if (i < n) {
        alignas(32) float wt[16] = {}, xt[16];
        for (int64_t k = i; k < n; ++k) wt[k - i] = Load1(w, k);
        for (int c = 0; c < NC; ++c) {
            for (int k = 0; k < 16; ++k) xt[k] = i + k < n ? load1_f32(act_row<uint8_t>(x, xs, c), i + k) : 0.0f;
            lo[c] = _mm256_fmadd_ps(_mm256_load_ps(wt), _mm256_load_ps(xt), lo[c]);
            hi[c] = _mm256_fmadd_ps(_mm256_load_ps(wt + 8), _mm256_load_ps(xt + 8), hi[c]);
        }
    }
    for (int c = 0; c < NC; ++c) out[c] = hsum8(_mm256_add_ps(lo[c], hi[c]));
}

template <int NC>
void dot_f32(int64_t n, const void * w, const void * x, size_t xs, float * out) {
    dot_float<NC, load8_f32, load1_f32>(n, w, x, xs, out);
}
template <int NC>
void dot_f16(int64_t n, const void * w, const void * x, size_t xs, float * out) {
    dot_float<NC, load8_f16, load1_f16>(n, w, x, xs, out);
}
template <int NC>
void dot_bf16(int64_t n, const void * w, const void * x, size_t xs, float * out) {
    dot_float<NC, load8_bf16, load1_bf16>(n, w, x, xs, out);
}

// ---- activation quantizers (bit-identical to the scalar ones) -----------------

template <bool WithSum>
void quantize_q8_32(const float * x, uint8_t * y, int64_t n, size_t block_bytes) {
    const __m256 sign_bit = _mm256_set1_ps(-0.0f);
    for (int64_t ib = 0; ib < n / 32; ++ib, x += 32, y += block_bytes) {
        __m256 v[4];
        __m256 mx = _mm256_setzero_ps();
        for (int k = 0; k < 4; ++k) {
            v[k] = _mm256_loadu_ps(x + 8 * k);
            mx = _mm256_max_ps(mx, _mm256_andnot_ps(sign_bit, v[k]));
        }
        __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(mx), _mm256_extractf128_ps(mx, 1));
        m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
        const float amax = _mm_cvtss_f32(m4);
        const float d = amax / 127.0f;
        const __m256 id = _mm256_set1_ps(amax != 0.0f ? 127.0f / amax : 0.0f);
        __m256i q[4];
        for (int k = 0; k < 4; ++k)
            q[k] = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v[k], id), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
        const __m256i q01 = _mm256_packs_epi32(q[0], q[1]);
        const __m256i q23 = _mm256_packs_epi32(q[2], q[3]);
        __m256i q8 = _mm256_packs_epi16(q01, q23);
        q8 = _mm256_permutevar8x32_epi32(q8, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        _mm256_storeu_si256(reinterpret_cast<__m256i *>(y + (WithSum ? 4 : 2)), q8);
        const uint16_t dh = _cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT);
        std::memcpy(y, &dh, 2);
        if constexpr (WithSum) {
            const int sum = hsum_i32(_mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3])));
            const uint16_t sh = _cvtss_sh(d * static_cast<float>(sum), _MM_FROUND_TO_NEAREST_INT);
            std::memcpy(y + 2, &sh, 2);
        }
    }
}

// Q8_K activations, bit-identical to quantize_row_q8_K_act (vec_dot_scalar.cpp):
// d from the first element of largest magnitude, q = nearest_int(iscale * x)
// (cvtps_epi32 rounds to nearest even as nearest_int's magic add does), bsums of 16.
void quantize_q8_K_avx2(const float * x, void * vy, int64_t n) {
    block_q8_K * y = static_cast<block_q8_K *>(vy);
    const __m256 sign_bit = _mm256_set1_ps(-0.0f);
    for (int64_t ib = 0; ib < n / 256; ++ib, x += 256) {
        __m256 mx = _mm256_setzero_ps();
        __m256 nan = _mm256_setzero_ps();
        for (int k = 0; k < 32; ++k) {
            const __m256 v = _mm256_loadu_ps(x + 8 * k);
            mx = _mm256_max_ps(mx, _mm256_andnot_ps(sign_bit, v));
            nan = _mm256_or_ps(nan, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
        }
        if (_mm256_movemask_ps(nan) != 0) {  // NaN: the scalar rules
            quantize_row_q8_K_act(x, y + ib, 256);
            continue;
        }
        __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(mx), _mm256_extractf128_ps(mx, 1));
        m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
        const float amax = _mm_cvtss_f32(m4);
        if (amax == 0.0f) {
            y[ib].d = 0.0f;
            std::memset(y[ib].qs, 0, sizeof(y[ib].qs));
            std::memset(y[ib].bsums, 0, sizeof(y[ib].bsums));
            continue;
        }
        // the first element with |x| == amax
        const __m256 va = _mm256_set1_ps(amax);
        int first = 0;
        for (int k = 0; k < 32; ++k) {
            const int m = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_andnot_ps(sign_bit, _mm256_loadu_ps(x + 8 * k)), va, _CMP_EQ_OQ));
            if (m != 0) {
                first = 8 * k + __builtin_ctz(static_cast<unsigned>(m));
                break;
            }
        }
        const float iscale = -127.0f / x[first];
        const __m256 vs = _mm256_set1_ps(iscale);
        const __m256i q127 = _mm256_set1_epi32(127);
        __m256i gsum[16];
        for (int c = 0; c < 8; ++c) {  // 32 values
            __m256i q[4];
            for (int k = 0; k < 4; ++k) {
                q[k] = _mm256_min_epi32(_mm256_cvtps_epi32(_mm256_mul_ps(vs, _mm256_loadu_ps(x + 32 * c + 8 * k))), q127);
            }
            gsum[2 * c] = _mm256_add_epi32(q[0], q[1]);
            gsum[2 * c + 1] = _mm256_add_epi32(q[2], q[3]);
            const __m256i q01 = _mm256_packs_epi32(q[0], q[1]);
            const __m256i q23 = _mm256_packs_epi32(q[2], q[3]);
            __m256i q8 = _mm256_packs_epi16(q01, q23);
            q8 = _mm256_permutevar8x32_epi32(q8, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
            _mm256_storeu_si256(reinterpret_cast<__m256i *>(y[ib].qs + 32 * c), q8);
        }
        // bsums[g] = the sum of group g's 8 int32 lanes
        __m128i s4[4];
        for (int g = 0; g < 4; ++g) {
            const __m256i h = _mm256_hadd_epi32(_mm256_hadd_epi32(gsum[4 * g], gsum[4 * g + 1]),
                                                _mm256_hadd_epi32(gsum[4 * g + 2], gsum[4 * g + 3]));
            s4[g] = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
        }
        _mm_storeu_si128(reinterpret_cast<__m128i *>(y[ib].bsums), _mm_packs_epi32(s4[0], s4[1]));
        _mm_storeu_si128(reinterpret_cast<__m128i *>(y[ib].bsums + 8), _mm_packs_epi32(s4[2], s4[3]));
        y[ib].d = 1.0f / iscale;
    }
}

void quantize_q8_0_avx2(const float * x, void * y, int64_t n) {
    quantize_q8_32<false>(x, static_cast<uint8_t *>(y), n, sizeof(block_q8_0));
}
void quantize_q8_1_avx2(const float * x, void * y, int64_t n) {
    quantize_q8_32<true>(x, static_cast<uint8_t *>(y), n, sizeof(block_q8_1));
}

// F16 / BF16 weights: llama.cpp rounds the activations to f16 / bf16. We keep
// the rounded values as f32 (exact), so the dot loop converts only the weights.
void round_f16_avx2(const float * x, void * y, int64_t n) {
    float * f = static_cast<float *>(y);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT);
        _mm256_storeu_ps(f + i, _mm256_cvtph_ps(h));
    }
    for (; i < n; ++i) f[i] = _cvtsh_ss(_cvtss_sh(x[i], _MM_FROUND_TO_NEAREST_INT));
}

void round_bf16_avx2(const float * x, void * y, int64_t n) {
    // via the shared scalar converter: NaN and rounding exactly as fp32_to_bf16
    float * f = static_cast<float *>(y);
    for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        convert_row_bf16_act(x + i, &h, 1);
        const uint32_t b = static_cast<uint32_t>(h) << 16;
        std::memcpy(f + i, &b, 4);
    }
}

}  // namespace

#ifndef GB_VEC_DOT_KERNELS
#define GB_VEC_DOT_KERNELS avx2_kernels
#endif

bool GB_VEC_DOT_KERNELS(TensorType t, TypeKernels * k) {
    switch (t) {
        case TensorType::F32:  *k = {TensorType::F32, nullptr, dot_f32<1>, dot_f32<4>}; return true;
        case TensorType::F16:  *k = {TensorType::F32, round_f16_avx2, dot_f16<1>, dot_f16<4>}; return true;
        case TensorType::BF16: *k = {TensorType::F32, round_bf16_avx2, dot_bf16<1>, dot_bf16<4>}; return true;
#ifndef GB_VEC_DOT_VNNI
        case TensorType::Q4_0: *k = {TensorType::Q8_0, quantize_q8_0_avx2, dot_q4_0<1>, dot_q4_0<4>, rows4_q4_0}; return true;
        case TensorType::Q5_0: *k = {TensorType::Q8_0, quantize_q8_0_avx2, dot_q5_0<1>, dot_q5_0<4>, rows4_q5_0}; return true;
        case TensorType::Q8_0: *k = {TensorType::Q8_0, quantize_q8_0_avx2, dot_q8_0<1>, dot_q8_0<4>, rows4_q8_0}; return true;
#endif
        case TensorType::Q4_1: *k = {TensorType::Q8_1, quantize_q8_1_avx2, dot_q4_1<1>, dot_q4_1<4>}; return true;
        case TensorType::Q5_1: *k = {TensorType::Q8_1, quantize_q8_1_avx2, dot_q5_1<1>, dot_q5_1<4>}; return true;
        case TensorType::Q2_K: *k = {TensorType::Q8_K, quantize_q8_K_avx2, dot_q2_K<1>, dot_q2_K<4>}; return true;
        case TensorType::Q3_K: *k = {TensorType::Q8_K, quantize_q8_K_avx2, dot_q3_K<1>, dot_q3_K<4>}; return true;
#ifdef GB_VEC_DOT_VNNI
        case TensorType::Q4_0: *k = {TensorType::Q8_0, quantize_q8_0_avx2, dot_q4_0<1>, dot_q4_0<4>, rows4_q4_0, rows_q4_0}; return true;
        case TensorType::Q5_0: *k = {TensorType::Q8_0, quantize_q8_0_avx2, dot_q5_0<1>, dot_q5_0<4>, rows4_q5_0, rows_q5_0}; return true;
        case TensorType::Q8_0: *k = {TensorType::Q8_0, quantize_q8_0_avx2, dot_q8_0<1>, dot_q8_0<4>, rows4_q8_0, rows_q8_0}; return true;
        case TensorType::Q4_K: *k = {TensorType::Q8_K, quantize_q8_K_avx2, dot_q4_K<1>, dot_q4_K<4>, rows4_q4_K}; return true;
        case TensorType::Q6_K: *k = {TensorType::Q8_K, quantize_q8_K_avx2, dot_q6_K<1>, dot_q6_K<4>, rows4_q6_K}; return true;
#else
        case TensorType::Q4_K: *k = {TensorType::Q8_K, quantize_q8_K_avx2, dot_q4_K<1>, dot_q4_K<4>}; return true;
        case TensorType::Q6_K: *k = {TensorType::Q8_K, quantize_q8_K_avx2, dot_q6_K<1>, dot_q6_K<4>}; return true;
#endif
        case TensorType::Q5_K: *k = {TensorType::Q8_K, quantize_q8_K_avx2, dot_q5_K<1>, dot_q5_K<4>}; return true;
        default: return false;
    }
}

}  // namespace gb::cpu
