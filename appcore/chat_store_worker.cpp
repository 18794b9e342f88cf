// SQL of the chat store, run on the store thread. Every write is one
// transaction; streamed reply text is coalesced and written on a timer.
#include "chat_store_worker.h"

#include "chat_store_schema.h"

#include <QDir>
#include <QFileInfo>
#include <QSqlDatabase>
#include <QSqlQuery>
#include <QThread>
#include <QTimer>

#include <atomic>

namespace {

const QString kConversationColumns =
    QStringLiteral("id, title, pinned, created_at, updated_at, system_prompt, settings_json");
const QString kMessageColumns =
    QStringLiteral("id, conversation_id, parent_id, role, content, created_at, state, stats_json");

qint64 nowMs() { return QDateTime::currentMSecsSinceEpoch(); }

ConversationRecord conversationFromQuery(const QSqlQuery &q)
{
    ConversationRecord c;
    c.id = q.value(0).toLongLong();
    c.title = q.value(1).toString();
    c.pinned = q.value(2).toInt() != 0;
    c.createdAt = QDateTime::fromMSecsSinceEpoch(q.value(3).toLongLong());
    c.updatedAt = QDateTime::fromMSecsSinceEpoch(q.value(4).toLongLong());
    c.systemPrompt = q.value(5).toString();
    c.settings = fromJsonText(q.value(6).toString());
    return c;
}

MessageRecord messageFromQuery(const QSqlQuery &q)
{
    MessageRecord m;
    m.id = q.value(0).toLongLong();
    m.conversationId = q.value(1).toLongLong();
    m.parentId = q.value(2).isNull() ? 0 : q.value(2).toLongLong();
    m.role = q.value(3).toString();
    m.content = q.value(4).toString();
    m.createdAt = QDateTime::fromMSecsSinceEpoch(q.value(5).toLongLong());
    m.state = messageStateFromName(q.value(6).toString());
    m.stats = fromJsonText(q.value(7).toString());
    return m;
}

QString likePattern(const QString &text)
{
    QString escaped = text;
    escaped.replace(QLatin1Char('\\'), QLatin1String("\\\\"));
    escaped.replace(QLatin1Char('%'), QLatin1String("\\%"));
    escaped.replace(QLatin1Char('_'), QLatin1String("\\_"));
    return QLatin1Char('%') + escaped + QLatin1Char('%');
}

QString snippetAround(const QString &content, const QString &text)
{
    const qsizetype at = content.indexOf(text, 0, Qt::CaseInsensitive);
    if (at < 0)
        return content.left(80);
    const qsizetype from = std::max<qsizetype>(0, at - 40);
    QString s = content.mid(from, text.size() + 80).simplified();
    if (from > 0)
        s.prepend(QStringLiteral("…"));
    return s;
}

QVariant parentValue(qint64 parentId)
{
    return parentId == 0 ? QVariant(QMetaType::fromType<qint64>()) : QVariant(parentId);
}

ChatStore::ErrorKind kindOf(const QSqlError &error)
{
    switch (error.nativeErrorCode().toInt() & 0xff) {
    case 13: return ChatStore::ErrorKind::DiskFull;   // SQLITE_FULL
    case 11:                                          // SQLITE_CORRUPT
    case 26: return ChatStore::ErrorKind::Corrupt;    // SQLITE_NOTADB
    case 8: return ChatStore::ErrorKind::ReadOnly;    // SQLITE_READONLY
    case 14: return ChatStore::ErrorKind::OpenFailed; // SQLITE_CANTOPEN
    default: return ChatStore::ErrorKind::Sql;
    }
}

QString describe(const QSqlError &error)
{
    QString text = error.databaseText();
    if (text.isEmpty())
        text = error.driverText();
    if (!error.nativeErrorCode().isEmpty())
        text += QStringLiteral(" (SQLite error %1)").arg(error.nativeErrorCode());
    return text;
}

}  // namespace

