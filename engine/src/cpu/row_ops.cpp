// Whole-row argmax and log-sum-exp (see row_ops.h): scalar versions and
// AVX2/FMA versions (function target attributes, picked at run time).
#include "cpu/row_ops.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define GB_ROW_X86 1
#define GB_ROW_AVX2 __attribute__((target("avx2,fma")))
#endif

namespace gb::cpu {
namespace {

float row_max_scalar(const float * x, int64_t n) {
    float m = -INFINITY;
    for (int64_t i = 0; i < n; ++i) m = x[i] > m ? x[i] : m;  // NaN never wins
    return m;
}

int64_t first_equal(const float * x, int64_t n, float m) {
    for (int64_t i = 0; i < n; ++i) {
        if (x[i] == m) return i;
    }
    return 0;  // every value NaN
}

double sum_exp_scalar(const float * x, int64_t n, float mx) {
    double sum = 0.0;
    for (int64_t i = 0; i < n; ++i) sum += std::exp(double(x[i]) - mx);
    return sum;
}

#ifdef GB_ROW_X86
GB_ROW_AVX2 float row_max_avx2(const float * x, int64_t n) {
    __m256 m0 = _mm256_set1_ps(-INFINITY), m1 = m0, m2 = m0, m3 = m0;
    int64_t i = 0;
    // max_ps(a, b) returns b when either is NaN: the running maximum survives NaN inputs
    for (; i + 32 <= n; i += 32) {
        m0 = _mm256_max_ps(_mm256_loadu_ps(x + i), m0);
        m1 = _mm256_max_ps(_mm256_loadu_ps(x + i + 8), m1);
        m2 = _mm256_max_ps(_mm256_loadu_ps(x + i + 16), m2);
        m3 = _mm256_max_ps(_mm256_loadu_ps(x + i + 24), m3);
    }
    const __m256 m = _mm256_max_ps(_mm256_max_ps(m0, m1), _mm256_max_ps(m2, m3));
    alignas(32) float lanes[8];
    _mm256_store_ps(lanes, m);
    float r = row_max_scalar(lanes, 8);
    for (; i < n; ++i) r = x[i] > r ? x[i] : r;
    return r;
}

GB_ROW_AVX2 int64_t first_equal_avx2(const float * x, int64_t n, float m) {
    const __m256 vm = _mm256_set1_ps(m);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const int mask = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(x + i), vm, _CMP_EQ_OQ));
        if (mask != 0) return i + __builtin_ctz(unsigned(mask));
    }
    for (; i < n; ++i) {
        if (x[i] == m) return i;
    }
    return 0;
}

// exp(d) for d <= 0 (cephes' expf: n = round(d log2 e), r = d - n ln 2 in two
// parts, degree-6 polynomial, times 2^n); 0 below -87.3 (and for NaN).
GB_ROW_AVX2 inline __m256 exp_nonpos(__m256 d) {
    const __m256 keep = _mm256_cmp_ps(d, _mm256_set1_ps(-87.3f), _CMP_GE_OQ);
    d = _mm256_max_ps(d, _mm256_set1_ps(-87.3f));
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(d, _mm256_set1_ps(1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), d);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    const __m256 y = _mm256_add_ps(_mm256_fmadd_ps(_mm256_mul_ps(p, r), r, r), _mm256_set1_ps(1.0f));
    // 2^n for n in [-126, 0]: a normal float's exponent field
    const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_and_ps(_mm256_mul_ps(y, _mm256_castsi256_ps(e)), keep);
}

GB_ROW_AVX2 double sum_exp_avx2(const float * x, int64_t n, float mx) {
    const __m256 vm = _mm256_set1_ps(mx);
    __m256d total = _mm256_setzero_pd();
    int64_t i = 0;
    constexpr int64_t kBlock = 1024;  // float partial sums per block, double across blocks
    while (i + 32 <= n) {
        const int64_t end = std::min(n & ~int64_t(31), i + kBlock);
        __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
        for (; i < end; i += 32) {
            s0 = _mm256_add_ps(s0, exp_nonpos(_mm256_sub_ps(_mm256_loadu_ps(x + i), vm)));
            s1 = _mm256_add_ps(s1, exp_nonpos(_mm256_sub_ps(_mm256_loadu_ps(x + i + 8), vm)));
            s2 = _mm256_add_ps(s2, exp_nonpos(_mm256_sub_ps(_mm256_loadu_ps(x + i + 16), vm)));
            s3 = _mm256_add_ps(s3, exp_nonpos(_mm256_sub_ps(_mm256_loadu_ps(x + i + 24), vm)));
        }
        const __m256 s = _mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3));
        total = _mm256_add_pd(total, _mm256_cvtps_pd(_mm256_castps256_ps128(s)));
        total = _mm256_add_pd(total, _mm256_cvtps_pd(_mm256_extractf128_ps(s, 1)));
    }
    alignas(32) double lanes[4];
    _mm256_store_pd(lanes, total);
    double sum = (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
    return sum + sum_exp_scalar(x + i, n - i, mx);
}
#endif

struct RowKernels {
    float (*max)(const float *, int64_t) = row_max_scalar;
    int64_t (*first_equal)(const float *, int64_t, float) = cpu::first_equal;
    double (*sum_exp)(const float *, int64_t, float) = sum_exp_scalar;
};

const RowKernels & kernels() {
    static const RowKernels k = [] {
        RowKernels r;
#ifdef GB_ROW_X86
        __builtin_cpu_init();
        const char * force = std::getenv("GB_ROW_OPS_SCALAR");  // A/B measurements: the scalar loops
        if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && !(force && *force == '1')) {
            r.max = row_max_avx2;
            r.first_equal = first_equal_avx2;
            r.sum_exp = sum_exp_avx2;
        }
#endif
        return r;
    }();
    return k;
}

}  // namespace

int64_t row_argmax(const float * x, int64_t n) {
    if (n <= 0) return -1;
    const RowKernels & k = kernels();
    return k.first_equal(x, n, k.max(x, n));
}

double row_log_sum_exp(const float * x, int64_t n, float * max_out) {
    const RowKernels & k = kernels();
    const float mx = k.max(x, n);
    *max_out = mx;
    return std::log(k.sum_exp(x, n, mx));
}

}  // namespace gb::cpu
