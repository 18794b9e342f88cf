// The chat's building blocks: code fence scanning (against hand-worked
// CommonMark cases), Markdown rendering (tables, lists, code with a working
// "Copy code" link), the stats line, MessageWidget states and the composer.
#include "composer.h"
#include "markdown.h"
#include "message_text_view.h"
#include "message_widget.h"

#include <QApplication>
#include <QClipboard>
#include <QJsonObject>
#include <QLabel>
#include <QPushButton>
#include <QTextBlock>
#include <QTextDocument>
#include <QTextList>
#include <QTextTable>
#include <QToolButton>
#include <QtTest>

class TstUiMessageViews : public QObject {
    Q_OBJECT
private slots:
    void codeBlocks_data()
    {
        QTest::addColumn<QString>("text");
        QTest::addColumn<QStringList>("blocks");
        QTest::newRow("none") << QStringLiteral("just *text*\n\n- a list") << QStringList{};
        QTest::newRow("one") << QStringLiteral("see:\n```cpp\nint x = 1;\nreturn x;\n```\ndone")
                             << QStringList{QStringLiteral("int x = 1;\nreturn x;")};
        QTest::newRow("two") << QStringLiteral("```\na\n```\ntext\n~~~py\nb\n~~~")
                             << QStringList{QStringLiteral("a"), QStringLiteral("b")};
        QTest::newRow("unclosed while streaming") << QStringLiteral("```js\nlet a") << QStringList{QStringLiteral("let a")};
        QTest::newRow("longer fence holds a short one") << QStringLiteral("````\n```\ninner\n```\n````")
                                                        << QStringList{QStringLiteral("```\ninner\n```")};
        QTest::newRow("indented fence") << QStringLiteral("  ```\n  a\n   b\n  ```")
                                        << QStringList{QStringLiteral("a\n b")};
        QTest::newRow("tilde does not close backticks") << QStringLiteral("```\nx\n~~~\n```")
                                                        << QStringList{QStringLiteral("x\n~~~")};
        QTest::newRow("four spaces is not a fence") << QStringLiteral("    ```\n    code") << QStringList{};
        QTest::newRow("inline backticks") << QStringLiteral("use ``` inline ``` here") << QStringList{};
        QTest::newRow("empty block") << QStringLiteral("```\n```") << QStringList{QString()};
    }
    void codeBlocks()
    {
        QFETCH(QString, text);
        QFETCH(QStringList, blocks);
        const markdown::Prepared p = markdown::prepare(text);
        QCOMPARE(p.codeBlocks, blocks);
        QCOMPARE(p.markdown.count(QStringLiteral("(copy-code:")), blocks.size());
    }

    void rendersTablesListsAndCode()
    {
        MessageTextView view;
        view.resize(500, 100);
        view.showMarkdown(QStringLiteral("# Title\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n- one\n- two\n\n1. first\n\n"
                                         "```python\nprint('hi')\n```\n\n<b>not html</b>"));
        QTextDocument *doc = view.document();
        int tables = 0, lists = 0, code = 0;
        for (QTextBlock b = doc->begin(); b.isValid(); b = b.next()) {
            QTextCursor c(b);
            if (c.currentTable())
                ++tables;
            if (b.textList())
                ++lists;
            if (b.blockFormat().hasProperty(QTextFormat::BlockCodeFence))
                ++code;
        }
        QVERIFY(tables > 0);
        QCOMPARE(lists, 3);
        QCOMPARE(code, 1);
        QCOMPARE(view.codeBlocks(), QStringList{QStringLiteral("print('hi')")});
        const QString plain = doc->toPlainText();
        QVERIFY(plain.contains(QStringLiteral("<b>not html</b>")));  // raw HTML is shown, not applied
        QVERIFY(plain.contains(QStringLiteral("Copy code")));
        QVERIFY(view.height() > 100);  // grew to fit instead of scrolling
    }

