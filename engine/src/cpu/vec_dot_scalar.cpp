// Scalar (portable) CPU kernels: activation quantizers and one dot kernel per
// weight type. They state the canonical per-row formulas (see vec_dot.h) that
// every SIMD kernel and GEMM reproduces bit for bit: integer sums per block /
// superblock as in ggml's vec_dot, then the same float FMAs in the same order.
#include "cpu/vec_dot.h"
#include "quants.h"

#include <cmath>
#include <cstring>
#include <type_traits>

namespace gb::cpu {

namespace {

inline float h2f(uint16_t h) { return fp16_to_fp32(h); }

// s[l] + s[l + 8], then + s[l + 4], + s[l + 2], then s[0] + s[1]
float reduce_lanes16(float * s) {
    for (int w = 8; w >= 1; w /= 2)
        for (int l = 0; l < w; ++l) s[l] = s[l] + s[l + w];
    return s[0];
}

// ---- activation quantizers --------------------------------------------------

// Q8_0 / Q8_1 as llama.cpp's x86 quantize_row_q8_0/q8_1: d = amax / 127,
// q = round_half_even(x * (127 / amax)). nearbyintf rounds half to even in the
// default rounding mode, as _mm256_round_ps(_MM_ROUND_NEAREST) does.
template <bool WithSum>
void quantize_q8_32(const float * x, uint8_t * y, int64_t n, size_t block_bytes) {
    for (int64_t ib = 0; ib < n / 32; ++ib, x += 32, y += block_bytes) {
        float amax = 0.0f;
        for (int j = 0; j < 32; ++j) amax = std::fmax(amax, std::fabs(x[j]));
        const float d = amax / 127.0f;
        const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
        int8_t * qs = reinterpret_cast<int8_t *>(y + (WithSum ? 4 : 2));
        int sum = 0;
        for (int j = 0; j < 32; ++j) {
            qs[j] = static_cast<int8_t>(std::nearbyintf(x[j] * id));
            sum += qs[j];
        }
        const uint16_t dh = fp32_to_fp16(d);
        std::memcpy(y, &dh, 2);
        if constexpr (WithSum) {
            const uint16_t sh = fp32_to_fp16(d * static_cast<float>(sum));
            std::memcpy(y + 2, &sh, 2);
        }
    }
}

// ---- dot kernels: out[0] = sum_i w[i] * x[i] ----------------------------------

// Canonical float dot: 16 partial sums (element i goes to lane i % 16, the row
// zero-padded to a multiple of 16), each a sequential FMA chain, then the fixed
// tree s[l] + s[l + 8], + s[l + 4], + s[l + 2], s[0] + s[1].
template <typename Load>
float dot_float16(int64_t n, Load load) {
    float s[16] = {};
    for (int64_t i0 = 0; i0 < n; i0 += 16) {
        for (int l = 0; l < 16; ++l) {
            const int64_t i = i0 + l;
            float a = 0.0f, b = 0.0f;
            if (i < n) load(i, &a, &b);
            s[l] = __builtin_fmaf(a, b, s[l]);
        }
    }
    return reduce_lanes16(s);
}

void dot_f32(int64_t n, const void * w, const void * x, size_t, float * out) {
    const float * a = static_cast<const float *>(w);
    const float * b = static_cast<const float *>(x);
    *out = dot_float16(n, [&](int64_t i, float * p, float * q) { *p = a[i]; *q = b[i]; });
}

void dot_f16(int64_t n, const void * w, const void * x, size_t, float * out) {
    const uint16_t * a = static_cast<const uint16_t *>(w);
    const uint16_t * b = static_cast<const uint16_t *>(x);
    *out = dot_float16(n, [&](int64_t i, float * p, float * q) { *p = h2f(a[i]); *q = h2f(b[i]); });
}

void dot_bf16(int64_t n, const void * w, const void * x, size_t, float * out) {
    const uint16_t * a = static_cast<const uint16_t *>(w);
    const uint16_t * b = static_cast<const uint16_t *>(x);
    *out = dot_float16(n, [&](int64_t i, float * p, float * q) { *p = bf16_to_fp32(a[i]); *q = bf16_to_fp32(b[i]); });
}

// sum_b d_w * d_x * sum_j (q_w[j] - 8) * q_x[j]
void dot_q4_0(int64_t n, const void * w, const void * x, size_t, float * out) {
    const block_q4_0 * a = static_cast<const block_q4_0 *>(w);
    const block_q8_0 * b = static_cast<const block_q8_0 *>(x);
    float sum = 0.0f;
    for (int64_t ib = 0; ib < n / 32; ++ib) {
        int sumi = 0;
        for (int j = 0; j < 16; ++j) {
            sumi += ((a[ib].qs[j] & 0x0f) - 8) * b[ib].qs[j];
            sumi += ((a[ib].qs[j] >> 4) - 8) * b[ib].qs[j + 16];
        }
        sum = __builtin_fmaf(static_cast<float>(sumi), h2f(a[ib].d) * h2f(b[ib].d), sum);
    }
    *out = sum;
}

// sum_b d_w * d_x * sum_j q_w[j] * q_x[j] + m_w * s_x
void dot_q4_1(int64_t n, const void * w, const void * x, size_t, float * out) {
    const block_q4_1 * a = static_cast<const block_q4_1 *>(w);
    const block_q8_1 * b = static_cast<const block_q8_1 *>(x);
    float sum = 0.0f;
    for (int64_t ib = 0; ib < n / 32; ++ib) {
        int sumi = 0;
        for (int j = 0; j < 16; ++j) {
            sumi += (a[ib].qs[j] & 0x0f) * b[ib].qs[j];
            sumi += (a[ib].qs[j] >> 4) * b[ib].qs[j + 16];
        }
        sum = __builtin_fmaf(static_cast<float>(sumi), h2f(a[ib].d) * h2f(b[ib].d), sum);
        sum = __builtin_fmaf(h2f(a[ib].m), h2f(b[ib].s), sum);
    }
    *out = sum;
}

inline uint32_t load_u32(const uint8_t * p) {
    uint32_t v;
    std::memcpy(&v, p, 4);
    return v;
}

// sum_b d_w * d_x * sum_j (q_w[j] - 16) * q_x[j]; bit j of qh is bit 4 of element j
void dot_q5_0(int64_t n, const void * w, const void * x, size_t, float * out) {
    const block_q5_0 * a = static_cast<const block_q5_0 *>(w);
    const block_q8_0 * b = static_cast<const block_q8_0 *>(x);
    float sum = 0.0f;
    for (int64_t ib = 0; ib < n / 32; ++ib) {
        const uint32_t qh = load_u32(a[ib].qh);
        int sumi = 0;
        for (int j = 0; j < 16; ++j) {
            const int v0 = ((a[ib].qs[j] & 0x0f) | (((qh >> j) & 1) << 4)) - 16;
            const int v1 = ((a[ib].qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4)) - 16;
            sumi += v0 * b[ib].qs[j] + v1 * b[ib].qs[j + 16];
        }
        sum = __builtin_fmaf(static_cast<float>(sumi), h2f(a[ib].d) * h2f(b[ib].d), sum);
    }
    *out = sum;
}

void dot_q5_1(int64_t n, const void * w, const void * x, size_t, float * out) {
    const block_q5_1 * a = static_cast<const block_q5_1 *>(w);
    const block_q8_1 * b = static_cast<const block_q8_1 *>(x);
    float sum = 0.0f;
    for (int64_t ib = 0; ib < n / 32; ++ib) {
        const uint32_t qh = load_u32(a[ib].qh);
        int sumi = 0;
        for (int j = 0; j < 16; ++j) {
            const int v0 = (a[ib].qs[j] & 0x0f) | (((qh >> j) & 1) << 4);
            const int v1 = (a[ib].qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4);
            sumi += v0 * b[ib].qs[j] + v1 * b[ib].qs[j + 16];
        }
        sum = __builtin_fmaf(static_cast<float>(sumi), h2f(a[ib].d) * h2f(b[ib].d), sum);
        sum = __builtin_fmaf(h2f(a[ib].m), h2f(b[ib].s), sum);
    }
    *out = sum;
}

void dot_q8_0(int64_t n, const void * w, const void * x, size_t, float * out) {
    const block_q8_0 * a = static_cast<const block_q8_0 *>(w);
    const block_q8_0 * b = static_cast<const block_q8_0 *>(x);
    float sum = 0.0f;
    for (int64_t ib = 0; ib < n / 32; ++ib) {
        int sumi = 0;
        for (int j = 0; j < 32; ++j) sumi += a[ib].qs[j] * b[ib].qs[j];
        sum = __builtin_fmaf(static_cast<float>(sumi), h2f(a[ib].d) * h2f(b[ib].d), sum);
    }
    *out = sum;
}

// Q2_K: 16 groups of 16, x = d*sc*q - dmin*m with q in 0..3.
// dot = d_x * (d * sum_g sc_g * sum q*q8  -  dmin * sum_g m_g * bsum_g)
void dot_q2_K(int64_t n, const void * w, const void * x, size_t, float * out) {
    const block_q2_K * a = static_cast<const block_q2_K *>(w);
    const block_q8_K * b = static_cast<const block_q8_K *>(x);
    float sum = 0.0f;
    for (int64_t ib = 0; ib < n / 256; ++ib) {
        const uint8_t * sc = a[ib].scales;
        int summs = 0;
        for (int g = 0; g < 16; ++g) summs += b[ib].bsums[g] * (sc[g] >> 4);
        int isum = 0;
        for (int half = 0; half < 2; ++half) {        // 128 elements, 32 bytes of qs
            const uint8_t * q2 = a[ib].qs + 32 * half;
            const int8_t * q8 = b[ib].qs + 128 * half;
            for (int s = 0; s < 4; ++s) {             // 2-bit plane at shift 2*s
                for (int h = 0; h < 2; ++h) {         // group of 16
                    const int g = 8 * half + 2 * s + h;
                    int isuml = 0;
                    for (int l = 16 * h; l < 16 * h + 16; ++l) isuml += q8[32 * s + l] * ((q2[l] >> (2 * s)) & 3);
                    isum += (sc[g] & 0x0f) * isuml;
                }
            }
        }
        sum = __builtin_fmaf(static_cast<float>(isum), h2f(a[ib].d) * b[ib].d, sum);
        sum = __builtin_fmaf(-(h2f(a[ib].dmin) * b[ib].d), static_cast<float>(summs), sum);
    }
    *out = sum;
}

// Unpack the 16 6-bit Q3_K scales (biased by 32) from 12 bytes.
void unpack_q3_K_scales(const uint8_t * s, int * sc) {
    for (int g = 0; g < 16; ++g) {
        const int lo = g < 8 ? (s[g] & 0x0f) : (s[g - 8] >> 4);
        const int hi = (s[8 + (g & 3)] >> (2 * (g >> 2))) & 3;
        sc[g] = (lo | (hi << 4)) - 32;
    }
}

// Q3_K: q = 2 low bits - (hmask bit ? 0 : 4), 16 groups with signed scales.
void dot_q3_K(int64_t n, const void * w, const void * x, size_t, float * out) {
    const block_q3_K * a = static_cast<const block_q3_K *>(w);
    const block_q8_K * b = static_cast<const block_q8_K *>(x);
    float sum = 0.0f;
    for (int64_t ib = 0; ib < n / 256; ++ib) {
        int sc[16];
        unpack_q3_K_scales(a[ib].scales, sc);
        int isum = 0;
        for (int half = 0; half < 2; ++half) {
            const uint8_t * q3 = a[ib].qs + 32 * half;
            const int8_t * q8 = b[ib].qs + 128 * half;
            for (int s = 0; s < 4; ++s) {
                const int hbit = 4 * half + s;
                for (int h = 0; h < 2; ++h) {
                    int isuml = 0;
                    for (int l = 16 * h; l < 16 * h + 16; ++l) {
                        const int q = ((q3[l] >> (2 * s)) & 3) - (((a[ib].hmask[l] >> hbit) & 1) ? 0 : 4);
                        isuml += q8[32 * s + l] * q;
                    }
                    isum += sc[8 * half + 2 * s + h] * isuml;
                }
            }
        }
        sum = __builtin_fmaf(static_cast<float>(isum), h2f(a[ib].d) * b[ib].d, sum);
    }
    *out = sum;
}

// 8 scales and 8 mins (6 bits) of Q4_K / Q5_K.
void unpack_k4_scales(const uint8_t * s, int * sc, int * mn) {
    for (int j = 0; j < 8; ++j) {
        if (j < 4) {
            sc[j] = s[j] & 63;
            mn[j] = s[j + 4] & 63;
        } else {
            sc[j] = (s[j + 4] & 0x0f) | ((s[j - 4] >> 6) << 4);
            mn[j] = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
        }
    }
}

// Q4_K / Q5_K: 8 groups of 32; x = d*sc*q - dmin*m.
// dot = d_x * (d * sum_g sc_g * sum q*q8  -  dmin * sum_g m_g * (bsum_2g + bsum_2g+1))
template <bool Five>
void dot_q45_K(int64_t n, const void * w, const void * x, size_t, float * out) {
    using Block = std::conditional_t<Five, block_q5_K, block_q4_K>;
    const Block * a = static_cast<const Block *>(w);
    const block_q8_K * b = static_cast<const block_q8_K *>(x);
    float sum = 0.0f;
    for (int64_t ib = 0; ib < n / 256; ++ib) {
        int sc[8], mn[8];
        unpack_k4_scales(a[ib].scales, sc, mn);
        int summs = 0;
        for (int g = 0; g < 8; ++g) summs += mn[g] * (b[ib].bsums[2 * g] + b[ib].bsums[2 * g + 1]);
        int isum = 0;
        for (int c = 0; c < 4; ++c) {                 // 64 elements, 32 bytes of qs
            const uint8_t * q4 = a[ib].qs + 32 * c;
            const int8_t * q8 = b[ib].qs + 64 * c;
            int lo = 0, hi = 0;
            for (int l = 0; l < 32; ++l) {
                int ql = q4[l] & 0x0f, qh = q4[l] >> 4;
                if constexpr (Five) {
                    ql |= ((a[ib].qh[l] >> (2 * c)) & 1) << 4;
                    qh |= ((a[ib].qh[l] >> (2 * c + 1)) & 1) << 4;
                }
                lo += ql * q8[l];
                hi += qh * q8[32 + l];
            }
            isum += sc[2 * c] * lo + sc[2 * c + 1] * hi;
        }
        sum = __builtin_fmaf(static_cast<float>(isum), h2f(a[ib].d) * b[ib].d, sum);
        sum = __builtin_fmaf(-(h2f(a[ib].dmin) * b[ib].d), static_cast<float>(summs), sum);
    }
    *out = sum;
}

// Q6_K: q = (4 low bits | 2 high bits << 4) - 32, 16 groups of 16, int8 scales.
void dot_q6_K(int64_t n, const void * w, const void * x, size_t, float * out) {
    const block_q6_K * a = static_cast<const block_q6_K *>(w);
    const block_q8_K * b = static_cast<const block_q8_K *>(x);
    float sum = 0.0f;
    for (int64_t ib = 0; ib < n / 256; ++ib) {
        int isum = 0;
        for (int half = 0; half < 2; ++half) {        // 128 elements
            const uint8_t * ql = a[ib].ql + 64 * half;
            const uint8_t * qh = a[ib].qh + 32 * half;
            const int8_t * q8 = b[ib].qs + 128 * half;
            const int8_t * sc = a[ib].scales + 8 * half;
            for (int p = 0; p < 4; ++p) {             // quarter p: elements 32p..32p+31
                for (int h = 0; h < 2; ++h) {
                    int isuml = 0;
                    for (int l = 16 * h; l < 16 * h + 16; ++l) {
                        const int lo = (p & 1) ? ql[l + 32] : ql[l];
                        const int q4 = (p >> 1) ? (lo >> 4) : (lo & 0x0f);
                        const int q = (q4 | (((qh[l] >> (2 * p)) & 3) << 4)) - 32;
                        isuml += q * q8[32 * p + l];
                    }
                    isum += sc[2 * p + h] * isuml;
                }
            }
        }
        sum = __builtin_fmaf(static_cast<float>(isum), h2f(a[ib].d) * b[ib].d, sum);
    }
    *out = sum;
}

}  // namespace

void quantize_row_q8_0_act(const float * x, void * y, int64_t n) {
    quantize_q8_32<false>(x, static_cast<uint8_t *>(y), n, sizeof(block_q8_0));
}

void quantize_row_q8_1_act(const float * x, void * y, int64_t n) {
    quantize_q8_32<true>(x, static_cast<uint8_t *>(y), n, sizeof(block_q8_1));
}

// Q8_K as llama.cpp's quantize_row_q8_K_ref: scale from the signed element of
// largest magnitude (it maps to -127), ties to even, clamp at 127, 16-sums.
void quantize_row_q8_K_act(const float * x, void * vy, int64_t n) {
    block_q8_K * y = static_cast<block_q8_K *>(vy);
    for (int64_t ib = 0; ib < n / 256; ++ib, x += 256) {
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < 256; ++j) {
            const float ax = std::fabs(x[j]);
            if (ax > amax) {
                amax = ax;
                max = x[j];
            }
        }
        if (amax == 0.0f) {
            y[ib].d = 0.0f;
            std::memset(y[ib].qs, 0, sizeof(y[ib].qs));
            std::memset(y[ib].bsums, 0, sizeof(y[ib].bsums));
            continue;
        }
        const float iscale = -127.0f / max;
        for (int j = 0; j < 256; ++j) {
            const int v = nearest_int(iscale * x[j]);
            y[ib].qs[j] = static_cast<int8_t>(v < 127 ? v : 127);
        }
        for (int g = 0; g < 16; ++g) {
            int s = 0;
            for (int l = 0; l < 16; ++l) s += y[ib].qs[16 * g + l];
            y[ib].bsums[g] = static_cast<int16_t>(s);
        }
        y[ib].d = 1.0f / iscale;
    }
}

