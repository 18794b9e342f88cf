// QuantLab: the quantization lab of the app, over the engine's own code
// (gb::quant: requantize_file, GPTQ, evaluate_variants - the same as
// `glassbox-cli quantize` / `eval`). One job at a time on its own thread:
// write the requested variants of a model, then evaluate all of them against
// the first (the reference); progress, cancellation, results as table rows.
#pragma once

#include <QList>
#include <QMetaType>
#include <QObject>
#include <QString>

#include <atomic>
#include <memory>

class QThread;

// One variant of the lab's table: an existing GGUF file, or one written from
// the source model in a weight format (optionally with GPTQ).
struct QuantVariantSpec {
    QString name;           // "Q8_0", "GPTQ-Q4_0 g32", "original"
    QString path;           // an existing file (used as is when format is empty)
    QString format;         // "" : use path; else the whole model's format (as Settings::weightFormats)
    QString attention, feedForward, embedding, output;  // per class ("" : as format)
    bool gptq = false;      // GPTQ (or importance-weighted RTN) for attention/ffn weights
    bool weightedRtn = false;
    QString gptqType = QStringLiteral("q4_0");  // q4_0 | q4_k
    int gptqGroup = 32;     // 32 | 64 | 128
    bool actOrder = false;
};

struct QuantLabRequest {
    QString sourcePath;     // the model the variants are written from
    QString outputDir;      // where written variants go (<stem>.<name>.gguf)
    QList<QuantVariantSpec> variants;  // [0] is the reference
    QString evalText;       // perplexity / KLD text
    QString calibText;      // GPTQ calibration text ("" : the first half of evalText)
    int contextLength = 512;
    int maxChunks = 0;      // 0: all
    int threads = 0;
    bool evaluate = true;   // false: only write the variants
};

struct QuantLabRow {
    QString name;
    QString path;
    quint64 fileBytes = 0;
    quint64 memoryBytes = 0;  // weights + the evaluation context's KV cache
    double ppl = 0.0;
    double kldMean = 0.0, kldP50 = 0.0, kldP90 = 0.0, kldP99 = 0.0, kldMax = 0.0;
    double sameTopPct = 0.0;
    double dpMean = 0.0;    // mean change of the correct token's probability
    double prefillTokS = 0.0, decodeTokS = 0.0;
    qint64 scored = 0;
    bool reference = false;
};

Q_DECLARE_METATYPE(QuantLabRow)

class QuantLab : public QObject {
    Q_OBJECT
public:
    explicit QuantLab(QObject *parent = nullptr);
    ~QuantLab() override;  // cancels and waits for the job

    // False (and nothing starts) while a job runs or when the request is empty.
    bool start(const QuantLabRequest &request);
    void cancel();
    bool isRunning() const { return m_thread != nullptr; }

signals:
    // fraction in [0, 1], or -1 while the share of the stage is not known.
    void progress(double fraction, const QString &stage);
    void variantWritten(const QString &name, const QString &path, quint64 bytes, const QString &plan);
    void finished(const QList<QuantLabRow> &rows, const QString &markdown);
    void failed(const QString &message, bool cancelled);

private:
    void run(const QuantLabRequest &request, const std::shared_ptr<std::atomic<bool>> &cancel);
    void done();

    QThread *m_thread = nullptr;
    std::shared_ptr<std::atomic<bool>> m_cancel;
};
