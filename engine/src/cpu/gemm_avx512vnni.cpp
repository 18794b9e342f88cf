// AVX512-VNNI prefill GEMM and decode kernels (this file alone is compiled with
// -mavx512f/bw/vl/dq/vnni -mfma -mf16c; matmul.cpp calls it only when the CPU
// reports those features). Quantized weights are repacked per 16-row strip to
// unsigned bytes interleaved [k/4][16 rows][4 bytes], so one vpdpbusd multiplies
// 16 rows by 4 activation bytes broadcast from one token; the integer group
// sums are multiplied by the integer group scales and summed as int32 per
// superblock, the mins / offsets go through the activations' block sums, and
// the float steps per (row, token) are exactly the canonical ones of vec_dot.h
// (one lane per row), so results equal the dot kernels bit for bit.
// Float weights: 4 rows x 4 tokens tiles with the canonical 16-lane order.
// NOTE: keep everything in the anonymous namespace and use no inline library
// templates, so no AVX512 code can leak into other translation units.
#include "cpu/vec_dot.h"
#include "quants.h"

#include <immintrin.h>

// GCC 12: _mm512_cvtepi32_ps uses _mm512_undefined_ps, a false positive.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <cstring>

namespace gb::cpu {

namespace {

#define GB_INL inline __attribute__((always_inline))

constexpr int k_strip = 16;  // weight rows per strip (lanes of a zmm)
constexpr int k_max_tokens = 8;

GB_INL float h2f(uint16_t h) { return _cvtsh_ss(h); }
GB_INL int32_t load_i32(const void * p) {
    int32_t v;
    std::memcpy(&v, p, 4);
    return v;
}
GB_INL __m512i bcast_i32(const void * p) { return _mm512_set1_epi32(load_i32(p)); }

// ---- decoded weight blocks -----------------------------------------------------
// A 256-element k-quant block as unsigned quants u, integer group scales sc,
// per-16 integer mins mn, d and dmin:
//   isum = sum_g sc_g * sum_{i in g} u_i q_i, summs = sum_j mn_j * bsum_j (16-groups j)
//   Q2_K/Q4_K/Q5_K: dot = d*d_x * isum - dmin*d_x * summs (mn = the mins)
//   Q3_K/Q6_K: dot = d*d_x * (isum - summs) (mn = sc * the offset of u, folded into isum)
struct KBlock {
    uint8_t u[256];
    int32_t sc[16];
    int16_t mn[16];
    float   d;
    float   dmin;
};

// Q4_K / Q5_K 6-bit scale j and min j.
GB_INL void scale_min_k4(int j, const uint8_t * q, int * sc, int * m) {
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

void decode_q4_K(const void * p, KBlock * o) {
    const block_q4_K & b = *static_cast<const block_q4_K *>(p);
    for (int g = 0; g < 8; ++g) {
        int sc, m;
        scale_min_k4(g, b.scales, &sc, &m);
        o->sc[g] = sc;
        o->mn[2 * g] = o->mn[2 * g + 1] = static_cast<int16_t>(m);
    }
    o->d = h2f(b.d);
    o->dmin = h2f(b.dmin);
    for (int j = 0; j < 4; ++j) {
        for (int l = 0; l < 32; ++l) {
            o->u[64 * j + l] = b.qs[32 * j + l] & 0x0f;
            o->u[64 * j + 32 + l] = b.qs[32 * j + l] >> 4;
        }
    }
}

void decode_q5_K(const void * p, KBlock * o) {
    const block_q5_K & b = *static_cast<const block_q5_K *>(p);
    for (int g = 0; g < 8; ++g) {
        int sc, m;
        scale_min_k4(g, b.scales, &sc, &m);
        o->sc[g] = sc;
        o->mn[2 * g] = o->mn[2 * g + 1] = static_cast<int16_t>(m);
    }
    o->d = h2f(b.d);
    o->dmin = h2f(b.dmin);
    for (int j = 0; j < 4; ++j) {
        for (int l = 0; l < 32; ++l) {
            const uint8_t h = b.qh[l];
            o->u[64 * j + l] = static_cast<uint8_t>((b.qs[32 * j + l] & 0x0f) | (((h >> (2 * j)) & 1) << 4));
            o->u[64 * j + 32 + l] = static_cast<uint8_t>((b.qs[32 * j + l] >> 4) | (((h >> (2 * j + 1)) & 1) << 4));
        }
    }
}

// Q6_K: u = q + 32 in 0..63; value = d * sc * (u - 32).
void decode_q6_K(const void * p, KBlock * o) {
    const block_q6_K & b = *static_cast<const block_q6_K *>(p);
    for (int j = 0; j < 16; ++j) {
        o->sc[j] = b.scales[j];
        o->mn[j] = static_cast<int16_t>(32 * b.scales[j]);
    }
    o->d = h2f(b.d);
    o->dmin = 0.0f;
    for (int h = 0; h < 2; ++h) {
        const uint8_t * ql = b.ql + 64 * h;
        const uint8_t * qh = b.qh + 32 * h;
        uint8_t * u = o->u + 128 * h;
        for (int l = 0; l < 32; ++l) {
            u[l] = static_cast<uint8_t>((ql[l] & 0x0f) | (((qh[l] >> 0) & 3) << 4));
            u[l + 32] = static_cast<uint8_t>((ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4));
            u[l + 64] = static_cast<uint8_t>((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4));
            u[l + 96] = static_cast<uint8_t>((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4));
        }
    }
}

// Q3_K: u = low 2 bits | (hmask bit << 2) in 0..7; value = d * (sc - 32) * (u - 4).
void decode_q3_K(const void * p, KBlock * o) {
    const block_q3_K & b = *static_cast<const block_q3_K *>(p);
    uint32_t a[3];
    std::memcpy(a, b.scales, 12);
    uint32_t s[4];
    s[0] = (a[0] & 0x0f0f0f0f) | (((a[2] >> 0) & 0x03030303) << 4);
    s[1] = (a[1] & 0x0f0f0f0f) | (((a[2] >> 2) & 0x03030303) << 4);
    s[2] = ((a[0] >> 4) & 0x0f0f0f0f) | (((a[2] >> 4) & 0x03030303) << 4);
    s[3] = ((a[1] >> 4) & 0x0f0f0f0f) | (((a[2] >> 6) & 0x03030303) << 4);
    uint8_t sc8[16];
    std::memcpy(sc8, s, 16);
    for (int j = 0; j < 16; ++j) {
        const int sc = static_cast<int>(sc8[j]) - 32;
        o->sc[j] = sc;
        o->mn[j] = static_cast<int16_t>(4 * sc);
    }
    o->d = h2f(b.d);
    o->dmin = 0.0f;
    for (int n = 0; n < 2; ++n) {
        for (int j = 0; j < 4; ++j) {
            for (int l = 0; l < 32; ++l) {
                const int lo = (b.qs[32 * n + l] >> (2 * j)) & 3;
                const int hi = (b.hmask[l] >> (4 * n + j)) & 1;
                o->u[128 * n + 32 * j + l] = static_cast<uint8_t>(lo | (hi << 2));
            }
        }
    }
}

// Q2_K: u in 0..3; value = d * (sc & 15) * u - dmin * (sc >> 4).
void decode_q2_K(const void * p, KBlock * o) {
    const block_q2_K & b = *static_cast<const block_q2_K *>(p);
    for (int j = 0; j < 16; ++j) {
        o->sc[j] = b.scales[j] & 0x0f;
        o->mn[j] = static_cast<int16_t>(b.scales[j] >> 4);
    }
    o->d = h2f(b.d);
    o->dmin = h2f(b.dmin);
    for (int n = 0; n < 2; ++n) {
        for (int j = 0; j < 4; ++j) {
            for (int l = 0; l < 32; ++l) o->u[128 * n + 32 * j + l] = static_cast<uint8_t>((b.qs[32 * n + l] >> (2 * j)) & 3);
        }
    }
}

using KDecodeFn = void (*)(const void *, KBlock *);

// ---- k-quant strips ------------------------------------------------------------
// Per 256-block of a 16-row strip: u [64 quads][16 rows][4], sc [NG][16] i32,
// mn pairs [8][16 rows][2] i16, d [16] f32, dmin [16] f32.
template <int G>
struct KLayout {
    static constexpr int ng = 256 / G;
    static constexpr size_t off_sc = 4096;
    static constexpr size_t off_mn = off_sc + ng * 64;
    static constexpr size_t off_d = off_mn + 512;
    static constexpr size_t off_dmin = off_d + 64;
    static constexpr size_t bytes = off_dmin + 64;
};

template <int G>
size_t k_strip_bytes(int64_t n_cols) {
    return KLayout<G>::bytes * static_cast<size_t>(n_cols / 256);
}

template <int G, KDecodeFn Decode, size_t BlockBytes>
void k_pack(const uint8_t * w, size_t row_bytes, int n_valid, int64_t n_cols, void * dst) {
    using L = KLayout<G>;
    uint8_t * out = static_cast<uint8_t *>(dst);
    const int64_t nsb = n_cols / 256;
    KBlock kb;
    for (int64_t sb = 0; sb < nsb; ++sb) {
        uint8_t * s = out + sb * L::bytes;
        for (int r = 0; r < k_strip; ++r) {
            if (r < n_valid) {
                Decode(w + static_cast<size_t>(r) * row_bytes + sb * BlockBytes, &kb);
            } else {
                std::memset(&kb, 0, sizeof(kb));
            }
            for (int q = 0; q < 64; ++q) std::memcpy(s + (q * k_strip + r) * 4, kb.u + 4 * q, 4);
            int32_t * sc = reinterpret_cast<int32_t *>(s + L::off_sc);
            for (int g = 0; g < L::ng; ++g) sc[g * k_strip + r] = kb.sc[g];
            int16_t * mn = reinterpret_cast<int16_t *>(s + L::off_mn);
            for (int p = 0; p < 8; ++p) {
                mn[(p * k_strip + r) * 2] = kb.mn[2 * p];
                mn[(p * k_strip + r) * 2 + 1] = kb.mn[2 * p + 1];
            }
            reinterpret_cast<float *>(s + L::off_d)[r] = kb.d;
            reinterpret_cast<float *>(s + L::off_dmin)[r] = kb.dmin;
        }
    }
}

// y[t][r] for 16 rows x T tokens; act rows are Q8_K. SubMin: Q3_K / Q6_K (mins folded into isum).
template <int G, bool SubMin, int T>
void k_run_t(const void * strip, const uint8_t * act, size_t act_stride, int64_t n_cols, float * y, size_t ldy, __mmask16 mask) {
    using L = KLayout<G>;
    constexpr int qpg = G / 4;
    const uint8_t * s = static_cast<const uint8_t *>(strip);
    const int64_t nsb = n_cols / 256;
    __m512 acc[T];
    for (int t = 0; t < T; ++t) acc[t] = _mm512_setzero_ps();
    for (int64_t sb = 0; sb < nsb; ++sb, s += L::bytes) {
        const block_q8_K * xb[T];
        for (int t = 0; t < T; ++t) xb[t] = reinterpret_cast<const block_q8_K *>(act + t * act_stride) + sb;
        __m512i isum[T];
        for (int t = 0; t < T; ++t) isum[t] = _mm512_setzero_si512();
        const int32_t * sc = reinterpret_cast<const int32_t *>(s + L::off_sc);
#pragma GCC unroll 1
        for (int g = 0; g < L::ng; ++g) {
            __m512i dg[T];
            for (int t = 0; t < T; ++t) dg[t] = _mm512_setzero_si512();
#pragma GCC unroll 8
            for (int q = 0; q < qpg; ++q) {
                const __m512i wv = _mm512_loadu_si512(s + (g * qpg + q) * 64);
#pragma GCC unroll 8
                for (int t = 0; t < T; ++t) dg[t] = _mm512_dpbusd_epi32(dg[t], wv, bcast_i32(xb[t]->qs + g * G + 4 * q));
            }
            const __m512i scv = _mm512_loadu_si512(sc + g * k_strip);
#pragma GCC unroll 8
            for (int t = 0; t < T; ++t) isum[t] = _mm512_add_epi32(isum[t], _mm512_mullo_epi32(dg[t], scv));
        }
        const __m512 dv = _mm512_loadu_ps(reinterpret_cast<const float *>(s + L::off_d));
        const __m512 dminv = _mm512_loadu_ps(reinterpret_cast<const float *>(s + L::off_dmin));
#pragma GCC unroll 8
        for (int t = 0; t < T; ++t) {
            __m512i mi = _mm512_setzero_si512();
#pragma GCC unroll 8
            for (int p = 0; p < 8; ++p) mi = _mm512_dpwssd_epi32(mi, _mm512_loadu_si512(s + L::off_mn + p * 64), bcast_i32(xb[t]->bsums + 2 * p));
            const __m512 dx = _mm512_set1_ps(xb[t]->d);
            if constexpr (SubMin) {
                acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(isum[t], mi)), _mm512_mul_ps(dv, dx), acc[t]);
            } else {
                acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[t]), _mm512_mul_ps(dv, dx), acc[t]);
                acc[t] = _mm512_fnmadd_ps(_mm512_mul_ps(dminv, dx), _mm512_cvtepi32_ps(mi), acc[t]);
            }
        }
    }
    for (int t = 0; t < T; ++t) _mm512_mask_storeu_ps(y + t * ldy, mask, acc[t]);
}

