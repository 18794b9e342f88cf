// Synthetic token events (see scripted_trace.h).
#include "scripted_trace.h"

#include "kv_trace.h"

#include <utility>

#include <algorithm>
#include <cmath>
#include <random>

namespace gb::ui {

std::vector<TokenEvent> makeScriptedTokenEvents(const ScriptedTraceParams & p, const Tokenizer * tok) {
    std::mt19937_64 rng(p.seed);
    std::uniform_real_distribution<double> unit(0.0, 1.0);
    std::normal_distribution<double> normal(0.0, 1.0);

    std::vector<Token> source;
    if (tok) {
        const std::string text = p.text.empty()
            ? std::string("The inspector shows why a reply was fast or slow: the time to the first token, the gap "
                          "between tokens, how sure the model was of each one and which words it almost chose. ")
            : p.text;
        source = tok->encode(text, false, false);
    }
    const int32_t n_vocab = tok ? tok->n_vocab() : std::max(p.nVocab, 2);

    std::vector<TokenEvent> events;
    events.reserve(p.nTokens);
    double t = p.ttftMs;
    for (size_t i = 0; i < p.nTokens; ++i) {
        TokenEvent e;
        e.id = source.empty() ? Token(rng() % uint64_t(n_vocab)) : source[i % source.size()];
        e.text = tok ? tok->token_to_piece(e.id, false) : "tok" + std::to_string(e.id) + " ";
        if (i > 0) {
            // Log-normal jitter around the mean, and a slow step now and then.
            double gap = p.meanItlMs * std::exp(0.25 * normal(rng));
            if (i % 97 == 0) gap *= 4.0;
            t += std::max(gap, 0.05);
        }
        e.t_ms = t;

        // A distribution over nTop listed tokens plus unlisted rest mass.
        const int k = std::max(p.nTop, 1);
        std::vector<double> w(size_t(k) + 1);
        const double sharp = 0.5 + 4.0 * unit(rng);  // how confident this step is
        for (int j = 0; j < k; ++j) w[size_t(j)] = std::exp(-sharp * j - 0.3 * unit(rng));
        w[size_t(k)] = 0.05 + 0.3 * unit(rng) * std::exp(-sharp);
        double sum = 0;
        for (double v : w) sum += v;
        std::sort(w.begin(), w.end() - 1, std::greater<>());
        const int chosen_rank = unit(rng) < 0.85 ? 0 : 1 + int(rng() % uint64_t(std::max(k - 1, 1)));
        for (int j = 0; j < k; ++j) {
            Token id = (j == std::min(chosen_rank, k - 1)) ? e.id : Token(rng() % uint64_t(n_vocab));
            if (id == e.id && j != std::min(chosen_rank, k - 1)) id = (id + 1) % n_vocab;
            e.top.push_back({id, float(std::log(w[size_t(j)] / sum))});
        }
        if (p.nTop <= 0) e.top.clear();
        e.logprob = float(std::log(w[size_t(std::min(chosen_rank, k - 1))] / sum));
        events.push_back(std::move(e));
    }
    return events;
}

}  // namespace gb::ui

