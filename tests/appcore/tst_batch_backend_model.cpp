// The real backend's BatchEngine path on the real model (gemma-3-270m): greedy
// replies equal to the Session path's (tokens, text, log-probabilities, stop,
// dropped turns), prefix-cache hits of a second turn / a regenerate / an edit /
// another conversation equal to an oracle computed from the tokens and to the
// engine's own counters, cancel freeing the pages at once, and the KV observer.
#include "engine_backend.h"
#include "engine_worker.h"

// Qt's `emit` macro would rewrite the Scheduler's private emit(): keep it out.
#pragma push_macro("emit")
#undef emit
#include "glassbox/kv/scheduler.h"
#pragma pop_macro("emit")
#include "glassbox/model.h"
#include "glassbox/session.h"

#include <QFile>
#include <QtTest>

#include <map>

namespace {

const QString kModel = QStringLiteral(GLASSBOX_MODEL_DIR "/gemma-3-270m-q4_k_m.gguf");
constexpr int kPage = 16;  // the backend's page size

struct Reply {
    gb::GenerateResult result;
    std::vector<gb::Token> ids;        // generated token ids, in order
    std::vector<float> logprobs;
    std::vector<std::vector<gb::TokenLogprob>> tops;
    ChatExtras extras;
};

// What the observer saw of the batching engine.
struct Seen {
    std::map<int64_t, int32_t> admittedHit;  // request -> prefix hit (StepMetrics::admitted)
    std::map<int64_t, int32_t> infoHit;      // request -> RequestInfo::prefix_hit_tokens at idle
    std::map<int64_t, std::string> labels;
    gb::kv::BlockPoolStats idle;             // pool after the last request
    size_t idleTables = 0;
    int32_t maxUsedWhileRunning = 0;
    int steps = 0;
};

EngineConfig config(int ctx = 1024)
{
    EngineConfig c;
    c.contextLength = ctx;
    c.threads = 2;
    return c;
}

gb::GenerateParams greedy(int maxTokens)
{
    gb::GenerateParams p;
    p.sampling.temperature = 0.0f;
    p.max_tokens = maxTokens;
    p.n_logprobs = 3;
    return p;
}

Reply chat(EngineBackend &b, bool batching, const std::vector<gb::ChatMessage> &msgs, const gb::GenerateParams &p,
           int cancelAfter = -1, std::atomic<bool> *cancel = nullptr)
{
    Reply r;
    b.setChatRequestOptions({batching, "test"});
    auto res = b.chat(msgs, p, [&](const gb::TokenEvent &ev) {
        if (ev.id >= 0) {
            r.ids.push_back(ev.id);
            r.logprobs.push_back(ev.logprob);
            r.tops.push_back(ev.top);
            if (cancelAfter >= 0 && int(r.ids.size()) >= cancelAfter && cancel)
                cancel->store(true);
        }
        return true;
    }, cancel);
    if (res)
        r.result = res.value();
    else
        r.result.text = "<error: " + res.error().message + ">";
    r.extras = b.lastChatExtras();
    return r;
}

KvObserver observerInto(Seen &seen)
{
    KvObserver o;
    o.onStep = [&seen](const gb::kv::Scheduler &s, const gb::kv::StepPlan &plan) {
        ++seen.steps;
        for (const gb::kv::AdmittedInfo &a : plan.metrics.admitted)
            seen.admittedHit[a.id] = a.prefix_hit_tokens;
        seen.maxUsedWhileRunning = std::max(seen.maxUsedWhileRunning, s.pool().stats().used);
    };
    o.onSubmit = [&seen](int64_t id, const std::string &label) { seen.labels[id] = label; };
    o.onIdle = [&seen](const gb::kv::Scheduler &s) {
        seen.idle = s.pool().stats();
        seen.idleTables = s.tables().n_seqs();
        for (const auto &[id, hit] : seen.admittedHit)
            if (const gb::kv::RequestInfo *info = s.request(id))
                seen.infoHit[id] = info->prefix_hit_tokens;
    };
    return o;
}

}  // namespace

class TestBatchBackendModel : public QObject {
    Q_OBJECT
    std::shared_ptr<const gb::Model> m_model;
    std::unique_ptr<gb::Session> m_templ;  // renders prompts for the oracle (the Session's own way)

