// ChatController: turns user actions into store requests and engine requests,
// and their results into snapshots. Every step is asynchronous; pending store
// requests are remembered by id together with what should follow them.
#include "chat_controller.h"

#include "chat_store.h"
#include "engine_worker.h"
#include "settings.h"

namespace {

QString titleFrom(const QString &text)
{
    QString t = text.simplified();
    if (t.size() > 48)
        t = t.left(47) + QStringLiteral("…");
    return t.isEmpty() ? QStringLiteral("New chat") : t;
}

}  // namespace

ChatController::ChatController(ChatStore *store, EngineWorker *engine, Settings *settings, QObject *parent)
    : QObject(parent)
    , m_store(store)
    , m_engine(engine)
    , m_settings(settings)
{
    registerAppCoreMetaTypes();
    qRegisterMetaType<GenerationState>();
    qRegisterMetaType<ChatSnapshot>();
    connectStore();
    connectEngine();
    if (m_settings)
        connect(m_settings, &Settings::changed, this,
                [this](Settings::Key key, const QVariant &, bool needsReload) { onSettingChanged(int(key), needsReload); });
}

ChatController::~ChatController()
{
    // Replies in progress are stopped; what they wrote so far stays (as cancelled).
    for (const GenerationState &g : std::as_const(m_generations)) {
        m_engine->cancel(g.requestId);
        m_store->finishStreamingMessage(g.messageId, g.text, MessageState::Cancelled, {});
    }
}

// ---- wiring -----------------------------------------------------------------------

void ChatController::connectStore()
{
    connect(m_store, &ChatStore::conversationsListed, this, [this](quint64, const QList<ConversationRecord> &list) {
        m_conversations = list;
        for (const ConversationRecord &c : list)
            if (c.id == m_snapshot.conversation.id)
                m_snapshot.conversation = c;
        emit conversationsChanged();
    });
    connect(m_store, &ChatStore::conversationCreated, this, [this](quint64 req, const ConversationRecord &c) {
        const auto it = m_pendingCreates.constFind(req);
        if (it == m_pendingCreates.constEnd())
            return;
        const PendingSend send = *it;
        m_pendingCreates.erase(it);
        if (req == m_pendingNew)
            m_pendingNew = 0;
        ConversationRecord created = c;
        if (send.untitled && !send.text.isEmpty()) {
            created.title = titleFrom(send.text);
            m_store->renameConversation(c.id, created.title);
        }
        refreshConversations();
        m_snapshot = ChatSnapshot{};
        m_snapshot.conversation = created;
        m_pathRequest = 0;
        emit currentConversationChanged(c.id);
        emit snapshotChanged();
        if (!send.text.isEmpty())
            sendToCurrent(send.text);
    });
    auto updated = [this](quint64, const ConversationRecord &c) {
        if (c.id == m_snapshot.conversation.id) {
            m_snapshot.conversation = c;
            emit snapshotChanged();
        }
        refreshConversations();
    };
    connect(m_store, &ChatStore::conversationUpdated, this, updated);
    connect(m_store, &ChatStore::conversationDeleted, this, [this](quint64, qint64) { refreshConversations(); });
    connect(m_store, &ChatStore::searchFinished, this,
            [this](quint64, const QString &text, const QList<ConversationRecord> &hits) {
                emit searchResultsReady(text, hits);
            });
    connect(m_store, &ChatStore::messagesAppended, this, &ChatController::onMessagesAppended);
    connect(m_store, &ChatStore::activePathLoaded, this,
            [this](quint64 req, qint64 conversationId, const QList<MessageRecord> &path) {
                if (req == m_pathRequest)
                    onPathLoaded(conversationId, path);
            });
    connect(m_store, &ChatStore::branchSwitched, this,
            [this](quint64, qint64 conversationId, const QList<MessageRecord> &path) {
                onPathLoaded(conversationId, path);
            });
    connect(m_store, &ChatStore::siblingsListed, this,
            [this](quint64 req, qint64 messageId, const QList<MessageRecord> &siblings) {
                const auto it = m_pendingSiblingMoves.constFind(req);
                if (it == m_pendingSiblingMoves.constEnd())
                    return;
                const int delta = *it;
                m_pendingSiblingMoves.erase(it);
                for (int i = 0; i < siblings.size(); ++i)
                    if (siblings[i].id == messageId) {
                        const int to = i + delta;
                        if (to >= 0 && to < siblings.size())
                            switchBranch(siblings[to].id);
                    }
            });
    connect(m_store, &ChatStore::messageFinished, this, [this](quint64, const MessageRecord &m) {
        if (m.conversationId == m_snapshot.conversation.id) {
            const int i = indexInPath(m.id);
            if (i >= 0) {
                const MessageRecord old = m_snapshot.messages[i];
                m_snapshot.messages[i] = m;
                m_snapshot.messages[i].siblingIndex = old.siblingIndex;
                m_snapshot.messages[i].siblingCount = old.siblingCount;
                emit snapshotChanged();
            }
        }
        emit replyFinished(m.conversationId, m);
        refreshConversations();
    });
    connect(m_store, &ChatStore::errorOccurred, this,
            [this](quint64 req, ChatStore::ErrorKind, const QString &message) {
                m_pendingAppends.remove(req);
                m_pendingCreates.remove(req);
                if (req == m_pendingNew)
                    m_pendingNew = 0;
                m_pendingSiblingMoves.remove(req);
                if (req == m_pathRequest) {
                    m_snapshot.loading = false;
                    emit snapshotChanged();
                }
                emit errorOccurred(message);
            });
}