ChatStoreWorker::ChatStoreWorker(ChatStore *store)
    : m_store(store)
{
    static std::atomic<int> counter{0};
    m_connectionName = QStringLiteral("glassbox-chat-store-%1").arg(++counter);
    m_flushTimer = new QTimer(this);
    m_flushTimer->setSingleShot(true);
    connect(m_flushTimer, &QTimer::timeout, this, &ChatStoreWorker::flushPending);
}

ChatStoreWorker::~ChatStoreWorker() = default;

void ChatStoreWorker::fail(quint64 req, const QString &what, const Failure &failure)
{
    const QString message = QStringLiteral("Could not %1: %2").arg(what, failure.message);
    ChatStore *store = m_store;
    deliver([store, req, kind = failure.kind, message] { emit store->errorOccurred(req, kind, message); });
}

ChatStoreWorker::Failure ChatStoreWorker::takeFailure()
{
    Failure f = m_failure.value_or(Failure{ChatStore::ErrorKind::Sql, QStringLiteral("unknown error")});
    m_failure.reset();
    return f;
}

bool ChatStoreWorker::sqlFailed(const QSqlError &error)
{
    Failure f{kindOf(error), describe(error)};
    if (f.kind == ChatStore::ErrorKind::DiskFull)
        f.message = QStringLiteral("the disk is full (%1)").arg(f.message);
    else if (f.kind == ChatStore::ErrorKind::Corrupt)
        f.message = QStringLiteral("the chat history file is damaged or is not a database (%1)").arg(f.message);
    m_failure = f;
    return false;
}

bool ChatStoreWorker::failWith(ChatStore::ErrorKind kind, const QString &message)
{
    m_failure = Failure{kind, message};
    return false;
}

bool ChatStoreWorker::ensureOpen(quint64 req, const QString &what)
{
    if (m_open)
        return true;
    fail(req, what, Failure{ChatStore::ErrorKind::NotOpen, QStringLiteral("the chat history is not open")});
    return false;
}

bool ChatStoreWorker::exec(QSqlQuery &q, const QString &sql, const QVariantList &binds)
{
    q = QSqlQuery(QSqlDatabase::database(m_connectionName, false));
    if (!q.prepare(sql))
        return sqlFailed(q.lastError());
    for (const QVariant &b : binds) {
        // A null QString would bind as SQL NULL; text columns want ''.
        if (b.typeId() == QMetaType::QString && b.toString().isNull())
            q.addBindValue(QStringLiteral(""));
        else
            q.addBindValue(b);
    }
    if (!q.exec())
        return sqlFailed(q.lastError());
    return true;
}

// ---- open / close ------------------------------------------------------------

