// GPTQ-style 4-bit weight quantization (column-by-column rounding with error
// compensation through the damped inverse Hessian of the layer inputs) and an
// importance-weighted round-to-nearest mode, both emitting standard GGUF blocks.
#pragma once

#include "glassbox/result.h"
#include "glassbox/tensor_type.h"

#include <cstdint>
#include <vector>

namespace gb::quant {

// Input statistics of one linear layer: H = sum over tokens of x^T x, [n_cols, n_cols].
struct InputStats {
    int64_t             n_cols = 0;
    int64_t             n_tokens = 0;
    std::vector<double> h;  // row-major, symmetric
    void add(const float * x, int64_t n_tokens, int64_t n_cols);  // x [n_tokens, n_cols]
};

struct GptqParams {
    int32_t group_size = 32;   // 32, 64 or 128 (Q4_0); Q4_K always uses its 32-element sub-blocks
    bool    act_order = false; // process columns by decreasing diag(H) (then groups use static scales)
    double  damp = 0.01;       // added to the diagonal: damp * mean(diag(H))
    int32_t n_threads = 0;     // 0 = hardware concurrency
};

// Quantizes W [n_rows, n_cols] (row-major, ne[0] = n_cols) to `type` (Q4_0 or Q4_K)
// with GPTQ against H (from InputStats). out: row_size(type, n_cols) * n_rows bytes.
// Errors: unsupported type, n_cols not a multiple of the block, group size, H size.
Status gptq_quantize(TensorType type, const float * w, int64_t n_rows, int64_t n_cols, const InputStats & stats,
                     const GptqParams & params, uint8_t * out);

// Round-to-nearest with per-column importance (diag(H), like llama.cpp's imatrix):
// block scales chosen to minimize sum_j imp[j] (w_j - q_j)^2 over a small search.
// Supports Q4_0 and Q4_K (other types: error).
Status rtn_weighted_quantize(TensorType type, const float * w, int64_t n_rows, int64_t n_cols,
                             const std::vector<float> & importance, uint8_t * out);

}  // namespace gb::quant
