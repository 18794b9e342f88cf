// EngineWorker with the real engine and gemma-3-270m: load with progress, a
// greedy reply through signals equal to calling gb::Session directly (the
// oracle), cancel mid-generation, bad model files give an error signal and the
// loaded model keeps working.
#include "engine_worker.h"

#include "glassbox/model.h"
#include "glassbox/session.h"

#include <QFile>
#include <QTemporaryDir>
#include <QtTest>

namespace {

const QString kModel = QStringLiteral(GLASSBOX_MODEL_DIR "/gemma-3-270m-q4_k_m.gguf");

GenerationRequest greedy(const QString &text, int maxTokens)
{
    GenerationRequest r;
    r.conversationId = 7;
    r.messages = {ChatTurn{QStringLiteral("user"), text}};
    r.options.temperature = 0.0;
    r.options.repeatPenalty = 1.0;
    r.options.maxTokens = maxTokens;
    r.options.topLogprobs = 3;
    return r;
}

EngineConfig smallConfig()
{
    EngineConfig c;
    c.contextLength = 512;
    return c;
}

// The same request straight through the engine API.
QString oracleReply(const QString &text, int maxTokens)
{
    auto model = gb::Model::load(kModel.toStdString());
    if (!model)
        return QStringLiteral("<load failed: %1>").arg(QString::fromStdString(model.error().message));
    gb::SessionParams sp;
    sp.context.n_ctx = 512;
    sp.overflow = gb::OverflowPolicy::DropOldestTurns;
    auto session = gb::Session::create(model.value(), sp);
    if (!session)
        return QStringLiteral("<session failed>");
    gb::GenerateParams gp;
    gp.sampling.temperature = 0.0f;
    gp.max_tokens = maxTokens;
    auto r = session.value()->chat({{"user", text.toStdString()}}, gp);
    return r ? QString::fromStdString(r.value().text) : QStringLiteral("<chat failed>");
}

}  // namespace

class TestEngineWorkerModel : public QObject {
    Q_OBJECT

private:
    std::unique_ptr<EngineWorker> m_worker;
    QTemporaryDir m_dir;

    QList<QVariant> generate(const GenerationRequest &r, QList<GeneratedToken> *tokens = nullptr)
    {
        QSignalSpy tokenSpy(m_worker.get(), &EngineWorker::tokenGenerated);
        QSignalSpy finished(m_worker.get(), &EngineWorker::generationFinished);
        QSignalSpy failed(m_worker.get(), &EngineWorker::generationFailed);
        m_worker->generate(r);
        if (!QTest::qWaitFor([&] { return !finished.isEmpty() || !failed.isEmpty(); }, 300000) || finished.isEmpty())
            return {};
        if (tokens)
            for (const QList<QVariant> &args : std::as_const(tokenSpy))
                tokens->append(args.at(1).value<GeneratedToken>());
        return finished.first();
    }

private slots:
    void initTestCase()
    {
        if (!QFile::exists(kModel))
            QSKIP("model file not found (set GLASSBOX_MODEL_DIR)");
        QVERIFY(m_dir.isValid());
        m_worker = std::make_unique<EngineWorker>(EngineWorker::createGlassboxBackend());
        QSignalSpy progress(m_worker.get(), &EngineWorker::modelLoadProgress);
        QSignalSpy loaded(m_worker.get(), &EngineWorker::modelLoaded);
        QSignalSpy failed(m_worker.get(), &EngineWorker::modelLoadFailed);
        m_worker->loadModel(kModel, smallConfig());
        QVERIFY(QTest::qWaitFor([&] { return !loaded.isEmpty() || !failed.isEmpty(); }, 120000));
        QVERIFY2(failed.isEmpty(), qPrintable(failed.value(0).value(1).toString()));
        const ModelInfo info = loaded.first().at(1).value<ModelInfo>();
        QVERIFY2(info.description.contains("gemma3"), qPrintable(info.description));
        QCOMPARE(info.architecture, QStringLiteral("gemma3"));
        QCOMPARE(info.contextLength, 512);
        for (int i = 1; i < progress.size(); ++i)
            QVERIFY(progress[i].at(1).toDouble() >= progress[i - 1].at(1).toDouble());
    }

