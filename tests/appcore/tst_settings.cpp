// Settings: defaults, validation and clamping (data-driven), which keys need
// a reload, persistence through ChatStore, presets, conversion to engine and
// request parameters.
#include "chat_store.h"
#include "settings.h"
#include "store_test_util.h"

#include <QTemporaryDir>
#include <QtTest>

class TestSettings : public QObject {
    Q_OBJECT

private:
    QTemporaryDir m_dir;

private slots:
    void initTestCase() { QVERIFY(m_dir.isValid()); }

    void tableCoversEveryKey()
    {
        const QMetaEnum keys = QMetaEnum::fromType<Settings::Key>();
        QCOMPARE(Settings::descriptors().size(), keys.keyCount());
        QSet<QString> names;
        for (int i = 0; i < keys.keyCount(); ++i) {
            const Settings::Descriptor &d = Settings::descriptor(Settings::Key(keys.value(i)));
            QCOMPARE(int(d.key), keys.value(i));
            names.insert(d.name);
        }
        QCOMPARE(names.size(), keys.keyCount());  // store keys are unique
    }

    void setValue_data()
    {
        QTest::addColumn<int>("key");
        QTest::addColumn<QVariant>("input");
        QTest::addColumn<bool>("accepted");
        QTest::addColumn<QVariant>("stored");
        using K = Settings::Key;
        QTest::newRow("threads") << int(K::Threads) << QVariant(6) << true << QVariant(6);
        QTest::newRow("threads from text") << int(K::Threads) << QVariant("12") << true << QVariant(12);
        QTest::newRow("threads negative clamps") << int(K::Threads) << QVariant(-3) << true << QVariant(0);
        QTest::newRow("threads not a number") << int(K::Threads) << QVariant("many") << false << QVariant(0);
        QTest::newRow("threads fractional") << int(K::Threads) << QVariant(2.5) << false << QVariant(0);
        QTest::newRow("context too small") << int(K::ContextLength) << QVariant(10) << true << QVariant(256);
        QTest::newRow("temperature") << int(K::Temperature) << QVariant(0.3) << true << QVariant(0.3);
        QTest::newRow("temperature too high") << int(K::Temperature) << QVariant(50.0) << true << QVariant(5.0);
        QTest::newRow("top-p over one") << int(K::TopP) << QVariant(1.5) << true << QVariant(1.0);
        QTest::newRow("backend cuda") << int(K::Backend) << QVariant("cuda") << true << QVariant("cuda");
        QTest::newRow("backend unknown") << int(K::Backend) << QVariant("tpu") << false << QVariant("cpu");
        QTest::newRow("kv type") << int(K::KvCacheType) << QVariant("q8_0") << true << QVariant("q8_0");
        QTest::newRow("kv type unknown") << int(K::KvCacheType) << QVariant("f64") << false << QVariant("f16");
        QTest::newRow("system prompt") << int(K::SystemPrompt) << QVariant("be brief") << true << QVariant("be brief");
        QTest::newRow("kv type q4_0 gone") << int(K::KvCacheType) << QVariant("q4_0") << false << QVariant("f16");
        QTest::newRow("gpu layers all") << int(K::GpuLayers) << QVariant(-1) << true << QVariant(-1);
        QTest::newRow("gpu layers clamps") << int(K::GpuLayers) << QVariant(-7) << true << QVariant(-1);
        QTest::newRow("gpu layers some") << int(K::GpuLayers) << QVariant(12) << true << QVariant(12);
        QTest::newRow("weight format") << int(K::WeightFormat) << QVariant("q4_k") << true << QVariant("q4_k");
        QTest::newRow("weight format base is per class only")
            << int(K::WeightFormat) << QVariant("base") << false << QVariant("file");
        QTest::newRow("weight format unknown") << int(K::WeightFormat) << QVariant("q7_0") << false << QVariant("file");
        QTest::newRow("attention format") << int(K::WeightFormatAttention) << QVariant("q8_0") << true << QVariant("q8_0");
        QTest::newRow("output format file") << int(K::WeightFormatOutput) << QVariant("file") << true << QVariant("file");
        QTest::newRow("spec method") << int(K::SpecMethod) << QVariant("lookahead") << true << QVariant("lookahead");
        QTest::newRow("spec method unknown") << int(K::SpecMethod) << QVariant("medusa") << false << QVariant("none");
        QTest::newRow("draft max clamps") << int(K::SpecDraftMax) << QVariant(500) << true << QVariant(64);
        QTest::newRow("prefix cache off") << int(K::PrefixCache) << QVariant(false) << true << QVariant(false);
        QTest::newRow("prefix cache from text") << int(K::PrefixCache) << QVariant("false") << true << QVariant(false);
        QTest::newRow("prefix cache from 0") << int(K::PrefixCache) << QVariant(0) << true << QVariant(false);
        QTest::newRow("prefix cache not a bool") << int(K::PrefixCache) << QVariant("maybe") << false << QVariant(true);
        QTest::newRow("adaptive off") << int(K::SpecAdaptive) << QVariant(false) << true << QVariant(false);
    }

