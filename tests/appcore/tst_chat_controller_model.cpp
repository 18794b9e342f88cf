// ChatController end to end with the real engine (gemma-3-270m, greedy):
// send, regenerate (same reply, prompt served from the prefix cache), edit an
// earlier message, switch branches, and the history after a restart. Replies
// are checked against gb::Session called directly.
#include "chat_controller.h"
#include "chat_store.h"
#include "engine_worker.h"
#include "settings.h"
#include "store_test_util.h"

#include "glassbox/model.h"
#include "glassbox/session.h"

#include <QFile>
#include <QTemporaryDir>
#include <QtTest>

namespace {

const QString kModel = QStringLiteral(GLASSBOX_MODEL_DIR "/gemma-3-270m-q4_k_m.gguf");
constexpr int kMaxTokens = 12;

struct App {
    ChatStore store;
    EngineWorker engine{EngineWorker::createGlassboxBackend()};
    Settings settings{&store};
    ChatController controller{&store, &engine, &settings};

    bool start(const QString &dbPath)
    {
        if (storeResult(store, &ChatStore::opened, store.open(dbPath)).isEmpty())
            return false;
        QSignalSpy settingsLoaded(&settings, &Settings::loaded);
        settings.load();
        if (!settingsLoaded.wait(10000))
            return false;
        settings.setValue(Settings::Key::Temperature, 0.0);
        settings.setValue(Settings::Key::MaxTokens, kMaxTokens);
        settings.setValue(Settings::Key::ContextLength, 512);
        QSignalSpy loaded(&engine, &EngineWorker::modelLoaded);
        controller.loadModel(kModel);
        return loaded.wait(120000);
    }
    QStringList contents() const
    {
        QStringList out;
        for (const MessageRecord &m : controller.snapshot().messages)
            out.append(m.content);
        return out;
    }
    MessageRecord waitReply(QSignalSpy &finished)
    {
        if (!QTest::qWaitFor([&] { return !finished.isEmpty(); }, 300000))
            return {};
        return finished.takeFirst().at(1).value<MessageRecord>();
    }
};

// Greedy replies straight from the engine, one per conversation prefix.
QString oracle(const std::vector<gb::ChatMessage> &messages)
{
    static std::shared_ptr<const gb::Model> model;
    if (!model) {
        auto m = gb::Model::load(kModel.toStdString());
        if (!m)
            return QStringLiteral("<load failed>");
        model = m.value();
    }
    gb::SessionParams sp;
    sp.context.n_ctx = 512;
    sp.overflow = gb::OverflowPolicy::DropOldestTurns;
    auto session = gb::Session::create(model, sp);
    gb::GenerateParams gp;
    gp.sampling.temperature = 0.0f;
    gp.max_tokens = kMaxTokens;
    auto r = session ? session.value()->chat(messages, gp) : gb::Result<gb::GenerateResult>(gb::make_error(gb::ErrorCode::Internal, ""));
    return r ? QString::fromStdString(r.value().text) : QStringLiteral("<chat failed>");
}

}  // namespace

class TestChatControllerModel : public QObject {
    Q_OBJECT

private:
    QTemporaryDir m_dir;

private slots:
    void initTestCase()
    {
        if (!QFile::exists(kModel))
            QSKIP("model file not found (set GLASSBOX_MODEL_DIR)");
        QVERIFY(m_dir.isValid());
    }