void convert_row_f16_act(const float * x, void * y, int64_t n) {
    uint16_t * h = static_cast<uint16_t *>(y);
    for (int64_t i = 0; i < n; ++i) h[i] = fp32_to_fp16(x[i]);
}

void convert_row_bf16_act(const float * x, void * y, int64_t n) {
    uint16_t * h = static_cast<uint16_t *>(y);
    for (int64_t i = 0; i < n; ++i) h[i] = fp32_to_bf16(x[i]);
}

bool scalar_kernels(TensorType t, TypeKernels * k) {
    *k = TypeKernels{};
    switch (t) {
        case TensorType::F32:  *k = {TensorType::F32, nullptr, dot_f32, nullptr}; return true;
        case TensorType::F16:  *k = {TensorType::F16, convert_row_f16_act, dot_f16, nullptr}; return true;
        case TensorType::BF16: *k = {TensorType::BF16, convert_row_bf16_act, dot_bf16, nullptr}; return true;
        case TensorType::Q4_0: *k = {TensorType::Q8_0, quantize_row_q8_0_act, dot_q4_0, nullptr}; return true;
        case TensorType::Q4_1: *k = {TensorType::Q8_1, quantize_row_q8_1_act, dot_q4_1, nullptr}; return true;
        case TensorType::Q5_0: *k = {TensorType::Q8_0, quantize_row_q8_0_act, dot_q5_0, nullptr}; return true;
        case TensorType::Q5_1: *k = {TensorType::Q8_1, quantize_row_q8_1_act, dot_q5_1, nullptr}; return true;
        case TensorType::Q8_0: *k = {TensorType::Q8_0, quantize_row_q8_0_act, dot_q8_0, nullptr}; return true;
        case TensorType::Q2_K: *k = {TensorType::Q8_K, quantize_row_q8_K_act, dot_q2_K, nullptr}; return true;
        case TensorType::Q3_K: *k = {TensorType::Q8_K, quantize_row_q8_K_act, dot_q3_K, nullptr}; return true;
        case TensorType::Q4_K: *k = {TensorType::Q8_K, quantize_row_q8_K_act, dot_q45_K<false>, nullptr}; return true;
        case TensorType::Q5_K: *k = {TensorType::Q8_K, quantize_row_q8_K_act, dot_q45_K<true>, nullptr}; return true;
        case TensorType::Q6_K: *k = {TensorType::Q8_K, quantize_row_q8_K_act, dot_q6_K, nullptr}; return true;
        default: return false;
    }
}

}  // namespace gb::cpu
