// Deterministic, synthetic token events (timings, logprobs, alternatives) for
// the inspector's tests and its demo before a real generation runs. Nothing
// here comes from a model: the label says "synthetic" wherever it is shown.
#pragma once

#include "glassbox/session.h"
#include "glassbox/tokenizer.h"

#include <cstdint>
#include <string>
#include <vector>

namespace gb::ui {

struct ScriptedTraceParams {
    size_t   nTokens = 200;
    uint64_t seed = 1;
    int      nTop = 5;            // alternatives per token
    double   ttftMs = 180.0;      // first token time
    double   meanItlMs = 25.0;    // typical inter-token latency
    int32_t  nVocab = 32000;      // ids without a tokenizer
    std::string text;             // token source with a tokenizer (repeated); default: a sample paragraph
};

// Times increase strictly; logprobs are those of a random distribution whose
// top alternatives are listed (sorted, the chosen token among them most times).
std::vector<TokenEvent> makeScriptedTokenEvents(const ScriptedTraceParams & params, const Tokenizer * tok = nullptr);

}  // namespace gb::ui
