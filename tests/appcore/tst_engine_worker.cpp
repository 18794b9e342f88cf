// EngineWorker over a fake engine: signals and their order, load progress,
// a failed load keeps the previous model, cancellation (running, queued, a
// load waiting behind a generation), no model, destruction mid-generation.
#include "engine_worker.h"
#include "fake_backend.h"

#include <QtTest>

class TestEngineWorker : public QObject {
    Q_OBJECT

private:
    static GenerationRequest request(const QString &text, qint64 conversationId = 1)
    {
        GenerationRequest r;
        r.conversationId = conversationId;
        r.messages = {ChatTurn{QStringLiteral("user"), text}};
        r.options.topLogprobs = 3;
        return r;
    }
    static bool load(EngineWorker &w, const QString &path)
    {
        QSignalSpy loaded(&w, &EngineWorker::modelLoaded);
        w.loadModel(path, EngineConfig{});
        return loaded.wait(10000);
    }

private slots:
    void loadReportsProgressAndInfo()
    {
        EngineWorker w(std::make_unique<FakeBackend>(std::make_shared<FakeBackendControl>()));
        QSignalSpy started(&w, &EngineWorker::modelLoadStarted);
        QSignalSpy progress(&w, &EngineWorker::modelLoadProgress);
        QSignalSpy loaded(&w, &EngineWorker::modelLoaded);
        EngineConfig config;
        config.contextLength = 1234;
        const quint64 id = w.loadModel(QStringLiteral("/m/x.gguf"), config);
        QVERIFY(w.isLoading());
        QVERIFY(loaded.wait(10000));
        QCOMPARE(started.size(), 1);
        QCOMPARE(progress.size(), 4);
        QCOMPARE(progress.last().at(1).toDouble(), 1.0);
        QCOMPARE(loaded.first().at(0).toULongLong(), id);
        const ModelInfo info = loaded.first().at(1).value<ModelInfo>();
        QCOMPARE(info.description, QStringLiteral("fake 1M F32"));
        QCOMPARE(info.contextLength, 1234);
        QVERIFY(w.isModelLoaded());
        QVERIFY(!w.isLoading());
    }

    void failedLoadKeepsModel()
    {
        EngineWorker w(std::make_unique<FakeBackend>(std::make_shared<FakeBackendControl>()));
        QVERIFY(load(w, QStringLiteral("/m/good.gguf")));
        QSignalSpy failed(&w, &EngineWorker::modelLoadFailed);
        w.loadModel(QStringLiteral("/m/broken.bad"), EngineConfig{});
        QVERIFY(failed.wait(10000));
        const QString message = failed.first().at(1).toString();
        QVERIFY2(message.startsWith("Could not load the model broken.bad: ") && message.contains("bad magic"),
                 qPrintable(message));
        QVERIFY(w.isModelLoaded());
        QCOMPARE(w.modelInfo().path, QStringLiteral("/m/good.gguf"));
        QSignalSpy finished(&w, &EngineWorker::generationFinished);
        w.generate(request("still here"));
        QVERIFY(finished.wait(10000));
        QCOMPARE(finished.first().at(2).toString(), QStringLiteral("echo still here #1"));
    }

    void tokensThenFinished()
    {
        EngineWorker w(std::make_unique<FakeBackend>(std::make_shared<FakeBackendControl>()));
        QVERIFY(load(w, QStringLiteral("/m/a.gguf")));
        QSignalSpy started(&w, &EngineWorker::generationStarted);
        QSignalSpy tokens(&w, &EngineWorker::tokenGenerated);
        QSignalSpy finished(&w, &EngineWorker::generationFinished);
        const quint64 id = w.generate(request("one two three", 42));
        QVERIFY(w.isGenerating(id));
        QVERIFY(finished.wait(10000));
        QVERIFY(!w.isGenerating(id));
        QCOMPARE(started.size(), 1);
        QCOMPARE(started.first().at(1).toLongLong(), qint64(42));
        QString text;
        for (const QList<QVariant> &args : std::as_const(tokens)) {
            QCOMPARE(args.at(0).toULongLong(), id);
            const GeneratedToken t = args.at(1).value<GeneratedToken>();
            QCOMPARE(t.top.size(), 3);
            QCOMPARE(t.top[0].text, QStringLiteral("t%1").arg(t.tokenId));
            text += t.text;
        }
        QCOMPARE(text, finished.first().at(2).toString());
        const GenerationStats stats = finished.first().at(1).value<GenerationStats>();
        QCOMPARE(stats.generatedTokens, int(tokens.size()));
        QCOMPARE(stats.stopReason, QStringLiteral("eog"));
        QCOMPARE(stats.modelDescription, QStringLiteral("fake 1M F32"));
        QCOMPARE(stats.tokensPerSecond, 1000.0);  // fake: (n - 1) tokens in (n - 1) ms after the first
    }

