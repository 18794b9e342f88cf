// glassbox-inspector-demo: the inspector panels in a window, fed by a GGUF file
// (Model, Tokenizer) and token events (Latency, Tokens): a real generation with
// --generate PROMPT, else synthetic ones. --screenshot renders PNGs and exits.
#include "inspector/imgui_widget.h"
#include "inspector/model_info.h"
#include "inspector/panels/latency_panel.h"
#include "inspector/panels/model_panel.h"
#include "inspector/panels/tokenizer_panel.h"
#include "inspector/panels/tokens_panel.h"
#include "inspector/scripted_trace.h"
#include "inspector/snapshot_ring.h"
#include "inspector/trace_recorder.h"

#include "glassbox/model.h"
#include "glassbox/session.h"

#include <QApplication>
#include <QCommandLineParser>
#include <QDir>
#include <QMainWindow>
#include <QTimer>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <thread>

using namespace gb::ui;

namespace {

// Feeds scripted requests through a TraceRecorder, like an engine worker would.
void produce(TraceRecorder & recorder, const gb::Tokenizer * tok, size_t n_tokens, bool live, std::atomic<bool> & stop) {
    const size_t sizes[] = {40, 300, n_tokens};
    uint64_t seed = 1;
    do {
        for (size_t n : sizes) {
            ScriptedTraceParams p;
            p.nTokens = n;
            p.seed = seed++;
            p.meanItlMs = 18.0 + 6.0 * double(seed % 3);
            const auto events = makeScriptedTokenEvents(p, tok);
            recorder.beginRequest("synthetic " + std::to_string(n) + " tokens", 24 + int32_t(seed) * 7);
            recorder.setPrefillTime(p.ttftMs * 0.8);
            const auto start = std::chrono::steady_clock::now();
            for (const gb::TokenEvent & e : events) {
                if (stop) return;
                if (live) std::this_thread::sleep_until(start + std::chrono::duration<double, std::milli>(e.t_ms));
                recorder.onToken(e);
            }
            gb::GenerateResult r;
            r.stop = gb::StopReason::MaxTokens;
            r.n_prompt_tokens = 24 + int32_t(seed) * 7;
            r.n_generated = int32_t(events.size());
            r.t_prompt_ms = p.ttftMs * 0.8;
            r.t_first_token_ms = events.empty() ? 0.0 : events.front().t_ms;
            r.t_total_ms = events.empty() ? 0.0 : events.back().t_ms;
            recorder.endRequest(r);
        }
    } while (live && !stop);
}

// A real generation: the engine's token callback feeds the recorder directly.
void generate(TraceRecorder & recorder, const std::string & model_path, const std::string & prompt, int max_tokens,
              std::atomic<bool> & stop) {
    auto model = gb::Model::load(model_path);
    if (!model) {
        std::fprintf(stderr, "glassbox-inspector-demo: %s\n", model.error().to_string().c_str());
        return;
    }
    gb::SessionParams sp;
    sp.context.n_ctx = 2048;
    auto session = gb::Session::create(*model, sp);
    if (!session) {
        std::fprintf(stderr, "glassbox-inspector-demo: %s\n", session.error().to_string().c_str());
        return;
    }
    gb::GenerateParams gp;
    gp.max_tokens = max_tokens;
    gp.n_logprobs = 5;
    gp.sampling.seed = 1;
    recorder.beginRequest(prompt.size() > 40 ? prompt.substr(0, 40) + "..." : prompt);
    auto result = (*session)->chat({{"user", prompt}}, gp, recorder.callback(), &stop);
    if (!result) {
        std::fprintf(stderr, "glassbox-inspector-demo: %s\n", result.error().to_string().c_str());
        return;
    }
    recorder.endRequest(*result);
}

}  // namespace

