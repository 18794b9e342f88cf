// Row-level building blocks of the optimized CPU forward pass: scalar versions
// plus AVX2/FMA/F16C versions (function target attributes, picked at run time).
#include "forward_ops.h"

#include "glassbox/tensor_type.h"

#include <algorithm>
#include <cmath>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define GB_X86 1
#define GB_AVX2 __attribute__((target("avx2,fma,f16c")))
#endif

namespace gb::ops {
namespace {

constexpr float kSqrt2OverPi = 0.79788456080286535588f;
constexpr float kGeluCoefA   = 0.044715f;

// f16 -> f32 for every half value (256 KiB), built once.
const float * f16_table() {
    static const std::vector<float> table = [] {
        std::vector<float> t(65536);
        for (uint32_t h = 0; h < 65536; ++h) t[h] = fp16_to_fp32(static_cast<uint16_t>(h));
        return t;
    }();
    return table.data();
}

float gelu_tanh(float x) { return 0.5f * x * (1.0f + std::tanh(kSqrt2OverPi * x * (1.0f + kGeluCoefA * x * x))); }

// gelu(x) for every half x, rounded to F16: what llama.cpp's CPU backend
// computes (its GGML_GELU_FP16 table); it also keeps tanh out of the loop.
const float * gelu_table() {
    static const std::vector<float> table = [] {
        std::vector<float> t(65536);
        for (uint32_t h = 0; h < 65536; ++h) t[h] = fp16_to_fp32(fp32_to_fp16(gelu_tanh(fp16_to_fp32(static_cast<uint16_t>(h)))));
        return t;
    }();
    return table.data();
}

// ---- scalar ------------------------------------------------------------------

float dot_f16_scalar(const float * q, const uint16_t * k, int32_t n) {
    const float * t = f16_table();
    float sum = 0.0f;
    for (int32_t i = 0; i < n; ++i) sum += q[i] * t[k[i]];
    return sum;
}

void axpy_f16_scalar(float * y, float a, const uint16_t * x, int32_t n) {
    const float * t = f16_table();
    for (int32_t i = 0; i < n; ++i) y[i] += a * t[x[i]];
}

void f32_to_f16_scalar(uint16_t * y, const float * x, int64_t n) {
    for (int64_t i = 0; i < n; ++i) y[i] = fp32_to_fp16(x[i]);
}

void geglu_scalar(float * y, const float * g, const float * u, int64_t n) {
    const float * t = gelu_table();
    for (int64_t i = 0; i < n; ++i) {
        const float x = g[i];
        const float a = x <= -10.0f ? 0.0f : x >= 10.0f ? x : t[fp32_to_fp16(x)];
        y[i] = a * u[i];
    }
}

// ---- AVX2 / FMA / F16C -----------------------------------------------------------

#ifdef GB_X86
GB_AVX2 float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

GB_AVX2 float dot_f16_avx2(const float * q, const uint16_t * k, int32_t n) {
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int32_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m256 k0 = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i *>(k + i)));
        const __m256 k1 = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i *>(k + i + 8)));
        acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), k0, acc0);
        acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i + 8), k1, acc1);
    }
    for (; i + 8 <= n; i += 8) {
        const __m256 k0 = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i *>(k + i)));
        acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), k0, acc0);
    }
    float sum = hsum(_mm256_add_ps(acc0, acc1));
    for (; i < n; ++i) sum += q[i] * _cvtsh_ss(k[i]);
    return sum;
}

GB_AVX2 void axpy_f16_avx2(float * y, float a, const uint16_t * x, int32_t n) {
    const __m256 va = _mm256_set1_ps(a);
    int32_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 xv = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i *>(x + i)));
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, xv, _mm256_loadu_ps(y + i)));
    }
    for (; i < n; ++i) y[i] += a * _cvtsh_ss(x[i]);
}

GB_AVX2 void f32_to_f16_avx2(uint16_t * y, const float * x, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT);
        _mm_storeu_si128(reinterpret_cast<__m128i *>(y + i), h);
    }
    for (; i < n; ++i) y[i] = _cvtss_sh(x[i], _MM_FROUND_TO_NEAREST_INT);
}

GB_AVX2 void geglu_avx2(float * y, const float * g, const float * u, int64_t n) {
    const float * t = gelu_table();
    const __m256 lo = _mm256_set1_ps(-10.0f), hi = _mm256_set1_ps(10.0f);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256  x   = _mm256_loadu_ps(g + i);
        const __m128i h   = _mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT);
        const __m256i idx = _mm256_cvtepu16_epi32(h);
        __m256 a          = _mm256_i32gather_ps(t, idx, 4);
        a = _mm256_blendv_ps(a, x, _mm256_cmp_ps(x, hi, _CMP_GE_OQ));
        a = _mm256_blendv_ps(a, _mm256_setzero_ps(), _mm256_cmp_ps(x, lo, _CMP_LE_OQ));
        _mm256_storeu_ps(y + i, _mm256_mul_ps(a, _mm256_loadu_ps(u + i)));
    }
    for (; i < n; ++i) {
        const float x = g[i];
        const float a = x <= -10.0f ? 0.0f : x >= 10.0f ? x : t[_cvtss_sh(x, _MM_FROUND_TO_NEAREST_INT)];
        y[i] = a * u[i];
    }
}
#endif