    std::vector<gb::Token> promptOf(const std::vector<gb::ChatMessage> &msgs) const
    {
        const gb::Tokenizer &tok = m_model->tokenizer();
        auto text = m_templ->render_chat(msgs, true);
        if (!text)
            return {};
        std::vector<gb::Token> p = tok.encode(text.value(), tok.add_bos(), true);
        if (p.size() >= 2 && p[0] == tok.bos() && p[1] == tok.bos())
            p.erase(p.begin());
        return p;
    }
    // Prefix hit the paged cache must give: full pages of the longest common
    // prefix with what is cached, leaving at least the last prompt token to compute.
    static int expectedHit(const std::vector<gb::Token> &prompt, const std::vector<std::vector<gb::Token>> &cached)
    {
        size_t best = 0;
        for (const auto &c : cached) {
            size_t n = 0;
            while (n < c.size() && n < prompt.size() && c[n] == prompt[n])
                ++n;
            best = std::max(best, n);
        }
        best = std::min(best, prompt.size() - 1);
        return int(best / kPage * kPage);
    }
    // What a finished request leaves computed: prompt + reply, less its last token.
    static std::vector<gb::Token> computed(const std::vector<gb::Token> &prompt, const Reply &r)
    {
        std::vector<gb::Token> all = prompt;
        all.insert(all.end(), r.ids.begin(), r.ids.end());
        if (!r.ids.empty())
            all.pop_back();
        return all;
    }

private slots:
    void initTestCase()
    {
        if (!QFile::exists(kModel))
            QSKIP("model file not found (set GLASSBOX_MODEL_DIR)");
        auto m = gb::Model::load(kModel.toStdString());
        QVERIFY(m);
        m_model = m.value();
        gb::SessionParams sp;
        sp.context.n_ctx = 64;
        auto s = gb::Session::create(m_model, sp);
        QVERIFY(s);
        m_templ = std::move(s.value());
    }

    void greedyEqualsSession_data()
    {
        QTest::addColumn<QString>("kv");
        QTest::newRow("f16") << QStringLiteral("f16");
        QTest::newRow("q8_0") << QStringLiteral("q8_0");
    }
    void greedyEqualsSession()
    {
        QFETCH(QString, kv);
        std::unique_ptr<EngineBackend> b = EngineWorker::createGlassboxBackend();
        EngineConfig c = config();
        c.kvCacheType = kv;
        QVERIFY(b->load(kModel, c, {}));
        const std::vector<gb::ChatMessage> msgs = {{"system", "You are a terse assistant."},
                                                   {"user", "Name three colours of the rainbow."}};
        const Reply s = chat(*b, false, msgs, greedy(40));
        QVERIFY(!s.extras.batched);
        const Reply q = chat(*b, true, msgs, greedy(40));
        QVERIFY(q.extras.batched);
        QVERIFY(q.extras.engineRequestId >= 0);
        QVERIFY(!s.ids.empty());
        QCOMPARE(q.result.text, s.result.text);
        QCOMPARE(q.ids, s.ids);
        QCOMPARE(int(q.result.stop), int(s.result.stop));
        QCOMPARE(q.result.n_prompt_tokens, s.result.n_prompt_tokens);
        QCOMPARE(q.result.n_prompt_tokens, int(promptOf(msgs).size()));
        QCOMPARE(q.result.n_generated, s.result.n_generated);
        QCOMPARE(q.result.n_prompt_reused, 0);  // a new engine
        for (size_t i = 0; i < s.ids.size(); ++i) {
            QVERIFY2(std::abs(q.logprobs[i] - s.logprobs[i]) < 1e-4f, qPrintable(QString::number(i)));
            QCOMPARE(q.tops[i].size(), s.tops[i].size());
            for (size_t k = 0; k < s.tops[i].size(); ++k)
                QCOMPARE(q.tops[i][k].id, s.tops[i][k].id);
        }
        // Stop strings: the text before it, the same on both paths.
        gb::GenerateParams p = greedy(40);
        const std::string word = s.result.text.substr(s.result.text.size() / 2, 3);
        p.stop = {word};
        const Reply s2 = chat(*b, false, msgs, p);
        const Reply q2 = chat(*b, true, msgs, p);
        QCOMPARE(int(s2.result.stop), int(gb::StopReason::StopString));
        QCOMPARE(q2.result.text, s2.result.text);
        QCOMPARE(int(q2.result.stop), int(s2.result.stop));
        // Max tokens.
        const Reply q3 = chat(*b, true, msgs, greedy(3));
        QCOMPARE(q3.result.n_generated, 3);
        QCOMPARE(int(q3.result.stop), int(gb::StopReason::MaxTokens));
        QCOMPARE(q3.ids, std::vector<gb::Token>(s.ids.begin(), s.ids.begin() + 3));
    }

