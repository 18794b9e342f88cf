// Row conversion for the 32-element block types (Q4_0..Q8_1), F32/F16/BF16,
// and the dequantize_row / quantize_row_ref dispatch. The quantizers follow
// ggml's round-to-nearest reference ones operation for operation so the bytes
// match llama.cpp's (this file is compiled with -ffp-contract=off for that).
#include "quants.h"

#include "glassbox/tensor_type.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace gb {

namespace {

inline float h2f(uint16_t h) { return fp16_to_fp32(h); }
inline uint16_t f2h(float f) { return fp32_to_fp16(f); }

// Signed value of largest magnitude in x[0..n) (first one on ties), and its magnitude.
inline float signed_absmax(const float * x, int n, float * amax_out) {
    float amax = 0.0f;
    float max = 0.0f;
    for (int j = 0; j < n; ++j) {
        const float a = std::fabs(x[j]);
        if (amax < a) {
            amax = a;
            max = x[j];
        }
    }
    *amax_out = amax;
    return max;
}

inline void min_max(const float * x, int n, float * mn, float * mx) {
    float lo = 3.402823466e+38f;
    float hi = -3.402823466e+38f;
    for (int j = 0; j < n; ++j) {
        if (x[j] < lo) lo = x[j];
        if (x[j] > hi) hi = x[j];
    }
    *mn = lo;
    *mx = hi;
}

}  // namespace

// ---- Q4_0: x = d * (q - 8), d = signed absmax / -8 ------------------------

void quantize_row_q4_0_ref(const float * x, block_q4_0 * y, int64_t n) {
    const int64_t nb = n / QK4_0;
    for (int64_t i = 0; i < nb; ++i, x += QK4_0) {
        float amax;
        const float max = signed_absmax(x, QK4_0, &amax);
        const float d = max / -8;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = f2h(d);
        for (int j = 0; j < QK4_0 / 2; ++j) {
            // truncation of a value >= 0.5 == round half up
            const int lo = std::min(15, static_cast<int>(x[j] * id + 8.5f));
            const int hi = std::min(15, static_cast<int>(x[j + QK4_0 / 2] * id + 8.5f));
            y[i].qs[j] = static_cast<uint8_t>(lo | (hi << 4));
        }
    }
}

void dequantize_row_q4_0(const block_q4_0 * x, float * y, int64_t n) {
    const int64_t nb = n / QK4_0;
    for (int64_t i = 0; i < nb; ++i, y += QK4_0) {
        const float d = h2f(x[i].d);
        for (int j = 0; j < QK4_0 / 2; ++j) {
            y[j] = static_cast<float>((x[i].qs[j] & 0x0f) - 8) * d;
            y[j + QK4_0 / 2] = static_cast<float>((x[i].qs[j] >> 4) - 8) * d;
        }
    }
}

// ---- Q4_1: x = d * q + m, m = min, d = (max - min) / 15 -------------------

void quantize_row_q4_1_ref(const float * x, block_q4_1 * y, int64_t n) {
    const int64_t nb = n / QK4_1;
    for (int64_t i = 0; i < nb; ++i, x += QK4_1) {
        float mn, mx;
        min_max(x, QK4_1, &mn, &mx);
        const float d = (mx - mn) / 15;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = f2h(d);
        y[i].m = f2h(mn);
        for (int j = 0; j < QK4_1 / 2; ++j) {
            const int lo = std::min(15, static_cast<int>((x[j] - mn) * id + 0.5f));
            const int hi = std::min(15, static_cast<int>((x[j + QK4_1 / 2] - mn) * id + 0.5f));
            y[i].qs[j] = static_cast<uint8_t>(lo | (hi << 4));
        }
    }
}

void dequantize_row_q4_1(const block_q4_1 * x, float * y, int64_t n) {
    const int64_t nb = n / QK4_1;
    for (int64_t i = 0; i < nb; ++i, y += QK4_1) {
        const float d = h2f(x[i].d);
        const float m = h2f(x[i].m);
        for (int j = 0; j < QK4_1 / 2; ++j) {
            y[j] = static_cast<float>(x[i].qs[j] & 0x0f) * d + m;
            y[j + QK4_1 / 2] = static_cast<float>(x[i].qs[j] >> 4) * d + m;
        }
    }
}

// ---- Q5_0: x = d * (q - 16), d = signed absmax / -16 ----------------------

