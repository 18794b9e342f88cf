// GlassboxBackend: EngineBackend over the in-process engine (gb::Model +
// gb::Session): CPU or CUDA contexts, KV cache type, requantize on load (a
// cached requantized copy of the file, made in the background with progress
// and cancellation). Kept in its own file so tests that use a fake engine do
// not need the engine's model code.
#include "engine_backend.h"
#include "engine_worker.h"

#include "glassbox/cuda_backend.h"
#include "glassbox/model.h"
#include "glassbox/quant/requantize.h"

#include <QCryptographicHash>
#include <QDateTime>
#include <QDir>
#include <QFileInfo>
#include <QStandardPaths>

#include <filesystem>
#include <type_traits>

namespace {

// ContextParams grows a KV cache type in the engine (kv_type: an enum with
// F16 and Q8_0); a build without it keeps only F16 (the engine's own KV type).
// q8_0: false for F16.
template <typename P>
bool setKvType(P &params, bool q8_0)
{
    if constexpr (requires(P p) { p.kv_type; }) {
        using T = std::remove_cvref_t<decltype(params.kv_type)>;
        if constexpr (requires { T::F16; T::Q8_0; }) {
            params.kv_type = q8_0 ? T::Q8_0 : T::F16;
            return true;
        } else {
            return !q8_0;
        }
    } else {
        return !q8_0;
    }
}

gb::Result<gb::quant::Format> formatFrom(const QString &name)
{
    return gb::quant::parse_format(name == QLatin1String("file") ? std::string("as-in-file") : name.toStdString());
}

gb::Result<gb::quant::QuantPlan> planFrom(const EngineConfig &c)
{
    gb::quant::QuantPlan plan;
    gb::Result<gb::quant::Format> base = formatFrom(c.weightFormat);
    if (!base)
        return base.error();
    plan.base = base.value();
    const std::pair<gb::quant::TensorClass, QString> classes[] = {
        {gb::quant::TensorClass::Attention, c.weightFormatAttention},
        {gb::quant::TensorClass::FeedForward, c.weightFormatFeedForward},
        {gb::quant::TensorClass::Embedding, c.weightFormatEmbedding},
        {gb::quant::TensorClass::Output, c.weightFormatOutput},
    };
    for (const auto &[cls, name] : classes) {
        if (name == QLatin1String("base") || name.isEmpty())
            continue;
        gb::Result<gb::quant::Format> f = formatFrom(name);
        if (!f)
            return f.error();
        plan.by_class[cls] = f.value();
    }
    return plan;
}

// Requantized copies of a file live in <dir>/<hash of path, size, time>/:
// a changed or different file with the same name never reuses them.
QString cacheFolder(const EngineConfig &config, const QString &path)
{
    QString root = config.requantizeDir;
    if (root.isEmpty())
        root = QStandardPaths::writableLocation(QStandardPaths::CacheLocation) + QStringLiteral("/requantized");
    const QFileInfo fi(path);
    const QByteArray key = (fi.absoluteFilePath() + QLatin1Char('|') + QString::number(fi.size()) + QLatin1Char('|') +
                            QString::number(fi.lastModified().toMSecsSinceEpoch()))
                               .toUtf8();
    return root + QLatin1Char('/') +
           QString::fromLatin1(QCryptographicHash::hash(key, QCryptographicHash::Sha1).toHex().left(16));
}

class GlassboxBackend final : public EngineBackend {
public:
    gb::Status load(const QString &path, const EngineConfig &config,
                    const std::function<bool(float)> &progress) override
    {
        if (config.backend != QLatin1String("cpu") && config.backend != QLatin1String("cuda"))
            return gb::make_error(gb::ErrorCode::Unsupported, "unknown backend \"" + config.backend.toStdString() + "\"");
        std::atomic<bool> cancelled{false};
        auto report = [&](float p) {
            if (progress && !progress(p))
                cancelled.store(true);
            return !cancelled.load();
        };

        // Requantize on load: a cached copy in the chosen formats.
        std::string file = path.toStdString();
        std::string weightFormat = "as in the file";
        float loadFrom = 0.0f;  // progress: requantizing [0, 0.85), loading [0.85, 1]
        if (config.requantizes()) {
            gb::Result<gb::quant::QuantPlan> plan = planFrom(config);
            if (!plan)
                return plan.error();
            weightFormat = plan.value().describe();
            const QString folder = cacheFolder(config, path);
            if (!QDir().mkpath(folder))
                return gb::make_error(gb::ErrorCode::Io, "cannot create the folder " + folder.toStdString() +
                                                             " for the requantized model");
            std::string tag = weightFormat;
            for (char &ch : tag)
                if (!std::isalnum(static_cast<unsigned char>(ch)))
                    ch = '_';
            const std::string out =
                (std::filesystem::path(folder.toStdString()) /
                 (std::filesystem::path(file).stem().string() + "." + tag + ".gguf"))
                    .string();
            bool reuse = false;
            if (std::filesystem::exists(out)) {
                gb::Result<std::unique_ptr<gb::gguf::File>> f = gb::gguf::File::open(out);
                if (f) {
                    const std::optional<std::string_view> recorded = f.value()->get_string("glassbox.quantization.plan");
                    reuse = recorded && *recorded == weightFormat;
                }
            }
            if (!reuse) {
                gb::quant::RequantizeParams rp;
                rp.plan = plan.value();
                rp.n_threads = config.threads;
                rp.cancel = &cancelled;
                rp.progress = [&](float p, const std::string &) { report(0.85f * p); };
                gb::Result<gb::quant::RequantizeReport> r = gb::quant::requantize_file(file, out, rp);
                if (!r)
                    return cancelled.load() ? gb::make_error(gb::ErrorCode::Cancelled, "cancelled") : r.error();
            }
            file = out;
            loadFrom = 0.85f;
        }

        gb::LoadParams params;
        params.progress = [&](float p) { return report(loadFrom + (1.0f - loadFrom) * p); };
        gb::Result<std::shared_ptr<const gb::Model>> model = gb::Model::load(file, params);
        if (!model)
            return model.error();
        gb::Result<gb::SessionParams> sp = sessionParams(config);
        if (!sp)
            return sp.error();
        gb::Result<std::unique_ptr<gb::Session>> session = gb::Session::create(model.value(), sp.value());
        if (!session)
            return session.error();
        // Only now drop the previous model: a failed load keeps it.
        m_session = std::move(session.value());
        m_model = model.value();
        m_path = path;
        m_config = config;
        m_weightFormat = QString::fromStdString(weightFormat);
        return gb::Status::success();
    }

