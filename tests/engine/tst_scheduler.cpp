// Continuous-batching scheduler driven by a fake deterministic "model": the next
// token is a hash of the tokens read back through the page table from a
// simulated K/V storage, so wrong pages, lost prefixes or a broken resume change
// the output. Oracle: the same model run on each request alone.
#include "glassbox/kv/scheduler.h"

#include <QtTest>
#include <map>
#include <random>
#include <set>

using namespace gb::kv;
using gb::Token;
using Tokens = std::vector<Token>;

class TstScheduler : public QObject {
    Q_OBJECT
  private slots:
    void invalidParams();
    void impossibleWhileOthersRun();
    void chunkedPrefillInterleavesDecodes();
    void preemptionResumesIdentically_data();
    void preemptionResumesIdentically();
    void prefixCacheHitsAcrossTurns();
    void cancelFreesPagesImmediately();
    void commitValidation();
    void property_data();
    void property();
};

namespace {

constexpr int k_vocab = 97;
constexpr Token k_stop = 0;

Token fake_model(const Tokens & history) {
    uint64_t h = 1469598103934665603ull;
    for (Token t : history) h = (h ^ uint64_t(uint32_t(t))) * 1099511628211ull;
    return Token((h >> 17) % k_vocab);
}

Tokens run_alone(const RequestParams & r) {
    Tokens h = r.prompt, out;
    while (int(out.size()) < r.max_new_tokens) {
        const Token t = fake_model(h);
        out.push_back(t);
        h.push_back(t);
        if (r.stop_token >= 0 && t == r.stop_token) break;
    }
    return out;
}

// Plays the forward pass: writes each step's tokens into simulated pages and
// samples from what it reads back. Checks every plan as it goes.
struct Harness {
    Scheduler & s;
    int32_t ps;
    std::vector<Tokens> storage;
    std::map<RequestId, Tokens> history;     // prompt + sampled, as the caller knows it
    std::map<RequestId, int32_t> computed;   // tokens with K/V, as the plans said
    std::set<RequestId> sampled_last;        // had a sample in the previous step
    std::string error;
    int64_t n_steps = 0, n_preempted = 0, n_hit_tokens = 0, n_mixed_steps = 0;

    explicit Harness(Scheduler & sched) : s(sched), ps(sched.params().page_size),
        storage(size_t(sched.params().n_pages), Tokens(size_t(sched.params().page_size), -1)) {}

    RequestId submit(const RequestParams & r) {
        const AdmissionResult a = s.submit(r);
        if (a.verdict != Admission::Impossible) history[a.id] = r.prompt;
        return a.id;
    }

    void fail(const std::string & m) { if (error.empty()) error = "step " + std::to_string(n_steps) + ": " + m; }

