// Tests of the inspector's KV-cache / prefix-tree / batching and speculative
// snapshot producers: their numbers against the engine's own counters
// (BlockPool stats, StepMetrics, RequestInfo, RadixCache stats, SpecStats) for
// scripted workloads with known prefix hits and known acceptance counts, and
// the run export (JSON / CSV) against the snapshot it came from.
#include "inspector/kv_trace.h"
#include "inspector/run_export.h"
#include "inspector/scripted_trace.h"
#include "inspector/snapshot_ring.h"
#include "inspector/trace_recorder.h"

#include <QJsonArray>
#include <QJsonDocument>
#include <QTemporaryDir>
#include <QtTest>

#include <algorithm>
#include <deque>
#include <set>

using namespace gb;
using namespace gb::ui;

namespace {

// Page counts by state in a trace.
struct Counts { int32_t used = 0, shared = 0, cached = 0, free = 0; };
Counts countPages(const KvTrace & kv) {
    Counts c;
    for (PageState s : kv.pageState) {
        if (s == PageState::Used) ++c.used;
        else if (s == PageState::Shared) ++c.shared;
        else if (s == PageState::Cached) ++c.cached;
        else ++c.free;
    }
    return c;
}

std::vector<Token> seqTokens(int n, int base) {
    std::vector<Token> v;
    for (int i = 0; i < n; ++i) v.push_back(Token(base + i));
    return v;
}

// Runs the scheduler to completion, sampling token 5000 + position; records every step.
// Checks after each step that the recorder's snapshot equals the engine's counters.
void runAndCheck(kv::Scheduler & s, KvRecorder & rec, int64_t * steps_out = nullptr) {
    int64_t steps = 0;
    while (s.has_work()) {
        kv::StepPlan plan = s.step();
        rec.onSchedulerStep(s, plan);
        ++steps;
        const auto kv = rec.latest();
        QVERIFY(kv);
        const kv::BlockPoolStats ps = s.pool().stats();
        const Counts c = countPages(*kv);
        QCOMPARE(c.used + c.shared, ps.used);
        QCOMPARE(c.shared, ps.shared);
        QCOMPARE(c.cached, ps.cached);
        QCOMPARE(c.free, ps.free);
        QCOMPARE(kv->evictionsTotal, ps.evictions);
        QCOMPARE(int64_t(kv->tree.size()), int64_t(s.cache().stats().n_nodes));
        const KvStep & st = kv->steps.back();
        QCOMPARE(st.step, plan.metrics.step);
        QCOMPARE(st.nPrefill, plan.metrics.n_prefill_tokens);
        QCOMPARE(st.nDecode, plan.metrics.n_decode_tokens);
        int32_t pre = 0, dec = 0;
        for (const BatchPart & p : st.parts) (p.prefill ? pre : dec) += p.nTokens;
        QCOMPARE(pre, plan.metrics.n_prefill_tokens);
        QCOMPARE(dec, plan.metrics.n_decode_tokens);
        // Independent: the tokens the work items carry.
        int32_t work_pre = 0, work_dec = 0;
        for (const kv::SeqWork & w : plan.work) (w.is_prefill ? work_pre : work_dec) += int32_t(w.tokens.size());
        QCOMPARE(pre, work_pre);
        QCOMPARE(dec, work_dec);
        int64_t tree_pages = 0;
        for (const KvTreeNode & n : kv->tree) tree_pages += n.nPages;
        QCOMPARE(tree_pages, int64_t(s.cache().stats().n_pages));
        std::vector<kv::SampledToken> samples;
        for (const kv::SeqWork & w : plan.work)
            if (w.sample) samples.push_back({w.id, Token(5000 + w.first_pos + int32_t(w.tokens.size()))});
        QVERIFY(s.commit(samples).ok());
    }
    rec.publishNow();  // the state after the last commit
    if (steps_out) *steps_out = steps;
}

}  // namespace

class TestInspectorKv : public QObject {
    Q_OBJECT
  private slots:
    void knownPrefixHitsAndSharers();
    void scriptedWorkloadCountersAgree();
    void logIsBounded();
    void sessionFeed();
    void specSummaryMatchesEngineCounters();
    void recorderCountsOriginsAndPhases();
    void explicitPrefillChunks();
    void exportJsonAndCsv();
};