    void cancelRunningAndQueued()
    {
        auto control = std::make_shared<FakeBackendControl>();
        EngineWorker w(std::make_unique<FakeBackend>(control));
        QVERIFY(load(w, QStringLiteral("/m/a.gguf")));
        control->holdAfterTokens = 1;
        QSignalSpy tokens(&w, &EngineWorker::tokenGenerated);
        QSignalSpy finished(&w, &EngineWorker::generationFinished);
        const quint64 first = w.generate(request("alpha beta gamma"));
        const quint64 second = w.generate(request("queued one"));
        const quint64 third = w.generate(request("runs after"));
        QTRY_COMPARE(tokens.size(), 1);
        w.cancel(second);  // still queued
        control->holdAfterTokens = -1;
        w.cancel(first);   // running: the engine sees the flag at once
        QTRY_COMPARE(finished.size(), 3);
        QCOMPARE(finished[0].at(0).toULongLong(), first);
        QCOMPARE(finished[0].at(1).value<GenerationStats>().stopReason, QStringLiteral("cancelled"));
        QCOMPARE(finished[0].at(2).toString(), QStringLiteral("echo"));
        QCOMPARE(finished[1].at(0).toULongLong(), second);
        QCOMPARE(finished[1].at(1).value<GenerationStats>().stopReason, QStringLiteral("cancelled"));
        QCOMPARE(finished[1].at(2).toString(), QString());
        QCOMPARE(finished[2].at(0).toULongLong(), third);
        QCOMPARE(finished[2].at(2).toString(), QStringLiteral("echo runs after #2"));  // the second never ran
        w.cancel(third);  // finished: nothing happens
    }

    void cancelLoadQueuedBehindGeneration()
    {
        auto control = std::make_shared<FakeBackendControl>();
        EngineWorker w(std::make_unique<FakeBackend>(control));
        QVERIFY(load(w, QStringLiteral("/m/a.gguf")));
        control->holdAfterTokens = 0;
        QSignalSpy started(&w, &EngineWorker::generationStarted);
        QSignalSpy failed(&w, &EngineWorker::modelLoadFailed);
        w.generate(request("hold"));
        QVERIFY(started.wait(10000));
        w.loadModel(QStringLiteral("/m/other.gguf"), EngineConfig{});
        w.cancelLoad();
        control->released = true;
        QVERIFY(failed.wait(10000));
        QCOMPARE(failed.first().at(1).toString(), QStringLiteral("Loading other.gguf was cancelled."));
        QCOMPARE(w.modelInfo().path, QStringLiteral("/m/a.gguf"));
    }

    void noModel()
    {
        EngineWorker w(std::make_unique<FakeBackend>(std::make_shared<FakeBackendControl>()));
        QSignalSpy failed(&w, &EngineWorker::generationFailed);
        const quint64 id = w.generate(request("hello"));
        QVERIFY(failed.wait(10000));
        QCOMPARE(failed.first().at(0).toULongLong(), id);
        QVERIFY(failed.first().at(1).toString().startsWith("No model is loaded"));
    }

    void destroyWhileGenerating()
    {
        auto control = std::make_shared<FakeBackendControl>();
        auto w = std::make_unique<EngineWorker>(std::make_unique<FakeBackend>(control));
        QVERIFY(load(*w, QStringLiteral("/m/a.gguf")));
        control->holdAfterTokens = 0;  // would wait forever if not cancelled
        QSignalSpy started(w.get(), &EngineWorker::generationStarted);
        w->generate(request("forever"));
        QVERIFY(started.wait(10000));
        w.reset();  // returns: the destructor cancels and joins
        QCOMPARE(control->calls.load(), 1);
    }
};

QTEST_GUILESS_MAIN(TestEngineWorker)
#include "tst_engine_worker.moc"
