// ChatStore: the SQLite history (conversations as message trees, presets,
// settings, model library, perf runs) on its own thread. Every request method
// returns at once with a request id; its result (or errorOccurred) arrives
// later as a signal carrying that id, emitted on the thread that owns the
// ChatStore. Requests run in the order they were made.
#pragma once

#include "app_types.h"

#include <QObject>
#include <QVariantMap>

#include <functional>

class QThread;
class ChatStoreWorker;

class ChatStore : public QObject {
    Q_OBJECT
public:
    enum class ErrorKind {
        OpenFailed,      // folder or file cannot be created / opened
        ReadOnly,        // the database cannot be written
        DiskFull,
        Corrupt,         // not a database, or a damaged one
        NewerSchema,     // written by a newer Glassbox
        NotOpen,
        NotFound,        // the conversation / message does not exist
        InvalidArgument,
        Sql,             // anything else SQLite reports
    };
    Q_ENUM(ErrorKind)

    struct OpenParams {
        int streamWriteIntervalMs = 250;  // streamed replies are written at most this often
        qint64 maxPageCount = 0;          // > 0: cap the file size (tests simulate a full disk)
    };

    explicit ChatStore(QObject *parent = nullptr);
    ~ChatStore() override;  // writes what is pending, closes the database, joins the thread

    static int schemaVersion();  // the version this build creates and migrates to

    // ---- requests (callable from the owning thread; results by signal) ----
    quint64 open(const QString &path, const OpenParams &params);
    quint64 open(const QString &path) { return open(path, OpenParams{}); }
    quint64 close();
    quint64 flush();           // writes pending streamed text; then flushed()
    quint64 integrityCheck();  // PRAGMA integrity_check

    quint64 createConversation(const QString &title, const QString &systemPrompt = {},
                               const QJsonObject &settings = {});
    quint64 renameConversation(qint64 conversationId, const QString &title);
    quint64 setConversationPinned(qint64 conversationId, bool pinned);
    quint64 setConversationSystemPrompt(qint64 conversationId, const QString &systemPrompt);
    quint64 setConversationSettings(qint64 conversationId, const QJsonObject &settings);
    quint64 deleteConversation(qint64 conversationId);
    quint64 listConversations();                 // pinned first, then most recently updated
    quint64 searchConversations(const QString &text);  // titles and message text

    // Appends a chain of messages under parentId (0: a new root) in one
    // transaction, each the child of the one before, and makes the chain the
    // active branch. An earlier parent makes a sibling branch.
    quint64 appendMessages(qint64 conversationId, qint64 parentId, const QList<MessageDraft> &drafts);
    // A sibling of messageId with the same role and new content (made active).
    quint64 editMessage(qint64 messageId, const QString &content);
    // Streamed text of a reply: kept in memory and written at most every
    // streamWriteIntervalMs (reads through the store see it at once).
    void updateStreamingMessage(qint64 messageId, const QString &content);
    // The final text, state and stats of a reply, written now.
    quint64 finishStreamingMessage(qint64 messageId, const QString &content, MessageState state,
                                   const QJsonObject &stats);
    quint64 listSiblings(qint64 messageId);
    quint64 switchBranch(qint64 messageId);      // makes messageId the active child of its parent
    quint64 loadActivePath(qint64 conversationId);

    quint64 savePreset(const PresetRecord &preset);  // by name: insert or replace
    quint64 deletePreset(qint64 presetId);
    quint64 listPresets();

    quint64 setSetting(const QString &key, const QVariant &value);
    quint64 setSettings(const QVariantMap &values);  // one transaction
    quint64 loadSettings();

    quint64 addModelEntry(const QString &path, const QJsonObject &metadata);  // by path: insert or update
    quint64 removeModelEntry(qint64 entryId);
    quint64 listModelEntries();

    quint64 savePerfRun(const QJsonObject &data);
    quint64 listPerfRuns();

signals:
    void opened(quint64 requestId, const QString &path, int migratedFromVersion);
    void closed(quint64 requestId);
    void flushed(quint64 requestId);
    void integrityChecked(quint64 requestId, const QString &result);
    void errorOccurred(quint64 requestId, ChatStore::ErrorKind kind, const QString &message);

    void conversationCreated(quint64 requestId, const ConversationRecord &conversation);
    void conversationUpdated(quint64 requestId, const ConversationRecord &conversation);
    void conversationDeleted(quint64 requestId, qint64 conversationId);
    void conversationsListed(quint64 requestId, const QList<ConversationRecord> &conversations);
    void searchFinished(quint64 requestId, const QString &text, const QList<ConversationRecord> &hits);

    void messagesAppended(quint64 requestId, qint64 conversationId, const QList<MessageRecord> &messages);
    void messageFinished(quint64 requestId, const MessageRecord &message);
    void siblingsListed(quint64 requestId, qint64 messageId, const QList<MessageRecord> &siblings);
    void branchSwitched(quint64 requestId, qint64 conversationId, const QList<MessageRecord> &activePath);
    void activePathLoaded(quint64 requestId, qint64 conversationId, const QList<MessageRecord> &activePath);

    void presetSaved(quint64 requestId, const PresetRecord &preset);
    void presetDeleted(quint64 requestId, qint64 presetId);
    void presetsListed(quint64 requestId, const QList<PresetRecord> &presets);

    void settingsWritten(quint64 requestId);
    void settingsLoaded(quint64 requestId, const QVariantMap &values);

    void modelEntryAdded(quint64 requestId, const ModelEntry &entry);
    void modelEntryRemoved(quint64 requestId, qint64 entryId);
    void modelEntriesListed(quint64 requestId, const QList<ModelEntry> &entries);

    void perfRunSaved(quint64 requestId, const PerfRunRecord &run);
    void perfRunsListed(quint64 requestId, const QList<PerfRunRecord> &runs);

private:
    friend class ChatStoreWorker;
    quint64 post(std::function<void(ChatStoreWorker *, quint64)> job);

    QThread *m_thread = nullptr;
    ChatStoreWorker *m_worker = nullptr;
    quint64 m_nextRequestId = 0;
};

Q_DECLARE_METATYPE(ChatStore::ErrorKind)
