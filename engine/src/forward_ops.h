// Row-level building blocks of the optimized CPU forward pass (Context):
// RMSNorm, RoPE tables, gated activations, F16 conversion and one query
// head's attention over the F16 KV cache. AVX2/F16C versions are chosen at run
// time; numerics follow llama.cpp's CPU backend where that is cheap.
#pragma once

#include "glassbox/model.h"

#include <cstdint>

namespace gb::ops {

// y[i] = x[i] * (1 / sqrt(mean(x^2) + eps)) * w[i]   (sum of squares in double)
// y may alias x. w may be null (no weight).
void rmsnorm(float * y, const float * x, const float * w, int64_t n, float eps);

// cos/sin table for positions [pos0, pos0 + n_tok): cs[t][i] = {cos, sin} of
// theta = scale * pos / freq_factor[i] * base^(-2i/head_dim), i < head_dim/2.
// Built like ggml (theta accumulated by repeated multiplication in float).
// cs: [n_tok, head_dim / 2, 2]
void rope_table(float * cs, int32_t pos0, int32_t n_tok, int32_t head_dim, float base, float scale,
                const float * freq_factors);
// Rotates one head vector in place with one position's row of the table.
void rope_apply(float * v, const float * cs, int32_t head_dim, RopeStyle style);

// y[i] = silu(g[i]) * u[i]   (SwiGLU)        y may alias g
void swiglu(float * y, const float * g, const float * u, int64_t n);
// y[i] = gelu_tanh(g[i]) * u[i]   (GeGLU)    y may alias g
void geglu(float * y, const float * g, const float * u, int64_t n);

// IEEE half conversions of whole rows (round to nearest even).
void f32_to_f16(uint16_t * y, const float * x, int64_t n);

// y = x + b (elementwise); y may alias x
void add(float * y, const float * x, const float * b, int64_t n);

// One query head's attention over cached keys/values [lo, hi), with the
// roundings and summation orders of llama.cpp's CPU path without flash
// attention (one_query: a decode step, whose F16 products ggml sums in another
// order than a batch's):
//   s_j = scale * f16(q) . k_j ;  p = softmax(s) ;  out = sum_j f16(p_j) v_j
// q: [head_dim_k] f32; k_j = k + j * k_stride (F16, head_dim_k values),
// v_j = v + j * v_stride (F16, head_dim_v); scratch: attend_scratch_floats(hi, ...) floats.
void attend(float * out, const float * q, const uint16_t * k, int64_t k_stride, const uint16_t * v, int64_t v_stride,
            int32_t lo, int32_t hi, int32_t head_dim_k, int32_t head_dim_v, float scale, bool one_query, float * scratch);
// attend() where positions j >= tail_from are stored in rows tail_rows[j - tail_from]
// (token-tree verification: a node's ancestors sit at scattered cache rows).
// Bit-identical to attend() over the same keys/values stored in position order.
void attend_mapped(float * out, const float * q, const uint16_t * k, int64_t k_stride, const uint16_t * v, int64_t v_stride,
                   int32_t lo, int32_t hi, int32_t tail_from, const int32_t * tail_rows, int32_t head_dim_k,
                   int32_t head_dim_v, float scale, bool one_query, float * scratch);
int64_t attend_scratch_floats(int32_t n_ctx, int32_t head_dim_k, int32_t head_dim_v);

// Pieces of attend() for other KV layouts (the paged cache, kv/paged_attention):
// the batch-order F16 dot (16 lanes, reduce16), y += a * x over F16, the exp
// of the softmax, the 16-value reduction, and the f16 -> f32 table.
float dot_f16(const uint16_t * a, const uint16_t * b, int32_t n);
void axpy_f16(float * y, float a, const uint16_t * x, int32_t n);
float softmax_exp(float x);
float sum16(const float * a);
const float * f16_to_f32_table();

// "avx2" or "scalar": which implementation is in use.
const char * simd_path();

}  // namespace gb::ops
