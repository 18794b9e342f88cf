// BatchEngine: Scheduler + BatchForward + per-request samplers (see batch_engine.h),
// the context overflow policy, and speculative decoding per request (drafts
// verified as multi-token chunks of the batched forward pass).
#include "glassbox/kv/batch_engine.h"

#include "glassbox/spec/spec_decoder.h"
#include "glassbox/spec/speculator.h"
#include "spec/draft_controller.h"
#include "spec/target_dist.h"

#include <algorithm>
#include <random>

namespace gb::kv {

// Per-request speculation: the speculator (prompt lookup / lookahead), the
// single-stream decoder's draft-length controller, statistics, the RNG of
// rejection sampling.
struct BatchEngine::SpecState {
    SpecConfig cfg;
    SamplerParams sampling;
    std::unique_ptr<Speculator> spec;
    spec::Controller ctl;
    SpecStats stats;
    std::mt19937_64 rng;
    CandidateArray cand;
    spec::Plan plan;             // the controller's plan for the current step
    int32_t k = 0;               // draft length chosen for the current step
    double t_draft_ms = 0.0;     // drafting time of the current step
    int32_t last_draft_len = 0;  // draft tokens verified by the last step
};

BatchEngine::BatchEngine() = default;
void BatchEngine::set_accept_rule(AcceptRule r) { m_accept_rule = int(r); }
BatchEngine::~BatchEngine() = default;

namespace {
using Clock = std::chrono::steady_clock;
double ms_between(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double, std::milli>(b - a).count(); }
}  // namespace

const char * engine_event_name(EngineEvent::Kind k) {
    switch (k) {
        case EngineEvent::Kind::Admitted: return "admitted";
        case EngineEvent::Kind::Token: return "token";
        case EngineEvent::Kind::Preempted: return "preempted";
        case EngineEvent::Kind::Finished: return "finished";
        case EngineEvent::Kind::Cancelled: return "cancelled";
    }
    return "?";
}

Result<std::unique_ptr<BatchEngine>> BatchEngine::create(std::shared_ptr<const Model> model, const BatchEngineParams & params) {
    if (!model) return make_error(ErrorCode::InvalidArgument, "BatchEngine::create: no model");
    if (params.page_size < 1) return make_error(ErrorCode::InvalidArgument, "page_size must be positive");
    std::unique_ptr<BatchEngine> e(new BatchEngine());
    e->m_params = params;
    if (e->m_params.n_pages == 0) {
        const int32_t n_ctx = std::min(params.n_ctx, model->hparams().n_ctx_train);
        e->m_params.n_pages = std::max(1, (n_ctx + params.page_size - 1) / params.page_size);
    }
    SchedulerParams sp;
    sp.n_pages = e->m_params.n_pages;
    sp.page_size = params.page_size;
    sp.max_tokens_per_step = params.max_tokens_per_step;
    sp.max_running = params.max_running;
    sp.prefix_cache = params.prefix_cache;
    auto sched = Scheduler::create(sp);
    if (!sched) return sched.error();
    BatchForwardParams fp;
    fp.n_threads = params.n_threads;
    fp.max_batch_tokens = params.max_tokens_per_step;
    fp.n_pages = e->m_params.n_pages;
    fp.page_size = params.page_size;
    fp.kv_type = params.kv_type;
    auto fwd = params.make_forward ? params.make_forward(model, fp) : BatchForward::create(model, fp);
    if (!fwd) return fwd.error();
    e->m_model = std::move(model);
    e->m_sched = std::move(*sched);
    e->m_fwd = std::move(*fwd);
    BatchEngine * self = e.get();
    e->m_sched->set_listener([self](const RequestEvent & ev) { self->on_sched_event(ev); });
    return Result<std::unique_ptr<BatchEngine>>(std::move(e));
}

double BatchEngine::now_ms() const {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - m_t0).count();
}

int32_t BatchEngine::max_seq_tokens() const {
    return std::min<int32_t>(m_fwd->max_positions(), m_params.n_pages * m_params.page_size);
}

