// [cuda] Partial offload: a CPU Context fed the hidden state that the GPU's
// first layers produced, instead of token embeddings (internal to the engine
// and the CUDA backend; not part of the public API).
#pragma once

#include "glassbox/model.h"

#include <atomic>

namespace gb::detail {

// Runs n rows of hidden state x [n, n_embd] at positions [n_past, n_past + n)
// through the layers the context does not skip (ContextParams::skip_layers
// names the GPU's layers) and the output head; writes the logits of the last
// n_out rows (0, 1 or n) to logits_out ([n_out, n_vocab]) and advances
// n_past by n. n <= n_batch. ctx must come from Context::create (CPU).
Status decode_hidden(Context & ctx, const float * x, int32_t n, int32_t n_out, float * logits_out,
                     const std::atomic<bool> * cancel = nullptr);

}  // namespace gb::detail
