// Perplexity of a text under a model, computed like llama.cpp's perplexity
// tool: the tokens are cut into chunks of n_ctx, each chunk starts with BOS
// (when the model uses one), and only the second half of each chunk is scored.
#pragma once

#include "glassbox/model.h"
#include "glassbox/result.h"

#include <atomic>
#include <functional>
#include <vector>

namespace gb {

struct PerplexityResult {
    double  ppl = 0.0;
    double  nll_mean = 0.0;       // mean negative log-likelihood (nats)
    int64_t n_scored = 0;         // tokens scored
    int32_t n_chunks = 0;
    std::vector<double> chunk_ppl;  // running perplexity after each chunk
};

struct PerplexityParams {
    int32_t n_ctx = 512;
    int32_t n_threads = 0;
    int32_t max_chunks = 0;  // 0: all
    std::function<bool(int32_t chunk, int32_t n_chunks)> progress;  // false cancels
};

// The log-softmax of logits at `target` (natural log), in double precision.
double log_softmax_at(const float * logits, int32_t n_vocab, int32_t target);

Result<PerplexityResult> compute_perplexity(std::shared_ptr<const Model> model, const std::vector<Token> & tokens,
                                            const PerplexityParams & params);

}  // namespace gb
