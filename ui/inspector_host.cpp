// InspectorHost: engine worker signals -> TraceRecorder -> SnapshotRing -> ImGuiWidget.
#include "inspector_host.h"

#include "chat_store.h"
#include "engine_worker.h"

#include "glassbox/spec/spec_types.h"

#include "inspector/imgui_widget.h"
#include "inspector/kv_trace.h"
#include "inspector/model_info.h"
#include "inspector/panels/batching_panel.h"
#include "inspector/panels/kv_cache_panel.h"
#include "inspector/panels/latency_panel.h"
#include "inspector/panels/prefix_tree_panel.h"
#include "inspector/panels/spec_panel.h"
#include "inspector/panels/model_panel.h"
#include "inspector/panels/tokenizer_panel.h"
#include "inspector/panels/tokens_panel.h"
#include "inspector/snapshot_ring.h"
#include "inspector/run_export.h"
#include "inspector/trace_recorder.h"

#include <QDateTime>
#include <QFile>
#include <QFileDialog>
#include <QFutureWatcher>
#include <QHBoxLayout>
#include <QLabel>
#include <QToolButton>
#include <QPointer>
#include <QVBoxLayout>
#include <QtConcurrent/QtConcurrentRun>

#include <QThread>

#include <algorithm>
#include <mutex>

// The KvRecorder and what it needs, shared by the GUI thread (Session replies)
// and the engine thread (batching engine steps); every use holds mutex. Its
// snapshots go to the host's TraceRecorder on the GUI thread.
struct InspectorHost::KvFeed {
    std::mutex mutex;
    InspectorHost *host = nullptr;           // null once the host is gone
    const gb::Tokenizer *tokenizer = nullptr; // the batching engine's model (engine thread)
    std::unique_ptr<gb::ui::KvRecorder> recorder;
};

namespace {

gb::StopReason stopReasonFrom(const QString &name)
{
    if (name == QLatin1String("eog"))
        return gb::StopReason::EndOfGeneration;
    if (name == QLatin1String("stop_string"))
        return gb::StopReason::StopString;
    if (name == QLatin1String("context_full"))
        return gb::StopReason::ContextFull;
    if (name == QLatin1String("cancelled"))
        return gb::StopReason::Cancelled;
    return gb::StopReason::MaxTokens;
}

using ModelSummary = std::shared_ptr<const gb::ui::ModelInfo>;

}  // namespace

