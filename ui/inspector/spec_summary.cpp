// Speculative-decoding summaries (acceptance by position, rolling acceptance,
// speedup) and timeline phase spans, derived from the engine's SpecStats.
#include "snapshot.h"

#include <algorithm>
#include <deque>

namespace gb::ui {

const char * phaseName(Phase p) {
    switch (p) {
    case Phase::Queue: return "queue";
    case Phase::Prefill: return "prefill";
    case Phase::Decode: return "decode";
    case Phase::Draft: return "draft";
    case Phase::Verify: return "verify";
    }
    return "?";
}

SpecSummary summarizeSpec(const SpecStats & s, int window) {
    SpecSummary r;
    r.method = s.method;
    r.steps = s.steps;
    r.specSteps = s.spec_steps;
    r.proposed = s.proposed;
    r.accepted = s.accepted;
    r.emitted = s.emitted;
    r.nTarget = s.n_target;
    r.nDraft = s.n_draft;
    r.nCorrection = s.n_correction;
    r.nBonus = s.n_bonus;
    r.acceptanceRate = s.acceptance_rate();
    r.meanAcceptedLen = s.mean_accepted_len();
    r.tokensPerStep = s.tokens_per_step();
    r.tokensPerS = s.tokens_per_s();
    r.plainTokensPerS = s.plain_tokens_per_s();
    r.speedup = r.plainTokensPerS > 0 ? r.tokensPerS / r.plainTokensPerS : 0.0;
    r.tDraftMs = s.t_draft_ms;
    r.tVerifyMs = s.t_verify_ms;
    r.attemptedAt = s.attempted_at;
    r.acceptedAt = s.accepted_at;
    r.acceptanceByPosition.assign(s.attempted_at.size(), 0.0);
    for (size_t d = 0; d < s.attempted_at.size(); ++d) {
        const int64_t acc = d < s.accepted_at.size() ? s.accepted_at[d] : 0;
        r.acceptanceByPosition[d] = s.attempted_at[d] ? double(acc) / double(s.attempted_at[d]) : 0.0;
    }
    r.window = std::max(1, window);
    r.rollingAcceptance.reserve(s.per_step.size());
    r.acceptedPerStep.reserve(s.per_step.size());
    std::deque<std::pair<int32_t, int32_t>> win;  // (proposed, accepted) of the last speculative steps
    int64_t sum_p = 0, sum_a = 0;
    float last = 0.0f;
    for (const SpecStep & st : s.per_step) {
        r.acceptedPerStep.push_back(st.accepted);
        if (st.proposed > 0) {
            win.emplace_back(st.proposed, st.accepted);
            sum_p += st.proposed;
            sum_a += st.accepted;
            if (int(win.size()) > r.window) {
                sum_p -= win.front().first;
                sum_a -= win.front().second;
                win.pop_front();
            }
            last = sum_p ? float(double(sum_a) / double(sum_p)) : 0.0f;
        }
        r.rollingAcceptance.push_back(last);
    }
    return r;
}

std::vector<PhaseSpan> specPhaseSpans(const SpecStats & s, std::span<const double> times) {
    std::vector<PhaseSpan> spans;
    spans.reserve(s.per_step.size() * 2);
    size_t next = 0;  // index of the first token of the step
    for (const SpecStep & st : s.per_step) {
        if (st.emitted <= 0 || next >= times.size()) break;
        const size_t last = std::min(times.size() - 1, next + size_t(st.emitted) - 1);
        const double end = times[last];
        if (st.proposed > 0) {
            const double v0 = end - st.t_verify_ms;
            spans.push_back({Phase::Draft, v0 - st.t_draft_ms, v0, 0});
            spans.push_back({Phase::Verify, v0, end, st.emitted});
        } else {
            const double start = next > 0 ? times[next - 1] : end - st.t_verify_ms;
            spans.push_back({Phase::Decode, std::min(start, end), end, st.emitted});
        }
        next = last + 1;
    }
    return spans;
}

}  // namespace gb::ui