// ---- 32-element block types (Q4_0, Q5_0, Q8_0) ---------------------------------
// Per block of a strip: u [8 quads][16 rows][4], d_w [16] f32.
// value = d_w * (u - off); activations carry off * sum(q_x).
struct ActB32 {
    float   d;
    int32_t osum;
    int8_t  qs[32];
};
constexpr size_t k_b32_bytes = 512 + 64;

size_t b32_strip_bytes(int64_t n_cols) { return k_b32_bytes * static_cast<size_t>(n_cols / 32); }
size_t b32_act_bytes(int64_t n_cols) { return sizeof(ActB32) * static_cast<size_t>(n_cols / 32); }
size_t k_act_bytes(int64_t n_cols) { return sizeof(block_q8_K) * static_cast<size_t>(n_cols / 256); }

template <int Off>
void b32_prep_act(const float * x, void * y, int64_t n) {
    ActB32 * o = static_cast<ActB32 *>(y);
    for (int64_t ib = 0; ib < n / 32; ++ib) {
        block_q8_0 q;
        quantize_row_q8_0_act(x + 32 * ib, &q, 32);
        int s = 0;
        for (int j = 0; j < 32; ++j) s += q.qs[j];
        o[ib].d = h2f(q.d);
        o[ib].osum = Off * s;
        std::memcpy(o[ib].qs, q.qs, 32);
    }
}