InspectorHost::InspectorHost(EngineWorker *engine, QWidget *parent, ChatStore *store)
    : QWidget(parent)
    , m_engine(engine)
    , m_store(store)
    , m_ring(std::make_unique<gb::ui::SnapshotRing>())
    , m_recorder(std::make_unique<gb::ui::TraceRecorder>(*m_ring))
    , m_kv(std::make_shared<KvFeed>())
{
    {
        KvFeed *feed = m_kv.get();
        feed->host = this;
        gb::ui::KvRecorderParams params;
        params.tokenText = [feed](gb::Token t) {  // called with feed->mutex held
            return feed->tokenizer ? feed->tokenizer->token_to_piece(t, true) : std::string();
        };
        feed->recorder = std::make_unique<gb::ui::KvRecorder>(
            [feed](std::shared_ptr<const gb::ui::KvTrace> trace) {  // called with feed->mutex held
                InspectorHost *host = feed->host;
                if (!host)
                    return;
                if (QThread::currentThread() == host->thread())
                    host->m_recorder->setKv(std::move(trace));
                else
                    QMetaObject::invokeMethod(host, [host, trace] { host->m_recorder->setKv(trace); },
                                              Qt::QueuedConnection);
            },
            std::move(params));
        // The batching engine's steps, on the engine thread. The recorder limits
        // full snapshots to one per 40 ms; the panels only read the snapshots.
        KvObserver observer;
        std::shared_ptr<KvFeed> shared = m_kv;
        observer.onStep = [shared](const gb::kv::Scheduler &sched, const gb::kv::StepPlan &plan) {
            const std::lock_guard lock(shared->mutex);
            shared->recorder->onSchedulerStep(sched, plan);
        };
        observer.onSubmit = [shared](int64_t request, const std::string &label) {
            const std::lock_guard lock(shared->mutex);
            shared->recorder->setRequestLabel(request, label);
        };
        observer.onIdle = [shared](const gb::kv::Scheduler &sched) {
            const std::lock_guard lock(shared->mutex);
            shared->recorder->publishNow(sched);
        };
        observer.onModel = [shared](const gb::Tokenizer *tok) {
            const std::lock_guard lock(shared->mutex);
            shared->tokenizer = tok;
        };
        m_engine->setKvObserver(std::move(observer));
    }
    setObjectName(QStringLiteral("inspectorHost"));
    auto *layout = new QVBoxLayout(this);
    layout->setContentsMargins(0, 0, 0, 0);
    layout->setSpacing(2);
    auto *bar = new QHBoxLayout;
    bar->setContentsMargins(4, 2, 4, 0);
    auto button = [this, bar](const QString &name, const QString &text, const QString &tip) {
        auto *b = new QToolButton(this);
        b->setObjectName(name);
        b->setText(text);
        b->setToolTip(tip);
        b->setAutoRaise(true);
        bar->addWidget(b);
        return b;
    };
    QToolButton *save = button(QStringLiteral("inspectorSaveRun"), tr("Save run"), tr("Save this performance run in the app's database"));
    save->setVisible(m_store != nullptr);
    connect(save, &QToolButton::clicked, this, &InspectorHost::saveRun);
    connect(button(QStringLiteral("inspectorExport"), tr("Export..."), tr("Export the run as JSON or CSV")),
            &QToolButton::clicked, this, [this] {
                const QString path = QFileDialog::getSaveFileName(this, tr("Export performance run"), QStringLiteral("glassbox-run.json"),
                                                                  tr("JSON (*.json);;CSV tables (*.csv)"));
                if (!path.isEmpty()) {
                    const QString err = exportRun(path);
                    setStatus(err.isEmpty() ? tr("Exported to %1").arg(path) : err);
                }
            });
    connect(button(QStringLiteral("inspectorSavePng"), tr("Save PNG..."), tr("Save the current panel as a PNG image")),
            &QToolButton::clicked, this, [this] {
                const QString path = QFileDialog::getSaveFileName(this, tr("Save panel as PNG"), QStringLiteral("glassbox-panel.png"),
                                                                  tr("PNG images (*.png)"));
                if (!path.isEmpty())
                    setStatus(savePanelPng(path) ? tr("Saved %1").arg(path) : tr("Could not save %1").arg(path));
            });
    m_status = new QLabel(this);
    m_status->setObjectName(QStringLiteral("inspectorStatus"));
    m_status->setForegroundRole(QPalette::PlaceholderText);
    bar->addWidget(m_status, 1);
    layout->addLayout(bar);
    if (m_store) {
        connect(m_store, &ChatStore::perfRunSaved, this, [this](quint64, const PerfRunRecord &run) {
            if (run.data.value(QStringLiteral("kind")).toString() == QLatin1String("glassbox inspector run"))
                setStatus(tr("Saved run %1").arg(run.id));
        });
    }
    m_widget = new gb::ui::ImGuiWidget(this);
    m_widget->setAccessibleName(tr("Inspector panels"));
    m_widget->addPanel(std::make_unique<gb::ui::LatencyPanel>());
    m_widget->addPanel(std::make_unique<gb::ui::TokensPanel>());
    m_widget->addPanel(std::make_unique<gb::ui::ModelPanel>());
    m_widget->addPanel(std::make_unique<gb::ui::TokenizerPanel>());
    m_widget->addPanel(std::make_unique<gb::ui::KvCachePanel>());
    m_widget->addPanel(std::make_unique<gb::ui::PrefixTreePanel>());
    m_widget->addPanel(std::make_unique<gb::ui::SpecPanel>());
    m_widget->addPanel(std::make_unique<gb::ui::BatchingPanel>());
    m_widget->setSnapshotSource(m_ring.get());
    layout->addWidget(m_widget);
    setMinimumSize(360, 300);

    connect(m_engine, &EngineWorker::generationStarted, this, [this](quint64 request, qint64 conversationId) {
        // The Latency and Tokens panels follow one reply at a time: a reply that
        // starts while another streams (batching engine) shows in the KV panels only.
        if (m_request != 0)
            return;
        m_request = request;
        m_conversation = conversationId;
        m_times.clear();
        m_recorder->beginRequest(QStringLiteral("chat %1, request %2").arg(conversationId).arg(request).toStdString());
    });
    connect(m_engine, &EngineWorker::tokenGenerated, this, [this](quint64 request, const GeneratedToken &t) {
        if (request != m_request)
            return;
        gb::TokenEvent e;
        e.id = t.tokenId;
        e.text = t.text.toStdString();
        e.t_ms = t.tMs;
        e.logprob = t.logprob;
        for (const TokenAlternative &a : t.top)
            e.top.push_back(gb::TokenLogprob{a.tokenId, a.logprob});
        e.origin = gb::SpecOrigin(std::clamp(t.origin, 0, 3));
        m_times.push_back(t.tMs);
        m_recorder->onToken(e);
    });
    auto finish = [this](quint64 request, const GenerationStats &s) {
        if (request != m_request)
            return;
        m_request = 0;
        gb::GenerateResult r;
        r.stop = stopReasonFrom(s.stopReason);
        r.n_prompt_tokens = s.promptTokens;
        r.n_prompt_reused = s.promptTokensReused;
        r.n_generated = s.generatedTokens;
        r.t_prompt_ms = s.promptMs;
        r.t_first_token_ms = s.firstTokenMs;
        r.t_total_ms = s.totalMs;
        if (s.spec)
            r.spec = *s.spec;
        m_recorder->setPrefillTime(s.promptMs);
        if (s.queueMs > 0.0)
            m_recorder->setQueueTime(s.queueMs);
        m_recorder->endRequest(r);
        if (s.enginePath == QLatin1String("batch"))
            return;  // the batching engine fed the KV panels step by step
        // The Session keeps one sequence: its reuse and steps feed the KV panels.
        gb::ui::KvRecorder::SessionRequest kr;
        kr.id = qint64(request);
        kr.label = QStringLiteral("chat %1, request %2").arg(m_conversation).arg(request).toStdString();
        kr.nCtx = m_contextLength;
        kr.nPromptTokens = s.promptTokens;
        kr.nReused = s.promptTokensReused;
        kr.tPromptMs = s.promptMs;
        kr.tokenTimesMs = std::move(m_times);
        m_times.clear();
        if (s.spec)
            for (const gb::SpecStep &st : s.spec->per_step)
                kr.emittedPerStep.push_back(st.emitted);
        kr.cancelled = s.stopReason == QLatin1String("cancelled");
        if (kr.nCtx > 0 && (kr.nPromptTokens > 0 || !kr.tokenTimesMs.empty())) {
            const std::lock_guard lock(m_kv->mutex);
            m_kv->recorder->onSessionRequest(kr);
        }
    };
    connect(m_engine, &EngineWorker::generationFinished, this,
            [finish](quint64 request, const GenerationStats &s, const QString &) { finish(request, s); });
    connect(m_engine, &EngineWorker::generationFailed, this, [finish](quint64 request, const QString &) {
        GenerationStats s;
        s.stopReason = QStringLiteral("cancelled");
        finish(request, s);
    });
    connect(m_engine, &EngineWorker::modelLoaded, this,
            [this](quint64, const ModelInfo &info) { onModelLoaded(info); });
    if (m_engine->isModelLoaded())
        onModelLoaded(m_engine->modelInfo());
}

