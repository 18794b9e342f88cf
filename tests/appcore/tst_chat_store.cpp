// ChatStore: schema and migrations, conversation CRUD and search, message
// trees and branches (against an in-test model), transactions, streamed-reply
// writes, kill -9 safety with a child process, and error paths.
#include "chat_store.h"
#include "store_test_util.h"

#include <QFile>
#include <QProcess>
#include <QRandomGenerator>
#include <QTemporaryDir>
#include <QtTest>

#include <unistd.h>

class TestChatStore : public QObject {
    Q_OBJECT

private:
    QTemporaryDir m_dir;
    int m_counter = 0;
    QString freshPath() { return m_dir.filePath(QStringLiteral("db%1/chats.sqlite").arg(++m_counter)); }

    static bool openStore(ChatStore &store, const QString &path, ChatStore::OpenParams params = {})
    {
        return !storeResult(store, &ChatStore::opened, store.open(path, params)).isEmpty();
    }
    static ConversationRecord create(ChatStore &store, const QString &title, const QString &prompt = {})
    {
        return storeResult(store, &ChatStore::conversationCreated, store.createConversation(title, prompt))
            .value(1)
            .value<ConversationRecord>();
    }
    static QList<MessageRecord> append(ChatStore &store, qint64 conversationId, qint64 parentId,
                                       const QList<MessageDraft> &drafts)
    {
        return storeResult(store, &ChatStore::messagesAppended, store.appendMessages(conversationId, parentId, drafts))
            .value(2)
            .value<QList<MessageRecord>>();
    }
    static QList<MessageRecord> path(ChatStore &store, qint64 conversationId)
    {
        return storeResult(store, &ChatStore::activePathLoaded, store.loadActivePath(conversationId))
            .value(2)
            .value<QList<MessageRecord>>();
    }
    static QStringList contents(const QList<MessageRecord> &messages)
    {
        QStringList out;
        for (const MessageRecord &m : messages)
            out.append(m.content);
        return out;
    }
    static MessageDraft draft(const QString &role, const QString &content,
                              MessageState state = MessageState::Complete)
    {
        return MessageDraft{role, content, state, {}};
    }

private slots:
    void initTestCase()
    {
        QVERIFY(m_dir.isValid());
        registerAppCoreMetaTypes();
    }

    void freshSchema()
    {
        const QString file = freshPath();
        ChatStore store;
        const QList<QVariant> opened = storeResult(store, &ChatStore::opened, store.open(file));
        QCOMPARE(opened.value(2).toInt(), 0);  // a new file
        RawDb raw(file);
        QVERIFY(raw.ok());
        QCOMPARE(raw.value(QStringLiteral("PRAGMA user_version")).toInt(), ChatStore::schemaVersion());
        QCOMPARE(raw.value(QStringLiteral("PRAGMA journal_mode")).toString(), QStringLiteral("wal"));
        const QVariantList tables =
            raw.column(QStringLiteral("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"));
        for (const char *t : {"active_children", "conversations", "messages", "model_library", "perf_runs",
                              "presets", "settings"})
            QVERIFY2(tables.contains(QString::fromLatin1(t)), t);
        const QString check = storeResult(store, &ChatStore::integrityChecked, store.integrityCheck()).value(1).toString();
        QCOMPARE(check, QStringLiteral("ok"));
    }

