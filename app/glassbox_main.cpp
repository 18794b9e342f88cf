// glassbox: the desktop app. Parses the command line, opens the data folder
// and shows the main window (logic lives in glassbox_ui and glassbox_appcore).
#include "app_context.h"
#include "main_window.h"

#include <QApplication>
#include <QCommandLineParser>
#include <QNetworkProxyFactory>
#include <QTimer>

#include <cstdio>

#ifdef GLASSBOX_NO_ENGINE_MODEL
namespace {
// Used while the engine's model code is not built: every load fails with a clear message.
class NoModelBackend final : public EngineBackend {
public:
    gb::Status load(const QString &, const EngineConfig &, const std::function<bool(float)> &) override
    {
        return gb::make_error(gb::ErrorCode::Unsupported, "this build has no model code (engine/src/model.cpp)");
    }
    gb::Status reconfigure(const EngineConfig &) override
    {
        return gb::make_error(gb::ErrorCode::Unsupported, "no model is loaded");
    }
    void unload() override {}
    bool isLoaded() const override { return false; }
    ModelInfo modelInfo() const override { return {}; }
    gb::Result<gb::GenerateResult> chat(const std::vector<gb::ChatMessage> &, const gb::GenerateParams &,
                                        const gb::TokenCallback &, const std::atomic<bool> *) override
    {
        return gb::make_error(gb::ErrorCode::InvalidArgument, "no model is loaded");
    }
    std::string tokenText(gb::Token) const override { return {}; }
};
}  // namespace
#endif

int main(int argc, char **argv)
{
    QApplication app(argc, argv);
    QApplication::setApplicationName(QStringLiteral("glassbox"));
    QApplication::setApplicationDisplayName(QStringLiteral("Glassbox"));
    QApplication::setOrganizationName(QStringLiteral("Glassbox"));
    QApplication::setApplicationVersion(QStringLiteral(GLASSBOX_VERSION));
    QApplication::setDesktopFileName(QStringLiteral("io.glassbox.Glassbox"));
    QNetworkProxyFactory::setUseSystemConfiguration(true);

    QCommandLineParser cli;
    cli.setApplicationDescription(QStringLiteral("Glassbox: chat with language models on your own computer."));
    cli.addHelpOption();
    cli.addVersionOption();
    cli.addOption({QStringLiteral("model"), QStringLiteral("Load this GGUF model."), QStringLiteral("file")});
    cli.addOption({QStringLiteral("conversation"), QStringLiteral("Open the conversation with this id."), QStringLiteral("id")});
    cli.addOption({QStringLiteral("inspector"), QStringLiteral("Open the inspector on a panel (Tokens, Latency, Model, ...)."),
                   QStringLiteral("panel")});
    cli.addOption({QStringLiteral("data-dir"), QStringLiteral("Keep history and settings in this folder."), QStringLiteral("dir")});
    cli.addOption({QStringLiteral("send"), QStringLiteral("Send this message once the model is loaded."), QStringLiteral("text")});
    cli.addOption({QStringLiteral("quit-after-reply"),
                   QStringLiteral("Exit after the reply to --send (status 0 if it arrived; the reply goes to stdout).")});
    cli.addPositionalArgument(QStringLiteral("model"), QStringLiteral("A GGUF model to load (like --model)."), QStringLiteral("[file]"));
    cli.process(app);

    StartupOptions options;
    options.modelPath = cli.value(QStringLiteral("model"));
    if (options.modelPath.isEmpty() && !cli.positionalArguments().isEmpty())
        options.modelPath = cli.positionalArguments().first();
    if (cli.isSet(QStringLiteral("conversation"))) {
        bool ok = false;
        options.conversationId = cli.value(QStringLiteral("conversation")).toLongLong(&ok);
        if (!ok || options.conversationId <= 0) {
            std::fprintf(stderr, "glassbox: --conversation needs a positive number\n");
            return 2;
        }
    }
    options.inspectorPanel = cli.value(QStringLiteral("inspector"));
    options.sendText = cli.value(QStringLiteral("send"));
    options.quitAfterReply = cli.isSet(QStringLiteral("quit-after-reply"));
    if (options.quitAfterReply && options.sendText.isEmpty()) {
        std::fprintf(stderr, "glassbox: --quit-after-reply needs --send TEXT\n");
        return 2;
    }

#ifdef GLASSBOX_NO_ENGINE_MODEL
    AppContext context(std::make_unique<NoModelBackend>());
#else
    AppContext context(EngineWorker::createGlassboxBackend());
#endif
    const QString dataDir = cli.isSet(QStringLiteral("data-dir")) ? cli.value(QStringLiteral("data-dir"))
                                                                  : AppContext::defaultDataDir();
    context.open(dataDir);

    MainWindow window(&context);
    int exitCode = 0;
    QObject::connect(&window, &MainWindow::exitRequested, &app, [&](int code, const QString &reply) {
        if (!options.quitAfterReply)
            return;
        if (!reply.isEmpty())
            std::fprintf(stdout, "%s\n", reply.toUtf8().constData());
        std::fflush(stdout);
        if (code != 0)
            std::fprintf(stderr, "glassbox: %s\n",
                         qPrintable(window.errors().isEmpty() ? QStringLiteral("no reply") : window.errors().last()));
        exitCode = code;
        QTimer::singleShot(0, &app, [&] { app.exit(exitCode); });
    });
    window.setStartupOptions(options);
    window.show();
    const int rc = app.exec();
    return exitCode != 0 ? exitCode : rc;
}
