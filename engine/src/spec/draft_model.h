// The draft-model speculator class, shared by the draft and self-draft methods.
#pragma once

#include "glassbox/spec/speculator.h"

#include <algorithm>
#include <random>

namespace gb::spec {

class DraftModelSpeculator : public Speculator {
  public:
    DraftModelSpeculator(std::shared_ptr<const Model> draft, std::unique_ptr<Context> ctx,
                         const SamplerParams & sampling, const char * name);
    const char * name() const override { return m_name; }
    Status propose(std::span<const Token> tokens, int32_t max_len, Draft & out, const std::atomic<bool> * cancel) override;
    bool has_model_cost() const override { return true; }
    // The cost of one drafter step (ms): measured once, by time_step() when the
    // speculator is made (part of loading the drafter, before the reply's first
    // token: the first of its two steps pays for cold caches and a GPU graph
    // capture), so the reply never pays for the timing; measured here if not.
    Result<double> step_ms(const std::atomic<bool> * cancel) override;
    Status time_step(const std::atomic<bool> * cancel);
    void set_ingest_window(int32_t tokens) override { m_window = std::max(0, tokens); }
    int32_t last_ingested() const override { return m_ingested; }
    Context & context() { return *m_ctx; }
    // The tokens whose K/V the drafter holds, in its positions: the sequence
    // from window_start(), after the sequence's first token when windowed.
    const std::vector<Token> & cached_tokens() const { return m_tokens; }
    int32_t window_start() const { return m_start; }

  private:
    std::shared_ptr<const Model> m_draft;
    std::unique_ptr<Context> m_ctx;
    SamplerParams m_sampling;
    const char * m_name;
    std::vector<Token> m_tokens;  // tokens whose K/V the drafter holds
    int32_t m_window = 0;         // set_ingest_window (0: catch up whatever it takes)
    int32_t m_start = 0;          // m_tokens = sequence[0] + sequence[m_start..] when m_start > 0, else sequence[0..]
    int32_t m_ingested = 0;
    double m_step_ms = 0.0;       // time_step's reading (0: not measured yet)
    std::mt19937_64 m_rng;
    CandidateArray m_cand;
};

}  // namespace gb::spec
