// MainWindow over a fake engine (tests/appcore/support/fake_backend.h, which
// replies "echo <last user text> #<n>" word by word): sending with the keys,
// streaming, stop, regenerate, edit and branch switching, conversation list
// operations, switching chats while one generates, token hover, settings
// applied live, errors that leave the app usable, start-up options, restart.
#include "conversation_list.h"
#include "fake_backend.h"
#include "inspector_dock.h"
#include "quant_lab_dialog.h"
#include "settings_dialog.h"
#include "system_prompt_panel.h"
#include "ui_test_util.h"

#include <QCheckBox>
#include <QComboBox>
#include <QDoubleSpinBox>
#include <QLineEdit>
#include <QListWidget>
#include <QPushButton>
#include <QSpinBox>
#include <QTableWidget>
#include <QToolButton>

#include "glassbox/synth.h"

class TstUiMainWindow : public QObject {
    Q_OBJECT

    QTemporaryDir m_dir;
    std::shared_ptr<FakeBackendControl> m_control;
    TestApp m_app;
    QString m_fakeModel;

    void clickButton(QWidget *parent, const QString &name)
    {
        auto *b = parent->findChild<QAbstractButton *>(name);
        QVERIFY2(b, qPrintable(name));
        // New widgets are shown by their layout on the next event loop turn.
        QTRY_VERIFY2(b->isVisible() && b->isEnabled(), qPrintable(name));
        QTest::mouseClick(b, Qt::LeftButton);
    }

private slots:
    void init()
    {
        QVERIFY(m_dir.isValid());
        m_control = std::make_shared<FakeBackendControl>();
        const QString data = m_dir.filePath(QString::fromLatin1(QTest::currentTestFunction()) + QString::fromLatin1(QTest::currentDataTag()));
        QVERIFY(m_app.start(data, std::make_unique<FakeBackend>(m_control)));
        m_fakeModel = touchFile(m_dir.filePath(QStringLiteral("fake.gguf")));
    }
    void cleanup()
    {
        m_control->released = true;
        m_app.stop();
    }

    void firstRunOffersModel()
    {
        QTRY_VERIFY(m_app.window->firstRunBanner()->isVisible());
        QVERIFY(m_app.loadModel(m_fakeModel));
        QTRY_VERIFY(!m_app.window->firstRunBanner()->isVisible());
        QTRY_COMPARE(m_app.window->modelStatusText(), QStringLiteral("fake 1M F32"));
    }

    void sendKeys_data()
    {
        QTest::addColumn<int>("modifiers");
        QTest::addColumn<bool>("sends");
        QTest::newRow("enter") << int(Qt::NoModifier) << true;
        QTest::newRow("ctrl+enter") << int(Qt::ControlModifier) << true;
        QTest::newRow("shift+enter") << int(Qt::ShiftModifier) << false;
    }
    void sendKeys()
    {
        QFETCH(int, modifiers);
        QFETCH(bool, sends);
        QVERIFY(m_app.loadModel(m_fakeModel));
        PromptEdit *edit = m_app.window->composer()->editor();
        edit->setFocus();
        QTest::keyClicks(edit, QStringLiteral("hello"));
        QTest::keyClick(edit, Qt::Key_Return, Qt::KeyboardModifiers(modifiers));
        if (sends) {
            QTRY_COMPARE(m_app.messages().size(), 2);
            QTRY_COMPARE(m_app.messageText(1), QStringLiteral("echo hello #1"));
            QCOMPARE(m_app.messageText(0), QStringLiteral("hello"));
            QCOMPARE(m_app.window->composer()->text(), QString());
        } else {
            QCOMPARE(m_app.window->composer()->text(), QStringLiteral("hello\n"));
            QTest::qWait(100);
            QCOMPARE(m_app.messages().size(), 0);
        }
    }