    void conversationCrud()
    {
        const QString file = freshPath();
        ChatStore store;
        QVERIFY(openStore(store, file));
        const ConversationRecord a = create(store, QStringLiteral("alpha"), QStringLiteral("be brief"));
        const ConversationRecord b = create(store, QStringLiteral("beta"));
        const ConversationRecord c = create(store, QStringLiteral("gamma"));
        QCOMPARE(a.systemPrompt, QStringLiteral("be brief"));
        QVERIFY(a.id > 0 && b.id > a.id && c.id > b.id);
        append(store, b.id, 0, {draft(QStringLiteral("user"), QStringLiteral("hi"))});

        const ConversationRecord renamed =
            storeResult(store, &ChatStore::conversationUpdated, store.renameConversation(a.id, QStringLiteral("ALPHA")))
                .value(1)
                .value<ConversationRecord>();
        QCOMPARE(renamed.title, QStringLiteral("ALPHA"));
        QVERIFY(!storeResult(store, &ChatStore::conversationUpdated, store.setConversationPinned(a.id, true)).isEmpty());
        storeResult(store, &ChatStore::conversationUpdated, store.setConversationSettings(c.id, {{"temperature", 0.1}}));

        QList<ConversationRecord> list = storeResult(store, &ChatStore::conversationsListed, store.listConversations())
                                             .value(1)
                                             .value<QList<ConversationRecord>>();
        QCOMPARE(list.size(), 3);
        QCOMPARE(list[0].id, a.id);  // pinned first
        QVERIFY(list[0].pinned);
        QCOMPARE(list[1].id, c.id);  // then most recently updated
        QCOMPARE(list[1].settings.value("temperature").toDouble(), 0.1);

        QVERIFY(!storeResult(store, &ChatStore::conversationDeleted, store.deleteConversation(b.id)).isEmpty());
        list = storeResult(store, &ChatStore::conversationsListed, store.listConversations())
                   .value(1)
                   .value<QList<ConversationRecord>>();
        QCOMPARE(list.size(), 2);
        RawDb raw(file);
        QCOMPARE(raw.value(QStringLiteral("SELECT COUNT(*) FROM messages")).toInt(), 0);  // cascaded

        QCOMPARE(storeError(store, store.renameConversation(b.id, QStringLiteral("x"))).first,
                 int(ChatStore::ErrorKind::NotFound));
        QCOMPARE(storeError(store, store.deleteConversation(b.id)).first, int(ChatStore::ErrorKind::NotFound));
    }

    void search_data()
    {
        QTest::addColumn<QString>("query");
        QTest::addColumn<QStringList>("titles");
        QTest::newRow("title") << "recipe" << QStringList{"Bread recipe"};
        QTest::newRow("message text") << "quantum" << QStringList{"Physics"};
        QTest::newRow("case-insensitive") << "QUANTUM" << QStringList{"Physics"};
        QTest::newRow("both") << "bread" << QStringList{"Physics", "Bread recipe"};
        QTest::newRow("percent is literal") << "100%" << QStringList{"Physics"};
        QTest::newRow("underscore is literal") << "a_b" << QStringList{};
        QTest::newRow("none") << "zebra" << QStringList{};
    }

    void search()
    {
        QFETCH(QString, query);
        QFETCH(QStringList, titles);
        ChatStore store;
        QVERIFY(openStore(store, freshPath()));
        const ConversationRecord bread = create(store, QStringLiteral("Bread recipe"));
        append(store, bread.id, 0, {draft("user", "flour and water"), draft("assistant", "knead it axb")});
        const ConversationRecord physics = create(store, QStringLiteral("Physics"));
        append(store, physics.id, 0,
               {draft("user", "explain Quantum tunnelling"), draft("assistant", "100% sure, like bread rising")});
        const QList<ConversationRecord> hits =
            storeResult(store, &ChatStore::searchFinished, store.searchConversations(query))
                .value(2)
                .value<QList<ConversationRecord>>();
        QStringList got;
        for (const ConversationRecord &c : hits)
            got.append(c.title);
        QCOMPARE(got, titles);
        for (const ConversationRecord &c : hits)
            if (!c.snippet.isEmpty())
                QVERIFY2(c.snippet.contains(query, Qt::CaseInsensitive), qPrintable(c.snippet));
    }

