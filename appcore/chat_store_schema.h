// The chat history schema: versions (PRAGMA user_version) and the migration
// steps from version 1 up to kChatStoreSchemaVersion. Runs on the store thread.
#pragma once

#include <QJsonObject>
#include <QSqlDatabase>
#include <QSqlError>
#include <QString>

constexpr int kChatStoreSchemaVersion = 3;

// Brings db (opened, foreign keys on) to kChatStoreSchemaVersion. Each step
// runs in its own transaction together with its user_version bump, so a crash
// leaves the database at the old or the new version, never in between.
// *fromVersion: the version found (0 for a new file). On failure returns false
// and fills *error (a readable message) and *sqlError (when SQLite failed).
bool migrateChatStore(QSqlDatabase &db, int *fromVersion, QString *error, QSqlError *sqlError);

QString toJsonText(const QJsonObject &object);
QJsonObject fromJsonText(const QString &text);