void ChatController::connectEngine()
{
    connect(m_engine, &EngineWorker::modelLoaded, this, [this](quint64 req, const ModelInfo &info) {
        if (req == m_settingsReload)
            m_settingsReload = 0;
        if (const auto it = m_requestConfigs.constFind(req); it != m_requestConfigs.constEnd())
            m_appliedConfig = *it;
        m_requestConfigs.remove(req);
        // Remembered for the next start only once it has loaded.
        if (m_modelLoads.remove(req) && m_settings && !info.path.isEmpty())
            m_settings->setValue(Settings::Key::ModelPath, info.path);
    });
    connect(m_engine, &EngineWorker::modelLoadFailed, this, [this](quint64 req, const QString &message) {
        m_requestConfigs.remove(req);
        m_modelLoads.remove(req);
        if (req != m_settingsReload)
            return;
        m_settingsReload = 0;
        // The engine runs as before: the settings say so again (a cancelled
        // reload was superseded by a newer one, which applies them all).
        if (!message.contains(QLatin1String("cancelled")) && m_engine->isModelLoaded())
            revertEngineSettings();
    });
    connect(m_engine, &EngineWorker::generationStarted, this, [this](quint64 req, qint64) {
        const qint64 conv = m_requestConversation.value(req);
        if (!m_generations.contains(conv))
            return;
        m_generations[conv].phase = GenerationState::Phase::Generating;
        emit generationStateChanged(conv);
        if (conv == m_snapshot.conversation.id) {
            m_snapshot.generation = m_generations[conv];
            emit snapshotChanged();
        }
    });
    connect(m_engine, &EngineWorker::tokenGenerated, this, [this](quint64 req, const GeneratedToken &token) {
        const qint64 conv = m_requestConversation.value(req);
        const auto it = m_generations.find(conv);
        if (it == m_generations.end() || it->requestId != req)
            return;
        it->text += token.text;
        ++it->tokens;
        m_tokens[it->messageId].append(token);
        m_store->updateStreamingMessage(it->messageId, it->text);
        if (conv == m_snapshot.conversation.id) {
            m_snapshot.generation = *it;
            const int i = indexInPath(it->messageId);
            if (i >= 0)
                m_snapshot.messages[i].content = it->text;
        }
        emit tokenReceived(conv, it->messageId, token);
        if (conv == m_snapshot.conversation.id)
            emit snapshotChanged();
    });
    connect(m_engine, &EngineWorker::generationFinished, this,
            [this](quint64 req, const GenerationStats &stats, const QString &text) {
                const bool cancelled = stats.stopReason == QLatin1String("cancelled");
                finishGeneration(req, cancelled ? MessageState::Cancelled : MessageState::Complete, text,
                                 stats.toJson());
            });
    connect(m_engine, &EngineWorker::generationFailed, this, [this](quint64 req, const QString &message) {
        const qint64 conv = m_requestConversation.value(req);
        const QString partial = m_generations.value(conv).text;
        finishGeneration(req, MessageState::Failed, partial, QJsonObject{{"error", message}});
        emit errorOccurred(message);
    });
}

