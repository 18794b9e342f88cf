// End to end with the real model (models/gemma-3-270m-q4_k_m.gguf) in a real
// window: type a message, get a streamed reply, regenerate, edit an earlier
// message and switch branches, change the decoding settings (sampling,
// speculative decoding, prefix cache), restart on the
// same data folder and find everything again; bad model files (truncated,
// text renamed .gguf) give a message while the loaded model and chats go on.
#include "conversation_list.h"
#include "ui_test_util.h"

#include <QLineEdit>
#include <QListWidget>
#include <QToolButton>

namespace {

QString modelPath()
{
    return QStringLiteral(GLASSBOX_MODEL_DIR "/gemma-3-270m-q4_k_m.gguf");
}

}  // namespace

class TstUiEndToEndModel : public QObject {
    Q_OBJECT
    QTemporaryDir m_dir;

    void click(QWidget *parent, const QString &name)
    {
        auto *b = parent->findChild<QAbstractButton *>(name);
        QVERIFY2(b, qPrintable(name));
        // New widgets are shown by their layout on the next event loop turn.
        QTRY_VERIFY2(b->isVisible() && b->isEnabled(), qPrintable(name));
        QTest::mouseClick(b, Qt::LeftButton);
    }

private slots:
    void initTestCase()
    {
        if (!QFile::exists(modelPath()))
            QSKIP("the default model is not installed (see the README's setup)");
        QVERIFY(m_dir.isValid());
    }

