// Dot kernels in the summation order of llama.cpp's x86 CPU backend (ggml
// built for AVX-512: its vec_dot / llamafile tinyBLAS, repacked Q4_K GEMV and
// GEMM, tiled K-quant matmul), for the weight types of gemma-3 Q4_K_M files:
// used instead of the canonical kernels while cpu::llamacpp_order() is on,
// so that logits match llama.cpp's bit for bit (see matmul.h). AVX2/FMA/F16C
// (this file alone is compiled with -mavx2 -mfma -mf16c -ffp-contract=off).
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

// Q5_0, Q8_0 x Q8_0: signed weights; per block d_w*d_x * sum q_w*q_x.
// The sign trick: q_w*q_x = |q_w| * (q_x with the sign of q_w), for maddubs.
template <int NC, typename Decode, typename Block>
GB_AVX2_INLINE void dot_signed32(int64_t n, const Block * a, const void * x, size_t xs, float * out, Decode decode) {
    const int64_t nb = n / 32;
    // acc += d_w * d_x * sum_j q_w[j] * q_x[j] for block ib and activation row c
    auto step = [&](int64_t ib, int c, __m256 acc) {
        const __m256i qw = decode(a[ib]);
        const block_q8_0 & b = act_row<block_q8_0>(x, xs, c)[ib];
        const __m256i qx = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(b.qs));
        const __m256i p = dot_us8(_mm256_sign_epi8(qw, qw), _mm256_sign_epi8(qx, qw));
        return _mm256_fmadd_ps(_mm256_set1_ps(h2f(a[ib].d) * h2f(b.d)), _mm256_cvtepi32_ps(p), acc);
    };
    // One accumulator per activation row, blocks in order, then hsum8: the
    // summation order of llama.cpp's x86 kernels, so results match it bit for bit.
    __m256 acc[NC];
    for (int c = 0; c < NC; ++c) acc[c] = _mm256_setzero_ps();
    for (int64_t ib = 0; ib < nb; ++ib) {
        for (int c = 0; c < NC; ++c) acc[c] = step(ib, c, acc[c]);
    }
    for (int c = 0; c < NC; ++c) out[c] = hsum8(acc[c]);
}

template <int NC>
void dot_q5_0(int64_t n, const void * w, const void * x, size_t xs, float * out) {
    // q - 16 = nibble | (bit ? 0 : 0xf0) read as int8
    dot_signed32<NC>(n, static_cast<const block_q5_0 *>(w), x, xs, out, [](const block_q5_0 & b) {
        const __m256i hi = _mm256_andnot_si256(bits_to_bytes(b.qh), _mm256_set1_epi8(static_cast<char>(0xf0)));
        return _mm256_or_si256(nibbles32(b.qs), hi);
    });
}

template <int NC>
void dot_q8_0(int64_t n, const void * w, const void * x, size_t xs, float * out) {
    dot_signed32<NC>(n, static_cast<const block_q8_0 *>(w), x, xs, out, [](const block_q8_0 & b) {
        return _mm256_loadu_si256(reinterpret_cast<const __m256i *>(b.qs));
    });
}

