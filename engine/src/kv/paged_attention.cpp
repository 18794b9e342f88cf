// Paged attention for one query head (see paged_attention.h). The F16 path
// mirrors ops::attend (batch order): f16(q) . k_j in 16 lanes, softmax sums in
// 16-key chunks into a double, f16(p_j) v_j in lane j % 16.
#include "kv/paged_attention.h"

#include "forward_ops.h"
#include "glassbox/tensor_type.h"
#include "quants.h"

#include <algorithm>
#include <cmath>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace gb::kv {
namespace {

// q . k for a Q8_0 row: per block d * sum(q_i * k_i), eight lanes per block.
// (Scalar fallback; the AVX2 versions below give the same bits.)
float dot_q8(const float * q, const uint8_t * row, int32_t n) {
    const auto * b = reinterpret_cast<const block_q8_0 *>(row);
    float acc = 0.0f;
    for (int32_t ib = 0; ib < n / 32; ++ib) {
        float lane[8] = {};
        const float * qb = q + ib * 32;
        for (int i = 0; i < 32; ++i) lane[i & 7] = std::fma(qb[i], float(b[ib].qs[i]), lane[i & 7]);
        const float s = ((lane[0] + lane[4]) + (lane[2] + lane[6])) + ((lane[1] + lane[5]) + (lane[3] + lane[7]));
        acc = std::fma(fp16_to_fp32(b[ib].d), s, acc);
    }
    return acc;
}

// y += a * dequant(row)
void axpy_q8(float * y, float a, const uint8_t * row, int32_t n) {
    const auto * b = reinterpret_cast<const block_q8_0 *>(row);
    for (int32_t ib = 0; ib < n / 32; ++ib) {
        const float ad = a * fp16_to_fp32(b[ib].d);
        float * yb = y + ib * 32;
        for (int i = 0; i < 32; ++i) yb[i] = std::fma(ad, float(b[ib].qs[i]), yb[i]);
    }
}

#if defined(__x86_64__) || defined(__i386__)
#define GB_KV_AVX2 __attribute__((target("avx2,fma,f16c")))
// Same order as dot_q8: lane l of one 8-wide accumulator is lane[l]; the
// reduction (l0+l4, l1+l5, l2+l6, l3+l7, then pairs) is the scalar one.
GB_KV_AVX2 float dot_q8_avx2(const float * q, const uint8_t * row, int32_t n) {
    const auto * b = reinterpret_cast<const block_q8_0 *>(row);
    float acc = 0.0f;
    for (int32_t ib = 0; ib < n / 32; ++ib) {
        __m256 lane = _mm256_setzero_ps();
        const float * qb = q + ib * 32;
        for (int i = 0; i < 32; i += 8) {
            const __m128i k8 = _mm_loadl_epi64(reinterpret_cast<const __m128i *>(b[ib].qs + i));
            lane = _mm256_fmadd_ps(_mm256_loadu_ps(qb + i), _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(k8)), lane);
        }
        __m128 s = _mm_add_ps(_mm256_castps256_ps128(lane), _mm256_extractf128_ps(lane, 1));
        s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        s = _mm_add_ss(s, _mm_movehdup_ps(s));
        acc = std::fma(_cvtsh_ss(b[ib].d), _mm_cvtss_f32(s), acc);
    }
    return acc;
}

GB_KV_AVX2 void axpy_q8_avx2(float * y, float a, const uint8_t * row, int32_t n) {
    const auto * b = reinterpret_cast<const block_q8_0 *>(row);
    for (int32_t ib = 0; ib < n / 32; ++ib) {
        const __m256 ad = _mm256_set1_ps(a * _cvtsh_ss(b[ib].d));
        float * yb = y + ib * 32;
        for (int i = 0; i < 32; i += 8) {
            const __m128i k8 = _mm_loadl_epi64(reinterpret_cast<const __m128i *>(b[ib].qs + i));
            _mm256_storeu_ps(yb + i, _mm256_fmadd_ps(ad, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(k8)), _mm256_loadu_ps(yb + i)));
        }
    }
}
#endif

struct Q8Kernels {
    float (*dot)(const float *, const uint8_t *, int32_t) = dot_q8;
    void (*axpy)(float *, float, const uint8_t *, int32_t) = axpy_q8;
};

const Q8Kernels & q8_kernels() {
    static const Q8Kernels k = [] {
        Q8Kernels r;
#if defined(__x86_64__) || defined(__i386__)
        __builtin_cpu_init();
        if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c")) {
            r.dot = dot_q8_avx2;
            r.axpy = axpy_q8_avx2;
        }
#endif
        return r;
    }();
    return k;
}

}  // namespace

