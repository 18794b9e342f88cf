// InspectorHost: engine worker signals -> TraceRecorder -> SnapshotRing -> ImGuiWidget.
#include "inspector_host.h"

#include "engine_worker.h"

#include "inspector/imgui_widget.h"
#include "inspector/model_info.h"
#include "inspector/panels/latency_panel.h"
#include "inspector/panels/model_panel.h"
#include "inspector/panels/tokenizer_panel.h"
#include "inspector/panels/tokens_panel.h"
#include "inspector/snapshot_ring.h"
#include "inspector/trace_recorder.h"

#include <QFile>
#include <QFutureWatcher>
#include <QPointer>
#include <QVBoxLayout>
#include <QtConcurrent/QtConcurrentRun>

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

InspectorHost::InspectorHost(EngineWorker *engine, QWidget *parent)
    : QWidget(parent)
    , m_engine(engine)
    , m_ring(std::make_unique<gb::ui::SnapshotRing>())
    , m_recorder(std::make_unique<gb::ui::TraceRecorder>(*m_ring))
{
    setObjectName(QStringLiteral("inspectorHost"));
    auto *layout = new QVBoxLayout(this);
    layout->setContentsMargins(0, 0, 0, 0);
    m_widget = new gb::ui::ImGuiWidget(this);
    m_widget->setAccessibleName(tr("Inspector panels"));
    m_widget->addPanel(std::make_unique<gb::ui::LatencyPanel>());
    m_widget->addPanel(std::make_unique<gb::ui::TokensPanel>());
    m_widget->addPanel(std::make_unique<gb::ui::ModelPanel>());
    m_widget->addPanel(std::make_unique<gb::ui::TokenizerPanel>());
    m_widget->setSnapshotSource(m_ring.get());
    layout->addWidget(m_widget);
    setMinimumSize(360, 300);

    connect(m_engine, &EngineWorker::generationStarted, this, [this](quint64 request, qint64 conversationId) {
        m_request = request;
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
        m_recorder->setPrefillTime(s.promptMs);
        m_recorder->endRequest(r);
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
}

void InspectorHost::onModelLoaded(const ModelInfo &info)
{
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
