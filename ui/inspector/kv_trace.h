// Immutable KV-cache, prefix-tree and batching snapshots for the inspector, and
// KvRecorder, the producer that reads them off the engine's paged-KV metadata
// (gb::kv::Scheduler: BlockPool, PageTables, RadixCache, StepMetrics) between
// steps, or off a one-sequence Session's results. Never holds engine locks.
#pragma once

// Qt's `emit` macro would rewrite the Scheduler's private emit(): keep it out.
#pragma push_macro("emit")
#undef emit
#include "glassbox/kv/scheduler.h"
#pragma pop_macro("emit")
#include "glassbox/tokenizer.h"

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace gb::ui {

class TraceRecorder;

// Append-only log in shared immutable chunks (publishing copies at most the
// partial tail chunk); bounded: whole oldest chunks are dropped beyond maxItems.
template <class T>
class ChunkedLog {
  public:
    static constexpr size_t kChunkSize = 1024;
    using Chunk = std::vector<T>;
    size_t size() const { return m_size; }
    bool empty() const { return m_size == 0; }
    uint64_t firstIndex() const { return m_first; }  // items dropped from the front so far
    const T & operator[](size_t i) const { return (*m_chunks[i / kChunkSize])[i % kChunkSize]; }
    const T & back() const { return (*this)[m_size - 1]; }

    class Builder {
      public:
        explicit Builder(size_t maxItems = 100000) : m_max(std::max<size_t>(maxItems, 1)) {}
        // Keeps at least maxItems (fewer than maxItems + kChunkSize).
        void append(T item) {
            m_tail.push_back(std::move(item));
            if (m_tail.size() == kChunkSize) {
                m_full.push_back(std::make_shared<const Chunk>(std::move(m_tail)));
                m_tail = Chunk{};
            }
            while (!m_full.empty() && size() - kChunkSize >= m_max) {
                m_full.pop_front();
                m_first += kChunkSize;
            }
        }
        size_t size() const { return m_full.size() * kChunkSize + m_tail.size(); }
        ChunkedLog snapshot() const {
            ChunkedLog log;
            log.m_chunks.assign(m_full.begin(), m_full.end());
            if (!m_tail.empty()) log.m_chunks.push_back(std::make_shared<const Chunk>(m_tail));
            log.m_size = size();
            log.m_first = m_first;
            return log;
        }
        void clear() { m_full.clear(); m_tail.clear(); m_first = 0; }

      private:
        size_t m_max;
        std::deque<std::shared_ptr<const Chunk>> m_full;
        Chunk m_tail;
        uint64_t m_first = 0;
    };

  private:
    std::vector<std::shared_ptr<const Chunk>> m_chunks;
    size_t m_size = 0;
    uint64_t m_first = 0;
};

enum class PageState : uint8_t { Free, Cached, Used, Shared };
const char * pageStateName(PageState s);

// One sequence's share of an iteration.
struct BatchPart {
    int64_t request = -1;
    int32_t nTokens = 0;
    bool    prefill = false;
};

// One engine iteration (a Scheduler step, or a Session's prefill / decode step).
struct KvStep {
    int64_t step = 0;
    double  tMs = 0.0;
    int32_t pagesUsed = 0, pagesFree = 0, pagesCached = 0, pagesShared = 0;
    int32_t evictions = 0;        // during this step
    int64_t evictionsTotal = 0;
    int32_t nPrefill = 0, nDecode = 0;
    int32_t nRunning = 0, nWaiting = 0;
    std::vector<BatchPart> parts;
    std::vector<std::pair<int64_t, int32_t>> admitted;  // (request, prefix-hit tokens)
    std::vector<int64_t> preempted;
};

struct KvRequest {
    int64_t     id = -1;
    std::string label;            // conversation / request name
    int32_t     promptTokens = 0;
    int32_t     prefixHitTokens = 0;
    int32_t     generated = 0;
    int32_t     preemptions = 0;
    std::string state;            // waiting / running / finished / cancelled
};

// A radix-tree node, in pre-order (a parent before its children).
struct KvTreeNode {
    int64_t     id = 0;
    int32_t     parent = -1;      // index into KvTrace::tree; -1: a child of the root
    int32_t     level = 0;        // 0 for the root's children
    int32_t     nTokens = 0;      // edge length
    int32_t     nPages = 0;
    int32_t     lockRef = 0;      // locks on it or below
    int32_t     directLocks = 0;
    uint64_t    lastAccess = 0;   // logical clock
    uint64_t    depthTokens = 0;  // tokens from the root to its end
    int32_t     nChildren = 0;
    std::string text;             // the edge's tokens as text (clipped)
    std::vector<int32_t> pages;
    std::vector<int64_t> holders; // requests whose page table holds one of its pages now
    std::vector<int64_t> sharers; // known requests whose history runs through the node
};

struct KvTrace {
    std::string source;           // what fed it ("paged-KV scheduler", "Session (one sequence)", ...)
    int32_t nPages = 0;
    int32_t pageSize = 0;
    std::vector<PageState> pageState;   // [nPages]
    std::vector<int64_t>   pageOwner;   // [nPages] first holding request, -1
    bool hasTree = false;               // false: no prefix tree in this engine
    std::vector<KvTreeNode> tree;
    int64_t treeNodesTotal = 0;         // may exceed tree.size() (capped)
    uint64_t treeClock = 0;             // largest last access seen
    ChunkedLog<KvStep> steps;
    std::vector<KvRequest> requests;    // oldest first, bounded
    int64_t evictionsTotal = 0;
};

struct KvRecorderParams {
    double minIntervalMs = 40.0;        // full snapshots while steps run
    size_t maxSteps = 100000;
    size_t maxRequests = 256;
    size_t maxTreeNodes = 4096;
    int32_t sessionPageSize = 16;       // Session feed: the contiguous cache shown in pages of this size
    std::function<std::string(Token)> tokenText;  // edge text; default "#id"
    std::function<double()> clockMs;    // default: steady clock
};

// Producer: call from the thread that owns the engine structures, between
// steps. Publishes through a TraceRecorder (TraceRecorder::setKv), rate limited.
class KvRecorder {
  public:
    explicit KvRecorder(TraceRecorder & out, KvRecorderParams params = {});
    // Publishes each snapshot through sink instead (e.g. a queued hand-over to
    // the thread that owns the TraceRecorder, when the engine runs elsewhere).
    using Sink = std::function<void(std::shared_ptr<const KvTrace>)>;
    explicit KvRecorder(Sink sink, KvRecorderParams params = {});

    // --- paged-KV engine ---
    // After Scheduler::step() (and before commit()): records plan.metrics and,
    // when due, snapshots the page map and the tree. Labels name requests.
    void onSchedulerStep(const kv::Scheduler & sched, const kv::StepPlan & plan);
    void setRequestLabel(int64_t request, std::string label);

    // --- one-sequence Session (what the app runs today) ---
    // A finished request: its prompt (nReused tokens served from the cache), the
    // generated tokens' times and how many each engine step emitted (one per
    // token without speculation; SpecStats::per_step[i].emitted with it).
    struct SessionRequest {
        int64_t id = -1;
        std::string label;
        int32_t nCtx = 0;
        int32_t nPromptTokens = 0;
        int32_t nReused = 0;
        double  tPromptMs = 0.0;
        std::vector<double> tokenTimesMs;
        std::vector<int32_t> emittedPerStep;   // empty: one token per step
        bool cancelled = false;
    };
    void onSessionRequest(const SessionRequest & r);

    // Builds and publishes a full snapshot now.
    void publishNow();
    // ... of this scheduler (the engine went idle: its last commit is in).
    void publishNow(const kv::Scheduler & sched) { m_lastSched = &sched; publishFrom(&sched); }
    std::shared_ptr<const KvTrace> latest() const { return m_latest; }
    uint64_t publishCount() const { return m_publishCount; }

  private:
    void publishFrom(const kv::Scheduler * sched);
    KvRequest & requestEntry(int64_t id);
    double now() const;

    Sink m_sink;
    KvRecorderParams m_params;
    std::string m_source;
    ChunkedLog<KvStep>::Builder m_steps;
    std::map<int64_t, KvRequest> m_requests;
    std::deque<int64_t> m_requestOrder;
    std::map<int64_t, std::string> m_labels;
    std::map<kv::SeqId, int64_t> m_seqOwner;   // page table -> request (from the plans' work)
    int64_t m_evictionsTotal = 0;
    double m_lastPublishMs = -1e300;
    uint64_t m_publishCount = 0;
    std::shared_ptr<const KvTrace> m_latest;
    const kv::Scheduler * m_lastSched = nullptr;  // for publishNow(); must outlive its use
    // Session feed state: the contiguous cache after the last request.
    int32_t m_sessionCtx = 0;
    int32_t m_sessionTokens = 0;
    int64_t m_sessionOwner = -1;
    int64_t m_sessionStep = 0;
    double m_sessionClockMs = 0.0;
};

}  // namespace gb::ui