void TestInspectorKv::knownPrefixHitsAndSharers() {
    kv::SchedulerParams sp{64, 16, 256, 4, true};
    auto sched = kv::Scheduler::create(sp);
    QVERIFY(sched.ok());
    kv::Scheduler & s = **sched;
    SnapshotRing ring(4);
    TraceRecorder out(ring);
    KvRecorderParams kp;
    kp.minIntervalMs = 0.0;  // a full snapshot every step
    KvRecorder rec(out, kp);

    // A: 100 prompt tokens, 4 new: 104 tokens of history = 6 full pages (96 tokens) cached.
    const std::vector<Token> p = seqTokens(100, 10);
    const auto a = s.submit({p, 4, -1});
    QVERIFY(a.verdict != kv::Admission::Impossible);
    rec.setRequestLabel(a.id, "A");
    runAndCheck(s, rec);
    if (QTest::currentTestFailed()) return;
    const kv::RequestInfo * ia = s.request(a.id);
    QVERIFY(ia);
    QCOMPARE(ia->generated.size(), size_t(4));

    // B shares A's first 80 tokens (5 pages), then differs: a hit of exactly 80.
    std::vector<Token> pb(p.begin(), p.begin() + 80);
    for (Token t : seqTokens(20, 900)) pb.push_back(t);
    // C continues A's conversation: its whole history (6 full pages = 96 tokens) hits.
    std::vector<Token> pc = p;
    pc.insert(pc.end(), ia->generated.begin(), ia->generated.end());
    for (Token t : seqTokens(10, 700)) pc.push_back(t);
    const auto b = s.submit({pb, 3, -1});
    rec.setRequestLabel(b.id, "B");
    runAndCheck(s, rec);  // B alone first, so it cannot hit C's pages
    if (QTest::currentTestFailed()) return;
    const auto c = s.submit({pc, 3, -1});
    rec.setRequestLabel(c.id, "C");
    runAndCheck(s, rec);
    if (QTest::currentTestFailed()) return;

    const auto kv = rec.latest();
    std::map<int64_t, KvRequest> reqs;
    for (const KvRequest & r : kv->requests) reqs[r.id] = r;
    QCOMPARE(reqs.size(), size_t(3));
    QCOMPARE(reqs[a.id].prefixHitTokens, 0);
    QCOMPARE(reqs[b.id].prefixHitTokens, 80);
    QCOMPARE(reqs[c.id].prefixHitTokens, 96);
    for (auto id : {a.id, b.id, c.id}) {
        QCOMPARE(reqs[id].prefixHitTokens, s.request(id)->prefix_hit_tokens);  // the engine's own counter
        QCOMPARE(reqs[id].state, std::string("finished"));
        QCOMPARE(reqs[id].promptTokens, int32_t(s.request(id)->params.prompt.size()));
    }
    QCOMPARE(reqs[b.id].label, std::string("B"));
    // The admissions logged in the steps carry the same hits.
    std::map<int64_t, int32_t> admitted;
    for (size_t i = 0; i < kv->steps.size(); ++i)
        for (const auto & [id, hit] : kv->steps[i].admitted) admitted[id] = hit;
    QCOMPARE(admitted[b.id], 80);
    QCOMPARE(admitted[c.id], 96);

    // The node ending at token 80 (the split B caused) is shared by A, B and C;
    // below it, A's sixth page by A and C, B's own sixth page by B alone.
    bool saw80 = false;
    std::set<std::set<int64_t>> at96;
    for (const KvTreeNode & n : kv->tree) {
        std::set<int64_t> sh(n.sharers.begin(), n.sharers.end());
        if (n.depthTokens == 80) {
            saw80 = true;
            QCOMPARE(sh, (std::set<int64_t>{a.id, b.id, c.id}));
            QCOMPARE(n.parent, -1);
            QCOMPARE(n.nTokens, 80);
        }
        if (n.depthTokens == 96) at96.insert(sh);
        QCOMPARE(n.lockRef, 0);  // nothing runs any more
        QVERIFY(n.holders.empty());
        QCOMPARE(int64_t(n.pages.size()), int64_t(n.nPages));
        QCOMPARE(n.nTokens, n.nPages * 16);
    }
    QVERIFY(saw80);
    QCOMPARE(at96, (std::set<std::set<int64_t>>{{a.id, c.id}, {b.id}}));
    QVERIFY(kv->hasTree);
    QCOMPARE(kv->nPages, 64);
    QCOMPARE(ring.latest()->kv, kv);  // published through the trace recorder
}