    void streamsAndShowsStats()
    {
        QVERIFY(m_app.loadModel(m_fakeModel));
        m_control->holdAfterTokens = 2;
        QSignalSpy tokens(m_app.controller(), &ChatController::tokenReceived);
        m_app.window->composer()->setText(QStringLiteral("streaming test"));
        m_app.window->sendCurrentText();
        QTRY_COMPARE(tokens.size(), 2);
        // Part of the reply is shown while the rest is held back; Stop replaces Send.
        QTRY_VERIFY(m_app.messageText(1).startsWith(QStringLiteral("echo streaming")));
        QVERIFY(!m_app.messageText(1).contains(QStringLiteral("#1")));
        QVERIFY(m_app.window->composer()->stopButton()->isVisible());
        QVERIFY(!m_app.window->composer()->sendButton()->isVisible());
        m_control->released = true;
        QVERIFY(m_app.waitIdle());
        QTRY_COMPARE(m_app.messageText(1), QStringLiteral("echo streaming test #1"));
        auto *stats = m_app.messages()[1]->findChild<QLabel *>(QStringLiteral("statsLabel"));
        QTRY_VERIFY(stats->isVisible());
        // 4 tokens; the fake reports 10 prompt tokens per message (one here), none from the cache.
        QVERIFY2(stats->text().startsWith(QStringLiteral("4 tokens")), qPrintable(stats->text()));
        QVERIFY2(stats->text().contains(QStringLiteral("prefix cache 0/10")), qPrintable(stats->text()));
        QVERIFY(m_app.window->composer()->sendButton()->isVisible());
    }

    void escapeStops()
    {
        QVERIFY(m_app.loadModel(m_fakeModel));
        m_control->holdAfterTokens = 1;
        m_app.window->composer()->setText(QStringLiteral("never finished"));
        m_app.window->sendCurrentText();
        QTRY_VERIFY(m_app.controller()->isGenerating(m_app.controller()->currentConversationId()));
        QTRY_VERIFY(m_app.window->action(QStringLiteral("actionStop"))->isEnabled());
        QTest::keyClick(m_app.window->composer()->editor(), Qt::Key_Escape);
        QVERIFY(m_app.waitIdle(5000));
        QTRY_COMPARE(m_app.messages().size(), 2);
        QTRY_COMPARE(m_app.messages()[1]->message().state, MessageState::Cancelled);
        auto *status = m_app.messages()[1]->findChild<QLabel *>(QStringLiteral("statusLabel"));
        QTRY_COMPARE(status->text(), QStringLiteral("Stopped."));
        QCOMPARE(m_app.messageText(1), QStringLiteral("echo"));
    }

    void regenerateAndSwitchBranches()
    {
        QVERIFY(m_app.loadModel(m_fakeModel));
        QVERIFY(m_app.typeAndSend(QStringLiteral("pick")));
        QTRY_COMPARE(m_app.messageText(1), QStringLiteral("echo pick #1"));
        QCOMPARE(m_app.branchLabel(1), QString());
        QTest::keyClick(m_app.window.get(), Qt::Key_R, Qt::ControlModifier);
        QTRY_COMPARE(m_app.messageText(1), QStringLiteral("echo pick #2"));
        QVERIFY(m_app.waitIdle());
        QTRY_COMPARE(m_app.branchLabel(1), QStringLiteral("2/2"));
        clickButton(m_app.messages()[1], QStringLiteral("prevBranch"));
        QTRY_COMPARE(m_app.messageText(1), QStringLiteral("echo pick #1"));
        QCOMPARE(m_app.branchLabel(1), QStringLiteral("1/2"));
        clickButton(m_app.messages()[1], QStringLiteral("nextBranch"));
        QTRY_COMPARE(m_app.messageText(1), QStringLiteral("echo pick #2"));
        // The regenerate button on a reply makes a third version.
        clickButton(m_app.messages()[1], QStringLiteral("regenerateButton"));
        QTRY_COMPARE(m_app.messageText(1), QStringLiteral("echo pick #3"));
        QVERIFY(m_app.waitIdle());
        QTRY_COMPARE(m_app.branchLabel(1), QStringLiteral("3/3"));
    }

