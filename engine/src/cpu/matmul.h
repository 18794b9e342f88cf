// Matrix products of GGUF-typed weights with f32 activations on the CPU.
// Activations are quantized per block the way llama.cpp's vec_dot does
// (Q8_0 / Q8_1 for the 32-blocks, Q8_K for k-quants), then dotted with
// SIMD kernels chosen at run time (AVX512-VNNI, AVX2/FMA/F16C, scalar fallback).
#pragma once

#include "glassbox/tensor_type.h"

#include <cstddef>
#include <cstdint>

namespace gb::cpu {

class ThreadPool;

// A 2-D weight matrix as laid out in GGUF: n_rows rows of n_cols elements,
// each row row_bytes long. For a linear layer n_cols = in, n_rows = out.
struct WeightView {
    TensorType      type = TensorType::F32;
    int64_t         n_cols = 0;
    int64_t         n_rows = 0;
    size_t          row_bytes = 0;
    const uint8_t * data = nullptr;
};

// Y[t, r] = sum_c W[r, c] * X[t, c]
// x: [n_tokens, n_cols] f32 row-major, y: [n_tokens, n_rows] f32 row-major.
// Decode (n_tokens == 1) is a matrix-vector product; prefill is tiled.
void matmul(const WeightView & w, const float * x, int64_t n_tokens, float * y, ThreadPool & pool);

// matmul(ws[i], x, n_tokens, ys[i]) for i < n_w (all ws[i].n_cols equal):
// the same results; a decode step (n_tokens == 1), and 2..16 tokens when every
// weight has a small-batch kernel, quantize x once per activation format and
// run every weight's rows in one pool dispatch.
void matmul_group(const WeightView * ws, float * const * ys, int n_w, const float * x, int64_t n_tokens, ThreadPool & pool);

enum class SimdPath { Auto, Scalar, Avx2, Avx512Vnni };

// Which SIMD path is in use ("avx512vnni", "avx2", "scalar").
const char * simd_path();
// The decode dot kernels matmul uses for t on the current SIMD path (nullptr:
// no kernel for t). For callers that drive the kernels themselves (spec/small_batch).
struct TypeKernels;
const TypeKernels * dot_kernels(TensorType t);
const char * simd_path_name(SimdPath p);
// Force a path for tests and benches (Auto: the best the CPU has); false,
// and nothing changed, if the CPU lacks it.
bool force_simd_path(SimdPath p);
// Force the scalar path (on) or go back to Auto (off).
void force_scalar(bool on);
// Small-batch kernels for 2..16 tokens (on by default; off: the prefill paths,
// same results). For A/B benchmarks.
void set_small_batch_kernels(bool on);
// Their software pipelining (on by default; off: each 4-row group decoded,
// then dotted; same results). For A/B benchmarks.
void set_small_batch_pipelining(bool on);

// llama.cpp numerics mode (off by default). On: the quantized types of
// gemma-3 Q4_K_M files (Q5_0, Q8_0, Q4_K, Q6_K) use kernels that sum in the
// order of llama.cpp's x86 CPU backend (vec_dot_llamacpp.cpp; AVX2 paths
// only): its vec_dot order for Q5_0 / Q8_0, its repacked Q4_K GEMV (one
// token) and GEMM (groups of 4 tokens) orders, its tiled K-quant order for
// Q6_K products of >= 8 tokens; the Context's attention then also sums a
// decode step in llama.cpp's one-token order. Logits then match llama.cpp's
// bit for bit (greedy continuations of gemma-3 depend on it:
// tst_model_llamacpp), but depend on the batch shape as llama.cpp's do, and
// the AVX512-VNNI GEMM is not used for those types. Off: the canonical,
// batch-invariant kernels of vec_dot.h (speculative decoding relies on that).
// Process-wide; set it before decoding.
void set_llamacpp_order(bool on);
bool llamacpp_order();

}  // namespace gb::cpu