void TestInspectorKv::scriptedWorkloadCountersAgree() {
    // Few pages: preemption and evictions happen; many steps are checked.
    ScriptedKvParams p;
    p.scheduler = kv::SchedulerParams{40, 16, 64, 4, true};
    p.nConversations = 5;
    p.nTurns = 3;
    p.maxNewTokens = 20;
    auto w = ScriptedKvWorkload::create(p);
    QVERIFY(w.ok());
    SnapshotRing ring(4);
    TraceRecorder out(ring);
    KvRecorderParams kp;
    kp.minIntervalMs = 0.0;
    KvRecorder rec(out, kp);
    int64_t steps = 0, evict_sum = 0, preempted = 0;
    while ((*w)->step(&rec)) {
        ++steps;
        const kv::Scheduler & s = (*w)->scheduler();
        const auto kv = rec.latest();
        const KvStep & st = kv->steps.back();
        const kv::StepMetrics & m = (*w)->lastPlan().metrics;
        QCOMPARE(st.step, m.step);
        QCOMPARE(st.pagesUsed, m.pages_used);
        QCOMPARE(st.pagesCached, m.pages_cached);
        QCOMPARE(st.evictions, m.evictions);
        QCOMPARE(st.evictionsTotal, m.evictions_total);
        QCOMPARE(st.nRunning, m.n_running);
        QCOMPARE(st.nWaiting, m.n_waiting);
        evict_sum += st.evictions;
        preempted += int64_t(st.preempted.size());
        // The page map (taken at the step, before its commit) against the step's metrics.
        const Counts c = countPages(*kv);
        QCOMPARE(c.used + c.shared, m.pages_used);
        QCOMPARE(c.shared, m.pages_shared);
        QCOMPARE(c.cached, m.pages_cached);
        QCOMPARE(c.free, m.pages_free);
        QVERIFY(steps < 100000);
    }
    const kv::Scheduler & s = (*w)->scheduler();
    const auto kv = rec.latest();
    QCOMPARE(int64_t(kv->steps.size()), steps);
    QCOMPARE(evict_sum, s.pool().stats().evictions);
    QVERIFY2(s.pool().stats().evictions > 0, "the workload should evict");
    int64_t hits = 0, engine_hits = 0, preemptions = 0;
    for (const KvRequest & r : kv->requests) {
        const kv::RequestInfo * info = s.request(r.id);
        QVERIFY(info);
        QCOMPARE(r.prefixHitTokens, info->prefix_hit_tokens);
        QCOMPARE(r.generated, int32_t(info->generated.size()));
        QCOMPARE(r.preemptions, info->n_preemptions);
        hits += r.prefixHitTokens;
        engine_hits += info->prefix_hit_tokens;
        preemptions += r.preemptions;
        QVERIFY(r.label.rfind("conversation ", 0) == 0);
    }
    QCOMPARE(int64_t(kv->requests.size()), int64_t(p.nConversations * p.nTurns));
    QCOMPARE(hits, engine_hits);
    QVERIFY(hits > 0);
    QCOMPARE(preemptions, preempted);
    qInfo("%lld steps, %lld evictions, %lld prefix-hit tokens, %lld preemptions", static_cast<long long>(steps),
          static_cast<long long>(evict_sum), static_cast<long long>(hits), static_cast<long long>(preemptions));
}

void TestInspectorKv::logIsBounded() {
    ChunkedLog<int>::Builder b(3000);
    for (int i = 0; i < 10000; ++i) b.append(i);
    const ChunkedLog<int> log = b.snapshot();
    QVERIFY(log.size() < 3000 + ChunkedLog<int>::kChunkSize);
    QVERIFY(log.size() >= 3000);
    QCOMPARE(log.firstIndex() + log.size(), uint64_t(10000));
    for (size_t i = 0; i < log.size(); ++i) QCOMPARE(uint64_t(log[i]), log.firstIndex() + i);
    // Snapshots share full chunks: a later append does not change an earlier snapshot.
    b.append(10000);
    QCOMPARE(log.back(), 9999);
}

