// The app's real engine backend (GlassboxBackend) on a synthetic model:
// requantize on load (whole model, per class, cached copy, progress,
// cancellation keeps the old model), KV cache type and CUDA backend (applied
// or refused with a message, the model kept), prefix cache off, speculative
// decoding's token origins against its statistics.
#include "engine_backend.h"
#include "engine_worker.h"

#include "glassbox/gguf.h"
#include "glassbox/model.h"
#include "glassbox/quant/requantize.h"
#include "glassbox/synth.h"

#include <QDir>
#include <QDirIterator>
#include <QFileInfo>
#include <QTemporaryDir>
#include <QtTest>

namespace {

template <typename P>
constexpr bool kHasKvType = requires(P p) { p.kv_type; };
constexpr bool kEngineHasKvType = kHasKvType<gb::ContextParams>;

EngineConfig baseConfig(const QString &cacheDir)
{
    EngineConfig c;
    c.contextLength = 256;
    c.threads = 2;
    c.requantizeDir = cacheDir;
    return c;
}

// Type of every 2-D weight of a class ("" : all), by tensor name.
QHash<QString, gb::TensorType> weightTypes(const QString &path, gb::quant::TensorClass only, bool all)
{
    QHash<QString, gb::TensorType> out;
    auto f = gb::gguf::File::open(path.toStdString());
    if (!f)
        return out;
    for (const gb::gguf::TensorInfo &t : f.value()->tensors())
        if (t.n_dims == 2 && (all || gb::quant::tensor_class_of(t.name) == only))
            out.insert(QString::fromStdString(t.name), t.type);
    return out;
}

}  // namespace

class TestGlassboxBackend : public QObject {
    Q_OBJECT
    QTemporaryDir m_dir;
    QString m_model;

    QString cacheDir() const { return m_dir.filePath(QStringLiteral("cache")); }

private slots:
    void initTestCase()
    {
        QVERIFY(m_dir.isValid());
        gb::Result<gb::SynthSpec> spec = gb::synth_preset("tiny-llama");
        QVERIFY(spec);
        spec.value().types = gb::synth_types("F16").value();
        m_model = m_dir.filePath(QStringLiteral("tiny-f16.gguf"));
        QVERIFY(gb::write_synthetic_model(spec.value(), m_model.toStdString(), {}, 2));
    }

    void asInTheFile()
    {
        std::unique_ptr<EngineBackend> b = EngineWorker::createGlassboxBackend();
        QVERIFY(b->load(m_model, baseConfig(cacheDir()), {}));
        const ModelInfo info = b->modelInfo();
        QCOMPARE(info.path, m_model);
        QCOMPARE(info.loadedFile, m_model);
        QCOMPARE(info.weightFormat, QStringLiteral("as in the file"));
        QCOMPARE(info.fileBytes, quint64(QFileInfo(m_model).size()));
        QVERIFY(info.weightBytes > 0 && info.weightBytes < info.fileBytes);
        QVERIFY(info.kvBytes > 0);
        QCOMPARE(info.backend, QStringLiteral("cpu"));
    }

    void requantizeOnLoad_data()
    {
        QTest::addColumn<QString>("base");
        QTest::addColumn<QString>("attention");
        QTest::addColumn<int>("attentionType");
        QTest::addColumn<int>("ffnType");
        QTest::newRow("whole model Q8_0") << "q8_0" << "base" << int(gb::TensorType::Q8_0) << int(gb::TensorType::Q8_0);
        QTest::newRow("attention only Q4_K") << "file" << "q4_k" << int(gb::TensorType::Q4_K) << int(gb::TensorType::F16);
        QTest::newRow("Q8_0, attention Q4_0") << "q8_0" << "q4_0" << int(gb::TensorType::Q4_0) << int(gb::TensorType::Q8_0);
    }

