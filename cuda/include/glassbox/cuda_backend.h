// The CUDA backend's entry points. A build without nvcc links a stub with the
// same API that reports "not compiled with CUDA".
#pragma once

#include "glassbox/kv/batch_forward.h"
#include "glassbox/model.h"
#include "glassbox/result.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace gb::cuda {

struct DeviceReport {
    bool                     compiled = false;   // built with nvcc
    bool                     available = false;  // a usable device and driver
    std::string              message;            // why not, or a summary
    std::vector<std::string> devices;            // "NVIDIA H100 80GB HBM3 (sm_90, 79 GiB)"
};

// Never fails hard: no driver or no GPU is reported in the message.
DeviceReport probe();

struct CudaContextParams {
    ContextParams context;         // n_ctx, n_batch; n_threads: the CPU part of a partial offload
    int32_t       device = 0;
    // Layers on the GPU: -1 (or >= n_layer) = all. N < n_layer: the embedding
    // and layers 0..N-1 on the GPU, the other layers (KV cache on the host)
    // and the output norm/head on the CPU; only the hidden state crosses.
    int32_t       n_gpu_layers = -1;
    // Memory the context may use; 0 = the device's free memory. (Tests set a
    // small budget to exercise the refusal path.)
    uint64_t      memory_budget = 0;
    bool          use_graph = true;  // capture the single-token decode step in a CUDA graph
    // Decode (matvec path, up to 32 tokens a step) with activations in two
    // int8 planes (~16 bits a value) instead of one (8 bits): logits as close
    // to the exact model as the prefill's (gemma-3-270m, teacher-forced: top-1
    // 1.0000 vs 0.980, KL 3e-7 vs 2e-3) for twice the dp4a work (H200 tg128
    // against one plane: 8B Q4_K_M -10..-12%, 1B -7..-8%, gemma-3-270m -3%;
    // bench/NOTES.md, h7/agree2). GB_CUDA_ACT16=1/0 overrides.
    bool          precise_decode = false;
};

// What a context would take on the device, computed before anything is allocated.
struct MemoryEstimate {
    // weights, kv_cache, scratch, total: for the requested n_gpu_layers
    uint64_t weights = 0;      // uploaded weights (device layout)
    uint64_t per_layer = 0;    // weights + KV cache of an average layer
    uint64_t kv_cache = 0;
    uint64_t scratch = 0;      // activations, logits, GEMM scratch
    uint64_t total = 0;
    uint64_t available = 0;    // budget (free memory or the given budget)
    int32_t  layers_that_fit = 0;  // largest n_gpu_layers that fits (n_layer: the whole model)
};
Result<MemoryEstimate> estimate_memory(const Model & model, const CudaContextParams & params);

// A Context whose forward pass runs on the GPU. Fails with a clear message
// when CUDA is unavailable (no driver, no device, stub build), when a weight
// type is not supported, or when the model does not fit (the message gives
// the estimate and how many layers would fit).
Result<std::unique_ptr<Context>> create_context(std::shared_ptr<const Model> model, const CudaContextParams & params);

// A BatchForward (continuous batching over the paged KV cache) whose K/V pages
// (F16 or Q8_0, same page ids and page size as the CPU storage) and forward
// pass live on the GPU; for BatchEngineParams::make_forward. n_threads is
// unused. Decode-only steps replay CUDA graphs (GB_CUDA_BATCH_GRAPH=0: off).
Result<std::unique_ptr<kv::BatchForward>> create_batch_forward(std::shared_ptr<const Model> model, const kv::BatchForwardParams & params,
                                                               int32_t device = 0);

// Greedy token of the last logits row, computed on the device for a CUDA
// context (no copy of the logits); on the host otherwise.
Result<Token> greedy_token(const Context & ctx);

}  // namespace gb::cuda
