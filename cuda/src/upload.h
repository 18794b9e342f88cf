// Weight upload shared by the CUDA Context and the batched forward: a GGUF
// tensor into its device layout, a vector as f32, the RoPE inverse frequencies.
// Memory comes from the caller's allocator (each owner frees its own).
#pragma once

#include "cu_common.h"

#include "glassbox/model.h"
#include "glassbox/result.h"

#include <functional>
#include <string>

namespace gb::cuda {

using DeviceAlloc = std::function<Result<void *>(size_t bytes)>;

// name as an [ne1 rows x ne0 cols] matrix in the device layout; a missing
// optional tensor gives a DevMat with data == nullptr.
Result<DevMat> upload_matrix(const Model & model, const std::string & name, int64_t ne0, int64_t ne1, bool required,
                             const DeviceAlloc & alloc);
// name as n f32 values (nullptr when optional and missing)
Result<const float *> upload_vector(const Model & model, const std::string & name, int64_t n, bool required,
                                    const DeviceAlloc & alloc);
// inv_freq[0] (global layers) and inv_freq[1] (sliding-window layers): head_dim / 2 floats each
Status upload_rope(const Model & model, int64_t head_dim, const DeviceAlloc & alloc, const float * inv_freq[2]);

}  // namespace gb::cuda
