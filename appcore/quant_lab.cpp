// QuantLab: the job thread (requantize / GPTQ each variant, then evaluate)
// and its signals back on the owner's thread.
#include "quant_lab.h"

#include "glassbox/quant/eval.h"
#include "glassbox/quant/requantize.h"

#include <QDir>
#include <QFileInfo>
#include <QThread>

#include <algorithm>
#include <new>

namespace {

gb::Result<gb::quant::Format> formatFrom(const QString &name)
{
    if (name.isEmpty() || name == QLatin1String("file"))
        return gb::quant::Format{};
    return gb::quant::parse_format(name.toStdString());
}

// A name usable in a file name.
QString fileTag(const QString &name)
{
    QString t;
    for (const QChar c : name)
        t += c.isLetterOrNumber() ? c : QLatin1Char('_');
    return t;
}

gb::Result<gb::quant::RequantizeParams> paramsFor(const QuantVariantSpec &v, const QuantLabRequest &r)
{
    gb::quant::RequantizeParams p;
    gb::Result<gb::quant::Format> base = formatFrom(v.format);
    if (!base)
        return base.error();
    p.plan.base = base.value();
    const std::pair<gb::quant::TensorClass, QString> classes[] = {
        {gb::quant::TensorClass::Attention, v.attention},
        {gb::quant::TensorClass::FeedForward, v.feedForward},
        {gb::quant::TensorClass::Embedding, v.embedding},
        {gb::quant::TensorClass::Output, v.output},
    };
    for (const auto &[cls, name] : classes) {
        if (name.isEmpty() || name == QLatin1String("base"))
            continue;
        gb::Result<gb::quant::Format> f = formatFrom(name);
        if (!f)
            return f.error();
        p.plan.by_class[cls] = f.value();
    }
    p.n_threads = r.threads;
    if (v.gptq || v.weightedRtn) {
        gb::quant::GptqOptions &g = p.gptq;
        g.enabled = true;
        g.weighted_rtn = v.weightedRtn;
        if (!gb::type_from_name(v.gptqType.toUpper().toStdString().c_str(), &g.type))
            return gb::make_error(gb::ErrorCode::InvalidArgument, "unknown GPTQ type \"" + v.gptqType.toStdString() + "\"");
        g.params.group_size = v.gptqGroup;
        g.params.act_order = v.actOrder;
        g.params.n_threads = r.threads;
        g.calib_text = (r.calibText.isEmpty() ? r.evalText.left(r.evalText.size() / 2) : r.calibText).toStdString();
        g.calib_ctx = r.contextLength;
    }
    return p;
}

}  // namespace

QuantLab::QuantLab(QObject *parent)
    : QObject(parent)
{
    qRegisterMetaType<QuantLabRow>();
    qRegisterMetaType<QList<QuantLabRow>>();
}

QuantLab::~QuantLab()
{
    if (m_thread) {
        m_cancel->store(true);
        m_thread->wait();
        delete m_thread;
    }
}

bool QuantLab::start(const QuantLabRequest &request)
{
    if (m_thread || request.variants.isEmpty())
        return false;
    m_cancel = std::make_shared<std::atomic<bool>>(false);
    const std::shared_ptr<std::atomic<bool>> cancel = m_cancel;
    m_thread = QThread::create([this, request, cancel] { run(request, cancel); });
    m_thread->setObjectName(QStringLiteral("QuantLab"));
    m_thread->start();
    return true;
}

void QuantLab::cancel()
{
    if (m_cancel)
        m_cancel->store(true);
}

void QuantLab::done()
{
    if (!m_thread)
        return;
    m_thread->wait();
    delete m_thread;
    m_thread = nullptr;
}

