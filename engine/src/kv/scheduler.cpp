// Continuous-batching scheduler: admission, chunked prefill under a token
// budget, preemption by recompute, cancellation, prefix-cache reuse.
#include "glassbox/kv/scheduler.h"

#include <algorithm>
#include <cassert>

namespace gb::kv {

const char * admission_name(Admission a) {
    switch (a) {
        case Admission::Ok: return "ok";
        case Admission::Later: return "later";
        case Admission::Impossible: return "impossible";
    }
    return "?";
}

Result<std::unique_ptr<Scheduler>> Scheduler::create(const SchedulerParams & p) {
    if (p.n_pages < 1 || p.page_size < 1)
        return make_error(ErrorCode::InvalidArgument, "scheduler: need n_pages >= 1 and page_size >= 1");
    if (p.max_tokens_per_step < 1 || p.max_running < 1)
        return make_error(ErrorCode::InvalidArgument, "scheduler: need max_tokens_per_step >= 1 and max_running >= 1");
    if (p.max_running > p.max_tokens_per_step)
        return make_error(ErrorCode::InvalidArgument,
                          "scheduler: max_running (" + std::to_string(p.max_running) + ") > max_tokens_per_step (" +
                              std::to_string(p.max_tokens_per_step) + ") would starve decodes");
    return std::unique_ptr<Scheduler>(new Scheduler(p));
}

Scheduler::Scheduler(const SchedulerParams & p)
    : m_params(p),
      m_pool(std::make_unique<BlockPool>(p.n_pages, p.page_size)),
      m_tables(std::make_unique<PageTables>(*m_pool)),
      m_cache(std::make_unique<RadixCache>(*m_pool)) {}

int32_t Scheduler::pages_for_tokens(int64_t n_tokens) const {
    return static_cast<int32_t>((n_tokens + m_params.page_size - 1) / m_params.page_size);
}

void Scheduler::emit(RequestEvent::Kind kind, RequestId id, Token token) {
    if (m_listener) m_listener(RequestEvent{kind, id, token});
}

AdmissionResult Scheduler::check(const RequestParams & req) const {
    AdmissionResult r;
    if (req.prompt.empty()) {
        r.reason = "empty prompt";
        return r;
    }
    if (req.max_new_tokens < 1) {
        r.reason = "max_new_tokens must be >= 1 (got " + std::to_string(req.max_new_tokens) + ")";
        return r;
    }
    // The last sampled token is never fed back, so its K/V needs no slot.
    const int64_t kv_tokens = int64_t(req.prompt.size()) + req.max_new_tokens - 1;
    const int32_t need = pages_for_tokens(kv_tokens);
    if (need > m_params.n_pages) {
        r.reason = "prompt of " + std::to_string(req.prompt.size()) + " tokens + up to " +
                   std::to_string(req.max_new_tokens) + " new tokens needs " + std::to_string(need) + " pages of " +
                   std::to_string(m_params.page_size) + " tokens, the cache has only " + std::to_string(m_params.n_pages);
        return r;
    }
    r.verdict = Admission::Later;
    const int32_t need_prompt = pages_for_tokens(int64_t(req.prompt.size()));
    if (!m_waiting.empty()) {
        r.reason = std::to_string(m_waiting.size()) + " requests queued ahead";
    } else if (m_running.size() >= size_t(m_params.max_running)) {
        r.reason = "all " + std::to_string(m_params.max_running) + " sequence slots are busy";
    } else if (need_prompt > m_pool->n_available()) {
        r.reason = "prompt needs " + std::to_string(need_prompt) + " pages, " + std::to_string(m_pool->n_available()) +
                   " are free or evictable now";
    } else {
        r.verdict = Admission::Ok;
    }
    return r;
}

AdmissionResult Scheduler::submit(RequestParams req) {
    AdmissionResult a = check(req);
    if (a.verdict == Admission::Impossible) return a;
    auto r = std::make_unique<Req>();
    r->info.id = m_next_id++;
    r->info.params = std::move(req);
    r->history = r->info.params.prompt;
    a.id = r->info.id;
    m_waiting.push_back(a.id);
    m_reqs.emplace(a.id, std::move(r));
    return a;
}

const RequestInfo * Scheduler::request(RequestId id) const {
    auto it = m_reqs.find(id);
    return it == m_reqs.end() ? nullptr : &it->second->info;
}

bool Scheduler::is_decoding(RequestId id) const {
    auto it = m_reqs.find(id);
    if (it == m_reqs.end()) return false;
    const Req & r = *it->second;
    return r.info.state == RequestState::Running && r.n_pending == 0 && !r.info.generated.empty() &&
           r.history.size() == size_t(r.n_computed) + 1;
}

std::span<const PageId> Scheduler::pages(RequestId id) const {
    auto it = m_reqs.find(id);
    if (it == m_reqs.end() || it->second->seq < 0) return {};
    return m_tables->pages(it->second->seq);
}

std::span<const Token> Scheduler::history(RequestId id) const {
    auto it = m_reqs.find(id);
    if (it == m_reqs.end()) return {};
    return it->second->history;
}

Status Scheduler::set_draft(RequestId id, std::vector<Token> draft) {
    if (m_step_open) return make_error(ErrorCode::InvalidArgument, "set_draft between step() and commit()");
    if (!is_decoding(id)) return make_error(ErrorCode::InvalidArgument, "set_draft: request " + std::to_string(id) + " is not decoding");
    m_reqs.at(id)->draft = std::move(draft);
    return Status::success();
}

void Scheduler::index_pages(Req & r) {
    if (!m_params.prefix_cache) return;
    const int32_t ps = m_params.page_size;
    const int32_t n_full = r.n_computed / ps;
    if (n_full <= r.n_indexed_pages) return;
    const std::span<const Token> tokens(r.history.data(), size_t(n_full) * size_t(ps));
    const std::vector<PageId> pages(m_tables->pages(r.seq).begin(), m_tables->pages(r.seq).begin() + n_full);
    InsertResult ins = m_cache->insert(tokens, pages);
    // Someone else computed the same prefix first: use their pages, free ours.
    for (const auto & d : ins.duplicates) m_tables->replace_page(r.seq, d.index, d.cached);
    m_cache->lock(ins.node);  // lock the new path before unlocking the old one
    if (r.locked != nullptr) m_cache->unlock(r.locked);
    r.locked = ins.node;
    r.n_indexed_pages = n_full;
}

void Scheduler::release(Req & r) {
    if (r.locked != nullptr) m_cache->unlock(r.locked);
    r.locked = nullptr;
    if (r.seq >= 0) m_tables->free(r.seq);
    r.seq = -1;
    r.n_computed = 0;
    r.n_pending = 0;
    r.n_indexed_pages = 0;
}

void Scheduler::preempt(Req & r, StepPlan & plan) {
    // NOTE: victims are picked before they got work in this step.
    assert(r.n_pending == 0);
    index_pages(r);  // recompute may then hit the cache, unless the pages get evicted meanwhile
    release(r);
    r.info.state = RequestState::Waiting;
    ++r.info.n_preemptions;
    m_running.erase(std::find(m_running.begin(), m_running.end(), r.info.id));
    m_waiting.push_front(r.info.id);
    plan.metrics.preempted.push_back(r.info.id);
    emit(RequestEvent::Kind::Preempted, r.info.id);
}

bool Scheduler::schedule_running(Req & r, int32_t & budget, StepPlan & plan, int32_t * draft_budget) {
    const int32_t to_feed = static_cast<int32_t>(r.history.size()) - r.n_computed;
    assert(to_feed >= 1);
    int32_t n = std::min(to_feed, budget);
    if (n <= 0) return true;
    const bool decode = to_feed == 1 && !r.info.generated.empty();
    const int32_t ps = m_params.page_size;
    // Speculative decode: the draft rides along within the draft budget.
    int32_t n_draft = 0;
    if (decode && !r.draft.empty()) {
        n_draft = std::min<int32_t>(int32_t(r.draft.size()), budget - n);
        if (draft_budget != nullptr) n_draft = std::min(n_draft, *draft_budget);
        n_draft = std::max(0, n_draft);
    }
    while (m_tables->pages_needed(r.seq, n + n_draft) > m_pool->n_available()) {
        if (n_draft > 0) {  // a shorter draft beats preempting anyone
            --n_draft;
            continue;
        }
        const int32_t n_tok = m_tables->n_tokens(r.seq);
        const int32_t room = static_cast<int32_t>(m_tables->pages(r.seq).size()) * ps - n_tok + m_pool->n_available() * ps;
        if (!decode && room >= 1) {
            n = std::min(n, room);  // a smaller prefill chunk beats preempting anyone
            continue;
        }
        // Preempt the most recently admitted sequence without work in this step:
        // one admitted after r, or r itself (those before r were scheduled first).
        Req * victim = nullptr;
        for (auto it = m_running.rbegin(); it != m_running.rend() && victim == nullptr; ++it) {
            Req & c = *m_reqs.at(*it);
            if (c.n_pending == 0) victim = &c;
        }
        assert(victim != nullptr);
        preempt(*victim, plan);
        if (victim == &r) return false;
    }
    auto app = m_tables->append(r.seq, n + n_draft);
    assert(app.ok());
    plan.copies.insert(plan.copies.end(), app->copies.begin(), app->copies.end());
    SeqWork w;
    w.id = r.info.id;
    w.seq = r.seq;
    w.first_pos = r.n_computed;
    w.tokens.assign(r.history.begin() + r.n_computed, r.history.begin() + r.n_computed + n);
    w.is_prefill = !decode;
    w.sample = n == to_feed;
    w.n_draft = n_draft;
    w.tokens.insert(w.tokens.end(), r.draft.begin(), r.draft.begin() + n_draft);
    r.draft.clear();
    if (draft_budget != nullptr) *draft_budget -= n_draft;
    n += n_draft;
    r.n_pending = n;
    budget -= n;
    (w.is_prefill ? plan.metrics.n_prefill_tokens : plan.metrics.n_decode_tokens) += n;
    plan.metrics.n_draft_tokens += n_draft;
    plan.metrics.composition.push_back({w.id, n, w.is_prefill, n_draft});
    plan.work.push_back(std::move(w));
    return true;
}

bool Scheduler::admit(Req & r, int32_t budget, StepPlan & plan) {
    PrefixMatch m;
    if (m_params.prefix_cache) {
        // Leave at least one token to compute: its logits give the next token.
        m = m_cache->match_prefix(std::span<const Token>(r.history.data(), r.history.size() - 1));
    }
    const SeqId seq = m_tables->create_with_prefix(m.pages);
    RadixNode * locked = nullptr;
    if (m_params.prefix_cache && !m.pages.empty()) {
        m_cache->lock(m.node);
        locked = m.node;
    }
    const int32_t remaining = static_cast<int32_t>(r.history.size()) - m.n_tokens;
    // Admit only when the whole remaining prompt fits now, so a long prompt does
    // not start, stall and get preempted over and over.
    if (m_tables->pages_needed(seq, remaining) > m_pool->n_available()) {
        if (locked != nullptr) m_cache->unlock(locked);
        m_tables->free(seq);
        return false;
    }
    r.seq = seq;
    r.locked = locked;
    r.n_computed = m.n_tokens;
    r.n_indexed_pages = static_cast<int32_t>(m.pages.size());
    r.admit_order = ++m_admit_counter;
    r.info.state = RequestState::Running;
    if (r.info.n_preemptions == 0) r.info.prefix_hit_tokens = m.n_tokens;
    m_running.push_back(r.info.id);
    plan.metrics.admitted.push_back({r.info.id, m.n_tokens});
    emit(RequestEvent::Kind::Admitted, r.info.id);
    int32_t b = budget;
    const bool scheduled = schedule_running(r, b, plan);
    // NOTE: the remaining prompt fits, so the first chunk never preempts.
    assert(scheduled);
    (void)scheduled;
    return true;
}

StepPlan Scheduler::step() {
    // NOTE: step() and commit() alternate.
    assert(!m_step_open);
    StepPlan plan;
    plan.metrics.step = m_step++;
    int32_t budget = m_params.max_tokens_per_step;

    // Decodes first: a running stream gets its token every step; drafts only
    // take what the plain decode tokens leave of the budget.
    const std::vector<RequestId> order = m_running;
    int32_t n_decoding = 0;
    for (RequestId id : order) n_decoding += is_decoding(id) ? 1 : 0;
    int32_t draft_budget = std::max(0, budget - n_decoding);
    for (int pass = 0; pass < 2; ++pass) {
        for (RequestId id : order) {
            if (std::find(m_running.begin(), m_running.end(), id) == m_running.end()) continue;  // preempted
            Req & r = *m_reqs.at(id);
            if (r.n_pending > 0) continue;
            const bool decode = r.history.size() - size_t(r.n_computed) == 1 && !r.info.generated.empty();
            if (decode != (pass == 0)) continue;
            if (budget == 0) break;
            schedule_running(r, budget, plan, &draft_budget);
        }
    }
    // Then admissions, FCFS, into what is left of the budget.
    while (budget > 0 && !m_waiting.empty() && m_running.size() < size_t(m_params.max_running)) {
        Req & r = *m_reqs.at(m_waiting.front());
        if (!admit(r, budget, plan)) break;
        m_waiting.pop_front();
        budget -= r.n_pending;
    }

    for (RequestId id : m_running) m_reqs.at(id)->draft.clear();  // a draft is for one step only

    const BlockPoolStats s = m_pool->stats();
    plan.metrics.pages_used = s.used;
    plan.metrics.pages_free = s.free;
    plan.metrics.pages_cached = s.cached;
    plan.metrics.pages_shared = s.shared;
    plan.metrics.evictions_total = s.evictions;
    plan.metrics.evictions = static_cast<int32_t>(s.evictions - m_evictions_seen);
    m_evictions_seen = s.evictions;
    plan.metrics.n_running = static_cast<int32_t>(m_running.size());
    plan.metrics.n_waiting = static_cast<int32_t>(m_waiting.size());
    m_pending = plan.work;
    m_step_open = true;
    return plan;
}

void Scheduler::finish(Req & r, RequestState state) {
    if (r.info.state == RequestState::Running) {
        index_pages(r);
        release(r);
        m_running.erase(std::find(m_running.begin(), m_running.end(), r.info.id));
    } else if (r.info.state == RequestState::Waiting) {
        m_waiting.erase(std::find(m_waiting.begin(), m_waiting.end(), r.info.id));
    }
    r.info.state = state;
    emit(state == RequestState::Finished ? RequestEvent::Kind::Finished : RequestEvent::Kind::Cancelled, r.info.id);
}

Status Scheduler::cancel(RequestId id) {
    auto it = m_reqs.find(id);
    if (it == m_reqs.end()) return make_error(ErrorCode::InvalidArgument, "cancel: no request " + std::to_string(id));
    Req & r = *it->second;
    if (r.info.state == RequestState::Finished || r.info.state == RequestState::Cancelled) return Status::success();
    finish(r, RequestState::Cancelled);
    return Status::success();
}

Status Scheduler::commit(std::span<const SampledToken> samples) {
    if (!m_step_open) return make_error(ErrorCode::InvalidArgument, "commit without a step");
    // Validate everything first, so a bad report changes nothing.
    std::map<RequestId, Token> by_id;
    std::map<RequestId, int32_t> n_acc;
    for (const SampledToken & s : samples) {
        if (!by_id.emplace(s.id, s.token).second)
            return make_error(ErrorCode::InvalidArgument, "commit: two tokens for request " + std::to_string(s.id));
        n_acc[s.id] = s.n_accepted;
    }
    for (const SeqWork & w : m_pending) {
        const Req & r = *m_reqs.at(w.id);
        const bool live = r.info.state == RequestState::Running && r.seq == w.seq;
        if (w.sample && live) {
            if (!by_id.count(w.id)) return make_error(ErrorCode::InvalidArgument, "commit: no token for request " + std::to_string(w.id));
            if (n_acc[w.id] < 0 || n_acc[w.id] > w.n_draft)
                return make_error(ErrorCode::InvalidArgument, "commit: request " + std::to_string(w.id) + " accepted " +
                                                                  std::to_string(n_acc[w.id]) + " of " + std::to_string(w.n_draft) + " draft tokens");
        }
        if (w.sample) by_id.erase(w.id);  // cancelled ones: ignored
    }
    if (!by_id.empty())
        return make_error(ErrorCode::InvalidArgument,
                          "commit: token for request " + std::to_string(by_id.begin()->first) + " which had nothing to sample");
    std::map<RequestId, Token> tokens;
    for (const SampledToken & s : samples) tokens[s.id] = s.token;

    for (const SeqWork & w : m_pending) {
        Req & r = *m_reqs.at(w.id);
        if (r.info.state != RequestState::Running || r.seq != w.seq) continue;  // cancelled meanwhile
        if (!w.sample) {
            r.n_computed += r.n_pending;
            r.n_pending = 0;
            index_pages(r);
            continue;
        }
        // Emitted: the accepted draft tokens, then the sampled token.
        const int32_t a = w.n_draft > 0 ? n_acc[w.id] : 0;
        std::vector<Token> emitted(w.tokens.end() - w.n_draft, w.tokens.end() - w.n_draft + a);
        emitted.push_back(tokens.at(w.id));
        // K/V kept: the fed tokens up to the last accepted draft token; the
        // rejected tail is cut off so the sequence equals plain decoding.
        r.n_computed += r.n_pending - (w.n_draft - a);
        r.n_pending = 0;
        if (w.n_draft > a) m_tables->truncate(r.seq, r.n_computed);
        bool done = false;
        for (Token t : emitted) {
            r.info.generated.push_back(t);
            r.history.push_back(t);
            emit(RequestEvent::Kind::Token, r.info.id, t);
            if (r.info.state != RequestState::Running) break;  // cancelled from the listener
            done = int32_t(r.info.generated.size()) >= r.info.params.max_new_tokens ||
                   (r.info.params.stop_token >= 0 && t == r.info.params.stop_token);
            if (done) break;
        }
        if (r.info.state != RequestState::Running) continue;
        if (done) {
            // Stopped inside the accepted run: keep only K/V of tokens in the history.
            if (r.n_computed > int32_t(r.history.size())) {
                r.n_computed = int32_t(r.history.size());
                m_tables->truncate(r.seq, r.n_computed);
            }
            finish(r, RequestState::Finished);
        } else {
            index_pages(r);
        }
    }
    m_pending.clear();
    m_step_open = false;
    return Status::success();
}

Status Scheduler::check_invariants() const {
    GB_TRY_STATUS(m_pool->check_invariants());
    GB_TRY_STATUS(m_cache->check_invariants());
    auto fail = [](const std::string & m) { return Status(make_error(ErrorCode::Internal, "Scheduler: " + m)); };
    std::vector<int32_t> holders(size_t(m_pool->n_pages()), 0);
    int32_t n_locks = 0;
    for (RequestId id : m_running) {
        const Req & r = *m_reqs.at(id);
        if (r.info.state != RequestState::Running || r.seq < 0) return fail("running request " + std::to_string(id) + " without a table");
        if (m_tables->n_tokens(r.seq) != r.n_computed + r.n_pending) return fail("table length of " + std::to_string(id));
        for (PageId p : m_tables->pages(r.seq)) ++holders[size_t(p)];
        if (r.locked != nullptr) ++n_locks;
    }
    for (RequestId id : m_waiting) {
        const Req & r = *m_reqs.at(id);
        if (r.info.state != RequestState::Waiting || r.seq >= 0 || r.locked) return fail("waiting request " + std::to_string(id) + " holds pages");
    }
    if (m_tables->n_seqs() != m_running.size()) return fail("tables without a running request");
    for (PageId p = 0; p < m_pool->n_pages(); ++p) {
        if (m_pool->ref_count(p) != holders[size_t(p)])
            return fail("page " + std::to_string(p) + " ref " + std::to_string(m_pool->ref_count(p)) + " but " +
                        std::to_string(holders[size_t(p)]) + " holders");
    }
    if (m_cache->root().lock_ref != n_locks) return fail("root lock count != locked requests");
    return Status::success();
}

}  // namespace gb::kv
