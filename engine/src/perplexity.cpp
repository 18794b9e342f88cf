// Perplexity over chunks, scoring the second half of each (llama-perplexity's scheme).
#include "glassbox/perplexity.h"

#include <cmath>

namespace gb {

double log_softmax_at(const float * logits, int32_t n_vocab, int32_t target) {
    float mx = logits[0];
    for (int32_t i = 1; i < n_vocab; ++i) mx = std::max(mx, logits[i]);
    double sum = 0.0;
    for (int32_t i = 0; i < n_vocab; ++i) sum += std::exp(double(logits[i]) - mx);
    return double(logits[target]) - mx - std::log(sum);
}

Result<PerplexityResult> compute_perplexity(std::shared_ptr<const Model> model, const std::vector<Token> & tokens,
                                            const PerplexityParams & params) {
    if (params.n_ctx < 8) return make_error(ErrorCode::InvalidArgument, "perplexity needs a context of at least 8 tokens");
    int32_t n_chunks = int32_t(tokens.size() / size_t(params.n_ctx));
    if (n_chunks == 0) {
        return make_error(ErrorCode::InvalidArgument, "the text is " + std::to_string(tokens.size()) +
                                                          " tokens; perplexity needs at least n_ctx = " +
                                                          std::to_string(params.n_ctx));
    }
    if (params.max_chunks > 0) n_chunks = std::min(n_chunks, params.max_chunks);

    ContextParams cp;
    cp.n_ctx = params.n_ctx;
    cp.n_threads = params.n_threads;
    cp.n_batch = params.n_ctx;
    auto ctx = Context::create(model, cp);
    if (!ctx) return ctx.error();
    if ((*ctx)->n_ctx() < params.n_ctx) {
        return make_error(ErrorCode::InvalidArgument, "the model's context is smaller than n_ctx");
    }

    const Tokenizer & tok = model->tokenizer();
    const int32_t n_vocab = tok.n_vocab();
    PerplexityResult res;
    double nll = 0.0;
    const int32_t first = params.n_ctx / 2;
    for (int32_t c = 0; c < n_chunks; ++c) {
        if (params.progress && !params.progress(c, n_chunks)) return make_error(ErrorCode::Cancelled, "perplexity cancelled");
        const size_t start = size_t(c) * size_t(params.n_ctx);
        std::vector<Token> chunk(tokens.begin() + long(start), tokens.begin() + long(start + size_t(params.n_ctx)));
        if (tok.add_bos() && tok.bos() >= 0) chunk[0] = tok.bos();
        (*ctx)->truncate(0);
        GB_TRY_STATUS((*ctx)->decode(chunk, true));
        const std::span<const float> logits = (*ctx)->logits();  // [n_ctx, n_vocab]
        for (int32_t j = first; j < params.n_ctx - 1; ++j) {
            const Token target = tokens[start + size_t(j) + 1];
            nll -= log_softmax_at(logits.data() + size_t(j) * size_t(n_vocab), n_vocab, target);
            ++res.n_scored;
        }
        res.chunk_ppl.push_back(std::exp(nll / double(res.n_scored)));
    }
    res.n_chunks = n_chunks;
    res.nll_mean = nll / double(res.n_scored);
    res.ppl = std::exp(res.nll_mean);
    return res;
}

}  // namespace gb
