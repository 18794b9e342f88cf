// ChatController: the GUI thread's model of the chat. Ties ChatStore (history)
// and EngineWorker (generation): send, stop, regenerate, edit, switch branch,
// with any number of conversations generating in the background. The UI reads
// immutable snapshots and listens to the change signals; nothing here blocks.
#pragma once

#include "app_types.h"

#include <QHash>
#include <QSet>
#include <QObject>

class ChatStore;
class EngineWorker;
class Settings;

// Generation of one conversation's reply.
struct GenerationState {
    enum class Phase { Idle, Queued, Generating };
    Phase phase = Phase::Idle;
    qint64 conversationId = 0;
    qint64 messageId = 0;     // the assistant message being written
    quint64 requestId = 0;    // EngineWorker request
    QString text;             // streamed so far
    int tokens = 0;
    bool active() const { return phase != Phase::Idle; }
};

// What the chat view shows: the current conversation and its active branch.
struct ChatSnapshot {
    ConversationRecord conversation;  // id 0: none open
    QList<MessageRecord> messages;    // root to leaf; a streaming reply has its text so far
    GenerationState generation;       // of this conversation
    bool loading = false;             // the path is being read from the store
};

Q_DECLARE_METATYPE(GenerationState)
Q_DECLARE_METATYPE(ChatSnapshot)

class ChatController : public QObject {
    Q_OBJECT
public:
    // Does not take ownership; destroy it before the store and the engine.
    // settings may be null (defaults are used).
    ChatController(ChatStore *store, EngineWorker *engine, Settings *settings, QObject *parent = nullptr);
    ~ChatController() override;

    QList<ConversationRecord> conversations() const { return m_conversations; }
    qint64 currentConversationId() const { return m_snapshot.conversation.id; }
    ChatSnapshot snapshot() const { return m_snapshot; }
    GenerationState generationState(qint64 conversationId) const { return m_generations.value(conversationId); }
    bool isGenerating(qint64 conversationId) const { return m_generations.contains(conversationId); }
    // Tokens of replies generated in this run of the app (for probabilities
    // and alternatives on hover); empty for older messages.
    QList<GeneratedToken> tokens(qint64 messageId) const { return m_tokens.value(messageId); }

public slots:
    void refreshConversations();
    void newConversation(const QString &title = {});
    void openConversation(qint64 conversationId);
    void renameConversation(qint64 conversationId, const QString &title);
    void setConversationPinned(qint64 conversationId, bool pinned);
    void deleteConversation(qint64 conversationId);
    void setSystemPrompt(const QString &systemPrompt);  // of the current conversation
    void search(const QString &text);

    // Adds the user's message at the end of the active branch and generates
    // the reply (makes a conversation first if none is open). False when
    // text is empty or this conversation is already generating.
    bool sendMessage(const QString &text);
    void stop();  // the current conversation's generation
    // A new reply to the same user message (a sibling); 0: the last reply.
    bool regenerate(qint64 assistantMessageId = 0);
    // A user message: a sibling with the new text, then a new reply. Any
    // other message: a sibling with the new text only.
    bool editMessage(qint64 messageId, const QString &text);
    void switchBranch(qint64 messageId);
    void switchSibling(qint64 messageId, int delta);  // -1: previous branch, +1: next

    // Loads a model with the settings' engine configuration; remembers it in
    // the settings once it has loaded (a failed load keeps the old one).
    quint64 loadModel(const QString &path);
    // Where requantized copies of models are kept (EngineConfig::requantizeDir).
    void setRequantizeDir(const QString &dir) { m_requantizeDir = dir; }
    EngineConfig engineConfig() const;
    // The reload started by the last engine setting change (0: none running).
    quint64 settingsReloadRequest() const { return m_settingsReload; }

signals:
    void conversationsChanged();
    void currentConversationChanged(qint64 conversationId);
    void snapshotChanged();  // messages or generation of the current conversation
    void tokenReceived(qint64 conversationId, qint64 messageId, const GeneratedToken &token);
    void generationStateChanged(qint64 conversationId);
    void replyFinished(qint64 conversationId, const MessageRecord &message);
    void searchResultsReady(const QString &text, const QList<ConversationRecord> &hits);
    void errorOccurred(const QString &message);

private:
    struct PendingAppend {
        qint64 conversationId = 0;
        QList<ChatTurn> prompt;  // empty: no generation follows
        QString systemPrompt;
        QJsonObject settings;
    };
    struct PendingSend {
        QString text;
        bool untitled = false;  // made by newConversation(): takes its title from the first message
    };

    void connectStore();
    void connectEngine();
    void onMessagesAppended(quint64 req, qint64 conversationId, const QList<MessageRecord> &records);
    void onPathLoaded(qint64 conversationId, const QList<MessageRecord> &path);
    void startGeneration(const PendingAppend &op, qint64 messageId);
    void finishGeneration(quint64 requestId, MessageState state, const QString &text, const QJsonObject &stats);
    bool sendToCurrent(const QString &text);
    bool appendAndGenerate(qint64 parentId, const QList<MessageDraft> &drafts, bool generate);
    QList<ChatTurn> turnsUpTo(qint64 messageId) const;  // the active path up to and including messageId
    int indexInPath(qint64 messageId) const;
    void applyOverlay(QList<MessageRecord> &path) const;
    void onSettingChanged(int key, bool needsReload);
    void revertEngineSettings();  // to the configuration the engine runs with

    ChatStore *m_store;
    EngineWorker *m_engine;
    Settings *m_settings;

    QList<ConversationRecord> m_conversations;
    ChatSnapshot m_snapshot;
    quint64 m_pathRequest = 0;

    QHash<quint64, PendingAppend> m_pendingAppends;       // store request -> what follows
    QHash<quint64, PendingSend> m_pendingCreates;         // create request -> message to send
    QHash<quint64, int> m_pendingSiblingMoves;            // listSiblings request -> delta
    QHash<qint64, GenerationState> m_generations;         // by conversation id
    QHash<quint64, qint64> m_requestConversation;         // engine request -> conversation
    QHash<qint64, QList<GeneratedToken>> m_tokens;        // by message id
    quint64 m_pendingNew = 0;                             // newConversation() not created yet
    QSet<quint64> m_modelLoads;                           // loadModel() requests not finished
    quint64 m_settingsReload = 0;
    bool m_settingsReloadFull = false;                    // m_settingsReload is a full load
    QHash<quint64, EngineConfig> m_requestConfigs;         // load / reconfigure request -> its configuration
    EngineConfig m_appliedConfig;                         // of the last load / reconfigure that succeeded
    bool m_reverting = false;
    QString m_requantizeDir;
};