    void editEarlierMessageMakesBranch()
    {
        QVERIFY(m_app.loadModel(m_fakeModel));
        QVERIFY(m_app.typeAndSend(QStringLiteral("first")));
        QVERIFY(m_app.typeAndSend(QStringLiteral("second")));
        QTRY_COMPARE(m_app.messages().size(), 4);
        MessageWidget *first = m_app.messages()[0];
        clickButton(first, QStringLiteral("editButton"));
        QVERIFY(first->isEditing());
        auto *editor = first->findChild<QPlainTextEdit *>(QStringLiteral("messageEditor"));
        QCOMPARE(editor->toPlainText(), QStringLiteral("first"));
        editor->setPlainText(QStringLiteral("changed"));
        QSignalSpy finished(m_app.controller(), &ChatController::replyFinished);
        clickButton(first, QStringLiteral("saveEdit"));
        QVERIFY(finished.wait(20000));
        // The edited branch: the new user message and its reply only.
        QTRY_COMPARE(m_app.messages().size(), 2);
        QTRY_COMPARE(m_app.messageText(0), QStringLiteral("changed"));
        QTRY_COMPARE(m_app.messageText(1), QStringLiteral("echo changed #3"));
        QTRY_COMPARE(m_app.branchLabel(0), QStringLiteral("2/2"));
        // Back to the original branch: all four messages.
        clickButton(m_app.messages()[0], QStringLiteral("prevBranch"));
        QTRY_COMPARE(m_app.messages().size(), 4);
        QCOMPARE(m_app.messageText(0), QStringLiteral("first"));
        QCOMPARE(m_app.messageText(2), QStringLiteral("second"));
        QCOMPARE(m_app.messageText(3), QStringLiteral("echo second #2"));
        QCOMPARE(m_app.branchLabel(0), QStringLiteral("1/2"));
    }

    void switchConversationsWhileGenerating()
    {
        QVERIFY(m_app.loadModel(m_fakeModel));
        m_control->holdAfterTokens = 1;
        m_app.window->composer()->setText(QStringLiteral("slow one"));
        m_app.window->sendCurrentText();
        QTRY_VERIFY(m_app.controller()->currentConversationId() > 0);
        const qint64 a = m_app.controller()->currentConversationId();
        QTRY_VERIFY(m_app.controller()->isGenerating(a));
        // Ctrl+N: a new, empty chat; the GUI keeps working while A generates.
        QTest::keyClick(m_app.window.get(), Qt::Key_N, Qt::ControlModifier);
        QTRY_VERIFY(m_app.controller()->currentConversationId() != a);
        QTRY_COMPARE(m_app.messages().size(), 0);
        QVERIFY(m_app.window->composer()->sendButton()->isVisible());
        ConversationList *list = m_app.window->conversationList();
        QTRY_VERIFY(list->list()->count() == 2);
        bool marked = false;
        for (int i = 0; i < list->list()->count(); ++i)
            marked |= list->list()->item(i)->text().contains(QStringLiteral("●"));
        QVERIFY(marked);
        m_control->released = true;
        QTRY_VERIFY(!m_app.controller()->isGenerating(a));
        m_app.controller()->openConversation(a);
        QTRY_COMPARE(m_app.messages().size(), 2);
        QTRY_COMPARE(m_app.messageText(1), QStringLiteral("echo slow one #1"));
    }

    void conversationListOperations()
    {
        QVERIFY(m_app.loadModel(m_fakeModel));
        for (const QString &word : {QStringLiteral("apple"), QStringLiteral("banana"), QStringLiteral("cherry")}) {
            const qint64 before = m_app.controller()->currentConversationId();
            QTest::keyClick(m_app.window.get(), Qt::Key_N, Qt::ControlModifier);
            QTRY_VERIFY(m_app.controller()->currentConversationId() != before);
            QTRY_COMPARE(m_app.messages().size(), 0);
            QVERIFY(m_app.typeAndSend(word));
        }
        ConversationList *list = m_app.window->conversationList();
        QTRY_COMPARE(list->shownIds().size(), 3);
        const QList<qint64> all = list->shownIds();
        // Chats made with "New chat" take their title from the first message.
        QStringList titles;
        auto titlesFromFirstMessages = [&] {
            titles.clear();
            for (const ConversationRecord &c : m_app.controller()->conversations())
                titles << c.title;
            titles.sort();
            return titles == QStringList{QStringLiteral("apple"), QStringLiteral("banana"), QStringLiteral("cherry")};
        };
        QTRY_VERIFY(titlesFromFirstMessages());

        // Search (Ctrl+F focuses the field) finds message text.
        QTest::keyClick(m_app.window.get(), Qt::Key_F, Qt::ControlModifier);
        QTRY_VERIFY(list->searchField()->hasFocus());
        QTest::keyClicks(list->searchField(), QStringLiteral("banana"));
        QTRY_COMPARE(list->shownIds().size(), 1);
        const qint64 banana = list->shownIds().first();
        list->searchField()->clear();
        QTRY_COMPARE(list->shownIds().size(), 3);

        // Rename in place.
        list->startRename(banana);
        QTRY_VERIFY(qobject_cast<QLineEdit *>(QApplication::focusWidget()));
        auto *editor = qobject_cast<QLineEdit *>(QApplication::focusWidget());
        editor->selectAll();
        QTest::keyClicks(editor, QStringLiteral("Yellow fruit"));
        QTest::keyClick(editor, Qt::Key_Return);
        QTRY_VERIFY(std::any_of(m_app.controller()->conversations().cbegin(), m_app.controller()->conversations().cend(),
                                [&](const ConversationRecord &c) { return c.id == banana && c.title == QStringLiteral("Yellow fruit"); }));

        // Pin: the pinned chat comes first.
        const qint64 last = all.last();
        list->togglePin(last);
        QTRY_COMPARE(list->shownIds().first(), last);

        // Delete with confirmation.
        list->deleteConversation(banana, true);
        QMessageBox *confirm = nullptr;
        QTRY_VERIFY((confirm = list->findChild<QMessageBox *>(QStringLiteral("confirmDelete"))));
        QTest::mouseClick(confirm->button(QMessageBox::Yes), Qt::LeftButton);
        QTRY_COMPARE(list->shownIds().size(), 2);
        QVERIFY(!list->shownIds().contains(banana));
    }

