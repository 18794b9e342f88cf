// MainWindow: layout, wiring to the app core, start-up requests, errors and
// window state.
#include "main_window.h"

#include "app_context.h"
#include "chat_view.h"
#include "composer.h"
#include "conversation_list.h"
#include "inspector_dock.h"
#include "model_library_dialog.h"
#include "model_metadata.h"
#include "quant_lab_dialog.h"
#include "settings_dialog.h"
#include "system_prompt_panel.h"

#include <QCloseEvent>
#include <QDir>
#include <QFileInfo>
#include <QHBoxLayout>
#include <QLabel>
#include <QMessageBox>
#include <QMimeData>
#include <QProgressBar>
#include <QSettings>
#include <QSplitter>
#include <QStatusBar>
#include <QToolButton>
#include <QVBoxLayout>

MainWindow::MainWindow(AppContext *context, QWidget *parent)
    : QMainWindow(parent)
    , m_context(context)
{
    // ui/resources.qrc lives in a static library: register it (icons).
    static const bool resources = [] {
        Q_INIT_RESOURCE(resources);
        return true;
    }();
    Q_UNUSED(resources);
    setObjectName(QStringLiteral("mainWindow"));
    setWindowIcon(QIcon::fromTheme(QStringLiteral("io.glassbox.Glassbox"),
                                   QIcon(QStringLiteral(":/icons/glassbox-256.png"))));
    setAcceptDrops(true);
    buildLayout();
    buildActions();
    connectCore();
    restoreGeometryState();
    updateBanner();
    updateGenerationUi();
    updateTitle();
    if (m_context->isReady())
        onReady();
}

MainWindow::~MainWindow()
{
    saveGeometryState();
}

void MainWindow::buildLayout()
{
    ChatController *controller = m_context->controller();
    m_splitter = new QSplitter(Qt::Horizontal, this);
    m_splitter->setObjectName(QStringLiteral("mainSplitter"));
    m_splitter->setChildrenCollapsible(false);
    m_list = new ConversationList(controller, m_splitter);
    m_list->setMinimumWidth(180);
    m_splitter->addWidget(m_list);

    auto *right = new QWidget(m_splitter);
    auto *rv = new QVBoxLayout(right);
    rv->setContentsMargins(0, 0, 0, 0);
    rv->setSpacing(0);

    m_banner = new QFrame(right);
    m_banner->setObjectName(QStringLiteral("firstRunBanner"));
    m_banner->setAutoFillBackground(true);
    m_banner->setBackgroundRole(QPalette::AlternateBase);
    auto *bl = new QHBoxLayout(m_banner);
    m_bannerText = new QLabel(m_banner);
    m_bannerText->setWordWrap(true);
    bl->addWidget(m_bannerText, 1);
    m_bannerLoad = new QToolButton(m_banner);
    m_bannerLoad->setObjectName(QStringLiteral("loadDefaultModel"));
    m_bannerLoad->setText(tr("Load the default model"));
    m_bannerLoad->setToolButtonStyle(Qt::ToolButtonTextOnly);
    auto *bannerLibrary = new QToolButton(m_banner);
    bannerLibrary->setText(tr("Model library…"));
    bl->addWidget(m_bannerLoad);
    bl->addWidget(bannerLibrary);
    m_banner->hide();
    rv->addWidget(m_banner);
    connect(m_bannerLoad, &QToolButton::clicked, this, &MainWindow::loadDefaultModel);
    connect(bannerLibrary, &QToolButton::clicked, this, &MainWindow::openModelLibrary);

    m_systemPrompt = new SystemPromptPanel(controller, m_context->settings(), right);
    m_systemPrompt->hide();
    rv->addWidget(m_systemPrompt);
    m_chat = new ChatView(controller, right);
    rv->addWidget(m_chat, 1);
    m_composer = new Composer(right);
    rv->addWidget(m_composer);
    m_splitter->addWidget(right);
    m_splitter->setStretchFactor(0, 0);
    m_splitter->setStretchFactor(1, 1);
    m_splitter->setSizes({240, 760});
    setCentralWidget(m_splitter);

    m_inspector = new InspectorDock(m_context, this);
    addDockWidget(Qt::RightDockWidgetArea, m_inspector);
    m_inspector->hide();

    m_modelLabel = new QLabel(tr("No model loaded"), this);
    m_modelLabel->setObjectName(QStringLiteral("modelLabel"));
    m_modelLabel->setAccessibleName(tr("Model"));
    m_loadProgress = new QProgressBar(this);
    m_loadProgress->setObjectName(QStringLiteral("loadProgress"));
    m_loadProgress->setAccessibleName(tr("Model loading progress"));
    m_loadProgress->setRange(0, 100);
    m_loadProgress->setMaximumWidth(180);
    m_loadProgress->hide();
    m_cancelLoad = new QToolButton(this);
    m_cancelLoad->setText(tr("Cancel"));
    m_cancelLoad->setToolTip(tr("Stop loading the model"));
    m_cancelLoad->hide();
    statusBar()->addPermanentWidget(m_loadProgress);
    statusBar()->addPermanentWidget(m_cancelLoad);
    statusBar()->addPermanentWidget(m_modelLabel);
    connect(m_cancelLoad, &QToolButton::clicked, m_context->engine(), qOverload<>(&EngineWorker::cancelLoad));

    connect(m_composer, &Composer::submitted, this, &MainWindow::sendCurrentText);
    connect(m_composer, &Composer::stopRequested, this, &MainWindow::stopGeneration);
}

