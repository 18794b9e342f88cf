// EngineWorker: jobs posted to the engine thread, results posted back to the
// owner's thread, cancellation through per-request atomic flags.
#include "engine_worker.h"

#include "engine_backend.h"

#include <QElapsedTimer>
#include <QFileInfo>
#include <QThread>

#include <algorithm>
#include <new>

namespace {

QString stopReasonName(gb::StopReason reason)
{
    switch (reason) {
    case gb::StopReason::MaxTokens: return QStringLiteral("max_tokens");
    case gb::StopReason::EndOfGeneration: return QStringLiteral("eog");
    case gb::StopReason::StopString: return QStringLiteral("stop_string");
    case gb::StopReason::ContextFull: return QStringLiteral("context_full");
    case gb::StopReason::Cancelled: return QStringLiteral("cancelled");
    }
    return QStringLiteral("unknown");
}

GenerationStats statsFrom(const gb::GenerateResult &r)
{
    GenerationStats s;
    s.promptTokens = r.n_prompt_tokens;
    s.promptTokensReused = r.n_prompt_reused;
    s.generatedTokens = r.n_generated;
    s.droppedMessages = r.n_dropped_messages;
    s.promptMs = r.t_prompt_ms;
    s.firstTokenMs = r.t_first_token_ms;
    s.totalMs = r.t_total_ms;
    // Decode speed excludes the first token (it pays for the prefill).
    const double decodeMs = r.t_total_ms - r.t_first_token_ms;
    s.tokensPerSecond = (r.n_generated > 1 && decodeMs > 0.0) ? 1000.0 * (r.n_generated - 1) / decodeMs : 0.0;
    const int prefilled = r.n_prompt_tokens - r.n_prompt_reused;
    s.promptTokensPerSecond = r.t_prompt_ms > 0.0 ? 1000.0 * prefilled / r.t_prompt_ms : 0.0;
    s.stopReason = stopReasonName(r.stop);
    s.specMethod = QString::fromStdString(r.spec.method);
    s.specProposed = r.spec.proposed;
    s.specAccepted = r.spec.accepted;
    s.specSteps = r.spec.steps;
    s.specDraftTokens = r.spec.n_draft;
    if (r.spec.steps > 0)
        s.spec = std::make_shared<const gb::SpecStats>(r.spec);
    return s;
}

gb::GenerateParams generateParamsFrom(const GenerationOptions &o)
{
    gb::GenerateParams p;
    p.sampling.temperature = float(o.temperature);
    p.sampling.top_k = o.topK;
    p.sampling.top_p = float(o.topP);
    p.sampling.min_p = float(o.minP);
    p.sampling.repeat_penalty = float(o.repeatPenalty);
    p.sampling.seed = o.seed;
    p.max_tokens = o.maxTokens;
    p.n_logprobs = o.topLogprobs;
    for (const QString &s : o.stop)
        p.stop.push_back(s.toStdString());
    p.reuse_prefix = o.prefixCache;
    gb::SpecConfig &spec = p.spec;
    if (!gb::parse_spec_method(o.specMethod.toStdString(), &spec.method))
        spec.method = gb::SpecMethod::None;
    spec.draft_max = o.specDraftMax;
    spec.draft_min = std::min(spec.draft_min, spec.draft_max);
    spec.ngram_max = o.specNgram;
    spec.ngram_min = std::min(spec.ngram_min, spec.ngram_max);
    spec.lookahead_ngram = std::max(2, o.specNgram);
    spec.max_branches = o.specBranches;
    spec.lookahead_candidates = o.specBranches;
    spec.adaptive = spec.auto_off = o.specAdaptive;
    spec.draft_model_path = o.specDraftModel.toStdString();
    return p;
}

}  // namespace

EngineWorker::EngineWorker(std::unique_ptr<EngineBackend> backend, QObject *parent)
    : QObject(parent)
    , m_backend(std::move(backend))
{
    Q_ASSERT(m_backend);
    registerAppCoreMetaTypes();
    m_thread = new QThread;
    m_thread->setObjectName(QStringLiteral("EngineWorker"));
    m_context = new QObject;
    m_context->moveToThread(m_thread);
    m_thread->start();
}