    void requantizeOnLoad()
    {
        QFETCH(QString, base);
        QFETCH(QString, attention);
        QFETCH(int, attentionType);
        QFETCH(int, ffnType);
        EngineWorker worker(EngineWorker::createGlassboxBackend());
        EngineConfig c = baseConfig(cacheDir());
        c.weightFormat = base;
        c.weightFormatAttention = attention;
        QSignalSpy progress(&worker, &EngineWorker::modelLoadProgress);
        QSignalSpy loaded(&worker, &EngineWorker::modelLoaded);
        worker.loadModel(m_model, c);
        QVERIFY(loaded.wait(60000));
        const ModelInfo info = loaded.first().at(1).value<ModelInfo>();
        QCOMPARE(info.path, m_model);  // the app still knows it as the original
        QVERIFY(info.loadedFile.startsWith(cacheDir()));
        QVERIFY(info.weightFormat.contains(QStringLiteral("Q")));
        QCOMPARE(info.fileBytes, quint64(QFileInfo(info.loadedFile).size()));
        QVERIFY(info.fileBytes < quint64(QFileInfo(m_model).size()));  // every choice is smaller than F16
        // Progress rises to 1.
        QVERIFY(progress.size() >= 2);
        double last = -1;
        for (const QList<QVariant> &p : progress) {
            QVERIFY(p.at(1).toDouble() >= last);
            last = p.at(1).toDouble();
        }
        QCOMPARE(last, 1.0);
        // The copy has the types asked for.
        const auto attn = weightTypes(info.loadedFile, gb::quant::TensorClass::Attention, false);
        const auto ffn = weightTypes(info.loadedFile, gb::quant::TensorClass::FeedForward, false);
        QVERIFY(!attn.isEmpty() && !ffn.isEmpty());
        for (gb::TensorType t : attn)
            QCOMPARE(int(t), attentionType);
        for (gb::TensorType t : ffn)
            QCOMPARE(int(t), ffnType);

        // Loading it again reuses the copy.
        const QDateTime written = QFileInfo(info.loadedFile).lastModified();
        loaded.clear();
        worker.loadModel(m_model, c);
        QVERIFY(loaded.wait(60000));
        QCOMPARE(loaded.first().at(1).value<ModelInfo>().loadedFile, info.loadedFile);
        QCOMPARE(QFileInfo(info.loadedFile).lastModified(), written);

        // And it generates.
        GenerationRequest r;
        r.messages = {ChatTurn{QStringLiteral("user"), QStringLiteral("abc")}};
        r.options.maxTokens = 3;
        r.options.temperature = 0;
        QSignalSpy finished(&worker, &EngineWorker::generationFinished);
        worker.generate(r);
        QVERIFY(finished.wait(60000));
        QVERIFY(finished.first().at(1).value<GenerationStats>().generatedTokens > 0);
    }

    // Cancelled while requantizing: an error, the model loaded before stays,
    // and no (partial) copy is left behind.
    void cancelRequantizeKeepsModel()
    {
        std::unique_ptr<EngineBackend> b = EngineWorker::createGlassboxBackend();
        const QString cache = m_dir.filePath(QStringLiteral("cancel-cache"));
        QVERIFY(b->load(m_model, baseConfig(cache), {}));
        EngineConfig c = baseConfig(cache);
        c.weightFormat = QStringLiteral("q6_k");
        int calls = 0;
        const gb::Status s = b->load(m_model, c, [&](float p) {
            ++calls;
            return p <= 0.0f;  // stop at the first step of real progress
        });
        QVERIFY(!s);
        QCOMPARE(s.error().code, gb::ErrorCode::Cancelled);
        QVERIFY(calls >= 1);
        QVERIFY(b->isLoaded());
        QCOMPARE(b->modelInfo().loadedFile, m_model);
        QStringList left;
        QDirIterator it(cache, {QStringLiteral("*.gguf*")}, QDir::Files, QDirIterator::Subdirectories);
        while (it.hasNext())
            left << it.next();
        QVERIFY2(left.isEmpty(), qPrintable(left.join(' ')));
    }

    // Q8_0 KV cache: applied when the engine has it, else refused with a
    // message and the model loaded before is kept.
    void kvCacheType()
    {
        std::unique_ptr<EngineBackend> b = EngineWorker::createGlassboxBackend();
        QVERIFY(b->load(m_model, baseConfig(cacheDir()), {}));
        const quint64 f16Bytes = b->modelInfo().kvBytes;
        // The probe tells the settings which types to offer.
        QCOMPARE(EngineWorker::probeBackends().kvCacheTypes.contains(QStringLiteral("q8_0")), kEngineHasKvType);
        EngineConfig c = baseConfig(cacheDir());
        c.kvCacheType = QStringLiteral("q8_0");
        const gb::Status s = b->load(m_model, c, {});
        if (kEngineHasKvType) {
            QVERIFY2(s, s ? "" : s.error().message.c_str());
            QCOMPARE(b->modelInfo().kvCacheType, QStringLiteral("q8_0"));
            QVERIFY(b->modelInfo().kvBytes < f16Bytes);
        } else {
            QVERIFY(!s);
            QVERIFY2(QString::fromStdString(s.error().message).contains(QStringLiteral("F16")), s.error().message.c_str());
            QVERIFY(b->isLoaded());
            QCOMPARE(b->modelInfo().kvCacheType, QStringLiteral("f16"));
            // A new session with it is refused too, and the old session stays.
            QVERIFY(!b->reconfigure(c));
            QVERIFY(b->isLoaded());
        }
    }