    StepPlan run_step() {
        StepPlan plan = s.step();
        ++n_steps;
        const auto & m = plan.metrics;
        for (RequestId id : m.preempted) { computed.erase(id); ++n_preempted; }
        for (const auto & a : m.admitted) { computed[a.id] = a.prefix_hit_tokens; n_hit_tokens += a.prefix_hit_tokens; }
        for (const PageCopy & c : plan.copies) {
            for (int i = 0; i < c.n_tokens; ++i) storage[size_t(c.dst)][size_t(i)] = storage[size_t(c.src)][size_t(i)];
        }
        int32_t total = 0;
        std::set<RequestId> seen;
        bool any_prefill = false, any_decode = false;
        std::vector<SampledToken> samples;
        for (const SeqWork & w : plan.work) {
            total += int32_t(w.tokens.size());
            if (!seen.insert(w.id).second) fail("request twice in a step");
            if (!computed.count(w.id)) { fail("work for a request that is not admitted"); continue; }
            const Tokens & h = history.at(w.id);
            if (w.first_pos != computed[w.id]) fail("first_pos " + std::to_string(w.first_pos) + " != computed " + std::to_string(computed[w.id]));
            if (w.tokens.empty() || size_t(w.first_pos) + w.tokens.size() > h.size() ||
                !std::equal(w.tokens.begin(), w.tokens.end(), h.begin() + w.first_pos)) fail("work tokens are not the history");
            if (!w.is_prefill && (w.tokens.size() != 1 || !w.sample)) fail("decode with more than one token");
            (w.is_prefill ? any_prefill : any_decode) = true;
            if (w.sample != (size_t(w.first_pos) + w.tokens.size() == h.size())) fail("sample flag");
            const auto pages = s.tables().pages(w.seq);
            for (size_t i = 0; i < w.tokens.size(); ++i) {
                const size_t pos = size_t(w.first_pos) + i;
                storage[size_t(pages[pos / size_t(ps)])][pos % size_t(ps)] = w.tokens[i];
            }
            computed[w.id] += int32_t(w.tokens.size());
            if (w.sample) {
                // Read the whole context back through the page table, as attention would.
                Tokens ctx;
                for (int32_t pos = 0; pos < computed[w.id]; ++pos) ctx.push_back(storage[size_t(pages[size_t(pos / ps)])][size_t(pos % ps)]);
                samples.push_back({w.id, fake_model(ctx)});
            }
        }
        if (total > s.params().max_tokens_per_step) fail("token budget exceeded: " + std::to_string(total));
        if (total != m.n_prefill_tokens + m.n_decode_tokens) fail("metrics token count");
        if (any_prefill && any_decode) ++n_mixed_steps;
        // A stream that decoded last step decodes again unless it ended or was preempted.
        for (RequestId id : sampled_last) {
            const RequestInfo * r = s.request(id);
            const bool pre = std::find(m.preempted.begin(), m.preempted.end(), id) != m.preempted.end();
            if (r->state == RequestState::Running && !pre && !seen.count(id)) fail("running stream " + std::to_string(id) + " starved");
        }
        sampled_last.clear();
        for (const auto & smp : samples) sampled_last.insert(smp.id);
        if (auto st = s.commit(samples); !st.ok()) fail("commit: " + st.error().message);
        for (const auto & smp : samples) {
            if (s.request(smp.id)->state != RequestState::Cancelled) history[smp.id].push_back(smp.token);
            if (s.request(smp.id)->state != RequestState::Running) sampled_last.erase(smp.id);
        }
        if (auto st = s.check_invariants(); !st.ok()) fail(st.error().message);
        return plan;
    }

    bool run_all(int64_t max_steps = 100000) {
        while (s.has_work() && error.empty() && max_steps-- > 0) run_step();
        return !s.has_work();
    }
};

std::unique_ptr<Scheduler> make(int n_pages, int ps, int budget, int max_running, bool cache = true) {
    SchedulerParams p;
    p.n_pages = n_pages;
    p.page_size = ps;
    p.max_tokens_per_step = budget;
    p.max_running = max_running;
    p.prefix_cache = cache;
    auto r = Scheduler::create(p);
    return r.ok() ? std::move(r.value()) : nullptr;
}

Tokens random_tokens(std::mt19937 & rng, int n) {
    Tokens t;
    for (int i = 0; i < n; ++i) t.push_back(Token(1 + rng() % (k_vocab - 1)));
    return t;
}

}  // namespace

void TstScheduler::invalidParams() {
    SchedulerParams p;
    p.n_pages = 0;
    QVERIFY(!Scheduler::create(p).ok());
    p.n_pages = 4;
    p.max_tokens_per_step = 4;
    p.max_running = 8;
    auto r = Scheduler::create(p);
    QVERIFY(!r.ok());
    QVERIFY(r.error().message.find("starve") != std::string::npos);
}

void TstScheduler::impossibleWhileOthersRun() {
    auto s = make(8, 4, 16, 4);
    Harness h(*s);
    std::mt19937 rng(1);
    const RequestParams a{random_tokens(rng, 10), 5, -1};
    const RequestParams c{random_tokens(rng, 7), 9, -1};
    const RequestId ia = h.submit(a);
    h.run_step();  // a is running
    const AdmissionResult big = s->submit(RequestParams{random_tokens(rng, 40), 4, -1});
    QCOMPARE(big.verdict, Admission::Impossible);
    QCOMPARE(big.id, RequestId(-1));
    // 40 + 4 - 1 = 43 tokens -> 11 pages of 4; only 8.
    QVERIFY2(big.reason.find("needs 11 pages") != std::string::npos && big.reason.find("only 8") != std::string::npos, big.reason.c_str());
    QCOMPARE(s->check(RequestParams{{}, 3, -1}).verdict, Admission::Impossible);
    QCOMPARE(s->check(RequestParams{{1, 2}, 0, -1}).verdict, Admission::Impossible);
    QCOMPARE(s->check(RequestParams{random_tokens(rng, 29), 4, -1}).verdict, Admission::Later);  // 8 pages, a holds some
    const RequestId ic = h.submit(c);
    QVERIFY(h.run_all());
    QVERIFY2(h.error.empty(), h.error.c_str());
    QCOMPARE(s->request(ia)->generated, run_alone(a));
    QCOMPARE(s->request(ic)->generated, run_alone(c));
    QCOMPARE(s->pool().stats().used, 0);
}

