// Private kernel table of the CPU backend: for each weight type, the activation
// format it is dotted with (llama.cpp's "vec_dot_type"), the row quantizer for
// that format, and dot kernels (scalar in vec_dot_scalar.cpp, AVX2 in vec_dot_avx2.cpp).
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

struct TypeKernels {
    TensorType    act_type = TensorType::F32;  // F32, F16, BF16, Q8_0, Q8_1 or Q8_K
    QuantizeRowFn quantize = nullptr;          // nullptr: activations used as f32 directly
    DotFn         dot1 = nullptr;              // required
    DotFn         dot4 = nullptr;              // optional: 1 weight row x 4 activation rows
};

// Fill k for weight type t; false if the path has no kernel for t
// (the AVX2 table then falls back to the scalar one per entry).
bool scalar_kernels(TensorType t, TypeKernels * k);
bool avx2_kernels(TensorType t, TypeKernels * k);

// Activation quantizers shared by both paths (bit-identical results).
void quantize_row_q8_0_act(const float * x, void * y, int64_t n);
void quantize_row_q8_1_act(const float * x, void * y, int64_t n);
void quantize_row_q8_K_act(const float * x, void * y, int64_t n);
void convert_row_f16_act(const float * x, void * y, int64_t n);
void convert_row_bf16_act(const float * x, void * y, int64_t n);

}  // namespace gb::cpu