    void greedyReplyMatchesEngine()
    {
        QList<GeneratedToken> tokens;
        const QList<QVariant> done = generate(greedy(QStringLiteral("What is the capital of France?"), 16), &tokens);
        QVERIFY(!done.isEmpty());
        const QString text = done.at(2).toString();
        const GenerationStats stats = done.at(1).value<GenerationStats>();
        QVERIFY(!text.isEmpty());
        QCOMPARE(text, oracleReply(QStringLiteral("What is the capital of France?"), 16));
        QString joined;
        for (const GeneratedToken &t : std::as_const(tokens)) {
            joined += t.text;
            QCOMPARE(t.top.size(), 3);
            QCOMPARE(t.top[0].tokenId, t.tokenId);  // greedy picks the most likely token
            QVERIFY(t.logprob <= 0.0f);
        }
        QCOMPARE(joined, text);
        QCOMPARE(stats.generatedTokens, int(tokens.size()));
        QVERIFY(stats.promptTokens > 0);
    }

    void cancelMidGeneration()
    {
        const GenerationRequest r = greedy(QStringLiteral("Write a long story about a dragon and a knight."), 48);
        const QList<QVariant> full = generate(r);
        QVERIFY(!full.isEmpty());
        const QString fullText = full.at(2).toString();

        QSignalSpy tokens(m_worker.get(), &EngineWorker::tokenGenerated);
        QSignalSpy finished(m_worker.get(), &EngineWorker::generationFinished);
        const quint64 id = m_worker->generate(r);
        QVERIFY(tokens.wait(120000));
        m_worker->cancel(id);
        QVERIFY(finished.wait(120000));
        const GenerationStats stats = finished.first().at(1).value<GenerationStats>();
        QCOMPARE(stats.stopReason, QStringLiteral("cancelled"));
        QVERIFY(stats.generatedTokens < full.at(1).value<GenerationStats>().generatedTokens);
        QVERIFY2(fullText.startsWith(finished.first().at(2).toString()), "a cancelled reply is a prefix of the full one");
    }

    void badFiles_data()
    {
        QTest::addColumn<QString>("kind");
        QTest::newRow("truncated gguf") << "truncated";
        QTest::newRow("text renamed .gguf") << "text";
        QTest::newRow("empty file") << "empty";
        QTest::newRow("missing file") << "missing";
    }

    void badFiles()
    {
        QFETCH(QString, kind);
        const QString path = m_dir.filePath(kind + QStringLiteral(".gguf"));
        if (kind != "missing") {
            QFile out(path);
            QVERIFY(out.open(QIODevice::WriteOnly));
            if (kind == "truncated") {
                QFile in(kModel);
                QVERIFY(in.open(QIODevice::ReadOnly));
                out.write(in.read(1 << 20));
            } else if (kind == "text") {
                out.write("This is a README, not a model.\n");
            }
        }
        QSignalSpy failed(m_worker.get(), &EngineWorker::modelLoadFailed);
        m_worker->loadModel(path, smallConfig());
        QVERIFY(failed.wait(60000));
        const QString message = failed.first().at(1).toString();
        QVERIFY2(message.startsWith(QStringLiteral("Could not load the model %1.gguf: ").arg(kind)), qPrintable(message));
        // The model loaded before is still there and works.
        QVERIFY(m_worker->isModelLoaded());
        QCOMPARE(m_worker->modelInfo().path, kModel);
        const QList<QVariant> done = generate(greedy(QStringLiteral("Hi"), 4));
        QVERIFY(!done.isEmpty());
        QVERIFY(done.at(1).value<GenerationStats>().generatedTokens > 0);
    }

    void cleanupTestCase() { m_worker.reset(); }
};

QTEST_GUILESS_MAIN(TestEngineWorkerModel)
#include "tst_engine_worker_model.moc"
