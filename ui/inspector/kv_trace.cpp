// KvRecorder: StepMetrics, page states and the radix tree of a kv::Scheduler
// (or a one-sequence Session's results) -> immutable KvTrace snapshots.
#include "kv_trace.h"

#include "trace_recorder.h"

#include <algorithm>
#include <chrono>
#include <unordered_map>

namespace gb::ui {

const char * pageStateName(PageState s) {
    switch (s) {
    case PageState::Free: return "free";
    case PageState::Cached: return "cached (evictable)";
    case PageState::Used: return "used";
    case PageState::Shared: return "shared";
    }
    return "?";
}

namespace {
const char * requestStateName(kv::RequestState s) {
    switch (s) {
    case kv::RequestState::Waiting: return "waiting";
    case kv::RequestState::Running: return "running";
    case kv::RequestState::Finished: return "finished";
    case kv::RequestState::Cancelled: return "cancelled";
    }
    return "?";
}
int32_t pagesFor(int64_t tokens, int32_t page_size) { return int32_t((tokens + page_size - 1) / page_size); }
}  // namespace

KvRecorder::KvRecorder(TraceRecorder & out, KvRecorderParams params)
    : KvRecorder(Sink([&out](std::shared_ptr<const KvTrace> t) { out.setKv(std::move(t)); }), std::move(params)) {}

KvRecorder::KvRecorder(Sink sink, KvRecorderParams params) : m_sink(std::move(sink)), m_params(std::move(params)), m_steps(m_params.maxSteps) {
    if (!m_params.clockMs) {
        const auto t0 = std::chrono::steady_clock::now();
        m_params.clockMs = [t0] { return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count(); };
    }
    // Token text for the tree's edges; a token without printable text shows its id.
    m_params.tokenText = [text = std::move(m_params.tokenText)](Token t) {
        std::string s = text ? text(t) : std::string();
        return s.empty() ? "#" + std::to_string(t) + " " : s;
    };
    if (m_params.sessionPageSize < 1) m_params.sessionPageSize = 16;
}

double KvRecorder::now() const { return m_params.clockMs(); }

void KvRecorder::setRequestLabel(int64_t request, std::string label) {
    m_labels[request] = label;
    auto it = m_requests.find(request);
    if (it != m_requests.end()) it->second.label = std::move(label);
}

KvRequest & KvRecorder::requestEntry(int64_t id) {
    auto it = m_requests.find(id);
    if (it != m_requests.end()) return it->second;
    KvRequest & r = m_requests[id];
    r.id = id;
    auto label = m_labels.find(id);
    r.label = label != m_labels.end() ? label->second : "request " + std::to_string(id);
    m_requestOrder.push_back(id);
    while (m_requestOrder.size() > m_params.maxRequests) {
        m_requests.erase(m_requestOrder.front());
        m_labels.erase(m_requestOrder.front());
        m_requestOrder.pop_front();
    }
    return m_requests[id];
}

void KvRecorder::onSchedulerStep(const kv::Scheduler & sched, const kv::StepPlan & plan) {
    const kv::StepMetrics & m = plan.metrics;
    m_source = "paged-KV scheduler";
    KvStep st;
    st.step = m.step;
    st.tMs = now();
    st.pagesUsed = m.pages_used;
    st.pagesFree = m.pages_free;
    st.pagesCached = m.pages_cached;
    st.pagesShared = m.pages_shared;
    st.evictions = m.evictions;
    st.evictionsTotal = m.evictions_total;
    st.nPrefill = m.n_prefill_tokens;
    st.nDecode = m.n_decode_tokens;
    st.nRunning = m.n_running;
    st.nWaiting = m.n_waiting;
    st.parts.reserve(m.composition.size());
    for (const auto & p : m.composition) st.parts.push_back({p.id, p.n_tokens, p.is_prefill});
    for (const auto & a : m.admitted) {
        st.admitted.emplace_back(a.id, a.prefix_hit_tokens);
        KvRequest & r = requestEntry(a.id);
        if (const kv::RequestInfo * info = sched.request(a.id)) {
            r.promptTokens = int32_t(info->params.prompt.size());
            r.prefixHitTokens = info->prefix_hit_tokens;  // at first admission
        } else {
            r.prefixHitTokens = a.prefix_hit_tokens;
        }
    }
    st.preempted = m.preempted;
    m_steps.append(std::move(st));
    m_evictionsTotal = m.evictions_total;
    for (const kv::SeqWork & w : plan.work) m_seqOwner[w.seq] = w.id;
    if (now() - m_lastPublishMs >= m_params.minIntervalMs) publishFrom(&sched);
    m_lastSched = &sched;
}

void KvRecorder::publishNow() { publishFrom(m_lastSched); }

void KvRecorder::publishFrom(const kv::Scheduler * sched) {
    auto trace = std::make_shared<KvTrace>();
    trace->source = m_source;
    trace->evictionsTotal = m_evictionsTotal;
    if (sched) {
        const kv::BlockPool & pool = sched->pool();
        const kv::PageTables & tables = sched->tables();
        trace->nPages = pool.n_pages();
        trace->pageSize = pool.page_size();
        trace->pageState.resize(size_t(trace->nPages));
        trace->pageOwner.assign(size_t(trace->nPages), -1);
        // Holders of each page: requests whose table holds it.
        std::vector<std::vector<int64_t>> holders(size_t(trace->nPages));
        for (kv::SeqId seq : tables.seq_ids()) {
            auto owner = m_seqOwner.find(seq);
            const int64_t req = owner != m_seqOwner.end() ? owner->second : -1;
            for (kv::PageId p : tables.pages(seq)) {
                auto & h = holders[size_t(p)];
                if (std::find(h.begin(), h.end(), req) == h.end()) h.push_back(req);
            }
        }
        // Drop owners of page tables that are gone.
        for (auto it = m_seqOwner.begin(); it != m_seqOwner.end();) it = tables.contains(it->first) ? std::next(it) : m_seqOwner.erase(it);
        for (kv::PageId p = 0; p < trace->nPages; ++p) {
            const int32_t ref = pool.ref_count(p);
            trace->pageState[size_t(p)] = ref > 1 ? PageState::Shared : ref > 0 ? PageState::Used
                                          : pool.has_hash(p)             ? PageState::Cached
                                                                         : PageState::Free;
            if (!holders[size_t(p)].empty()) trace->pageOwner[size_t(p)] = holders[size_t(p)].front();
        }
        // The tree, pre-order, capped.
        const kv::RadixCache & cache = sched->cache();
        trace->hasTree = sched->params().prefix_cache;
        trace->treeNodesTotal = cache.stats().n_nodes;
        std::unordered_map<const kv::RadixNode *, int32_t> index;
        struct Item { const kv::RadixNode * node; int32_t parent; int32_t level; };
        std::vector<Item> stack;
        const kv::RadixNode & root = cache.root();
        for (auto it = root.children.rbegin(); it != root.children.rend(); ++it) stack.push_back({it->second.get(), -1, 0});
        while (!stack.empty() && trace->tree.size() < m_params.maxTreeNodes) {
            const Item item = stack.back();
            stack.pop_back();
            const kv::RadixNode & n = *item.node;
            KvTreeNode t;
            t.id = n.id;
            t.parent = item.parent;
            t.level = item.level;
            t.nTokens = int32_t(n.tokens.size());
            t.nPages = int32_t(n.pages.size());
            t.lockRef = n.lock_ref;
            t.directLocks = n.direct_locks;
            t.lastAccess = n.last_access;
            t.depthTokens = n.depth_tokens;
            t.nChildren = int32_t(n.children.size());
            t.pages.assign(n.pages.begin(), n.pages.end());
            for (size_t i = 0; i < n.tokens.size() && t.text.size() < 64; ++i) t.text += m_params.tokenText(n.tokens[i]);
            if (t.text.size() > 64) t.text.resize(64);
            for (kv::PageId p : n.pages)
                for (int64_t h : holders[size_t(p)])
                    if (std::find(t.holders.begin(), t.holders.end(), h) == t.holders.end()) t.holders.push_back(h);
            trace->treeClock = std::max(trace->treeClock, n.last_access);
            const int32_t me = int32_t(trace->tree.size());
            index[&n] = me;
            trace->tree.push_back(std::move(t));
            for (auto it = n.children.rbegin(); it != n.children.rend(); ++it) stack.push_back({it->second.get(), me, item.level + 1});
        }
        // Sharers: walk each known request's history (prompt + generated) down the tree.
        const int32_t ps = cache.page_size();
        for (int64_t id : m_requestOrder) {
            const kv::RequestInfo * info = sched->request(id);
            if (!info) continue;
            std::vector<Token> hist = info->params.prompt;
            hist.insert(hist.end(), info->generated.begin(), info->generated.end());
            const kv::RadixNode * node = &root;
            size_t pos = 0;
            while (pos + size_t(ps) <= hist.size()) {
                const std::vector<Token> key(hist.begin() + std::ptrdiff_t(pos), hist.begin() + std::ptrdiff_t(pos) + ps);
                auto child = node->children.find(key);
                if (child == node->children.end()) break;
                const kv::RadixNode & c = *child->second;
                if (pos + c.tokens.size() > hist.size() ||
                    !std::equal(c.tokens.begin(), c.tokens.end(), hist.begin() + std::ptrdiff_t(pos)))
                    break;
                auto ix = index.find(&c);
                if (ix != index.end()) trace->tree[size_t(ix->second)].sharers.push_back(id);
                pos += c.tokens.size();
                node = &c;
            }
        }
        // Request states.
        for (auto & [id, r] : m_requests) {
            if (const kv::RequestInfo * info = sched->request(id)) {
                r.state = requestStateName(info->state);
                r.generated = int32_t(info->generated.size());
                r.preemptions = info->n_preemptions;
                r.promptTokens = int32_t(info->params.prompt.size());
            }
        }
    } else {
        // Session feed: one contiguous sequence, shown as pages.
        const int32_t ps = m_params.sessionPageSize;
        trace->pageSize = ps;
        trace->nPages = pagesFor(m_sessionCtx, ps);
        trace->pageState.assign(size_t(trace->nPages), PageState::Free);
        trace->pageOwner.assign(size_t(trace->nPages), -1);
        for (int32_t p = 0; p < std::min(trace->nPages, pagesFor(m_sessionTokens, ps)); ++p) {
            trace->pageState[size_t(p)] = PageState::Cached;
            trace->pageOwner[size_t(p)] = m_sessionOwner;
        }
    }
    trace->steps = m_steps.snapshot();
    for (int64_t id : m_requestOrder) trace->requests.push_back(m_requests[id]);
    m_lastPublishMs = now();
    ++m_publishCount;
    m_latest = trace;
    if (m_sink) m_sink(std::move(trace));
}

void KvRecorder::onSessionRequest(const SessionRequest & r) {
    const int32_t ps = m_params.sessionPageSize;
    m_source = "Session: one sequence, contiguous KV shown as pages of " + std::to_string(ps) + " tokens";
    m_lastSched = nullptr;
    if (r.nCtx > 0) m_sessionCtx = r.nCtx;
    const int32_t n_pages = pagesFor(m_sessionCtx, ps);
    KvRequest & e = requestEntry(r.id);
    if (!r.label.empty()) e.label = r.label;
    e.promptTokens = r.nPromptTokens;
    e.prefixHitTokens = r.nReused;
    e.generated = int32_t(r.tokenTimesMs.size());
    e.state = r.cancelled ? "cancelled" : "finished";

    // The cache kept the first nReused tokens of what it held; the rest was dropped.
    const int32_t kept_pages = pagesFor(std::min(r.nReused, m_sessionTokens), ps);
    const int32_t dropped = std::max(0, pagesFor(m_sessionTokens, ps) - kept_pages);
    m_evictionsTotal += dropped;
    const double t_end = r.tokenTimesMs.empty() ? r.tPromptMs : r.tokenTimesMs.back();
    const double t0 = now() - t_end;  // request start on the recorder's clock
    auto step_at = [&](double t, int32_t tokens_in_cache) {
        KvStep st;
        st.step = m_sessionStep++;
        st.tMs = t0 + t;
        st.pagesUsed = std::min(n_pages, pagesFor(tokens_in_cache, ps));
        st.pagesFree = std::max(0, n_pages - st.pagesUsed);
        st.evictionsTotal = m_evictionsTotal;
        st.nRunning = 1;
        return st;
    };
    KvStep prefill = step_at(r.tPromptMs, r.nPromptTokens);
    prefill.evictions = dropped;
    prefill.nPrefill = std::max(0, r.nPromptTokens - r.nReused);
    prefill.parts.push_back({r.id, prefill.nPrefill, true});
    prefill.admitted.emplace_back(r.id, r.nReused);
    m_steps.append(std::move(prefill));
    size_t next = 0;
    size_t si = 0;
    while (next < r.tokenTimesMs.size()) {
        const int32_t n = si < r.emittedPerStep.size() ? std::max(1, r.emittedPerStep[si]) : 1;
        ++si;
        const size_t last = std::min(r.tokenTimesMs.size(), next + size_t(n)) - 1;
        KvStep st = step_at(r.tokenTimesMs[last], r.nPromptTokens + int32_t(last) + 1);
        st.nDecode = int32_t(last + 1 - next);
        st.parts.push_back({r.id, st.nDecode, false});
        m_steps.append(std::move(st));
        next = last + 1;
    }
    m_sessionTokens = r.nPromptTokens + int32_t(r.tokenTimesMs.size());
    m_sessionOwner = r.id;
    publishFrom(nullptr);
}

}  // namespace gb::ui
