// Deterministic, synthetic token events (timings, logprobs, alternatives) for
// the inspector's tests and its demo before a real generation runs. Nothing
// here comes from a model: the label says "synthetic" wherever it is shown.
#pragma once

// Qt's `emit` macro would rewrite the Scheduler's private emit(): keep it out.
#pragma push_macro("emit")
#undef emit
#include "glassbox/kv/scheduler.h"
#pragma pop_macro("emit")
#include "glassbox/session.h"
#include "glassbox/tokenizer.h"

#include <cstdint>
#include <memory>
#include <string>
#include <map>
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

// A synthetic speculative run: chain drafts of draftMax tokens, each position
// accepted with probability acceptFirst * decay^d until the first rejection;
// times from a plain step of plainStepMs plus draftTokenMs per drafted token.
// The SpecStats counters and the events' origins agree with each other.
struct ScriptedSpecParams {
    std::string method = "lookup";
    size_t   nTokens = 200;
    int32_t  draftMax = 5;
    double   acceptFirst = 0.8;
    double   decay = 0.85;
    double   plainStepMs = 25.0;
    double   draftTokenMs = 2.0;
    double   ttftMs = 180.0;
    uint64_t seed = 1;
};
struct ScriptedSpecRun {
    SpecStats stats;
    std::vector<TokenEvent> events;  // ids / logprobs from makeScriptedTokenEvents, spec times and origins
    GenerateResult result() const;   // t_* and spec filled in
};
ScriptedSpecRun makeScriptedSpecRun(const ScriptedSpecParams & params, const Tokenizer * tok = nullptr);

class KvRecorder;

// A scripted multi-conversation chat workload on a real kv::Scheduler (no
// model: the "sampled" token is a hash): every conversation shares one system
// prompt, each turn's prompt is the conversation so far plus a new user
// message, so prefix hits, chunked prefill, preemption and eviction all occur.
struct ScriptedKvParams {
    kv::SchedulerParams scheduler{256, 16, 128, 8, true};
    int32_t  nConversations = 6;
    int32_t  nTurns = 3;
    int32_t  systemTokens = 48;
    int32_t  userTokens = 40;
    int32_t  maxNewTokens = 24;
    int32_t  nVocab = 32000;
    std::vector<Token> vocab;  // tokens to draw from (e.g. a tokenized text); empty: 0..nVocab-1
    uint64_t seed = 1;
};

class ScriptedKvWorkload {
  public:
    static Result<std::unique_ptr<ScriptedKvWorkload>> create(const ScriptedKvParams & params);
    // One iteration: step(), record into rec (may be null), commit, submit the
    // next turns of conversations that finished. False once everything is done.
    bool step(KvRecorder * rec);
    const kv::Scheduler & scheduler() const { return *m_sched; }
    const kv::StepPlan & lastPlan() const { return m_plan; }
    int64_t tokensProcessed() const { return m_tokens; }
    // Conversation of a request (-1 unknown) and the label given to the recorder.
    int32_t conversationOf(kv::RequestId id) const;

  private:
    explicit ScriptedKvWorkload(const ScriptedKvParams & p) : m_p(p) {}
    Token tokenAt(uint64_t a, uint64_t b) const;
    void submitTurn(int32_t conv, KvRecorder * rec);

    ScriptedKvParams m_p;
    std::unique_ptr<kv::Scheduler> m_sched;
    kv::StepPlan m_plan;
    std::vector<Token> m_system;
    struct Conv { std::vector<Token> history; int32_t turn = 0; kv::RequestId active = -1; };
    std::vector<Conv> m_convs;
    std::map<kv::RequestId, int32_t> m_convOf;
    std::vector<int32_t> m_pendingSubmit;
    int64_t m_tokens = 0;
};

}  // namespace gb::ui