void TstScheduler::chunkedPrefillInterleavesDecodes() {
    auto s = make(128, 8, 16, 8);
    Harness h(*s);
    std::mt19937 rng(2);
    std::vector<RequestId> streams;
    std::vector<RequestParams> reqs;
    for (int i = 0; i < 4; ++i) {
        reqs.push_back({random_tokens(rng, 3), 60, -1});
        streams.push_back(h.submit(reqs.back()));
    }
    for (int i = 0; i < 3; ++i) h.run_step();
    const RequestParams longp{random_tokens(rng, 200), 3, -1};
    const RequestId il = h.submit(longp);
    int prefill_steps = 0;
    while (s->request(il)->generated.empty()) {
        StepPlan p = h.run_step();
        int decodes = 0;
        for (const SeqWork & w : p.work) {
            if (w.id == il) {
                QVERIFY(w.is_prefill);
                QVERIFY(int(w.tokens.size()) <= 12);  // 16 - 4 decodes
            } else {
                QVERIFY(!w.is_prefill);
                ++decodes;
            }
        }
        QCOMPARE(decodes, 4);  // every running stream got its token while the prompt was chunked in
        ++prefill_steps;
        QVERIFY(prefill_steps < 100);
    }
    QCOMPARE(prefill_steps, (200 + 11) / 12);
    QVERIFY(h.run_all());
    QVERIFY2(h.error.empty(), h.error.c_str());
    for (int i = 0; i < 4; ++i) QCOMPARE(s->request(streams[size_t(i)])->generated, run_alone(reqs[size_t(i)]));
    QCOMPARE(s->request(il)->generated, run_alone(longp));
}

void TstScheduler::preemptionResumesIdentically_data() {
    QTest::addColumn<bool>("cache");
    QTest::newRow("cache-off") << false;
    QTest::newRow("cache-on") << true;
}

void TstScheduler::preemptionResumesIdentically() {
    QFETCH(bool, cache);
    // 12 pages of 4 = 48 slots; three requests of up to 10 + 30 tokens cannot all fit.
    auto s = make(12, 4, 8, 3, cache);
    Harness h(*s);
    std::mt19937 rng(3);
    std::vector<RequestParams> reqs;
    std::vector<RequestId> ids;
    for (int i = 0; i < 3; ++i) {
        reqs.push_back({random_tokens(rng, 10), 30, -1});
        ids.push_back(h.submit(reqs.back()));
    }
    QVERIFY(h.run_all());
    QVERIFY2(h.error.empty(), h.error.c_str());
    int preemptions = 0;
    for (size_t i = 0; i < ids.size(); ++i) {
        QCOMPARE(s->request(ids[i])->generated, run_alone(reqs[i]));
        preemptions += s->request(ids[i])->n_preemptions;
    }
    QVERIFY(preemptions > 0);
    QCOMPARE(h.n_preempted, int64_t(preemptions));
    QCOMPARE(s->pool().stats().used, 0);
}

void TstScheduler::prefixCacheHitsAcrossTurns() {
    auto s = make(64, 4, 32, 4);
    Harness h(*s);
    std::mt19937 rng(4);
    const Tokens system = random_tokens(rng, 21);
    RequestParams turn{system, 6, -1};
    turn.prompt.push_back(5);
    RequestId id = h.submit(turn);
    QVERIFY(h.run_all());
    QCOMPARE(s->request(id)->prefix_hit_tokens, 0);
    // Next turn: the whole previous exchange + a new message.
    for (int t = 0; t < 4; ++t) {
        Tokens prev = turn.prompt;
        const Tokens & gen = s->request(id)->generated;
        prev.insert(prev.end(), gen.begin(), gen.end());
        turn.prompt = prev;
        for (Token x : random_tokens(rng, 3)) turn.prompt.push_back(x);
        id = h.submit(turn);
        QVERIFY(h.run_all());
        QVERIFY2(h.error.empty(), h.error.c_str());
        // Everything computed before is reused, page aligned: all full pages of
        // the previous prompt + generated tokens but the last (never fed).
        const int reusable = (int(prev.size()) - 1) / 4 * 4;
        QCOMPARE(s->request(id)->prefix_hit_tokens, reusable);
        QCOMPARE(s->request(id)->generated, run_alone(turn));
    }
    QVERIFY(s->pool().stats().cached > 0);
    QCOMPARE(s->pool().stats().used, 0);
}

