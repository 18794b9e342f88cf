// QuantLab (the app's quantization lab) on a synthetic F16 model: writes
// Q8_0 / Q4_0 / GPTQ variants and evaluates them against the reference;
// write-only runs, cancellation and bad input (unknown format, calibration
// text too short) give clear failures.
#include "quant_lab.h"

#include "glassbox/gguf.h"
#include "glassbox/synth.h"

#include <QFile>
#include <QFileInfo>
#include <QTemporaryDir>
#include <QtTest>

namespace {

QString sampleText()
{
    QFile f(QStringLiteral(GLASSBOX_SOURCE_DIR "/resources/text/perplexity_sample.txt"));
    return f.open(QIODevice::ReadOnly) ? QString::fromUtf8(f.readAll()) : QString();
}

QuantVariantSpec variant(const QString &name, const QString &format, const QString &path = {})
{
    QuantVariantSpec v;
    v.name = name;
    v.format = format;
    v.path = path;
    return v;
}

}  // namespace

class TestQuantLab : public QObject {
    Q_OBJECT
    QTemporaryDir m_dir;
    QString m_model;
    QString m_text;

    QuantLabRequest request(const QString &out) const
    {
        QuantLabRequest r;
        r.sourcePath = m_model;
        r.outputDir = m_dir.filePath(out);
        r.evalText = m_text;
        r.contextLength = 128;
        r.maxChunks = 3;
        r.threads = 2;
        return r;
    }

private slots:
    void initTestCase()
    {
        QVERIFY(m_dir.isValid());
        m_text = sampleText();
        QVERIFY(m_text.size() > 1000);
        gb::Result<gb::SynthSpec> spec = gb::synth_preset("tiny-llama");
        QVERIFY(spec);
        spec.value().types = gb::synth_types("F16").value();
        m_model = m_dir.filePath(QStringLiteral("tiny-f16.gguf"));
        QVERIFY(gb::write_synthetic_model(spec.value(), m_model.toStdString(), {}, 2));
    }

    void writesAndEvaluates()
    {
        QuantLab lab;
        QuantLabRequest r = request(QStringLiteral("eval"));
        QuantVariantSpec gptq = variant(QStringLiteral("GPTQ Q4_0"), QStringLiteral("file"));
        gptq.gptq = true;
        gptq.gptqType = QStringLiteral("q4_0");
        r.variants = {variant(QStringLiteral("F16 (file)"), {}, m_model), variant(QStringLiteral("Q8_0"), QStringLiteral("q8_0")),
                      variant(QStringLiteral("Q4_0"), QStringLiteral("q4_0")), gptq};
        QSignalSpy written(&lab, &QuantLab::variantWritten);
        QSignalSpy progress(&lab, &QuantLab::progress);
        QSignalSpy finished(&lab, &QuantLab::finished);
        QSignalSpy failed(&lab, &QuantLab::failed);
        QVERIFY(lab.start(r));
        QVERIFY(lab.isRunning());
        QVERIFY(!lab.start(r));  // one job at a time
        QVERIFY(finished.wait(300000) || !failed.isEmpty());
        QVERIFY2(failed.isEmpty(), failed.isEmpty() ? "" : qPrintable(failed.first().at(0).toString()));
        QVERIFY(!lab.isRunning());
        QCOMPARE(written.size(), 3);
        QVERIFY(progress.size() >= 3);

        const QList<QuantLabRow> rows = finished.first().at(0).value<QList<QuantLabRow>>();
        QCOMPARE(rows.size(), 4);
        QVERIFY(rows[0].reference);
        QCOMPARE(rows[0].kldMean, 0.0);         // the reference against itself
        QCOMPARE(rows[0].sameTopPct, 100.0);
        for (const QuantLabRow &row : rows) {
            QVERIFY(row.scored > 0);
            QVERIFY(row.ppl > 1.0);
            QCOMPARE(row.fileBytes, quint64(QFileInfo(row.path).size()));
            QVERIFY(QFile::exists(row.path));
        }
        // Fewer bits: smaller files, further from the reference.
        QVERIFY(rows[2].fileBytes < rows[1].fileBytes);
        QVERIFY(rows[1].fileBytes < rows[0].fileBytes);
        QVERIFY(rows[1].kldMean > 0.0);
        QVERIFY(rows[1].kldMean < rows[2].kldMean);
        // The GPTQ file records how it was made.
        auto f = gb::gguf::File::open(rows[3].path.toStdString());
        QVERIFY(f);
        QVERIFY(f.value()->get_string("glassbox.quantization.plan").has_value());
        const QString markdown = finished.first().at(1).toString();
        QVERIFY(markdown.contains(QStringLiteral("Q8_0")) && markdown.contains(QStringLiteral("GPTQ Q4_0")));
    }

