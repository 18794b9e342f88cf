// Shared host-side helpers of the CUDA backend: error conversion (every CUDA
// call and launch becomes a gb::Error with context) and the device matrix
// descriptor (a GGUF weight uploaded in its quantized format).
#pragma once

#include "glassbox/result.h"
#include "glassbox/tensor_type.h"

#include <cuda_runtime.h>

#include <cstdint>
#include <string>

namespace gb::cuda {

inline Error cuda_error(cudaError_t e, const char * what, const char * file, int line) {
    std::string f = file;
    const auto slash = f.find_last_of('/');
    if (slash != std::string::npos) f = f.substr(slash + 1);
    return make_error(e == cudaErrorMemoryAllocation ? ErrorCode::OutOfMemory : ErrorCode::Internal,
                      std::string("CUDA: ") + what + " failed: " + cudaGetErrorName(e) + " (" + cudaGetErrorString(e) +
                          ") at " + f + ":" + std::to_string(line));
}

}  // namespace gb::cuda

// Returns a gb::Error from the enclosing function when a CUDA call fails.
#define GB_CU(call)                                                                    \
    do {                                                                               \
        const cudaError_t gb_cu_e_ = (call);                                           \
        if (gb_cu_e_ != cudaSuccess) return ::gb::cuda::cuda_error(gb_cu_e_, #call, __FILE__, __LINE__); \
    } while (0)
// After a kernel launch: the launch error (configuration, no device).
#define GB_CU_LAUNCH(name) GB_CU(cudaPeekAtLastError() == cudaSuccess ? cudaSuccess : cudaGetLastError())

namespace gb::cuda {

// A 2-D weight on the device, ne = [n_cols, n_rows]. Rows are padded to 16
// bytes. Types whose blocks are only 2-byte aligned (Q4_0, Q5_0, Q8_0, Q3_K,
// Q6_K) are stored per row as "bodies then scales": the blocks' bytes without
// their fp16 d field, contiguous, then the n_blocks d values (same bits, same
// values: only the order of bytes within the row differs from the file).
struct DevMat {
    TensorType type   = TensorType::F32;
    int64_t    n_cols = 0;
    int64_t    n_rows = 0;
    size_t     stride = 0;    // bytes between rows
    size_t     d_off  = 0;    // split types: byte offset of the d array within a row
    const uint8_t * data = nullptr;
};

// True for the types stored split (bodies then d).
inline bool split_layout(TensorType t) {
    return t == TensorType::Q4_0 || t == TensorType::Q5_0 || t == TensorType::Q8_0 || t == TensorType::Q3_K ||
           t == TensorType::Q6_K;
}
inline bool is_float_type(TensorType t) { return t == TensorType::F32 || t == TensorType::F16 || t == TensorType::BF16; }
// Types the kernels handle.
bool device_supported(TensorType t);

// Layout of a device matrix (stride, d_off) for a type and row length.
DevMat dev_layout(TensorType t, int64_t n_cols, int64_t n_rows);
// Converts one GGUF row (row_size bytes) into the device layout (stride bytes).
void pack_row(TensorType t, int64_t n_cols, const uint8_t * src, uint8_t * dst, const DevMat & layout);

// q8 activations: x[i] ~= d[i/32] * q[i]; s[j] = d * sum(q over 16 values j).
// With the second plane lo (decode Context): x[i] ~= d * (q[i] + lo[i] / 256),
// lo = the rounding residual of q in 1/256 steps (16-bit activations as two
// int8 planes: the matvec takes 256 * (w . q) + w . lo, twice the dp4a, and
// scales by d / 256), s[j] = d / 256 * sum(256 q + lo over 16 values j).
struct Q8Act {
    int8_t * q = nullptr;
    float *  d = nullptr;
    float *  s = nullptr;
    int8_t * lo = nullptr;  // null: one plane
    // The rows from value offset off on (off % 32 == 0); null planes stay null.
    Q8Act at(int64_t off) const {
        if (!q) return *this;
        return {q + off, d + off / 32, s + off / 16, lo ? lo + off : nullptr};
    }
};

}  // namespace gb::cuda