void ChatStoreWorker::open(quint64 req, const QString &path, const ChatStore::OpenParams &params)
{
    closeDatabase();
    const QString what = QStringLiteral("open the chat history %1").arg(path);
    const QFileInfo info(path);
    if (path.isEmpty() || info.isDir()) {
        fail(req, what, Failure{ChatStore::ErrorKind::InvalidArgument, QStringLiteral("not a file path")});
        return;
    }
    if (!QDir().mkpath(info.absolutePath())) {
        fail(req, what, Failure{ChatStore::ErrorKind::OpenFailed,
                                QStringLiteral("cannot create the folder %1").arg(info.absolutePath())});
        return;
    }
    {
        QSqlDatabase db = QSqlDatabase::addDatabase(QStringLiteral("QSQLITE"), m_connectionName);
        if (!db.isValid()) {
            db = QSqlDatabase();
            QSqlDatabase::removeDatabase(m_connectionName);
            fail(req, what, Failure{ChatStore::ErrorKind::OpenFailed,
                                    QStringLiteral("the Qt SQLite driver (QSQLITE) is not installed")});
            return;
        }
        db.setDatabaseName(path);
        db.setConnectOptions(QStringLiteral("QSQLITE_BUSY_TIMEOUT=5000"));
        bool ok = db.open();
        if (!ok)
            sqlFailed(db.lastError());
        QSqlQuery q;
        // WAL: readers never block the writer, commits are atomic, and a killed
        // process leaves the database consistent. NORMAL sync is durable
        // against process death (not power loss), which is the case we promise.
        ok = ok && exec(q, QStringLiteral("PRAGMA foreign_keys = ON"));
        ok = ok && exec(q, QStringLiteral("PRAGMA journal_mode = WAL"));
        if (ok && (!q.next() || q.value(0).toString().compare(QLatin1String("wal"), Qt::CaseInsensitive) != 0))
            ok = failWith(ChatStore::ErrorKind::ReadOnly,
                          QStringLiteral("cannot switch the database to WAL mode (is the folder writable?)"));
        ok = ok && exec(q, QStringLiteral("PRAGMA synchronous = NORMAL"));
        if (ok && params.maxPageCount > 0)
            ok = exec(q, QStringLiteral("PRAGMA max_page_count = %1").arg(params.maxPageCount));
        q = QSqlQuery();
        int fromVersion = 0;
        if (ok) {
            QString error;
            QSqlError sqlError;
            if (!migrateChatStore(db, &fromVersion, &error, &sqlError)) {
                if (sqlError.isValid()) {
                    sqlFailed(sqlError);
                    m_failure->message = error + QStringLiteral(": ") + m_failure->message;
                } else {
                    failWith(ChatStore::ErrorKind::NewerSchema, error);
                }
                ok = false;
            }
        }
        // A reply that was streaming when the app died is kept, marked as such.
        ok = ok && exec(q, QStringLiteral("UPDATE messages SET state = 'interrupted' WHERE state = 'streaming'"));
        q = QSqlQuery();
        if (!ok) {
            db.close();
            db = QSqlDatabase();
            QSqlDatabase::removeDatabase(m_connectionName);
            fail(req, what);
            return;
        }
        m_open = true;
        m_params = params;
        ChatStore *store = m_store;
        deliver([store, req, path, fromVersion] { emit store->opened(req, path, fromVersion); });
    }
}

void ChatStoreWorker::closeDatabase()
{
    if (!m_open)
        return;
    flushPending();
    {
        QSqlDatabase db = QSqlDatabase::database(m_connectionName, false);
        db.close();
    }
    QSqlDatabase::removeDatabase(m_connectionName);
    m_open = false;
}

void ChatStoreWorker::close(quint64 req)
{
    closeDatabase();
    ChatStore *store = m_store;
    deliver([store, req] { emit store->closed(req); });
}

void ChatStoreWorker::shutdown()
{
    closeDatabase();
    m_flushTimer->stop();
    QThread::currentThread()->quit();
}

void ChatStoreWorker::flush(quint64 req)
{
    flushPending();
    ChatStore *store = m_store;
    deliver([store, req] { emit store->flushed(req); });
}

void ChatStoreWorker::integrityCheck(quint64 req)
{
    const QString what = QStringLiteral("check the chat history");
    if (!ensureOpen(req, what))
        return;
    flushPending();
    QSqlQuery q;
    if (!exec(q, QStringLiteral("PRAGMA integrity_check")))
        return fail(req, what);
    QStringList lines;
    while (q.next())
        lines.append(q.value(0).toString());
    ChatStore *store = m_store;
    deliver([store, req, result = lines.join(QLatin1Char('\n'))] { emit store->integrityChecked(req, result); });
}

// ---- conversations -------------------------------------------------------------

std::optional<ConversationRecord> ChatStoreWorker::fetchConversation(qint64 conversationId)
{
    QSqlQuery q;
    if (!exec(q, QStringLiteral("SELECT %1 FROM conversations WHERE id = ?").arg(kConversationColumns),
              {conversationId}))
        return std::nullopt;
    if (!q.next()) {
        failWith(ChatStore::ErrorKind::NotFound, QStringLiteral("conversation %1 does not exist").arg(conversationId));
        return std::nullopt;
    }
    return conversationFromQuery(q);
}