    // A conversation longer than the context: both paths drop the same oldest
    // turns (keeping the system prompt) and reply the same.
    void overflowDropsOldestTurnsLikeSession()
    {
        std::unique_ptr<EngineBackend> b = EngineWorker::createGlassboxBackend();
        QVERIFY(b->load(kModel, config(256), {}));
        std::vector<gb::ChatMessage> msgs = {{"system", "Be brief."}};
        for (int i = 0; i < 6; ++i) {
            msgs.push_back({"user", "Tell me something about the number " + std::to_string(i) +
                                        " and why it matters to people who count things every day."});
            msgs.push_back({"assistant", "The number " + std::to_string(i) + " is a number that people count with."});
        }
        msgs.push_back({"user", "Thanks. And the number 7?"});
        const Reply s = chat(*b, false, msgs, greedy(16));
        const Reply q = chat(*b, true, msgs, greedy(16));
        QVERIFY(s.result.n_dropped_messages > 0);
        QCOMPARE(q.result.n_dropped_messages, s.result.n_dropped_messages);
        QCOMPARE(q.result.text, s.result.text);
        QCOMPARE(q.ids, s.ids);
        // Even the last turn alone does not fit: an error on both paths, no crash.
        const std::vector<gb::ChatMessage> huge = {{"user", std::string(4000, 'x') + " ?"}};
        EngineBackend &e = *b;
        e.setChatRequestOptions({true, ""});
        auto err = e.chat(huge, greedy(8), {}, nullptr);
        QVERIFY(!err);
        QVERIFY2(QString::fromStdString(err.error().message).contains("the context holds"),
                 err.error().message.c_str());
        const Reply after = chat(*b, true, msgs, greedy(16));
        QCOMPARE(after.result.text, s.result.text);  // still usable
    }

    // Second turn, regenerate, edit and another conversation: prefix hits equal
    // the oracle and the engine's counters (StepMetrics and RequestInfo).
    void prefixHitsAcrossTurnsBranchesAndConversations()
    {
        std::unique_ptr<EngineBackend> b = EngineWorker::createGlassboxBackend();
        QVERIFY(b->load(kModel, config(), {}));
        Seen seen;
        b->setKvObserver(observerInto(seen));
        const std::string sys = "You are Glassbox, a helpful assistant that answers in one short sentence. "
                                "Always be precise and friendly.";
        const std::vector<gb::ChatMessage> turn1 = {{"system", sys}, {"user", "What is the capital of France?"}};
        std::vector<std::vector<gb::Token>> cached;

        const Reply r1 = chat(*b, true, turn1, greedy(24));
        QVERIFY(r1.extras.batched);
        QCOMPARE(r1.result.n_prompt_reused, 0);
        QCOMPARE(seen.labels[r1.extras.engineRequestId], std::string("test"));
        cached.push_back(computed(promptOf(turn1), r1));

        // Turn 2 resends turn 1 and its reply.
        const std::vector<gb::ChatMessage> turn2 = {{"system", sys}, {"user", "What is the capital of France?"},
                                                    {"assistant", r1.result.text}, {"user", "And of Spain?"}};
        const Reply r2 = chat(*b, true, turn2, greedy(24));
        const int want2 = expectedHit(promptOf(turn2), cached);
        QVERIFY(want2 > 0);
        QCOMPARE(r2.result.n_prompt_reused, want2);
        QCOMPARE(seen.admittedHit.at(r2.extras.engineRequestId), want2);
        QCOMPARE(seen.infoHit.at(r2.extras.engineRequestId), want2);
        cached.push_back(computed(promptOf(turn2), r2));

        // Regenerate turn 2: the whole prompt (page aligned, last token left) is reused.
        const Reply r3 = chat(*b, true, turn2, greedy(24));
        const int want3 = expectedHit(promptOf(turn2), cached);
        QCOMPARE(want3, int((promptOf(turn2).size() - 1) / kPage * kPage));
        QCOMPARE(r3.result.n_prompt_reused, want3);
        QCOMPARE(seen.admittedHit.at(r3.extras.engineRequestId), want3);
        QCOMPARE(r3.result.text, r2.result.text);  // greedy

        // Edit the second question: everything before it is reused.
        const std::vector<gb::ChatMessage> edited = {{"system", sys}, {"user", "What is the capital of France?"},
                                                     {"assistant", r1.result.text}, {"user", "And of Italy?"}};
        const Reply r4 = chat(*b, true, edited, greedy(24));
        const int want4 = expectedHit(promptOf(edited), cached);
        QVERIFY(want4 > 0);
        QCOMPARE(r4.result.n_prompt_reused, want4);
        QCOMPARE(seen.infoHit.at(r4.extras.engineRequestId), want4);
        cached.push_back(computed(promptOf(edited), r4));

        // Another conversation with the same system prompt shares its pages.
        const std::vector<gb::ChatMessage> other = {{"system", sys}, {"user", "Who wrote Hamlet?"}};
        const Reply r5 = chat(*b, true, other, greedy(8));
        const int want5 = expectedHit(promptOf(other), cached);
        QVERIFY(want5 > 0);
        QCOMPARE(r5.result.n_prompt_reused, want5);
        QCOMPARE(seen.admittedHit.at(r5.extras.engineRequestId), want5);

        // Nothing runs between replies: every page is free or cached.
        QCOMPARE(seen.idle.used, 0);
        QCOMPARE(seen.idleTables, size_t(0));
        QVERIFY(seen.idle.cached > 0);

        // Prefix cache off: a new engine without reuse, same greedy reply.
        gb::GenerateParams off = greedy(24);
        off.reuse_prefix = false;
        const Reply r6 = chat(*b, true, turn2, off);
        QCOMPARE(r6.result.n_prompt_reused, 0);
        QCOMPARE(r6.result.text, r2.result.text);
        QCOMPARE(seen.idle.cached, 0);
    }

