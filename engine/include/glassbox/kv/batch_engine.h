// Continuous-batching generation engine on the CPU: the Scheduler decides each
// iteration's tokens (decodes, prefill chunks, admissions, preemptions), the
// BatchForward runs them over the paged KV cache, per-request Samplers pick
// the next tokens. Emits timestamped per-token events and per-step metrics.
#pragma once

#include "glassbox/context_overflow.h"
#include "glassbox/kv/batch_forward.h"
#include "glassbox/kv/scheduler.h"
#include "glassbox/sampler.h"
#include "glassbox/spec/spec_types.h"

#include <chrono>
#include <functional>
#include <map>
#include <memory>

namespace gb {
enum class AcceptRule;  // glassbox/spec/spec_decoder.h (test hook)
}

namespace gb::kv {

struct BatchEngineParams {
    int32_t n_threads = 0;              // 0 = hardware concurrency
    KvType  kv_type = KvType::F16;
    int32_t page_size = 16;
    int32_t n_pages = 0;                // 0: enough for n_ctx tokens
    int32_t n_ctx = 4096;               // used when n_pages == 0
    int32_t max_tokens_per_step = 256;  // iteration token budget (chunked prefill + decodes)
    int32_t max_running = 16;
    bool    prefix_cache = true;
    // Makes the forward pass (e.g. gb::cuda::create_batch_forward for the GPU);
    // empty: BatchForward::create (CPU).
    std::function<Result<std::unique_ptr<BatchForward>>(std::shared_ptr<const Model>, const BatchForwardParams &)> make_forward;
};

struct GenRequest {
    std::vector<Token> prompt;
    SamplerParams sampling;             // temperature <= 0: greedy
    int32_t max_new_tokens = 64;
    Token   stop_token = -1;            // -1: none
    // Context overflow (prompt + max_new_tokens over the per-sequence limit,
    // max_seq_tokens()): Error answers Impossible with the reason;
    // DropOldestTurns drops whole turns after the system span by Session's rule
    // (context_overflow.h) and caps max_new_tokens to the room left. Needs
    // turns (e.g. Session::chat_prompt); without them it acts as Error.
    OverflowPolicy overflow = OverflowPolicy::Error;
    TurnSpans turns;
    // Speculative decoding for this request (PromptLookup or Lookahead: the
    // draft is verified as a multi-token chunk in the batched forward pass).
    // Draft model / self-draft need a drafter context: Impossible here.
    SpecConfig spec;
};

struct EngineEvent {
    enum class Kind { Admitted, Token, Preempted, Finished, Cancelled };
    Kind kind = Kind::Token;
    RequestId id = -1;
    Token token = 0;                // Token
    int32_t index = 0;              // Token: index of the token in the reply (0 = first)
    int32_t prefix_hit_tokens = 0;  // Admitted: prompt tokens served from the prefix cache
    double t_ms = 0.0;              // since the engine was created
    int32_t dropped_turns = 0;      // Admitted: turns dropped by OverflowPolicy::DropOldestTurns
    SpecOrigin origin = SpecOrigin::Target;  // Token: plain / accepted draft / correction / bonus
    // Token and Finished, speculating requests: the request's totals so far
    // (spec_stats() has the rest: acceptance per position, per-step lengths).
    int64_t spec_proposed = 0, spec_accepted = 0;
    int32_t draft_len = 0;          // Token: the draft length verified in the step that emitted it (0 = plain)
};

const char * engine_event_name(EngineEvent::Kind k);

struct StepReport {
    StepMetrics metrics;             // pages, evictions, composition, admissions, preemptions
    std::vector<EngineEvent> events; // this step's events, in order
    double t_begin_ms = 0.0, t_end_ms = 0.0;
    bool ran = false;                // a forward pass ran (false: nothing to do)
};

class BatchEngine {
  public:
    ~BatchEngine();
    static Result<std::unique_ptr<BatchEngine>> create(std::shared_ptr<const Model> model, const BatchEngineParams & params);