void ChatStoreWorker::createConversation(quint64 req, const QString &title, const QString &systemPrompt,
                                         const QJsonObject &settings)
{
    const QString what = QStringLiteral("create a conversation");
    if (!ensureOpen(req, what))
        return;
    std::optional<ConversationRecord> record;
    const bool ok = transact(req, what, [&] {
        QSqlQuery q;
        const qint64 now = nowMs();
        if (!exec(q,
                  QStringLiteral("INSERT INTO conversations (title, created_at, updated_at, system_prompt, settings_json)"
                                 " VALUES (?, ?, ?, ?, ?)"),
                  {title, now, now, systemPrompt, toJsonText(settings)}))
            return false;
        record = fetchConversation(q.lastInsertId().toLongLong());
        return record.has_value();
    });
    if (!ok)
        return;
    ChatStore *store = m_store;
    deliver([store, req, c = *record] { emit store->conversationCreated(req, c); });
}

void ChatStoreWorker::updateConversation(quint64 req, qint64 conversationId, const QString &column,
                                         const QVariant &value)
{
    const QString what = QStringLiteral("update conversation %1").arg(conversationId);
    if (!ensureOpen(req, what))
        return;
    std::optional<ConversationRecord> record;
    const bool ok = transact(req, what, [&] {
        QSqlQuery q;
        // column is one of a fixed set chosen by ChatStore, never user text.
        if (!exec(q, QStringLiteral("UPDATE conversations SET %1 = ?, updated_at = ? WHERE id = ?").arg(column),
                  {value, nowMs(), conversationId}))
            return false;
        record = fetchConversation(conversationId);
        return record.has_value();
    });
    if (!ok)
        return;
    ChatStore *store = m_store;
    deliver([store, req, c = *record] { emit store->conversationUpdated(req, c); });
}

void ChatStoreWorker::deleteConversation(quint64 req, qint64 conversationId)
{
    const QString what = QStringLiteral("delete conversation %1").arg(conversationId);
    if (!ensureOpen(req, what))
        return;
    for (auto it = m_pending.begin(); it != m_pending.end();) {
        const std::optional<MessageRecord> m = fetchMessage(it.key());
        it = (m && m->conversationId == conversationId) ? m_pending.erase(it) : std::next(it);
    }
    m_failure.reset();
    const bool ok = transact(req, what, [&] {
        QSqlQuery q;
        if (!exec(q, QStringLiteral("DELETE FROM conversations WHERE id = ?"), {conversationId}))
            return false;
        if (q.numRowsAffected() == 0)
            return failWith(ChatStore::ErrorKind::NotFound, QStringLiteral("it does not exist"));
        return true;
    });
    if (!ok)
        return;
    ChatStore *store = m_store;
    deliver([store, req, conversationId] { emit store->conversationDeleted(req, conversationId); });
}

void ChatStoreWorker::listConversations(quint64 req)
{
    const QString what = QStringLiteral("list conversations");
    if (!ensureOpen(req, what))
        return;
    QSqlQuery q;
    if (!exec(q, QStringLiteral("SELECT %1 FROM conversations ORDER BY pinned DESC, updated_at DESC, id DESC")
                     .arg(kConversationColumns)))
        return fail(req, what);
    QList<ConversationRecord> list;
    while (q.next())
        list.append(conversationFromQuery(q));
    ChatStore *store = m_store;
    deliver([store, req, list] { emit store->conversationsListed(req, list); });
}

