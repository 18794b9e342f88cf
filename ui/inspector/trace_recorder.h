// Producer side of the inspector: turns the engine's per-token events and
// request results into RequestTrace snapshots and publishes them into a
// SnapshotRing, at most once per minIntervalMs while tokens stream (the final
// state of a request is always published). Used from one producer thread.
#pragma once

#include "snapshot.h"
#include "snapshot_ring.h"

#include "glassbox/session.h"

#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace gb::ui {

struct TraceRecorderParams {
    double minIntervalMs = 40.0;       // <= 25 snapshots per second while streaming
    size_t maxRequests = 32;           // finished requests kept in snapshots
    int    histogramBins = 40;
    std::function<double()> clockMs;   // default: steady clock (tests inject one)
};

class TraceRecorder {
  public:
    explicit TraceRecorder(SnapshotRing & ring, TraceRecorderParams params = {});

    void setModel(std::shared_ptr<const ModelInfo> model);  // publishes at once

    // A new request; an unfinished previous one is closed as cancelled.
    uint64_t beginRequest(std::string label, int32_t nPromptTokens = 0, int32_t nPromptReused = 0);
    void setPrefillTime(double tPromptMs);
    void setQueueTime(double tQueueMs);          // waited before the request started
    void setPromptKey(std::string key);          // groups requests on the same prompt
    // A measured phase of the current request (e.g. each prefill chunk of a
    // batching engine, its queue wait). Where given, these replace the single
    // prefill / queue span endRequest() would derive.
    void addPhase(const PhaseSpan & span);
    // Records one token with the origin its event carries (speculative decoding).
    bool onToken(const TokenEvent & event) { return onToken(event, originOf(event.origin)); }
    // Records one token; publishes when the last publish is older than the
    // interval. Returns true so it can serve as a TokenCallback.
    bool onToken(const TokenEvent & event, TokenOrigin origin);
    // Publishes at once. Keeps result.spec (when speculation ran) and the
    // request's phase spans (queue, prefill, decode / draft / verify).
    void endRequest(const GenerateResult & result);
    // The KV cache / prefix tree / batching view (from a KvRecorder); publishes at once.
    void setKv(std::shared_ptr<const KvTrace> kv);
    static TokenOrigin originOf(SpecOrigin o) { return TokenOrigin(uint8_t(o)); }
    // A TokenCallback that records into this recorder.
    TokenCallback callback();

    void publishNow();
    uint64_t publishCount() const { return m_publishCount; }

  private:
    std::shared_ptr<RequestTrace> buildCurrent() const;
    void publish();
    double now() const;

    SnapshotRing & m_ring;
    TraceRecorderParams m_params;
    std::shared_ptr<const ModelInfo> m_model;
    std::shared_ptr<const KvTrace> m_kv;
    std::deque<std::shared_ptr<const RequestTrace>> m_finished;

    bool m_active = false;
    uint64_t m_nextId = 1;
    RequestTrace m_meta;               // current request, without tokens/stats
    std::vector<PhaseSpan> m_explicitPhases;
    TokenHistoryBuilder m_tokens;
    std::vector<double> m_times;       // t_ms of each token, for latency stats

    double m_lastPublishMs = -1e300;
    uint64_t m_publishCount = 0;
};

}  // namespace gb::ui