EngineWorker::~EngineWorker()
{
    cancelAll();
    cancelLoad();
    post([this] {
        m_backend.reset();  // the model and session are freed on the engine thread
        QThread::currentThread()->quit();
    });
    m_thread->wait();
    delete m_context;
    delete m_thread;
}

template <typename Fn>
void EngineWorker::post(Fn fn)
{
    QMetaObject::invokeMethod(m_context, std::move(fn), Qt::QueuedConnection);
}

template <typename Fn>
void EngineWorker::enqueue(Fn fn)
{
    post([this, fn = std::move(fn)]() mutable {
        m_jobs.push_back(std::function<bool()>(std::move(fn)));
        drainJobs();
    });
}

// ---- owner thread ---------------------------------------------------------------

quint64 EngineWorker::loadModel(const QString &path, const EngineConfig &config)
{
    const quint64 id = ++m_nextRequestId;
    Flag cancel = std::make_shared<std::atomic<bool>>(false);
    m_loads.insert(id, cancel);
    ++m_loadsInFlight;
    enqueue([this, id, path, config, cancel] {
        if (m_backend->hasActiveChats())
            return false;
        runLoad(id, path, config, cancel);
        return true;
    });
    return id;
}

void EngineWorker::cancelLoad(quint64 requestId)
{
    if (const auto it = m_loads.constFind(requestId); it != m_loads.constEnd())
        (*it)->store(true);
}

void EngineWorker::cancelLoad()
{
    for (const Flag &f : std::as_const(m_loads))
        f->store(true);
}

quint64 EngineWorker::reconfigure(const EngineConfig &config)
{
    const quint64 id = ++m_nextRequestId;
    ++m_loadsInFlight;
    m_loads.insert(id, std::make_shared<std::atomic<bool>>(false));
    enqueue([this, id, config] {
        if (m_backend->hasActiveChats())
            return false;
        QString error;
        try {
            const gb::Status s = m_backend->reconfigure(config);
            if (!s)
                error = QString::fromStdString(s.error().message);
        } catch (const std::bad_alloc &) {
            error = QStringLiteral("out of memory");
        }
        const ModelInfo info = m_backend->modelInfo();
        const bool loaded = m_backend->isLoaded();
        QMetaObject::invokeMethod(this, [this, id, error, info, loaded] {
            finishLoad(id);
            m_modelLoaded = loaded;
            m_modelInfo = info;
            if (error.isEmpty())
                emit modelLoaded(id, info);
            else
                emit modelLoadFailed(id, QStringLiteral("Could not apply the new engine settings: %1").arg(error));
        }, Qt::QueuedConnection);
        return true;
    });
    return id;
}

quint64 EngineWorker::unloadModel()
{
    const quint64 id = ++m_nextRequestId;
    enqueue([this, id] {
        if (m_backend->hasActiveChats())
            return false;
        m_backend->unload();
        QMetaObject::invokeMethod(this, [this, id] {
            m_modelLoaded = false;
            m_modelInfo = ModelInfo{};
            emit modelUnloaded(id);
        }, Qt::QueuedConnection);
        return true;
    });
    return id;
}

namespace {
// A monotonic clock both threads read (ns).
qint64 monotonicNs()
{
    static QElapsedTimer timer = [] {
        QElapsedTimer t;
        t.start();
        return t;
    }();
    return timer.nsecsElapsed();
}
}  // namespace

quint64 EngineWorker::generate(const GenerationRequest &request)
{
    const quint64 id = ++m_nextRequestId;
    Flag cancel = std::make_shared<std::atomic<bool>>(false);
    m_generations.insert(id, cancel);
    const qint64 posted = monotonicNs();
    enqueue([this, id, request, cancel, posted] { return runGenerate(id, request, cancel, posted); });
    return id;
}

