// BatchEngine: Scheduler + BatchForward + per-request samplers (see batch_engine.h).
#include "glassbox/kv/batch_engine.h"

#include <algorithm>

namespace gb::kv {

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

AdmissionResult BatchEngine::check(const GenRequest & req) const {
    RequestParams rp{req.prompt, req.max_new_tokens, req.stop_token};
    AdmissionResult a = m_sched->check(rp);
    if (a.verdict == Admission::Impossible) return a;
    const int64_t n_pos = int64_t(req.prompt.size()) + req.max_new_tokens - 1;
    if (n_pos > m_fwd->max_positions()) {
        a.verdict = Admission::Impossible;
        a.reason = "prompt of " + std::to_string(req.prompt.size()) + " tokens + up to " + std::to_string(req.max_new_tokens) +
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
    auto sampler = std::make_unique<Sampler>(req.sampling);
    for (Token t : req.prompt) sampler->accept(t);
    a = m_sched->submit(RequestParams{std::move(req.prompt), req.max_new_tokens, req.stop_token});
    if (a.id >= 0) m_samplers[a.id] = std::move(sampler);
    return a;
}

Status BatchEngine::cancel(RequestId id) {
    GB_TRY_STATUS(m_sched->cancel(id));
    m_samplers.erase(id);
    return {};
}

void BatchEngine::on_sched_event(const RequestEvent & e) {
    EngineEvent ev;
    ev.id = e.id;
    ev.token = e.token;
    ev.t_ms = now_ms();
    switch (e.kind) {
        case RequestEvent::Kind::Admitted: ev.kind = EngineEvent::Kind::Admitted; break;
        case RequestEvent::Kind::Token: {
            ev.kind = EngineEvent::Kind::Token;
            const RequestInfo * info = m_sched->request(e.id);
            ev.index = info ? int32_t(info->generated.size()) - 1 : 0;
            break;
        }
        case RequestEvent::Kind::Preempted: ev.kind = EngineEvent::Kind::Preempted; break;
        case RequestEvent::Kind::Finished: ev.kind = EngineEvent::Kind::Finished; break;
        case RequestEvent::Kind::Cancelled: ev.kind = EngineEvent::Kind::Cancelled; break;
    }
    m_step_events.push_back(ev);
    if (m_listener) m_listener(ev);
}

Result<StepReport> BatchEngine::step() {
    StepReport rep;
    rep.t_begin_ms = now_ms();
    m_step_events.clear();
    StepPlan plan = m_sched->step();
    // prefix hits of this step's admissions
    for (EngineEvent & ev : m_step_events) {
        if (ev.kind != EngineEvent::Kind::Admitted) continue;
        for (const AdmittedInfo & a : plan.metrics.admitted) {
            if (a.id == ev.id) ev.prefix_hit_tokens = a.prefix_hit_tokens;
        }
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
            seqs.push_back(s);
        }
        Status st = m_fwd->run(seqs, plan.copies);
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
            const Token t = it->second->plain_greedy() ? m_fwd->greedy_token(i) : it->second->sample(m_fwd->logits(i));
            it->second->accept(t);
            if (m_sample_observer) m_sample_observer(w.id, m_fwd->logits(i), t);
            samples.push_back({w.id, t});
        }
        GB_TRY_STATUS(m_sched->commit(samples));
        rep.ran = true;
    }
    for (const EngineEvent & ev : m_step_events) {
        if (ev.kind == EngineEvent::Kind::Finished || ev.kind == EngineEvent::Kind::Cancelled) m_samplers.erase(ev.id);
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