void TestInspectorKv::sessionFeed() {
    SnapshotRing ring(4);
    TraceRecorder out(ring);
    double clock = 1000.0;
    KvRecorderParams kp;
    kp.clockMs = [&] { return clock; };
    kp.sessionPageSize = 16;
    KvRecorder rec(out, kp);
    // Turn 1: 40 prompt tokens, 10 generated (one per step).
    KvRecorder::SessionRequest r1;
    r1.id = 1;
    r1.label = "chat 1, request 1";
    r1.nCtx = 256;
    r1.nPromptTokens = 40;
    r1.tPromptMs = 50;
    for (int i = 0; i < 10; ++i) r1.tokenTimesMs.push_back(60.0 + 10 * i);
    rec.onSessionRequest(r1);
    auto kv = rec.latest();
    QCOMPARE(kv->nPages, 16);
    QCOMPARE(kv->steps.size(), size_t(11));
    QCOMPARE(kv->steps[0].nPrefill, 40);
    QCOMPARE(kv->steps[10].nDecode, 1);
    QCOMPARE(countPages(*kv).cached, 4);  // 50 tokens -> 4 pages
    QCOMPARE(kv->evictionsTotal, int64_t(0));
    QVERIFY(!kv->hasTree);
    // Turn 2 reuses the 50 tokens; speculative steps emitting 3, 1, 2 tokens.
    KvRecorder::SessionRequest r2 = r1;
    r2.id = 2;
    r2.nPromptTokens = 70;
    r2.nReused = 50;
    r2.tokenTimesMs = {70, 80, 80, 80, 90, 100};
    r2.emittedPerStep = {1, 3, 2};
    rec.onSessionRequest(r2);
    kv = rec.latest();
    QCOMPARE(kv->steps.size(), size_t(11 + 1 + 3));
    QCOMPARE(kv->steps[11].nPrefill, 20);
    QCOMPARE(kv->steps[13].nDecode, 3);
    QCOMPARE(kv->requests.back().prefixHitTokens, 50);
    QCOMPARE(countPages(*kv).cached, 5);  // 76 tokens
    QCOMPARE(kv->evictionsTotal, int64_t(0));
    // Turn 3 keeps only 10 of the 76 cached tokens: 5 - 1 pages dropped.
    KvRecorder::SessionRequest r3 = r1;
    r3.id = 3;
    r3.nPromptTokens = 30;
    r3.nReused = 10;
    r3.tokenTimesMs = {40};
    rec.onSessionRequest(r3);
    kv = rec.latest();
    QCOMPARE(kv->evictionsTotal, int64_t(4));
    QCOMPARE(kv->steps[15].evictions, 4);
    QCOMPARE(countPages(*kv).cached, 2);  // 31 tokens
    QCOMPARE(kv->requests.size(), size_t(3));
}

void TestInspectorKv::specSummaryMatchesEngineCounters() {
    ScriptedSpecParams p;
    p.nTokens = 3000;
    p.draftMax = 6;
    p.acceptFirst = 0.75;
    const ScriptedSpecRun run = makeScriptedSpecRun(p);
    const SpecStats & s = run.stats;
    // The scripted stats are self-consistent (the oracle counts the events' origins).
    int64_t n[4] = {0, 0, 0, 0};
    for (const TokenEvent & e : run.events) ++n[int(e.origin)];
    QCOMPARE(n[int(SpecOrigin::Draft)], s.accepted);
    QCOMPARE(n[int(SpecOrigin::Draft)], s.n_draft);
    QCOMPARE(n[int(SpecOrigin::Bonus)], s.n_bonus);
    QCOMPARE(n[int(SpecOrigin::Correction)], s.n_correction);
    QCOMPARE(int64_t(run.events.size()), s.emitted);

    const SpecSummary sum = summarizeSpec(s, 8);
    QCOMPARE(sum.accepted, s.accepted);
    QCOMPARE(sum.proposed, s.proposed);
    QCOMPARE(sum.specSteps, s.spec_steps);
    QCOMPARE(sum.acceptanceRate, double(s.accepted) / double(s.proposed));
    QCOMPARE(sum.meanAcceptedLen, double(s.accepted) / double(s.spec_steps));
    QCOMPARE(sum.acceptanceByPosition.size(), size_t(6));
    // By position, brute force from the steps: a step accepted position d iff it accepted > d tokens.
    for (size_t d = 0; d < 6; ++d) {
        int64_t att = 0, acc = 0;
        for (const SpecStep & st : s.per_step) {
            att += st.proposed > int32_t(d);
            acc += st.accepted > int32_t(d);
        }
        QCOMPARE(sum.attemptedAt[d], att);
        QCOMPARE(sum.acceptedAt[d], acc);
        QCOMPARE(sum.acceptanceByPosition[d], double(acc) / double(att));
    }
    QVERIFY(sum.acceptanceByPosition[0] > sum.acceptanceByPosition[5]);  // decay
    // Rolling acceptance over the last 8 speculative steps, brute force.
    QCOMPARE(sum.rollingAcceptance.size(), s.per_step.size());
    for (size_t i = 0; i < s.per_step.size(); i += 37) {
        int64_t pr = 0, ac = 0;
        int taken = 0;
        for (size_t j = i + 1; j-- > 0 && taken < 8;) {
            if (s.per_step[j].proposed == 0) continue;  // plain steps are not in the window
            pr += s.per_step[j].proposed;
            ac += s.per_step[j].accepted;
            ++taken;
        }
        if (pr == 0) {
            QCOMPARE(sum.rollingAcceptance[i], 0.0f);
            continue;
        }
        QVERIFY(std::abs(double(sum.rollingAcceptance[i]) - double(ac) / double(pr)) < 1e-6);
    }
    QVERIFY(sum.speedup > 1.0);  // ~2.7 tokens per ~1.1 plain steps
    QCOMPARE(sum.speedup, s.tokens_per_s() / s.plain_tokens_per_s());
}