void TstScheduler::cancelFreesPagesImmediately() {
    auto s = make(32, 4, 16, 4);
    Harness h(*s);
    std::mt19937 rng(5);
    const RequestParams a{random_tokens(rng, 9), 40, -1}, b{random_tokens(rng, 13), 40, -1};
    const RequestId ia = h.submit(a), ib = h.submit(b);
    for (int i = 0; i < 5; ++i) h.run_step();
    const int used_before = s->pool().stats().used;
    const int b_pages = int(s->tables().pages(h.s.tables().seq_ids().back()).size());
    QVERIFY(s->cancel(ib).ok());
    QCOMPARE(s->request(ib)->state, RequestState::Cancelled);
    QCOMPARE(s->pool().stats().used, used_before - b_pages);
    QVERIFY(s->check_invariants().ok());
    QVERIFY(!s->cancel(12345).ok());
    // Cancel between step() and commit(): its sample is ignored.
    StepPlan p = s->step();
    QVERIFY(s->cancel(ia).ok());
    std::vector<SampledToken> samples{{ia, 1}};
    QVERIFY(s->commit(samples).ok());
    QCOMPARE(int(s->request(ia)->generated.size()), 5);
    QVERIFY(!s->has_work());
    QCOMPARE(s->pool().stats().used, 0);
    const Tokens want = run_alone(a);
    QCOMPARE(s->request(ia)->generated, Tokens(want.begin(), want.begin() + 5));
}

void TstScheduler::commitValidation() {
    auto s = make(16, 4, 16, 4);
    std::mt19937 rng(6);
    const AdmissionResult a = s->submit({random_tokens(rng, 5), 3, -1});
    QCOMPARE(a.verdict, Admission::Ok);
    StepPlan p = s->step();
    QCOMPARE(int(p.work.size()), 1);
    std::vector<SampledToken> none;
    QVERIFY(!s->commit(none).ok());
    std::vector<SampledToken> wrong{{a.id, 3}, {a.id + 7, 4}};
    QVERIFY(!s->commit(wrong).ok());
    std::vector<SampledToken> twice{{a.id, 3}, {a.id, 4}};
    QVERIFY(!s->commit(twice).ok());
    QVERIFY(s->request(a.id)->generated.empty());  // nothing applied
    std::vector<SampledToken> good{{a.id, 3}};
    QVERIFY(s->commit(good).ok());
    QCOMPARE(s->request(a.id)->generated, Tokens{3});
    QVERIFY(!s->commit(good).ok());  // no open step
}

void TstScheduler::property_data() {
    QTest::addColumn<uint32_t>("seed");
    QTest::addColumn<int>("n_pages");
    QTest::addColumn<int>("page_size");
    QTest::addColumn<int>("budget");
    QTest::addColumn<int>("max_running");
    QTest::addColumn<bool>("cache");
    QTest::newRow("roomy-cache") << 21u << 96 << 4 << 32 << 6 << true;
    QTest::newRow("tight-cache") << 22u << 24 << 4 << 16 << 6 << true;
    QTest::newRow("tight-nocache") << 23u << 24 << 4 << 16 << 6 << false;
    QTest::newRow("ps1-cache") << 24u << 90 << 1 << 12 << 4 << true;
    QTest::newRow("ps16-cache") << 25u << 10 << 16 << 48 << 8 << true;
}