    void branches()
    {
        ChatStore store;
        QVERIFY(openStore(store, freshPath()));
        const qint64 conv = create(store, QStringLiteral("tree")).id;
        const QList<MessageRecord> first = append(store, conv, 0, {draft("user", "u1"), draft("assistant", "a1")});
        QCOMPARE(first.size(), 2);
        QCOMPARE(first[1].parentId, first[0].id);
        const QList<MessageRecord> second = append(store, conv, first[1].id, {draft("user", "u2"), draft("assistant", "a2")});
        QCOMPARE(contents(path(store, conv)), (QStringList{"u1", "a1", "u2", "a2"}));

        // Regenerate a2: a sibling under u2.
        const QList<MessageRecord> regen = append(store, conv, second[0].id, {draft("assistant", "a2b")});
        QCOMPARE(regen[0].siblingIndex, 1);
        QCOMPARE(regen[0].siblingCount, 2);
        QList<MessageRecord> p = path(store, conv);
        QCOMPARE(contents(p), (QStringList{"u1", "a1", "u2", "a2b"}));
        QCOMPARE(p[3].siblingCount, 2);

        // Edit u1: a new root branch.
        const QList<MessageRecord> edited =
            storeResult(store, &ChatStore::messagesAppended, store.editMessage(first[0].id, QStringLiteral("u1 edited")))
                .value(2)
                .value<QList<MessageRecord>>();
        QCOMPARE(edited.size(), 1);
        QCOMPARE(edited[0].parentId, qint64(0));
        QCOMPARE(edited[0].role, QStringLiteral("user"));
        append(store, conv, edited[0].id, {draft("assistant", "a1 edited")});
        p = path(store, conv);
        QCOMPARE(contents(p), (QStringList{"u1 edited", "a1 edited"}));
        QCOMPARE(p[0].siblingIndex, 1);
        QCOMPARE(p[0].siblingCount, 2);

        const QList<MessageRecord> siblings =
            storeResult(store, &ChatStore::siblingsListed, store.listSiblings(edited[0].id))
                .value(2)
                .value<QList<MessageRecord>>();
        QCOMPARE(contents(siblings), (QStringList{"u1", "u1 edited"}));

        // Back to the first branch: its own selections below are kept (a2b).
        const QList<QVariant> switched = storeResult(store, &ChatStore::branchSwitched, store.switchBranch(first[0].id));
        QCOMPARE(switched.value(1).toLongLong(), conv);
        QCOMPARE(contents(switched.value(2).value<QList<MessageRecord>>()), (QStringList{"u1", "a1", "u2", "a2b"}));
        storeResult(store, &ChatStore::branchSwitched, store.switchBranch(second[1].id));
        QCOMPARE(contents(path(store, conv)), (QStringList{"u1", "a1", "u2", "a2"}));

        // A parent from another conversation is refused and nothing is written.
        const qint64 other = create(store, QStringLiteral("other")).id;
        QCOMPARE(storeError(store, store.appendMessages(other, first[0].id, {draft("user", "x")})).first,
                 int(ChatStore::ErrorKind::InvalidArgument));
        QCOMPARE(path(store, other).size(), 0);
    }

    // Random appends and branch switches against a plain in-memory tree.
    void branchesRandomized()
    {
        ChatStore store;
        QVERIFY(openStore(store, freshPath()));
        const qint64 conv = create(store, QStringLiteral("random")).id;
        QHash<qint64, qint64> parentOf;
        QHash<qint64, QList<qint64>> children;  // in creation order
        QHash<qint64, qint64> selected;
        QList<qint64> all;
        auto modelPath = [&] {
            QList<qint64> out;
            qint64 parent = 0;
            while (!children.value(parent).isEmpty()) {
                parent = selected.value(parent);
                out.append(parent);
            }
            return out;
        };
        QRandomGenerator rng(1234);
        for (int step = 0; step < 120; ++step) {
            const int op = rng.bounded(3);
            if (op < 2 || all.isEmpty()) {
                const qint64 parent = (all.isEmpty() || rng.bounded(4) == 0) ? 0 : all[rng.bounded(int(all.size()))];
                const int n = 1 + rng.bounded(2);
                QList<MessageDraft> drafts;
                for (int i = 0; i < n; ++i)
                    drafts.append(draft(i % 2 ? "assistant" : "user", QStringLiteral("m%1.%2").arg(step).arg(i)));
                const QList<MessageRecord> made = append(store, conv, parent, drafts);
                QCOMPARE(made.size(), n);
                qint64 p = parent;
                for (const MessageRecord &m : made) {
                    QCOMPARE(m.parentId, p);
                    parentOf.insert(m.id, p);
                    children[p].append(m.id);
                    selected.insert(p, m.id);
                    all.append(m.id);
                    p = m.id;
                }
            } else {
                const qint64 id = all[rng.bounded(int(all.size()))];
                storeResult(store, &ChatStore::branchSwitched, store.switchBranch(id));
                selected.insert(parentOf.value(id), id);
            }
            QList<qint64> got;
            const QList<MessageRecord> p = path(store, conv);
            for (const MessageRecord &m : p) {
                got.append(m.id);
                const QList<qint64> sib = children.value(m.parentId);
                QCOMPARE(m.siblingCount, int(sib.size()));
                QCOMPARE(m.siblingIndex, int(sib.indexOf(m.id)));
            }
            QCOMPARE(got, modelPath());
        }
    }

