// ModelLibraryDialog: the models Glassbox knows (kept in the store): add GGUF
// files or whole folders (read on a worker thread), see what each one is and
// whether it fits in memory, load one, or download one from Hugging Face.
#pragma once

#include "model_metadata.h"

#include <QDialog>
#include <QHash>

class ChatStore;
class ModelDownloader;
class QLabel;
class QLineEdit;
class QProgressBar;
class QPushButton;
class QTreeWidget;

class ModelLibraryDialog : public QDialog {
    Q_OBJECT
public:
    // downloadDir: where downloads go (created when needed).
    ModelLibraryDialog(ChatStore *store, const QString &downloadDir, QWidget *parent = nullptr);

    QTreeWidget *table() const { return m_table; }
    ModelDownloader *downloader() const { return m_downloader; }
    QList<GgufSummary> models() const { return m_models; }
    int pendingReads() const { return m_pending; }
    QString lastError() const { return m_lastError; }
    // The memory the warnings compare against (tests set it; default: /proc/meminfo).
    void setAvailableMemoryOverride(qint64 bytes) { m_memoryOverride = bytes; refreshTable(); }

public slots:
    void refresh();  // re-reads the list from the store
    // Files and folders (searched for *.gguf); each file is read on a worker thread.
    void addPaths(const QStringList &paths);
    void removeSelected();
    void loadSelected();
    // From the URL field (a Hugging Face file URL) and the optional SHA-256 field.
    void startDownloadFromFields();
    void startDownload(const QUrl &url, const QString &fileName, qint64 expectedSize = -1,
                       const QByteArray &expectedSha256 = {});
    void cancelDownload();

signals:
    void loadRequested(const QString &path);
    void modelAdded(const QString &path);
    void modelRejected(const QString &path, const QString &message);

private:
    void readFile(const QString &path);
    void refreshTable();
    void updateDetails();  // the selected model's line and memory warning
    void showError(const QString &title, const QString &message);
    QString selectedPath() const;
    qint64 availableMemory() const;

    ChatStore *m_store;
    QString m_downloadDir;
    QList<GgufSummary> m_models;
    QHash<QString, qint64> m_entryIds;  // path -> store id
    QTreeWidget *m_table = nullptr;
    QLabel *m_details = nullptr;
    QLabel *m_warning = nullptr;
    QPushButton *m_load = nullptr;
    QPushButton *m_remove = nullptr;
    QLineEdit *m_url = nullptr;
    QLineEdit *m_sha = nullptr;
    QPushButton *m_download = nullptr;
    QPushButton *m_cancel = nullptr;
    QProgressBar *m_progress = nullptr;
    QLabel *m_downloadStatus = nullptr;
    ModelDownloader *m_downloader = nullptr;
    int m_pending = 0;
    qint64 m_memoryOverride = -2;
    QString m_lastError;
};
