// TraceRecorder: accumulates token events and publishes rate-limited snapshots.
#include "trace_recorder.h"

#include <algorithm>
#include <chrono>

namespace gb::ui {

// Own copy of the names: linking gb::stop_reason_name would pull the whole
// Session (and the forward pass) into every inspector user.
static const char * stopReasonName(StopReason r) {
    switch (r) {
    case StopReason::MaxTokens: return "max tokens";
    case StopReason::EndOfGeneration: return "end of generation";
    case StopReason::StopString: return "stop string";
    case StopReason::ContextFull: return "context full";
    case StopReason::Cancelled: return "cancelled";
    }
    return "?";
}

TraceRecorder::TraceRecorder(SnapshotRing & ring, TraceRecorderParams params)
    : m_ring(ring), m_params(std::move(params)) {
    if (!m_params.clockMs) {
        const auto t0 = std::chrono::steady_clock::now();
        m_params.clockMs = [t0] {
            return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
        };
    }
    if (m_params.maxRequests == 0) m_params.maxRequests = 1;
}

double TraceRecorder::now() const { return m_params.clockMs(); }

void TraceRecorder::setModel(std::shared_ptr<const ModelInfo> model) {
    m_model = std::move(model);
    publish();
}

uint64_t TraceRecorder::beginRequest(std::string label, int32_t nPromptTokens, int32_t nPromptReused) {
    if (m_active) {
        GenerateResult cancelled;
        cancelled.stop = StopReason::Cancelled;
        cancelled.n_prompt_tokens = m_meta.nPromptTokens;
        cancelled.n_prompt_reused = m_meta.nPromptReused;
        cancelled.t_prompt_ms = m_meta.tPromptMs;
        cancelled.t_total_ms = m_times.empty() ? 0.0 : m_times.back();
        endRequest(cancelled);
    }
    m_meta = RequestTrace{};
    m_meta.id = m_nextId++;
    m_meta.label = std::move(label);
    m_explicitPhases.clear();
    m_meta.nPromptTokens = nPromptTokens;
    m_meta.nPromptReused = nPromptReused;
    m_tokens.clear();
    m_times.clear();
    m_active = true;
    publish();
    return m_meta.id;
}

void TraceRecorder::setPrefillTime(double tPromptMs) { m_meta.tPromptMs = tPromptMs; }
void TraceRecorder::setQueueTime(double tQueueMs) { m_meta.tQueueMs = tQueueMs; }
void TraceRecorder::setPromptKey(std::string key) { m_meta.promptKey = std::move(key); }

void TraceRecorder::addPhase(const PhaseSpan & span) { m_explicitPhases.push_back(span); }

void TraceRecorder::setKv(std::shared_ptr<const KvTrace> kv) {
    m_kv = std::move(kv);
    publish();
}

bool TraceRecorder::onToken(const TokenEvent & event, TokenOrigin origin) {
    if (!m_active) beginRequest("request");
    TokenSample s;
    s.id = event.id;
    s.text = event.text;
    s.tMs = event.t_ms;
    s.logprob = event.logprob;
    s.top = event.top;
    s.origin = origin;
    s.entropy = tokenEntropy(event.id, event.logprob, event.top);
    m_tokens.append(std::move(s));
    m_times.push_back(event.t_ms);
    if (m_times.size() == 1) m_meta.tFirstTokenMs = event.t_ms;
    m_meta.tTotalMs = event.t_ms;
    if (now() - m_lastPublishMs >= m_params.minIntervalMs) publish();
    return true;
}

void TraceRecorder::endRequest(const GenerateResult & result) {
    if (!m_active) return;
    m_meta.finished = true;
    m_meta.stopReason = stopReasonName(result.stop);
    m_meta.nPromptTokens = result.n_prompt_tokens;
    m_meta.nPromptReused = result.n_prompt_reused;
    if (result.t_prompt_ms > 0) m_meta.tPromptMs = result.t_prompt_ms;
    if (result.t_first_token_ms > 0) m_meta.tFirstTokenMs = result.t_first_token_ms;
    if (result.t_total_ms > 0) m_meta.tTotalMs = result.t_total_ms;
    if (result.spec.steps > 0 || result.spec.method != "none") {
        auto spec = std::make_shared<SpecStats>(result.spec);
        m_meta.specSummary = std::make_shared<const SpecSummary>(summarizeSpec(*spec));
        m_meta.spec = std::move(spec);
    }
    // Timeline: queue, prefill, then per step (speculative) or per token.
    m_meta.phases.clear();
    auto given = [&](Phase p) {
        return std::any_of(m_explicitPhases.begin(), m_explicitPhases.end(), [p](const PhaseSpan & s) { return s.phase == p; });
    };
    if (m_meta.tQueueMs > 0 && !given(Phase::Queue)) m_meta.phases.push_back({Phase::Queue, -m_meta.tQueueMs, 0.0, 0});
    double prefill_end = m_meta.tPromptMs > 0 ? m_meta.tPromptMs : (m_times.empty() ? 0.0 : m_times.front());
    const int32_t n_prefill = std::max(0, m_meta.nPromptTokens - m_meta.nPromptReused);
    if (given(Phase::Prefill)) {
        for (const PhaseSpan & s : m_explicitPhases)
            if (s.phase == Phase::Prefill) prefill_end = std::max(prefill_end, s.t1Ms);
    } else if (prefill_end > 0 || n_prefill > 0) {
        m_meta.phases.push_back({Phase::Prefill, 0.0, prefill_end, n_prefill});
    }
    m_meta.phases.insert(m_meta.phases.end(), m_explicitPhases.begin(), m_explicitPhases.end());
    m_explicitPhases.clear();
    if (m_meta.spec && !m_meta.spec->per_step.empty()) {
        for (const PhaseSpan & p : specPhaseSpans(*m_meta.spec, m_times)) m_meta.phases.push_back(p);
    } else {
        for (size_t i = 0; i < m_times.size(); ++i)
            m_meta.phases.push_back({Phase::Decode, i ? m_times[i - 1] : std::min(prefill_end, m_times[0]), m_times[i], 1});
    }
    m_finished.push_back(buildCurrent());
    while (m_finished.size() > m_params.maxRequests) m_finished.pop_front();
    m_active = false;
    m_tokens.clear();
    m_times.clear();
    publish();
}

TokenCallback TraceRecorder::callback() {
    return [this](const TokenEvent & e) { return onToken(e, originOf(e.origin)); };
}

void TraceRecorder::publishNow() { publish(); }

std::shared_ptr<RequestTrace> TraceRecorder::buildCurrent() const {
    auto r = std::make_shared<RequestTrace>(m_meta);
    r->tokens = m_tokens.snapshot();
    const double ttft = m_meta.tFirstTokenMs > 0 ? m_meta.tFirstTokenMs : (m_times.empty() ? 0.0 : m_times.front());
    r->latency = computeLatencyStats(m_times, ttft, m_params.histogramBins);
    r->tokenStats = computeTokenStats(r->tokens, m_params.histogramBins);
    return r;
}

void TraceRecorder::publish() {
    auto snap = std::make_shared<InspectorSnapshot>();
    snap->publishedMs = now();
    snap->model = m_model;
    snap->kv = m_kv;
    snap->requests.assign(m_finished.begin(), m_finished.end());
    if (m_active) snap->requests.push_back(buildCurrent());
    m_lastPublishMs = snap->publishedMs;
    ++m_publishCount;
    m_ring.publish(std::move(snap));
}

}  // namespace gb::ui
