// Immutable snapshots the inspector panels draw from: per-request token traces
// (shared in fixed-size immutable chunks, so publishing a 100,000-token history
// copies at most one chunk), their statistics, and the model's GGUF summary.
#pragma once

#include "glassbox/gguf.h"
#include "glassbox/sampler.h"
#include "glassbox/spec/spec_types.h"
#include "glassbox/tokenizer.h"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace gb::ui {

// Where a generated token came from (speculative decoding fills the last three).
enum class TokenOrigin : uint8_t { Sampled, DraftAccepted, DraftCorrected, Bonus };
const char * tokenOriginName(TokenOrigin origin);

struct TokenSample {
    Token       id = -1;
    std::string text;           // UTF-8 text this token completed (may be empty)
    double      tMs = 0.0;      // since the request started
    float       logprob = 0.0f;
    float       entropy = 0.0f; // nats, see tokenEntropy()
    TokenOrigin origin = TokenOrigin::Sampled;
    std::vector<TokenLogprob> top;  // alternatives, most likely first
};

// Append-only token history. Full chunks are immutable and shared between
// every snapshot that contains them.
class TokenHistory {
  public:
    static constexpr size_t kChunkSize = 4096;
    using Chunk = std::vector<TokenSample>;

    size_t size() const { return m_size; }
    bool empty() const { return m_size == 0; }
    const TokenSample & operator[](size_t i) const { return (*m_chunks[i / kChunkSize])[i % kChunkSize]; }
    const std::vector<std::shared_ptr<const Chunk>> & chunks() const { return m_chunks; }

  private:
    friend class TraceRecorder;
    friend class TokenHistoryBuilder;
    std::vector<std::shared_ptr<const Chunk>> m_chunks;
    size_t m_size = 0;
};

// Producer-side builder: appends into a private tail, hands out histories.
class TokenHistoryBuilder {
  public:
    void append(TokenSample sample);
    size_t size() const { return m_full.size() * TokenHistory::kChunkSize + m_tail.size(); }
    TokenHistory snapshot() const;  // copies only the partial tail chunk
    void clear();

  private:
    std::vector<std::shared_ptr<const TokenHistory::Chunk>> m_full;
    TokenHistory::Chunk m_tail;
};

// Equal-width histogram over [lo, hi]; the last bin includes hi.
struct Histogram {
    double lo = 0.0;
    double hi = 0.0;
    std::vector<uint32_t> counts;
    uint64_t total = 0;
    double binWidth() const { return counts.empty() ? 0.0 : (hi - lo) / double(counts.size()); }
    uint32_t maxCount() const;
};

// Percentile with linear interpolation between closest ranks (numpy's default):
// q in [0, 100]. Reorders values. Returns 0 for an empty input.
double percentileInPlace(std::vector<double> & values, double q);
// nBins equal bins from min to max of values (a single value gets one bin around it).
Histogram makeHistogram(std::span<const double> values, int nBins);
Histogram makeHistogram(std::span<const double> values, int nBins, double lo, double hi);

// Entropy (nats) of the next-token distribution as far as the top-k list shows
// it: -sum p log p over the listed alternatives (the sampled token added when it
// is not among them), plus the remaining mass r counted as one outcome (-r log r).
// This is a lower bound of the true entropy; exact when the list covers it all.
float tokenEntropy(Token id, float logprob, std::span<const TokenLogprob> top);

struct LatencyStats {
    size_t nTokens = 0;
    size_t nGaps = 0;           // inter-token latencies (nTokens - 1)
    double ttftMs = 0.0;        // time to first token
    double decodeMs = 0.0;      // first token to last token
    double tokensPerS = 0.0;    // nGaps / decode time
    double meanMs = 0.0, minMs = 0.0, maxMs = 0.0;
    double p50Ms = 0.0, p95Ms = 0.0, p99Ms = 0.0;
    Histogram itl;              // inter-token latency histogram (ms)
};
// Token times are t_ms since the request started, in order.
LatencyStats computeLatencyStats(std::span<const double> tokenTimesMs, double ttftMs, int nBins);

struct TokenStats {
    size_t nTokens = 0;
    double meanLogprob = 0.0;
    double perplexity = 0.0;    // exp(-mean logprob)
    double meanProb = 0.0;
    double meanEntropy = 0.0;
    double maxEntropy = 0.0;
    size_t byOrigin[4] = {0, 0, 0, 0};
    Histogram prob;             // probability of the chosen token, [0, 1]
};
TokenStats computeTokenStats(const TokenHistory & tokens, int nBins);