    void hoverTokenShowsAlternatives()
    {
        QVERIFY(m_app.loadModel(m_fakeModel));
        QVERIFY(m_app.typeAndSend(QStringLiteral("probability")));
        QTRY_COMPARE(m_app.messageText(1), QStringLiteral("echo probability #1"));
        m_app.window->action(QStringLiteral("actionTokenView"))->trigger();
        MessageTextView *view = m_app.messages()[1]->textView();
        QCOMPARE(view->mode(), MessageTextView::Mode::Tokens);
        QCOMPARE(view->tokens().size(), 3);
        QCOMPARE(view->toPlainText(), QStringLiteral("echo probability #1"));
        // The middle of the second token (" probability", characters 4..15).
        QTextCursor c(view->document());
        c.setPosition(9);
        const QPoint p = view->cursorRect(c).center();
        QCOMPARE(view->tokenIndexAt(p), 1);
        const QString tip = MessageTextView::tokenToolTip(view->tokens()[1]);
        QVERIFY2(tip.contains(QStringLiteral("60.7%")), qPrintable(tip));  // exp(-0.5)
        QVERIFY2(tip.contains(QStringLiteral("t101")), qPrintable(tip));   // the fake's alternatives
        // Plain decoding: every token is the model's own.
        QVERIFY2(tip.contains(QStringLiteral("model")), qPrintable(tip));
    }

    // Speculative decoding on: the toggle tints tokens by origin (and turns
    // the token view on); hovering names the origin; off again: by probability.
    void speculativeTokensColouredByOrigin()
    {
        QVERIFY(m_app.loadModel(m_fakeModel));
        m_app.context->settings()->setValue(Settings::Key::SpecMethod, QStringLiteral("lookup"));
        QVERIFY(m_app.typeAndSend(QStringLiteral("one two three four")));
        QTRY_COMPARE(m_app.messageText(1), QStringLiteral("echo one two three four #1"));
        QAction *spec = m_app.window->action(QStringLiteral("actionSpeculativeColours"));
        QVERIFY(spec->isEnabled());
        spec->trigger();
        QVERIFY(m_app.window->action(QStringLiteral("actionTokenView"))->isChecked());
        MessageTextView *view = m_app.messages()[1]->textView();
        QCOMPARE(view->mode(), MessageTextView::Mode::Tokens);
        QVERIFY(view->originTint());
        // The fake's origins: Draft, Draft, Correction, Draft, Draft, Bonus.
        const QList<TokenSource> expected = {TokenSource::Draft, TokenSource::Draft, TokenSource::Correction,
                                             TokenSource::Draft, TokenSource::Draft, TokenSource::Bonus};
        QCOMPARE(view->tokens().size(), expected.size());
        const bool dark = view->palette().color(QPalette::Base).lightnessF() < 0.5;
        int at = 0;
        for (int i = 0; i < expected.size(); ++i) {
            QCOMPARE(view->tokens()[i].source, expected[i]);
            QTextCursor c(view->document());
            c.setPosition(at + 1);  // the format of the token's first character
            QCOMPARE(c.charFormat().background().color(), MessageTextView::originColour(expected[i], dark));
            at += int(view->tokens()[i].text.size());
        }
        QVERIFY(MessageTextView::tokenToolTip(view->tokens()[2]).contains(QStringLiteral("correction")));
        QVERIFY(MessageTextView::tokenToolTip(view->tokens()[0]).contains(QStringLiteral("accepted draft")));
        // The stats line tells how the drafts went.
        auto *stats = m_app.messages()[1]->findChild<QLabel *>(QStringLiteral("statsLabel"));
        QVERIFY2(stats->text().contains(QStringLiteral("speculative lookup")), qPrintable(stats->text()));
        // Off: tinted by probability again (exp(-0.5) -> not an origin colour).
        spec->trigger();
        QVERIFY(!view->originTint());
        QTextCursor c(view->document());
        c.setPosition(1);
        QVERIFY(c.charFormat().background().color() != MessageTextView::originColour(TokenSource::Draft, dark));
    }