// One block -> 32 unsigned bytes u (as a ymm) and d.
GB_INL __m256i nibbles32(const uint8_t * p) {
    const __m128i t = _mm_loadu_si128(reinterpret_cast<const __m128i *>(p));
    const __m256i b = _mm256_inserti128_si256(_mm256_castsi128_si256(t), _mm_srli_epi16(t, 4), 1);
    return _mm256_and_si256(b, _mm256_set1_epi8(0x0f));
}
GB_INL __m256i decode_b_q4_0(const void * p, float * d) {
    const block_q4_0 & b = *static_cast<const block_q4_0 *>(p);
    *d = h2f(b.d);
    return nibbles32(b.qs);
}
GB_INL __m256i decode_b_q5_0(const void * p, float * d) {
    const block_q5_0 & b = *static_cast<const block_q5_0 *>(p);
    *d = h2f(b.d);
    uint32_t qh;
    std::memcpy(&qh, b.qh, 4);
    return _mm256_or_si256(nibbles32(b.qs), _mm256_maskz_mov_epi8(qh, _mm256_set1_epi8(0x10)));
}
GB_INL __m256i decode_b_q8_0(const void * p, float * d) {
    const block_q8_0 & b = *static_cast<const block_q8_0 *>(p);
    *d = h2f(b.d);
    return _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i *>(b.qs)), _mm256_set1_epi8(static_cast<char>(0x80)));
}

