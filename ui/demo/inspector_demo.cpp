// glassbox-inspector-demo: the inspector panels in a window, fed by a GGUF file
// (Model, Tokenizer) and token events (Latency, Tokens, Speculative): a real
// generation with --generate PROMPT (plain, then with --spec METHOD on the same
// prompt), else synthetic ones; the KV cache, Prefix tree and Batching panels
// follow a scripted chat workload on the real paged-KV scheduler (no model).
// --screenshot renders PNGs and exits.
#include "inspector/imgui_widget.h"
#include "inspector/model_info.h"
#include "inspector/kv_trace.h"
#include "inspector/panels/batching_panel.h"
#include "inspector/panels/kv_cache_panel.h"
#include "inspector/panels/latency_panel.h"
#include "inspector/panels/prefix_tree_panel.h"
#include "inspector/panels/spec_panel.h"
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
        // The same synthetic prompt decoded plainly and with three (synthetic) speculative methods.
        const struct { const char * method; double accept; } methods[] = {{"none", 0}, {"lookup", 0.55}, {"lookahead", 0.7}, {"draft", 0.85}};
        for (const auto & m : methods) {
            ScriptedSpecParams sp;
            sp.method = m.method;
            sp.nTokens = 300;
            sp.seed = 5;
            sp.acceptFirst = m.accept;
            sp.draftMax = m.accept > 0 ? 5 : 0;
            ScriptedSpecRun run = makeScriptedSpecRun(sp, tok);
            recorder.beginRequest(std::string("synthetic, method ") + m.method, 64);
            recorder.setPromptKey("synthetic prompt");
            recorder.setPrefillTime(sp.ttftMs * 0.8);
            for (const gb::TokenEvent & e : run.events) recorder.onToken(e);
            gb::GenerateResult r = run.result();
            if (sp.draftMax == 0) r.spec = gb::SpecStats{};
            r.n_prompt_tokens = 64;
            r.t_prompt_ms = sp.ttftMs * 0.8;
            recorder.endRequest(r);
        }
    } while (live && !stop);
}

// The scripted chat workload on the real kv::Scheduler.
void produceKv(KvRecorder & kv, const gb::Tokenizer * tok, std::atomic<bool> & stop, bool live) {
    ScriptedKvParams p;
    if (tok) {
        p.vocab = tok->encode("Glassbox shows the pages of the KV cache, the prefix tree that lets conversations share "
                              "their system prompt, and how each engine step mixes prefill chunks with decode tokens.",
                              false, false);
    }
    p.scheduler.n_pages = 160;  // small enough to evict and preempt
    // Stops two thirds of the way (sequences still hold pages) unless live.
    int64_t total = 0;
    if (auto dry = ScriptedKvWorkload::create(p))
        while ((*dry)->step(nullptr)) ++total;
    auto w = ScriptedKvWorkload::create(p);
    if (!w) return;
    int64_t steps = 0;
    while (!stop && (live || steps < total * 2 / 3) && (*w)->step(&kv)) {
        ++steps;
        if (live) std::this_thread::sleep_for(std::chrono::milliseconds(30));
    }
    kv.publishNow();
}

// A real generation: the engine's token callback feeds the recorder directly;
// with a speculative method the same prompt runs plain first, then with it.
void generate(TraceRecorder & recorder, KvRecorder & kv, const std::string & model_path, const std::string & prompt, int max_tokens,
              const std::string & spec, std::atomic<bool> & stop) {
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
    std::vector<gb::SpecMethod> methods{gb::SpecMethod::None};
    gb::SpecMethod m = gb::SpecMethod::None;
    if (!spec.empty() && gb::parse_spec_method(spec, &m) && m != gb::SpecMethod::None) methods.push_back(m);
    int64_t id = 1;
    for (gb::SpecMethod method : methods) {
        gp.spec.method = method;
        const std::string label = (prompt.size() > 40 ? prompt.substr(0, 40) + "..." : prompt) + " [" + gb::spec_method_name(method) + "]";
        recorder.beginRequest(label);
        recorder.setPromptKey(prompt);
        std::vector<double> times;
        auto result = (*session)->chat({{"user", prompt}}, gp, [&](const gb::TokenEvent & e) {
            times.push_back(e.t_ms);
            return recorder.onToken(e);
        }, &stop);
        if (!result) {
            std::fprintf(stderr, "glassbox-inspector-demo: %s\n", result.error().to_string().c_str());
            return;
        }
        recorder.endRequest(*result);
        KvRecorder::SessionRequest sr;
        sr.id = id++;
        sr.label = label;
        sr.nCtx = sp.context.n_ctx;
        sr.nPromptTokens = result->n_prompt_tokens;
        sr.nReused = result->n_prompt_reused;
        sr.tPromptMs = result->t_prompt_ms;
        sr.tokenTimesMs = times;
        for (const gb::SpecStep & st : result->spec.per_step) sr.emittedPerStep.push_back(st.emitted);
        kv.onSessionRequest(sr);
        std::printf("%s: %d tokens, %.1f tok/s, prompt %d (%d reused)%s\n", label.c_str(), result->n_generated, result->gen_tokens_per_s(),
                    result->n_prompt_tokens, result->n_prompt_reused, result->spec.steps ? (", spec " + result->spec.to_json()).c_str() : "");
    }
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
    cli.addOption({"spec", "With --generate: also run the prompt with this speculative method (lookup, lookahead, selfdraft).", "method"});
    cli.addOption({"panel", "Panel to show first: Latency, Tokens, Model, Tokenizer, KV cache, Prefix tree, Speculative, Batching.", "name"});
    cli.addOption({"screenshot", "Render the panel (--panel, or every panel into a folder) to PNG and exit.", "path"});
    cli.addOption({"size", "Window size WxH (default 1200x800).", "size", "1200x800"});
    cli.process(app);

    SnapshotRing ring;
    TraceRecorder recorder(ring);
    KvRecorderParams kvp;
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
    if (tok) kvp.tokenText = [tok](gb::Token t) { return tok->token_to_piece(t, true); };
    KvRecorder kvRecorder(recorder, kvp);

    QMainWindow window;
    auto * inspector = new ImGuiWidget(&window);
    inspector->addPanel(std::make_unique<LatencyPanel>());
    inspector->addPanel(std::make_unique<TokensPanel>());
    inspector->addPanel(std::make_unique<ModelPanel>());
    inspector->addPanel(std::make_unique<TokenizerPanel>());
    inspector->addPanel(std::make_unique<KvCachePanel>());
    auto tree = std::make_unique<PrefixTreePanel>();
    tree->selectNode(1);  // the first node (the shared system prompt) shows its sharers
    inspector->addPanel(std::move(tree));
    inspector->addPanel(std::make_unique<SpecPanel>());
    inspector->addPanel(std::make_unique<BatchingPanel>());
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
        if (cli.isSet("generate") && cli.isSet("model")) {
            generate(recorder, kvRecorder, cli.value("model").toStdString(), cli.value("generate").toStdString(),
                     cli.value("max-tokens").toInt(), cli.value("spec").toStdString(), stop);
        } else {
            produceKv(kvRecorder, tok, stop, false);
            produce(recorder, tok, n_tokens, live, stop);
        }
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
                const QString file = QDir(path).filePath(
                    QString::fromUtf8(inspector->panel(i)->title()).toLower().replace(QLatin1Char(' '), QLatin1Char('-')) + ".png");
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