void ChatController::onSettingChanged(int key, bool needsReload)
{
    if (!needsReload || !m_engine->isModelLoaded() || m_reverting)
        return;
    using K = Settings::Key;
    const auto k = K(key);
    const EngineConfig config = engineConfig();
    // A newer setting supersedes a reload still running for an older one
    // (a cancelled load keeps the model as it was; this one then applies all).
    // Backend, GPU layers, KV type and weight format change how the weights
    // are placed or stored: a full load. The rest only needs a new session
    // over the same weights - unless it supersedes a full load not done yet.
    bool full = k == K::Backend || k == K::GpuLayers || k == K::KvCacheType || k == K::WeightFormat ||
                k == K::WeightFormatAttention || k == K::WeightFormatFeedForward || k == K::WeightFormatEmbedding ||
                k == K::WeightFormatOutput;
    if (m_settingsReload) {
        m_engine->cancelLoad(m_settingsReload);
        full = full || m_settingsReloadFull;
    }
    m_settingsReloadFull = full;
    m_settingsReload = full ? m_engine->loadModel(m_engine->modelInfo().path, config) : m_engine->reconfigure(config);
    m_requestConfigs.insert(m_settingsReload, config);
}

void ChatController::revertEngineSettings()
{
    using K = Settings::Key;
    const EngineConfig &c = m_appliedConfig;
    const QList<QPair<K, QVariant>> values = {
        {K::Backend, c.backend},
        {K::GpuLayers, c.gpuLayers},
        {K::PreciseDecode, c.preciseDecode},
        {K::Threads, c.threads},
        {K::ContextLength, c.contextLength},
        {K::BatchSize, c.batchSize},
        {K::KvCacheType, c.kvCacheType},
        {K::WeightFormat, c.weightFormat},
        {K::WeightFormatAttention, c.weightFormatAttention},
        {K::WeightFormatFeedForward, c.weightFormatFeedForward},
        {K::WeightFormatEmbedding, c.weightFormatEmbedding},
        {K::WeightFormatOutput, c.weightFormatOutput},
    };
    m_reverting = true;
    for (const auto &[key, value] : values)
        m_settings->setValue(key, value);
    m_reverting = false;
}

EngineConfig ChatController::engineConfig() const
{
    EngineConfig config = m_settings ? m_settings->engineConfig() : EngineConfig{};
    config.requantizeDir = m_requantizeDir;
    return config;
}

quint64 ChatController::loadModel(const QString &path)
{
    const EngineConfig config = engineConfig();
    const quint64 id = m_engine->loadModel(path, config);
    m_modelLoads.insert(id);
    m_requestConfigs.insert(id, config);
    return id;
}

// ---- conversations ------------------------------------------------------------------

void ChatController::refreshConversations()
{
    m_store->listConversations();
}

void ChatController::newConversation(const QString &title)
{
    const QString prompt = m_settings ? m_settings->systemPrompt() : QString();
    m_pendingNew = m_store->createConversation(title.isEmpty() ? QStringLiteral("New chat") : title, prompt);
    m_pendingCreates.insert(m_pendingNew, PendingSend{QString(), title.isEmpty()});
}

void ChatController::openConversation(qint64 conversationId)
{
    ChatSnapshot s;
    s.conversation.id = conversationId;
    for (const ConversationRecord &c : std::as_const(m_conversations))
        if (c.id == conversationId)
            s.conversation = c;
    s.generation = m_generations.value(conversationId);
    s.loading = true;
    m_snapshot = s;
    m_pathRequest = m_store->loadActivePath(conversationId);
    emit currentConversationChanged(conversationId);
    emit snapshotChanged();
}

void ChatController::renameConversation(qint64 conversationId, const QString &title)
{
    m_store->renameConversation(conversationId, title);
}

void ChatController::setConversationPinned(qint64 conversationId, bool pinned)
{
    m_store->setConversationPinned(conversationId, pinned);
}

void ChatController::deleteConversation(qint64 conversationId)
{
    if (const auto it = m_generations.constFind(conversationId); it != m_generations.constEnd())
        m_engine->cancel(it->requestId);
    m_store->deleteConversation(conversationId);
    if (conversationId == m_snapshot.conversation.id) {
        m_snapshot = ChatSnapshot{};
        m_pathRequest = 0;
        emit currentConversationChanged(0);
        emit snapshotChanged();
    }
}