    // ok / later / impossible (with the reason); submit queues unless impossible.
    AdmissionResult check(const GenRequest & req) const;
    AdmissionResult submit(GenRequest req);
    // Frees the request's pages at once (its computed full pages stay cached).
    Status cancel(RequestId id);

    // One iteration: schedule, page copies, batched forward, sampling, commit.
    Result<StepReport> step();
    // Steps until no request is waiting or running.
    Status run_to_completion(const std::function<void(const StepReport &)> & on_step = {});

    // Longest sequence (prompt + new tokens - 1) one request may have.
    int32_t max_seq_tokens() const;
    // Speculation statistics of a request that had spec enabled (kept after it
    // finishes until forget_spec_stats); null otherwise.
    const SpecStats * spec_stats(RequestId id) const;
    void forget_spec_stats(RequestId id) { m_spec_done.erase(id); }
    // Test hook, as SpecDecoder::set_accept_rule: a deliberately broken
    // acceptance rule. Never set outside tests.
    void set_accept_rule(AcceptRule r);
    // The K/V of one token of a running request, layer il, as stored (F16 or
    // Q8_0 bytes): for tests comparing caches. Empty when out of range.
    std::vector<uint8_t> kv_bytes_at(RequestId id, int il, int32_t pos) const;

    bool has_work() const { return m_sched->has_work(); }
    const RequestInfo * request(RequestId id) const { return m_sched->request(id); }
    const Scheduler & scheduler() const { return *m_sched; }
    const BatchEngineParams & params() const { return m_params; }
    const KvShape & kv_shape() const { return m_fwd->storage().shape(); }
    size_t kv_bytes() const { return m_fwd->storage().bytes(); }
    void set_listener(std::function<void(const EngineEvent &)> l) { m_listener = std::move(l); }
    // Called in step() after Scheduler::step() and before commit(), with the
    // plan (the inspector's KvRecorder::onSchedulerStep takes exactly these).
    void set_step_observer(std::function<void(const Scheduler &, const StepPlan &)> f) { m_step_observer = std::move(f); }
    // Called in step() for every sampled token, before commit() (so before its
    // Token event), with the logits it was sampled from (valid during the call).
    // The app takes its per-token probability and top alternatives from them.
    using SampleObserver = std::function<void(RequestId, std::span<const float> logits, Token sampled)>;
    void set_sample_observer(SampleObserver f) { m_sample_observer = std::move(f); }
    double now_ms() const;

  private:
    struct SpecState;
    struct Fitted {
        std::vector<Token> prompt;
        int32_t max_new_tokens = 0;
        int32_t n_dropped = 0;
    };
    BatchEngine();
    void on_sched_event(const RequestEvent & e);
    Result<Fitted> fit(const GenRequest & req) const;  // the overflow policy
    void propose_drafts();
    Result<SampledToken> verify(const SeqWork & w, std::span<const float> rows, SpecState & sp);

    BatchEngineParams m_params;
    std::shared_ptr<const Model> m_model;
    std::unique_ptr<BatchForward> m_fwd;
    std::unique_ptr<Scheduler> m_sched;
    std::map<RequestId, std::unique_ptr<Sampler>> m_samplers;
    std::map<RequestId, std::shared_ptr<SpecState>> m_spec;       // speculating requests in flight
    std::map<RequestId, std::shared_ptr<SpecState>> m_spec_done;  // finished: stats kept for spec_stats()
    std::map<RequestId, int32_t> m_dropped;                       // turns dropped at submit, until admitted
    std::map<RequestId, std::vector<SpecOrigin>> m_origins;       // this step's emitted tokens' origins
    double m_last_fwd_ms = 0.0;
    int m_accept_rule = 0;  // AcceptRule::Exact
    std::vector<EngineEvent> m_step_events;
    std::function<void(const EngineEvent &)> m_listener;
    std::function<void(const Scheduler &, const StepPlan &)> m_step_observer;
    SampleObserver m_sample_observer;
    std::chrono::steady_clock::time_point m_t0 = std::chrono::steady_clock::now();
};

}  // namespace gb::kv