void quantize_row_q5_0_ref(const float * x, block_q5_0 * y, int64_t n) {
    const int64_t nb = n / QK5_0;
    for (int64_t i = 0; i < nb; ++i, x += QK5_0) {
        float amax;
        const float max = signed_absmax(x, QK5_0, &amax);
        const float d = max / -16;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = f2h(d);
        uint32_t qh = 0;
        for (int j = 0; j < QK5_0 / 2; ++j) {
            const int lo = std::min(31, static_cast<int>(x[j] * id + 16.5f));
            const int hi = std::min(31, static_cast<int>(x[j + QK5_0 / 2] * id + 16.5f));
            y[i].qs[j] = static_cast<uint8_t>((lo & 0x0f) | ((hi & 0x0f) << 4));
            qh |= static_cast<uint32_t>(lo >> 4) << j;
            qh |= static_cast<uint32_t>(hi >> 4) << (j + QK5_0 / 2);
        }
        for (int b = 0; b < 4; ++b) y[i].qh[b] = static_cast<uint8_t>(qh >> (8 * b));
    }
}

namespace {
inline uint32_t load_qh(const uint8_t * p) {
    return uint32_t(p[0]) | (uint32_t(p[1]) << 8) | (uint32_t(p[2]) << 16) | (uint32_t(p[3]) << 24);
}
}  // namespace

void dequantize_row_q5_0(const block_q5_0 * x, float * y, int64_t n) {
    const int64_t nb = n / QK5_0;
    for (int64_t i = 0; i < nb; ++i, y += QK5_0) {
        const float d = h2f(x[i].d);
        const uint32_t qh = load_qh(x[i].qh);
        for (int j = 0; j < QK5_0 / 2; ++j) {
            const int lo = (x[i].qs[j] & 0x0f) | static_cast<int>(((qh >> j) & 1u) << 4);
            const int hi = (x[i].qs[j] >> 4) | static_cast<int>(((qh >> (j + 16)) & 1u) << 4);
            y[j] = static_cast<float>(lo - 16) * d;
            y[j + QK5_0 / 2] = static_cast<float>(hi - 16) * d;
        }
    }
}

// ---- Q5_1: x = d * q + m, d = (max - min) / 31 ----------------------------

void quantize_row_q5_1_ref(const float * x, block_q5_1 * y, int64_t n) {
    const int64_t nb = n / QK5_1;
    for (int64_t i = 0; i < nb; ++i, x += QK5_1) {
        float mn, mx;
        min_max(x, QK5_1, &mn, &mx);
        const float d = (mx - mn) / 31;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = f2h(d);
        y[i].m = f2h(mn);
        uint32_t qh = 0;
        for (int j = 0; j < QK5_1 / 2; ++j) {
            // no clamp here (as in ggml): the value cannot exceed 31.5
            const int lo = static_cast<uint8_t>((x[j] - mn) * id + 0.5f);
            const int hi = static_cast<uint8_t>((x[j + QK5_1 / 2] - mn) * id + 0.5f);
            y[i].qs[j] = static_cast<uint8_t>((lo & 0x0f) | ((hi & 0x0f) << 4));
            qh |= static_cast<uint32_t>((lo >> 4) & 1) << j;
            qh |= static_cast<uint32_t>((hi >> 4) & 1) << (j + QK5_1 / 2);
        }
        for (int b = 0; b < 4; ++b) y[i].qh[b] = static_cast<uint8_t>(qh >> (8 * b));
    }
}

void dequantize_row_q5_1(const block_q5_1 * x, float * y, int64_t n) {
    const int64_t nb = n / QK5_1;
    for (int64_t i = 0; i < nb; ++i, y += QK5_1) {
        const float d = h2f(x[i].d);
        const float m = h2f(x[i].m);
        const uint32_t qh = load_qh(x[i].qh);
        for (int j = 0; j < QK5_1 / 2; ++j) {
            const int lo = (x[i].qs[j] & 0x0f) | static_cast<int>(((qh >> j) & 1u) << 4);
            const int hi = (x[i].qs[j] >> 4) | static_cast<int>(((qh >> (j + 16)) & 1u) << 4);
            y[j] = static_cast<float>(lo) * d + m;
            y[j + QK5_1 / 2] = static_cast<float>(hi) * d + m;
        }
    }
}

// ---- Q8_0 / Q8_1: x = d * q, d = absmax / 127, q = round half away ---------

void quantize_row_q8_0_ref(const float * x, block_q8_0 * y, int64_t n) {
    const int64_t nb = n / QK8_0;
    for (int64_t i = 0; i < nb; ++i, x += QK8_0) {
        float amax = 0.0f;
        for (int j = 0; j < QK8_0; ++j) amax = std::max(amax, std::fabs(x[j]));
        const float d = amax / 127;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = f2h(d);
        for (int j = 0; j < QK8_0; ++j) y[i].qs[j] = static_cast<int8_t>(std::round(x[j] * id));
    }
}

void dequantize_row_q8_0(const block_q8_0 * x, float * y, int64_t n) {
    const int64_t nb = n / QK8_0;
    for (int64_t i = 0; i < nb; ++i, y += QK8_0) {
        const float d = h2f(x[i].d);
        for (int j = 0; j < QK8_0; ++j) y[j] = static_cast<float>(x[i].qs[j]) * d;
    }
}