    gb::Status reconfigure(const EngineConfig &config) override
    {
        if (!m_model)
            return gb::make_error(gb::ErrorCode::InvalidArgument, "no model is loaded");
        gb::Result<gb::SessionParams> sp = sessionParams(config);
        if (!sp)
            return sp.error();
        m_session.reset();  // free the old KV cache before making the new one
        gb::Result<std::unique_ptr<gb::Session>> session = gb::Session::create(m_model, sp.value());
        if (!session) {
            gb::Result<gb::SessionParams> oldParams = sessionParams(m_config);
            if (oldParams)
                if (gb::Result<std::unique_ptr<gb::Session>> old = gb::Session::create(m_model, oldParams.value()))
                    m_session = std::move(old.value());
            return session.error();
        }
        m_session = std::move(session.value());
        m_config = config;
        return gb::Status::success();
    }

    void unload() override
    {
        m_session.reset();
        m_model.reset();
        m_path.clear();
    }

    bool isLoaded() const override { return m_model && m_session; }

    ModelInfo modelInfo() const override
    {
        ModelInfo info;
        if (!m_model)
            return info;
        info.path = m_path;
        info.description = QString::fromStdString(m_model->description());
        info.architecture = QString::fromLatin1(gb::arch_name(m_model->hparams().arch));
        info.parameters = m_model->n_params();
        info.trainContextLength = m_model->hparams().n_ctx_train;
        info.backend = m_config.backend;
        info.weightFormat = m_weightFormat;
        info.loadedFile = QString::fromStdString(m_model->file().path());
        info.fileBytes = m_model->file().file_size();
        for (const gb::gguf::TensorInfo &t : m_model->file().tensors())
            info.weightBytes += t.n_bytes;
        info.kvCacheType = m_config.kvCacheType;
        if (m_session) {
            info.contextLength = m_session->context().n_ctx();
            info.kvBytes = m_session->context().kv_bytes();
            info.chatTemplateWarning = QString::fromStdString(m_session->template_warning());
        }
        return info;
    }

    gb::Result<gb::GenerateResult> chat(const std::vector<gb::ChatMessage> &messages, const gb::GenerateParams &params,
                                        const gb::TokenCallback &onToken, const std::atomic<bool> *cancel) override
    {
        if (!m_session)
            return gb::make_error(gb::ErrorCode::InvalidArgument, "no model is loaded");
        return m_session->chat(messages, params, onToken, cancel);
    }

    std::string tokenText(gb::Token id) const override
    {
        return m_model ? m_model->tokenizer().token_to_piece(id, true) : std::string();
    }

private:
    static gb::Result<gb::SessionParams> sessionParams(const EngineConfig &config)
    {
        gb::SessionParams p;
        p.context.n_ctx = config.contextLength;
        p.context.n_threads = config.threads;
        p.context.n_batch = config.batchSize;
        const bool q8 = config.kvCacheType == QLatin1String("q8_0");
        if (!q8 && config.kvCacheType != QLatin1String("f16"))
            return gb::make_error(gb::ErrorCode::InvalidArgument,
                                  "unknown KV cache type \"" + config.kvCacheType.toStdString() + "\"");
        if (!setKvType(p.context, q8))
            return gb::make_error(gb::ErrorCode::Unsupported,
                                  "KV cache type " + config.kvCacheType.toStdString() +
                                      ": this build of the engine keeps the KV cache in F16 only");
        p.overflow = gb::OverflowPolicy::DropOldestTurns;
        p.chat_template_override = config.chatTemplateOverride.toStdString();
        if (config.backend == QLatin1String("cuda")) {
            const int32_t layers = config.gpuLayers;
            p.context_factory = [layers](std::shared_ptr<const gb::Model> model, const gb::ContextParams &cp) {
                gb::cuda::CudaContextParams gp;
                gp.context = cp;
                gp.n_gpu_layers = layers;
                return gb::cuda::create_context(std::move(model), gp);
            };
        }
        return p;
    }

    std::shared_ptr<const gb::Model> m_model;
    std::unique_ptr<gb::Session> m_session;
    QString m_path;
    QString m_weightFormat;
    EngineConfig m_config;
};

}  // namespace

std::unique_ptr<EngineBackend> EngineWorker::createGlassboxBackend()
{
    return std::make_unique<GlassboxBackend>();
}

BackendReport EngineWorker::probeBackends()
{
    const gb::cuda::DeviceReport r = gb::cuda::probe();
    BackendReport report;
    report.cudaAvailable = r.available;
    report.cudaMessage = QString::fromStdString(r.message);
    for (const std::string &d : r.devices)
        report.cudaDevices.append(QString::fromStdString(d));
    gb::ContextParams params;
    report.kvCacheTypes = {QStringLiteral("f16")};
    if (setKvType(params, true))
        report.kvCacheTypes.append(QStringLiteral("q8_0"));
    return report;
}