    void chatBranchRestartAndBadFiles()
    {
        const QString data = m_dir.filePath(QStringLiteral("data"));
        QStringList replies;
        qint64 conversation = 0;
        {
            TestApp app;
            QVERIFY(app.start(data, EngineWorker::createGlassboxBackend()));
            Settings *settings = app.context->settings();
            settings->setValue(Settings::Key::Temperature, 0.0);  // greedy: the same prompt gives the same reply
            settings->setValue(Settings::Key::MaxTokens, 12);
            settings->setValue(Settings::Key::ContextLength, 1024);
            QVERIFY(app.loadModel(modelPath(), 180000));
            QVERIFY(app.window->modelStatusText().contains(QStringLiteral("gemma3")));

            // Type, Enter, streamed reply.
            QSignalSpy tokens(app.controller(), &ChatController::tokenReceived);
            QVERIFY(app.typeAndSend(QStringLiteral("Name a colour."), 180000));
            QVERIFY(tokens.size() >= 2);
            QTRY_COMPARE(app.messages().size(), 2);
            QTRY_VERIFY(!app.messageText(1).trimmed().isEmpty());
            QCOMPARE(app.messages()[1]->message().state, MessageState::Complete);
            auto *stats = app.messages()[1]->findChild<QLabel *>(QStringLiteral("statsLabel"));
            QTRY_VERIFY(stats->isVisible());
            QVERIFY2(stats->text().contains(QStringLiteral("tokens/s")), qPrintable(stats->text()));
            conversation = app.controller()->currentConversationId();
            replies << app.messages()[1]->message().content;

            // Regenerate: a second version of the reply; greedy decoding repeats it.
            QSignalSpy finished(app.controller(), &ChatController::replyFinished);
            QTest::keyClick(app.window.get(), Qt::Key_R, Qt::ControlModifier);
            QVERIFY(finished.wait(180000));
            QTRY_COMPARE(app.branchLabel(1), QStringLiteral("2/2"));
            QCOMPARE(app.messages()[1]->message().content, replies[0]);

            // A second turn, then edit the first message: a new branch from there.
            QVERIFY(app.typeAndSend(QStringLiteral("And another one?"), 180000));
            QTRY_COMPARE(app.messages().size(), 4);
            replies << app.messages()[3]->message().content;
            MessageWidget *first = app.messages()[0];
            click(first, QStringLiteral("editButton"));
            first->findChild<QPlainTextEdit *>(QStringLiteral("messageEditor"))->setPlainText(QStringLiteral("Name a fruit."));
            finished.clear();
            click(first, QStringLiteral("saveEdit"));
            QVERIFY(finished.wait(180000));
            QTRY_COMPARE(app.messages().size(), 2);
            QCOMPARE(app.messageText(0), QStringLiteral("Name a fruit."));
            QTRY_COMPARE(app.branchLabel(0), QStringLiteral("2/2"));
            replies << app.messages()[1]->message().content;
            click(app.messages()[0], QStringLiteral("prevBranch"));
            QTRY_COMPARE(app.messages().size(), 4);
            QCOMPARE(app.messageText(0), QStringLiteral("Name a colour."));
            QCOMPARE(app.messages()[3]->message().content, replies[1]);

            // Another decoding mode (sampling with a seed, speculative prompt
            // lookup, no prefix cache) for the next reply.
            settings->setValue(Settings::Key::Temperature, 0.9);
            settings->setValue(Settings::Key::Seed, 7);
            settings->setValue(Settings::Key::SpecMethod, QStringLiteral("lookup"));
            settings->setValue(Settings::Key::PrefixCache, false);
            QVERIFY(app.typeAndSend(QStringLiteral("One more."), 180000));
            QTRY_COMPARE(app.messages().size(), 6);
            QCOMPARE(app.messages()[5]->message().state, MessageState::Complete);
            QCOMPARE(app.messages()[5]->message().stats.value("spec_method").toString(), QStringLiteral("lookup"));
            QCOMPARE(app.messages()[5]->message().stats.value("prompt_tokens_reused").toInt(), 0);
            replies << app.messages()[5]->message().content;
            settings->setValue(Settings::Key::SpecMethod, QStringLiteral("none"));
            settings->setValue(Settings::Key::PrefixCache, true);

            // Bad files: a message each, the model and the chat carry on.
            QFile model(modelPath());
            QVERIFY(model.open(QIODevice::ReadOnly));
            const QString truncated = touchFile(m_dir.filePath(QStringLiteral("truncated.gguf")), model.read(1 << 20));
            const QString text = touchFile(m_dir.filePath(QStringLiteral("notes.gguf")), "this is not a model\n");
            for (const QString &bad : {truncated, text}) {
                QSignalSpy errors(app.window.get(), &MainWindow::errorShown);
                app.window->loadModel(bad);
                QVERIFY(errors.wait(60000));
                QVERIFY(app.engine()->isModelLoaded());
                app.closeDialogs();
            }
            QCOMPARE(app.messages().size(), 6);
            QVERIFY(app.typeAndSend(QStringLiteral("Still there?"), 180000));
            QTRY_COMPARE(app.messages().size(), 8);
            QCOMPARE(app.messages()[7]->message().state, MessageState::Complete);
        }

        // Restart: the conversation, its branches and replies are all there.
        TestApp app;
        QVERIFY(app.start(data, EngineWorker::createGlassboxBackend()));
        QTRY_COMPARE(app.window->conversationList()->shownIds(), QList<qint64>{conversation});
        app.controller()->openConversation(conversation);
        QTRY_COMPARE(app.messages().size(), 8);
        QCOMPARE(app.messageText(0), QStringLiteral("Name a colour."));
        QCOMPARE(app.branchLabel(0), QStringLiteral("1/2"));
        QCOMPARE(app.branchLabel(1), QStringLiteral("2/2"));
        QCOMPARE(app.messages()[3]->message().content, replies[1]);
        QCOMPARE(app.messages()[5]->message().content, replies[3]);
        click(app.messages()[0], QStringLiteral("nextBranch"));
        QTRY_COMPARE(app.messages().size(), 2);
        QCOMPARE(app.messageText(0), QStringLiteral("Name a fruit."));
        QCOMPARE(app.messages()[1]->message().content, replies[2]);
        // Search finds it by message text.
        app.window->conversationList()->searchField()->setText(QStringLiteral("fruit"));
        QTRY_COMPARE(app.window->conversationList()->shownIds(), QList<qint64>{conversation});
    }
};

QTEST_MAIN(TstUiEndToEndModel)
#include "tst_ui_end_to_end_model.moc"
