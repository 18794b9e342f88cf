// GlassboxBackend: EngineBackend over the in-process engine: gb::Model with
// either the continuous-batching gb::kv::BatchEngine (paged KV cache, prefix
// tree; on the CPU, or on the GPU through gb::cuda::create_batch_forward when
// every layer is on the GPU; no speculation) or the one-sequence gb::Session
// (speculative decoding, partial GPU offload, batching off); KV cache type, requantize on load (a
// cached requantized copy of the file, made in the background with progress
// and cancellation). Kept in its own file so tests that use a fake engine do
// not need the engine's model code.
#include "engine_backend.h"
#include "engine_worker.h"

#include "glassbox/cuda_backend.h"
// Qt's `emit` macro would rewrite the Scheduler's private emit(): keep it out.
#pragma push_macro("emit")
#undef emit
#include "glassbox/kv/batch_engine.h"
#pragma pop_macro("emit")
#include "glassbox/model.h"
#include "glassbox/stop_matcher.h"
#include "glassbox/quant/requantize.h"

#include <QCryptographicHash>
#include <QDateTime>
#include <QDir>
#include <QFileInfo>
#include <QStandardPaths>

#include <chrono>
#include <filesystem>
#include <map>
#include <optional>
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

double msSince(std::chrono::steady_clock::time_point t0)
{
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
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
        std::unique_ptr<gb::kv::BatchEngine> batch;
        if (!session) {
            // The GPU BatchEngine may take what the CUDA Context refuses (a Q8_0 KV cache).
            gb::Result<std::unique_ptr<gb::kv::BatchEngine>> engine = gpuBatchInstead(model.value(), config);
            if (!engine)
                return session.error();
            batch = std::move(engine.value());
        }
        // Only now drop the previous model: a failed load keeps it.
        dropBatchEngine();
        m_session = session ? std::move(session.value()) : nullptr;
        m_model = model.value();
        if (batch)
            installBatchEngine(std::move(batch));
        makeTemplate(config);
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
        dropBatchEngine();
        gb::Result<std::unique_ptr<gb::Session>> session = gb::Session::create(m_model, sp.value());
        if (!session) {
            if (gb::Result<std::unique_ptr<gb::kv::BatchEngine>> engine = gpuBatchInstead(m_model, config)) {
                m_config = config;
                makeTemplate(config);
                installBatchEngine(std::move(engine.value()));
                return gb::Status::success();
            }
            gb::Result<gb::SessionParams> oldParams = sessionParams(m_config);
            if (oldParams)
                if (gb::Result<std::unique_ptr<gb::Session>> old = gb::Session::create(m_model, oldParams.value()))
                    m_session = std::move(old.value());
            return session.error();
        }
        m_session = std::move(session.value());
        m_config = config;
        makeTemplate(config);
        return gb::Status::success();
    }

    void unload() override
    {
        dropBatchEngine();
        m_session.reset();
        m_model.reset();
        m_path.clear();
    }

    bool isLoaded() const override { return m_model && (m_session || m_batch); }

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
        info.chatTemplateWarning = QString::fromStdString(m_templateWarning);
        if (m_batch) {
            info.contextLength = batchContext();
            info.kvBytes = m_batch->kv_bytes();
        } else if (m_session) {
            info.contextLength = m_session->context().n_ctx();
            info.kvBytes = m_session->context().kv_bytes();
        }
        return info;
    }

    void setChatRequestOptions(const ChatRequestOptions &options) override { m_request = options; }
    ChatExtras lastChatExtras() const override { return m_extras; }
    void setKvObserver(KvObserver observer) override
    {
        m_observer = std::move(observer);
        if (m_batch)
            attachObserver();
    }

    gb::Result<gb::GenerateResult> chat(const std::vector<gb::ChatMessage> &messages, const gb::GenerateParams &params,
                                        const gb::TokenCallback &onToken, const std::atomic<bool> *cancel) override
    {
        m_extras = ChatExtras{};
        if (!m_model)
            return gb::make_error(gb::ErrorCode::InvalidArgument, "no model is loaded");
        if (batchEligible(params)) {
            if (!canStartConcurrent(params))
                return gb::make_error(gb::ErrorCode::InvalidArgument, "the batching engine is busy with other chats");
            if (const gb::Status s = ensureBatchEngine(params.reuse_prefix); !s)
                return s.error();
            m_extras.batched = true;
            return chatBatched(messages, params, onToken, cancel);
        }
        if (const gb::Status s = ensureSession(); !s)
            return s.error();
        return m_session->chat(messages, params, onToken, cancel);
    }

    bool canStartConcurrent(const gb::GenerateParams &params) const override
    {
        return batchEligible(params) &&
               (m_active.empty() || (m_batch && m_batch->params().prefix_cache == params.reuse_prefix));
    }

    gb::Status startChat(const std::vector<gb::ChatMessage> &messages, const gb::GenerateParams &params,
                         const gb::TokenCallback &onToken, const std::atomic<bool> *cancel, ChatDone onDone) override
    {
        if (!canStartConcurrent(params))
            return gb::make_error(gb::ErrorCode::InvalidArgument, "this request cannot run on the batching engine now");
        if (const gb::Status s = ensureBatchEngine(params.reuse_prefix); !s)
            return s;
        return startBatched(messages, params, onToken, cancel, std::move(onDone));
    }

    bool hasActiveChats() const override { return !m_active.empty(); }

    bool stepChats() override
    {
        if (!m_batch || m_active.empty())
            return false;
        for (auto &[id, a] : m_active) {
            if (!a->done && a->cancelled()) {
                a->res.stop = gb::StopReason::Cancelled;
                a->done = true;
            }
        }
        finishDone(gb::Status::success());
        if (!m_active.empty()) {
            gb::Result<gb::kv::StepReport> step = m_batch->step();
            if (!step) {
                failAll(step.error());
            } else {
                for (const gb::kv::EngineEvent &ev : step.value().events) {
                    const auto it = m_active.find(ev.id);
                    if (ev.kind != gb::kv::EngineEvent::Kind::Admitted || it == m_active.end() || it->second->admitted)
                        continue;
                    Active &a = *it->second;  // first admission (a preempted request is admitted again)
                    a.admitted = true;
                    a.res.n_prompt_reused = ev.prefix_hit_tokens;
                    a.extras.queueMs = std::max(0.0, ev.t_ms - a.tSubmit);
                }
                finishDone(gb::Status::success());
                const gb::kv::StepReport &rep = step.value();
                if (!m_active.empty() && !rep.ran && rep.metrics.n_running == 0 && rep.metrics.admitted.empty())
                    failAll(gb::make_error(gb::ErrorCode::Internal, "the batching engine stopped: requests wait but nothing can run"));
            }
        }
        return !m_active.empty();
    }

    std::string tokenText(gb::Token id) const override
    {
        return m_model ? m_model->tokenizer().token_to_piece(id, true) : std::string();
    }