    void copyCodeLinkCopies()
    {
        MessageTextView view;
        view.resize(400, 100);
        view.show();
        QVERIFY(QTest::qWaitForWindowExposed(&view));
        view.showMarkdown(QStringLiteral("Two blocks:\n\n```\nfirst()\n```\n\n```sh\nsecond --flag\n```\n"));
        QApplication::clipboard()->clear();
        // Click the second "Copy code" link where it is laid out.
        int linkPos = -1, seen = 0;
        for (QTextBlock b = view.document()->begin(); b.isValid() && linkPos < 0; b = b.next())
            for (auto it = b.begin(); !it.atEnd(); ++it)
                if (it.fragment().charFormat().anchorHref() == QStringLiteral("copy-code:1") && seen++ == 0)
                    linkPos = it.fragment().position() + 1;
        QVERIFY(linkPos > 0);
        QTextCursor c(view.document());
        c.setPosition(linkPos);
        QSignalSpy copied(&view, &MessageTextView::codeBlockCopied);
        QTest::mouseClick(view.viewport(), Qt::LeftButton, {}, view.cursorRect(c).center());
        QTRY_COMPARE(copied.size(), 1);
        QCOMPARE(copied.first().first().toInt(), 1);
        QCOMPARE(QApplication::clipboard()->text(), QStringLiteral("second --flag"));
    }

    void statsLine_data()
    {
        QTest::addColumn<QJsonObject>("stats");
        QTest::addColumn<QString>("expected");
        QTest::newRow("none") << QJsonObject{} << QString();
        QTest::newRow("full") << QJsonObject{{"tokens", 42}, {"tokens_per_s", 18.34}, {"ttft_ms", 119.6},
                                             {"prompt_tokens", 50}, {"prompt_tokens_reused", 30}, {"stop", "eog"}}
                              << QStringLiteral("42 tokens · 18.3 tokens/s · first token 120 ms · prefix cache 30/50");
        QTest::newRow("one token, limit") << QJsonObject{{"tokens", 1}, {"ttft_ms", 5.0}, {"stop", "max_tokens"}}
                                          << QStringLiteral("1 token · first token 5 ms · stopped at the token limit");
        QTest::newRow("context full") << QJsonObject{{"tokens", 7}, {"stop", "context_full"}}
                                      << QStringLiteral("7 tokens · context full");
        QTest::newRow("batched, queued") << QJsonObject{{"tokens", 3}, {"prompt_tokens", 40}, {"prompt_tokens_reused", 32},
                                                        {"queue_ms", 12.4}, {"engine", "batch"}, {"stop", "eog"}}
                                         << QStringLiteral("3 tokens · prefix cache 32/40 · queued 12 ms · batching engine");
        QTest::newRow("no queue shown under 1 ms") << QJsonObject{{"tokens", 2}, {"queue_ms", 0.4}, {"engine", "session"}}
                                                   << QStringLiteral("2 tokens");
    }
    void statsLine()
    {
        QFETCH(QJsonObject, stats);
        QFETCH(QString, expected);
        QCOMPARE(MessageWidget::statsText(stats), expected);
    }

    void messageWidgetStates_data()
    {
        QTest::addColumn<QString>("role");
        QTest::addColumn<int>("state");
        QTest::addColumn<bool>("generating");
        QTest::addColumn<QString>("status");
        QTest::addColumn<bool>("regenerateVisible");
        QTest::newRow("user") << "user" << int(MessageState::Complete) << false << QString() << false;
        QTest::newRow("reply") << "assistant" << int(MessageState::Complete) << false << QString() << true;
        QTest::newRow("streaming, empty") << "assistant" << int(MessageState::Streaming) << true
                                          << QStringLiteral("Thinking…") << true;
        QTest::newRow("cancelled") << "assistant" << int(MessageState::Cancelled) << false << QStringLiteral("Stopped.") << true;
        QTest::newRow("failed") << "assistant" << int(MessageState::Failed) << false
                                << QStringLiteral("Failed: out of memory") << true;
    }
    void messageWidgetStates()
    {
        QFETCH(QString, role);
        QFETCH(int, state);
        QFETCH(bool, generating);
        QFETCH(QString, status);
        QFETCH(bool, regenerateVisible);
        MessageWidget w;
        w.show();
        MessageRecord m;
        m.id = 5;
        m.role = role;
        m.state = MessageState(state);
        m.stats = QJsonObject{{"error", "out of memory"}};
        m.siblingIndex = 1;
        m.siblingCount = 3;
        w.setMessage(m, generating);
        auto *label = w.findChild<QLabel *>(QStringLiteral("statusLabel"));
        QCOMPARE(label->isVisible() ? label->text() : QString(), status);
        QCOMPARE(w.findChild<QToolButton *>(QStringLiteral("regenerateButton"))->isVisible(), regenerateVisible);
        QCOMPARE(w.findChild<QLabel *>(QStringLiteral("branchLabel"))->text(), QStringLiteral("2/3"));
        QSignalSpy sibling(&w, &MessageWidget::siblingRequested);
        QTest::mouseClick(w.findChild<QToolButton *>(QStringLiteral("nextBranch")), Qt::LeftButton);
        QCOMPARE(sibling.size(), 1);
        QCOMPARE(sibling.first().at(0).toLongLong(), 5);
        QCOMPARE(sibling.first().at(1).toInt(), 1);
        // Busy (the conversation generates): no branch switching or editing.
        w.setBusy(true);
        QVERIFY(!w.findChild<QToolButton *>(QStringLiteral("nextBranch"))->isEnabled());
        QVERIFY(!w.findChild<QToolButton *>(QStringLiteral("editButton"))->isEnabled());
    }