void EngineWorker::setKvObserver(KvObserver observer)
{
    post([this, observer = std::move(observer)]() mutable { m_backend->setKvObserver(std::move(observer)); });
}

void EngineWorker::cancel(quint64 requestId)
{
    if (const auto it = m_generations.constFind(requestId); it != m_generations.constEnd())
        (*it)->store(true);
}

void EngineWorker::cancelAll()
{
    for (const Flag &f : std::as_const(m_generations))
        f->store(true);
}

void EngineWorker::finishLoad(quint64 requestId)
{
    m_loads.remove(requestId);
    --m_loadsInFlight;
}

// ---- engine thread --------------------------------------------------------------

void EngineWorker::runLoad(quint64 id, const QString &path, const EngineConfig &config, const Flag &cancel)
{
    QMetaObject::invokeMethod(this, [this, id, path] { emit modelLoadStarted(id, path); }, Qt::QueuedConnection);
    const QString name = QFileInfo(path).fileName();
    QString error;
    if (cancel->load()) {
        error = QStringLiteral("Loading %1 was cancelled.").arg(name);
    } else {
        float reported = -1.0f;
        auto progress = [&](float p) {
            if (p >= reported + 0.01f || (p >= 1.0f && reported < 1.0f)) {  // at most ~100 signals
                reported = p;
                QMetaObject::invokeMethod(this, [this, id, p] { emit modelLoadProgress(id, p); }, Qt::QueuedConnection);
            }
            return !cancel->load();
        };
        try {
            const gb::Status s = m_backend->load(path, config, progress);
            if (!s && (s.error().code == gb::ErrorCode::Cancelled || cancel->load()))
                error = QStringLiteral("Loading %1 was cancelled.").arg(name);
            else if (!s)
                error = QStringLiteral("Could not load the model %1: %2").arg(name, QString::fromStdString(s.error().message));
        } catch (const std::bad_alloc &) {
            error = QStringLiteral("Could not load the model %1: out of memory.").arg(name);
        } catch (const std::exception &e) {
            error = QStringLiteral("Could not load the model %1: %2").arg(name, QString::fromUtf8(e.what()));
        }
    }
    const ModelInfo info = m_backend->modelInfo();
    const bool loaded = m_backend->isLoaded();
    QMetaObject::invokeMethod(this, [this, id, error, info, loaded] {
        finishLoad(id);
        m_modelLoaded = loaded;  // a failed load keeps the previous model
        m_modelInfo = info;
        if (error.isEmpty())
            emit modelLoaded(id, info);
        else
            emit modelLoadFailed(id, error);
    }, Qt::QueuedConnection);
}

