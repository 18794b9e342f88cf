// AppContext: owns the app core objects the windows share (chat store,
// engine worker, settings, chat controller) for one data folder, and knows
// where the default model lives. Opening is asynchronous: ready() or failed().
#pragma once

#include "chat_controller.h"
#include "chat_store.h"
#include "engine_backend.h"
#include "engine_worker.h"
#include "settings.h"

#include <QObject>

#include <memory>

class AppContext : public QObject {
    Q_OBJECT
public:
    explicit AppContext(std::unique_ptr<EngineBackend> backend, QObject *parent = nullptr);
    ~AppContext() override;  // controller first, then settings, engine and store

    // Creates dataDir if needed and opens <dataDir>/glassbox.sqlite; then loads
    // the settings and the conversation list. Emits ready() or failed().
    void open(const QString &dataDir);
    bool isReady() const { return m_ready; }
    QString dataDir() const { return m_dataDir; }
    QString databasePath() const;

    ChatStore *store() const { return m_store.get(); }
    EngineWorker *engine() const { return m_engine.get(); }
    Settings *settings() const { return m_settings.get(); }
    ChatController *controller() const { return m_controller.get(); }

    // ~/.local/share/glassbox (QStandardPaths::AppDataLocation).
    static QString defaultDataDir();
    // Folders searched for the default model, in order: the source tree's
    // models/ (developer builds), next to the executable, ~/.local/share/glassbox/models,
    // /usr/share/glassbox/models.
    static QStringList defaultModelFolders();
    static QString defaultModelFileName() { return QStringLiteral("gemma-3-270m-q4_k_m.gguf"); }
    // The first existing default model file, or "" if none is installed.
    static QString findDefaultModel();

signals:
    void ready();
    void failed(const QString &message);

private:
    std::unique_ptr<ChatStore> m_store;
    std::unique_ptr<EngineWorker> m_engine;
    std::unique_ptr<Settings> m_settings;
    std::unique_ptr<ChatController> m_controller;
    QString m_dataDir;
    quint64 m_openRequest = 0;
    bool m_ready = false;
};