    // EngineConfig::requantizes(): any format other than the file's.
    void requantizes_data()
    {
        QTest::addColumn<QString>("base");
        QTest::addColumn<QString>("attention");
        QTest::addColumn<QString>("output");
        QTest::addColumn<bool>("requantizes");
        QTest::newRow("as stored") << "file" << "base" << "base" << false;
        QTest::newRow("classes as stored") << "file" << "file" << "file" << false;
        QTest::newRow("whole model") << "q8_0" << "base" << "base" << true;
        QTest::newRow("one class") << "file" << "q4_k" << "base" << true;
        QTest::newRow("classes back to the file") << "q8_0" << "file" << "file" << true;
    }

    void requantizes()
    {
        QFETCH(QString, base);
        QFETCH(QString, attention);
        QFETCH(QString, output);
        QFETCH(bool, requantizes);
        Settings s;
        QVERIFY(s.setValue(Settings::Key::WeightFormat, base));
        QVERIFY(s.setValue(Settings::Key::WeightFormatAttention, attention));
        QVERIFY(s.setValue(Settings::Key::WeightFormatOutput, output));
        QCOMPARE(s.engineConfig().requantizes(), requantizes);
    }

    void setValue()
    {
        QFETCH(int, key);
        QFETCH(QVariant, input);
        QFETCH(bool, accepted);
        QFETCH(QVariant, stored);
        Settings s;
        QSignalSpy changed(&s, &Settings::changed);
        QCOMPARE(s.setValue(Settings::Key(key), input), accepted);
        QCOMPARE(s.value(Settings::Key(key)), stored);
        const bool differs = accepted && stored != Settings::descriptor(Settings::Key(key)).defaultValue;
        QCOMPARE(changed.size(), differs ? 1 : 0);
        if (differs)
            QCOMPARE(changed.first().at(2).toBool(), Settings::needsReload(Settings::Key(key)));
    }

    void needsReload_data()
    {
        QTest::addColumn<int>("key");
        QTest::addColumn<bool>("reload");
        using K = Settings::Key;
        QTest::newRow("backend") << int(K::Backend) << true;
        QTest::newRow("gpu layers") << int(K::GpuLayers) << true;
        QTest::newRow("threads") << int(K::Threads) << true;
        QTest::newRow("context") << int(K::ContextLength) << true;
        QTest::newRow("kv type") << int(K::KvCacheType) << true;
        QTest::newRow("temperature") << int(K::Temperature) << false;
        QTest::newRow("max tokens") << int(K::MaxTokens) << false;
        QTest::newRow("system prompt") << int(K::SystemPrompt) << false;
        QTest::newRow("weight format") << int(K::WeightFormat) << true;
        QTest::newRow("embedding format") << int(K::WeightFormatEmbedding) << true;
        QTest::newRow("spec method") << int(K::SpecMethod) << false;
        QTest::newRow("draft model") << int(K::SpecDraftModel) << false;
        QTest::newRow("prefix cache") << int(K::PrefixCache) << false;
        QTest::newRow("batching") << int(K::Batching) << false;
        QTest::newRow("precise decode") << int(K::PreciseDecode) << true;
    }

