// Sampler chain: penalties -> top-k -> top-p -> min-p -> temperature -> draw,
// each stage a small object over a shared candidate array (as in llama.cpp's
// llama-sampling). Greedy is temperature <= 0. Seeded and reproducible.
#pragma once

#include "glassbox/tokenizer.h"

#include <cstdint>
#include <deque>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <vector>

namespace gb {

struct SamplerParams {
    float    temperature = 0.8f;    // <= 0: greedy (argmax after penalties)
    int32_t  top_k = 40;            // <= 0: off
    float    top_p = 0.95f;         // >= 1: off
    float    min_p = 0.05f;         // <= 0: off
    float    repeat_penalty = 1.0f; // 1: off (llama.cpp rule: divide positive, multiply negative logits)
    float    frequency_penalty = 0.0f;
    float    presence_penalty = 0.0f;
    int32_t  penalty_last_n = 64;   // history window for penalties
    uint64_t seed = 0;              // 0: random seed from the OS

    // A penalty is set and has a window of history to count in.
    bool has_penalties() const {
        return penalty_last_n > 0 && (repeat_penalty != 1.0f || frequency_penalty != 0.0f || presence_penalty != 0.0f);
    }
    // Greedy with no penalties: the next token is the logits row's argmax.
    bool greedy_argmax() const { return temperature <= 0.0f && !has_penalties(); }
};

struct Candidate {
    Token id;
    float logit;
    float p;  // filled by softmax stages
};

// A view the stages edit in place. sorted: by logit, descending.
struct CandidateArray {
    std::vector<Candidate> items;
    bool sorted = false;
    void softmax();     // sorts and fills p
    void sort();
};

class SamplerStage {
  public:
    virtual ~SamplerStage() = default;
    virtual const char * name() const = 0;
    virtual void apply(CandidateArray & cur) = 0;
    virtual void accept(Token) {}
    virtual void reset() {}
};

struct TokenLogprob {
    Token id;
    float logprob;  // natural log of the model's probability (temperature 1, before filters)
};

class Sampler {
  public:
    explicit Sampler(const SamplerParams & params);
    Sampler(const Sampler &) = delete;
    Sampler & operator=(const Sampler &) = delete;

    // Picks the next token from one row of logits [n_vocab].
    Token sample(std::span<const float> logits);
    // Records a token that became part of the sequence (prompt or generated).
    void accept(Token id);
    void reset();
    uint64_t seed() const { return m_seed; }
    // Greedy with no stage that changes logits: sample() is the first argmax.
    bool plain_greedy() const { return m_params.temperature <= 0.0f && m_stages.empty(); }
    const SamplerParams & params() const { return m_params; }
    std::string describe() const;  // "penalties -> top-k -> ... -> dist"

    // The model's top-n tokens with log-probabilities (unfiltered softmax).
    static std::vector<TokenLogprob> top_logprobs(std::span<const float> logits, int n);
    static float logprob_of(std::span<const float> logits, Token id);

  private:
    SamplerParams m_params;
    uint64_t      m_seed;
    std::mt19937_64 m_rng;
    std::vector<std::unique_ptr<SamplerStage>> m_stages;
    CandidateArray m_cur;
};

}  // namespace gb
