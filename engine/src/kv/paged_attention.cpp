// Paged attention for one query head (see paged_attention.h). The F16 path
// mirrors ops::attend (batch order): f16(q) . k_j in 16 lanes, softmax sums in
// 16-key chunks into a double, f16(p_j) v_j in lane j % 16.
#include "kv/paged_attention.h"

#include "forward_ops.h"
#include "glassbox/tensor_type.h"
#include "quants.h"

#include <algorithm>
#include <cmath>

namespace gb::kv {
namespace {

// q . k for a Q8_0 row: per block d * sum(q_i * k_i), eight lanes per block.
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

}  // namespace

void attend_paged(float * out, const float * q, const PagedHead & kv, int32_t lo, int32_t hi, int32_t head_dim_k,
                  int32_t head_dim_v, float scale, float * scratch) {
    constexpr int32_t n_lanes = 16;
    const bool q8 = kv.type == KvType::Q8_0;
    const int32_t c0 = lo & ~15;
    float * scores = scratch;                   // [hi - c0 rounded up to 16]
    float * lanes  = scratch + (hi - c0 + 16);  // [n_lanes, head_dim_v]
    uint16_t * q16 = reinterpret_cast<uint16_t *>(lanes + 64 * int64_t(head_dim_v));  // [head_dim_k]
    if (!q8) ops::f32_to_f16(q16, q, head_dim_k);

    float max = -INFINITY;
    for (int32_t j = lo; j < hi; ++j) {
        const uint8_t * k = kv.k_at(j);
        const float d = q8 ? dot_q8(q, k, head_dim_k) : ops::dot_f16(q16, reinterpret_cast<const uint16_t *>(k), head_dim_k);
        const float s = d * scale;
        scores[j - c0] = s;
        max = std::max(max, s);
    }
    const int32_t c1 = (hi + 15) & ~15;
    for (int32_t j = c0; j < c1; ++j) scores[j - c0] = j >= lo && j < hi ? ops::softmax_exp(scores[j - c0] - max) : 0.0f;
    double sum = 0.0;
    for (int32_t c = c0; c < c1; c += 16) sum += double(ops::sum16(scores + (c - c0)));
    const float inv = float(1.0 / sum);

    std::fill(lanes, lanes + n_lanes * int64_t(head_dim_v), 0.0f);
    const float * t = ops::f16_to_f32_table();
    for (int32_t j = lo; j < hi; ++j) {
        const float p = t[fp32_to_fp16(scores[j - c0] * inv)];
        float * y = lanes + int64_t(j % n_lanes) * head_dim_v;
        if (q8) axpy_q8(y, p, kv.v_at(j), head_dim_v);
        else ops::axpy_f16(y, p, reinterpret_cast<const uint16_t *>(kv.v_at(j)), head_dim_v);
    }
    float col[n_lanes];
    for (int32_t d = 0; d < head_dim_v; ++d) {
        for (int l = 0; l < n_lanes; ++l) col[l] = lanes[int64_t(l) * head_dim_v + d];
        out[d] = ops::sum16(col);
    }
}

}  // namespace gb::kv