private:
    // The chat template as the Session picks it (override, the file's, the
    // architecture's built-in; ChatML when unusable), with the same warning.
    void makeTemplate(const EngineConfig &config)
    {
        m_template = gb::chat_template_for(*m_model, config.chatTemplateOverride.toStdString(), &m_templateWarning);
    }

    // The prompt tokens of messages exactly as Session::chat makes them:
    // rendered with the generation prompt, encoded (BOS as the model asks, never
    // twice), oldest turns after the system prompt dropped until the prompt and
    // the room kept for the reply fit (OverflowPolicy::DropOldestTurns).
    gb::Result<std::vector<gb::Token>> chatPrompt(std::vector<gb::ChatMessage> msgs, int32_t maxTokens, int32_t nCtx,
                                                 int32_t *dropped) const
    {
        const gb::Tokenizer &tok = m_model->tokenizer();
        *dropped = 0;
        const int32_t reserve = std::min(maxTokens > 0 ? maxTokens : nCtx / 4, nCtx / 2);
        for (;;) {
            gb::ChatTemplateInputs in;
            in.messages = msgs;
            in.add_generation_prompt = true;
            in.bos_token = tok.bos() >= 0 ? tok.text(tok.bos()) : "";
            in.eos_token = tok.eos() >= 0 ? tok.text(tok.eos()) : "";
            gb::Result<std::string> text = m_template->render(in);
            if (!text)
                return text.error();
            std::vector<gb::Token> prompt = tok.encode(text.value(), tok.add_bos(), true);
            if (prompt.size() >= 2 && prompt[0] == tok.bos() && prompt[1] == tok.bos())
                prompt.erase(prompt.begin());
            if (int32_t(prompt.size()) < nCtx && int32_t(prompt.size()) + reserve <= nCtx)
                return prompt;
            const size_t first = (!msgs.empty() && msgs[0].role == "system") ? 1 : 0;
            if (msgs.size() <= first + 1)
                return gb::make_error(gb::ErrorCode::OutOfRange,
                                      "the conversation is " + std::to_string(prompt.size()) +
                                          " tokens, the context holds " + std::to_string(nCtx) +
                                          (*dropped ? " even after dropping older turns" : ""));
            msgs.erase(msgs.begin() + long(first));
            ++*dropped;
            while (msgs.size() > first + 1 && msgs[first].role != "user") {
                msgs.erase(msgs.begin() + long(first));
                ++*dropped;
            }
        }
    }

    // CUDA batches when every layer is on the GPU (allLayersOnGpu). Partial
    // offload (some layers and their KV cache on the CPU) stays on the Session
    // path: the GPU BatchForward keeps every layer's pages on the device.
    bool batchEligible(const gb::GenerateParams &params) const
    {
        return m_model && m_request.batching && params.spec.method == gb::SpecMethod::None &&
               (m_config.backend == QLatin1String("cpu") || (allLayersOnGpu(*m_model, m_config) && !m_config.preciseDecode));
    }

    // Ends the requests that are done (in request order): frees their pages,
    // tells the observer when the engine went idle, then reports them (so the
    // inspector's last snapshot is in before the reply's end is).
    void finishDone(const gb::Status &failure)
    {
        std::vector<std::unique_ptr<Active>> ended;
        for (auto it = m_active.begin(); it != m_active.end();) {
            if (!it->second->done) {
                ++it;
                continue;
            }
            if (const gb::kv::RequestInfo *info = m_batch->request(it->first);
                info && (info->state == gb::kv::RequestState::Waiting || info->state == gb::kv::RequestState::Running))
                (void)m_batch->cancel(it->first);
            ended.push_back(std::move(it->second));
            it = m_active.erase(it);
        }
        if (!ended.empty() && m_active.empty() && m_observer.onIdle)
            m_observer.onIdle(m_batch->scheduler());
        for (std::unique_ptr<Active> &a : ended)
            finishActive(std::move(a), failure);
    }

    void failAll(const gb::Status &failure)
    {
        for (auto &[id, a] : m_active)
            a->done = true;
        finishDone(failure);
    }

    int32_t batchContext() const { return std::min(m_config.contextLength, m_model->hparams().n_ctx_train); }

    gb::Status ensureSession()
    {
        if (m_session)
            return gb::Status::success();
        if (!m_active.empty())
            return gb::make_error(gb::ErrorCode::InvalidArgument, "the batching engine is busy with other chats");
        gb::Result<gb::SessionParams> sp = sessionParams(m_config);
        if (!sp)
            return sp.error();
        const bool hadBatch = m_batch != nullptr;
        dropBatchEngine();  // one KV cache at a time
        gb::Result<std::unique_ptr<gb::Session>> session = gb::Session::create(m_model, sp.value());
        if (!session) {
            if (hadBatch)  // keep the batched replies working (e.g. a Q8_0 KV cache the CUDA Context refuses)
                if (gb::Result<std::unique_ptr<gb::kv::BatchEngine>> engine = gpuBatchInstead(m_model, m_config))
                    installBatchEngine(std::move(engine.value()));
            return session.error();
        }
        m_session = std::move(session.value());
        return gb::Status::success();
    }

    static gb::kv::BatchEngineParams batchParams(const gb::Model &model, const EngineConfig &config, bool prefixCache)
    {
        gb::kv::BatchEngineParams p;
        p.n_threads = config.threads;
        const bool q8 = config.kvCacheType == QLatin1String("q8_0");
        p.kv_type = q8 ? gb::kv::KvType::Q8_0 : gb::kv::KvType::F16;
        p.page_size = kPageSize;
        p.n_ctx = std::min(config.contextLength, model.hparams().n_ctx_train);
        p.n_pages = (p.n_ctx + kPageSize - 1) / kPageSize;
        p.max_tokens_per_step = std::clamp(config.batchSize, 16, 2048);
        p.max_running = 16;
        p.prefix_cache = prefixCache;
        if (config.backend == QLatin1String("cuda"))
            p.make_forward = [](std::shared_ptr<const gb::Model> m, const gb::kv::BatchForwardParams &fp) {
                return gb::cuda::create_batch_forward(std::move(m), fp);
            };
        return p;
    }

    static bool allLayersOnGpu(const gb::Model &model, const EngineConfig &config)
    {
        return config.backend == QLatin1String("cuda") &&
               (config.gpuLayers < 0 || config.gpuLayers >= model.hparams().n_layer);
    }

    // When the Session cannot be made for a CUDA config with every layer on
    // the GPU (its Context refuses a Q8_0 KV cache), the GPU BatchEngine
    // (prefix cache on) serves the batched replies; an error otherwise.
    static gb::Result<std::unique_ptr<gb::kv::BatchEngine>> gpuBatchInstead(const std::shared_ptr<const gb::Model> &model,
                                                                           const EngineConfig &config)
    {
        if (!allLayersOnGpu(*model, config))
            return gb::make_error(gb::ErrorCode::Unsupported, "not a GPU batching configuration");
        if (config.preciseDecode)
            return gb::make_error(gb::ErrorCode::Unsupported,
                                  "precise decode runs on the one-sequence engine, which keeps its KV cache in F16");
        return gb::kv::BatchEngine::create(model, batchParams(*model, config, true));
    }

    gb::Status ensureBatchEngine(bool prefixCache)
    {
        if (m_batch && m_batch->params().prefix_cache == prefixCache)
            return gb::Status::success();
        const gb::kv::BatchEngineParams p = batchParams(*m_model, m_config, prefixCache);
        dropBatchEngine();
        m_session.reset();  // one KV cache at a time
        gb::Result<std::unique_ptr<gb::kv::BatchEngine>> engine = gb::kv::BatchEngine::create(m_model, p);
        if (!engine) {
            (void)ensureSession();  // keep the app usable on the Session path
            return engine.error();
        }
        installBatchEngine(std::move(engine.value()));
        return gb::Status::success();
    }

    void installBatchEngine(std::unique_ptr<gb::kv::BatchEngine> engine)
    {
        m_batch = std::move(engine);
        m_batch->set_listener([this](const gb::kv::EngineEvent &ev) { onEngineEvent(ev); });
        m_batch->set_sample_observer(
            [this](gb::kv::RequestId id, std::span<const float> logits, gb::Token t) { onSample(id, logits, t); });
        attachObserver();
    }

    void dropBatchEngine()
    {
        for (auto &[id, a] : m_active) {  // never with chats running (the worker waits); defensive
            a->res.stop = gb::StopReason::Cancelled;
            a->done = true;
        }
        finishDone(gb::Status::success());
        if (m_batch && m_observer.onModel)
            m_observer.onModel(nullptr);
        m_batch.reset();
    }

    void attachObserver()
    {
        if (m_observer.onModel)
            m_observer.onModel(&m_model->tokenizer());
        if (m_observer.onStep)
            m_batch->set_step_observer(m_observer.onStep);
        else
            m_batch->set_step_observer({});
    }

    // One chat turn on the BatchEngine with the Session's semantics: the same
    // prompt tokens, sampler, streamed text (stop strings held back, UTF-8
    // completed), max tokens, end-of-generation tokens, context limit and
    // cancellation; a request that stops early is cancelled in the engine,
    // which frees its pages at once and keeps its full pages in the prefix
    // cache. Several run at once (startChat / stepChats); chat() runs one to its end.
    struct Active {
        gb::kv::RequestId id = -1;
        gb::GenerateParams params;
        gb::TokenCallback onToken;
        const std::atomic<bool> *cancel = nullptr;
        ChatDone onDone;
        std::chrono::steady_clock::time_point t0;
        double tSubmit = 0.0;
        int32_t cap = 0;
        gb::StreamDecoder detok;
        gb::StopMatcher stops;
        gb::GenerateResult res;
        ChatExtras extras;
        bool admitted = false;
        bool done = false;
        float pendingLogprob = 0.0f;  // of the token being sampled (sample observer, before its Token event)
        std::vector<gb::TokenLogprob> pendingTop;
        Active(const gb::Tokenizer &tok, gb::GenerateParams p)
            : params(std::move(p)), detok(tok), stops(params.stop) {}
        bool cancelled() const { return cancel && cancel->load(std::memory_order_relaxed); }
    };

    gb::Result<gb::GenerateResult> chatBatched(const std::vector<gb::ChatMessage> &messages,
                                               const gb::GenerateParams &params, const gb::TokenCallback &onToken,
                                               const std::atomic<bool> *cancel)
    {
        std::optional<gb::Result<gb::GenerateResult>> out;
        ChatExtras extras;
        const gb::Status started = startBatched(messages, params, onToken, cancel,
                                                [&](gb::Result<gb::GenerateResult> r, const ChatExtras &e) {
                                                    out.emplace(std::move(r));
                                                    extras = e;
                                                });
        if (!started)
            return started.error();
        while (!out && stepChats()) {
        }
        if (!out)
            return gb::make_error(gb::ErrorCode::Internal, "the batching engine stopped before the reply ended");
        m_extras = extras;
        return std::move(*out);
    }

    gb::Status startBatched(const std::vector<gb::ChatMessage> &messages, const gb::GenerateParams &params,
                            const gb::TokenCallback &onToken, const std::atomic<bool> *cancel, ChatDone onDone)
    {
        const gb::Tokenizer &tok = m_model->tokenizer();
        const int32_t nCtx = batchContext();
        int32_t dropped = 0;
        gb::Result<std::vector<gb::Token>> promptOr = chatPrompt(messages, params.max_tokens, nCtx, &dropped);
        if (!promptOr)
            return promptOr.error();
        auto a = std::make_unique<Active>(tok, params);
        a->t0 = std::chrono::steady_clock::now();
        a->onToken = onToken;
        a->cancel = cancel;
        a->onDone = std::move(onDone);
        a->res.n_prompt_tokens = int32_t(promptOr.value().size());
        a->res.n_dropped_messages = dropped;
        // The Session stops when the context is full: after emitting token k its
        // cache holds prompt + k - 1 tokens, so at most nCtx - prompt + 1 tokens.
        a->cap = nCtx - a->res.n_prompt_tokens + 1;
        gb::kv::GenRequest req;
        req.prompt = std::move(promptOr.value());
        req.sampling = params.sampling;
        req.max_new_tokens = params.max_tokens > 0 ? std::min(params.max_tokens, a->cap) : a->cap;
        req.stop_token = -1;  // end-of-generation tokens are all checked (is_eog)
        a->tSubmit = m_batch->now_ms();
        const gb::kv::AdmissionResult adm = m_batch->submit(std::move(req));
        if (adm.verdict == gb::kv::Admission::Impossible)
            return gb::make_error(gb::ErrorCode::OutOfRange, "the request cannot run: " + adm.reason);
        a->id = adm.id;
        a->extras.batched = true;
        a->extras.engineRequestId = adm.id;
        a->res.stop = gb::StopReason::MaxTokens;
        if (m_observer.onSubmit)
            m_observer.onSubmit(adm.id, m_request.label);
        m_active[adm.id] = std::move(a);
        return gb::Status::success();
    }

    static bool emitToken(Active &a, gb::Token t, std::string text)
    {
        gb::TokenEvent ev;
        ev.id = t;
        ev.t_ms = msSince(a.t0);
        ev.logprob = a.pendingLogprob;
        ev.top = std::move(a.pendingTop);
        a.pendingTop.clear();
        ev.text = std::move(text);
        a.res.text += ev.text;
        return a.onToken ? a.onToken(ev) : true;
    }

    // Engine events -> the request's state (listener, during step()).
    void onEngineEvent(const gb::kv::EngineEvent &ev)
    {
        const auto it = m_active.find(ev.id);
        if (it == m_active.end() || it->second->done)
            return;
        Active &a = *it->second;
        const gb::Tokenizer &tok = m_model->tokenizer();
        switch (ev.kind) {
        case gb::kv::EngineEvent::Kind::Admitted:
            break;  // taken from the StepReport: the listener's event lacks prefix_hit_tokens
        case gb::kv::EngineEvent::Kind::Token: {
            const gb::Token t = ev.token;
            gb::GenerateResult &res = a.res;
            ++res.n_generated;
            if (res.n_generated == 1) {
                res.t_first_token_ms = msSince(a.t0);
                res.t_prompt_ms = res.t_first_token_ms;  // queue, prefill and the first token's sampling
            }
            bool stopHit = false;
            if (!a.params.ignore_eos && tok.is_eog(t)) {
                res.stop = gb::StopReason::EndOfGeneration;
                emitToken(a, t, a.stops.push(a.detok.flush(), &stopHit));
                a.done = true;
                break;
            }
            const std::string piece = a.stops.push(a.detok.push(t), &stopHit);
            if (!emitToken(a, t, piece)) {
                res.stop = gb::StopReason::Cancelled;
                a.done = true;
            } else if (stopHit) {
                res.stop = gb::StopReason::StopString;
                a.done = true;
            } else if (a.params.max_tokens > 0 && res.n_generated >= a.params.max_tokens) {
                res.stop = gb::StopReason::MaxTokens;
                a.done = true;
            } else if (res.n_generated >= a.cap) {
                res.stop = gb::StopReason::ContextFull;
                a.done = true;
            }
            break;
        }
        case gb::kv::EngineEvent::Kind::Finished:
            a.done = true;  // max_new_tokens reached (the Token event said why)
            break;
        case gb::kv::EngineEvent::Kind::Cancelled:
            a.res.stop = gb::StopReason::Cancelled;
            a.done = true;
            break;
        case gb::kv::EngineEvent::Kind::Preempted:
            break;
        }
    }

    void onSample(gb::kv::RequestId id, std::span<const float> logits, gb::Token t)
    {
        const auto it = m_active.find(id);
        if (it == m_active.end())
            return;
        Active &a = *it->second;
        a.pendingLogprob = gb::Sampler::logprob_of(logits, t);
        a.pendingTop.clear();
        if (a.params.n_logprobs > 0)
            a.pendingTop = gb::Sampler::top_logprobs(logits, a.params.n_logprobs);
    }

    // Ends a request: frees its pages if it still runs, flushes the held-back
    // text, reports it.
    void finishActive(std::unique_ptr<Active> a, const gb::Status &failure)
    {
        if (const gb::kv::RequestInfo *info = m_batch->request(a->id);
            info && (info->state == gb::kv::RequestState::Waiting || info->state == gb::kv::RequestState::Running))
            (void)m_batch->cancel(a->id);
        if (!failure) {
            a->onDone(failure.error(), a->extras);
            return;
        }
        gb::GenerateResult &res = a->res;
        if (res.stop != gb::StopReason::StopString) {
            bool stopHit = false;
            std::string tail = a->stops.push(a->detok.flush(), &stopHit);
            if (!stopHit)
                tail += a->stops.flush();
            if (!tail.empty()) {
                res.text += tail;
                if (a->onToken) {
                    gb::TokenEvent ev;
                    ev.text = tail;
                    ev.t_ms = msSince(a->t0);
                    a->onToken(ev);
                }
            }
        }
        res.t_total_ms = msSince(a->t0);
        a->onDone(std::move(res), a->extras);
    }

    static constexpr int32_t kPageSize = 16;

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
            const bool precise = config.preciseDecode;
            p.context_factory = [layers, precise](std::shared_ptr<const gb::Model> model, const gb::ContextParams &cp) {
                gb::cuda::CudaContextParams gp;
                gp.context = cp;
                gp.n_gpu_layers = layers;
                gp.precise_decode = precise;
                return gb::cuda::create_context(std::move(model), gp);
            };
        }
        return p;
    }

    std::shared_ptr<const gb::Model> m_model;
    std::unique_ptr<gb::Session> m_session;           // the Session path (or null)
    std::unique_ptr<gb::kv::BatchEngine> m_batch;     // the batching path (or null); never both
    std::shared_ptr<const gb::ChatTemplate> m_template;
    std::string m_templateWarning;
    ChatRequestOptions m_request;
    ChatExtras m_extras;
    KvObserver m_observer;
    std::map<gb::kv::RequestId, std::unique_ptr<Active>> m_active;  // chats on the batching engine
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