// Q4_K / Q5_K: 8 groups of 32, 6-bit scales and mins;
// dot = d_x * (d * sum_g sc_g * sum(q*q8) - dmin * sum_g m_g * (bsum_2g + bsum_2g+1))
template <int NC, bool Five>
GB_AVX2_INLINE void dot_q45_K(int64_t n, const void * w, const void * x, size_t xs, float * out) {
    using Block = std::conditional_t<Five, block_q5_K, block_q4_K>;
    const Block * a = static_cast<const Block *>(w);
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    const __m256i m1 = _mm256_set1_epi8(1);
    __m256 acc[NC];
    __m128 accm[NC];
    // Q4_K follows llama.cpp's x86 path (Q4_K repacked 8x8): its GEMV (one
    // token, dot1) sums each 256-block exactly in int32 then does one FMA per
    // block for the scales and one for the mins; its GEMM (4 tokens, dot4) one
    // FMA per pair of 32-groups for each. out = acc - acc_mins.
    __m128 acc1[NC], accm1[NC];
    for (int c = 0; c < NC; ++c) {
        acc[c] = _mm256_setzero_ps();
        accm[c] = _mm_setzero_ps();
        acc1[c] = accm1[c] = _mm_setzero_ps();
    }
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
                if constexpr (!Five && NC == 4) {  // 4-token GEMM order: one FMA per pair of groups
                    acc1[c] = _mm_fmadd_ss(_mm_cvtsi32_ss(_mm_setzero_ps(), hsum_i32(_mm256_add_epi32(pl, ph))),
                                           _mm_set_ss(dw * act_row<block_q8_K>(x, xs, c)[ib].d), acc1[c]);
                } else {
                    sumi[c] = _mm256_add_epi32(sumi[c], _mm256_add_epi32(pl, ph));
                }
            }
        }
        for (int c = 0; c < NC; ++c) {
            const block_q8_K & b = act_row<block_q8_K>(x, xs, c)[ib];
            const __m128i bs_lo = _mm_loadu_si128(reinterpret_cast<const __m128i *>(b.bsums));
            const __m128i bs_hi = _mm_loadu_si128(reinterpret_cast<const __m128i *>(b.bsums + 8));
            const __m128i prod = _mm_madd_epi16(mins, _mm_hadd_epi16(bs_lo, bs_hi));
            if constexpr (Five) {
                accm[c] = _mm_fmadd_ps(_mm_set1_ps(-mw * b.d), _mm_cvtepi32_ps(prod), accm[c]);
                acc[c] = _mm256_fmadd_ps(_mm256_set1_ps(dw * b.d), _mm256_cvtepi32_ps(sumi[c]), acc[c]);
            } else if constexpr (NC == 4) {
                // prod lane g: the mins of groups 2g, 2g+1 times their block sums
                alignas(16) int32_t pm[4];
                _mm_store_si128(reinterpret_cast<__m128i *>(pm), prod);
                for (int g = 0; g < 4; ++g) accm1[c] = _mm_fmadd_ss(_mm_cvtsi32_ss(_mm_setzero_ps(), pm[g]), _mm_set_ss(mw * b.d), accm1[c]);
            } else {
                const __m128i pm = _mm_add_epi32(prod, _mm_unpackhi_epi64(prod, prod));
                const int isum_m = _mm_cvtsi128_si32(_mm_add_epi32(pm, _mm_shuffle_epi32(pm, 1)));
                accm1[c] = _mm_fmadd_ss(_mm_cvtsi32_ss(_mm_setzero_ps(), isum_m), _mm_set_ss(mw * b.d), accm1[c]);
                acc1[c] = _mm_fmadd_ss(_mm_cvtsi32_ss(_mm_setzero_ps(), hsum_i32(sumi[c])), _mm_set_ss(dw * b.d), acc1[c]);
            }
        }
    }
    for (int c = 0; c < NC; ++c) {
        out[c] = Five ? hsum8(acc[c]) + hsum4(accm[c]) : _mm_cvtss_f32(acc1[c]) - _mm_cvtss_f32(accm1[c]);
    }
}

template <int NC>
void dot_q4_K(int64_t n, const void * w, const void * x, size_t xs, float * out) {
    dot_q45_K<NC, false>(n, w, x, xs, out);
}

// Q6_K: q = (4 low bits | 2 high bits << 4) - 32, 16 groups of 16, int8 scales.
// sum_g sc_g * sum (q - 32) * q8 = sum_g sc_g * sum q*q8 - 32 * sum_g sc_g * bsum_g
// Tiled = false: llama.cpp's vec_dot order (8 int32 lanes, one FMA per block);
// true: its tiled K-quant matmul (products of >= 8 tokens): the block's exact
// int32 sum s, acc = fma(float(s) * d_w, d_x, acc) (the FMA GCC contracts it into).
template <int NC, bool Tiled = false>
void dot_q6_K(int64_t n, const void * w, const void * x, size_t xs, float * out) {
    const block_q6_K * a = static_cast<const block_q6_K *>(w);
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    const __m256i m2 = _mm256_set1_epi8(3);
    __m256 acc[NC];
    for (int c = 0; c < NC; ++c) acc[c] = _mm256_setzero_ps();
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
        for (int c = 0; c < NC; ++c) {
            const float dx = act_row<block_q8_K>(x, xs, c)[ib].d;
            if constexpr (Tiled) {
                const __m128 r = _mm_mul_ss(_mm_cvtsi32_ss(_mm_setzero_ps(), hsum_i32(sumi[c])), _mm_set_ss(dw));
                acc[c] = _mm256_castps128_ps256(_mm_fmadd_ss(r, _mm_set_ss(dx), _mm256_castps256_ps128(acc[c])));
            } else {
                acc[c] = _mm256_fmadd_ps(_mm256_set1_ps(dw * dx), _mm256_cvtepi32_ps(sumi[c]), acc[c]);
            }
        }
    }
    for (int c = 0; c < NC; ++c) out[c] = Tiled ? _mm_cvtss_f32(_mm256_castps256_ps128(acc[c])) : hsum8(acc[c]);
}

}  // namespace

bool llamacpp_kernels(TensorType t, LlamaCppKernels * k) {
    switch (t) {
        case TensorType::Q5_0: *k = {TensorType::Q8_0, quantize_row_q8_0_act, dot_q5_0<1>, dot_q5_0<4>, nullptr, nullptr}; return true;
        case TensorType::Q8_0: *k = {TensorType::Q8_0, quantize_row_q8_0_act, dot_q8_0<1>, dot_q8_0<4>, nullptr, nullptr}; return true;
        case TensorType::Q4_K:
            *k = {TensorType::Q8_K, quantize_row_q8_K_act, dot_q4_K<1>, dot_q4_K<4>, nullptr, nullptr};
            return true;
        case TensorType::Q6_K:
            *k = {TensorType::Q8_K, quantize_row_q8_K_act, dot_q6_K<1>, dot_q6_K<4>, dot_q6_K<1, true>, dot_q6_K<4, true>};
            return true;
        default: return false;
    }
}

}  // namespace gb::cpu