    void editorEmitsEdit()
    {
        MessageWidget w;
        w.show();
        MessageRecord m;
        m.id = 9;
        m.role = QStringLiteral("user");
        m.content = QStringLiteral("old text");
        w.setMessage(m, false);
        QSignalSpy edited(&w, &MessageWidget::editSubmitted);
        QTest::mouseClick(w.findChild<QToolButton *>(QStringLiteral("editButton")), Qt::LeftButton);
        QVERIFY(w.isEditing());
        auto *editor = w.findChild<QPlainTextEdit *>(QStringLiteral("messageEditor"));
        QCOMPARE(editor->toPlainText(), QStringLiteral("old text"));
        editor->setPlainText(QStringLiteral("new text"));
        QTest::mouseClick(w.findChild<QPushButton *>(QStringLiteral("saveEdit")), Qt::LeftButton);
        QCOMPARE(edited.size(), 1);
        QCOMPARE(edited.first().at(1).toString(), QStringLiteral("new text"));
        QVERIFY(!w.isEditing());
    }

    void composerKeys_data()
    {
        QTest::addColumn<int>("key");
        QTest::addColumn<int>("modifiers");
        QTest::addColumn<bool>("submits");
        QTest::newRow("Return") << int(Qt::Key_Return) << int(Qt::NoModifier) << true;
        QTest::newRow("keypad Enter") << int(Qt::Key_Enter) << int(Qt::KeypadModifier) << true;
        QTest::newRow("Ctrl+Return") << int(Qt::Key_Return) << int(Qt::ControlModifier) << true;
        QTest::newRow("Shift+Return") << int(Qt::Key_Return) << int(Qt::ShiftModifier) << false;
    }
    void composerKeys()
    {
        QFETCH(int, key);
        QFETCH(int, modifiers);
        QFETCH(bool, submits);
        Composer c;
        c.show();
        QSignalSpy submitted(&c, &Composer::submitted);
        QTest::keyClicks(c.editor(), QStringLiteral("hi"));
        QTest::keyClick(c.editor(), Qt::Key(key), Qt::KeyboardModifiers(modifiers));
        QCOMPARE(submitted.size(), submits ? 1 : 0);
        QCOMPARE(c.text(), submits ? QStringLiteral("hi") : QStringLiteral("hi\n"));
        // Whitespace only, or while generating: nothing is sent.
        submitted.clear();
        c.setText(QStringLiteral("  \n "));
        QTest::mouseClick(c.sendButton(), Qt::LeftButton);
        c.setText(QStringLiteral("x"));
        c.setGenerating(true);
        QVERIFY(!c.sendButton()->isVisible());
        QTest::keyClick(c.editor(), Qt::Key_Return);
        QCOMPARE(submitted.size(), 0);
    }
};

QTEST_MAIN(TstUiMessageViews)
#include "tst_ui_message_views.moc"
