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

// 1 + a*x*x as the FMA GCC contracts ggml's expression into (it fills its table so)
float gelu_tanh(float x) { return 0.5f * x * (1.0f + std::tanh(kSqrt2OverPi * x * std::fma(kGeluCoefA * x, x, 1.0f))); }

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

// The 16-lane order of llama.cpp's F16 matmul on AVX-512 (llamafile tinyBLAS):
// lane l sums elements l, l + 16, ... with FMAs; the lanes are then added as
// _mm512_reduce_add_ps does (l + 8, then + 4, + 2, + 1).
float reduce16(const float * a) {
    float t[8];
    for (int l = 0; l < 8; ++l) t[l] = a[l] + a[l + 8];
    for (int l = 0; l < 4; ++l) t[l] = t[l] + t[l + 4];
    return (t[0] + t[2]) + (t[1] + t[3]);
}

float dot_f16_scalar(const uint16_t * q, const uint16_t * k, int32_t n) {
    const float * t = f16_table();
    float acc[16] = {};
    for (int32_t i = 0; i < n; ++i) acc[i & 15] = std::fma(t[q[i]], t[k[i]], acc[i & 15]);
    return reduce16(acc);
}

// The order of ggml_vec_dot_f16 on AVX-512 (llama.cpp's F16 matmul for one
// token): 4 accumulators of 16 lanes over 64-element steps, added (0+2)+(1+3),
// then reduce16; a tail of n % 64 elements is added in double.
float reduce64(const float * a) {
    float v[16];
    for (int l = 0; l < 16; ++l) v[l] = (a[l] + a[l + 32]) + (a[l + 16] + a[l + 48]);
    return reduce16(v);
}

float dot_f16_vec_scalar(const uint16_t * q, const uint16_t * k, int32_t n) {
    const float * t = f16_table();
    float acc[64] = {};
    const int32_t n64 = n & ~63;
    for (int32_t i = 0; i < n64; ++i) acc[i & 63] = std::fma(t[q[i]], t[k[i]], acc[i & 63]);
    double sum = reduce64(acc);
    for (int32_t i = n64; i < n; ++i) sum += double(t[q[i]] * t[k[i]]);
    return float(sum);
}

void axpy_f16_scalar(float * y, float a, const uint16_t * x, int32_t n) {
    const float * t = f16_table();
    for (int32_t i = 0; i < n; ++i) y[i] = std::fma(a, t[x[i]], y[i]);
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

// Same order as dot_f16_scalar: acc0 holds lanes 0-7, acc1 lanes 8-15, and
// hsum(acc0 + acc1) adds them as reduce16 does.
GB_AVX2 inline __m256 ld(const uint16_t * p) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i *>(p))); }

GB_AVX2 float dot_f16_avx2(const uint16_t * q, const uint16_t * k, int32_t n) {
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int32_t i = 0;
    for (; i + 16 <= n; i += 16) {
        acc0 = _mm256_fmadd_ps(ld(q + i), ld(k + i), acc0);
        acc1 = _mm256_fmadd_ps(ld(q + i + 8), ld(k + i + 8), acc1);
    }
    if (i < n) {  // tail: finish the lanes in scalar
        alignas(32) float acc[16];
        _mm256_store_ps(acc, acc0);
        _mm256_store_ps(acc + 8, acc1);
        for (; i < n; ++i) acc[i & 15] = std::fma(_cvtsh_ss(q[i]), _cvtsh_ss(k[i]), acc[i & 15]);
        return reduce16(acc);
    }
    return hsum(_mm256_add_ps(acc0, acc1));
}