    // Cancel mid-reply: the request's pages are released at once; its full
    // pages stay in the prefix cache for the next request.
    void cancelFreesPages()
    {
        std::unique_ptr<EngineBackend> b = EngineWorker::createGlassboxBackend();
        QVERIFY(b->load(kModel, config(), {}));
        Seen seen;
        b->setKvObserver(observerInto(seen));
        const std::vector<gb::ChatMessage> msgs = {{"user", "Write a long story about a lighthouse keeper and the sea."}};
        std::atomic<bool> cancel{false};
        gb::GenerateParams p = greedy(400);
        p.sampling.temperature = 0.0f;
        const Reply r = chat(*b, true, msgs, p, 40, &cancel);
        QCOMPARE(int(r.result.stop), int(gb::StopReason::Cancelled));
        QCOMPARE(int(r.ids.size()), 40);
        // While it ran it held the pages of its prompt and reply...
        const int held = int((promptOf(msgs).size() + 39 + kPage - 1) / kPage);
        QVERIFY2(seen.maxUsedWhileRunning >= held - 1, qPrintable(QString::number(seen.maxUsedWhileRunning)));
        // ... and after the cancel none: the full ones are cached, the rest free.
        QCOMPARE(seen.idle.used, 0);
        QCOMPARE(seen.idleTables, size_t(0));
        QCOMPARE(seen.idle.cached, int(computed(promptOf(msgs), r).size()) / kPage);
        QCOMPARE(seen.idle.free + seen.idle.cached, seen.idle.n_pages);
        // The next request reuses them.
        const Reply again = chat(*b, true, msgs, greedy(4));
        QCOMPARE(again.result.n_prompt_reused, int((promptOf(msgs).size() - 1) / kPage * kPage));
    }

