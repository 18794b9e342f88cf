// ChatController over a real ChatStore and a fake engine: send, regenerate,
// edit, switch branch, stop, switching conversations while one generates,
// failures, and everything still there after a restart.
#include "chat_controller.h"
#include "chat_store.h"
#include "engine_worker.h"
#include "fake_backend.h"
#include "settings.h"
#include "store_test_util.h"

#include <QTemporaryDir>
#include <QtTest>

namespace {

struct Fixture {
    std::shared_ptr<FakeBackendControl> control = std::make_shared<FakeBackendControl>();
    std::unique_ptr<ChatStore> store;
    std::unique_ptr<EngineWorker> engine;
    std::unique_ptr<Settings> settings;
    std::unique_ptr<ChatController> controller;

    bool start(const QString &path, bool loadModel = true)
    {
        store = std::make_unique<ChatStore>();
        if (storeResult(*store, &ChatStore::opened, store->open(path)).isEmpty())
            return false;
        engine = std::make_unique<EngineWorker>(std::make_unique<FakeBackend>(control));
        settings = std::make_unique<Settings>(store.get());
        QSignalSpy loadedSettings(settings.get(), &Settings::loaded);
        settings->load();
        if (!loadedSettings.wait(10000))
            return false;
        controller = std::make_unique<ChatController>(store.get(), engine.get(), settings.get());
        if (loadModel) {
            QSignalSpy loaded(engine.get(), &EngineWorker::modelLoaded);
            controller->loadModel(QStringLiteral("/models/fake.gguf"));
            if (!loaded.wait(10000))
                return false;
        }
        return true;
    }
    void stop()
    {
        controller.reset();
        settings.reset();
        engine.reset();
        store.reset();
    }
    ~Fixture() { stop(); }

    bool waitIdle(qint64 conversationId)
    {
        return QTest::qWaitFor([&] { return !controller->isGenerating(conversationId); }, 20000);
    }
    // Waits for the reply of the current conversation to be finished and stored.
    bool sendAndWait(const QString &text)
    {
        QSignalSpy finished(controller.get(), &ChatController::replyFinished);
        return controller->sendMessage(text) && finished.wait(20000);
    }
    QStringList contents() const
    {
        QStringList out;
        for (const MessageRecord &m : controller->snapshot().messages)
            out.append(m.content);
        return out;
    }
};

QStringList promptTexts(const std::vector<gb::ChatMessage> &messages)
{
    QStringList out;
    for (const gb::ChatMessage &m : messages)
        out.append(QString::fromStdString(m.role + ":" + m.content));
    return out;
}

}  // namespace

class TestChatController : public QObject {
    Q_OBJECT

private:
    QTemporaryDir m_dir;
    int m_counter = 0;
    QString freshPath() { return m_dir.filePath(QStringLiteral("c%1.sqlite").arg(++m_counter)); }

private slots:
    void initTestCase() { QVERIFY(m_dir.isValid()); }

    void sendCreatesConversationAndStreamsReply()
    {
        Fixture f;
        QVERIFY(f.start(freshPath()));
        f.settings->setValue(Settings::Key::SystemPrompt, QStringLiteral("be kind"));
        QSignalSpy tokens(f.controller.get(), &ChatController::tokenReceived);
        QSignalSpy current(f.controller.get(), &ChatController::currentConversationChanged);
        QVERIFY(f.sendAndWait(QStringLiteral("hello there")));
        QCOMPARE(current.size(), 1);
        const ChatSnapshot s = f.controller->snapshot();
        QVERIFY(s.conversation.id > 0);
        QCOMPARE(s.conversation.title, QStringLiteral("hello there"));
        QCOMPARE(s.conversation.systemPrompt, QStringLiteral("be kind"));
        QCOMPARE(f.contents(), (QStringList{"hello there", "echo hello there #1"}));
        QCOMPARE(s.messages[1].state, MessageState::Complete);
        QCOMPARE(s.messages[1].stats.value("tokens").toInt(), 4);
        QCOMPARE(s.generation.active(), false);
        QCOMPARE(tokens.size(), 4);
        const QList<GeneratedToken> kept = f.controller->tokens(s.messages[1].id);
        QCOMPARE(kept.size(), 4);
        QCOMPARE(kept[0].top.size(), 5);  // top alternatives with their text
        QCOMPARE(kept[0].top[1].text, QStringLiteral("t101"));
        const QList<std::vector<gb::ChatMessage>> prompts = f.control->takePrompts();
        QCOMPARE(prompts.size(), 1);
        QCOMPARE(promptTexts(prompts[0]), (QStringList{"system:be kind", "user:hello there"}));
        // A second turn sees the whole active path.
        QVERIFY(f.sendAndWait(QStringLiteral("more")));
        QCOMPARE(promptTexts(f.control->takePrompts().value(0)),
                 (QStringList{"system:be kind", "user:hello there", "assistant:echo hello there #1", "user:more"}));
        QTRY_COMPARE(f.controller->conversations().size(), 1);
    }