int main(int argc, char ** argv) {
    QApplication app(argc, argv);
    QApplication::setApplicationName("glassbox-inspector-demo");
    QCommandLineParser cli;
    cli.setApplicationDescription("Glassbox inspector panels on a GGUF file and synthetic token timings.");
    cli.addHelpOption();
    cli.addOption({"model", "GGUF file for the Model and Tokenizer panels.", "file"});
    cli.addOption({"tokens", "Tokens in the largest synthetic request (default 2000).", "n", "2000"});
    cli.addOption({"live", "Stream synthetic tokens in real time, in a loop."});
    cli.addOption({"generate", "Generate a chat reply to this prompt with --model (real token timings).", "prompt"});
    cli.addOption({"max-tokens", "Tokens to generate with --generate (default 64).", "n", "64"});
    cli.addOption({"panel", "Panel to show first: Latency, Tokens, Model, Tokenizer.", "name"});
    cli.addOption({"screenshot", "Render the panel (--panel, or every panel into a folder) to PNG and exit.", "path"});
    cli.addOption({"size", "Window size WxH (default 1200x800).", "size", "1200x800"});
    cli.process(app);

    SnapshotRing ring;
    TraceRecorder recorder(ring);
    if (cli.isSet("model")) {
        auto info = loadModelInfo(cli.value("model").toStdString());
        if (!info) {
            std::fprintf(stderr, "glassbox-inspector-demo: %s\n", info.error().to_string().c_str());
            return 1;
        }
        recorder.setModel(*info);
    }
    const auto model = ring.latest() ? ring.latest()->model : nullptr;
    const gb::Tokenizer * tok = model ? model->tokenizer.get() : nullptr;

    QMainWindow window;
    auto * inspector = new ImGuiWidget(&window);
    inspector->addPanel(std::make_unique<LatencyPanel>());
    inspector->addPanel(std::make_unique<TokensPanel>());
    inspector->addPanel(std::make_unique<ModelPanel>());
    inspector->addPanel(std::make_unique<TokenizerPanel>());
    inspector->setSnapshotSource(&ring);
    window.setCentralWidget(inspector);
    window.setWindowTitle(cli.isSet("generate") ? "Glassbox inspector" : "Glassbox inspector (synthetic token timings)");
    const QStringList wh = cli.value("size").split('x');
    window.resize(wh.value(0).toInt() > 0 ? wh.value(0).toInt() : 1200, wh.value(1).toInt() > 0 ? wh.value(1).toInt() : 800);
    if (cli.isSet("panel")) {
        const int index = inspector->panelIndex(cli.value("panel"));
        if (index < 0) {
            std::fprintf(stderr, "glassbox-inspector-demo: no panel named '%s'\n", qPrintable(cli.value("panel")));
            return 1;
        }
        inspector->setCurrentPanel(index);
    }

    std::atomic<bool> stop{false};
    const size_t n_tokens = size_t(std::max(cli.value("tokens").toLongLong(), 1LL));
    const bool live = cli.isSet("live") && !cli.isSet("screenshot");
    std::thread producer([&] {
        if (cli.isSet("generate") && cli.isSet("model"))
            generate(recorder, cli.value("model").toStdString(), cli.value("generate").toStdString(),
                     cli.value("max-tokens").toInt(), stop);
        else
            produce(recorder, tok, n_tokens, live, stop);
    });

    int rc = 0;
    if (cli.isSet("screenshot")) {
        producer.join();
        inspector->setSnapshot(ring.latest());
        window.show();
        const QString path = cli.value("screenshot");
        if (cli.isSet("panel")) {
            rc = inspector->savePanelPng(inspector->currentPanel(), path) ? 0 : 1;
            std::printf("%s\n", qPrintable(path));
        } else {
            QDir().mkpath(path);
            for (int i = 0; i < inspector->panelCount(); ++i) {
                const QString file = QDir(path).filePath(QString::fromUtf8(inspector->panel(i)->title()).toLower() + ".png");
                if (!inspector->savePanelPng(i, file)) rc = 1;
                std::printf("%s\n", qPrintable(file));
            }
        }
        std::printf("GL: %s\n", qPrintable(inspector->glInfo()));
        return rc;
    }
    window.show();
    rc = app.exec();
    stop = true;
    producer.join();
    return rc;
}
