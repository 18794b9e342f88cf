// The speculative decoding loop over a target Context: draft -> verify in one
// decode_tree() call (token tree attention) -> accept (greedy prefix match or
// modified rejection sampling) -> keep the accepted path's K/V, drop the rest. Lossless: greedy output equals plain
// decoding token for token; sampled output has exactly the target's distribution.
#pragma once

#include "glassbox/model.h"
#include "glassbox/sampler.h"
#include "glassbox/spec/speculator.h"

#include <atomic>
#include <memory>
#include <span>
#include <vector>

namespace gb {

struct SpecToken {
    Token       id = -1;
    SpecOrigin origin = SpecOrigin::Target;
    float       logprob = 0.0f;          // target log-probability (temperature 1, unfiltered)
    std::vector<TokenLogprob> top;       // n_logprobs alternatives
};

// Test hook: a deliberately broken acceptance rule, to show the distribution
// test catches it. Never set outside tests.
enum class AcceptRule { Exact, AlwaysAccept, IgnoreResidual };

class SpecDecoder {
  public:
    // target: the Context the tokens live in; spec may be null (plain decoding
    // with the same bookkeeping). seed 0 = sampling.seed (or random if that is 0 too).
    SpecDecoder(Context & target, std::shared_ptr<Speculator> spec, const SpecConfig & cfg,
                const SamplerParams & sampling);
    ~SpecDecoder();

    // Starts a generation. tokens: the whole sequence whose K/V the target
    // holds (n_past == tokens.size()); target.logits() is the last token's row.
    void begin(std::span<const Token> tokens);
    // Emits >= 1 tokens (appended to out). max_new caps the tokens this step
    // may emit (the draft is shortened so no work is wasted); n_logprobs as in
    // GenerateParams. Afterwards target.n_past() == tokens().size() - 1: the last
    // emitted token is pending (decoded with the next draft).
    Status step(std::vector<SpecToken> & out, int32_t max_new, int32_t n_logprobs,
                const std::atomic<bool> * cancel = nullptr);

    std::span<const Token> tokens() const { return m_tokens; }
    const SpecStats & stats() const { return m_stats; }
    SpecStats & stats() { return m_stats; }
    Speculator * speculator() { return m_spec.get(); }
    // Current adaptive draft length (0 while speculation is off).
    int32_t draft_len() const;
    void set_accept_rule(AcceptRule r) { m_rule = r; }  // tests only

  private:
    struct Impl;
    Context & m_target;
    std::shared_ptr<Speculator> m_spec;
    SpecConfig m_cfg;
    SamplerParams m_sampling;
    std::vector<Token> m_tokens;
    SpecStats m_stats;
    AcceptRule m_rule = AcceptRule::Exact;
    std::unique_ptr<Impl> m_impl;
};

// gpt-fast style one-shot: prefill prompt into target (which must be empty or
// hold a prefix of it), generate up to max_new tokens, return tokens + stats.
struct SpecGenerateResult {
    std::vector<Token>       tokens;   // generated tokens (no prompt)
    std::vector<SpecOrigin> origins;
    SpecStats                stats;
};
Result<SpecGenerateResult> speculative_generate(Context & target, std::unique_ptr<Speculator> spec,
                                                std::span<const Token> prompt, int32_t max_new,
                                                const SpecConfig & cfg, const SamplerParams & sampling,
                                                bool stop_at_eog = true, const std::atomic<bool> * cancel = nullptr);

}  // namespace gb
