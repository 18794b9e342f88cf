// ChatStore front end: posts each request to the worker on the store thread
// (FIFO through that thread's event queue) and hands out request ids.
#include "chat_store.h"

#include "chat_store_schema.h"
#include "chat_store_worker.h"

#include <QThread>

ChatStore::ChatStore(QObject *parent)
    : QObject(parent)
{
    registerAppCoreMetaTypes();
    qRegisterMetaType<ChatStore::ErrorKind>();
    m_thread = new QThread;
    m_thread->setObjectName(QStringLiteral("ChatStore"));
    m_worker = new ChatStoreWorker(this);
    m_worker->moveToThread(m_thread);
    m_thread->start();
}

ChatStore::~ChatStore()
{
    // The worker writes what is pending, closes the connection in its own
    // thread and stops the thread's event loop; everything posted before runs first.
    ChatStoreWorker *worker = m_worker;
    QMetaObject::invokeMethod(worker, [worker] { worker->shutdown(); }, Qt::QueuedConnection);
    m_thread->wait();
    delete m_worker;
    delete m_thread;
}

int ChatStore::schemaVersion()
{
    return kChatStoreSchemaVersion;
}

quint64 ChatStore::post(std::function<void(ChatStoreWorker *, quint64)> job)
{
    const quint64 requestId = ++m_nextRequestId;
    ChatStoreWorker *worker = m_worker;
    QMetaObject::invokeMethod(
        worker, [worker, requestId, job = std::move(job)] { job(worker, requestId); }, Qt::QueuedConnection);
    return requestId;
}

quint64 ChatStore::open(const QString &path, const OpenParams &params)
{
    return post([=](ChatStoreWorker *w, quint64 id) { w->open(id, path, params); });
}

quint64 ChatStore::close()
{
    return post([](ChatStoreWorker *w, quint64 id) { w->close(id); });
}

quint64 ChatStore::flush()
{
    return post([](ChatStoreWorker *w, quint64 id) { w->flush(id); });
}

quint64 ChatStore::integrityCheck()
{
    return post([](ChatStoreWorker *w, quint64 id) { w->integrityCheck(id); });
}

quint64 ChatStore::createConversation(const QString &title, const QString &systemPrompt, const QJsonObject &settings)
{
    return post([=](ChatStoreWorker *w, quint64 id) { w->createConversation(id, title, systemPrompt, settings); });
}

quint64 ChatStore::renameConversation(qint64 conversationId, const QString &title)
{
    return post([=](ChatStoreWorker *w, quint64 id) {
        w->updateConversation(id, conversationId, QStringLiteral("title"), title);
    });
}

quint64 ChatStore::setConversationPinned(qint64 conversationId, bool pinned)
{
    return post([=](ChatStoreWorker *w, quint64 id) {
        w->updateConversation(id, conversationId, QStringLiteral("pinned"), pinned ? 1 : 0);
    });
}

quint64 ChatStore::setConversationSystemPrompt(qint64 conversationId, const QString &systemPrompt)
{
    return post([=](ChatStoreWorker *w, quint64 id) {
        w->updateConversation(id, conversationId, QStringLiteral("system_prompt"), systemPrompt);
    });
}

quint64 ChatStore::setConversationSettings(qint64 conversationId, const QJsonObject &settings)
{
    return post([=](ChatStoreWorker *w, quint64 id) {
        w->updateConversation(id, conversationId, QStringLiteral("settings_json"), toJsonText(settings));
    });
}

quint64 ChatStore::deleteConversation(qint64 conversationId)
{
    return post([=](ChatStoreWorker *w, quint64 id) { w->deleteConversation(id, conversationId); });
}

quint64 ChatStore::listConversations()
{
    return post([](ChatStoreWorker *w, quint64 id) { w->listConversations(id); });
}

quint64 ChatStore::searchConversations(const QString &text)
{
    return post([=](ChatStoreWorker *w, quint64 id) { w->searchConversations(id, text); });
}

quint64 ChatStore::appendMessages(qint64 conversationId, qint64 parentId, const QList<MessageDraft> &drafts)
{
    return post([=](ChatStoreWorker *w, quint64 id) { w->appendMessages(id, conversationId, parentId, drafts); });
}

quint64 ChatStore::editMessage(qint64 messageId, const QString &content)
{
    return post([=](ChatStoreWorker *w, quint64 id) { w->editMessage(id, messageId, content); });
}

void ChatStore::updateStreamingMessage(qint64 messageId, const QString &content)
{
    ChatStoreWorker *worker = m_worker;
    QMetaObject::invokeMethod(
        worker, [=] { worker->updateStreamingMessage(messageId, content); }, Qt::QueuedConnection);
}

quint64 ChatStore::finishStreamingMessage(qint64 messageId, const QString &content, MessageState state,
                                          const QJsonObject &stats)
{
    return post([=](ChatStoreWorker *w, quint64 id) { w->finishStreamingMessage(id, messageId, content, state, stats); });
}

quint64 ChatStore::listSiblings(qint64 messageId)
{
    return post([=](ChatStoreWorker *w, quint64 id) { w->listSiblings(id, messageId); });
}

quint64 ChatStore::switchBranch(qint64 messageId)
{
    return post([=](ChatStoreWorker *w, quint64 id) { w->switchBranch(id, messageId); });
}

quint64 ChatStore::loadActivePath(qint64 conversationId)
{
    return post([=](ChatStoreWorker *w, quint64 id) { w->loadActivePath(id, conversationId); });
}

quint64 ChatStore::savePreset(const PresetRecord &preset)
{
    return post([=](ChatStoreWorker *w, quint64 id) { w->savePreset(id, preset); });
}

quint64 ChatStore::deletePreset(qint64 presetId)
{
    return post([=](ChatStoreWorker *w, quint64 id) { w->deletePreset(id, presetId); });
}

quint64 ChatStore::listPresets()
{
    return post([](ChatStoreWorker *w, quint64 id) { w->listPresets(id); });
}

quint64 ChatStore::setSetting(const QString &key, const QVariant &value)
{
    return setSettings(QVariantMap{{key, value}});
}

quint64 ChatStore::setSettings(const QVariantMap &values)
{
    return post([=](ChatStoreWorker *w, quint64 id) { w->setSettings(id, values); });
}

quint64 ChatStore::loadSettings()
{
    return post([](ChatStoreWorker *w, quint64 id) { w->loadSettings(id); });
}

quint64 ChatStore::addModelEntry(const QString &path, const QJsonObject &metadata)
{
    return post([=](ChatStoreWorker *w, quint64 id) { w->addModelEntry(id, path, metadata); });
}

quint64 ChatStore::removeModelEntry(qint64 entryId)
{
    return post([=](ChatStoreWorker *w, quint64 id) { w->removeModelEntry(id, entryId); });
}

quint64 ChatStore::listModelEntries()
{
    return post([](ChatStoreWorker *w, quint64 id) { w->listModelEntries(id); });
}

quint64 ChatStore::savePerfRun(const QJsonObject &data)
{
    return post([=](ChatStoreWorker *w, quint64 id) { w->savePerfRun(id, data); });
}

quint64 ChatStore::listPerfRuns()
{
    return post([](ChatStoreWorker *w, quint64 id) { w->listPerfRuns(id); });
}
