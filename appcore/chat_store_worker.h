// The store thread's side of ChatStore: owns the QSqlDatabase connection
// (opened, used and closed only on that thread) and runs the requests.
// Results go back by emitting the ChatStore's signals on the ChatStore's thread.
#pragma once

#include "chat_store.h"

#include <QHash>
#include <QObject>
#include <QSqlDatabase>
#include <QSqlError>

#include <optional>

class QSqlQuery;
class QTimer;

class ChatStoreWorker : public QObject {
    Q_OBJECT
public:
    explicit ChatStoreWorker(ChatStore *store);
    ~ChatStoreWorker() override;

    void open(quint64 req, const QString &path, const ChatStore::OpenParams &params);
    void close(quint64 req);
    void flush(quint64 req);
    void integrityCheck(quint64 req);
    void shutdown();

    void createConversation(quint64 req, const QString &title, const QString &systemPrompt,
                            const QJsonObject &settings);
    void updateConversation(quint64 req, qint64 conversationId, const QString &column, const QVariant &value);
    void deleteConversation(quint64 req, qint64 conversationId);
    void listConversations(quint64 req);
    void searchConversations(quint64 req, const QString &text);

    void appendMessages(quint64 req, qint64 conversationId, qint64 parentId, const QList<MessageDraft> &drafts);
    void editMessage(quint64 req, qint64 messageId, const QString &content);
    void updateStreamingMessage(qint64 messageId, const QString &content);
    void finishStreamingMessage(quint64 req, qint64 messageId, const QString &content, MessageState state,
                                const QJsonObject &stats);
    void listSiblings(quint64 req, qint64 messageId);
    void switchBranch(quint64 req, qint64 messageId);
    void loadActivePath(quint64 req, qint64 conversationId);

    void savePreset(quint64 req, const PresetRecord &preset);
    void deletePreset(quint64 req, qint64 presetId);
    void listPresets(quint64 req);

    void setSettings(quint64 req, const QVariantMap &values);
    void loadSettings(quint64 req);

    void addModelEntry(quint64 req, const QString &path, const QJsonObject &metadata);
    void removeModelEntry(quint64 req, qint64 entryId);
    void listModelEntries(quint64 req);

    void savePerfRun(quint64 req, const QJsonObject &data);
    void listPerfRuns(quint64 req);

private:
    struct Failure {
        ChatStore::ErrorKind kind;
        QString message;
    };

    template <typename Fn>
    void deliver(Fn fn);
    void fail(quint64 req, const QString &what, const Failure &failure);
    void fail(quint64 req, const QString &what) { fail(req, what, takeFailure()); }
    Failure takeFailure();
    bool sqlFailed(const QSqlError &error);              // records it; returns false
    bool failWith(ChatStore::ErrorKind kind, const QString &message);  // records it; returns false

    bool ensureOpen(quint64 req, const QString &what);
    // prepare + bind + exec; on failure records the error and returns false.
    bool exec(QSqlQuery &q, const QString &sql, const QVariantList &binds = {});
    template <typename Fn>
    bool transact(quint64 req, const QString &what, Fn body);
    void closeDatabase();
    void flushPending();

    std::optional<ConversationRecord> fetchConversation(qint64 conversationId);
    std::optional<MessageRecord> fetchMessage(qint64 messageId);
    std::optional<QList<MessageRecord>> activePathOf(qint64 conversationId);
    std::optional<QList<MessageRecord>> childrenOf(qint64 conversationId, qint64 parentId);

    ChatStore *m_store;
    QString m_connectionName;
    bool m_open = false;
    ChatStore::OpenParams m_params;
    QHash<qint64, QString> m_pending;  // streamed text not yet written, by message id
    QTimer *m_flushTimer = nullptr;
    std::optional<Failure> m_failure;
};

// ---- templates used by the worker's .cpp files

template <typename Fn>
inline void ChatStoreWorker::deliver(Fn fn)
{
    QMetaObject::invokeMethod(m_store, std::move(fn), Qt::QueuedConnection);
}

template <typename Fn>
inline bool ChatStoreWorker::transact(quint64 req, const QString &what, Fn body)
{
    QSqlDatabase db = QSqlDatabase::database(m_connectionName, false);
    if (!db.transaction()) {
        sqlFailed(db.lastError());
        fail(req, what);
        return false;
    }
    if (!body()) {
        db.rollback();
        fail(req, what);
        return false;
    }
    if (!db.commit()) {
        sqlFailed(db.lastError());
        db.rollback();
        fail(req, what);
        return false;
    }
    return true;
}
