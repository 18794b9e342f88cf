// Helpers for app core tests: wait for a ChatStore result by request id, and
// an independent raw SQLite connection to check what is really on disk.
#pragma once

#include "chat_store.h"

#include <QSignalSpy>
#include <QSqlDatabase>
#include <QSqlError>
#include <QSqlQuery>
#include <QTest>
#include <QUuid>

// Spins the event loop until `signal` arrives with requestId as its first
// argument; returns its arguments. An errorOccurred for the request (or a
// timeout) returns an empty list and stores the message in *error.
template <typename Signal>
QList<QVariant> storeResult(ChatStore &store, Signal signal, quint64 requestId, QString *error = nullptr,
                            int *errorKind = nullptr, int timeoutMs = 20000)
{
    QSignalSpy spy(&store, signal);
    QSignalSpy errors(&store, &ChatStore::errorOccurred);
    QList<QVariant> found;
    bool failed = false;
    (void)QTest::qWaitFor(
        [&] {
            for (const QList<QVariant> &args : std::as_const(spy))
                if (args.at(0).toULongLong() == requestId)
                    found = args;
            for (const QList<QVariant> &args : std::as_const(errors))
                if (args.at(0).toULongLong() == requestId) {
                    failed = true;
                    if (errorKind)
                        *errorKind = int(args.at(1).value<ChatStore::ErrorKind>());
                    if (error)
                        *error = args.at(2).toString();
                    else
                        qWarning("store error: %s", qPrintable(args.at(2).toString()));
                }
            return !found.isEmpty() || failed;
        },
        timeoutMs);
    if (!failed && found.isEmpty() && error)
        *error = QStringLiteral("timed out");
    return found;
}

// Waits for errorOccurred(requestId); returns {kind, message} or kind -1 on timeout / success.
inline QPair<int, QString> storeError(ChatStore &store, quint64 requestId, int timeoutMs = 20000)
{
    QSignalSpy errors(&store, &ChatStore::errorOccurred);
    QPair<int, QString> out{-1, QString()};
    (void)QTest::qWaitFor(
        [&] {
            for (const QList<QVariant> &args : std::as_const(errors))
                if (args.at(0).toULongLong() == requestId)
                    out = {int(args.at(1).value<ChatStore::ErrorKind>()), args.at(2).toString()};
            return out.first >= 0;
        },
        timeoutMs);
    return out;
}

// A separate connection (in the test thread) to inspect the file directly.
class RawDb {
public:
    explicit RawDb(const QString &path)
        : m_name(QUuid::createUuid().toString())
    {
        QSqlDatabase db = QSqlDatabase::addDatabase(QStringLiteral("QSQLITE"), m_name);
        db.setDatabaseName(path);
        m_ok = db.open();
    }
    ~RawDb()
    {
        QSqlDatabase::database(m_name, false).close();
        QSqlDatabase::removeDatabase(m_name);
    }
    bool ok() const { return m_ok; }
    bool exec(const QString &sql)
    {
        QSqlQuery q(QSqlDatabase::database(m_name, false));
        const bool ok = q.exec(sql);
        if (!ok)
            qWarning("raw sql failed: %s: %s", qPrintable(sql), qPrintable(q.lastError().text()));
        return ok;
    }
    // First column of every row.
    QVariantList column(const QString &sql)
    {
        QVariantList out;
        QSqlQuery q(QSqlDatabase::database(m_name, false));
        if (!q.exec(sql)) {
            qWarning("raw sql failed: %s: %s", qPrintable(sql), qPrintable(q.lastError().text()));
            return out;
        }
        while (q.next())
            out.append(q.value(0));
        return out;
    }
    QVariant value(const QString &sql) { return column(sql).value(0); }

private:
    QString m_name;
    bool m_ok = false;
};