// Same order as dot_f16_vec_scalar.
GB_AVX2 float dot_f16_vec_avx2(const uint16_t * q, const uint16_t * k, int32_t n) {
    __m256 lo[4], hi[4];
    for (int j = 0; j < 4; ++j) lo[j] = hi[j] = _mm256_setzero_ps();
    int32_t i = 0;
    for (; i + 64 <= n; i += 64) {
        for (int j = 0; j < 4; ++j) {
            lo[j] = _mm256_fmadd_ps(ld(q + i + 16 * j), ld(k + i + 16 * j), lo[j]);
            hi[j] = _mm256_fmadd_ps(ld(q + i + 16 * j + 8), ld(k + i + 16 * j + 8), hi[j]);
        }
    }
    const __m256 l = _mm256_add_ps(_mm256_add_ps(lo[0], lo[2]), _mm256_add_ps(lo[1], lo[3]));
    const __m256 h = _mm256_add_ps(_mm256_add_ps(hi[0], hi[2]), _mm256_add_ps(hi[1], hi[3]));
    double sum = hsum(_mm256_add_ps(l, h));
    for (; i < n; ++i) sum += double(_cvtsh_ss(q[i]) * _cvtsh_ss(k[i]));
    return float(sum);
}

GB_AVX2 void axpy_f16_avx2(float * y, float a, const uint16_t * x, int32_t n) {
    const __m256 va = _mm256_set1_ps(a);
    int32_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 xv = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i *>(x + i)));
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, xv, _mm256_loadu_ps(y + i)));
    }
    for (; i < n; ++i) y[i] = std::fma(a, _cvtsh_ss(x[i]), y[i]);
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
    float (*dot_f16)(const uint16_t *, const uint16_t *, int32_t)      = dot_f16_scalar;
    float (*dot_f16_vec)(const uint16_t *, const uint16_t *, int32_t)  = dot_f16_vec_scalar;
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
            r.dot_f16_vec = dot_f16_vec_avx2;
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
        // the FMAs GCC contracts ggml's rope into (x0*c - x1*s, x0*s + x1*c)
        a = std::fma(x0, c, -(x1 * s));
        b = std::fma(x0, s, x1 * c);
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

// exp(x) as ggml's AVX-512 ggml_v_expf computes it (the polynomial of ARM's
// optimized routines, max error ~1.5 ulp), which llama.cpp's soft_max uses.
float expf_ggml(float x) {
    const float r = 0x1.8p23f;
    const float n = std::fma(x, 0x1.715476p+0f, r) - r;  // round(x / ln 2)
    if (!(std::fabs(n) <= 192.0f)) return x > 0.0f ? INFINITY : 0.0f;
    const float b = std::fma(-n, 0x1.7f7d1cp-20f, std::fma(-n, 0x1.62e4p-1f, x));
    const float u = b * b;
    const float j = std::fma(std::fma(std::fma(0x1.0e4020p-7f, b, 0x1.573e2ep-5f), u, std::fma(0x1.555e66p-3f, b, 0x1.fffdb6p-2f)), u,
                             std::fma(0x1.ffffecp-1f, b, 1.0f));
    return std::ldexp(j, int(n));
}

int64_t attend_scratch_floats(int32_t n_ctx, int32_t head_dim_k, int32_t head_dim_v) {
    return (int64_t(n_ctx) + 64) + 64 * int64_t(head_dim_v) + (head_dim_k + 1) / 2;
}