    // CUDA: used when the machine has it; otherwise a message, the CPU model kept.
    void cudaBackend()
    {
        const BackendReport probe = EngineWorker::probeBackends();
        QVERIFY(!probe.cudaMessage.isEmpty());
        std::unique_ptr<EngineBackend> b = EngineWorker::createGlassboxBackend();
        QVERIFY(b->load(m_model, baseConfig(cacheDir()), {}));
        EngineConfig c = baseConfig(cacheDir());
        c.backend = QStringLiteral("cuda");
        c.gpuLayers = -1;
        const gb::Status s = b->load(m_model, c, {});
        if (probe.cudaAvailable) {
            QVERIFY2(s, s ? "" : s.error().message.c_str());
            QCOMPARE(b->modelInfo().backend, QStringLiteral("cuda"));
        } else {
            QVERIFY(!s);
            QVERIFY(!s.error().message.empty());
            QVERIFY(b->isLoaded());
            QCOMPARE(b->modelInfo().backend, QStringLiteral("cpu"));
        }
    }

    // Prefix cache off: the whole prompt is prefilled again.
    // Both engine paths (the batching engine reuses whole pages of 16 tokens:
    // its prompt is longer).
    void prefixCacheSwitch_data()
    {
        QTest::addColumn<bool>("batching");
        QTest::addColumn<QString>("text");
        QTest::newRow("session") << false << QStringLiteral("abc def ghi");
        QTest::newRow("batch") << true
                               << QStringLiteral("abc def ghi jkl mno pqr stu vwx yz abc def ghi jkl mno pqr stu vwx");
    }
    void prefixCacheSwitch()
    {
        QFETCH(bool, batching);
        QFETCH(QString, text);
        std::unique_ptr<EngineBackend> b = EngineWorker::createGlassboxBackend();
        QVERIFY(b->load(m_model, baseConfig(cacheDir()), {}));
        b->setChatRequestOptions({batching, ""});
        const std::vector<gb::ChatMessage> messages = {{"user", text.toStdString()}};
        gb::GenerateParams p;
        p.sampling.temperature = 0;
        p.max_tokens = 2;
        auto first = b->chat(messages, p, {}, nullptr);
        QVERIFY(first);
        QCOMPARE(b->lastChatExtras().batched, batching);
        auto again = b->chat(messages, p, {}, nullptr);
        QVERIFY(again);
        QVERIFY(again.value().n_prompt_reused > 0);
        p.reuse_prefix = false;
        auto off = b->chat(messages, p, {}, nullptr);
        QVERIFY(off);
        QCOMPARE(off.value().n_prompt_reused, 0);
        QCOMPARE(off.value().text, again.value().text);  // the same greedy reply either way
        QCOMPARE(b->lastChatExtras().batched, batching);
    }

    // Speculative decoding: the streamed tokens' origins add up to the stats.
    void speculativeOrigins()
    {
        EngineWorker worker(EngineWorker::createGlassboxBackend());
        QSignalSpy loaded(&worker, &EngineWorker::modelLoaded);
        worker.loadModel(m_model, baseConfig(cacheDir()));
        QVERIFY(loaded.wait(60000));
        GenerationRequest r;
        r.messages = {ChatTurn{QStringLiteral("user"), QStringLiteral("a b c a b c a b c a b c")}};
        r.options.maxTokens = 24;
        r.options.temperature = 0;
        r.options.specMethod = QStringLiteral("lookup");
        r.options.specAdaptive = false;
        QSignalSpy tokens(&worker, &EngineWorker::tokenGenerated);
        QSignalSpy finished(&worker, &EngineWorker::generationFinished);
        worker.generate(r);
        QVERIFY(finished.wait(60000));
        const GenerationStats stats = finished.first().at(1).value<GenerationStats>();
        QCOMPARE(stats.specMethod, QStringLiteral("lookup"));
        qint64 drafted = 0;
        for (const QList<QVariant> &t : tokens)
            if (t.at(1).value<GeneratedToken>().source == TokenSource::Draft)
                ++drafted;
        qInfo("lookup: %lld proposed, %lld accepted, %lld emitted as drafts", stats.specProposed, stats.specAccepted,
              stats.specDraftTokens);
        QVERIFY(stats.specProposed > 0);  // the prompt repeats itself: n-grams to draft from
        QCOMPARE(drafted, stats.specDraftTokens);
        QVERIFY(stats.specDraftTokens <= stats.specAccepted);
    }
};

QTEST_GUILESS_MAIN(TestGlassboxBackend)
#include "tst_glassbox_backend.moc"