using BDecodeFn = __m256i (*)(const void *, float *);

template <BDecodeFn Decode, size_t BlockBytes>
void b32_pack(const uint8_t * w, size_t row_bytes, int n_valid, int64_t n_cols, void * dst) {
    uint8_t * out = static_cast<uint8_t *>(dst);
    const int64_t nb = n_cols / 32;
    // dword q of row r goes to (q * 16 + r) * 4
    const __m256i idx = _mm256_setr_epi32(0, 16, 32, 48, 64, 80, 96, 112);
    for (int64_t ib = 0; ib < nb; ++ib) {
        uint8_t * s = out + ib * k_b32_bytes;
        float * dw = reinterpret_cast<float *>(s + 512);
        for (int r = 0; r < k_strip; ++r) {
            float d = 0.0f;
            __m256i u = _mm256_setzero_si256();
            if (r < n_valid) u = Decode(w + static_cast<size_t>(r) * row_bytes + ib * BlockBytes, &d);
            _mm256_i32scatter_epi32(reinterpret_cast<int *>(s) + r, idx, u, 4);
            dw[r] = d;
        }
    }
}

template <int T>
void b32_run_t(const void * strip, const uint8_t * act, size_t act_stride, int64_t n_cols, float * y, size_t ldy, __mmask16 mask) {
    const uint8_t * s = static_cast<const uint8_t *>(strip);
    const int64_t nb = n_cols / 32;
    __m512 acc[T];
    for (int t = 0; t < T; ++t) acc[t] = _mm512_setzero_ps();
    for (int64_t ib = 0; ib < nb; ++ib, s += k_b32_bytes) {
        __m512i dg[T];
        const ActB32 * xb[T];
        for (int t = 0; t < T; ++t) {
            dg[t] = _mm512_setzero_si512();
            xb[t] = reinterpret_cast<const ActB32 *>(act + t * act_stride) + ib;
        }
#pragma GCC unroll 8
        for (int q = 0; q < 8; ++q) {
            const __m512i wv = _mm512_loadu_si512(s + q * 64);
#pragma GCC unroll 8
            for (int t = 0; t < T; ++t) dg[t] = _mm512_dpbusd_epi32(dg[t], wv, bcast_i32(xb[t]->qs + 4 * q));
        }
        const __m512 dwv = _mm512_loadu_ps(reinterpret_cast<const float *>(s + 512));
#pragma GCC unroll 8
        for (int t = 0; t < T; ++t) {
            const __m512i v = _mm512_sub_epi32(dg[t], _mm512_set1_epi32(xb[t]->osum));
            acc[t] = _mm512_fmadd_ps(_mm512_mul_ps(dwv, _mm512_set1_ps(xb[t]->d)), _mm512_cvtepi32_ps(v), acc[t]);
        }
    }
    for (int t = 0; t < T; ++t) _mm512_mask_storeu_ps(y + t * ldy, mask, acc[t]);
}