namespace {

// attend() over any key/value row layout: row(j) is the cache row holding
// position j. Sums run by position j (lanes j % n_lanes, 16-key chunks of
// positions), so the result depends only on the rows' contents, never on where
// they are stored.
template <typename RowOf>
void attend_rows(float * out, const float * q, const uint16_t * k, int64_t k_stride, const uint16_t * v, int64_t v_stride,
                 RowOf row, int32_t lo, int32_t hi, int32_t head_dim_k, int32_t head_dim_v, float scale, bool one_query,
                 float * scratch) {
    // llama.cpp without flash attention: kq = K Q^T with Q rounded to F16,
    // p = soft_max(kq * scale) in f32, kqv = V^T p with p rounded to F16. Its
    // F16 products sum in 16 lanes (reduce16) in a batch, in 64 (reduce64)
    // for one query (ggml_vec_dot_f16); lanes over key positions count from
    // 0. Its softmax sums 16-key chunks (reduce16) into a double.
    const Kernels & kn = kernels();
    const int32_t n_lanes = one_query ? 64 : 16;
    const int32_t c0 = lo & ~15;                    // first 16-aligned chunk
    float * scores     = scratch;                   // [hi - c0 rounded up to 16]
    float * lanes      = scratch + (hi - c0 + 16);  // [n_lanes, head_dim_v]
    uint16_t * q16     = reinterpret_cast<uint16_t *>(lanes + 64 * int64_t(head_dim_v));  // [head_dim_k]
    kn.to_f16(q16, q, head_dim_k);
    const auto dot = one_query ? kn.dot_f16_vec : kn.dot_f16;

    // s_j = scale * q . k_j
    float max = -INFINITY;
    for (int32_t j = lo; j < hi; ++j) {
        const float s = dot(q16, k + int64_t(row(j)) * k_stride, head_dim_k) * scale;
        scores[j - c0] = s;
        max = std::max(max, s);
    }
    // e_j = exp(s_j - max) (0 outside [lo, hi)); sum over 16-key chunks
    const int32_t c1 = (hi + 15) & ~15;
    for (int32_t j = c0; j < c1; ++j) scores[j - c0] = j >= lo && j < hi ? expf_ggml(scores[j - c0] - max) : 0.0f;
    double sum = 0.0;
    for (int32_t c = c0; c < c1; c += 16) sum += double(reduce16(scores + (c - c0)));
    const float inv = float(1.0 / sum);

    // out = sum_j f16(e_j * inv) v_j, in lane j % n_lanes of n_lanes partial sums
    std::fill(lanes, lanes + n_lanes * int64_t(head_dim_v), 0.0f);
    const float * t = f16_table();
    for (int32_t j = lo; j < hi; ++j) {
        const float p = t[fp32_to_fp16(scores[j - c0] * inv)];
        kn.axpy_f16(lanes + int64_t(j % n_lanes) * head_dim_v, p, v + int64_t(row(j)) * v_stride, head_dim_v);
    }
    float col[64];
    for (int32_t d = 0; d < head_dim_v; ++d) {
        for (int l = 0; l < n_lanes; ++l) col[l] = lanes[int64_t(l) * head_dim_v + d];
        out[d] = one_query ? reduce64(col) : reduce16(col);
    }
}

}  // namespace

void attend(float * out, const float * q, const uint16_t * k, int64_t k_stride, const uint16_t * v, int64_t v_stride,
            int32_t lo, int32_t hi, int32_t head_dim_k, int32_t head_dim_v, float scale, bool one_query, float * scratch) {
    attend_rows(out, q, k, k_stride, v, v_stride, [](int32_t j) { return j; }, lo, hi, head_dim_k, head_dim_v, scale,
                one_query, scratch);
}

void attend_mapped(float * out, const float * q, const uint16_t * k, int64_t k_stride, const uint16_t * v, int64_t v_stride,
                   int32_t lo, int32_t hi, int32_t tail_from, const int32_t * tail_rows, int32_t head_dim_k,
                   int32_t head_dim_v, float scale, bool one_query, float * scratch) {
    attend_rows(out, q, k, k_stride, v, v_stride,
                [tail_from, tail_rows](int32_t j) { return j < tail_from ? j : tail_rows[j - tail_from]; }, lo, hi,
                head_dim_k, head_dim_v, scale, one_query, scratch);
}

float dot_f16(const uint16_t * a, const uint16_t * b, int32_t n) { return kernels().dot_f16(a, b, n); }
void axpy_f16(float * y, float a, const uint16_t * x, int32_t n) { kernels().axpy_f16(y, a, x, n); }
float softmax_exp(float x) { return expf_ggml(x); }
float sum16(const float * a) { return reduce16(a); }
const float * f16_to_f32_table() { return f16_table(); }

}  // namespace gb::ops