PagedHead paged_head(const CpuKvStorage & kv, int il, int32_t g, const PageId * pages) {
    const KvShape & s = kv.shape();
    const bool q8 = s.type == KvType::Q8_0;
    // bytes of one KV head inside a slot
    const size_t k_head_bytes = q8 ? size_t(s.head_dim_k / 32) * sizeof(block_q8_0) : size_t(s.head_dim_k) * 2;
    const size_t v_head_bytes = q8 ? size_t(s.head_dim_v / 32) * sizeof(block_q8_0) : size_t(s.head_dim_v) * 2;
    PagedHead h;
    h.type = s.type;
    h.pages = pages;
    h.page_size = s.page_size;
    h.k = kv.k_layer(il) + size_t(g) * k_head_bytes;
    h.v = kv.v_layer(il) + size_t(g) * v_head_bytes;
    h.k_page_bytes = kv.page_bytes_k();
    h.k_slot_bytes = kv.slot_bytes_k();
    h.v_page_bytes = kv.page_bytes_v();
    h.v_slot_bytes = kv.slot_bytes_v();
    return h;
}

void attend_paged(float * out, const float * q, const PagedHead & kv, int32_t lo, int32_t hi, int32_t head_dim_k,
                  int32_t head_dim_v, float scale, float * scratch) {
    attend_paged_group(out, 0, q, 0, 1, kv, lo, hi, head_dim_k, head_dim_v, scale, scratch);
}

void attend_paged_group(float * out, int64_t out_stride, const float * q, int64_t q_stride, int32_t n_q, const PagedHead & kv,
                        int32_t lo, int32_t hi, int32_t head_dim_k, int32_t head_dim_v, float scale, float * scratch) {
    constexpr int32_t n_lanes = 16;
    constexpr int32_t k_max_group = 64;
    const bool q8 = kv.type == KvType::Q8_0;
    const Q8Kernels & q8k = q8_kernels();
    const int32_t c0 = lo & ~15;
    const int32_t c1 = (hi + 15) & ~15;
    const int64_t per_head = ops::attend_scratch_floats(hi, head_dim_k, head_dim_v);
    // Per query head h: scores [hi - c0 rounded up to 16], lanes [n_lanes, head_dim_v], f16(q) [head_dim_k].
    float * scores[k_max_group];
    float * lanes[k_max_group];
    uint16_t * q16[k_max_group];
    float max[k_max_group], inv[k_max_group];
    n_q = std::min(n_q, k_max_group);
    for (int32_t h = 0; h < n_q; ++h) {
        scores[h] = scratch + h * per_head;
        lanes[h] = scores[h] + (hi - c0 + 16);
        q16[h] = reinterpret_cast<uint16_t *>(lanes[h] + 64 * int64_t(head_dim_v));
        if (!q8) ops::f32_to_f16(q16[h], q + h * q_stride, head_dim_k);
        max[h] = -INFINITY;
    }

    // Each K slot is read once for all query heads of the group.
    for (int32_t j = lo; j < hi; ++j) {
        const uint8_t * k = kv.k_at(j);
        for (int32_t h = 0; h < n_q; ++h) {
            const float d = q8 ? q8k.dot(q + h * q_stride, k, head_dim_k)
                               : ops::dot_f16(q16[h], reinterpret_cast<const uint16_t *>(k), head_dim_k);
            const float s = d * scale;
            scores[h][j - c0] = s;
            max[h] = std::max(max[h], s);
        }
    }
    for (int32_t h = 0; h < n_q; ++h) {
        float * sc = scores[h];
        for (int32_t j = c0; j < c1; ++j) sc[j - c0] = j >= lo && j < hi ? ops::softmax_exp(sc[j - c0] - max[h]) : 0.0f;
        double sum = 0.0;
        for (int32_t c = c0; c < c1; c += 16) sum += double(ops::sum16(sc + (c - c0)));
        inv[h] = float(1.0 / sum);
        std::fill(lanes[h], lanes[h] + n_lanes * int64_t(head_dim_v), 0.0f);
    }

    // Each V slot is read once too; per head the sums run in the same order as one head alone.
    const float * t = ops::f16_to_f32_table();
    for (int32_t j = lo; j < hi; ++j) {
        const uint8_t * v = kv.v_at(j);
        for (int32_t h = 0; h < n_q; ++h) {
            const float p = t[fp32_to_fp16(scores[h][j - c0] * inv[h])];
            float * y = lanes[h] + int64_t(j % n_lanes) * head_dim_v;
            if (q8) q8k.axpy(y, p, v, head_dim_v);
            else ops::axpy_f16(y, p, reinterpret_cast<const uint16_t *>(v), head_dim_v);
        }
    }
    float col[n_lanes];
    for (int32_t h = 0; h < n_q; ++h) {
        float * o = out + h * out_stride;
        for (int32_t d = 0; d < head_dim_v; ++d) {
            for (int l = 0; l < n_lanes; ++l) col[l] = lanes[h][int64_t(l) * head_dim_v + d];
            o[d] = ops::sum16(col);
        }
    }
}

float q8_dot_scalar(const float * q, const uint8_t * row, int32_t n) { return dot_q8(q, row, n); }
float q8_dot(const float * q, const uint8_t * row, int32_t n) { return q8_kernels().dot(q, row, n); }
void q8_axpy_scalar(float * y, float a, const uint8_t * row, int32_t n) { axpy_q8(y, a, row, n); }
void q8_axpy(float * y, float a, const uint8_t * row, int32_t n) { q8_kernels().axpy(y, a, row, n); }

}  // namespace gb::kv