bool EngineWorker::runGenerate(quint64 id, const GenerationRequest &request, const Flag &cancel, qint64 postedNs)
{
    auto finish = [this, id](const GenerationStats &stats, const QString &text) {
        QMetaObject::invokeMethod(this, [this, id, stats, text] {
            m_generations.remove(id);
            emit generationFinished(id, stats, text);
        }, Qt::QueuedConnection);
    };
    auto failed = [this, id](const QString &message) {
        QMetaObject::invokeMethod(this, [this, id, message] {
            m_generations.remove(id);
            emit generationFailed(id, message);
        }, Qt::QueuedConnection);
    };
    if (cancel->load()) {  // cancelled while queued
        GenerationStats stats;
        stats.stopReason = QStringLiteral("cancelled");
        finish(stats, QString());
        return true;
    }
    if (!m_backend->isLoaded()) {
        failed(QStringLiteral("No model is loaded. Open a model from the library first."));
        return true;
    }

    const qint64 conversationId = request.conversationId;
    ChatRequestOptions chatOptions;
    chatOptions.batching = request.options.batching;
    chatOptions.label = QStringLiteral("chat %1, request %2").arg(conversationId).arg(id).toStdString();
    m_backend->setChatRequestOptions(chatOptions);
    const gb::GenerateParams params = generateParamsFrom(request.options);
    // Next to the chats the batching engine runs now, or alone (wait for them).
    const bool concurrent = m_backend->canStartConcurrent(params);
    if (!concurrent && m_backend->hasActiveChats())
        return false;

    const double waitedMs = double(monotonicNs() - postedNs) / 1e6;  // behind other requests on this thread
    QMetaObject::invokeMethod(this, [this, id, conversationId] { emit generationStarted(id, conversationId); },
                              Qt::QueuedConnection);
    std::vector<gb::ChatMessage> messages;
    if (!request.systemPrompt.isEmpty())
        messages.push_back({"system", request.systemPrompt.toStdString()});
    for (const ChatTurn &t : request.messages)
        messages.push_back({t.role.toStdString(), t.content.toStdString()});

    // What the tokens said so far (for a cancel reported as an error).
    auto streamed = std::make_shared<std::string>();
    gb::TokenCallback onToken = [this, id, cancel, streamed](const gb::TokenEvent &ev) {
        GeneratedToken t;
        t.tokenId = ev.id;
        t.text = QString::fromStdString(ev.text);
        t.logprob = ev.logprob;
        t.tMs = ev.t_ms;
        t.source = TokenSource(int(ev.origin));
        t.origin = int(ev.origin);
        for (const gb::TokenLogprob &alt : ev.top)
            t.top.append(TokenAlternative{alt.id, QString::fromStdString(m_backend->tokenText(alt.id)), alt.logprob});
        *streamed += ev.text;
        QMetaObject::invokeMethod(this, [this, id, t] { emit tokenGenerated(id, t); }, Qt::QueuedConnection);
        return !cancel->load();
    };
    auto done = [this, cancel, streamed, waitedMs, finish, failed](gb::Result<gb::GenerateResult> r,
                                                                   const ChatExtras &extras) {
        if (r) {
            GenerationStats stats = statsFrom(r.value());
            stats.enginePath = extras.batched ? QStringLiteral("batch") : QStringLiteral("session");
            stats.queueMs = waitedMs + extras.queueMs;
            stats.engineRequestId = extras.engineRequestId;
            if (cancel->load())
                stats.stopReason = QStringLiteral("cancelled");
            stats.modelDescription = m_backend->modelInfo().description;
            return finish(stats, QString::fromStdString(r.value().text));
        }
        if (r.error().code == gb::ErrorCode::Cancelled || cancel->load()) {
            GenerationStats stats;
            stats.stopReason = QStringLiteral("cancelled");
            return finish(stats, QString::fromStdString(*streamed));
        }
        failed(QStringLiteral("Generation failed: %1").arg(QString::fromStdString(r.error().message)));
    };
    try {
        if (concurrent) {
            const gb::Status s = m_backend->startChat(messages, params, onToken, cancel.get(), done);
            if (!s)
                done(s.error(), ChatExtras{});
            return true;
        }
        gb::Result<gb::GenerateResult> r = m_backend->chat(messages, params, onToken, cancel.get());
        done(std::move(r), m_backend->lastChatExtras());
    } catch (const std::bad_alloc &) {
        failed(QStringLiteral("Generation failed: out of memory."));
    } catch (const std::exception &e) {
        failed(QStringLiteral("Generation failed: %1").arg(QString::fromUtf8(e.what())));
    }
    return true;
}

// ---- engine thread: the job queue and the batching engine's steps --------------

void EngineWorker::drainJobs()
{
    while (!m_jobs.empty()) {
        if (!m_jobs.front()())
            break;  // needs the engine to itself: after the running chats
        m_jobs.pop_front();
    }
    if (m_backend && m_backend->hasActiveChats() && !m_pumpScheduled) {
        // One engine step per event, so requests posted meanwhile join the batch.
        m_pumpScheduled = true;
        post([this] {
            m_pumpScheduled = false;
            if (!m_backend)
                return;
            try {
                m_backend->stepChats();
            } catch (const std::exception &e) {
                qWarning("EngineWorker: batching engine step failed: %s", e.what());
            }
            drainJobs();
        });
    }
}