    void appendIsAtomic()
    {
        const QString file = freshPath();
        ChatStore store;
        QVERIFY(openStore(store, file));
        const qint64 conv = create(store, QStringLiteral("atomic")).id;
        // The second draft is invalid: the first must not be written either.
        const auto err = storeError(store, store.appendMessages(conv, 0, {draft("user", "ok"), draft("", "no role")}));
        QCOMPARE(err.first, int(ChatStore::ErrorKind::InvalidArgument));
        QCOMPARE(path(store, conv).size(), 0);
        QCOMPARE(storeError(store, store.appendMessages(conv, 0, {})).first, int(ChatStore::ErrorKind::InvalidArgument));
        QCOMPARE(storeError(store, store.appendMessages(conv + 100, 0, {draft("user", "x")})).first,
                 int(ChatStore::ErrorKind::NotFound));
        RawDb raw(file);
        QCOMPARE(raw.value(QStringLiteral("SELECT COUNT(*) FROM messages")).toInt(), 0);
    }

    void streamedWritesAreCoalesced()
    {
        const QString file = freshPath();
        ChatStore store;
        ChatStore::OpenParams params;
        params.streamWriteIntervalMs = 3600 * 1000;  // never by timer in this test
        QVERIFY(openStore(store, file, params));
        const qint64 conv = create(store, QStringLiteral("stream")).id;
        const QList<MessageRecord> made =
            append(store, conv, 0, {draft("user", "q"), draft("assistant", "", MessageState::Streaming)});
        const qint64 reply = made[1].id;
        QString text;
        for (int i = 0; i < 50; ++i) {
            text += QStringLiteral("w%1 ").arg(i);
            store.updateStreamingMessage(reply, text);
        }
        QVERIFY(!storeResult(store, &ChatStore::conversationsListed, store.listConversations()).isEmpty());
        RawDb raw(file);
        const QString sql = QStringLiteral("SELECT content FROM messages WHERE id = %1").arg(reply);
        QCOMPARE(raw.value(sql).toString(), QString());  // not written yet
        QCOMPARE(path(store, conv).value(1).content, text);  // but reads through the store see it

        QVERIFY(!storeResult(store, &ChatStore::flushed, store.flush()).isEmpty());
        QCOMPARE(raw.value(sql).toString(), text);

        QJsonObject stats{{"tokens", 50}, {"tokens_per_s", 12.5}, {"ttft_ms", 30.0}, {"prefix_hit", 0.5}};
        const MessageRecord done =
            storeResult(store, &ChatStore::messageFinished,
                        store.finishStreamingMessage(reply, text + QStringLiteral("end"), MessageState::Complete, stats))
                .value(1)
                .value<MessageRecord>();
        QCOMPARE(done.content, text + QStringLiteral("end"));
        QCOMPARE(raw.value(sql).toString(), text + QStringLiteral("end"));
        QCOMPARE(raw.value(QStringLiteral("SELECT state FROM messages WHERE id = %1").arg(reply)).toString(),
                 QStringLiteral("complete"));
        const MessageRecord loaded = path(store, conv).value(1);
        QCOMPARE(loaded.stats.value("tokens").toInt(), 50);
        QCOMPARE(loaded.stats.value("prefix_hit").toDouble(), 0.5);
    }