    void regenerateEditAndSwitch()
    {
        Fixture f;
        QVERIFY(f.start(freshPath()));
        QVERIFY(f.sendAndWait(QStringLiteral("one")));
        QVERIFY(f.sendAndWait(QStringLiteral("two")));
        QCOMPARE(f.contents(), (QStringList{"one", "echo one #1", "two", "echo two #2"}));
        f.control->takePrompts();

        // Regenerate the last reply: a sibling, same prompt.
        QSignalSpy finished(f.controller.get(), &ChatController::replyFinished);
        QVERIFY(f.controller->regenerate());
        QVERIFY(finished.wait(20000));
        QCOMPARE(f.contents(), (QStringList{"one", "echo one #1", "two", "echo two #3"}));
        QCOMPARE(f.controller->snapshot().messages[3].siblingIndex, 1);
        QCOMPARE(f.controller->snapshot().messages[3].siblingCount, 2);
        QCOMPARE(promptTexts(f.control->takePrompts().value(0)),
                 (QStringList{"user:one", "assistant:echo one #1", "user:two"}));

        // Edit the first user message: a new branch from the root, with a new reply
        // whose prompt no longer has the old turns.
        const qint64 firstUser = f.controller->snapshot().messages[0].id;
        QVERIFY(f.controller->editMessage(firstUser, QStringLiteral("uno")));
        QVERIFY(finished.wait(20000));
        QCOMPARE(f.contents(), (QStringList{"uno", "echo uno #4"}));
        QCOMPARE(f.controller->snapshot().messages[0].siblingCount, 2);
        QCOMPARE(promptTexts(f.control->takePrompts().value(0)), (QStringList{"user:uno"}));

        // Back to the first branch: it comes with its own latest reply (#3).
        QSignalSpy changed(f.controller.get(), &ChatController::snapshotChanged);
        f.controller->switchSibling(f.controller->snapshot().messages[0].id, -1);
        QTRY_COMPARE(f.contents(), (QStringList{"one", "echo one #1", "two", "echo two #3"}));
        f.controller->switchSibling(f.controller->snapshot().messages[3].id, -1);
        QTRY_COMPARE(f.contents(), (QStringList{"one", "echo one #1", "two", "echo two #2"}));
        f.controller->switchSibling(f.controller->snapshot().messages[3].id, -1);  // no earlier one: no change
        QVERIFY(!QTest::qWaitFor([&] { return f.contents().value(3) != QStringLiteral("echo two #2"); }, 200));

        // Editing a reply makes a sibling and does not generate.
        const int calls = f.control->calls;
        QVERIFY(f.controller->editMessage(f.controller->snapshot().messages[3].id, QStringLiteral("fixed reply")));
        QTRY_COMPARE(f.contents(), (QStringList{"one", "echo one #1", "two", "fixed reply"}));
        QCOMPARE(f.control->calls.load(), calls);

        // All of it is in the store after a restart.
        const qint64 conv = f.controller->currentConversationId();
        const QString path = m_dir.filePath(QStringLiteral("c%1.sqlite").arg(m_counter));
        f.stop();
        Fixture g;
        QVERIFY(g.start(path, false));
        g.controller->refreshConversations();
        QTRY_COMPARE(g.controller->conversations().size(), 1);
        g.controller->openConversation(conv);
        QTRY_COMPARE(g.contents(), (QStringList{"one", "echo one #1", "two", "fixed reply"}));
        QCOMPARE(g.controller->snapshot().messages[3].siblingCount, 3);
        QCOMPARE(g.controller->snapshot().messages[0].siblingCount, 2);
    }

