// CUDA backend stub for builds without nvcc.
#include "glassbox/cuda_backend.h"

#include <algorithm>

namespace gb::cuda {

DeviceReport probe() {
    DeviceReport r;
    r.message = "not compiled with CUDA; using the CPU";
    return r;
}

Result<MemoryEstimate> estimate_memory(const Model &, const CudaContextParams &) {
    return make_error(ErrorCode::Unsupported, "not compiled with CUDA");
}

Result<std::unique_ptr<Context>> create_context(std::shared_ptr<const Model>, const CudaContextParams &) {
    return make_error(ErrorCode::Unsupported, "not compiled with CUDA");
}

Result<std::unique_ptr<kv::BatchForward>> create_batch_forward(std::shared_ptr<const Model>, const kv::BatchForwardParams &, int32_t) {
    return make_error(ErrorCode::Unsupported, "not compiled with CUDA");
}

Result<Token> greedy_token(const Context & ctx) {
    const auto l = ctx.logits();
    const int64_t n = ctx.model().hparams().n_vocab;
    if (l.size() < size_t(n) || n <= 0) return make_error(ErrorCode::InvalidArgument, "greedy_token: no logits");
    const float * row = l.data() + (l.size() - size_t(n));
    return Token(std::max_element(row, row + n) - row);
}

}  // namespace gb::cuda