    // Batching: on by default, per request; where it cannot run, a reason.
    void batching()
    {
        Settings s;
        QCOMPARE(s.value(Settings::Key::Batching).toBool(), true);
        QCOMPARE(s.generationOptions().batching, true);
        QVERIFY(s.setValue(Settings::Key::Batching, false));
        QCOMPARE(s.generationOptions().batching, false);
        QCOMPARE(s.generationOptions(QJsonObject{{"engine/batching", true}}).batching, true);
        QCOMPARE(Settings::batchingUnavailableReason(QStringLiteral("cpu"), QStringLiteral("none")), QString());
        // CUDA batches on the GPU with every layer there; partial offload stays on the Session, with the reason.
        QCOMPARE(Settings::batchingUnavailableReason(QStringLiteral("cuda"), QStringLiteral("none")), QString());
        QCOMPARE(Settings::batchingUnavailableReason(QStringLiteral("cuda"), QStringLiteral("none"), -1), QString());
        QVERIFY(Settings::batchingUnavailableReason(QStringLiteral("cuda"), QStringLiteral("none"), 4).contains("Partial offload"));
        QCOMPARE(Settings::batchingUnavailableReason(QStringLiteral("cpu"), QStringLiteral("none"), 4), QString());
        QVERIFY(Settings::batchingUnavailableReason(QStringLiteral("cpu"), QStringLiteral("lookup")).contains("Speculative"));
        // Precise decode (CUDA, 16-bit activations) runs on the Session; it means nothing on the CPU.
        QVERIFY(Settings::batchingUnavailableReason(QStringLiteral("cuda"), QStringLiteral("none"), -1, true).contains("Precise decode"));
        QCOMPARE(Settings::batchingUnavailableReason(QStringLiteral("cpu"), QStringLiteral("none"), -1, true), QString());
        // off by default, and what the engine is configured with
        QCOMPARE(s.value(Settings::Key::PreciseDecode).toBool(), false);
        QCOMPARE(s.engineConfig().preciseDecode, false);
        QVERIFY(s.setValue(Settings::Key::PreciseDecode, true));
        QCOMPARE(s.engineConfig().preciseDecode, true);
    }

    void needsReload()
    {
        QFETCH(int, key);
        QFETCH(bool, reload);
        QCOMPARE(Settings::needsReload(Settings::Key(key)), reload);
    }

    void persistsThroughStore()
    {
        const QString path = m_dir.filePath("settings.sqlite");
        {
            ChatStore store;
            QVERIFY(!storeResult(store, &ChatStore::opened, store.open(path)).isEmpty());
            Settings s(&store);
            QSignalSpy loaded(&s, &Settings::loaded);
            s.load();
            QVERIFY(loaded.wait(10000));
            QVERIFY(s.setValue(Settings::Key::Threads, 3));
            QVERIFY(s.setValue(Settings::Key::Temperature, 0.0));
            QVERIFY(s.setValue(Settings::Key::Seed, qint64(1) << 40));
            QVERIFY(s.setValue(Settings::Key::SystemPrompt, QStringLiteral("you are terse")));
            s.savePreset(QStringLiteral("pirate"), QStringLiteral("talk like a pirate"));
            QTRY_COMPARE(s.presets().size(), 1);
        }
        ChatStore store;
        QVERIFY(!storeResult(store, &ChatStore::opened, store.open(path)).isEmpty());
        Settings s(&store);
        QSignalSpy loaded(&s, &Settings::loaded);
        QSignalSpy changed(&s, &Settings::changed);
        QSignalSpy presets(&s, &Settings::presetsChanged);
        s.load();
        QVERIFY(loaded.wait(10000));
        QCOMPARE(s.threads(), 3);
        QCOMPARE(s.temperature(), 0.0);
        QCOMPARE(s.value(Settings::Key::Seed).toLongLong(), qint64(1) << 40);
        QCOMPARE(s.systemPrompt(), QStringLiteral("you are terse"));
        QCOMPARE(changed.size(), 4);
        QTRY_COMPARE(presets.size(), 1);
        QCOMPARE(s.presets().value(0).systemPrompt, QStringLiteral("talk like a pirate"));

        const EngineConfig c = s.engineConfig();
        QCOMPARE(c.threads, 3);
        QCOMPARE(c.contextLength, 4096);
        const GenerationOptions o = s.generationOptions({{"sampling/temperature", 0.7}, {"sampling/top_k", "x"}});
        QCOMPARE(o.temperature, 0.7);  // per-conversation override
        QCOMPARE(o.topK, 40);          // an invalid override falls back
        QCOMPARE(o.seed, quint64(1) << 40);

        s.removePreset(s.presets().value(0).id);
        QTRY_COMPARE(presets.size(), 2);
        QCOMPARE(s.presets().size(), 0);
    }
};

QTEST_GUILESS_MAIN(TestSettings)
#include "tst_settings.moc"
