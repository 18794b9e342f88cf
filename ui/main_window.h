// MainWindow: the Glassbox desktop window: conversation list, chat view,
// composer, system prompt panel, inspector dock, model status; menus and
// shortcuts; error dialogs (non-blocking, the app stays usable); window
// geometry kept in <data dir>/ui.ini; the command-line start-up requests.
#pragma once

#include "app_types.h"

#include <QMainWindow>
#include <QPointer>

class AppContext;
class ChatView;
class Composer;
class ConversationList;
class InspectorDock;
class ModelLibraryDialog;
class QuantLabDialog;
class QLabel;
class QProgressBar;
class QSplitter;
class QToolButton;
class SettingsDialog;
class SystemPromptPanel;

// What the command line asked for (see app/glassbox_main.cpp).
struct StartupOptions {
    QString modelPath;          // --model: load this (else the last one, else offer the default)
    qint64 conversationId = 0;  // --conversation
    QString inspectorPanel;     // --inspector
    QString sendText;           // --send: one message once the model is there
    bool quitAfterReply = false;
};

class MainWindow : public QMainWindow {
    Q_OBJECT
public:
    explicit MainWindow(AppContext *context, QWidget *parent = nullptr);
    ~MainWindow() override;

    // Applied once the context is ready (at once if it already is).
    void setStartupOptions(const StartupOptions &options);

    AppContext *context() const { return m_context; }
    ConversationList *conversationList() const { return m_list; }
    ChatView *chatView() const { return m_chat; }
    Composer *composer() const { return m_composer; }
    SystemPromptPanel *systemPromptPanel() const { return m_systemPrompt; }
    InspectorDock *inspectorDock() const { return m_inspector; }
    QWidget *firstRunBanner() const { return m_banner; }
    ModelLibraryDialog *modelLibrary();  // created on first use
    SettingsDialog *settingsDialog();    // created on first use
    QuantLabDialog *quantLab();          // created on first use
    QAction *action(const QString &objectName) const;
    QStringList errors() const { return m_errors; }  // every error shown, oldest first
    QString modelStatusText() const;

public slots:
    void sendCurrentText();
    void stopGeneration();
    void regenerateLast();
    void newChat();
    void openSettings();
    void openQuantLab();
    void openModelLibrary();
    void openModelFile();
    void loadModel(const QString &path);
    void loadDefaultModel();
    void setTokenView(bool on);
    // A non-blocking error dialog (and the error list).
    void showError(const QString &title, const QString &message);

signals:
    // --quit-after-reply: the reply arrived (code 0) or something failed.
    void exitRequested(int code, const QString &reply);
    void errorShown(const QString &message);

protected:
    void closeEvent(QCloseEvent *event) override;
    void dragEnterEvent(QDragEnterEvent *event) override;
    void dropEvent(QDropEvent *event) override;

private:
    void buildLayout();
    void buildActions();   // main_window_actions.cpp
    void connectCore();
    void onReady();
    void applyStartup();
    void trySendPending();
    void updateBanner();
    void updateGenerationUi();
    void updateTitle();
    void restoreGeometryState();
    void saveGeometryState();
    QAction *addAction(QMenu *menu, const QString &objectName, const QString &text, const QKeySequence &shortcut,
                       const QString &toolTip);

    AppContext *m_context;
    ConversationList *m_list = nullptr;
    ChatView *m_chat = nullptr;
    Composer *m_composer = nullptr;
    SystemPromptPanel *m_systemPrompt = nullptr;
    InspectorDock *m_inspector = nullptr;
    QSplitter *m_splitter = nullptr;
    QWidget *m_banner = nullptr;
    QLabel *m_bannerText = nullptr;
    QToolButton *m_bannerLoad = nullptr;
    QLabel *m_modelLabel = nullptr;
    QProgressBar *m_loadProgress = nullptr;
    QToolButton *m_cancelLoad = nullptr;
    QPointer<ModelLibraryDialog> m_library;
    QPointer<SettingsDialog> m_settingsDialog;
    QPointer<QuantLabDialog> m_quantLab;

    StartupOptions m_startup;
    bool m_startupPending = false;
    QString m_pendingSend;
    bool m_awaitingScriptedReply = false;
    bool m_geometryRestored = false;
    QStringList m_errors;
};