void TestInspectorKv::recorderCountsOriginsAndPhases() {
    ScriptedSpecParams p;
    p.nTokens = 500;
    const ScriptedSpecRun run = makeScriptedSpecRun(p);
    SnapshotRing ring(4);
    TraceRecorder rec(ring);
    rec.beginRequest("spec", 64);
    rec.setQueueTime(12.0);
    rec.setPromptKey("k");
    auto cb = rec.callback();  // takes the origin from the events
    for (const TokenEvent & e : run.events) cb(e);
    GenerateResult res = run.result();
    res.t_prompt_ms = 150.0;
    res.n_prompt_tokens = 64;
    rec.endRequest(res);
    const auto & r = *ring.latest()->requests.back();
    QVERIFY(r.spec);
    QVERIFY(r.specSummary);
    QCOMPARE(r.specSummary->accepted, run.stats.accepted);
    QCOMPARE(int64_t(r.tokenStats.byOrigin[int(TokenOrigin::DraftAccepted)]), run.stats.n_draft);
    QCOMPARE(int64_t(r.tokenStats.byOrigin[int(TokenOrigin::DraftCorrected)]), run.stats.n_correction);
    QCOMPARE(int64_t(r.tokenStats.byOrigin[int(TokenOrigin::Bonus)]), run.stats.n_bonus);
    QCOMPARE(int64_t(r.tokenStats.byOrigin[int(TokenOrigin::Sampled)]), run.stats.n_target);
    QCOMPARE(r.promptKey, std::string("k"));
    // Phases: queue, prefill, then a draft + verify pair per speculative step.
    int64_t queue = 0, prefill = 0, draft = 0, verify = 0, verify_tokens = 0;
    for (const PhaseSpan & s : r.phases) {
        QVERIFY(s.t1Ms >= s.t0Ms);
        queue += s.phase == Phase::Queue;
        prefill += s.phase == Phase::Prefill;
        draft += s.phase == Phase::Draft;
        verify += s.phase == Phase::Verify;
        if (s.phase == Phase::Verify) verify_tokens += s.nTokens;
    }
    QCOMPARE(queue, int64_t(1));
    QCOMPARE(prefill, int64_t(1));
    QCOMPARE(draft, run.stats.spec_steps);
    QCOMPARE(verify, run.stats.spec_steps);
    QCOMPARE(verify_tokens, run.stats.emitted - 1);  // all but the prefill's token
    // Each verify span ends when its step's last token arrived.
    std::vector<PhaseSpan> verifies;
    for (const PhaseSpan & s : r.phases)
        if (s.phase == Phase::Verify) verifies.push_back(s);
    size_t tok = 0, vi = 0;
    for (const SpecStep & st : run.stats.per_step) {
        tok += size_t(st.emitted);
        if (st.proposed > 0) QCOMPARE(verifies[vi++].t1Ms, run.events[tok - 1].t_ms);
    }
    QCOMPARE(vi, verifies.size());
    QCOMPARE(tok, run.events.size());
}