InspectorHost::~InspectorHost()
{
    m_widget->setSnapshotSource(nullptr);
    const std::lock_guard lock(m_kv->mutex);
    m_kv->host = nullptr;  // the engine thread may still hold the feed: it publishes nowhere now
}

std::shared_ptr<const gb::ui::InspectorSnapshot> InspectorHost::latestSnapshot() const
{
    return m_ring->latest();
}

void InspectorHost::setStatus(const QString &text)
{
    m_status->setText(text);
}

void InspectorHost::saveRun()
{
    const auto snap = m_ring->latest();
    if (!m_store || !snap) {
        setStatus(tr("Nothing to save yet."));
        return;
    }
    QJsonObject run = gb::ui::runToJson(*snap);
    run[QStringLiteral("saved_at")] = QDateTime::currentDateTimeUtc().toString(Qt::ISODate);
    m_store->savePerfRun(run);
    setStatus(tr("Saving the run..."));
}

QString InspectorHost::exportRun(const QString &path)
{
    const auto snap = m_ring->latest();
    if (!snap)
        return tr("Nothing to export yet.");
    return gb::ui::exportRun(*snap, path);
}

bool InspectorHost::savePanelPng(const QString &path)
{
    return m_widget->savePanelPng(m_widget->currentPanel(), path);
}

void InspectorHost::onModelLoaded(const ModelInfo &info)
{
    m_contextLength = info.contextLength;
    if (info.path.isEmpty() || info.path == m_modelPath)
        return;
    m_modelPath = info.path;
    // Summarising the GGUF (tensor table, tokenizer) takes a moment: off the GUI thread.
    auto *watcher = new QFutureWatcher<ModelSummary>(this);
    connect(watcher, &QFutureWatcher<ModelSummary>::finished, this, [this, watcher, path = info.path] {
        watcher->deleteLater();
        if (path == m_modelPath && watcher->result())
            m_recorder->setModel(watcher->result());
    });
    watcher->setFuture(QtConcurrent::run([path = info.path]() -> ModelSummary {
        auto summary = gb::ui::loadModelInfo(QFile::encodeName(path).toStdString());
        return summary ? summary.value() : nullptr;
    }));
}

bool InspectorHost::openPanel(const QString &panel)
{
    const int index = m_widget->panelIndex(panel);
    if (index < 0)
        return false;
    m_widget->setCurrentPanel(index);
    return true;
}