    void writeOnly()
    {
        QuantLab lab;
        QuantLabRequest r = request(QStringLiteral("write"));
        r.evaluate = false;
        r.evalText.clear();
        r.variants = {variant(QStringLiteral("Q6_K"), QStringLiteral("q6_k"))};
        QSignalSpy finished(&lab, &QuantLab::finished);
        QVERIFY(lab.start(r));
        QVERIFY(finished.wait(120000));
        const QList<QuantLabRow> rows = finished.first().at(0).value<QList<QuantLabRow>>();
        QCOMPARE(rows.size(), 1);
        QCOMPARE(rows[0].scored, qint64(0));
        auto f = gb::gguf::File::open(rows[0].path.toStdString());
        QVERIFY(f);
        bool anyQ6 = false;
        for (const gb::gguf::TensorInfo &t : f.value()->tensors())
            anyQ6 = anyQ6 || t.type == gb::TensorType::Q6_K;
        QVERIFY(anyQ6);
    }

    void cancel()
    {
        QuantLab lab;
        QuantLabRequest r = request(QStringLiteral("cancel"));
        r.variants = {variant(QStringLiteral("F16"), {}, m_model), variant(QStringLiteral("Q8_0"), QStringLiteral("q8_0")),
                      variant(QStringLiteral("Q4_K"), QStringLiteral("q4_k"))};
        QSignalSpy failed(&lab, &QuantLab::failed);
        QSignalSpy finished(&lab, &QuantLab::finished);
        QVERIFY(lab.start(r));
        lab.cancel();
        QVERIFY(failed.wait(120000));
        QVERIFY(finished.isEmpty());
        QCOMPARE(failed.first().at(1).toBool(), true);
        QVERIFY(!lab.isRunning());
        // Usable again.
        r.variants = {variant(QStringLiteral("Q8_0"), QStringLiteral("q8_0"))};
        r.evaluate = false;
        QVERIFY(lab.start(r));
        QVERIFY(finished.wait(120000));
    }

    void badInput_data()
    {
        QTest::addColumn<QString>("format");
        QTest::addColumn<bool>("gptq");
        QTest::addColumn<QString>("calib");
        QTest::addColumn<QString>("expected");
        QTest::newRow("unknown format") << "q7_0" << false << QString() << "q7_0";
        QTest::newRow("calibration too short") << "file" << true << "too short" << "calib";
        QTest::newRow("missing file") << "" << false << QString() << "no such file";
    }

    void badInput()
    {
        QFETCH(QString, format);
        QFETCH(bool, gptq);
        QFETCH(QString, calib);
        QFETCH(QString, expected);
        QuantLab lab;
        QuantLabRequest r = request(QStringLiteral("bad"));
        r.calibText = calib;
        QuantVariantSpec v = variant(QStringLiteral("bad variant"), format, m_dir.filePath(QStringLiteral("nothing.gguf")));
        v.gptq = gptq;
        r.variants = {v};
        QSignalSpy failed(&lab, &QuantLab::failed);
        QVERIFY(lab.start(r));
        QVERIFY(failed.wait(120000));
        const QString message = failed.first().at(0).toString();
        QVERIFY2(message.contains(QStringLiteral("bad variant")), qPrintable(message));
        QVERIFY2(message.contains(expected, Qt::CaseInsensitive), qPrintable(message));
        QCOMPARE(failed.first().at(1).toBool(), false);
    }
};

QTEST_GUILESS_MAIN(TestQuantLab)
#include "tst_quant_lab.moc"