void ChatController::setSystemPrompt(const QString &systemPrompt)
{
    if (m_snapshot.conversation.id != 0)
        m_store->setConversationSystemPrompt(m_snapshot.conversation.id, systemPrompt);
}

void ChatController::search(const QString &text)
{
    m_store->searchConversations(text);
}

// ---- messages -----------------------------------------------------------------------

int ChatController::indexInPath(qint64 messageId) const
{
    for (int i = 0; i < m_snapshot.messages.size(); ++i)
        if (m_snapshot.messages[i].id == messageId)
            return i;
    return -1;
}

QList<ChatTurn> ChatController::turnsUpTo(qint64 messageId) const
{
    QList<ChatTurn> turns;
    if (messageId == 0)
        return turns;
    for (const MessageRecord &m : m_snapshot.messages) {
        if (m.role != QLatin1String("system"))
            turns.append(ChatTurn{m.role, m.content});
        if (m.id == messageId)
            break;
    }
    return turns;
}

bool ChatController::appendAndGenerate(qint64 parentId, const QList<MessageDraft> &drafts, bool generate)
{
    const qint64 conv = m_snapshot.conversation.id;
    if (conv == 0 || (generate && m_generations.contains(conv)) || m_snapshot.loading)
        return false;
    PendingAppend op;
    op.conversationId = conv;
    op.systemPrompt = m_snapshot.conversation.systemPrompt;
    op.settings = m_snapshot.conversation.settings;
    if (generate) {
        op.prompt = turnsUpTo(parentId);
        for (const MessageDraft &d : drafts)
            if (d.state != MessageState::Streaming)
                op.prompt.append(ChatTurn{d.role, d.content});
    }
    m_pendingAppends.insert(m_store->appendMessages(conv, parentId, drafts), op);
    return true;
}

bool ChatController::sendMessage(const QString &text)
{
    if (text.trimmed().isEmpty())
        return false;
    if (m_pendingNew) {
        // "New chat" was asked for and is still being made: the message goes
        // there (not into another new conversation, nor the one shown).
        PendingSend &send = m_pendingCreates[m_pendingNew];
        if (!send.text.isEmpty())
            return false;  // one message waits already
        send.text = text;
        return true;
    }
    if (m_snapshot.conversation.id == 0) {
        const QString prompt = m_settings ? m_settings->systemPrompt() : QString();
        m_pendingCreates.insert(m_store->createConversation(titleFrom(text), prompt), PendingSend{text});
        return true;
    }
    return sendToCurrent(text);
}

bool ChatController::sendToCurrent(const QString &text)
{
    const qint64 parent = m_snapshot.messages.isEmpty() ? 0 : m_snapshot.messages.last().id;
    const bool untitled = m_snapshot.messages.isEmpty() && !m_snapshot.loading &&
                          m_snapshot.conversation.title == QLatin1String("New chat") &&
                          !m_generations.contains(m_snapshot.conversation.id);
    if (untitled)  // a chat made with "New chat" takes its title from its first message
        renameConversation(m_snapshot.conversation.id, titleFrom(text));
    return appendAndGenerate(parent,
                             {MessageDraft{QStringLiteral("user"), text, MessageState::Complete, {}},
                              MessageDraft{QStringLiteral("assistant"), QString(), MessageState::Streaming, {}}},
                             true);
}

bool ChatController::regenerate(qint64 assistantMessageId)
{
    int i = assistantMessageId ? indexInPath(assistantMessageId) : -1;
    if (assistantMessageId == 0)
        for (int k = int(m_snapshot.messages.size()) - 1; k >= 0 && i < 0; --k)
            if (m_snapshot.messages[k].role == QLatin1String("assistant"))
                i = k;
    if (i < 0 || m_snapshot.messages[i].role != QLatin1String("assistant"))
        return false;
    return appendAndGenerate(m_snapshot.messages[i].parentId,
                             {MessageDraft{QStringLiteral("assistant"), QString(), MessageState::Streaming, {}}}, true);
}