    void stopIsImmediate()
    {
        Fixture f;
        QVERIFY(f.start(freshPath()));
        f.control->holdAfterTokens = 2;
        QSignalSpy tokens(f.controller.get(), &ChatController::tokenReceived);
        QSignalSpy finished(f.controller.get(), &ChatController::replyFinished);
        QVERIFY(f.controller->sendMessage(QStringLiteral("a long answer please")));
        QTRY_COMPARE(tokens.size(), 2);
        const qint64 conv = f.controller->currentConversationId();
        QVERIFY(f.controller->isGenerating(conv));
        QCOMPARE(f.controller->snapshot().messages.value(1).content, QStringLiteral("echo a"));
        QCOMPARE(f.controller->snapshot().generation.phase, GenerationState::Phase::Generating);
        QVERIFY(!f.controller->sendMessage(QStringLiteral("not now")));  // busy in this conversation
        f.controller->stop();
        QVERIFY(finished.wait(20000));
        const MessageRecord reply = finished.takeFirst().at(1).value<MessageRecord>();
        QCOMPARE(reply.state, MessageState::Cancelled);
        QCOMPARE(reply.content, QStringLiteral("echo a"));
        QCOMPARE(reply.stats.value("stop").toString(), QStringLiteral("cancelled"));
        QCOMPARE(tokens.size(), 2);
        QVERIFY(!f.controller->isGenerating(conv));
    }

    void switchConversationWhileGenerating()
    {
        Fixture f;
        QVERIFY(f.start(freshPath()));
        f.control->holdAfterTokens = 1;
        QSignalSpy tokens(f.controller.get(), &ChatController::tokenReceived);
        QVERIFY(f.controller->sendMessage(QStringLiteral("first chat")));
        QTRY_COMPARE(tokens.size(), 1);
        const qint64 a = f.controller->currentConversationId();

        // Open a second conversation and send there: it queues behind A.
        QSignalSpy current(f.controller.get(), &ChatController::currentConversationChanged);
        f.controller->newConversation(QStringLiteral("second"));
        QVERIFY(current.wait(10000));
        const qint64 b = f.controller->currentConversationId();
        QVERIFY(b != a);
        QVERIFY(f.controller->sendMessage(QStringLiteral("other topic")));
        QTRY_VERIFY(f.controller->isGenerating(b));
        QCOMPARE(f.controller->generationState(b).phase, GenerationState::Phase::Queued);
        QVERIFY(f.controller->isGenerating(a));

        // A finishes in the background; B's view never shows A's text.
        bool leaked = false;
        connect(f.controller.get(), &ChatController::snapshotChanged, this, [&] {
            leaked = leaked || f.controller->currentConversationId() != b || f.contents().join('|').contains("first");
        });
        f.control->holdAfterTokens = -1;
        f.control->released = true;
        QVERIFY(f.waitIdle(a));
        QVERIFY(f.waitIdle(b));
        QVERIFY(!leaked);
        QCOMPARE(f.contents(), (QStringList{"other topic", "echo other topic #2"}));
        QVERIFY(f.controller->snapshot().conversation.id == b);

        f.controller->openConversation(a);
        QTRY_COMPARE(f.contents(), (QStringList{"first chat", "echo first chat #1"}));
        QCOMPARE(f.controller->snapshot().messages[1].state, MessageState::Complete);
    }

    void openWhileStreamingShowsTextSoFar()
    {
        Fixture f;
        QVERIFY(f.start(freshPath()));
        f.control->holdAfterTokens = 2;
        QSignalSpy tokens(f.controller.get(), &ChatController::tokenReceived);
        QVERIFY(f.controller->sendMessage(QStringLiteral("keep going")));
        QTRY_COMPARE(tokens.size(), 2);
        const qint64 a = f.controller->currentConversationId();
        f.controller->newConversation();
        QTRY_VERIFY(f.controller->currentConversationId() != a);
        f.controller->openConversation(a);
        QTRY_VERIFY(!f.controller->snapshot().loading);
        QCOMPARE(f.contents(), (QStringList{"keep going", "echo keep"}));
        QCOMPARE(f.controller->snapshot().messages[1].state, MessageState::Streaming);
        QVERIFY(f.controller->snapshot().generation.active());
        f.control->released = true;
        QVERIFY(f.waitIdle(a));
        QTRY_COMPARE(f.contents(), (QStringList{"keep going", "echo keep going #1"}));
    }