    // Ctrl+N and a message typed at once: one new chat, with the message.
    void newChatThenSendAtOnce()
    {
        QVERIFY(m_app.loadModel(m_fakeModel));
        QVERIFY(m_app.typeAndSend(QStringLiteral("first")));
        ConversationList *list = m_app.window->conversationList();
        QTRY_COMPARE(list->shownIds().size(), 1);
        const qint64 first = m_app.controller()->currentConversationId();
        QSignalSpy finished(m_app.controller(), &ChatController::replyFinished);
        QTest::keyClick(m_app.window.get(), Qt::Key_N, Qt::ControlModifier);
        PromptEdit *edit = m_app.window->composer()->editor();
        QTest::keyClicks(edit, QStringLiteral("second"));
        QTest::keyClick(edit, Qt::Key_Return);
        QVERIFY(finished.wait(20000));
        QTest::qWait(100);
        QTRY_COMPARE(list->shownIds().size(), 2);
        QVERIFY(m_app.controller()->currentConversationId() != first);
        QTRY_COMPARE(m_app.messages().size(), 2);
        QCOMPARE(m_app.messageText(0), QStringLiteral("second"));
        QTRY_COMPARE(m_app.window->windowTitle(), QStringLiteral("second — Glassbox"));
    }

    void settingsApplyLive()
    {
        QVERIFY(m_app.loadModel(m_fakeModel));
        QVERIFY(m_app.typeAndSend(QStringLiteral("keep me")));
        QTest::keyClick(m_app.window.get(), Qt::Key_Comma, Qt::ControlModifier);
        SettingsDialog *dialog = m_app.window->settingsDialog();
        QTRY_VERIFY(dialog->isVisible());
        auto *temperature = qobject_cast<QDoubleSpinBox *>(dialog->editor(Settings::Key::Temperature));
        QVERIFY(temperature);
        temperature->setValue(0.3);
        QCOMPARE(m_app.context->settings()->temperature(), 0.3);
        // Context length needs a reload: progress, then done, and the chat is still there.
        QSignalSpy loaded(m_app.engine(), &EngineWorker::modelLoaded);
        auto *context = qobject_cast<QSpinBox *>(dialog->editor(Settings::Key::ContextLength));
        context->setValue(2048);
        QCOMPARE(m_app.context->settings()->contextLength(), 2048);
        QVERIFY(loaded.wait(10000));
        QTRY_COMPARE(dialog->reloadStatus()->text(), QStringLiteral("Settings applied."));
        QCOMPARE(m_app.engine()->modelInfo().contextLength, 2048);
        QCOMPARE(m_app.messages().size(), 2);
        QCOMPARE(m_app.messageText(1), QStringLiteral("echo keep me #1"));
        // Weight format: a full load with the new format; the dialog tells
        // what is loaded; the chat is kept.
        auto *weights = qobject_cast<QComboBox *>(dialog->editor(Settings::Key::WeightFormat));
        QVERIFY(weights && weights->isEnabled());
        loaded.clear();
        QSignalSpy started(m_app.engine(), &EngineWorker::modelLoadStarted);
        weights->setCurrentIndex(weights->findData(QStringLiteral("q8_0")));
        QCOMPARE(m_app.context->settings()->value(Settings::Key::WeightFormat).toString(), QStringLiteral("q8_0"));
        QVERIFY(dialog->cancelButton()->isVisibleTo(dialog));
        QVERIFY(loaded.wait(10000));
        QCOMPARE(started.size(), 1);
        {
            QMutexLocker lock(&m_control->mutex);
            QCOMPARE(m_control->loads.last().weightFormat, QStringLiteral("q8_0"));
            QVERIFY(m_control->loads.last().requantizeDir.startsWith(m_app.context->dataDir()));
        }
        QTRY_VERIFY(dialog->weightsInfo()->text().contains(QStringLiteral("fake 1M F32")));
        QCOMPARE(m_app.messages().size(), 2);
        // KV type, speculative decoding and prefix cache are live editors now.
        QVERIFY(dialog->editor(Settings::Key::KvCacheType)->isEnabled());
        auto *method = qobject_cast<QComboBox *>(dialog->editor(Settings::Key::SpecMethod));
        method->setCurrentIndex(method->findData(QStringLiteral("lookahead")));
        QCOMPARE(m_app.context->settings()->value(Settings::Key::SpecMethod).toString(), QStringLiteral("lookahead"));
        auto *prefix = qobject_cast<QCheckBox *>(dialog->editor(Settings::Key::PrefixCache));
        QVERIFY(prefix && prefix->isChecked());
        prefix->click();
        QCOMPARE(m_app.context->settings()->value(Settings::Key::PrefixCache).toBool(), false);
        // Batching: live on the CPU backend; with speculative decoding on, the note says replies use the Session.
        auto *batching = qobject_cast<QCheckBox *>(dialog->editor(Settings::Key::Batching));
        QVERIFY(batching && batching->isEnabled() && batching->isChecked());
        auto *note = dialog->findChild<QLabel *>(QStringLiteral("batchingNote"));
        QVERIFY(note && note->isVisibleTo(dialog) && note->text().contains(QStringLiteral("Speculative")));
        method->setCurrentIndex(method->findData(QStringLiteral("none")));
        QVERIFY(!note->isVisibleTo(dialog));
        const int loadsBefore = int(started.size());
        batching->click();
        QCOMPARE(m_app.context->settings()->value(Settings::Key::Batching).toBool(), false);
        QCOMPARE(int(started.size()), loadsBefore);  // no reload
        batching->click();
        // CUDA is offered only where the probe finds a device (never in a CPU-only build).
        QTRY_VERIFY(!qobject_cast<QComboBox *>(dialog->editor(Settings::Key::Backend))->toolTip().contains(
            QStringLiteral("looking")));
        // A change made elsewhere shows in the dialog.
        m_app.context->settings()->setValue(Settings::Key::TopK, 7);
        QCOMPARE(qobject_cast<QSpinBox *>(dialog->editor(Settings::Key::TopK))->value(), 7);
    }