namespace gb::ui {

GenerateResult ScriptedSpecRun::result() const {
    GenerateResult r;
    r.stop = StopReason::MaxTokens;
    r.n_generated = int32_t(events.size());
    r.t_first_token_ms = events.empty() ? 0.0 : events.front().t_ms;
    r.t_total_ms = events.empty() ? 0.0 : events.back().t_ms;
    r.spec = stats;
    return r;
}

ScriptedSpecRun makeScriptedSpecRun(const ScriptedSpecParams & p, const Tokenizer * tok) {
    ScriptedTraceParams tp;
    tp.nTokens = p.nTokens;
    tp.seed = p.seed;
    tp.ttftMs = p.ttftMs;
    ScriptedSpecRun run;
    run.events = makeScriptedTokenEvents(tp, tok);
    std::mt19937_64 rng(p.seed * 7919 + 3);
    std::uniform_real_distribution<double> unit(0.0, 1.0);
    SpecStats & s = run.stats;
    s.method = p.method;
    const int32_t k = std::max(p.draftMax, 0);
    s.attempted_at.assign(size_t(k), 0);
    s.accepted_at.assign(size_t(k), 0);
    s.plain_step_ms = p.plainStepMs;
    double t = p.ttftMs;
    size_t i = 0;
    if (!run.events.empty()) {  // the first token comes from the prefill logits: a plain step
        run.events[0].origin = SpecOrigin::Target;
        run.events[0].t_ms = t;
        SpecStep first;
        first.emitted = 1;
        s.per_step.push_back(first);
        ++s.steps;
        ++s.n_target;
        ++s.emitted;
        i = 1;
    }
    while (i < run.events.size()) {
        SpecStep st;
        st.draft_len = k;
        st.proposed = k;
        st.decode_calls = 1;
        int32_t acc = 0;
        while (acc < k && unit(rng) < p.acceptFirst * std::pow(p.decay, acc)) ++acc;
        acc = std::min(acc, int32_t(run.events.size() - i));  // the last step may be cut short
        for (int32_t d = 0; d < k; ++d) ++s.attempted_at[size_t(d)];
        for (int32_t d = 0; d < acc; ++d) ++s.accepted_at[size_t(d)];
        st.accepted = acc;
        st.t_draft_ms = p.draftTokenMs * k;
        st.t_verify_ms = p.plainStepMs * (1.0 + 0.02 * k);
        const double t_end = t + st.t_draft_ms + st.t_verify_ms;
        // Emitted: the accepted drafts, then a correction (rejected) or a bonus (all accepted).
        for (int32_t j = 0; j <= acc && i < run.events.size(); ++j, ++i) {
            TokenEvent & e = run.events[i];
            e.origin = j < acc ? SpecOrigin::Draft : (acc == k ? SpecOrigin::Bonus : SpecOrigin::Correction);
            e.t_ms = t_end;  // a verify step delivers its tokens together
            ++st.emitted;
            if (e.origin == SpecOrigin::Draft) ++s.n_draft;
            else if (e.origin == SpecOrigin::Bonus) ++s.n_bonus;
            else ++s.n_correction;
        }
        ++s.steps;
        if (k > 0) ++s.spec_steps;
        s.proposed += st.proposed;
        s.accepted += st.accepted;
        s.emitted += st.emitted;
        s.t_draft_ms += st.t_draft_ms;
        s.t_verify_ms += st.t_verify_ms;
        s.per_step.push_back(st);
        t = t_end;
    }
    s.t_total_ms = t;
    for (const TokenEvent & e : run.events) s.origins.push_back(e.origin);
    return run;
}

// ---- scripted scheduler workload ----

Result<std::unique_ptr<ScriptedKvWorkload>> ScriptedKvWorkload::create(const ScriptedKvParams & params) {
    auto sched = kv::Scheduler::create(params.scheduler);
    if (!sched) return sched.error();
    std::unique_ptr<ScriptedKvWorkload> w(new ScriptedKvWorkload(params));
    w->m_sched = std::move(*sched);
    for (int32_t i = 0; i < params.systemTokens; ++i) w->m_system.push_back(w->tokenAt(1, uint64_t(i)));
    w->m_convs.resize(size_t(std::max(params.nConversations, 0)));
    w->m_sched->set_listener([wp = w.get()](const kv::RequestEvent & e) {
        if (e.kind != kv::RequestEvent::Kind::Finished) return;
        auto it = wp->m_convOf.find(e.id);
        if (it == wp->m_convOf.end()) return;
        Conv & c = wp->m_convs[size_t(it->second)];
        if (const kv::RequestInfo * info = wp->m_sched->request(e.id)) {
            c.history = info->params.prompt;
            c.history.insert(c.history.end(), info->generated.begin(), info->generated.end());
        }
        c.active = -1;
        if (++c.turn < wp->m_p.nTurns) wp->m_pendingSubmit.push_back(it->second);
    });
    for (int32_t c = 0; c < int32_t(w->m_convs.size()); ++c) w->m_pendingSubmit.push_back(c);
    return w;
}

Token ScriptedKvWorkload::tokenAt(uint64_t a, uint64_t b) const {
    uint64_t h = (a * 0x9e3779b97f4a7c15ull) ^ (b + 0x632be59bd9b4e019ull + (m_p.seed << 17));
    h ^= h >> 31;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 29;
    if (!m_p.vocab.empty()) return m_p.vocab[size_t(h % m_p.vocab.size())];
    return Token(h % uint64_t(std::max(m_p.nVocab, 2)));
}

int32_t ScriptedKvWorkload::conversationOf(kv::RequestId id) const {
    auto it = m_convOf.find(id);
    return it == m_convOf.end() ? -1 : it->second;
}

void ScriptedKvWorkload::submitTurn(int32_t conv, KvRecorder * rec) {
    Conv & c = m_convs[size_t(conv)];
    kv::RequestParams req;
    req.prompt = c.history.empty() ? m_system : c.history;
    for (int32_t i = 0; i < m_p.userTokens; ++i) req.prompt.push_back(tokenAt(1000 + uint64_t(conv) * 64 + uint64_t(c.turn), uint64_t(i)));
    req.max_new_tokens = m_p.maxNewTokens;
    const kv::AdmissionResult a = m_sched->submit(std::move(req));
    if (a.verdict == kv::Admission::Impossible) {  // too long for the cache: the conversation ends
        c.turn = m_p.nTurns;
        return;
    }
    c.active = a.id;
    m_convOf[a.id] = conv;
    if (rec) rec->setRequestLabel(a.id, "conversation " + std::to_string(conv + 1) + ", turn " + std::to_string(c.turn + 1));
}

bool ScriptedKvWorkload::step(KvRecorder * rec) {
    for (int32_t c : std::exchange(m_pendingSubmit, {})) submitTurn(c, rec);
    if (!m_sched->has_work()) {
        if (rec) rec->publishNow();  // the state after the last commit
        return false;
    }
    m_plan = m_sched->step();
    if (rec) rec->onSchedulerStep(*m_sched, m_plan);
    std::vector<kv::SampledToken> samples;
    for (const kv::SeqWork & w : m_plan.work) {
        m_tokens += int64_t(w.tokens.size());
        if (w.sample) samples.push_back({w.id, tokenAt(7 + uint64_t(w.id), uint64_t(w.first_pos + int32_t(w.tokens.size())))});
    }
    (void)m_sched->commit(samples);
    return true;
}

}  // namespace gb::ui