void ChatStoreWorker::searchConversations(quint64 req, const QString &text)
{
    const QString what = QStringLiteral("search conversations");
    if (!ensureOpen(req, what))
        return;
    flushPending();
    const QString pattern = likePattern(text);
    QSqlQuery q;
    const QString sql = QStringLiteral(
        "SELECT %1, (SELECT m.content FROM messages m WHERE m.conversation_id = c.id"
        "            AND m.content LIKE ? ESCAPE '\\' ORDER BY m.id LIMIT 1)"
        " FROM conversations c"
        " WHERE c.title LIKE ? ESCAPE '\\'"
        "    OR EXISTS (SELECT 1 FROM messages m WHERE m.conversation_id = c.id AND m.content LIKE ? ESCAPE '\\')"
        " ORDER BY c.pinned DESC, c.updated_at DESC, c.id DESC");
    QString columns = kConversationColumns;
    columns.replace(QLatin1String("id,"), QLatin1String("c.id,"));
    if (!exec(q, sql.arg(columns), {pattern, pattern, pattern}))
        return fail(req, what);
    QList<ConversationRecord> hits;
    while (q.next()) {
        ConversationRecord c = conversationFromQuery(q);
        const QString content = q.value(7).toString();
        c.snippet = content.isEmpty() ? QString() : snippetAround(content, text);
        hits.append(c);
    }
    ChatStore *store = m_store;
    deliver([store, req, text, hits] { emit store->searchFinished(req, text, hits); });
}

// ---- messages ------------------------------------------------------------------

std::optional<MessageRecord> ChatStoreWorker::fetchMessage(qint64 messageId)
{
    QSqlQuery q;
    if (!exec(q, QStringLiteral("SELECT %1 FROM messages WHERE id = ?").arg(kMessageColumns), {messageId}))
        return std::nullopt;
    if (!q.next()) {
        failWith(ChatStore::ErrorKind::NotFound, QStringLiteral("message %1 does not exist").arg(messageId));
        return std::nullopt;
    }
    MessageRecord m = messageFromQuery(q);
    if (const auto it = m_pending.constFind(messageId); it != m_pending.constEnd())
        m.content = *it;
    return m;
}

std::optional<QList<MessageRecord>> ChatStoreWorker::childrenOf(qint64 conversationId, qint64 parentId)
{
    QSqlQuery q;
    const QString sql = parentId == 0
        ? QStringLiteral("SELECT %1 FROM messages WHERE conversation_id = ? AND parent_id IS NULL ORDER BY id")
        : QStringLiteral("SELECT %1 FROM messages WHERE conversation_id = ? AND parent_id = ? ORDER BY id");
    QVariantList binds{conversationId};
    if (parentId != 0)
        binds.append(parentId);
    if (!exec(q, sql.arg(kMessageColumns), binds))
        return std::nullopt;
    QList<MessageRecord> list;
    while (q.next())
        list.append(messageFromQuery(q));
    for (int i = 0; i < list.size(); ++i) {
        list[i].siblingIndex = i;
        list[i].siblingCount = int(list.size());
        if (const auto it = m_pending.constFind(list[i].id); it != m_pending.constEnd())
            list[i].content = *it;
    }
    return list;
}

std::optional<QList<MessageRecord>> ChatStoreWorker::activePathOf(qint64 conversationId)
{
    if (!fetchConversation(conversationId))
        return std::nullopt;
    QSqlQuery q;
    if (!exec(q, QStringLiteral("SELECT %1 FROM messages WHERE conversation_id = ? ORDER BY id").arg(kMessageColumns),
              {conversationId}))
        return std::nullopt;
    QHash<qint64, QList<MessageRecord>> children;  // by parent id, oldest first
    while (q.next()) {
        MessageRecord m = messageFromQuery(q);
        if (const auto it = m_pending.constFind(m.id); it != m_pending.constEnd())
            m.content = *it;
        children[m.parentId].append(m);
    }
    QHash<qint64, qint64> active;  // parent id -> chosen child id
    if (!exec(q, QStringLiteral("SELECT parent_id, child_id FROM active_children WHERE conversation_id = ?"),
              {conversationId}))
        return std::nullopt;
    while (q.next())
        active.insert(q.value(0).toLongLong(), q.value(1).toLongLong());

    QList<MessageRecord> path;
    qint64 parent = 0;
    while (true) {
        const QList<MessageRecord> kids = children.value(parent);
        if (kids.isEmpty())
            break;
        int chosen = int(kids.size()) - 1;  // no selection: the newest branch
        const qint64 want = active.value(parent, -1);
        for (int i = 0; i < kids.size(); ++i)
            if (kids[i].id == want)
                chosen = i;
        MessageRecord m = kids[chosen];
        m.siblingIndex = chosen;
        m.siblingCount = int(kids.size());
        path.append(m);
        parent = m.id;
        if (path.size() > children.size() + 1000000)
            break;  // NOTE: ids only grow along a path, so it cannot cycle; belt and braces.
    }
    return path;
}