void MainWindow::connectCore()
{
    ChatController *controller = m_context->controller();
    EngineWorker *engine = m_context->engine();
    connect(m_context, &AppContext::ready, this, &MainWindow::onReady);
    connect(m_context, &AppContext::failed, this, [this](const QString &message) {
        showError(tr("Cannot open the chat history"),
                  tr("%1\n\nConversations will not be saved until this is fixed.").arg(message));
        if (m_startup.quitAfterReply)
            emit exitRequested(4, {});
    });
    connect(controller, &ChatController::errorOccurred, this,
            [this](const QString &message) { showError(tr("Something went wrong"), message); });
    connect(controller, &ChatController::generationStateChanged, this, &MainWindow::updateGenerationUi);
    connect(controller, &ChatController::currentConversationChanged, this, [this] {
        updateGenerationUi();
        updateTitle();
    });
    connect(controller, &ChatController::snapshotChanged, this, [this] {
        updateTitle();
        trySendPending();
    });
    connect(controller, &ChatController::replyFinished, this,
            [this](qint64, const MessageRecord &message) {
                if (!m_awaitingScriptedReply)
                    return;
                m_awaitingScriptedReply = false;
                const bool ok = message.state == MessageState::Complete;
                emit exitRequested(ok ? 0 : 1, message.content);
            });

    connect(engine, &EngineWorker::modelLoadStarted, this, [this](quint64, const QString &path) {
        m_modelLabel->setText(tr("Loading %1…").arg(QFileInfo(path).fileName()));
        m_loadProgress->setValue(0);
        m_loadProgress->show();
        m_cancelLoad->show();
    });
    connect(engine, &EngineWorker::modelLoadProgress, this,
            [this](quint64, double p) { m_loadProgress->setValue(qRound(p * 100)); });
    connect(engine, &EngineWorker::modelLoaded, this, [this](quint64, const ModelInfo &info) {
        m_loadProgress->setVisible(m_context->engine()->isLoading());
        m_cancelLoad->setVisible(m_context->engine()->isLoading());
        m_modelLabel->setText(info.description.isEmpty() ? QFileInfo(info.path).fileName() : info.description);
        m_modelLabel->setToolTip(tr("%1\ncontext %2 tokens").arg(info.path).arg(info.contextLength));
        if (!info.chatTemplateWarning.isEmpty())
            statusBar()->showMessage(info.chatTemplateWarning, 10000);
        updateBanner();
        trySendPending();
    });
    connect(engine, &EngineWorker::modelLoadFailed, this, [this](quint64, const QString &message) {
        const bool loading = m_context->engine()->isLoading();
        m_loadProgress->setVisible(loading);
        m_cancelLoad->setVisible(loading);
        const ModelInfo info = m_context->engine()->modelInfo();
        m_modelLabel->setText(m_context->engine()->isModelLoaded() ? info.description : tr("No model loaded"));
        updateBanner();
        if (message.contains(QLatin1String("cancelled")))
            return;
        showError(tr("Could not load the model"),
                  m_context->engine()->isModelLoaded()
                      ? tr("%1\n\nThe previous model is still loaded.").arg(message)
                      : message);
        if (!m_pendingSend.isEmpty() || m_awaitingScriptedReply) {
            m_pendingSend.clear();
            m_awaitingScriptedReply = false;
            emit exitRequested(2, {});
        }
    });
}

void MainWindow::setStartupOptions(const StartupOptions &options)
{
    m_startup = options;
    m_startupPending = true;
    if (m_context->isReady())
        applyStartup();
}