    void streamingBecomesInterruptedOnReopen()
    {
        const QString file = freshPath();
        qint64 conv = 0;
        {
            ChatStore store;
            QVERIFY(openStore(store, file));
            conv = create(store, QStringLiteral("x")).id;
            const QList<MessageRecord> made =
                append(store, conv, 0, {draft("user", "q"), draft("assistant", "", MessageState::Streaming)});
            store.updateStreamingMessage(made[1].id, QStringLiteral("partial"));
        }  // the destructor writes the pending text
        ChatStore store;
        QVERIFY(openStore(store, file));
        const QList<MessageRecord> p = path(store, conv);
        QCOMPARE(p.size(), 2);
        QCOMPARE(p[1].content, QStringLiteral("partial"));
        QCOMPARE(p[1].state, MessageState::Interrupted);
    }

    void migratesFromV1()
    {
        const QString file = freshPath();
        QDir().mkpath(QFileInfo(file).absolutePath());
        {
            // The version 1 schema as it shipped, written by hand.
            RawDb raw(file);
            QVERIFY(raw.exec("CREATE TABLE conversations (id INTEGER PRIMARY KEY AUTOINCREMENT, title TEXT NOT NULL "
                             "DEFAULT '', created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, system_prompt TEXT "
                             "NOT NULL DEFAULT '')"));
            QVERIFY(raw.exec("CREATE TABLE messages (id INTEGER PRIMARY KEY AUTOINCREMENT, conversation_id INTEGER NOT "
                             "NULL REFERENCES conversations(id) ON DELETE CASCADE, parent_id INTEGER REFERENCES "
                             "messages(id) ON DELETE CASCADE, role TEXT NOT NULL, content TEXT NOT NULL DEFAULT '', "
                             "created_at INTEGER NOT NULL)"));
            QVERIFY(raw.exec("CREATE INDEX messages_by_parent ON messages(conversation_id, parent_id)"));
            QVERIFY(raw.exec("CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT)"));
            QVERIFY(raw.exec("INSERT INTO conversations VALUES (1, 'old chat', 1000, 2000, 'sys')"));
            QVERIFY(raw.exec("INSERT INTO messages VALUES (1, 1, NULL, 'user', 'hello', 1000)"));
            QVERIFY(raw.exec("INSERT INTO messages VALUES (2, 1, 1, 'assistant', 'first answer', 1001)"));
            QVERIFY(raw.exec("INSERT INTO messages VALUES (3, 1, 1, 'assistant', 'second answer', 1002)"));
            QVERIFY(raw.exec("INSERT INTO messages VALUES (4, 1, 3, 'user', 'thanks', 1003)"));
            QVERIFY(raw.exec("INSERT INTO settings VALUES ('threads', '8')"));
            QVERIFY(raw.exec("PRAGMA user_version = 1"));
        }
        ChatStore store;
        const QList<QVariant> opened = storeResult(store, &ChatStore::opened, store.open(file));
        QCOMPARE(opened.value(2).toInt(), 1);
        {
            RawDb raw(file);
            QCOMPARE(raw.value("PRAGMA user_version").toInt(), ChatStore::schemaVersion());
        }
        const QList<ConversationRecord> list = storeResult(store, &ChatStore::conversationsListed,
                                                           store.listConversations())
                                                   .value(1)
                                                   .value<QList<ConversationRecord>>();
        QCOMPARE(list.size(), 1);
        QCOMPARE(list[0].title, QStringLiteral("old chat"));
        QCOMPARE(list[0].systemPrompt, QStringLiteral("sys"));
        QCOMPARE(list[0].pinned, false);
        // v1 showed the newest reply: the backfilled selection keeps that branch.
        const QList<MessageRecord> p = path(store, 1);
        QCOMPARE(contents(p), (QStringList{"hello", "second answer", "thanks"}));
        QCOMPARE(p[1].siblingCount, 2);
        QCOMPARE(p[1].state, MessageState::Complete);
        const QVariantMap settings =
            storeResult(store, &ChatStore::settingsLoaded, store.loadSettings()).value(1).toMap();
        QCOMPARE(settings.value("threads").toString(), QStringLiteral("8"));
        // New tables work after the migration.
        QVERIFY(!storeResult(store, &ChatStore::presetSaved, store.savePreset({0, "terse", "be terse", {}})).isEmpty());
        QVERIFY(!storeResult(store, &ChatStore::perfRunSaved, store.savePerfRun({{"tps", 10}})).isEmpty());
        QCOMPARE(storeResult(store, &ChatStore::integrityChecked, store.integrityCheck()).value(1).toString(),
                 QStringLiteral("ok"));
    }