// ---- float weights: 4 rows x 4 tokens, 16 k per step ---------------------------
// Strip = 16 rows converted to f32, each zero-padded to n16 = 16 * ceil(n_cols / 16);
// activations f32 (already rounded to f16 / bf16 where llama.cpp rounds them),
// zero-padded the same way. Each (row, token) has one zmm accumulator whose
// lane l sums the elements i with i % 16 == l, then the canonical reduction tree.
GB_INL int64_t pad16(int64_t n) { return (n + 15) / 16 * 16; }
// row stride of strips and activations: one extra cache line, so that rows of a
// power-of-two length do not all map to the same L1 sets
GB_INL int64_t f_ld(int64_t n) { return pad16(n) + 16; }
size_t f_strip_bytes(int64_t n_cols) { return sizeof(float) * k_strip * static_cast<size_t>(f_ld(n_cols)); }
size_t f_act_bytes(int64_t n_cols) { return sizeof(float) * static_cast<size_t>(f_ld(n_cols)); }

GB_INL __m512 load16_f16(const void * p) { return _mm512_cvtph_ps(_mm256_loadu_si256(static_cast<const __m256i *>(p))); }
GB_INL __m512 load16_bf16(const void * p) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256(static_cast<const __m256i *>(p))), 16));
}

template <int Kind>  // 0 f32, 1 f16, 2 bf16
GB_INL __m512 load16_w(const uint8_t * src, int64_t i, __mmask16 m) {
    if constexpr (Kind == 0) return _mm512_maskz_loadu_ps(m, src + 4 * i);
    const __m256i h = _mm256_maskz_loadu_epi16(m, src + 2 * i);
    if constexpr (Kind == 1) return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

template <int Kind>
void f_pack(const uint8_t * w, size_t row_bytes, int n_valid, int64_t n_cols, void * dst) {
    float * out = static_cast<float *>(dst);
    const int64_t n16 = pad16(n_cols);
    for (int r = 0; r < k_strip; ++r) {
        float * o = out + r * f_ld(n_cols);
        const uint8_t * src = w + static_cast<size_t>(r) * row_bytes;
        for (int64_t i = 0; i < n16; i += 16) {
            const int64_t left = n_cols - i;
            const __mmask16 m = r >= n_valid ? 0 : left >= 16 ? 0xffff : static_cast<__mmask16>((1u << left) - 1);
            _mm512_storeu_ps(o + i, load16_w<Kind>(src, i, m));
        }
    }
}

// f32 activations (x rounded to f16 / bf16 first where Round says) zero-padded to n16.
template <int Round>  // 0 none, 1 f16, 2 bf16
void f_prep_act(const float * x, void * y, int64_t n) {
    float * f = static_cast<float *>(y);
    const int64_t n16 = pad16(n);
    for (int64_t i = 0; i < n16; i += 16) {
        const int64_t left = n - i;
        const __mmask16 m = left >= 16 ? 0xffff : static_cast<__mmask16>((1u << left) - 1);
        __m512 v = _mm512_maskz_loadu_ps(m, x + i);
        if constexpr (Round == 1) v = _mm512_cvtph_ps(_mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT));
        _mm512_storeu_ps(f + i, v);
    }
    if constexpr (Round == 2) {
        // via the shared scalar converter: NaN and rounding exactly as fp32_to_bf16
        for (int64_t i = 0; i < n; ++i) {
            uint16_t h;
            convert_row_bf16_act(x + i, &h, 1);
            const uint32_t b = static_cast<uint32_t>(h) << 16;
            std::memcpy(f + i, &b, 4);
        }
    }
}