    void failuresAreReported()
    {
        Fixture f;
        QVERIFY(f.start(freshPath(), false));  // no model loaded
        QSignalSpy errors(f.controller.get(), &ChatController::errorOccurred);
        QSignalSpy finished(f.controller.get(), &ChatController::replyFinished);
        QVERIFY(f.controller->sendMessage(QStringLiteral("anyone?")));
        QVERIFY(finished.wait(20000));
        QCOMPARE(finished.first().at(1).value<MessageRecord>().state, MessageState::Failed);
        QVERIFY(!errors.isEmpty());
        QVERIFY2(errors.first().at(0).toString().contains("No model is loaded"), qPrintable(errors.first().at(0).toString()));

        // A bad model file: an error, and the app still works once a good one is loaded.
        QSignalSpy loadFailed(f.engine.get(), &EngineWorker::modelLoadFailed);
        f.controller->loadModel(QStringLiteral("/models/broken.bad"));
        QVERIFY(loadFailed.wait(10000));
        QVERIFY(loadFailed.first().at(1).toString().contains("broken.bad"));
        QSignalSpy loaded(f.engine.get(), &EngineWorker::modelLoaded);
        f.controller->loadModel(QStringLiteral("/models/good.gguf"));
        QVERIFY(loaded.wait(10000));
        QVERIFY(f.sendAndWait(QStringLiteral("now?")));
        QCOMPARE(f.contents().last(), QStringLiteral("echo now? #1"));
    }

    void reloadOnEngineSettings_data()
    {
        QTest::addColumn<int>("key");
        QTest::addColumn<QVariant>("value");
        QTest::addColumn<bool>("reload");
        QTest::newRow("context length") << int(Settings::Key::ContextLength) << QVariant(2048) << true;
        QTest::newRow("kv type") << int(Settings::Key::KvCacheType) << QVariant("q8_0") << true;
        QTest::newRow("weight format") << int(Settings::Key::WeightFormat) << QVariant("q8_0") << true;
        QTest::newRow("ffn weight format") << int(Settings::Key::WeightFormatFeedForward) << QVariant("q4_k") << true;
        QTest::newRow("backend") << int(Settings::Key::Backend) << QVariant("cuda") << true;
        QTest::newRow("speculative method") << int(Settings::Key::SpecMethod) << QVariant("lookup") << false;
        QTest::newRow("prefix cache") << int(Settings::Key::PrefixCache) << QVariant(false) << false;
        QTest::newRow("threads") << int(Settings::Key::Threads) << QVariant(3) << true;
        QTest::newRow("temperature") << int(Settings::Key::Temperature) << QVariant(0.1) << false;
        QTest::newRow("system prompt") << int(Settings::Key::SystemPrompt) << QVariant("hi") << false;
    }

    void reloadOnEngineSettings()
    {
        QFETCH(int, key);
        QFETCH(QVariant, value);
        QFETCH(bool, reload);
        Fixture f;
        QVERIFY(f.start(freshPath()));
        QSignalSpy loaded(f.engine.get(), &EngineWorker::modelLoaded);
        QVERIFY(f.settings->setValue(Settings::Key(key), value));
        QCOMPARE(loaded.wait(reload ? 10000 : 300), reload);
        if (reload && key == int(Settings::Key::ContextLength))
            QCOMPARE(loaded.first().at(1).value<ModelInfo>().contextLength, value.toInt());
    }

    // A weight format, KV type or backend change is a full load with the new
    // configuration (of the model that is loaded); a context change only a
    // new session.
    void reloadCarriesTheConfiguration()
    {
        Fixture f;
        QVERIFY(f.start(freshPath()));
        f.controller->setRequantizeDir(QStringLiteral("/tmp/requantized"));
        QSignalSpy loaded(f.engine.get(), &EngineWorker::modelLoaded);
        QVERIFY(f.settings->setValue(Settings::Key::WeightFormatAttention, QStringLiteral("q8_0")));
        QVERIFY(loaded.wait(10000));
        {
            QMutexLocker lock(&f.control->mutex);
            QCOMPARE(f.control->loads.size(), 2);
            const EngineConfig c = f.control->loads.last();
            QCOMPARE(c.weightFormat, QStringLiteral("file"));
            QCOMPARE(c.weightFormatAttention, QStringLiteral("q8_0"));
            QVERIFY(c.requantizes());
            QCOMPARE(c.requantizeDir, QStringLiteral("/tmp/requantized"));
        }
        QCOMPARE(loaded.first().at(1).value<ModelInfo>().path, QStringLiteral("/models/fake.gguf"));
        loaded.clear();
        QVERIFY(f.settings->setValue(Settings::Key::ContextLength, 1024));
        QVERIFY(loaded.wait(10000));
        QMutexLocker lock(&f.control->mutex);
        QCOMPARE(f.control->loads.size(), 2);
        QCOMPARE(f.control->reconfigures.size(), 1);
        QCOMPARE(f.control->reconfigures.last().weightFormatAttention, QStringLiteral("q8_0"));
    }