    void sendRegenerateEditSwitchRestart()
    {
        const QString db = m_dir.filePath("chats.sqlite");
        qint64 conv = 0;
        QString hiReply;
        {
            App app;
            QVERIFY(app.start(db));
            QSignalSpy finished(&app.controller, &ChatController::replyFinished);
            QSignalSpy tokens(&app.controller, &ChatController::tokenReceived);

            QVERIFY(app.controller.sendMessage(QStringLiteral("Hi! Who are you, and what can you help me with today?")));
            MessageRecord reply = app.waitReply(finished);
            QCOMPARE(reply.state, MessageState::Complete);
            hiReply = reply.content;
            QVERIFY(!hiReply.isEmpty());
            QCOMPARE(hiReply, oracle({{"user", "Hi! Who are you, and what can you help me with today?"}}));
            QVERIFY(!tokens.isEmpty());
            QCOMPARE(reply.stats.value("tokens").toInt(), int(tokens.size()));
            conv = app.controller.currentConversationId();

            // Regenerate: greedy gives the same text again, and the prompt is reused
            // (the batching engine reuses whole pages of 16 tokens: the prompt is longer).
            QVERIFY(app.controller.regenerate());
            reply = app.waitReply(finished);
            QCOMPARE(reply.content, hiReply);
            QVERIFY(reply.stats.value("prompt_tokens_reused").toInt() > 0);
            QTRY_COMPARE(app.controller.snapshot().messages.value(1).siblingCount, 2);

            // Edit the user message: a new branch with the reply to the new text.
            const qint64 firstUser = app.controller.snapshot().messages[0].id;
            QVERIFY(app.controller.editMessage(firstUser, QStringLiteral("What is 2 + 2?")));
            reply = app.waitReply(finished);
            QCOMPARE(reply.content, oracle({{"user", "What is 2 + 2?"}}));
            QCOMPARE(app.contents(), (QStringList{"What is 2 + 2?", reply.content}));

            // Switch back to the first branch.
            app.controller.switchSibling(app.controller.snapshot().messages[0].id, -1);
            QTRY_COMPARE(app.contents().value(0), QStringLiteral("Hi! Who are you, and what can you help me with today?"));
            QCOMPARE(app.contents().value(1), hiReply);
        }
        // Restart: everything is in the history.
        App app;
        QVERIFY(app.start(db));
        app.controller.refreshConversations();
        QTRY_COMPARE(app.controller.conversations().size(), 1);
        app.controller.openConversation(conv);
        QTRY_COMPARE(app.contents(), (QStringList{"Hi! Who are you, and what can you help me with today?", hiReply}));
        QCOMPARE(app.controller.snapshot().messages[0].siblingCount, 2);
        QCOMPARE(app.controller.snapshot().messages[1].siblingCount, 2);
    }

    // The batching setting switches the engine path live (no reload): the chat
    // stays, replies are the same as the Session's, the stats say which path.
    void batchingToggleSwitchesPathLive()
    {
        App app;
        QVERIFY(app.start(m_dir.filePath("toggle.sqlite")));
        QVERIFY(app.settings.value(Settings::Key::Batching).toBool());  // on by default
        QSignalSpy finished(&app.controller, &ChatController::replyFinished);
        QSignalSpy loads(&app.engine, &EngineWorker::modelLoadStarted);

        QVERIFY(app.controller.sendMessage(QStringLiteral("Hi! Who are you?")));
        MessageRecord reply = app.waitReply(finished);
        QCOMPARE(reply.stats.value("engine").toString(), QStringLiteral("batch"));
        QCOMPARE(reply.content, oracle({{"user", "Hi! Who are you?"}}));
        const QString first = reply.content;

        app.settings.setValue(Settings::Key::Batching, false);
        QVERIFY(app.controller.sendMessage(QStringLiteral("What is 2 + 2?")));
        reply = app.waitReply(finished);
        QCOMPARE(reply.stats.value("engine").toString(), QStringLiteral("session"));
        QCOMPARE(reply.content, oracle({{"user", "Hi! Who are you?"}, {"assistant", first.toStdString()},
                                        {"user", "What is 2 + 2?"}}));
        const QString second = reply.content;
        QCOMPARE(app.contents(), (QStringList{"Hi! Who are you?", first, "What is 2 + 2?", second}));

        app.settings.setValue(Settings::Key::Batching, true);
        QVERIFY(app.controller.regenerate());
        reply = app.waitReply(finished);
        QCOMPARE(reply.stats.value("engine").toString(), QStringLiteral("batch"));
        QCOMPARE(reply.content, second);
        QCOMPARE(app.contents(), (QStringList{"Hi! Who are you?", first, "What is 2 + 2?", second}));
        QCOMPARE(loads.size(), 0);  // no reload for the switch
    }
};

QTEST_GUILESS_MAIN(TestChatControllerModel)
#include "tst_chat_controller_model.moc"