void MainWindow::onReady()
{
    if (m_startupPending)
        applyStartup();
    else if (!m_context->engine()->isModelLoaded() && !m_context->engine()->isLoading()) {
        // No command line: reopen the last model, if any.
        const QString last = m_context->settings()->modelPath();
        if (!last.isEmpty() && QFileInfo::exists(last))
            loadModel(last);
    }
    updateBanner();
}

void MainWindow::applyStartup()
{
    m_startupPending = false;
    const StartupOptions o = m_startup;
    if (!o.modelPath.isEmpty()) {
        loadModel(o.modelPath);
    } else {
        const QString last = m_context->settings()->modelPath();
        if (!last.isEmpty() && QFileInfo::exists(last))
            loadModel(last);
    }
    if (o.conversationId > 0)
        m_context->controller()->openConversation(o.conversationId);
    if (!o.inspectorPanel.isEmpty())
        m_inspector->openPanel(o.inspectorPanel);
    if (!o.sendText.isEmpty()) {
        m_pendingSend = o.sendText;
        trySendPending();
        if (!m_pendingSend.isEmpty() && !m_context->engine()->isModelLoaded() && !m_context->engine()->isLoading()) {
            m_pendingSend.clear();
            showError(tr("No model"), tr("--send needs a model: pass --model FILE."));
            emit exitRequested(3, {});
        }
    }
    updateBanner();
}

void MainWindow::trySendPending()
{
    if (m_pendingSend.isEmpty() || !m_context->isReady())
        return;
    EngineWorker *engine = m_context->engine();
    if (!engine->isModelLoaded() || engine->isLoading())
        return;
    const ChatSnapshot s = m_context->controller()->snapshot();
    if (s.loading || (m_startup.conversationId > 0 && s.conversation.id != m_startup.conversationId))
        return;
    const QString text = m_pendingSend;
    m_pendingSend.clear();
    m_awaitingScriptedReply = m_startup.quitAfterReply;
    m_composer->setText(text);
    sendCurrentText();
}

void MainWindow::sendCurrentText()
{
    const QString text = m_composer->text();
    if (text.trimmed().isEmpty())
        return;
    EngineWorker *engine = m_context->engine();
    if (!engine->isModelLoaded() && !engine->isLoading()) {
        showError(tr("No model loaded"),
                  tr("Load a model first: File ▸ Model library, or the default model from the banner."));
        return;
    }
    // (A chat made with "New chat" takes its title from its first message: the controller does that.)
    if (!m_context->controller()->sendMessage(text))
        return;
    m_composer->clear();
}

void MainWindow::stopGeneration()
{
    m_context->controller()->stop();
}

void MainWindow::regenerateLast()
{
    m_context->controller()->regenerate(0);
}

void MainWindow::newChat()
{
    m_context->controller()->newConversation();
    m_composer->focusInput();
}

void MainWindow::loadModel(const QString &path)
{
    const QFileInfo fi(path);
    if (!fi.isFile()) {
        showError(tr("Could not load the model"), tr("%1: no such file.").arg(path));
        return;
    }
    const QString warning = memoryWarning(fi.size(), availableMemoryBytes());
    if (!warning.isEmpty())
        showError(tr("Not enough memory"), warning);
    m_context->controller()->loadModel(fi.absoluteFilePath());
}

void MainWindow::loadDefaultModel()
{
    const QString path = AppContext::findDefaultModel();
    if (path.isEmpty()) {
        showError(tr("Default model not found"),
                  tr("%1 is not in any of:\n%2\n\nRun the README's setup, or add a model in the model library.")
                      .arg(AppContext::defaultModelFileName(), AppContext::defaultModelFolders().join('\n')));
        return;
    }
    loadModel(path);
}

void MainWindow::updateBanner()
{
    EngineWorker *engine = m_context->engine();
    const bool show = m_context->isReady() && !engine->isModelLoaded() && !engine->isLoading();
    if (show) {
        const QString def = AppContext::findDefaultModel();
        m_bannerLoad->setVisible(!def.isEmpty());
        m_bannerText->setText(def.isEmpty()
                                  ? tr("<b>No model yet.</b> Add a GGUF file or download one in the model library.")
                                  : tr("<b>No model loaded.</b> Start with the default model (%1), or pick another "
                                       "in the model library.")
                                        .arg(QFileInfo(def).fileName()));
    }
    m_banner->setVisible(show);
}

void MainWindow::updateGenerationUi()
{
    const bool generating = m_context->controller()->isGenerating(m_context->controller()->currentConversationId());
    m_composer->setGenerating(generating);
    if (QAction *stop = action(QStringLiteral("actionStop")))
        stop->setEnabled(generating);
    if (QAction *regen = action(QStringLiteral("actionRegenerate")))
        regen->setEnabled(!generating);
}