    // A context change right after a weight format change (whose load is then
    // cancelled) still loads the weights in the new format.
    void supersedingReloadKeepsFullLoad()
    {
        Fixture f;
        QVERIFY(f.start(freshPath()));
        f.control->holdAfterTokens = 0;  // keeps the engine thread busy: both reloads queue behind it
        QSignalSpy finished(f.controller.get(), &ChatController::replyFinished);
        QVERIFY(f.controller->sendMessage(QStringLiteral("busy")));
        QTRY_VERIFY(f.controller->isGenerating(f.controller->currentConversationId()));
        QSignalSpy loaded(f.engine.get(), &EngineWorker::modelLoaded);
        QSignalSpy failed(f.engine.get(), &EngineWorker::modelLoadFailed);
        QVERIFY(f.settings->setValue(Settings::Key::WeightFormat, QStringLiteral("q4_k")));
        QVERIFY(f.settings->setValue(Settings::Key::ContextLength, 1024));
        f.control->released = true;
        QVERIFY(finished.wait(10000));
        QTRY_COMPARE(loaded.size() + failed.size(), 2);
        QCOMPARE(failed.size(), 1);  // the first reload, cancelled
        QVERIFY(failed.first().at(1).toString().contains(QStringLiteral("cancelled")));
        QMutexLocker lock(&f.control->mutex);
        QCOMPARE(f.control->reconfigures.size(), 0);
        QCOMPARE(f.control->loads.last().weightFormat, QStringLiteral("q4_k"));
        QCOMPARE(f.control->loads.last().contextLength, 1024);
        QCOMPARE(f.settings->value(Settings::Key::WeightFormat).toString(), QStringLiteral("q4_k"));  // not reverted
    }

    // Decoding options (speculative method and its parameters, prefix cache)
    // reach the engine with the next request; token origins come back.
    void decodingOptionsReachTheEngine()
    {
        Fixture f;
        QVERIFY(f.start(freshPath()));
        QVERIFY(f.sendAndWait(QStringLiteral("one")));
        QCOMPARE(f.control->lastParams.spec.method, gb::SpecMethod::None);
        QVERIFY(f.control->lastParams.reuse_prefix);
        QVERIFY(f.settings->setValue(Settings::Key::SpecMethod, QStringLiteral("lookup")));
        QVERIFY(f.settings->setValue(Settings::Key::SpecDraftMax, 5));
        QVERIFY(f.settings->setValue(Settings::Key::SpecNgram, 2));
        QVERIFY(f.settings->setValue(Settings::Key::SpecBranches, 1));
        QVERIFY(f.settings->setValue(Settings::Key::SpecAdaptive, false));
        QVERIFY(f.settings->setValue(Settings::Key::PrefixCache, false));
        QVERIFY(f.sendAndWait(QStringLiteral("two words")));
        const gb::GenerateParams p = f.control->lastParams;
        QCOMPARE(p.spec.method, gb::SpecMethod::PromptLookup);
        QCOMPARE(p.spec.draft_max, 5);
        QCOMPARE(p.spec.ngram_max, 2);
        QCOMPARE(p.spec.max_branches, 1);
        QVERIFY(!p.spec.adaptive);
        QVERIFY(!p.spec.auto_off);
        QVERIFY(!p.reuse_prefix);
        // The reply: "echo two words #2" -> Draft, Draft, Correction, Bonus.
        const MessageRecord reply = f.controller->snapshot().messages.last();
        const QList<GeneratedToken> tokens = f.controller->tokens(reply.id);
        QCOMPARE(tokens.size(), 4);
        const QList<TokenSource> expected = {TokenSource::Draft, TokenSource::Draft, TokenSource::Correction,
                                             TokenSource::Bonus};
        for (int i = 0; i < tokens.size(); ++i)
            QCOMPARE(tokens[i].source, expected[i]);
        QCOMPARE(reply.stats.value("spec_method").toString(), QStringLiteral("lookup"));
        QCOMPARE(reply.stats.value("spec_accepted").toInteger(), 4);
        QCOMPARE(reply.stats.value("prompt_tokens_reused").toInt(), 0);  // prefix cache off
    }

