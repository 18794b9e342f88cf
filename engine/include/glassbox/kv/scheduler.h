// Iteration-level continuous batching over abstract requests (prompt tokens, a
// cap on new tokens): each step() says which tokens of which sequences the
// forward pass runs; commit() takes the sampled tokens back. Owns the page
// metadata (BlockPool, PageTables, RadixCache); no tensors.
#pragma once

#include "glassbox/kv/block_pool.h"
#include "glassbox/kv/page_table.h"
#include "glassbox/kv/radix_cache.h"

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace gb::kv {

using RequestId = int64_t;

struct SchedulerParams {
    int32_t n_pages = 0;
    int32_t page_size = 16;
    int32_t max_tokens_per_step = 256;  // token budget of one iteration: prefill chunks + decodes
    int32_t max_running = 16;           // sequences in flight; must be <= max_tokens_per_step
    bool prefix_cache = true;
};

struct RequestParams {
    std::vector<Token> prompt;
    int32_t max_new_tokens = 1;
    Token stop_token = -1;  // finishes the request when sampled (kept in the output); -1: none
};

enum class Admission { Ok, Later, Impossible };
const char * admission_name(Admission a);

struct AdmissionResult {
    Admission verdict = Admission::Impossible;
    RequestId id = -1;  // -1 when Impossible (nothing was queued)
    std::string reason; // why Later / Impossible
    int32_t n_dropped_turns = 0;  // BatchEngine, OverflowPolicy::DropOldestTurns: turns dropped to fit
};

enum class RequestState { Waiting, Running, Finished, Cancelled };

// One sequence's share of an iteration. Positions are first_pos .. first_pos + tokens.size() - 1;
// K/V of these tokens go to the sequence's pages (tables().pages(seq)) at those positions.
struct SeqWork {
    RequestId id = -1;
    SeqId seq = -1;
    int32_t first_pos = 0;
    std::vector<Token> tokens;
    bool is_prefill = false;  // false: one decode token (+ n_draft draft tokens)
    bool sample = false;      // logits of the last token needed: report a token for id in commit()
    // Speculative decode: tokens = [pending token, draft...]; the last n_draft
    // tokens are a draft (set_draft) to verify: logits of every token needed.
    int32_t n_draft = 0;
};

struct AdmittedInfo {
    RequestId id = -1;
    int32_t prefix_hit_tokens = 0;  // prompt tokens served from the prefix cache
};

// Plain snapshot of one iteration, for metrics and the inspector.
struct StepMetrics {
    int64_t step = 0;
    int32_t pages_used = 0, pages_free = 0, pages_cached = 0, pages_shared = 0;
    int64_t evictions_total = 0;
    int32_t evictions = 0;           // pages whose cached content was dropped during this step()
    int32_t n_prefill_tokens = 0;
    int32_t n_decode_tokens = 0;     // decode tokens, draft tokens included
    int32_t n_draft_tokens = 0;      // speculative draft tokens among them
    int32_t n_running = 0, n_waiting = 0;
    std::vector<AdmittedInfo> admitted;
    std::vector<RequestId> preempted;
    struct Part { RequestId id; int32_t n_tokens; bool is_prefill; int32_t n_draft = 0; };
    std::vector<Part> composition;
};

struct StepPlan {
    std::vector<SeqWork> work;
    std::vector<PageCopy> copies;  // page copies to do before the forward pass
    StepMetrics metrics;
    bool empty() const { return work.empty(); }
};

struct SampledToken {
    RequestId id = -1;
    Token token = 0;
    // Speculative work: the first n_accepted draft tokens were accepted and
    // token follows them (n_accepted + 1 tokens emitted); the K/V of the
    // rejected rest is dropped (the sequence's pages are truncated).
    int32_t n_accepted = 0;
};

struct RequestInfo {
    RequestId id = -1;
    RequestState state = RequestState::Waiting;
    RequestParams params;
    std::vector<Token> generated;
    int32_t prefix_hit_tokens = 0;   // at first admission
    int32_t n_preemptions = 0;
};

struct RequestEvent {
    enum class Kind { Admitted, Token, Preempted, Finished, Cancelled } kind;
    RequestId id = -1;
    Token token = 0;  // Kind::Token
};

class Scheduler {
  public:
    static Result<std::unique_ptr<Scheduler>> create(const SchedulerParams & params);

    // Would this request be admitted at the next step (Ok), has to wait (Later),
    // or can it never fit (Impossible, with the reason)? Queues nothing.
    AdmissionResult check(const RequestParams & req) const;
    // check() and, unless Impossible, queue the request (FCFS).
    AdmissionResult submit(RequestParams req);
    // Stop a request now; a running one's pages are released at once (its
    // computed full pages stay in the prefix cache). After step(), a cancelled
    // request's work must not run; a sample reported for it is ignored.
    Status cancel(RequestId id);
    // Speculation: a draft for the next step of a request that is decoding
    // (is_decoding). step() verifies [pending token, draft...] as one chunk,
    // shortening the draft to the token budget and free pages; the draft is
    // used once (set it again before each step).
    Status set_draft(RequestId id, std::vector<Token> draft);
    // Running, its prompt done: the next step decodes one token (+ a draft).
    bool is_decoding(RequestId id) const;
    // Pages of a running request's sequence (empty when it is not running).
    std::span<const PageId> pages(RequestId id) const;
    // Prompt + generated tokens of a request (the last one is the pending token while decoding).
    std::span<const Token> history(RequestId id) const;

    // Plan the next iteration: decodes of running sequences first (one token
    // each), then prefill chunks of running sequences, then admissions, all
    // within max_tokens_per_step. Preempts the newest running sequences when
    // pages run out. Must be followed by commit() before the next step().
    StepPlan step();
    // Report the tokens sampled for every SeqWork with sample == true. On error
    // (missing / unknown / duplicate id) nothing is applied.
    Status commit(std::span<const SampledToken> samples);

    bool has_work() const { return !m_waiting.empty() || !m_running.empty(); }
    const RequestInfo * request(RequestId id) const;
    void set_listener(std::function<void(const RequestEvent &)> listener) { m_listener = std::move(listener); }

    const SchedulerParams & params() const { return m_params; }
    const BlockPool & pool() const { return *m_pool; }
    const PageTables & tables() const { return *m_tables; }
    const RadixCache & cache() const { return *m_cache; }
    size_t n_running() const { return m_running.size(); }
    size_t n_waiting() const { return m_waiting.size(); }

    // Pool + tree invariants, and: pages held == pages in running tables.
    Status check_invariants() const;

  private:
    struct Req {
        RequestInfo info;
        std::vector<Token> history;   // prompt + generated
        SeqId seq = -1;               // page table while running
        int32_t n_computed = 0;       // tokens whose K/V is in the pages
        int32_t n_pending = 0;        // tokens planned by step(), not committed yet
        int32_t n_indexed_pages = 0;  // full pages given to the prefix cache
        RadixNode * locked = nullptr;
        uint64_t admit_order = 0;
        std::vector<Token> draft;     // set_draft(), for the next step only
    };

    explicit Scheduler(const SchedulerParams & params);
    int32_t pages_for_tokens(int64_t n_tokens) const;
    bool admit(Req & r, int32_t budget, StepPlan & plan);
    bool schedule_running(Req & r, int32_t & budget, StepPlan & plan, int32_t * draft_budget = nullptr);
    void preempt(Req & r, StepPlan & plan);
    void index_pages(Req & r);
    void release(Req & r);
    void finish(Req & r, RequestState state);
    void emit(RequestEvent::Kind kind, RequestId id, Token token = 0);

    SchedulerParams m_params;
    std::unique_ptr<BlockPool> m_pool;
    std::unique_ptr<PageTables> m_tables;
    std::unique_ptr<RadixCache> m_cache;
    std::map<RequestId, std::unique_ptr<Req>> m_reqs;
    std::deque<RequestId> m_waiting;    // FCFS; preempted requests go back to the front
    std::vector<RequestId> m_running;   // admission order, oldest first
    std::vector<SeqWork> m_pending;     // last step's work, until commit()
    bool m_step_open = false;
    int64_t m_step = 0;
    int64_t m_evictions_seen = 0;
    uint64_t m_admit_counter = 0;
    RequestId m_next_id = 1;
    std::function<void(const RequestEvent &)> m_listener;
};

}  // namespace gb::kv