void ChatStoreWorker::appendMessages(quint64 req, qint64 conversationId, qint64 parentId,
                                     const QList<MessageDraft> &drafts)
{
    const QString what = QStringLiteral("save the message");
    if (!ensureOpen(req, what))
        return;
    if (drafts.isEmpty()) {
        fail(req, what, Failure{ChatStore::ErrorKind::InvalidArgument, QStringLiteral("no messages given")});
        return;
    }
    QList<MessageRecord> records;
    const bool ok = transact(req, what, [&] {
        if (!fetchConversation(conversationId))
            return false;
        if (parentId != 0) {
            const std::optional<MessageRecord> parent = fetchMessage(parentId);
            if (!parent)
                return false;
            if (parent->conversationId != conversationId)
                return failWith(ChatStore::ErrorKind::InvalidArgument,
                                QStringLiteral("message %1 belongs to another conversation").arg(parentId));
        }
        const qint64 now = nowMs();
        qint64 parent = parentId;
        QSqlQuery q;
        for (const MessageDraft &d : drafts) {
            if (d.role.isEmpty())
                return failWith(ChatStore::ErrorKind::InvalidArgument, QStringLiteral("a message has no role"));
            if (!exec(q,
                      QStringLiteral("INSERT INTO messages (conversation_id, parent_id, role, content, created_at,"
                                     " state, stats_json) VALUES (?, ?, ?, ?, ?, ?, ?)"),
                      {conversationId, parentValue(parent), d.role, d.content, now, messageStateName(d.state),
                       toJsonText(d.stats)}))
                return false;
            MessageRecord m;
            m.id = q.lastInsertId().toLongLong();
            m.conversationId = conversationId;
            m.parentId = parent;
            m.role = d.role;
            m.content = d.content;
            m.createdAt = QDateTime::fromMSecsSinceEpoch(now);
            m.state = d.state;
            m.stats = d.stats;
            if (!exec(q,
                      QStringLiteral("INSERT OR REPLACE INTO active_children (conversation_id, parent_id, child_id)"
                                     " VALUES (?, ?, ?)"),
                      {conversationId, parent, m.id}))
                return false;
            records.append(m);
            parent = m.id;
        }
        if (!exec(q, QStringLiteral("UPDATE conversations SET updated_at = ? WHERE id = ?"), {now, conversationId}))
            return false;
        const std::optional<QList<MessageRecord>> siblings = childrenOf(conversationId, parentId);
        if (!siblings)
            return false;
        records[0].siblingIndex = int(siblings->size()) - 1;
        records[0].siblingCount = int(siblings->size());
        return true;
    });
    if (!ok)
        return;
    ChatStore *store = m_store;
    deliver([store, req, conversationId, records] { emit store->messagesAppended(req, conversationId, records); });
}

void ChatStoreWorker::editMessage(quint64 req, qint64 messageId, const QString &content)
{
    const QString what = QStringLiteral("edit message %1").arg(messageId);
    if (!ensureOpen(req, what))
        return;
    const std::optional<MessageRecord> original = fetchMessage(messageId);
    if (!original)
        return fail(req, what);
    appendMessages(req, original->conversationId, original->parentId, {MessageDraft{original->role, content, MessageState::Complete, {}}});
}

