// The distribution the Sampler draws from for one logits row, computed with the
// same stages, order and numerics (penalties -> top-k -> top-p -> min-p ->
// temperature -> softmax), so rejection sampling can use p(x) explicitly.
#pragma once

#include "glassbox/sampler.h"

#include <random>
#include <span>
#include <utility>
#include <vector>

namespace gb::spec {

// out.items: the tokens Sampler could draw, sorted by logit (descending), p
// filled and summing to 1. history: the sequence so far; penalties use its last
// penalty_last_n tokens, as Sampler does after accept()ing every token.
// Requires temperature > 0 (sampling).
void target_dist(std::span<const float> logits, const SamplerParams & params, std::span<const Token> history,
                 CandidateArray & out);

// Greedy choice (temperature <= 0): argmax after penalties, lowest id on ties.
Token greedy_token(std::span<const float> logits, const SamplerParams & params, std::span<const Token> history);

// Raw argmax of a row (lowest id on ties).
Token argmax(std::span<const float> logits);

// Draws from a distribution the way Sampler does (one uniform, cumulative scan).
Token draw(const CandidateArray & dist, std::mt19937_64 & rng);
Token draw(const std::vector<std::pair<Token, float>> & dist, std::mt19937_64 & rng);

}  // namespace gb::spec
