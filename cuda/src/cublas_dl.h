// cuBLAS loaded at run time (dlopen of libcublas.so.13), never linked: the
// app starts without it, and the prefill GEMMs use it when it is present
// (F16/BF16 weights straight, quantized ones through dequantized f16 slabs).
// GB_CUDA_CUBLAS=0 forces our own kernels (A/B runs, tests of the fallback).
#pragma once

#include "cu_common.h"

#include <string>

namespace gb::cuda::blas {

// Loads the library on first use (thread-safe; one attempt per process).
bool available();
// One line for logs and the backend report: "cuBLAS 130100 (libcublas.so.13)"
// or why it is not used ("cuBLAS not found (...): our wmma kernels", "cuBLAS off ...").
const std::string & describe();

enum class Operand { F16, BF16 };

// Y [M, ldy] (f32, row-major, columns [0, N)) = X [M, K] . W [N, K]^T, X and W
// row-major of the same operand type (ldx, ldw in elements), f32 accumulation.
// Runs on stream s through a per-device handle. Fails when not available().
Status gemm_xwT(Operand t, const void * w, int64_t ldw, const void * x, int64_t ldx, float * y, int64_t ldy, int M, int N,
                int K, cudaStream_t s);

}  // namespace gb::cuda::blas