    void refusesNewerSchema()
    {
        const QString file = freshPath();
        QDir().mkpath(QFileInfo(file).absolutePath());
        {
            RawDb raw(file);
            QVERIFY(raw.exec("CREATE TABLE future (x)"));
            QVERIFY(raw.exec("PRAGMA user_version = 99"));
        }
        ChatStore store;
        const auto err = storeError(store, store.open(file));
        QCOMPARE(err.first, int(ChatStore::ErrorKind::NewerSchema));
        QVERIFY2(err.second.contains("newer"), qPrintable(err.second));
        RawDb raw(file);
        QCOMPARE(raw.value("PRAGMA user_version").toInt(), 99);  // untouched
        // Requests on a store that failed to open are errors, not crashes.
        QCOMPARE(storeError(store, store.listConversations()).first, int(ChatStore::ErrorKind::NotOpen));
    }

    void openErrors_data()
    {
        QTest::addColumn<QString>("kind");
        QTest::addColumn<int>("expected");
        QTest::newRow("folder under a regular file") << "under-file" << int(ChatStore::ErrorKind::OpenFailed);
        QTest::newRow("folder in /proc") << "proc" << int(ChatStore::ErrorKind::OpenFailed);
        QTest::newRow("read-only folder") << "readonly" << int(ChatStore::ErrorKind::OpenFailed);
        QTest::newRow("text file") << "text" << int(ChatStore::ErrorKind::Corrupt);
        QTest::newRow("random bytes") << "random" << int(ChatStore::ErrorKind::Corrupt);
        QTest::newRow("a folder") << "dir" << int(ChatStore::ErrorKind::InvalidArgument);
    }

    void openErrors()
    {
        QFETCH(QString, kind);
        QFETCH(int, expected);
        const QString base = m_dir.filePath(QStringLiteral("err%1").arg(++m_counter));
        QDir().mkpath(base);
        QString file;
        if (kind == "under-file") {
            QFile f(base + "/plain");
            QVERIFY(f.open(QIODevice::WriteOnly));
            file = base + "/plain/sub/chats.sqlite";
        } else if (kind == "proc") {
            file = QStringLiteral("/proc/glassbox-test/chats.sqlite");
        } else if (kind == "readonly") {
            if (geteuid() == 0)
                QSKIP("root ignores folder permissions");
            QFile::setPermissions(base, QFile::ReadOwner | QFile::ExeOwner);
            file = base + "/chats.sqlite";
        } else if (kind == "text" || kind == "random") {
            file = base + "/chats.sqlite";
            QFile f(file);
            QVERIFY(f.open(QIODevice::WriteOnly));
            QByteArray bytes;
            if (kind == "text") {
                bytes = QByteArray("this is not a database\n").repeated(300);
            } else {
                QRandomGenerator rng(7);
                for (int i = 0; i < 8192; ++i)
                    bytes.append(char(rng.bounded(256)));
            }
            f.write(bytes);
        } else {
            file = base;
        }
        ChatStore store;
        const auto err = storeError(store, store.open(file));
        QFile::setPermissions(base, QFile::ReadOwner | QFile::WriteOwner | QFile::ExeOwner);
        QCOMPARE(err.first, expected);
        QVERIFY2(err.second.startsWith("Could not open the chat history"), qPrintable(err.second));
        QCOMPARE(storeError(store, store.createConversation("x")).first, int(ChatStore::ErrorKind::NotOpen));
        // The same store then opens a good file and works.
        QVERIFY(openStore(store, freshPath()));
        QVERIFY(create(store, QStringLiteral("fine")).id > 0);
    }

