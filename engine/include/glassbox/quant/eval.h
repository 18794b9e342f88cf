// Quantization quality: perplexity of each variant and, against a reference
// variant, KL-divergence (mean and percentiles), same-top-token rate and the
// change of the correct token's probability (llama-perplexity's KLD mode);
// plus file size and tokens/s. One table for any set of variants.
#pragma once

#include "glassbox/model.h"
#include "glassbox/result.h"

#include <functional>
#include <string>
#include <vector>

namespace gb::quant {

// One token position: ref and var logits [n_vocab], target = the correct next token.
struct TokenCompare {
    double kld = 0.0;             // KL(P_ref || P_var), nats
    bool   same_top = false;      // argmax equal
    double p_ref = 0.0, p_var = 0.0;  // probability of the target
    double nll_ref = 0.0, nll_var = 0.0;
};
TokenCompare compare_logits(const float * ref, const float * var, int32_t n_vocab, int32_t target);

// Percentile by linear interpolation (like numpy.percentile), q in [0, 100].
double percentile(std::vector<double> v, double q);

struct VariantResult {
    std::string name;
    uint64_t file_bytes = 0;
    uint64_t memory_bytes = 0;     // weight tensors (mapped) + the evaluation context's KV cache
    double   ppl = 0.0;
    double   kld_mean = 0.0, kld_p50 = 0.0, kld_p90 = 0.0, kld_p99 = 0.0, kld_max = 0.0;
    double   same_top_pct = 0.0;
    double   dp_mean = 0.0;        // mean of p_var(correct) - p_ref(correct)
    double   prefill_tok_s = 0.0;  // over the evaluation chunks
    double   decode_tok_s = 0.0;   // 32 single-token steps
    int64_t  n_scored = 0;
    bool     is_reference = false;
};

struct EvalParams {
    int32_t n_ctx = 512;
    int32_t max_chunks = 0;   // 0 = all
    int32_t n_threads = 0;
    std::function<bool(const std::string & stage)> progress;  // false cancels
};

struct Variant {
    std::string name;
    std::string path;
};

// variants[0] is the reference. Text is tokenized with the reference's tokenizer
// (all variants must share the vocabulary). Scores the second half of each chunk.
Result<std::vector<VariantResult>> evaluate_variants(const std::vector<Variant> & variants, const std::string & text,
                                                     const EvalParams & params);

std::string format_table(const std::vector<VariantResult> & rows);   // Markdown
std::string format_json(const std::vector<VariantResult> & rows);

}  // namespace gb::quant