Result<BatchEngine::Fitted> BatchEngine::fit(const GenRequest & req) const {
    Fitted f{req.prompt, req.max_new_tokens, 0};
    if (req.overflow != OverflowPolicy::DropOldestTurns || req.turns.empty() || req.prompt.empty() || req.max_new_tokens < 1) return f;
    GB_TRY_STATUS(check_turn_spans(req.turns, req.prompt.size()));
    const int32_t limit = max_seq_tokens();
    const TurnSpans & t = req.turns;
    auto n_after = [&](int32_t cut) {
        return cut == 0 ? int32_t(req.prompt.size()) : t.system_len + int32_t(req.prompt.size()) - t.starts[size_t(cut)];
    };
    auto fits = [&](int32_t cut) -> Result<bool> {
        return overflow_prompt_fits(OverflowPolicy::DropOldestTurns, n_after(cut), req.max_new_tokens, limit);
    };
    auto is_user = [&](int32_t i) { return t.is_user.empty() || t.is_user[size_t(i)] != 0; };
    auto cut = choose_turn_cut(OverflowPolicy::DropOldestTurns, int32_t(t.starts.size()), is_user, fits);
    if (!cut) {
        return make_error(ErrorCode::OutOfRange, "prompt of " + std::to_string(req.prompt.size()) + " tokens (system span " +
                                                     std::to_string(t.system_len) + ", " + std::to_string(t.starts.size()) +
                                                     " turns) " + cut.error().message + " within the per-sequence limit of " +
                                                     std::to_string(limit) + " positions");
    }
    f.n_dropped = cut->cut;
    f.prompt = drop_turn_spans(req.prompt, t, cut->cut);
    // The last sampled token needs no K/V slot: limit - prompt + 1 new tokens fit.
    f.max_new_tokens = std::min(req.max_new_tokens, limit - int32_t(f.prompt.size()) + 1);
    return f;
}

AdmissionResult BatchEngine::check(const GenRequest & req) const {
    AdmissionResult a;
    switch (req.spec.method) {
        case SpecMethod::None:
        case SpecMethod::PromptLookup:
        case SpecMethod::Lookahead: break;
        default:
            a.reason = std::string("speculation method \"") + spec_method_name(req.spec.method) +
                       "\" needs a drafter context of its own; inside BatchEngine only lookup and lookahead work";
            return a;
    }
    auto f = fit(req);
    if (!f) {
        a.reason = f.error().message;
        return a;
    }
    RequestParams rp{f->prompt, f->max_new_tokens, req.stop_token};
    a = m_sched->check(rp);
    a.n_dropped_turns = f->n_dropped;
    if (a.verdict == Admission::Impossible) return a;
    const int64_t n_pos = int64_t(f->prompt.size()) + f->max_new_tokens - 1;
    if (n_pos > m_fwd->max_positions()) {
        a.verdict = Admission::Impossible;
        a.reason = "prompt of " + std::to_string(f->prompt.size()) + " tokens + up to " + std::to_string(f->max_new_tokens) +
                   " new tokens exceeds the model's context of " + std::to_string(m_fwd->max_positions()) + " positions";
        return a;
    }
    const int32_t n_vocab = m_model->hparams().n_vocab;
    for (size_t i = 0; i < req.prompt.size(); ++i) {
        if (req.prompt[i] < 0 || req.prompt[i] >= n_vocab) {
            a.verdict = Admission::Impossible;
            a.reason = "prompt token " + std::to_string(req.prompt[i]) + " at index " + std::to_string(i) + " is outside the vocabulary";
            return a;
        }
    }
    return a;
}