    // A reload the engine refuses: the engine settings go back to what runs,
    // without another reload.
    void refusedSettingIsReverted()
    {
        Fixture f;
        QVERIFY(f.start(freshPath()));
        QVERIFY(f.settings->setValue(Settings::Key::ContextLength, 2048));
        QSignalSpy loaded(f.engine.get(), &EngineWorker::modelLoaded);
        QVERIFY(loaded.wait(10000));
        QSignalSpy failed(f.engine.get(), &EngineWorker::modelLoadFailed);
        QSignalSpy changed(f.settings.get(), &Settings::changed);
        QVERIFY(f.settings->setValue(Settings::Key::GpuLayers, 999));
        QVERIFY(failed.wait(10000));
        QTRY_COMPARE(f.settings->value(Settings::Key::GpuLayers).toInt(), -1);
        QCOMPARE(f.settings->contextLength(), 2048);  // what had been applied stays
        QCOMPARE(changed.size(), 2);                  // 999, then back to -1
        QTest::qWait(50);
        QVERIFY(f.engine->isModelLoaded());
        QVERIFY(!f.engine->isLoading());
        QMutexLocker lock(&f.control->mutex);
        QCOMPARE(f.control->loads.size(), 2);         // the first load and the refused one
    }

    // The model path is remembered only once the model has loaded.
    void modelPathRememberedAfterLoad()
    {
        Fixture f;
        QVERIFY(f.start(freshPath(), false));
        QSignalSpy failed(f.engine.get(), &EngineWorker::modelLoadFailed);
        QSignalSpy loaded(f.engine.get(), &EngineWorker::modelLoaded);
        f.controller->loadModel(QStringLiteral("/models/broken.bad"));
        QVERIFY(failed.wait(10000));
        QCOMPARE(f.settings->modelPath(), QString());
        f.controller->loadModel(QStringLiteral("/models/good.gguf"));
        QVERIFY(loaded.wait(10000));
        QCOMPARE(f.settings->modelPath(), QStringLiteral("/models/good.gguf"));
        f.controller->loadModel(QStringLiteral("/models/other.bad"));
        // Not even while the load runs.
        QCOMPARE(f.settings->modelPath(), QStringLiteral("/models/good.gguf"));
        QVERIFY(failed.wait(10000));
        QCOMPARE(f.settings->modelPath(), QStringLiteral("/models/good.gguf"));
        // A reload for a setting does not count as a new model either way.
        loaded.clear();
        QVERIFY(f.settings->setValue(Settings::Key::ContextLength, 1024));
        QVERIFY(loaded.wait(10000));
        QCOMPARE(f.settings->modelPath(), QStringLiteral("/models/good.gguf"));
    }

    // "New chat" then a message at once (before the store made the chat):
    // one new conversation, titled by the message, holding it.
    void newChatThenImmediateSend_data()
    {
        QTest::addColumn<bool>("withOpenConversation");
        QTest::newRow("nothing open") << false;
        QTest::newRow("another chat open") << true;
    }

    void newChatThenImmediateSend()
    {
        QFETCH(bool, withOpenConversation);
        Fixture f;
        QVERIFY(f.start(freshPath()));
        qint64 old = 0;
        if (withOpenConversation) {
            QVERIFY(f.sendAndWait(QStringLiteral("first chat")));
            old = f.controller->currentConversationId();
            QTRY_COMPARE(f.controller->conversations().size(), 1);
        }
        QSignalSpy finished(f.controller.get(), &ChatController::replyFinished);
        f.controller->newConversation();
        QVERIFY(f.controller->sendMessage(QStringLiteral("hello there")));
        QVERIFY(!f.controller->sendMessage(QStringLiteral("and again")));  // one waits already
        QVERIFY(finished.wait(20000));
        QVERIFY(f.waitIdle(f.controller->currentConversationId()));
        QTest::qWait(50);  // any second conversation would have been made by now
        f.controller->refreshConversations();
        QTRY_COMPARE(f.controller->conversations().size(), withOpenConversation ? 2 : 1);
        const qint64 current = f.controller->currentConversationId();
        QVERIFY(current != old);
        QCOMPARE(f.contents(), (QStringList{QStringLiteral("hello there"), QStringLiteral("echo hello there #%1")
                                                                               .arg(withOpenConversation ? 2 : 1)}));
        QTRY_COMPARE(f.controller->snapshot().conversation.title, QStringLiteral("hello there"));
        if (withOpenConversation) {  // the other chat did not get the message
            f.controller->openConversation(old);
            QTRY_VERIFY(!f.controller->snapshot().loading);
            QCOMPARE(f.contents().size(), 2);
            QCOMPARE(f.contents().first(), QStringLiteral("first chat"));
        }
    }
};

QTEST_GUILESS_MAIN(TestChatController)
#include "tst_chat_controller.moc"