    void diskFull()
    {
        const QString file = freshPath();
        ChatStore store;
        ChatStore::OpenParams params;
        params.maxPageCount = 40;  // ~160 KiB with 4 KiB pages
        QVERIFY(openStore(store, file, params));
        const qint64 conv = create(store, QStringLiteral("full")).id;
        const QList<MessageRecord> kept = append(store, conv, 0, {draft("user", "small and safe")});
        const QString big(20000, QLatin1Char('x'));
        qint64 parent = kept[0].id;
        QPair<int, QString> err{-1, {}};
        for (int i = 0; i < 40 && err.first < 0; ++i) {
            const quint64 req = store.appendMessages(conv, parent, {draft("assistant", big + QString::number(i))});
            QString message;
            int kind = -1;
            const QList<QVariant> r = storeResult(store, &ChatStore::messagesAppended, req, &message, &kind);
            if (r.isEmpty())
                err = {kind, message};
            else
                parent = r.value(2).value<QList<MessageRecord>>().value(0).id;
        }
        QCOMPARE(err.first, int(ChatStore::ErrorKind::DiskFull));
        QVERIFY2(err.second.contains("disk is full"), qPrintable(err.second));
        // Earlier messages are intact and the store still answers.
        QCOMPARE(path(store, conv).value(0).content, QStringLiteral("small and safe"));
        QCOMPARE(storeResult(store, &ChatStore::integrityChecked, store.integrityCheck()).value(1).toString(),
                 QStringLiteral("ok"));
    }

    void killedMidReply()
    {
        const QString file = freshPath();
        QDir().mkpath(QFileInfo(file).absolutePath());
        QProcess writer;
        writer.setProcessChannelMode(QProcess::SeparateChannels);
        writer.start(QStringLiteral(CHAT_STORE_WRITER), {file, QStringLiteral("10")});
        QVERIFY(writer.waitForStarted());
        QVERIFY2(QTest::qWaitFor([&] { return writer.canReadLine() || writer.state() == QProcess::NotRunning; }, 60000),
                 "the writer did not start streaming");
        const QList<QByteArray> words = writer.readLine().trimmed().split(' ');
        QCOMPARE(words.value(0), QByteArray("STREAMING"));
        const qint64 conv = words.value(1).toLongLong();
        const qint64 reply = words.value(2).toLongLong();
        // Wait until a good part of the reply is on disk (read through a second
        // connection while the writer keeps writing), then kill -9.
        int seen = 0;
        {
            RawDb raw(file);
            const QString sql = QStringLiteral("SELECT length(content) FROM messages WHERE id = %1").arg(reply);
            QVERIFY(QTest::qWaitFor([&] { return (seen = raw.value(sql).toInt()) >= 600; }, 60000));
        }
        QCOMPARE(writer.state(), QProcess::Running);
        writer.kill();  // SIGKILL
        QVERIFY(writer.waitForFinished());
        QCOMPARE(writer.exitStatus(), QProcess::CrashExit);

        ChatStore store;
        QVERIFY(openStore(store, file));
        QCOMPARE(storeResult(store, &ChatStore::integrityChecked, store.integrityCheck()).value(1).toString(),
                 QStringLiteral("ok"));
        const QList<MessageRecord> p = path(store, conv);
        QCOMPARE(p.size(), 22);
        for (int i = 0; i < 10; ++i) {
            QCOMPARE(p[2 * i].content, QStringLiteral("question %1").arg(i));
            QCOMPARE(p[2 * i + 1].content, QStringLiteral("answer %1").arg(i));
            QCOMPARE(p[2 * i + 1].state, MessageState::Complete);
        }
        QCOMPARE(p[20].content, QStringLiteral("last question"));
        QCOMPARE(p[21].state, MessageState::Interrupted);
        // What was saved of the reply is a whole prefix of what was streamed.
        const QString partial = p[21].content;
        QVERIFY(partial.size() >= seen);
        QCOMPARE(partial, QStringLiteral("token ").repeated(int(partial.size() / 6)));
    }