AdmissionResult BatchEngine::submit(GenRequest req) {
    AdmissionResult a = check(req);
    if (a.verdict == Admission::Impossible) return a;
    auto f = fit(req);  // check() succeeded, so this does too
    if (!f) return a;
    auto sampler = std::make_unique<Sampler>(req.sampling);
    for (Token t : f->prompt) sampler->accept(t);
    a = m_sched->submit(RequestParams{f->prompt, f->max_new_tokens, req.stop_token});
    a.n_dropped_turns = f->n_dropped;
    if (a.id < 0) return a;
    m_samplers[a.id] = std::move(sampler);
    if (f->n_dropped > 0) m_dropped[a.id] = f->n_dropped;
    if (req.spec.method != SpecMethod::None) {
        auto sp = std::make_shared<SpecState>();
        sp->cfg = req.spec;
        sp->sampling = req.sampling;
        sp->spec = req.spec.method == SpecMethod::Lookahead ? make_lookahead_speculator(req.spec)
                                                             : make_prompt_lookup_speculator(req.spec);
        sp->spec->reset();
        sp->stats.method = sp->spec->name();
        uint64_t seed = req.sampling.seed;
        if (seed == 0) seed = (uint64_t(std::random_device{}()) << 32) ^ std::random_device{}();
        sp->rng.seed(seed ^ 0x5bd1e9955bd1e995ull);
        m_spec[a.id] = std::move(sp);
    }
    return a;
}

const SpecStats * BatchEngine::spec_stats(RequestId id) const {
    auto it = m_spec.find(id);
    if (it != m_spec.end()) return &it->second->stats;
    auto jt = m_spec_done.find(id);
    return jt != m_spec_done.end() ? &jt->second->stats : nullptr;
}

std::vector<uint8_t> BatchEngine::kv_bytes_at(RequestId id, int il, int32_t pos) const {
    const auto * kv = dynamic_cast<const CpuKvStorage *>(&m_fwd->storage());
    const std::span<const PageId> pages = m_sched->pages(id);
    const int32_t ps = m_params.page_size;
    if (kv == nullptr || il < 0 || il >= m_model->hparams().n_layer || pos < 0 || size_t(pos / ps) >= pages.size()) return {};
    const PageId p = pages[size_t(pos / ps)];
    const int32_t slot = pos % ps;
    const uint8_t * k = kv->k_layer(il) + size_t(p) * kv->page_bytes_k() + size_t(slot) * kv->slot_bytes_k();
    const uint8_t * v = kv->v_layer(il) + size_t(p) * kv->page_bytes_v() + size_t(slot) * kv->slot_bytes_v();
    std::vector<uint8_t> out(k, k + kv->slot_bytes_k());
    out.insert(out.end(), v, v + kv->slot_bytes_v());
    return out;
}

Status BatchEngine::cancel(RequestId id) {
    GB_TRY_STATUS(m_sched->cancel(id));
    m_samplers.erase(id);
    auto it = m_spec.find(id);
    if (it != m_spec.end()) {
        m_spec_done[id] = std::move(it->second);
        m_spec.erase(it);
    }
    m_dropped.erase(id);
    return {};
}

void BatchEngine::on_sched_event(const RequestEvent & e) {
    EngineEvent ev;
    ev.id = e.id;
    ev.token = e.token;
    ev.t_ms = now_ms();
    switch (e.kind) {
        case RequestEvent::Kind::Admitted: {
            ev.kind = EngineEvent::Kind::Admitted;
            // the scheduler fills the hit in before it emits (step() then sets
            // this admission's own count, which differs after a preemption)
            if (const RequestInfo * info = m_sched->request(e.id)) ev.prefix_hit_tokens = info->prefix_hit_tokens;
            auto it = m_dropped.find(e.id);
            if (it != m_dropped.end()) ev.dropped_turns = it->second;
            break;
        }
        case RequestEvent::Kind::Token: {
            ev.kind = EngineEvent::Kind::Token;
            const RequestInfo * info = m_sched->request(e.id);
            ev.index = info ? int32_t(info->generated.size()) - 1 : 0;
            auto it = m_origins.find(e.id);
            if (it != m_origins.end() && !it->second.empty()) {
                ev.origin = it->second.front();
                it->second.erase(it->second.begin());
            }
            if (const SpecStats * st = spec_stats(e.id)) {
                ev.spec_proposed = st->proposed;
                ev.spec_accepted = st->accepted;
                ev.draft_len = m_spec.count(e.id) ? m_spec.at(e.id)->last_draft_len : 0;
            }
            break;
        }
        case RequestEvent::Kind::Preempted: ev.kind = EngineEvent::Kind::Preempted; break;
        case RequestEvent::Kind::Finished: {
            ev.kind = EngineEvent::Kind::Finished;
            if (const SpecStats * st = spec_stats(e.id)) {
                ev.spec_proposed = st->proposed;
                ev.spec_accepted = st->accepted;
            }
            break;
        }
        case RequestEvent::Kind::Cancelled: ev.kind = EngineEvent::Kind::Cancelled; break;
    }
    m_step_events.push_back(ev);
    if (m_listener) m_listener(ev);
}