    // The quantization lab from the File menu: the loaded model is the source;
    // variants are written and evaluated in the background into a table;
    // a result loads in the chat.
    void quantLab()
    {
        QVERIFY(m_app.loadModel(m_fakeModel));
        m_app.window->action(QStringLiteral("actionQuantLab"))->trigger();
        QuantLabDialog *lab = m_app.window->quantLab();
        QTRY_VERIFY(lab->isVisible());
        QCOMPARE(lab->sourceModel(), QFileInfo(m_fakeModel).absoluteFilePath());
        gb::Result<gb::SynthSpec> spec = gb::synth_preset("tiny-llama");
        QVERIFY(spec);
        spec.value().types = gb::synth_types("F16").value();
        const QString synthetic = m_dir.filePath(QStringLiteral("tiny-f16.gguf"));
        QVERIFY(gb::write_synthetic_model(spec.value(), synthetic.toStdString(), {}, 2));
        lab->setSourceModel(synthetic);
        lab->setVariantChecked(QStringLiteral("file"), true);
        lab->setVariantChecked(QStringLiteral("q8_0"), true);
        lab->setReference(QStringLiteral("file"));
        lab->setContextLength(128);
        lab->setMaxChunks(2);
        const QuantLabRequest r = lab->request(true);
        QCOMPARE(r.variants.size(), 2);
        QCOMPARE(r.variants[0].path, synthetic);  // the reference first
        QCOMPARE(r.variants[1].format, QStringLiteral("q8_0"));
        QVERIFY(r.evalText.size() > 1000);      // the built-in sample text
        QSignalSpy finished(lab->lab(), &QuantLab::finished);
        clickButton(lab, QStringLiteral("runEvaluation"));
        QVERIFY(finished.wait(300000));
        QTableWidget *table = lab->table();
        QCOMPARE(table->rowCount(), 2);
        QVERIFY(table->item(0, 0)->text().contains(QStringLiteral("reference")));
        QCOMPARE(table->item(0, 4)->text().toDouble(), 0.0);  // KLD of the reference
        QVERIFY(!table->item(1, 3)->text().isEmpty());       // a perplexity
        QVERIFY(!table->item(1, 2)->text().isEmpty());       // its memory
        // Load the Q8_0 file in the chat.
        table->selectRow(1);
        QSignalSpy loaded(m_app.engine(), &EngineWorker::modelLoaded);
        clickButton(lab, QStringLiteral("loadVariant"));
        QVERIFY(loaded.wait(10000));
        QCOMPARE(loaded.first().at(1).value<ModelInfo>().path, lab->rows()[1].path);
    }

