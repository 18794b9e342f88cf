// glassbox-screenshots: renders the main views of the app to PNG for the
// README (scripts/screenshots.sh runs it under xvfb). Uses a canned engine so
// the pictures are the same on every machine: replies are fixed Markdown.
#include "app_context.h"
#include "chat_view.h"
#include "composer.h"
#include "conversation_list.h"
#include "main_window.h"
#include "message_widget.h"
#include "model_library_dialog.h"
#include "settings_dialog.h"

#include <QApplication>
#include <QDir>
#include <QStyleFactory>
#include <QTemporaryDir>
#include <QtTest>

#include <cstdio>

namespace {

const char *kCodeReply =
    "Use `sorted()` with a `key` to sort a list of dictionaries by a field:\n\n"
    "```python\npeople = [{\"name\": \"Ada\", \"age\": 36}, {\"name\": \"Alan\", \"age\": 41}]\n"
    "by_age = sorted(people, key=lambda p: p[\"age\"])\n```\n\n"
    "- `reverse=True` sorts from oldest to youngest\n- `list.sort()` sorts in place\n";
const char *kTableReply =
    "Here are the inner planets:\n\n| Planet | Distance (AU) | Moons |\n|---|---|---|\n"
    "| Mercury | 0.39 | 0 |\n| Venus | 0.72 | 0 |\n| Earth | 1.00 | 1 |\n| Mars | 1.52 | 2 |\n\n"
    "Mars is the only one with **two** moons.";
const char *kListReply = "A relaxed weekend:\n\n1. Saturday morning: the farmers' market\n2. Afternoon: a walk by the river\n"
                         "3. Sunday: read, cook, and *no alarms*.";

// Replies with fixed Markdown, token by token, with varied probabilities.
class CannedBackend final : public EngineBackend {
public:
    gb::Status load(const QString &path, const EngineConfig &config, const std::function<bool(float)> &progress) override
    {
        if (progress)
            progress(1.0f);
        m_path = path;
        m_config = config;
        return gb::Status::success();
    }
    gb::Status reconfigure(const EngineConfig &config) override
    {
        m_config = config;
        return gb::Status::success();
    }
    void unload() override { m_path.clear(); }
    bool isLoaded() const override { return !m_path.isEmpty(); }
    ModelInfo modelInfo() const override
    {
        ModelInfo i;
        i.path = m_path;
        i.description = QStringLiteral("gemma3 270M Q4_K_M");
        i.architecture = QStringLiteral("gemma3");
        i.contextLength = m_config.contextLength;
        return i;
    }
    gb::Result<gb::GenerateResult> chat(const std::vector<gb::ChatMessage> &messages, const gb::GenerateParams &,
                                        const gb::TokenCallback &onToken, const std::atomic<bool> *) override
    {
        const std::string last = messages.back().content;
        const char *reply = last.find("sort") != std::string::npos     ? kCodeReply
                            : last.find("planet") != std::string::npos ? kTableReply
                                                                        : kListReply;
        gb::GenerateResult r;
        r.n_prompt_tokens = 18 * int(messages.size());
        r.n_prompt_reused = messages.size() > 1 ? 18 * int(messages.size() - 1) : 0;
        r.stop = gb::StopReason::EndOfGeneration;
        const std::string text = reply;
        size_t i = 0;
        int n = 0;
        while (i < text.size()) {
            size_t j = i + 1;
            while (j < text.size() && text[j] != ' ' && text[j] != '\n' && j - i < 6)
                ++j;
            gb::TokenEvent ev;
            ev.id = 1000 + n;
            ev.text = text.substr(i, j - i);
            ev.logprob = -0.02f - 0.9f * float((n * 37) % 11) / 10.0f;
            ev.t_ms = 80.0 + 22.0 * n;
            for (int k = 0; k < 3; ++k)
                ev.top.push_back(gb::TokenLogprob{ev.id + 1 + k, ev.logprob - 0.8f * float(k + 1)});
            r.text += ev.text;
            ++r.n_generated;
            if (onToken)
                onToken(ev);
            i = j;
            ++n;
        }
        r.t_prompt_ms = 60.0;
        r.t_first_token_ms = 80.0;
        r.t_total_ms = 80.0 + 22.0 * n;
        return r;
    }
    std::string tokenText(gb::Token id) const override { return " alt" + std::to_string(id % 7); }

private:
    QString m_path;
    EngineConfig m_config;
};

bool save(QWidget *w, const QString &dir, const QString &name)
{
    QApplication::processEvents();
    QTest::qWait(150);
    const QString path = QDir(dir).filePath(name);
    const bool ok = w->grab().save(path);
    std::printf("%s %s\n", ok ? "wrote" : "FAILED", qPrintable(path));
    return ok;
}

bool send(MainWindow &w, const QString &text)
{
    QSignalSpy done(w.context()->controller(), &ChatController::replyFinished);
    w.composer()->setText(text);
    w.sendCurrentText();
    return done.wait(10000);
}

void darkPalette()
{
    QApplication::setStyle(QStyleFactory::create(QStringLiteral("Fusion")));
    QPalette p;
    p.setColor(QPalette::Window, QColor(37, 38, 41));
    p.setColor(QPalette::WindowText, QColor(220, 220, 220));
    p.setColor(QPalette::Base, QColor(28, 29, 32));
    p.setColor(QPalette::AlternateBase, QColor(45, 47, 52));
    p.setColor(QPalette::Text, QColor(220, 220, 220));
    p.setColor(QPalette::Button, QColor(45, 47, 52));
    p.setColor(QPalette::ButtonText, QColor(220, 220, 220));
    p.setColor(QPalette::Highlight, QColor(61, 132, 216));
    p.setColor(QPalette::HighlightedText, Qt::white);
    p.setColor(QPalette::PlaceholderText, QColor(140, 140, 140));
    p.setColor(QPalette::ToolTipBase, QColor(45, 47, 52));
    p.setColor(QPalette::ToolTipText, QColor(220, 220, 220));
    p.setColor(QPalette::Link, QColor(110, 170, 255));
    for (QPalette::ColorRole role : {QPalette::WindowText, QPalette::Text, QPalette::ButtonText})
        p.setColor(QPalette::Disabled, role, QColor(120, 120, 120));
    QApplication::setPalette(p);
}

}  // namespace