void BatchEngine::propose_drafts() {
    for (auto & [id, sp] : m_spec) {
        sp->k = 0;
        sp->t_draft_ms = 0.0;
        if (!m_sched->is_decoding(id)) continue;
        const RequestInfo * info = m_sched->request(id);
        // The plan as in the single-stream decoder: the speculator (prompt
        // lookup / lookahead, both cheap) proposes at full depth every step;
        // the proposal is the controller's shadow; the batched forward
        // verifies chains (no tree mask, no lookahead window).
        const int32_t k_max = std::min(sp->cfg.draft_max, info->params.max_new_tokens - int32_t(info->generated.size()) - 1);
        if (k_max <= 0) continue;
        const auto t0 = Clock::now();
        Draft draft;
        if (!sp->spec->propose(m_sched->history(id), k_max, draft, nullptr)) continue;
        spec::keep_first_chain(draft);
        spec::prune_depth(draft, k_max);
        draft.aux_tokens.clear();
        draft.aux_parent.clear();
        draft.aux_output.clear();
        sp->t_draft_ms = ms_between(t0, Clock::now());
        sp->ctl.shadow_start(draft);
        sp->plan = sp->ctl.choose(sp->cfg, spec::shape_of(draft), k_max, false);
        sp->k = sp->plan.k;
        if (sp->plan.off) ++sp->stats.off_steps;
        if (sp->k <= 0) continue;
        spec::prune_depth(draft, sp->k);
        (void)m_sched->set_draft(id, std::move(draft.tokens));
    }
}

