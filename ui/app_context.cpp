// AppContext: construction order of the app core and the open sequence
// (store -> settings -> conversation list).
#include "app_context.h"

#include <QCoreApplication>
#include <QDir>
#include <QFileInfo>
#include <QStandardPaths>

AppContext::AppContext(std::unique_ptr<EngineBackend> backend, QObject *parent)
    : QObject(parent)
    , m_store(std::make_unique<ChatStore>())
    , m_engine(std::make_unique<EngineWorker>(std::move(backend)))
    , m_settings(std::make_unique<Settings>(m_store.get()))
    , m_controller(std::make_unique<ChatController>(m_store.get(), m_engine.get(), m_settings.get()))
{
    connect(m_store.get(), &ChatStore::opened, this, [this](quint64 req, const QString &, int) {
        if (req != m_openRequest)
            return;
        m_settings->load();
    });
    connect(m_store.get(), &ChatStore::errorOccurred, this,
            [this](quint64 req, ChatStore::ErrorKind, const QString &message) {
                if (req == m_openRequest)
                    emit failed(message);
            });
    connect(m_settings.get(), &Settings::loaded, this, [this] {
        if (m_ready)
            return;
        m_ready = true;
        m_controller->refreshConversations();
        emit ready();
    });
}

AppContext::~AppContext()
{
    m_controller.reset();
    m_settings.reset();
    m_engine.reset();
    m_store.reset();
}

void AppContext::open(const QString &dataDir)
{
    m_dataDir = QDir::cleanPath(QDir(dataDir).absolutePath());
    m_controller->setRequantizeDir(QDir(m_dataDir).filePath(QStringLiteral("requantized")));
    if (!QDir().mkpath(m_dataDir)) {
        // Reported like any other store failure; the window stays usable.
        QMetaObject::invokeMethod(
            this, [this] { emit failed(tr("Cannot create the data folder %1.").arg(m_dataDir)); },
            Qt::QueuedConnection);
        return;
    }
    m_openRequest = m_store->open(databasePath());
}

QString AppContext::databasePath() const
{
    return QDir(m_dataDir).filePath(QStringLiteral("glassbox.sqlite"));
}

QString AppContext::defaultDataDir()
{
    QString dir = QStandardPaths::writableLocation(QStandardPaths::GenericDataLocation);
    if (dir.isEmpty())
        dir = QDir::homePath() + QStringLiteral("/.local/share");
    return dir + QStringLiteral("/glassbox");
}

QStringList AppContext::defaultModelFolders()
{
    QStringList dirs;
#ifdef GLASSBOX_SOURCE_MODEL_DIR
    dirs << QStringLiteral(GLASSBOX_SOURCE_MODEL_DIR);
#endif
    const QString appDir = QCoreApplication::applicationDirPath();
    if (!appDir.isEmpty()) {
        dirs << appDir + QStringLiteral("/models") << appDir + QStringLiteral("/../models")
             << appDir + QStringLiteral("/../share/glassbox/models");
    }
    dirs << defaultDataDir() + QStringLiteral("/models") << QStringLiteral("/usr/share/glassbox/models");
    for (QString &d : dirs)
        d = QDir::cleanPath(d);
    dirs.removeDuplicates();
    return dirs;
}

QString AppContext::findDefaultModel()
{
    for (const QString &dir : defaultModelFolders()) {
        const QFileInfo fi(QDir(dir).filePath(defaultModelFileName()));
        if (fi.isFile() && fi.size() > 0)
            return fi.absoluteFilePath();
    }
    return {};
}