// The canonical tree: l + l+8, l + l+4, l + l+2, 0 + 1.
GB_INL float reduce16(__m512 v) {
    const __m256 h = _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
    __m128 r = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    r = _mm_add_ps(r, _mm_movehl_ps(r, r));
    r = _mm_add_ss(r, _mm_movehdup_ps(r));
    return _mm_cvtss_f32(r);
}

// k chunk of the float tile (floats per row): 16 weight rows + 8 activation rows
// of a chunk stay in L1 while the 4 x 4 tiles sweep it.
constexpr int64_t k_f_chunk = 256;

// rows [0, 4) x T tokens over elements [i0, i1); accumulators kept in acc[r][t][16]
template <int T>
GB_INL void f_tile(const float * w, int64_t ld, const float * const * x, int64_t i0, int64_t i1, float (*acc)[k_max_tokens][16]) {
    __m512 a[4][T];
    for (int r = 0; r < 4; ++r)
        for (int t = 0; t < T; ++t) a[r][t] = _mm512_load_ps(acc[r][t]);
    for (int64_t i = i0; i < i1; i += 16) {
        __m512 wv[4];
        for (int r = 0; r < 4; ++r) wv[r] = _mm512_load_ps(w + r * ld + i);
        for (int t = 0; t < T; ++t) {
            const __m512 xv = _mm512_loadu_ps(x[t] + i);
            for (int r = 0; r < 4; ++r) a[r][t] = _mm512_fmadd_ps(wv[r], xv, a[r][t]);
        }
    }
    for (int r = 0; r < 4; ++r)
        for (int t = 0; t < T; ++t) _mm512_store_ps(acc[r][t], a[r][t]);
}

void f_run(const void * strip, const uint8_t * act, size_t act_stride, int nt, int64_t n_cols, float * y, size_t ldy, int n_valid) {
    const float * w = static_cast<const float *>(strip);
    const int64_t n16 = pad16(n_cols), ld = f_ld(n_cols);
    const float * x[k_max_tokens];
    for (int t = 0; t < nt; ++t) x[t] = reinterpret_cast<const float *>(act + t * act_stride);
    alignas(64) float acc[k_strip][k_max_tokens][16];
    std::memset(acc, 0, sizeof(acc));
    for (int64_t i0 = 0; i0 < n16; i0 += k_f_chunk) {
        const int64_t i1 = i0 + k_f_chunk < n16 ? i0 + k_f_chunk : n16;
        for (int r0 = 0; r0 < n_valid; r0 += 4) {
            const float * wr = w + r0 * ld;
            int t = 0;
            for (; t + 4 <= nt; t += 4) f_tile<4>(wr, ld, x + t, i0, i1, reinterpret_cast<float (*)[k_max_tokens][16]>(&acc[r0][t][0]));
            switch (nt - t) {
                case 3: f_tile<3>(wr, ld, x + t, i0, i1, reinterpret_cast<float (*)[k_max_tokens][16]>(&acc[r0][t][0])); break;
                case 2: f_tile<2>(wr, ld, x + t, i0, i1, reinterpret_cast<float (*)[k_max_tokens][16]>(&acc[r0][t][0])); break;
                case 1: f_tile<1>(wr, ld, x + t, i0, i1, reinterpret_cast<float (*)[k_max_tokens][16]>(&acc[r0][t][0])); break;
                default: break;
            }
        }
    }
    for (int r = 0; r < n_valid; ++r)
        for (int t = 0; t < nt; ++t) y[t * ldy + r] = reduce16(_mm512_load_ps(acc[r][t]));
}

