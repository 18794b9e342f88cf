// The app's backend on the GPU (label cuda): with every layer on the GPU,
// replies run on the BatchEngine with the CUDA batched forward (prefix reuse
// across turns, the inspector's step observer, concurrent chats, Q8_0 KV);
// partial offload stays on the one-sequence Session path. Skips without a GPU.
#include "engine_backend.h"
#include "engine_worker.h"

#include "glassbox/cuda_backend.h"
#include "glassbox/synth.h"

#include <QTemporaryDir>
#include <QtTest>

namespace {

EngineConfig cudaConfig(const QString &cacheDir)
{
    EngineConfig c;
    c.backend = QStringLiteral("cuda");
    c.gpuLayers = -1;
    c.contextLength = 512;
    c.threads = 2;
    c.requantizeDir = cacheDir;
    return c;
}

gb::GenerateParams greedy(int maxTokens)
{
    gb::GenerateParams p;
    p.sampling.temperature = 0.0f;
    p.max_tokens = maxTokens;
    p.ignore_eos = true;
    p.n_logprobs = 2;
    return p;
}

}  // namespace

class TestGlassboxBackendCuda : public QObject {
    Q_OBJECT
    QTemporaryDir m_dir;
    QString m_model;

private slots:
    void initTestCase()
    {
        const gb::cuda::DeviceReport r = gb::cuda::probe();
        if (!r.available)
            QSKIP(qPrintable(QString::fromStdString("no usable CUDA device: " + r.message)));
        QVERIFY(m_dir.isValid());
        gb::Result<gb::SynthSpec> spec = gb::synth_preset("tiny-llama");
        QVERIFY(spec);
        spec.value().types = gb::synth_types("Q4_K_M").value();
        m_model = m_dir.filePath(QStringLiteral("tiny-q4km.gguf"));
        QVERIFY(gb::write_synthetic_model(spec.value(), m_model.toStdString(), {}, 2));
    }

    // Two turns of one chat on the GPU batching engine: the second reuses the
    // first's prompt pages; the inspector's step observer sees the steps; the
    // reply streams max_tokens tokens with finite log-probabilities.
    void batchedOnGpu_data()
    {
        QTest::addColumn<QString>("kv");
        QTest::newRow("f16") << QStringLiteral("f16");
        QTest::newRow("q8_0") << QStringLiteral("q8_0");
    }
    void batchedOnGpu()
    {
        QFETCH(QString, kv);
        std::unique_ptr<EngineBackend> b = EngineWorker::createGlassboxBackend();
        EngineConfig c = cudaConfig(m_dir.filePath(QStringLiteral("cache")));
        c.kvCacheType = kv;
        const gb::Status loaded = b->load(m_model, c, {});
        QVERIFY2(loaded, loaded ? "" : loaded.error().message.c_str());
        int steps = 0;
        KvObserver obs;
        obs.onStep = [&](const gb::kv::Scheduler &, const gb::kv::StepPlan &) { ++steps; };
        b->setKvObserver(obs);
        b->setChatRequestOptions({true, "gpu"});
        std::vector<gb::ChatMessage> msgs = {
            {"system", "You are a test. abc def ghi jkl mno pqr stu vwx yz abc def ghi jkl mno pqr stu vwx yz"},
            {"user", "first question abc def ghi jkl mno pqr"}};
        std::vector<gb::Token> ids;
        bool finite = true;
        auto onToken = [&](const gb::TokenEvent &ev) {
            if (ev.id >= 0) {
                ids.push_back(ev.id);
                finite = finite && std::isfinite(ev.logprob) && ev.logprob <= 0.0f && ev.top.size() == 2;
            }
            return true;
        };
        auto first = b->chat(msgs, greedy(6), onToken, nullptr);
        QVERIFY2(first, first ? "" : first.error().message.c_str());
        QVERIFY(b->lastChatExtras().batched);
        QCOMPARE(first.value().n_generated, 6);
        QCOMPARE(int(ids.size()), 6);
        QVERIFY(finite);
        QVERIFY(steps > 0);
        QVERIFY(b->modelInfo().kvBytes > 0);
        msgs.push_back({"assistant", first.value().text});
        msgs.push_back({"user", "second question"});
        ids.clear();
        auto second = b->chat(msgs, greedy(4), onToken, nullptr);
        QVERIFY2(second, second ? "" : second.error().message.c_str());
        QVERIFY(b->lastChatExtras().batched);
        qInfo("turn 2: %d of %d prompt tokens reused", second.value().n_prompt_reused, second.value().n_prompt_tokens);
        QVERIFY(second.value().n_prompt_reused >= 16);  // at least the system prompt's full pages
        QCOMPARE(int(ids.size()), 4);
    }

    // Three chats at once on the GPU: each gets its tokens; the same prompt
    // alone gives the same greedy reply (the GPU forward's rows do not depend
    // on the rest of the batch while each decode row stays on the matvec path;
    // prefix cache off so the alone run prefills the same way).
    void concurrentOnGpu()
    {
        auto params = [] {
            gb::GenerateParams p = greedy(8);
            p.reuse_prefix = false;
            return p;
        };
        std::unique_ptr<EngineBackend> b = EngineWorker::createGlassboxBackend();
        QVERIFY(b->load(m_model, cudaConfig(m_dir.filePath(QStringLiteral("cache"))), {}));
        b->setChatRequestOptions({true, "gpu"});
        const QStringList questions = {QStringLiteral("one two three"), QStringLiteral("four five six seven"),
                                       QStringLiteral("eight nine")};
        std::vector<QString> texts(3);
        int done = 0;
        for (int i = 0; i < questions.size(); ++i) {
            const std::vector<gb::ChatMessage> m = {{"user", questions[i].toStdString()}};
            QVERIFY(b->canStartConcurrent(params()));
            const gb::Status s = b->startChat(m, params(), {}, nullptr,
                                              [&, i](gb::Result<gb::GenerateResult> r, const ChatExtras &e) {
                                                  QVERIFY(r);
                                                  QVERIFY(e.batched);
                                                  texts[size_t(i)] = QString::fromStdString(r.value().text);
                                                  ++done;
                                              });
            QVERIFY2(s, s ? "" : s.error().message.c_str());
        }
        while (b->stepChats()) {
        }
        QCOMPARE(done, 3);
        QVERIFY(!b->hasActiveChats());
        for (int i = 0; i < questions.size(); ++i) {
            auto alone = b->chat({{"user", questions[i].toStdString()}}, params(), {}, nullptr);
            QVERIFY(alone);
            QCOMPARE(QString::fromStdString(alone.value().text), texts[size_t(i)]);
        }
    }

    // Partial offload (1 of 2 layers on the GPU): the Session path, not batched.
    void partialOffloadUsesSession()
    {
        std::unique_ptr<EngineBackend> b = EngineWorker::createGlassboxBackend();
        EngineConfig c = cudaConfig(m_dir.filePath(QStringLiteral("cache")));
        c.gpuLayers = 1;
        QVERIFY(b->load(m_model, c, {}));
        b->setChatRequestOptions({true, "gpu"});
        QVERIFY(!b->canStartConcurrent(greedy(4)));
        auto r = b->chat({{"user", "hello there"}}, greedy(4), {}, nullptr);
        QVERIFY2(r, r ? "" : r.error().message.c_str());
        QVERIFY(!b->lastChatExtras().batched);
        QCOMPARE(r.value().n_generated, 4);
    }
};

QTEST_GUILESS_MAIN(TestGlassboxBackendCuda)
#include "tst_glassbox_backend_cuda.moc"