// Verifies a speculative chunk [pending, d_0 .. d_{k-1}] (rows[j] = logits
// after token j) like SpecDecoder: greedy prefix match, or modified rejection
// sampling with the point-mass q of a deterministic draft. A plain step
// (k = 0) samples from the one row. Updates the statistics and controller.
Result<SampledToken> BatchEngine::verify(const SeqWork & w, std::span<const float> rows, SpecState & sp) {
    const size_t n_vocab = size_t(m_model->hparams().n_vocab);
    const int32_t k = w.n_draft;
    if (rows.size() != n_vocab * size_t(k + 1))
        return make_error(ErrorCode::Internal, "BatchEngine: " + std::to_string(rows.size() / n_vocab) + " logit rows for a chunk of " +
                                                   std::to_string(k + 1) + " tokens");
    const bool greedy = sp.sampling.temperature <= 0.0f;
    const std::span<const Token> h = m_sched->history(w.id);
    std::vector<Token> hist(h.begin(), h.end());
    auto row = [&](int32_t j) { return rows.subspan(size_t(j) * n_vocab, n_vocab); };
    SpecStats & st = sp.stats;
    std::vector<SpecOrigin> & origins = m_origins[w.id];
    SampledToken out;
    out.id = w.id;
    int32_t a = 0;
    SpecOrigin last = SpecOrigin::Target;
    for (int32_t j = 0;; ++j) {
        const bool has_draft = j < k;
        const Token d = has_draft ? w.tokens[size_t(1 + j)] : -1;
        if (has_draft) {
            if (size_t(j) >= st.attempted_at.size()) {
                st.attempted_at.resize(size_t(j) + 1, 0);
                st.accepted_at.resize(size_t(j) + 1, 0);
            }
            ++st.attempted_at[size_t(j)];
        }
        bool accept = false;
        Token t = -1;
        if (greedy) {
            t = spec::greedy_token(row(j), sp.sampling, hist);
            accept = has_draft && (t == d || AcceptRule(m_accept_rule) == AcceptRule::AlwaysAccept);
        } else {
            spec::target_dist(row(j), sp.sampling, hist, sp.cand);
            std::vector<std::pair<Token, float>> p;
            p.reserve(sp.cand.items.size());
            for (const Candidate & c : sp.cand.items) p.emplace_back(c.id, c.p);
            if (has_draft) {
                // q is a point mass on d: accept with probability p(d); otherwise
                // draw from norm(max(0, p - q)) = p without d.
                float pd = 0.0f;
                for (const auto & [id, pr] : p) if (id == d) pd = pr;
                std::uniform_real_distribution<double> uni(0.0, 1.0);
                accept = uni(sp.rng) < double(pd) || AcceptRule(m_accept_rule) == AcceptRule::AlwaysAccept;
                if (!accept && AcceptRule(m_accept_rule) == AcceptRule::IgnoreResidual) {
                    t = spec::draw(p, sp.rng);  // broken on purpose: p unchanged after rejecting d
                } else if (!accept) {
                    std::vector<std::pair<Token, float>> rest;
                    double z = 0.0;
                    for (const auto & pr : p) if (pr.first != d) { rest.push_back(pr); z += pr.second; }
                    if (rest.empty() || z <= 0.0) rest = {{d, 1.0f}}, z = 1.0;
                    for (auto & pr : rest) pr.second = float(pr.second / z);
                    t = spec::draw(rest, sp.rng);
                }
            } else {
                t = spec::draw(p, sp.rng);
            }
        }
        if (accept) {
            ++st.accepted_at[size_t(j)];
            hist.push_back(d);
            origins.push_back(SpecOrigin::Draft);
            ++a;
            continue;
        }
        last = k == 0 ? SpecOrigin::Target : (has_draft ? SpecOrigin::Correction : SpecOrigin::Bonus);
        origins.push_back(last);
        out.token = t;
        hist.push_back(t);
        break;
    }
    out.n_accepted = a;
    for (size_t i = h.size(); i < hist.size(); ++i) sp.ctl.on_emitted(hist[i]);  // the shadow walks

    // Statistics (as SpecDecoder keeps them).
    SpecStep ss;
    ss.draft_len = sp.k;
    ss.proposed = k;
    ss.accepted = a;
    ss.emitted = a + 1;
    ss.decode_calls = 1;
    ss.t_draft_ms = sp.t_draft_ms;
    ss.t_verify_ms = m_last_fwd_ms;
    ++st.steps;
    if (k > 0) ++st.spec_steps;
    st.proposed += k;
    st.accepted += a;
    st.emitted += a + 1;
    st.n_draft += a;
    (last == SpecOrigin::Target ? st.n_target : last == SpecOrigin::Correction ? st.n_correction : st.n_bonus) += 1;
    for (int32_t i = 0; i < a; ++i) st.origins.push_back(SpecOrigin::Draft);
    st.origins.push_back(last);
    st.t_draft_ms += sp.t_draft_ms;
    st.t_verify_ms += m_last_fwd_ms;
    st.t_total_ms += sp.t_draft_ms + m_last_fwd_ms;
    st.per_step.push_back(ss);
    sp.last_draft_len = k;

    // Controller: the cost of a forward pass with this request's chunk of
    // k + 1 tokens (the step's time, shared with the batch); acceptance comes
    // from the shadow walks (on_emitted below).
    spec::Controller & c = sp.ctl;
    if (!w.is_prefill) c.costs.observe(k + 1, m_last_fwd_ms);
    st.plain_step_ms = c.costs.t_plain();

    SpecObservation obs;
    obs.tokens = hist;
    obs.n_accepted = a;
    for (int32_t j = a; j < k; ++j) {
        obs.tail_tokens.push_back(w.tokens[size_t(1 + j)]);
        obs.tail_next.push_back(spec::argmax(row(j + 1)));
    }
    sp.spec->observe(obs);
    return out;
}