// A phase of a request's timeline: waiting in the queue, prefill (one span per
// chunk when known), plain decode steps, and speculative draft / verify phases.
enum class Phase : uint8_t { Queue, Prefill, Decode, Draft, Verify };
const char * phaseName(Phase p);
struct PhaseSpan {
    Phase   phase = Phase::Decode;
    double  t0Ms = 0.0, t1Ms = 0.0;   // since the request started (queue: negative, before it)
    int32_t nTokens = 0;              // tokens prefilled / emitted in the span
};

// Speculative decoding of one request, derived from the engine's SpecStats.
struct SpecSummary {
    std::string method;
    int64_t steps = 0, specSteps = 0, proposed = 0, accepted = 0, emitted = 0;
    int64_t nTarget = 0, nDraft = 0, nCorrection = 0, nBonus = 0;
    double acceptanceRate = 0.0;      // accepted / proposed
    double meanAcceptedLen = 0.0;     // accepted per speculative step
    double tokensPerStep = 0.0;
    double tokensPerS = 0.0;
    double plainTokensPerS = 0.0;     // engine's measured plain step cost (0: not measured)
    double speedup = 0.0;             // tokensPerS / plainTokensPerS (0: unknown)
    double tDraftMs = 0.0, tVerifyMs = 0.0;
    std::vector<double> acceptanceByPosition;  // [d] accepted_at / attempted_at
    std::vector<int64_t> attemptedAt, acceptedAt;
    // Per step: accepted / proposed over the last `window` speculative steps
    // (NaN-free: steps before any proposal repeat 0).
    std::vector<float> rollingAcceptance;
    std::vector<int32_t> acceptedPerStep;      // per step
    int window = 0;
};
SpecSummary summarizeSpec(const SpecStats & s, int window = 16);
// Timeline spans of the speculative steps: step i ends at the time of the last
// token it emitted; its verify phase is the t_verify_ms before that, its draft
// phase the t_draft_ms before the verify. Steps without a draft are Decode.
std::vector<PhaseSpan> specPhaseSpans(const SpecStats & s, std::span<const double> tokenTimesMs);

// One generation request as seen so far.
struct RequestTrace {
    uint64_t    id = 0;
    std::string label;
    bool        finished = false;
    std::string stopReason;
    int32_t     nPromptTokens = 0;
    int32_t     nPromptReused = 0;
    double      tPromptMs = 0.0;       // prefill (0 until known)
    double      tFirstTokenMs = 0.0;
    double      tTotalMs = 0.0;        // last known time
    double      tQueueMs = 0.0;        // waited before it started (0: unknown / none)
    std::string promptKey;             // equal for requests on the same prompt ("" unknown)
    std::vector<PhaseSpan> phases;     // queue, prefill, decode / draft / verify
    std::shared_ptr<const SpecStats> spec;  // null: no speculative decoding
    std::shared_ptr<const SpecSummary> specSummary;
    TokenHistory tokens;
    LatencyStats latency;
    TokenStats   tokenStats;
};

struct TensorRow {
    size_t  index = 0;      // into file->tensors()
    int     layer = -1;     // from "blk.N." (-1: not in a layer)
};

struct LayerTotal {
    int      layer = -1;    // -1: tensors outside the blocks (embeddings, output, norms)
    int      nTensors = 0;
    uint64_t nParams = 0;
    uint64_t nBytes = 0;
};

struct TypeTotal {
    TensorType type = TensorType::F32;
    int        nTensors = 0;
    uint64_t   nParams = 0;
    uint64_t   nBytes = 0;
};

// What the inspector knows about the loaded model file.
struct ModelInfo {
    std::shared_ptr<const gguf::File> file;
    std::shared_ptr<const Tokenizer>  tokenizer;  // null if it could not be built
    std::string tokenizerError;
    std::string architecture;
    std::string name;
    std::vector<TensorRow>  tensors;     // file order
    std::vector<LayerTotal> layers;      // non-layer group first, then by layer
    std::vector<TypeTotal>  types;       // by bytes, largest first
    uint64_t totalParams = 0;
    uint64_t totalBytes = 0;
};

struct KvTrace;  // kv_trace.h

// Everything a panel may draw. Immutable once published.
struct InspectorSnapshot {
    uint64_t sequence = 0;   // set by the ring when published
    double   publishedMs = 0.0;
    std::shared_ptr<const ModelInfo> model;
    std::vector<std::shared_ptr<const RequestTrace>> requests;  // oldest first
    std::shared_ptr<const KvTrace> kv;  // KV cache, prefix tree, batching (null: none yet)
};

}  // namespace gb::ui