struct Kernels {
    float (*dot_f16)(const float *, const uint16_t *, int32_t)         = dot_f16_scalar;
    void (*axpy_f16)(float *, float, const uint16_t *, int32_t)        = axpy_f16_scalar;
    void (*to_f16)(uint16_t *, const float *, int64_t)                 = f32_to_f16_scalar;
    void (*geglu)(float *, const float *, const float *, int64_t)      = geglu_scalar;
    const char * name = "scalar";
};

const Kernels & kernels() {
    static const Kernels k = [] {
        Kernels r;
#ifdef GB_X86
        __builtin_cpu_init();
        if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c")) {
            r.dot_f16  = dot_f16_avx2;
            r.axpy_f16 = axpy_f16_avx2;
            r.to_f16   = f32_to_f16_avx2;
            r.geglu    = geglu_avx2;
            r.name     = "avx2";
        }
#endif
        return r;
    }();
    return k;
}

}  // namespace

const char * simd_path() { return kernels().name; }

void rmsnorm(float * y, const float * x, const float * w, int64_t n, float eps) {
    double sum = 0.0;
    for (int64_t i = 0; i < n; ++i) sum += double(x[i] * x[i]);  // float square, double sum (as ggml)
    const float scale = 1.0f / std::sqrt(float(sum / double(n)) + eps);
    if (w) {
        for (int64_t i = 0; i < n; ++i) y[i] = x[i] * scale * w[i];
    } else {
        for (int64_t i = 0; i < n; ++i) y[i] = x[i] * scale;
    }
}

void rope_table(float * cs, int32_t pos0, int32_t n_tok, int32_t head_dim, float base, float scale,
                const float * freq_factors) {
    const float theta_scale = std::pow(base, -2.0f / float(head_dim));
    const int32_t n_pairs   = head_dim / 2;
    for (int32_t t = 0; t < n_tok; ++t) {
        float theta_base = float(pos0 + t);
        float * row      = cs + int64_t(t) * head_dim;
        for (int32_t i = 0; i < n_pairs; ++i) {
            const float ff    = freq_factors ? freq_factors[i] : 1.0f;
            const float theta = scale * (theta_base / ff);
            row[2 * i]     = std::cos(theta);
            row[2 * i + 1] = std::sin(theta);
            theta_base *= theta_scale;
        }
    }
}

void rope_apply(float * v, const float * cs, int32_t head_dim, RopeStyle style) {
    const int32_t n_pairs = head_dim / 2;
    // Normal: pairs (2i, 2i+1); Neox: pairs (i, i + head_dim/2).
    const int32_t stride = style == RopeStyle::Normal ? 2 : 1;
    const int32_t off    = style == RopeStyle::Normal ? 1 : n_pairs;
    for (int32_t i = 0; i < n_pairs; ++i) {
        float & a = v[i * stride];
        float & b = v[i * stride + off];
        const float c = cs[2 * i], s = cs[2 * i + 1];
        const float x0 = a, x1 = b;
        a = x0 * c - x1 * s;
        b = x0 * s + x1 * c;
    }
}

void swiglu(float * y, const float * g, const float * u, int64_t n) {
    for (int64_t i = 0; i < n; ++i) {
        const float x = g[i];
        y[i] = x / (1.0f + std::exp(-x)) * u[i];
    }
}

void geglu(float * y, const float * g, const float * u, int64_t n) { kernels().geglu(y, g, u, n); }

void f32_to_f16(uint16_t * y, const float * x, int64_t n) { kernels().to_f16(y, x, n); }


void add(float * y, const float * x, const float * b, int64_t n) {
    for (int64_t i = 0; i < n; ++i) y[i] = x[i] + b[i];
}

void attend(float * out, const float * q, const uint16_t * k, int64_t k_stride, const uint16_t * v, int64_t v_stride,
            int32_t lo, int32_t hi, int32_t head_dim_k, int32_t head_dim_v, float scale, float * scores) {
    const Kernels & kn = kernels();
    // s_j = scale * q . k_j
    float max = -INFINITY;
    for (int32_t j = lo; j < hi; ++j) {
        const float s = kn.dot_f16(q, k + int64_t(j) * k_stride, head_dim_k) * scale;
        scores[j - lo] = s;
        max = std::max(max, s);
    }
    // p_j = exp(s_j - max) / sum
    double sum = 0.0;
    for (int32_t j = lo; j < hi; ++j) {
        const float e = std::exp(scores[j - lo] - max);
        scores[j - lo] = e;
        sum += e;
    }
    // out = sum_j p_j v_j. NOTE: llama.cpp (no flash attention) also rounds
    // Q and p to F16 for its F16 matmuls; emulating only that, without its
    // summation order, did not bring us closer to its outputs (gemma-3 is
    // sensitive at that level: llama.cpp's own flash / non-flash paths differ
    // by ~1 logit), so Q and p stay f32 here.
    std::fill(out, out + head_dim_v, 0.0f);
    const float inv = float(1.0 / sum);
    for (int32_t j = lo; j < hi; ++j) kn.axpy_f16(out, scores[j - lo] * inv, v + int64_t(j) * v_stride, head_dim_v);
}

}  // namespace gb::ops
