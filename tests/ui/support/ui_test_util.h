// Helpers for the desktop UI tests: an app (AppContext + MainWindow) over a
// fake or real engine in a temporary data folder, and small widget lookups.
#pragma once

#include "app_context.h"
#include "chat_view.h"
#include "composer.h"
#include "main_window.h"
#include "message_text_view.h"
#include "message_widget.h"

#include <QFile>
#include <QLabel>
#include <QMessageBox>
#include <QTemporaryDir>
#include <QtTest>

#include <memory>

struct TestApp {
    std::unique_ptr<AppContext> context;
    std::unique_ptr<MainWindow> window;

    // Opens dataDir with backend and shows the window; false if the store did not open.
    bool start(const QString &dataDir, std::unique_ptr<EngineBackend> backend)
    {
        context = std::make_unique<AppContext>(std::move(backend));
        context->open(dataDir);
        window = std::make_unique<MainWindow>(context.get());
        if (!QFile::exists(dataDir + QStringLiteral("/ui.ini")))  // else the remembered geometry is used
            window->resize(1000, 700);
        window->show();
        window->activateWindow();
        if (!QTest::qWaitForWindowActive(window.get(), 2000))
            QApplication::setActiveWindow(window.get());  // shortcuts need an active window
        return QTest::qWaitFor([&] { return context->isReady(); }, 20000);
    }
    void stop()
    {
        window.reset();  // the window goes before the core it shows
        context.reset();
    }
    ~TestApp() { stop(); }

    ChatController *controller() const { return context->controller(); }
    EngineWorker *engine() const { return context->engine(); }

    bool loadModel(const QString &path, int timeoutMs = 20000)
    {
        window->loadModel(path);
        return QTest::qWaitFor([&] { return engine()->isModelLoaded() && !engine()->isLoading(); }, timeoutMs);
    }

    QList<MessageWidget *> messages() const { return window->chatView()->messageWidgets(); }
    QString messageText(int i) const
    {
        const QList<MessageWidget *> m = messages();
        return i < m.size() ? m[i]->textView()->toPlainText() : QString();
    }
    QString branchLabel(int i) const
    {
        const QList<MessageWidget *> m = messages();
        if (i >= m.size())
            return {};
        auto *label = m[i]->findChild<QLabel *>(QStringLiteral("branchLabel"));
        return label && !label->isHidden() ? label->text() : QString();
    }
    // Types text into the composer and presses Enter; waits until the reply is finished.
    bool typeAndSend(const QString &text, int timeoutMs = 20000)
    {
        QSignalSpy finished(controller(), &ChatController::replyFinished);
        PromptEdit *edit = window->composer()->editor();
        edit->setFocus();
        QTest::keyClicks(edit, text);
        QTest::keyClick(edit, Qt::Key_Return);
        return finished.wait(timeoutMs) || finished.size() > 0;
    }
    bool waitIdle(int timeoutMs = 20000)
    {
        return QTest::qWaitFor([&] { return !controller()->isGenerating(controller()->currentConversationId()); },
                               timeoutMs);
    }
    QList<QMessageBox *> errorDialogs() const
    {
        return window->findChildren<QMessageBox *>(QStringLiteral("errorDialog"));
    }
    void closeDialogs()
    {
        for (QMessageBox *b : window->findChildren<QMessageBox *>())
            b->close();
    }
};

// A file that exists (MainWindow checks that before asking the engine).
inline QString touchFile(const QString &path, const QByteArray &content = "x")
{
    QFile f(path);
    if (f.open(QIODevice::WriteOnly))
        f.write(content);
    return path;
}