bool ChatController::editMessage(qint64 messageId, const QString &text)
{
    const int i = indexInPath(messageId);
    if (i < 0)
        return false;
    const MessageRecord &m = m_snapshot.messages[i];
    if (m.role == QLatin1String("user"))
        return appendAndGenerate(m.parentId,
                                 {MessageDraft{m.role, text, MessageState::Complete, {}},
                                  MessageDraft{QStringLiteral("assistant"), QString(), MessageState::Streaming, {}}},
                                 true);
    return appendAndGenerate(m.parentId, {MessageDraft{m.role, text, MessageState::Complete, {}}}, false);
}

void ChatController::switchBranch(qint64 messageId)
{
    m_store->switchBranch(messageId);
}

void ChatController::switchSibling(qint64 messageId, int delta)
{
    m_pendingSiblingMoves.insert(m_store->listSiblings(messageId), delta);
}

void ChatController::stop()
{
    if (const auto it = m_generations.constFind(m_snapshot.conversation.id); it != m_generations.constEnd())
        m_engine->cancel(it->requestId);
}

void ChatController::onMessagesAppended(quint64 req, qint64 conversationId, const QList<MessageRecord> &records)
{
    const auto it = m_pendingAppends.constFind(req);
    if (it == m_pendingAppends.constEnd())
        return;
    const PendingAppend op = *it;
    m_pendingAppends.erase(it);
    if (conversationId == m_snapshot.conversation.id && !records.isEmpty()) {
        // The new chain replaces whatever followed its parent on the active path.
        const qint64 parent = records.first().parentId;
        const int keep = parent == 0 ? 0 : indexInPath(parent) + 1;
        m_snapshot.messages = m_snapshot.messages.mid(0, keep) + records;
    }
    if (!op.prompt.isEmpty() && !records.isEmpty() && records.last().state == MessageState::Streaming)
        startGeneration(op, records.last().id);
    if (conversationId == m_snapshot.conversation.id)
        emit snapshotChanged();
    refreshConversations();
}

void ChatController::startGeneration(const PendingAppend &op, qint64 messageId)
{
    GenerationRequest request;
    request.conversationId = op.conversationId;
    request.messageId = messageId;
    request.systemPrompt = op.systemPrompt;
    request.messages = op.prompt;
    request.options = m_settings ? m_settings->generationOptions(op.settings) : GenerationOptions{};
    GenerationState g;
    g.phase = GenerationState::Phase::Queued;
    g.conversationId = op.conversationId;
    g.messageId = messageId;
    g.requestId = m_engine->generate(request);
    m_generations.insert(op.conversationId, g);
    m_requestConversation.insert(g.requestId, op.conversationId);
    if (op.conversationId == m_snapshot.conversation.id)
        m_snapshot.generation = g;
    emit generationStateChanged(op.conversationId);
}

void ChatController::finishGeneration(quint64 requestId, MessageState state, const QString &text,
                                      const QJsonObject &stats)
{
    const qint64 conv = m_requestConversation.take(requestId);
    const auto it = m_generations.constFind(conv);
    if (it == m_generations.constEnd() || it->requestId != requestId)
        return;
    const qint64 messageId = it->messageId;
    m_generations.erase(it);
    // messageFinished (from the store) then refreshes the snapshot's message.
    m_store->finishStreamingMessage(messageId, text, state, stats);
    if (conv == m_snapshot.conversation.id) {
        m_snapshot.generation = GenerationState{};
        const int i = indexInPath(messageId);
        if (i >= 0) {
            m_snapshot.messages[i].content = text;
            m_snapshot.messages[i].state = state;
            m_snapshot.messages[i].stats = stats;
        }
        emit snapshotChanged();
    }
    emit generationStateChanged(conv);
}

void ChatController::applyOverlay(QList<MessageRecord> &path) const
{
    const auto it = m_generations.constFind(m_snapshot.conversation.id);
    if (it == m_generations.constEnd())
        return;
    for (MessageRecord &m : path)
        if (m.id == it->messageId) {
            m.content = it->text;
            m.state = MessageState::Streaming;
        }
}

void ChatController::onPathLoaded(qint64 conversationId, const QList<MessageRecord> &path)
{
    if (conversationId != m_snapshot.conversation.id)
        return;
    m_snapshot.messages = path;
    applyOverlay(m_snapshot.messages);
    m_snapshot.generation = m_generations.value(conversationId);
    m_snapshot.loading = false;
    emit snapshotChanged();
}