// Random arrivals (shared system prompts, follow-up turns, some too big), random
// cancels; every plan checked by the harness, every output against run_alone.
void TstScheduler::property() {
    QFETCH(uint32_t, seed);
    QFETCH(int, n_pages);
    QFETCH(int, page_size);
    QFETCH(int, budget);
    QFETCH(int, max_running);
    QFETCH(bool, cache);
    auto s = make(n_pages, page_size, budget, max_running, cache);
    QVERIFY(s);
    Harness h(*s);
    std::mt19937 rng(seed);
    auto rnd = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
    const int capacity = n_pages * page_size;
    std::vector<Tokens> systems;
    for (int i = 0; i < 3; ++i) systems.push_back(random_tokens(rng, rnd(3, capacity / 4)));
    std::map<RequestId, RequestParams> submitted;
    int n_impossible = 0, n_cancelled = 0, n_submitted = 0;
    std::vector<RequestId> finished;

    while (n_submitted < 160 || s->has_work()) {
        if (n_submitted < 160 && rnd(0, 2) == 0) {
            RequestParams r;
            const int kind = rnd(0, 9);
            if (kind == 0) {
                r.prompt = random_tokens(rng, capacity + rnd(0, 5));  // never fits
            } else if (kind <= 3 && !finished.empty()) {  // follow-up turn of a finished chat
                const RequestId prev = finished[size_t(rnd(0, int(finished.size()) - 1))];
                r.prompt = submitted[prev].prompt;
                const Tokens & g = s->request(prev)->generated;
                r.prompt.insert(r.prompt.end(), g.begin(), g.end());
                for (Token t : random_tokens(rng, rnd(1, 6))) r.prompt.push_back(t);
            } else {
                r.prompt = systems[size_t(rnd(0, 2))];
                for (Token t : random_tokens(rng, rnd(1, 12))) r.prompt.push_back(t);
            }
            r.max_new_tokens = rnd(1, 24);
            r.stop_token = rnd(0, 3) == 0 ? k_stop : -1;
            const int64_t need = (int64_t(r.prompt.size()) + r.max_new_tokens - 1 + page_size - 1) / page_size;
            const AdmissionResult a = s->check(r);
            QCOMPARE(a.verdict == Admission::Impossible, need > n_pages);
            const RequestId id = h.submit(r);
            ++n_submitted;
            if (need > n_pages) {
                QCOMPARE(id, RequestId(-1));
                QVERIFY(a.reason.find("only " + std::to_string(n_pages)) != std::string::npos);
                ++n_impossible;
            } else {
                submitted[id] = r;
            }
        }
        if (!submitted.empty() && rnd(0, 60) == 0) {  // cancel something, whatever its state
            auto it = submitted.begin();
            std::advance(it, rnd(0, int(submitted.size()) - 1));
            if (s->request(it->first)->state != RequestState::Finished) {
                QVERIFY(s->cancel(it->first).ok());
                ++n_cancelled;
            }
        }
        if (s->has_work()) h.run_step();
        for (const auto & [id, r] : submitted) {
            if (s->request(id)->state == RequestState::Finished &&
                std::find(finished.begin(), finished.end(), id) == finished.end()) finished.push_back(id);
        }
        QVERIFY2(h.error.empty(), h.error.c_str());
        QVERIFY(h.n_steps < 50000);
    }
    int n_checked = 0;
    for (const auto & [id, r] : submitted) {
        const RequestInfo * info = s->request(id);
        const Tokens want = run_alone(r);
        if (info->state == RequestState::Finished) {
            QCOMPARE(info->generated, want);
            ++n_checked;
        } else {
            QCOMPARE(info->state, RequestState::Cancelled);
            QVERIFY(info->generated.size() <= want.size());
            QVERIFY(std::equal(info->generated.begin(), info->generated.end(), want.begin()));
        }
    }
    const auto st = s->pool().stats();
    QCOMPARE(st.used, 0);  // no leak
    QCOMPARE(st.free + st.cached, n_pages);
    qDebug("steps %lld, finished %d, impossible %d, cancelled %d, preempted %lld, prefix-hit tokens %lld, mixed steps %lld, evictions %lld",
           (long long)h.n_steps, n_checked, n_impossible, n_cancelled, (long long)h.n_preempted, (long long)h.n_hit_tokens,
           (long long)h.n_mixed_steps, (long long)st.evictions);
    QVERIFY(n_checked > 100);
    QVERIFY(n_impossible > 0);
    QVERIFY(h.n_mixed_steps > 0);
    if (cache) QVERIFY(h.n_hit_tokens > 0);
}

QTEST_APPLESS_MAIN(TstScheduler)
#include "tst_scheduler.moc"