    void systemPromptPresets()
    {
        QVERIFY(m_app.loadModel(m_fakeModel));
        QVERIFY(m_app.typeAndSend(QStringLiteral("hi")));
        m_app.window->action(QStringLiteral("actionSystemPrompt"))->trigger();
        SystemPromptPanel *panel = m_app.window->systemPromptPanel();
        QVERIFY(panel->isVisible());
        panel->editor()->setPlainText(QStringLiteral("Talk like a pirate."));
        panel->applyNow();
        QTRY_COMPARE(m_app.controller()->snapshot().conversation.systemPrompt, QStringLiteral("Talk like a pirate."));
        panel->savePreset(QStringLiteral("Pirate"));
        QTRY_COMPARE(panel->presetBox()->findText(QStringLiteral("Pirate")), 1);
        // The next reply gets the system prompt.
        m_control->takePrompts();
        QVERIFY(m_app.typeAndSend(QStringLiteral("again")));
        const auto prompts = m_control->takePrompts();
        QCOMPARE(prompts.size(), 1);
        QCOMPARE(QString::fromStdString(prompts[0].front().role), QStringLiteral("system"));
        QCOMPARE(QString::fromStdString(prompts[0].front().content), QStringLiteral("Talk like a pirate."));
        // A new chat, then the preset applied to it.
        m_app.window->newChat();
        QTRY_COMPARE(m_app.messages().size(), 0);
        QTRY_VERIFY(m_app.controller()->snapshot().conversation.id > 0);
        panel->applyPreset(QStringLiteral("Pirate"));
        QTRY_COMPARE(m_app.controller()->snapshot().conversation.systemPrompt, QStringLiteral("Talk like a pirate."));
    }

    void badModelKeepsAppUsable()
    {
        QVERIFY(m_app.loadModel(m_fakeModel));
        QVERIFY(m_app.typeAndSend(QStringLiteral("before")));
        const QString bad = touchFile(m_dir.filePath(QStringLiteral("broken.bad")));
        QSignalSpy errors(m_app.window.get(), &MainWindow::errorShown);
        m_app.window->loadModel(bad);
        QVERIFY(errors.wait(10000));
        QVERIFY2(errors.first().first().toString().contains(QStringLiteral("not a GGUF file")),
                 qPrintable(errors.first().first().toString()));
        QTRY_VERIFY(!m_app.errorDialogs().isEmpty());
        QVERIFY(m_app.engine()->isModelLoaded());  // the previous model stays
        m_app.closeDialogs();
        QVERIFY(m_app.typeAndSend(QStringLiteral("after")));
        QTRY_COMPARE(m_app.messageText(3), QStringLiteral("echo after #2"));
        // A missing file is an error too.
        m_app.window->loadModel(m_dir.filePath(QStringLiteral("missing.gguf")));
        QTRY_VERIFY(m_app.window->errors().last().contains(QStringLiteral("no such file")));
        // Out of memory while loading: a message, the model and the chat go on.
        errors.clear();
        m_app.window->loadModel(touchFile(m_dir.filePath(QStringLiteral("huge.oom"))));
        QVERIFY(errors.wait(10000));
        QVERIFY2(errors.first().first().toString().contains(QStringLiteral("out of memory")),
                 qPrintable(errors.first().first().toString()));
        QVERIFY(m_app.engine()->isModelLoaded());
        m_app.closeDialogs();
        QVERIFY(m_app.typeAndSend(QStringLiteral("still")));
        QTRY_COMPARE(m_app.messageText(5), QStringLiteral("echo still #3"));
        // A setting the engine refuses: a message, and the setting shows what runs.
        errors.clear();
        QVERIFY(m_app.context->settings()->setValue(Settings::Key::GpuLayers, 999));
        QVERIFY(errors.wait(10000));
        QVERIFY2(errors.first().first().toString().contains(QStringLiteral("999")),
                 qPrintable(errors.first().first().toString()));
        QTRY_COMPARE(m_app.context->settings()->value(Settings::Key::GpuLayers).toInt(), -1);
        QVERIFY(m_app.engine()->isModelLoaded());
        QCOMPARE(m_app.context->settings()->modelPath(), QFileInfo(m_fakeModel).absoluteFilePath());
    }

