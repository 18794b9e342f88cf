// Private kernel table of the CPU backend: for each weight type, the activation
// format it is dotted with (llama.cpp's "vec_dot_type"), the row quantizer for
// that format, and dot kernels (scalar in vec_dot_scalar.cpp, AVX2 in vec_dot_avx2.cpp).
//
// Canonical per-row results. Every path (scalar, AVX2, AVX512-VNNI dot kernels,
// the VNNI GEMM) computes each (row, token) output with exactly these float
// operations in this order, so results are bit-identical whatever the number of
// tokens in the batch, the thread split or the path (fmaf = one rounding):
//   Q4_0/Q5_0/Q8_0 x Q8_0: acc = 0; per 32-block b in order:
//       acc = fmaf(float(isum_b), d_w * d_x, acc)     isum_b = sum q_w*q_x (int32)
//   Q4_1/Q5_1 x Q8_1: acc = fmaf(float(isum_b), d_w * d_x, acc); acc = fmaf(m_w, s_x, acc)
//   Q2_K/Q4_K/Q5_K x Q8_K: per 256-block: isum = sum_g sc_g * sum_g(q*q8),
//       summs = sum_g m_g * bsums_g (both int32);
//       acc = fmaf(float(isum), d_w * d_x, acc); acc = fmaf(-(dmin_w * d_x), float(summs), acc)
//   Q3_K/Q6_K x Q8_K: isum = sum_g sc_g * sum_g(q*q8) with q signed (int32);
//       acc = fmaf(float(isum), d_w * d_x, acc)
//   F32/F16/BF16 (activations rounded to the weight type, kept as f32): 16 lanes,
//       element i in lane i % 16 (row zero-padded to a multiple of 16),
//       s_l = fmaf(w_i, x_i, s_l) in order; then s_l += s_{l+8}, s_l += s_{l+4},
//       s_l += s_{l+2}, result s_0 + s_1.
#pragma once

#include "glassbox/tensor_type.h"

#include <cstddef>
#include <cstdint>

namespace gb::cpu {

// Quantize / convert one activation row of n floats (n a multiple of the
// weight block size) into the activation format.
using QuantizeRowFn = void (*)(const float * x, void * y, int64_t n);

// out[c] = dot(w, x + c * x_stride) for c < NC (NC = 1 for dot1, 4 for dot4).
// w: one weight row of n elements; x: activation rows in the activation format.
using DotFn = void (*)(int64_t n, const void * w, const void * x, size_t x_stride, float * out);

// Prefill GEMM over 16-row weight strips repacked once per call (AVX512-VNNI path).
struct GemmKernels {
    int64_t min_tokens = 0;                              // below this, the dot kernels win (packing cost)
    size_t (*act_row_bytes)(int64_t n_cols) = nullptr;  // one prepared activation row
    QuantizeRowFn prep_act = nullptr;                    // f32 row -> prepared row; nullptr: use x as is
    size_t (*strip_bytes)(int64_t n_cols) = nullptr;     // one packed strip of 16 rows
    // pack rows [0, n_valid) (n_valid <= 16, rows row_bytes apart) of w into dst
    void (*pack)(const uint8_t * w, size_t row_bytes, int n_valid, int64_t n_cols, void * dst) = nullptr;
    // y[t * ldy + r] = dot(row r, token t) for r < n_valid, t < nt (1 <= nt <= 8)
    void (*run)(const void * strip, const uint8_t * act, size_t act_stride, int nt, int64_t n_cols, float * y, size_t ldy,
                int n_valid) = nullptr;
};

// out[r] = dot(w + r * row_bytes, x) for r < 4: 4 weight rows x 1 activation row
// (decode of the 32-block types: 4 independent float chains in one xmm).
using DotRowsFn = void (*)(int64_t n, const void * w, size_t row_bytes, const void * x, float * out);

// out[r] = dot(w + r * row_bytes, x) for r < n_rows (any count): a whole
// decode matvec range in one call (the kernel may prefetch the rows ahead).
using MatvecFn = void (*)(int64_t n, const void * w, size_t row_bytes, int64_t n_rows, const void * x, float * out);

struct TypeKernels {
    TensorType    act_type = TensorType::F32;  // F32, F16, BF16, Q8_0, Q8_1 or Q8_K
    QuantizeRowFn quantize = nullptr;          // nullptr: activations used as f32 directly
    DotFn         dot1 = nullptr;              // required
    DotFn         dot4 = nullptr;              // optional: 1 weight row x 4 activation rows
    DotRowsFn     rows4 = nullptr;             // optional: 4 weight rows x 1 activation row
    MatvecFn      rows = nullptr;              // optional: n_rows weight rows x 1 activation row
};

// Small batches (2..k_multi_max_tokens activation rows, e.g. speculative
// verification) with each weight row read once (multi_avx512vnni.cpp):
// prep turns nt quantized activation rows (the TypeKernels format, stride bytes
// apart) into the kernel's layout (prep_bytes(n_cols, nt) bytes, 64-byte aligned);
// run: out[t * ldo + r] = dot(w + r * row_bytes, x_t) for r < n_rows, t < nt,
// bit-identical to the decode kernels (vec_dot.h's canonical order).
constexpr int k_multi_max_tokens = 16;
struct MultiKernels {
    size_t (*prep_bytes)(int64_t n_cols, int nt) = nullptr;
    void (*prep)(const uint8_t * act, size_t stride, int nt, int64_t n_cols, void * dst) = nullptr;
    void (*run)(int64_t n_cols, const void * w, size_t row_bytes, int64_t n_rows, const void * prep, int nt, float * out,
                size_t ldo) = nullptr;
};
bool avx512vnni_multi(TensorType t, MultiKernels * m);

// Fill k for weight type t; false if the path has no kernel for t
// (the AVX2 table then falls back to the scalar one per entry).
bool scalar_kernels(TensorType t, TypeKernels * k);
bool avx2_kernels(TensorType t, TypeKernels * k);
// AVX512-VNNI: decode dot kernels (overrides of the AVX2 ones) and prefill GEMMs.
bool avx512vnni_kernels(TensorType t, TypeKernels * k);
bool avx512vnni_gemm(TensorType t, GemmKernels * g);

// Kernels in llama.cpp's summation order (vec_dot_llamacpp.cpp, AVX2), used
// while llamacpp_order() is on: dot1 / dot4 as in TypeKernels; dot1_wide /
// dot4_wide (optional) for every token of a product of >= k_wide_tokens
// tokens, which llama.cpp sums in another order (its tiled K-quant path).
struct LlamaCppKernels {
    TensorType    act_type = TensorType::F32;
    QuantizeRowFn quantize = nullptr;
    DotFn         dot1 = nullptr;
    DotFn         dot4 = nullptr;
    DotFn         dot1_wide = nullptr;
    DotFn         dot4_wide = nullptr;
};
constexpr int64_t k_wide_tokens = 8;
// false for the types it has no kernel for (the canonical kernels then serve).
bool llamacpp_kernels(TensorType t, LlamaCppKernels * k);

// Activation quantizers shared by both paths (bit-identical results).
void quantize_row_q8_0_act(const float * x, void * y, int64_t n);
void quantize_row_q8_1_act(const float * x, void * y, int64_t n);
void quantize_row_q8_K_act(const float * x, void * y, int64_t n);
void convert_row_f16_act(const float * x, void * y, int64_t n);
void convert_row_bf16_act(const float * x, void * y, int64_t n);

}  // namespace gb::cpu
