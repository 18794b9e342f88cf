// GlassboxBackend: EngineBackend over the in-process engine (gb::Model +
// gb::Session). Kept in its own file so tests that use a fake engine do not
// link the engine's model code.
#include "engine_backend.h"
#include "engine_worker.h"

#include "glassbox/model.h"

namespace {

class GlassboxBackend final : public EngineBackend {
public:
    gb::Status load(const QString &path, const EngineConfig &config,
                    const std::function<bool(float)> &progress) override
    {
        if (config.backend != QLatin1String("cpu"))
            return gb::make_error(gb::ErrorCode::Unsupported,
                                  "the " + config.backend.toStdString() + " backend is not available in the app yet");
        gb::LoadParams params;
        params.progress = progress;
        gb::Result<std::shared_ptr<const gb::Model>> model = gb::Model::load(path.toStdString(), params);
        if (!model)
            return model.error();
        gb::Result<std::unique_ptr<gb::Session>> session = gb::Session::create(model.value(), sessionParams(config));
        if (!session)
            return session.error();
        // Only now drop the previous model: a failed load keeps it.
        m_session = std::move(session.value());
        m_model = model.value();
        m_path = path;
        m_config = config;
        return gb::Status::success();
    }

    gb::Status reconfigure(const EngineConfig &config) override
    {
        if (!m_model)
            return gb::make_error(gb::ErrorCode::InvalidArgument, "no model is loaded");
        m_session.reset();  // free the old KV cache before making the new one
        gb::Result<std::unique_ptr<gb::Session>> session = gb::Session::create(m_model, sessionParams(config));
        if (!session) {
            gb::Result<std::unique_ptr<gb::Session>> old = gb::Session::create(m_model, sessionParams(m_config));
            if (old)
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
        if (m_session) {
            info.contextLength = m_session->context().n_ctx();
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
    static gb::SessionParams sessionParams(const EngineConfig &config)
    {
        gb::SessionParams p;
        p.context.n_ctx = config.contextLength;
        p.context.n_threads = config.threads;
        p.context.n_batch = config.batchSize;
        p.overflow = gb::OverflowPolicy::DropOldestTurns;
        p.chat_template_override = config.chatTemplateOverride.toStdString();
        return p;
    }

    std::shared_ptr<const gb::Model> m_model;
    std::unique_ptr<gb::Session> m_session;
    QString m_path;
    EngineConfig m_config;
};

}  // namespace

std::unique_ptr<EngineBackend> EngineWorker::createGlassboxBackend()
{
    return std::make_unique<GlassboxBackend>();
}