    void sendWithoutModelExplains()
    {
        m_app.window->composer()->setText(QStringLiteral("hello?"));
        m_app.window->sendCurrentText();
        QTRY_VERIFY(!m_app.window->errors().isEmpty());
        QVERIFY(m_app.window->errors().last().contains(QStringLiteral("Load a model first")));
        QCOMPARE(m_app.window->composer()->text(), QStringLiteral("hello?"));  // nothing lost
    }

    void startupOptions_data()
    {
        QTest::addColumn<QString>("model");
        QTest::addColumn<int>("exitCode");
        QTest::addColumn<QString>("reply");
        QTest::newRow("reply") << QStringLiteral("fake.gguf") << 0 << QStringLiteral("echo smoke test #1");
        QTest::newRow("bad model") << QStringLiteral("broken.bad") << 2 << QString();
    }
    void startupOptions()
    {
        QFETCH(QString, model);
        QFETCH(int, exitCode);
        QFETCH(QString, reply);
        StartupOptions o;
        o.modelPath = touchFile(m_dir.filePath(model));
        o.sendText = QStringLiteral("smoke test");
        o.quitAfterReply = true;
        o.inspectorPanel = QStringLiteral("Tokens");
        QSignalSpy exit(m_app.window.get(), &MainWindow::exitRequested);
        m_app.window->setStartupOptions(o);
        QVERIFY(exit.wait(20000));
        QCOMPARE(exit.first().at(0).toInt(), exitCode);
        QCOMPARE(exit.first().at(1).toString(), reply);
        QVERIFY(m_app.window->inspectorDock()->isVisible());
        QCOMPARE(m_app.window->inspectorDock()->requestedPanel(), QStringLiteral("Tokens"));
        // The ImGui inspector where there is OpenGL, else a placeholder that says why.
        const QString content = m_app.window->inspectorDock()->content()->objectName();
        QVERIFY2(content == QStringLiteral("inspectorHost") || content == QStringLiteral("inspectorPlaceholder"),
                 qPrintable(content));
    }

    void restartKeepsHistoryAndGeometry()
    {
        QVERIFY(m_app.loadModel(m_fakeModel));
        QVERIFY(m_app.typeAndSend(QStringLiteral("remember this")));
        const qint64 id = m_app.controller()->currentConversationId();
        m_app.window->resize(920, 640);
        QTRY_COMPARE(m_app.window->size(), QSize(920, 640));
        const QString data = m_app.context->dataDir();
        m_app.stop();

        QVERIFY(m_app.start(data, std::make_unique<FakeBackend>(m_control)));
        QCOMPARE(m_app.window->size(), QSize(920, 640));
        QTRY_COMPARE(m_app.window->conversationList()->shownIds(), QList<qint64>{id});
        // The last model is loaded again.
        QTRY_VERIFY(m_app.engine()->isModelLoaded());
        // --conversation ID opens it.
        StartupOptions o;
        o.conversationId = id;
        m_app.window->setStartupOptions(o);
        QTRY_COMPARE(m_app.messages().size(), 2);
        QCOMPARE(m_app.messageText(0), QStringLiteral("remember this"));
        QCOMPARE(m_app.messageText(1), QStringLiteral("echo remember this #1"));
    }

    void unwritableDataFolder()
    {
        m_app.stop();
        QVERIFY(!m_app.start(QStringLiteral("/proc/glassbox-test/cannot-exist"), std::make_unique<FakeBackend>(m_control)));
        QTRY_VERIFY(!m_app.window->errors().isEmpty());
        QVERIFY(m_app.window->errors().first().contains(QStringLiteral("data folder")));
        // Still a working window: settings open, the library opens.
        m_app.window->openSettings();
        QVERIFY(m_app.window->settingsDialog()->isVisible());
    }
};

QTEST_MAIN(TstUiMainWindow)
#include "tst_ui_main_window.moc"
