// Schema history of the chat store. Never edit a released step; add a new one.
//   v1: conversations, messages (tree through parent_id), settings (raw text values)
//   v2: pinned + per-conversation settings, message state + stats, active
//       branch per parent (backfilled: newest child), presets, settings values
//       re-encoded as JSON so they keep their type
//   v3: model library, perf runs, conversation list index
#include "chat_store_schema.h"

#include <QJsonArray>
#include <QJsonDocument>
#include <QSqlQuery>
#include <QStringList>
#include <QVariant>

namespace {

const char *const kV1[] = {
    "CREATE TABLE conversations ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " title TEXT NOT NULL DEFAULT '',"
    " created_at INTEGER NOT NULL,"
    " updated_at INTEGER NOT NULL,"
    " system_prompt TEXT NOT NULL DEFAULT '')",
    "CREATE TABLE messages ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,"
    " parent_id INTEGER REFERENCES messages(id) ON DELETE CASCADE,"
    " role TEXT NOT NULL,"
    " content TEXT NOT NULL DEFAULT '',"
    " created_at INTEGER NOT NULL)",
    "CREATE INDEX messages_by_parent ON messages(conversation_id, parent_id)",
    "CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT)",
};

const char *const kV2[] = {
    "ALTER TABLE conversations ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE conversations ADD COLUMN settings_json TEXT NOT NULL DEFAULT '{}'",
    "ALTER TABLE messages ADD COLUMN state TEXT NOT NULL DEFAULT 'complete'",
    "ALTER TABLE messages ADD COLUMN stats_json TEXT NOT NULL DEFAULT '{}'",
    // parent_id 0 stands for the conversation's roots.
    "CREATE TABLE active_children ("
    " conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,"
    " parent_id INTEGER NOT NULL,"
    " child_id INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,"
    " PRIMARY KEY (conversation_id, parent_id))",
    // v1 showed the newest child of each message: keep showing that branch.
    "INSERT INTO active_children (conversation_id, parent_id, child_id)"
    " SELECT conversation_id, COALESCE(parent_id, 0), MAX(id) FROM messages"
    " GROUP BY conversation_id, COALESCE(parent_id, 0)",
    "CREATE TABLE presets ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " name TEXT NOT NULL UNIQUE,"
    " system_prompt TEXT NOT NULL DEFAULT '',"
    " settings_json TEXT NOT NULL DEFAULT '{}')",
};

const char *const kV3[] = {
    "CREATE TABLE model_library ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " path TEXT NOT NULL UNIQUE,"
    " metadata_json TEXT NOT NULL DEFAULT '{}',"
    " added_at INTEGER NOT NULL)",
    "CREATE TABLE perf_runs ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " created_at INTEGER NOT NULL,"
    " data_json TEXT NOT NULL DEFAULT '{}')",
    "CREATE INDEX conversations_by_update ON conversations(pinned DESC, updated_at DESC)",
};

template <size_t N>
bool runAll(QSqlDatabase &db, const char *const (&statements)[N], QSqlError *sqlError)
{
    for (const char *sql : statements) {
        QSqlQuery q(db);
        if (!q.exec(QString::fromUtf8(sql))) {
            *sqlError = q.lastError();
            return false;
        }
    }
    return true;
}

// v1 kept setting values as plain text; from v2 on each is a one-element JSON
// array so numbers and booleans come back with their type.
bool reencodeSettings(QSqlDatabase &db, QSqlError *sqlError)
{
    QSqlQuery read(db);
    if (!read.exec(QStringLiteral("SELECT key, value FROM settings"))) {
        *sqlError = read.lastError();
        return false;
    }
    QList<QPair<QString, QString>> rows;
    while (read.next())
        rows.append({read.value(0).toString(), read.value(1).toString()});
    for (const auto &[key, value] : rows) {
        QSqlQuery write(db);
        write.prepare(QStringLiteral("UPDATE settings SET value = ? WHERE key = ?"));
        write.addBindValue(QString::fromUtf8(QJsonDocument(QJsonArray{value}).toJson(QJsonDocument::Compact)));
        write.addBindValue(key);
        if (!write.exec()) {
            *sqlError = write.lastError();
            return false;
        }
    }
    return true;
}

bool setUserVersion(QSqlDatabase &db, int version, QSqlError *sqlError)
{
    QSqlQuery q(db);
    if (!q.exec(QStringLiteral("PRAGMA user_version = %1").arg(version))) {
        *sqlError = q.lastError();
        return false;
    }
    return true;
}

}  // namespace

QString toJsonText(const QJsonObject &object)
{
    return QString::fromUtf8(QJsonDocument(object).toJson(QJsonDocument::Compact));
}

QJsonObject fromJsonText(const QString &text)
{
    return QJsonDocument::fromJson(text.toUtf8()).object();
}

bool migrateChatStore(QSqlDatabase &db, int *fromVersion, QString *error, QSqlError *sqlError)
{
    QSqlQuery q(db);
    if (!q.exec(QStringLiteral("PRAGMA user_version")) || !q.next()) {
        *sqlError = q.lastError();
        *error = QStringLiteral("cannot read the schema version");
        return false;
    }
    const int found = q.value(0).toInt();
    q.finish();
    *fromVersion = found;
    if (found > kChatStoreSchemaVersion) {
        *error = QStringLiteral("the chat history has schema version %1, written by a newer Glassbox "
                                "(this one understands up to %2)")
                     .arg(found)
                     .arg(kChatStoreSchemaVersion);
        return false;
    }

    for (int version = found + 1; version <= kChatStoreSchemaVersion; ++version) {
        if (!db.transaction()) {
            *sqlError = db.lastError();
            *error = QStringLiteral("cannot start the migration to schema version %1").arg(version);
            return false;
        }
        bool ok = false;
        switch (version) {
        case 1: ok = runAll(db, kV1, sqlError); break;
        case 2: ok = runAll(db, kV2, sqlError) && reencodeSettings(db, sqlError); break;
        case 3: ok = runAll(db, kV3, sqlError); break;
        default: break;
        }
        ok = ok && setUserVersion(db, version, sqlError);
        if (ok && !db.commit()) {
            *sqlError = db.lastError();
            ok = false;
        }
        if (!ok) {
            db.rollback();
            *error = QStringLiteral("migration to schema version %1 failed").arg(version);
            return false;
        }
    }
    return true;
}