    // Two conversations generate at once through the worker's one BatchEngine:
    // the engine ran both in the same steps, each reply equals the Session's,
    // cancelling one leaves the other intact, and a Session-path request waits
    // for them and then runs alone.
    void concurrentChatsThroughOneEngine()
    {
        const std::vector<gb::ChatMessage> a = {{"user", "Write a long story about a dragon who learns to bake bread."}};
        const std::vector<gb::ChatMessage> b = {{"user", "Write a long poem about the ocean at night, with many verses."}};
        const std::vector<gb::ChatMessage> c = {{"user", "List the planets of the solar system."}};
        constexpr int kTokens = 32;
        std::unique_ptr<EngineBackend> oracle = EngineWorker::createGlassboxBackend();
        QVERIFY(oracle->load(kModel, config(), {}));
        const std::string wantA = chat(*oracle, false, a, greedy(kTokens)).result.text;
        const std::string wantB = chat(*oracle, false, b, greedy(kTokens)).result.text;
        const std::string wantC = chat(*oracle, false, c, greedy(kTokens)).result.text;
        oracle.reset();

        EngineWorker worker(EngineWorker::createGlassboxBackend());
        QSignalSpy loaded(&worker, &EngineWorker::modelLoaded);
        worker.loadModel(kModel, config());
        QVERIFY(loaded.wait(120000));
        auto maxRunning = std::make_shared<std::atomic<int>>(0);
        KvObserver obs;
        obs.onStep = [maxRunning](const gb::kv::Scheduler &, const gb::kv::StepPlan &plan) {
            int cur = maxRunning->load();
            while (plan.metrics.n_running > cur && !maxRunning->compare_exchange_weak(cur, plan.metrics.n_running)) {
            }
        };
        worker.setKvObserver(obs);

        // Events in the order they arrive: (kind, request).
        QList<QPair<QString, quint64>> events;
        QHash<quint64, GenerationStats> stats;
        QHash<quint64, QString> texts;
        QHash<quint64, int> tokens;
        connect(&worker, &EngineWorker::generationStarted, this,
                [&](quint64 r, qint64) { events.append({QStringLiteral("started"), r}); });
        quint64 cancelMe = 0;  // cancelled after its third token
        connect(&worker, &EngineWorker::tokenGenerated, this, [&](quint64 r, const GeneratedToken &t) {
            if (t.tokenId >= 0 && ++tokens[r] == 3 && r == cancelMe)
                worker.cancel(r);
        });
        connect(&worker, &EngineWorker::generationFinished, this,
                [&](quint64 r, const GenerationStats &s, const QString &text) {
                    events.append({QStringLiteral("finished"), r});
                    stats[r] = s;
                    texts[r] = text;
                });
        auto request = [](qint64 conv, const std::vector<gb::ChatMessage> &m, bool batching) {
            GenerationRequest g;
            g.conversationId = conv;
            for (const gb::ChatMessage &x : m)
                g.messages.append({QString::fromStdString(x.role), QString::fromStdString(x.content)});
            g.options.temperature = 0.0;
            g.options.maxTokens = kTokens;
            g.options.batching = batching;
            return g;
        };
        const quint64 ra = worker.generate(request(1, a, true));
        const quint64 rb = worker.generate(request(2, b, true));
        const quint64 rc = worker.generate(request(3, c, false));  // the Session path: waits for a and b
        QTRY_VERIFY_WITH_TIMEOUT(texts.size() == 3, 300000);
        QCOMPARE(maxRunning->load(), 2);  // a and b in the same engine steps
        QCOMPARE(texts[ra].toStdString(), wantA);
        QCOMPARE(texts[rb].toStdString(), wantB);
        QCOMPARE(texts[rc].toStdString(), wantC);
        QCOMPARE(stats[ra].enginePath, QStringLiteral("batch"));
        QCOMPARE(stats[rb].enginePath, QStringLiteral("batch"));
        QCOMPARE(stats[rc].enginePath, QStringLiteral("session"));
        const auto at = [&](const QString &kind, quint64 r) { return events.indexOf({kind, r}); };
        QVERIFY(at("started", rb) < at("finished", ra));  // b started while a ran
        QVERIFY(at("started", rc) > at("finished", ra) && at("started", rc) > at("finished", rb));

        // Cancel one of two running replies: the other is unchanged. (The Session
        // request dropped the batching engine's cache: one KV cache at a time.)
        const quint64 ra2 = worker.generate(request(1, a, true));
        cancelMe = worker.generate(request(2, b, true));
        QTRY_VERIFY_WITH_TIMEOUT(texts.size() == 5, 300000);
        QCOMPARE(stats[cancelMe].stopReason, QStringLiteral("cancelled"));
        QVERIFY(tokens[cancelMe] >= 3 && tokens[cancelMe] < kTokens);
        QCOMPARE(texts[ra2].toStdString(), wantA);
        QCOMPARE(stats[ra2].promptTokensReused, 0);
    }
};

QTEST_GUILESS_MAIN(TestBatchBackendModel)
#include "tst_batch_backend_model.moc"