void TestInspectorKv::explicitPrefillChunks() {
    SnapshotRing ring(4);
    TraceRecorder rec(ring);
    rec.beginRequest("chunked", 300);
    rec.addPhase({Phase::Queue, -20.0, 0.0, 0});
    rec.addPhase({Phase::Prefill, 0.0, 30.0, 128});
    rec.addPhase({Phase::Prefill, 40.0, 70.0, 128});
    rec.addPhase({Phase::Prefill, 80.0, 95.0, 44});
    for (int i = 0; i < 5; ++i) {
        TokenEvent e;
        e.id = i;
        e.t_ms = 100.0 + 10 * i;
        rec.onToken(e);
    }
    GenerateResult r;
    r.n_prompt_tokens = 300;
    rec.endRequest(r);
    const RequestTrace & t = *ring.latest()->requests.back();
    int queue = 0, prefill = 0, decode = 0, prefill_tokens = 0;
    for (const PhaseSpan & s : t.phases) {
        queue += s.phase == Phase::Queue;
        prefill += s.phase == Phase::Prefill;
        decode += s.phase == Phase::Decode;
        if (s.phase == Phase::Prefill) prefill_tokens += s.nTokens;
    }
    QCOMPARE(queue, 1);
    QCOMPARE(prefill, 3);  // the given chunks, no derived span
    QCOMPARE(prefill_tokens, 300);
    QCOMPARE(decode, 5);
    // The next request starts without them.
    rec.beginRequest("next");
    rec.endRequest(GenerateResult{});
    QVERIFY(ring.latest()->requests.back()->phases.empty());
}

void TestInspectorKv::exportJsonAndCsv() {
    SnapshotRing ring(4);
    TraceRecorder rec(ring);
    KvRecorderParams kp;
    kp.minIntervalMs = 0;
    KvRecorder kvrec(rec, kp);
    ScriptedKvParams wp;
    wp.nConversations = 3;
    wp.nTurns = 2;
    auto w = ScriptedKvWorkload::create(wp);
    QVERIFY(w.ok());
    while ((*w)->step(&kvrec)) {}
    ScriptedSpecParams sp;
    sp.nTokens = 120;
    const ScriptedSpecRun run = makeScriptedSpecRun(sp);
    rec.beginRequest("a, \"quoted\" label");
    for (const TokenEvent & e : run.events) rec.onToken(e);
    rec.endRequest(run.result());
    rec.beginRequest("plain");
    TokenEvent e;
    e.id = 7;
    e.text = "comma, and \"quote\"\nnewline";
    e.t_ms = 5;
    rec.onToken(e);
    rec.endRequest(GenerateResult{});
    const auto snap = ring.latest();

    const QJsonObject json = runToJson(*snap);
    const QJsonArray reqs = json["requests"].toArray();
    QCOMPARE(reqs.size(), 2);
    QCOMPARE(reqs[0].toObject()["tokens"].toArray().size(), 120);
    QCOMPARE(reqs[0].toObject()["spec"].toObject()["accepted"].toInteger(), run.stats.accepted);
    QCOMPARE(reqs[1].toObject()["tokens"].toArray()[0].toArray()[5].toString(), QString::fromStdString(e.text));
    QCOMPARE(json["kv"].toObject()["steps"].toArray().size(), qsizetype(snap->kv->steps.size()));
    QCOMPARE(json["kv"].toObject()["requests"].toArray().size(), 6);

    QTemporaryDir dir;
    QCOMPARE(exportRun(*snap, dir.filePath("run.json")), QString());
    QFile jf(dir.filePath("run.json"));
    QVERIFY(jf.open(QIODevice::ReadOnly));
    QCOMPARE(QJsonDocument::fromJson(jf.readAll()).object()["requests"].toArray().size(), 2);
    QCOMPARE(exportRun(*snap, dir.filePath("run.csv")), QString());
    QFile tf(dir.filePath("run.csv")), sf(dir.filePath("run.steps.csv"));
    QVERIFY(tf.open(QIODevice::ReadOnly));
    QVERIFY(sf.open(QIODevice::ReadOnly));
    const QByteArray tokens = tf.readAll();
    // Records = lines outside quotes.
    auto records = [](const QByteArray & csv) {
        int n = 0;
        bool quoted = false;
        for (char c : csv) {
            if (c == '"') quoted = !quoted;
            else if (c == '\n' && !quoted) ++n;
        }
        return n;
    };
    QCOMPARE(records(tokens), 1 + 121);
    QVERIFY(tokens.contains("\"comma, and \"\"quote\"\"\nnewline\""));
    QCOMPARE(records(sf.readAll()), 1 + int(snap->kv->steps.size()));
}

QTEST_GUILESS_MAIN(TestInspectorKv)
#include "tst_inspector_kv.moc"