void QuantLab::run(const QuantLabRequest &request, const std::shared_ptr<std::atomic<bool>> &cancel)
{
    // Everything reaches the owner's thread in order through queued calls.
    auto post = [this](auto fn) { QMetaObject::invokeMethod(this, std::move(fn), Qt::QueuedConnection); };
    auto fail = [&](const QString &message) {
        const bool cancelled = cancel->load();
        post([this, message, cancelled] {
            done();
            emit failed(cancelled ? tr("Cancelled.") : message, cancelled);
        });
    };
    try {
        std::vector<gb::quant::Variant> variants;
        const int toWrite = int(std::count_if(request.variants.begin(), request.variants.end(),
                                              [](const QuantVariantSpec &v) { return !v.format.isEmpty(); }));
        const double writeShare = request.evaluate ? 0.5 : 1.0;
        int written = 0;
        for (const QuantVariantSpec &v : request.variants) {
            if (v.format.isEmpty()) {
                if (!QFileInfo(v.path).isFile())
                    return fail(tr("%1: no such file (%2).").arg(v.name, v.path));
                variants.push_back({v.name.toStdString(), v.path.toStdString()});
                continue;
            }
            gb::Result<gb::quant::RequantizeParams> p = paramsFor(v, request);
            if (!p)
                return fail(tr("%1: %2").arg(v.name, QString::fromStdString(p.error().message)));
            if (!QDir().mkpath(request.outputDir))
                return fail(tr("Cannot create the folder %1.").arg(request.outputDir));
            const QString out = QDir(request.outputDir)
                                    .filePath(QFileInfo(request.sourcePath).completeBaseName() + QLatin1Char('.') +
                                              fileTag(v.name) + QStringLiteral(".gguf"));
            const QString name = v.name;
            const double from = writeShare * written / std::max(1, toWrite);
            const double span = writeShare / std::max(1, toWrite);
            p.value().cancel = cancel.get();
            p.value().progress = [&, name, from, span](float f, const std::string &stage) {
                const double fraction = from + span * f;
                const QString text = tr("Writing %1: %2").arg(name, QString::fromStdString(stage));
                post([this, fraction, text] { emit progress(fraction, text); });
            };
            post([this, name, from] { emit progress(from, tr("Writing %1…").arg(name)); });
            gb::Result<gb::quant::RequantizeReport> r =
                gb::quant::requantize_file(request.sourcePath.toStdString(), out.toStdString(), p.value());
            if (!r)
                return fail(tr("%1: %2").arg(v.name, QString::fromStdString(r.error().message)));
            ++written;
            const quint64 bytes = quint64(QFileInfo(out).size());
            const QString plan = QString::fromStdString(p.value().plan.describe()) +
                                 (v.gptq ? QStringLiteral(" gptq") : v.weightedRtn ? QStringLiteral(" imatrix-rtn") : QString());
            post([this, name, out, bytes, plan] { emit variantWritten(name, out, bytes, plan); });
            variants.push_back({v.name.toStdString(), out.toStdString()});
        }

        QList<QuantLabRow> rows;
        QString markdown;
        if (request.evaluate) {
            gb::quant::EvalParams ep;
            ep.n_ctx = request.contextLength;
            ep.max_chunks = request.maxChunks;
            ep.n_threads = request.threads;
            ep.progress = [&](const std::string &stage) {
                const QString text = QString::fromStdString(stage);
                post([this, text] { emit progress(-1.0, text); });
                return !cancel->load();
            };
            gb::Result<std::vector<gb::quant::VariantResult>> results =
                gb::quant::evaluate_variants(variants, request.evalText.toStdString(), ep);
            if (!results)
                return fail(tr("Evaluation: %1").arg(QString::fromStdString(results.error().message)));
            for (size_t i = 0; i < results.value().size(); ++i) {
                const gb::quant::VariantResult &x = results.value()[i];
                QuantLabRow row;
                row.name = QString::fromStdString(x.name);
                row.path = i < variants.size() ? QString::fromStdString(variants[i].path) : QString();
                row.fileBytes = x.file_bytes;
                row.memoryBytes = x.memory_bytes;
                row.ppl = x.ppl;
                row.kldMean = x.kld_mean;
                row.kldP50 = x.kld_p50;
                row.kldP90 = x.kld_p90;
                row.kldP99 = x.kld_p99;
                row.kldMax = x.kld_max;
                row.sameTopPct = x.same_top_pct;
                row.dpMean = x.dp_mean;
                row.prefillTokS = x.prefill_tok_s;
                row.decodeTokS = x.decode_tok_s;
                row.scored = x.n_scored;
                row.reference = x.is_reference;
                rows.append(row);
            }
            markdown = QString::fromStdString(gb::quant::format_table(results.value()));
        } else {
            for (const gb::quant::Variant &v : variants) {
                QuantLabRow row;
                row.name = QString::fromStdString(v.name);
                row.path = QString::fromStdString(v.path);
                row.fileBytes = quint64(QFileInfo(row.path).size());
                rows.append(row);
            }
        }
        if (cancel->load())
            return fail(tr("Cancelled."));
        post([this, rows, markdown] {
            done();
            emit progress(1.0, tr("Done."));
            emit finished(rows, markdown);
        });
    } catch (const std::bad_alloc &) {
        fail(tr("Out of memory."));
    } catch (const std::exception &e) {
        fail(QString::fromUtf8(e.what()));
    }
}