    void settingsPresetsLibraryPerf()
    {
        ChatStore store;
        QVERIFY(openStore(store, freshPath()));
        const QVariantMap values{{"threads", 6}, {"temperature", 0.25}, {"greedy", true},
                                 {"system_prompt", QStringLiteral("héllo ✓")}, {"stop", QVariantList{"a", "b"}}};
        QVERIFY(!storeResult(store, &ChatStore::settingsWritten, store.setSettings(values)).isEmpty());
        QVERIFY(!storeResult(store, &ChatStore::settingsWritten, store.setSetting("threads", 4)).isEmpty());
        const QVariantMap loaded = storeResult(store, &ChatStore::settingsLoaded, store.loadSettings()).value(1).toMap();
        QCOMPARE(loaded.value("threads").toInt(), 4);
        QCOMPARE(loaded.value("temperature").toDouble(), 0.25);
        QCOMPARE(loaded.value("greedy").toBool(), true);
        QCOMPARE(loaded.value("system_prompt").toString(), QStringLiteral("héllo ✓"));
        QCOMPARE(loaded.value("stop").toStringList(), (QStringList{"a", "b"}));

        const PresetRecord p1 = storeResult(store, &ChatStore::presetSaved, store.savePreset({0, "coder", "write code", {}}))
                                    .value(1)
                                    .value<PresetRecord>();
        const PresetRecord p2 = storeResult(store, &ChatStore::presetSaved, store.savePreset({0, "coder", "write C++", {}}))
                                    .value(1)
                                    .value<PresetRecord>();
        QCOMPARE(p2.id, p1.id);  // same name: replaced
        QCOMPARE(storeError(store, store.savePreset({0, "  ", "", {}})).first, int(ChatStore::ErrorKind::InvalidArgument));
        QList<PresetRecord> presets =
            storeResult(store, &ChatStore::presetsListed, store.listPresets()).value(1).value<QList<PresetRecord>>();
        QCOMPARE(presets.size(), 1);
        QCOMPARE(presets[0].systemPrompt, QStringLiteral("write C++"));
        storeResult(store, &ChatStore::presetDeleted, store.deletePreset(p1.id));
        presets = storeResult(store, &ChatStore::presetsListed, store.listPresets()).value(1).value<QList<PresetRecord>>();
        QCOMPARE(presets.size(), 0);

        const ModelEntry e = storeResult(store, &ChatStore::modelEntryAdded,
                                         store.addModelEntry("/m/a.gguf", {{"arch", "gemma3"}}))
                                 .value(1)
                                 .value<ModelEntry>();
        storeResult(store, &ChatStore::modelEntryAdded, store.addModelEntry("/m/a.gguf", {{"arch", "llama"}}));
        storeResult(store, &ChatStore::modelEntryAdded, store.addModelEntry("/m/b.gguf", {}));
        QList<ModelEntry> models = storeResult(store, &ChatStore::modelEntriesListed, store.listModelEntries())
                                       .value(1)
                                       .value<QList<ModelEntry>>();
        QCOMPARE(models.size(), 2);
        QCOMPARE(models[0].id, e.id);
        QCOMPARE(models[0].metadata.value("arch").toString(), QStringLiteral("llama"));
        storeResult(store, &ChatStore::modelEntryRemoved, store.removeModelEntry(e.id));
        models = storeResult(store, &ChatStore::modelEntriesListed, store.listModelEntries())
                     .value(1)
                     .value<QList<ModelEntry>>();
        QCOMPARE(models.size(), 1);

        storeResult(store, &ChatStore::perfRunSaved, store.savePerfRun({{"tps", 41.5}}));
        const QList<PerfRunRecord> runs =
            storeResult(store, &ChatStore::perfRunsListed, store.listPerfRuns()).value(1).value<QList<PerfRunRecord>>();
        QCOMPARE(runs.size(), 1);
        QCOMPARE(runs[0].data.value("tps").toDouble(), 41.5);
    }
};

QTEST_GUILESS_MAIN(TestChatStore)
#include "tst_chat_store.moc"