int main(int argc, char **argv)
{
    QApplication app(argc, argv);
    QApplication::setApplicationVersion(QStringLiteral("0.1.0"));
    const QString out = argc > 1 ? QString::fromLocal8Bit(argv[1]) : QStringLiteral("docs/screenshots");
    const QString models = argc > 2 ? QString::fromLocal8Bit(argv[2]) : QString();
    QDir().mkpath(out);
    QTemporaryDir tmp;
    bool ok = true;

    AppContext context(std::make_unique<CannedBackend>());
    context.open(tmp.filePath(QStringLiteral("data")));
    MainWindow window(&context);
    window.resize(1180, 760);
    window.show();
    if (!QTest::qWaitFor([&] { return context.isReady(); }, 10000))
        return 1;
    ok &= save(&window, out, QStringLiteral("first-run.png"));

    QFile fake(tmp.filePath(QStringLiteral("gemma-3-270m-q4_k_m.gguf")));
    fake.open(QIODevice::WriteOnly);
    fake.write("demo");
    fake.close();
    window.loadModel(fake.fileName());
    (void)QTest::qWaitFor([&] { return context.engine()->isModelLoaded(); }, 10000);

    ok &= send(window, QStringLiteral("Plan a quiet weekend for me"));
    window.newChat();
    QTest::qWait(200);
    ok &= send(window, QStringLiteral("Compare the inner planets in a table"));
    window.newChat();
    QTest::qWait(200);
    ok &= send(window, QStringLiteral("How do I sort a list of dicts by a field in Python?"));
    window.regenerateLast();
    (void)QTest::qWaitFor([&] { return !context.controller()->isGenerating(context.controller()->currentConversationId()); }, 10000);
    QTest::qWait(300);
    const QList<qint64> ids = window.conversationList()->shownIds();
    if (!ids.isEmpty())
        window.conversationList()->togglePin(ids.last());
    QTest::qWait(300);
    ok &= save(&window, out, QStringLiteral("chat.png"));

    window.action(QStringLiteral("actionTokenView"))->setChecked(true);
    ok &= save(&window, out, QStringLiteral("tokens.png"));
    window.action(QStringLiteral("actionTokenView"))->setChecked(false);

    window.action(QStringLiteral("actionSystemPrompt"))->setChecked(true);
    window.action(QStringLiteral("actionInspector"))->trigger();
    ok &= save(&window, out, QStringLiteral("system-prompt-inspector.png"));
    window.action(QStringLiteral("actionSystemPrompt"))->setChecked(false);
    window.action(QStringLiteral("actionInspector"))->trigger();

    window.openSettings();
    ok &= save(window.settingsDialog(), out, QStringLiteral("settings.png"));
    window.settingsDialog()->close();

    ModelLibraryDialog *library = window.modelLibrary();
    library->show();
    QStringList files;
    if (!models.isEmpty())
        files << models.split(QLatin1Char(':'), Qt::SkipEmptyParts);
    library->addPaths(files);
    (void)QTest::qWaitFor([&] { return library->pendingReads() == 0; }, 20000);
    QTest::qWait(300);
    ok &= save(library, out, QStringLiteral("model-library.png"));
    library->close();

    darkPalette();
    ok &= save(&window, out, QStringLiteral("chat-dark.png"));
    return ok ? 0 : 1;
}
