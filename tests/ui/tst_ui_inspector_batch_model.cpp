// The inspector fed by the app's real batching engine (gemma-3-270m): after a
// reply, the KV snapshot holds the request (label, prompt, prefix hit,
// generated count), its computed pages as cached pages under tree nodes it
// shares, steps whose composition adds up to the tokens it computed; a second
// turn's prefix hit equals the reply's stats; the latency view has the queue time.
#include "engine_worker.h"
#include "inspector_host.h"

#include "inspector/kv_trace.h"
#include "inspector/snapshot.h"

#include <QFile>
#include <QSignalSpy>
#include <QtTest>

namespace {

const QString kModel = QStringLiteral(GLASSBOX_MODEL_DIR "/gemma-3-270m-q4_k_m.gguf");

const gb::ui::KvRequest *findRequest(const gb::ui::KvTrace &kv, qint64 id)
{
    for (const gb::ui::KvRequest &r : kv.requests)
        if (r.id == id)
            return &r;
    return nullptr;
}

}  // namespace

class TestUiInspectorBatchModel : public QObject {
    Q_OBJECT
private slots:
    void kvSnapshotFromTheBatchingEngine()
    {
        if (!QFile::exists(kModel))
            QSKIP("model file not found (set GLASSBOX_MODEL_DIR)");
        EngineWorker engine(EngineWorker::createGlassboxBackend());
        InspectorHost host(&engine);
        EngineConfig config;
        config.contextLength = 1024;
        config.threads = 2;
        QSignalSpy loaded(&engine, &EngineWorker::modelLoaded);
        engine.loadModel(kModel, config);
        QVERIFY(loaded.wait(120000));

        GenerationRequest req;
        req.conversationId = 5;
        req.messages = {{QStringLiteral("user"), QStringLiteral("Describe a lighthouse in two sentences.")}};
        req.options.temperature = 0.0;
        req.options.maxTokens = 24;
        req.options.batching = true;
        QSignalSpy finished(&engine, &EngineWorker::generationFinished);
        const quint64 id1 = engine.generate(req);
        QVERIFY(finished.wait(120000));
        const GenerationStats s1 = finished.takeFirst().at(1).value<GenerationStats>();
        QCOMPARE(s1.enginePath, QStringLiteral("batch"));
        QVERIFY(s1.engineRequestId >= 0);

        QTRY_VERIFY(host.latestSnapshot() && host.latestSnapshot()->kv &&
                    findRequest(*host.latestSnapshot()->kv, s1.engineRequestId));
        auto snap = host.latestSnapshot();
        const gb::ui::KvTrace &kv = *snap->kv;
        QCOMPARE(kv.source, std::string("paged-KV scheduler"));
        QVERIFY(kv.hasTree);
        QCOMPARE(kv.pageSize, 16);
        QCOMPARE(kv.nPages, 1024 / 16);
        const gb::ui::KvRequest *r = findRequest(kv, s1.engineRequestId);
        QCOMPARE(QString::fromStdString(r->label), QStringLiteral("chat 5, request %1").arg(id1));
        QCOMPARE(r->promptTokens, s1.promptTokens);
        QCOMPARE(r->prefixHitTokens, 0);
        QCOMPARE(r->generated, s1.generatedTokens);
        QVERIFY(r->state == "finished" || r->state == "cancelled");

        // Its computed tokens: the prompt and the reply less its last token.
        const int computed = s1.promptTokens + s1.generatedTokens - 1;
        int cached = 0, used = 0;
        for (gb::ui::PageState st : kv.pageState) {
            cached += st == gb::ui::PageState::Cached;
            used += st == gb::ui::PageState::Used || st == gb::ui::PageState::Shared;
        }
        QCOMPARE(used, 0);
        QCOMPARE(cached, computed / 16);
        int sharedPages = 0;
        for (const gb::ui::KvTreeNode &n : kv.tree)
            if (std::find(n.sharers.begin(), n.sharers.end(), s1.engineRequestId) != n.sharers.end())
                sharedPages += n.nPages;
        QCOMPARE(sharedPages, computed / 16);
        int stepTokens = 0;
        for (size_t i = 0; i < kv.steps.size(); ++i)
            for (const gb::ui::BatchPart &p : kv.steps[i].parts)
                if (p.request == s1.engineRequestId)
                    stepTokens += p.nTokens;
        QCOMPARE(stepTokens, computed);

        // The latency view got the queue time of the reply.
        QTRY_VERIFY(!host.latestSnapshot()->requests.empty() && host.latestSnapshot()->requests.back()->finished);
        QCOMPARE(host.latestSnapshot()->requests.back()->tQueueMs, s1.queueMs > 0.0 ? s1.queueMs : 0.0);

        // Second turn: the hit shown equals the reply's stats.
        GenerationRequest req2 = req;
        req2.messages.append({QStringLiteral("assistant"), QStringLiteral("It stands on the rocks.")});
        req2.messages.append({QStringLiteral("user"), QStringLiteral("And at night?")});
        engine.generate(req2);
        QVERIFY(finished.wait(120000));
        const GenerationStats s2 = finished.takeFirst().at(1).value<GenerationStats>();
        QVERIFY(s2.promptTokensReused > 0);
        QTRY_VERIFY(findRequest(*host.latestSnapshot()->kv, s2.engineRequestId));
        QCOMPARE(findRequest(*host.latestSnapshot()->kv, s2.engineRequestId)->prefixHitTokens, s2.promptTokensReused);
    }
};

QTEST_MAIN(TestUiInspectorBatchModel)
#include "tst_ui_inspector_batch_model.moc"