void quantize_row_q8_1_ref(const float * x, block_q8_1 * y, int64_t n) {
    const int64_t nb = n / QK8_1;
    for (int64_t i = 0; i < nb; ++i, x += QK8_1) {
        float amax = 0.0f;
        for (int j = 0; j < QK8_1; ++j) amax = std::max(amax, std::fabs(x[j]));
        const float d = amax / 127;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = f2h(d);
        int sum = 0;
        for (int j = 0; j < QK8_1; ++j) {
            y[i].qs[j] = static_cast<int8_t>(std::round(x[j] * id));
            sum += y[i].qs[j];
        }
        y[i].s = f2h(static_cast<float>(sum) * d);
    }
}

// ---- dispatch -------------------------------------------------------------

bool dequantize_row(TensorType t, const void * src, float * dst, int64_t n) {
    const TypeTraits * tr = type_traits(static_cast<uint32_t>(t));
    if (tr == nullptr || !tr->computable || n < 0 || n % tr->block_size != 0) return false;
    switch (t) {
        case TensorType::F32:
            std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
            return true;
        case TensorType::F16: {
            const auto * h = static_cast<const uint16_t *>(src);
            for (int64_t i = 0; i < n; ++i) dst[i] = fp16_to_fp32(h[i]);
            return true;
        }
        case TensorType::BF16: {
            const auto * h = static_cast<const uint16_t *>(src);
            for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_fp32(h[i]);
            return true;
        }
        case TensorType::Q4_0: dequantize_row_q4_0(static_cast<const block_q4_0 *>(src), dst, n); return true;
        case TensorType::Q4_1: dequantize_row_q4_1(static_cast<const block_q4_1 *>(src), dst, n); return true;
        case TensorType::Q5_0: dequantize_row_q5_0(static_cast<const block_q5_0 *>(src), dst, n); return true;
        case TensorType::Q5_1: dequantize_row_q5_1(static_cast<const block_q5_1 *>(src), dst, n); return true;
        case TensorType::Q8_0: dequantize_row_q8_0(static_cast<const block_q8_0 *>(src), dst, n); return true;
        case TensorType::Q2_K: dequantize_row_q2_K(static_cast<const block_q2_K *>(src), dst, n); return true;
        case TensorType::Q3_K: dequantize_row_q3_K(static_cast<const block_q3_K *>(src), dst, n); return true;
        case TensorType::Q4_K: dequantize_row_q4_K(static_cast<const block_q4_K *>(src), dst, n); return true;
        case TensorType::Q5_K: dequantize_row_q5_K(static_cast<const block_q5_K *>(src), dst, n); return true;
        case TensorType::Q6_K: dequantize_row_q6_K(static_cast<const block_q6_K *>(src), dst, n); return true;
        default: return false;
    }
}

bool quantize_row_ref(TensorType t, const float * src, void * dst, int64_t n) {
    const TypeTraits * tr = type_traits(static_cast<uint32_t>(t));
    if (tr == nullptr || !tr->computable || n < 0 || n % tr->block_size != 0) return false;
    switch (t) {
        case TensorType::F32:
            std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
            return true;
        case TensorType::F16: {
            auto * h = static_cast<uint16_t *>(dst);
            for (int64_t i = 0; i < n; ++i) h[i] = fp32_to_fp16(src[i]);
            return true;
        }
        case TensorType::BF16: {
            auto * h = static_cast<uint16_t *>(dst);
            for (int64_t i = 0; i < n; ++i) h[i] = fp32_to_bf16(src[i]);
            return true;
        }
        case TensorType::Q4_0: quantize_row_q4_0_ref(src, static_cast<block_q4_0 *>(dst), n); return true;
        case TensorType::Q4_1: quantize_row_q4_1_ref(src, static_cast<block_q4_1 *>(dst), n); return true;
        case TensorType::Q5_0: quantize_row_q5_0_ref(src, static_cast<block_q5_0 *>(dst), n); return true;
        case TensorType::Q5_1: quantize_row_q5_1_ref(src, static_cast<block_q5_1 *>(dst), n); return true;
        case TensorType::Q8_0: quantize_row_q8_0_ref(src, static_cast<block_q8_0 *>(dst), n); return true;
        case TensorType::Q2_K: quantize_row_q2_K_ref(src, static_cast<block_q2_K *>(dst), n); return true;
        case TensorType::Q3_K: quantize_row_q3_K_ref(src, static_cast<block_q3_K *>(dst), n); return true;
        case TensorType::Q4_K: quantize_row_q4_K_ref(src, static_cast<block_q4_K *>(dst), n); return true;
        case TensorType::Q5_K: quantize_row_q5_K_ref(src, static_cast<block_q5_K *>(dst), n); return true;
        case TensorType::Q6_K: quantize_row_q6_K_ref(src, static_cast<block_q6_K *>(dst), n); return true;
        default: return false;
    }
}

}  // namespace gb