Result<StepReport> BatchEngine::step() {
    StepReport rep;
    rep.t_begin_ms = now_ms();
    m_step_events.clear();
    m_origins.clear();
    propose_drafts();
    StepPlan plan = m_sched->step();
    // prefix hits of this step's admissions
    for (EngineEvent & ev : m_step_events) {
        if (ev.kind != EngineEvent::Kind::Admitted) continue;
        for (const AdmittedInfo & a : plan.metrics.admitted) {
            if (a.id == ev.id) ev.prefix_hit_tokens = a.prefix_hit_tokens;
        }
        m_dropped.erase(ev.id);
    }
    if (m_step_observer) m_step_observer(*m_sched, plan);
    if (!plan.empty()) {
        std::vector<BatchSeq> seqs;
        seqs.reserve(plan.work.size());
        for (const SeqWork & w : plan.work) {
            BatchSeq s;
            s.tokens = w.tokens;
            s.first_pos = w.first_pos;
            s.pages = m_sched->tables().pages(w.seq);
            s.logits = w.sample;
            s.all_logits = w.sample && w.n_draft > 0;
            seqs.push_back(s);
        }
        const auto t_fwd0 = Clock::now();
        Status st = m_fwd->run(seqs, plan.copies);
        m_last_fwd_ms = ms_between(t_fwd0, Clock::now());
        if (!st) {
            // The step cannot complete: drop its requests (freeing their pages) and close the step.
            for (const SeqWork & w : plan.work) (void)cancel(w.id);
            (void)m_sched->commit({});
            return st.error();
        }
        std::vector<SampledToken> samples;
        for (size_t i = 0; i < plan.work.size(); ++i) {
            const SeqWork & w = plan.work[i];
            if (!w.sample) continue;
            auto it = m_samplers.find(w.id);
            if (it == m_samplers.end()) continue;  // cancelled from a listener during this step
            auto sp = m_spec.find(w.id);
            if (sp != m_spec.end()) {
                auto r = verify(w, m_fwd->logits(i), *sp->second);
                if (!r) {
                    for (const SeqWork & x : plan.work) (void)cancel(x.id);
                    (void)m_sched->commit({});
                    return r.error();
                }
                samples.push_back(*r);
                continue;
            }
            const Token t = it->second->plain_greedy() ? m_fwd->greedy_token(i) : it->second->sample(m_fwd->logits(i));
            it->second->accept(t);
            if (m_sample_observer) m_sample_observer(w.id, m_fwd->logits(i), t);
            samples.push_back({w.id, t});
        }
        GB_TRY_STATUS(m_sched->commit(samples));
        rep.ran = true;
    }
    for (const EngineEvent & ev : m_step_events) {
        if (ev.kind == EngineEvent::Kind::Finished || ev.kind == EngineEvent::Kind::Cancelled) {
            m_samplers.erase(ev.id);
            auto it = m_spec.find(ev.id);
            if (it != m_spec.end()) {
                m_spec_done[ev.id] = std::move(it->second);
                m_spec.erase(it);
            }
        }
    }
    rep.metrics = std::move(plan.metrics);
    rep.events = std::move(m_step_events);
    m_step_events.clear();
    rep.t_end_ms = now_ms();
    return rep;
}

Status BatchEngine::run_to_completion(const std::function<void(const StepReport &)> & on_step) {
    while (has_work()) {
        auto r = step();
        if (!r) return r.error();
        if (on_step) on_step(*r);
        if (!r->ran && has_work() && r->metrics.n_running == 0 && r->metrics.admitted.empty())
            return make_error(ErrorCode::Internal, "BatchEngine: requests wait but nothing can run");
    }
    return {};
}

}  // namespace gb::kv