using RunTFn = void (*)(const void *, const uint8_t *, size_t, int64_t, float *, size_t, __mmask16);

template <int G, bool SubMin>
void k_run(const void * strip, const uint8_t * act, size_t act_stride, int nt, int64_t n_cols, float * y, size_t ldy, int n_valid) {
    static constexpr RunTFn fns[k_max_tokens] = {k_run_t<G, SubMin, 1>, k_run_t<G, SubMin, 2>, k_run_t<G, SubMin, 3>,
                                                 k_run_t<G, SubMin, 4>, k_run_t<G, SubMin, 5>, k_run_t<G, SubMin, 6>,
                                                 k_run_t<G, SubMin, 7>, k_run_t<G, SubMin, 8>};
    fns[nt - 1](strip, act, act_stride, n_cols, y, ldy, static_cast<__mmask16>((1u << n_valid) - 1));
}

void b32_run(const void * strip, const uint8_t * act, size_t act_stride, int nt, int64_t n_cols, float * y, size_t ldy, int n_valid) {
    static constexpr RunTFn fns[k_max_tokens] = {b32_run_t<1>, b32_run_t<2>, b32_run_t<3>, b32_run_t<4>,
                                                 b32_run_t<5>, b32_run_t<6>, b32_run_t<7>, b32_run_t<8>};
    fns[nt - 1](strip, act, act_stride, n_cols, y, ldy, static_cast<__mmask16>((1u << n_valid) - 1));
}

}  // namespace

bool avx512vnni_gemm(TensorType t, GemmKernels * g) {
    switch (t) {
        case TensorType::F32:  *g = {8, f_act_bytes, f_prep_act<0>, f_strip_bytes, f_pack<0>, f_run}; return true;
        case TensorType::F16:  *g = {8, f_act_bytes, f_prep_act<1>, f_strip_bytes, f_pack<1>, f_run}; return true;
        case TensorType::BF16: *g = {8, f_act_bytes, f_prep_act<2>, f_strip_bytes, f_pack<2>, f_run}; return true;
        case TensorType::Q4_0:
            *g = {4, b32_act_bytes, b32_prep_act<8>, b32_strip_bytes, b32_pack<decode_b_q4_0, sizeof(block_q4_0)>, b32_run};
            return true;
        case TensorType::Q5_0:
            *g = {4, b32_act_bytes, b32_prep_act<16>, b32_strip_bytes, b32_pack<decode_b_q5_0, sizeof(block_q5_0)>, b32_run};
            return true;
        case TensorType::Q8_0:
            *g = {4, b32_act_bytes, b32_prep_act<128>, b32_strip_bytes, b32_pack<decode_b_q8_0, sizeof(block_q8_0)>, b32_run};
            return true;
        case TensorType::Q2_K:
            *g = {12, k_act_bytes, quantize_row_q8_K_act, k_strip_bytes<16>, k_pack<16, decode_q2_K, sizeof(block_q2_K)>, k_run<16, false>};
            return true;
        case TensorType::Q3_K:
            *g = {12, k_act_bytes, quantize_row_q8_K_act, k_strip_bytes<16>, k_pack<16, decode_q3_K, sizeof(block_q3_K)>, k_run<16, true>};
            return true;
        case TensorType::Q4_K:
            *g = {12, k_act_bytes, quantize_row_q8_K_act, k_strip_bytes<32>, k_pack<32, decode_q4_K, sizeof(block_q4_K)>, k_run<32, false>};
            return true;
        case TensorType::Q5_K:
            *g = {12, k_act_bytes, quantize_row_q8_K_act, k_strip_bytes<32>, k_pack<32, decode_q5_K, sizeof(block_q5_K)>, k_run<32, false>};
            return true;
        case TensorType::Q6_K:
            *g = {12, k_act_bytes, quantize_row_q8_K_act, k_strip_bytes<16>, k_pack<16, decode_q6_K, sizeof(block_q6_K)>, k_run<16, true>};
            return true;
        default: return false;
    }
}

}  // namespace gb::cpu