void MainWindow::updateTitle()
{
    const ChatSnapshot s = m_context->controller()->snapshot();
    setWindowTitle(s.conversation.id ? tr("%1 — Glassbox").arg(s.conversation.title) : tr("Glassbox"));
}

QString MainWindow::modelStatusText() const
{
    return m_modelLabel->text();
}

void MainWindow::showError(const QString &title, const QString &message)
{
    m_errors.append(message);
    qWarning("glassbox: %s: %s", qPrintable(title), qPrintable(message));
    auto *box = new QMessageBox(QMessageBox::Warning, title, message, QMessageBox::Ok, this);
    box->setObjectName(QStringLiteral("errorDialog"));
    box->setAttribute(Qt::WA_DeleteOnClose);
    box->setWindowModality(Qt::NonModal);
    box->show();
    emit errorShown(message);
}

ModelLibraryDialog *MainWindow::modelLibrary()
{
    if (!m_library) {
        m_library = new ModelLibraryDialog(m_context->store(), m_context->dataDir() + QStringLiteral("/models"), this);
        connect(m_library, &ModelLibraryDialog::loadRequested, this, &MainWindow::loadModel);
    }
    return m_library;
}

SettingsDialog *MainWindow::settingsDialog()
{
    if (!m_settingsDialog)
        m_settingsDialog = new SettingsDialog(m_context->settings(), m_context->engine(), this);
    return m_settingsDialog;
}

QuantLabDialog *MainWindow::quantLab()
{
    if (!m_quantLab) {
        m_quantLab = new QuantLabDialog(QDir(m_context->dataDir()).filePath(QStringLiteral("quantlab")), this);
        connect(m_quantLab, &QuantLabDialog::loadRequested, this, &MainWindow::loadModel);
    }
    return m_quantLab;
}

void MainWindow::openQuantLab()
{
    QuantLabDialog *lab = quantLab();
    if (lab->sourceModel().isEmpty() && m_context->engine()->isModelLoaded())
        lab->setSourceModel(m_context->engine()->modelInfo().path);
    lab->show();
    lab->raise();
    lab->activateWindow();
}

void MainWindow::openModelLibrary()
{
    modelLibrary()->show();
    m_library->raise();
    m_library->activateWindow();
}

void MainWindow::openSettings()
{
    settingsDialog()->show();
    m_settingsDialog->raise();
    m_settingsDialog->activateWindow();
}

void MainWindow::setTokenView(bool on)
{
    m_chat->setTokenView(on);
}

void MainWindow::restoreGeometryState()
{
    if (m_context->dataDir().isEmpty())
        return;
    QSettings ui(QDir(m_context->dataDir()).filePath(QStringLiteral("ui.ini")), QSettings::IniFormat);
    if (!restoreGeometry(ui.value(QStringLiteral("window/geometry")).toByteArray()))
        resize(1100, 720);
    restoreState(ui.value(QStringLiteral("window/state")).toByteArray());
    m_splitter->restoreState(ui.value(QStringLiteral("window/splitter")).toByteArray());
    m_geometryRestored = true;
}

void MainWindow::saveGeometryState()
{
    if (m_context->dataDir().isEmpty() || !m_geometryRestored)
        return;
    QSettings ui(QDir(m_context->dataDir()).filePath(QStringLiteral("ui.ini")), QSettings::IniFormat);
    ui.setValue(QStringLiteral("window/geometry"), saveGeometry());
    ui.setValue(QStringLiteral("window/state"), saveState());
    ui.setValue(QStringLiteral("window/splitter"), m_splitter->saveState());
}

void MainWindow::closeEvent(QCloseEvent *event)
{
    saveGeometryState();
    m_systemPrompt->applyNow();
    QMainWindow::closeEvent(event);
}

void MainWindow::dragEnterEvent(QDragEnterEvent *event)
{
    for (const QUrl &url : event->mimeData()->urls())
        if (url.isLocalFile() && url.toLocalFile().endsWith(QLatin1String(".gguf"), Qt::CaseInsensitive)) {
            event->acceptProposedAction();
            return;
        }
}

void MainWindow::dropEvent(QDropEvent *event)
{
    for (const QUrl &url : event->mimeData()->urls())
        if (url.isLocalFile() && url.toLocalFile().endsWith(QLatin1String(".gguf"), Qt::CaseInsensitive)) {
            loadModel(url.toLocalFile());
            return;
        }
}
