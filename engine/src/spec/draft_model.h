// The draft-model speculator class, shared by the draft and self-draft methods.
#pragma once

#include "glassbox/spec/speculator.h"

#include <random>

namespace gb::spec {

class DraftModelSpeculator : public Speculator {
  public:
    DraftModelSpeculator(std::shared_ptr<const Model> draft, std::unique_ptr<Context> ctx,
                         const SamplerParams & sampling, const char * name);
    const char * name() const override { return m_name; }
    Status propose(std::span<const Token> tokens, int32_t max_len, Draft & out, const std::atomic<bool> * cancel) override;
    bool has_model_cost() const override { return true; }
    Result<double> step_ms(const std::atomic<bool> * cancel) override;
    Context & context() { return *m_ctx; }
    const std::vector<Token> & cached_tokens() const { return m_tokens; }

  private:
    std::shared_ptr<const Model> m_draft;
    std::unique_ptr<Context> m_ctx;
    SamplerParams m_sampling;
    const char * m_name;
    std::vector<Token> m_tokens;  // tokens whose K/V the drafter holds
    std::mt19937_64 m_rng;
    CandidateArray m_cand;
};

}  // namespace gb::spec
