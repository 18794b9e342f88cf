// The real app (the glassbox executable) with the real model, killed with
// SIGKILL in the middle of a reply: on the next start the earlier messages
// are intact, the reply in progress is kept as "interrupted" (a prefix of
// what was streamed), PRAGMA integrity_check says ok, and the app goes on.
#include "chat_store.h"
#include "store_test_util.h"

#include <QDir>
#include <QFile>
#include <QProcess>
#include <QTemporaryDir>
#include <QtTest>

namespace {

QString modelPath()
{
    return QStringLiteral(GLASSBOX_MODEL_DIR "/gemma-3-270m-q4_k_m.gguf");
}

bool setSettings(const QString &db, const QVariantMap &values)
{
    ChatStore store;
    if (storeResult(store, &ChatStore::opened, store.open(db)).isEmpty())
        return false;
    return !storeResult(store, &ChatStore::settingsWritten, store.setSettings(values)).isEmpty();
}

QList<MessageRecord> onlyConversationPath(ChatStore &store, qint64 *conversation)
{
    const QList<QVariant> listed = storeResult(store, &ChatStore::conversationsListed, store.listConversations());
    const QList<ConversationRecord> conversations = listed.value(1).value<QList<ConversationRecord>>();
    if (conversations.size() != 1)
        return {};
    *conversation = conversations.first().id;
    return storeResult(store, &ChatStore::activePathLoaded, store.loadActivePath(*conversation))
        .value(2)
        .value<QList<MessageRecord>>();
}

}  // namespace

class TestAppCrashModel : public QObject {
    Q_OBJECT
    QTemporaryDir m_dir;

    QStringList args(const QString &data, const QString &send, bool quit) const
    {
        QStringList a = {QStringLiteral("--data-dir"), data, QStringLiteral("--model"), modelPath(),
                         QStringLiteral("--send"), send};
        if (quit)
            a << QStringLiteral("--quit-after-reply");
        return a;
    }

private slots:
    void initTestCase()
    {
        if (!QFile::exists(modelPath()))
            QSKIP("the default model is not installed (see the README's setup)");
        QVERIFY(m_dir.isValid());
    }

    void killedMidReply()
    {
        const QString data = m_dir.filePath(QStringLiteral("data"));
        QVERIFY(QDir().mkpath(data));
        const QString db = QDir(data).filePath(QStringLiteral("glassbox.sqlite"));
        // A short greedy first reply.
        QVERIFY(setSettings(db, {{QStringLiteral("sampling/temperature"), 0.0},
                                 {QStringLiteral("sampling/max_tokens"), 8},
                                 {QStringLiteral("engine/context_length"), 1024}}));
        QProcess app;
        app.setProcessChannelMode(QProcess::ForwardedErrorChannel);
        app.start(QStringLiteral(GLASSBOX_APP), args(data, QStringLiteral("Name a colour."), true));
        QVERIFY(app.waitForStarted());
        QVERIFY(app.waitForFinished(300000));
        QCOMPARE(app.exitStatus(), QProcess::NormalExit);
        QCOMPARE(app.exitCode(), 0);
        const QString firstReply = QString::fromUtf8(app.readAllStandardOutput()).trimmed();
        QVERIFY(!firstReply.isEmpty());

        // A long second reply (in the same conversation), killed once part of it is on disk.
        qint64 conversation = 0;
        {
            ChatStore store;
            QVERIFY(!storeResult(store, &ChatStore::opened, store.open(db)).isEmpty());
            QCOMPARE(onlyConversationPath(store, &conversation).size(), 2);
        }
        QVERIFY(setSettings(db, {{QStringLiteral("sampling/max_tokens"), 2000}, {QStringLiteral("sampling/temperature"), 0.8},
                                 {QStringLiteral("sampling/seed"), 3}}));
        QStringList second = args(data, QStringLiteral("Tell me a long story about a lighthouse keeper."), false);
        second << QStringLiteral("--conversation") << QString::number(conversation);
        app.start(QStringLiteral(GLASSBOX_APP), second);
        QVERIFY(app.waitForStarted());
        int seen = 0;
        {
            RawDb raw(db);
            QVERIFY(raw.ok());
            const QString sql = QStringLiteral("SELECT length(content) FROM messages WHERE state = 'streaming'");
            const QString done = QStringLiteral("SELECT count(*) FROM messages WHERE role = 'assistant' AND state != 'streaming'");
            const bool streaming = QTest::qWaitFor(
                [&] {
                    return (seen = raw.value(sql).toInt()) >= 20 || app.state() == QProcess::NotRunning ||
                           raw.value(done).toInt() >= 2;
                },
                300000);
            QVERIFY(streaming);
        }
        QVERIFY2(app.state() == QProcess::Running, "the reply ended before the kill");
        app.kill();  // SIGKILL
        QVERIFY(app.waitForFinished());
        QCOMPARE(app.exitStatus(), QProcess::CrashExit);

        ChatStore store;
        QVERIFY(!storeResult(store, &ChatStore::opened, store.open(db)).isEmpty());
        QCOMPARE(storeResult(store, &ChatStore::integrityChecked, store.integrityCheck()).value(1).toString(),
                 QStringLiteral("ok"));
        qint64 again = 0;
        const QList<MessageRecord> p = onlyConversationPath(store, &again);
        QCOMPARE(again, conversation);
        QCOMPARE(p.size(), 4);
        QCOMPARE(p[0].content, QStringLiteral("Name a colour."));
        QCOMPARE(p[1].content.trimmed(), firstReply);
        QCOMPARE(p[1].state, MessageState::Complete);
        QCOMPARE(p[2].content, QStringLiteral("Tell me a long story about a lighthouse keeper."));
        QCOMPARE(p[3].state, MessageState::Interrupted);
        QVERIFY(p[3].content.size() >= seen);
    }
};

QTEST_MAIN(TestAppCrashModel)
#include "tst_app_crash_model.moc"
