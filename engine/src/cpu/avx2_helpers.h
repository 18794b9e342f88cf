// Small AVX2 helpers shared by the AVX2-compiled kernel files (vec_dot_avx2.cpp,
// vec_dot_avx512vnni.cpp through it, vec_dot_llamacpp.cpp). Include only from
// translation units compiled with -mavx2 -mfma -mf16c: everything is in an
// anonymous namespace so no AVX2 code leaks into other translation units.
#pragma once

#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace gb::cpu {
namespace {

#define GB_AVX2_INLINE inline __attribute__((always_inline))

GB_AVX2_INLINE float h2f(uint16_t h) { return _cvtsh_ss(h); }

// lanes l + l+4, then + l+2, then 0 + 1 (the tail of the canonical float tree)
GB_AVX2_INLINE float hsum8(__m256 v) {
    __m128 r = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    r = _mm_add_ps(r, _mm_movehl_ps(r, r));
    r = _mm_add_ss(r, _mm_movehdup_ps(r));
    return _mm_cvtss_f32(r);
}

GB_AVX2_INLINE float hsum4(__m128 r) {
    r = _mm_add_ps(r, _mm_movehl_ps(r, r));
    r = _mm_add_ss(r, _mm_movehdup_ps(r));
    return _mm_cvtss_f32(r);
}

GB_AVX2_INLINE int hsum_i32(__m256i v) {
    __m128i r = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    r = _mm_add_epi32(r, _mm_unpackhi_epi64(r, r));
    r = _mm_add_epi32(r, _mm_shuffle_epi32(r, 1));
    return _mm_cvtsi128_si32(r);
}

// 16 bytes of packed nibbles -> 32 bytes: bytes 0..15 the low nibbles, 16..31 the high ones.
// (the 16 bytes are broadcast by the load itself and the halves combined by a
// blend: no shuffle-port uop, which the 4-row decode kernels are short of)
GB_AVX2_INLINE __m256i nibbles32(const uint8_t * p) {
    const __m256i t = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i *>(p)));
    const __m256i b = _mm256_blend_epi32(t, _mm256_srli_epi16(t, 4), 0xf0);
    return _mm256_and_si256(b, _mm256_set1_epi8(0x0f));
}

// 32 bits -> 32 bytes, 0xff where bit k is set.
GB_AVX2_INLINE __m256i bits_to_bytes(const uint8_t * p) {
    uint32_t bits;
    std::memcpy(&bits, p, 4);
    const __m256i spread = _mm256_shuffle_epi8(
        _mm256_set1_epi32(static_cast<int>(bits)),
        _mm256_setr_epi64x(0x0000000000000000, 0x0101010101010101, 0x0202020202020202, 0x0303030303030303));
    const __m256i mask = _mm256_set1_epi64x(static_cast<long long>(0x8040201008040201ull));
    return _mm256_cmpeq_epi8(_mm256_and_si256(spread, mask), mask);
}

// sum of products of unsigned bytes u (<= 128) and signed bytes s, 8 x int32.
// (vec_dot_avx512vnni.cpp compiles this file again with one vpdpbusd here;
// exact in both cases for u <= 128, so both paths give identical sums.)
GB_AVX2_INLINE __m256i dot_us8(__m256i u, __m256i s) {
#ifdef GB_VEC_DOT_VNNI
    return _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s);
#else
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
#endif
}

template <typename T>
GB_AVX2_INLINE const T * act_row(const void * x, size_t x_stride, int c) {
    return reinterpret_cast<const T *>(static_cast<const uint8_t *>(x) + static_cast<size_t>(c) * x_stride);
}

// ---- k-quants: shared by the canonical and llama.cpp-order kernels --------

GB_AVX2_INLINE __m256i load256(const void * p) { return _mm256_loadu_si256(static_cast<const __m256i *>(p)); }

// s8 holds the same 8 int16 scales in both 128-bit halves.
// pick_one: all 16 lanes <- s8[i]; pick_pair: lanes 0..7 <- s8[2p], lanes 8..15 <- s8[2p+1].
// The byte-shuffle masks live in tables (built at compile time, one load each).
struct ShuffleMasks {
    alignas(32) uint8_t one[8][32];
    alignas(32) uint8_t pair[4][32];
    constexpr ShuffleMasks() : one{}, pair{} {
        for (int i = 0; i < 8; ++i)
            for (int k = 0; k < 32; ++k) one[i][k] = static_cast<uint8_t>(2 * i + (k & 1));
        for (int p = 0; p < 4; ++p)
            for (int k = 0; k < 32; ++k) pair[p][k] = static_cast<uint8_t>(4 * p + (k >= 16 ? 2 : 0) + (k & 1));
    }
};
constexpr ShuffleMasks k_masks;

GB_AVX2_INLINE __m256i pick_one(__m256i s8, int i) { return _mm256_shuffle_epi8(s8, load256(k_masks.one[i])); }
GB_AVX2_INLINE __m256i pick_pair(__m256i s8, int p) { return _mm256_shuffle_epi8(s8, load256(k_masks.pair[p])); }
// 16 int16 scales -> the 8 of half h (0 or 1) in both 128-bit halves.
GB_AVX2_INLINE __m256i half_scales(__m256i s16, int h) {
    return h == 0 ? _mm256_permute2x128_si256(s16, s16, 0x00) : _mm256_permute2x128_si256(s16, s16, 0x11);
}

// Q4_K / Q5_K 6-bit scales and mins of one superblock: int16 lanes 0-7 scales, 8-15 mins
GB_AVX2_INLINE __m256i q4k_mins_scales(const uint8_t * scales) {
    uint32_t u[4];
    std::memcpy(u, scales, 12);
    u[3] = ((u[2] >> 4) & 0x0f0f0f0f) | (((u[1] >> 6) & 0x03030303) << 4);
    const uint32_t mins_lo = u[1] & 0x3f3f3f3f;
    u[1] = (u[2] & 0x0f0f0f0f) | (((u[0] >> 6) & 0x03030303) << 4);
    u[2] = mins_lo;
    u[0] &= 0x3f3f3f3f;
    return _mm256_cvtepu8_epi16(
        _mm_set_epi32(static_cast<int>(u[3]), static_cast<int>(u[2]), static_cast<int>(u[1]), static_cast<int>(u[0])));
}

}  // namespace
}  // namespace gb::cpu