void ChatStoreWorker::updateStreamingMessage(qint64 messageId, const QString &content)
{
    if (!m_open)
        return;
    m_pending.insert(messageId, content);
    if (!m_flushTimer->isActive())
        m_flushTimer->start(m_params.streamWriteIntervalMs);
}

void ChatStoreWorker::flushPending()
{
    m_flushTimer->stop();
    if (m_pending.isEmpty() || !m_open)
        return;
    const QHash<qint64, QString> pending = std::exchange(m_pending, {});
    // A failed background write is reported with request id 0; the final
    // write of the reply tries again.
    transact(0, QStringLiteral("save the reply in progress"), [&] {
        QSqlQuery q;
        for (auto it = pending.constBegin(); it != pending.constEnd(); ++it)
            if (!exec(q, QStringLiteral("UPDATE messages SET content = ? WHERE id = ?"), {it.value(), it.key()}))
                return false;
        return true;
    });
}

void ChatStoreWorker::finishStreamingMessage(quint64 req, qint64 messageId, const QString &content,
                                             MessageState state, const QJsonObject &stats)
{
    const QString what = QStringLiteral("save the reply");
    if (!ensureOpen(req, what))
        return;
    m_pending.remove(messageId);
    std::optional<MessageRecord> record;
    const bool ok = transact(req, what, [&] {
        QSqlQuery q;
        if (!exec(q, QStringLiteral("UPDATE messages SET content = ?, state = ?, stats_json = ? WHERE id = ?"),
                  {content, messageStateName(state), toJsonText(stats), messageId}))
            return false;
        record = fetchMessage(messageId);
        if (!record)
            return false;
        return exec(q, QStringLiteral("UPDATE conversations SET updated_at = ? WHERE id = ?"),
                    {nowMs(), record->conversationId});
    });
    if (!ok)
        return;
    ChatStore *store = m_store;
    deliver([store, req, m = *record] { emit store->messageFinished(req, m); });
}

void ChatStoreWorker::listSiblings(quint64 req, qint64 messageId)
{
    const QString what = QStringLiteral("list the branches of message %1").arg(messageId);
    if (!ensureOpen(req, what))
        return;
    const std::optional<MessageRecord> m = fetchMessage(messageId);
    if (!m)
        return fail(req, what);
    const std::optional<QList<MessageRecord>> siblings = childrenOf(m->conversationId, m->parentId);
    if (!siblings)
        return fail(req, what);
    ChatStore *store = m_store;
    deliver([store, req, messageId, list = *siblings] { emit store->siblingsListed(req, messageId, list); });
}

void ChatStoreWorker::switchBranch(quint64 req, qint64 messageId)
{
    const QString what = QStringLiteral("switch to branch %1").arg(messageId);
    if (!ensureOpen(req, what))
        return;
    std::optional<QList<MessageRecord>> path;
    qint64 conversationId = 0;
    const bool ok = transact(req, what, [&] {
        const std::optional<MessageRecord> m = fetchMessage(messageId);
        if (!m)
            return false;
        conversationId = m->conversationId;
        QSqlQuery q;
        if (!exec(q,
                  QStringLiteral("INSERT OR REPLACE INTO active_children (conversation_id, parent_id, child_id)"
                                 " VALUES (?, ?, ?)"),
                  {m->conversationId, m->parentId, m->id}))
            return false;
        path = activePathOf(m->conversationId);
        return path.has_value();
    });
    if (!ok)
        return;
    ChatStore *store = m_store;
    deliver([store, req, conversationId, p = *path] { emit store->branchSwitched(req, conversationId, p); });
}

void ChatStoreWorker::loadActivePath(quint64 req, qint64 conversationId)
{
    const QString what = QStringLiteral("load conversation %1").arg(conversationId);
    if (!ensureOpen(req, what))
        return;
    const std::optional<QList<MessageRecord>> path = activePathOf(conversationId);
    if (!path)
        return fail(req, what);
    ChatStore *store = m_store;
    deliver([store, req, conversationId, p = *path] { emit store->activePathLoaded(req, conversationId, p); });
}
