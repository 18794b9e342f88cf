// GUI tests of the inspector (run under xvfb-run; on the offscreen platform the
// OpenGL parts are skipped): every panel renders empty, typical and very large
// (100,000-token) data without ImGui asserts and draws something (KV cache,
// prefix tree and batching from a scripted workload on the real scheduler,
// speculative runs from scripted SpecStats); input reaches
// ImGui (a click toggles a tree node, typing edits text); an idle inspector does
// not redraw, and producer publishes do redraw it. Prints frame times (BENCH).
#include "inspector/imgui_widget.h"
#include "inspector/kv_trace.h"
#include "inspector/model_info.h"
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

#include "glassbox/synth.h"

#include <imgui.h>
#include <imgui_stdlib.h>

#include <QDir>
#include <QElapsedTimer>
#include <QGuiApplication>
#include <QTemporaryDir>
#include <QtTest>

#include <algorithm>
#include <thread>

using namespace gb;
using namespace gb::ui;

namespace {

// A panel whose widgets report where they are and what happened to them.
class ProbePanel : public InspectorPanel {
  public:
    const char * title() const override { return "Probe"; }
    void draw(const InspectorSnapshot &) override {
        const bool open = ImGui::TreeNode("Details");
        nodeCenter = center();
        if (open) {
            ImGui::TextUnformatted("inside the node");
            ImGui::TreePop();
        }
        isOpen = open;
        ImGui::SetNextItemWidth(300);
        ImGui::InputText("##edit", &text);
        editCenter = center();
        ++draws;
    }
    static QPoint center() {
        const ImVec2 a = ImGui::GetItemRectMin(), b = ImGui::GetItemRectMax();
        return QPoint(int((a.x + b.x) / 2), int((a.y + b.y) / 2));
    }
    bool isOpen = false;
    QPoint nodeCenter, editCenter;
    std::string text;
    int draws = 0;
};

// Pixels that differ from the most common colour (the background).
int inkPixels(const QImage & image) {
    const QImage img = image.convertToFormat(QImage::Format_RGB32);
    QHash<QRgb, int> counts;
    for (int y = 0; y < img.height(); ++y) {
        const auto * line = reinterpret_cast<const QRgb *>(img.constScanLine(y));
        for (int x = 0; x < img.width(); ++x) ++counts[line[x]];
    }
    int mode = 0;
    for (int c : counts) mode = std::max(mode, c);
    return img.width() * img.height() - mode;
}

std::shared_ptr<const RequestTrace> recordRequest(size_t n, uint64_t seed, const Tokenizer * tok) {
    SnapshotRing ring(2);
    TraceRecorder rec(ring, TraceRecorderParams{1e12, 4, 40, [] { return 0.0; }});
    ScriptedTraceParams p;
    p.nTokens = n;
    p.seed = seed;
    rec.beginRequest("scripted " + std::to_string(n), 20);
    for (const auto & e : makeScriptedTokenEvents(p, tok)) rec.onToken(e, TokenOrigin(e.id % 4));
    GenerateResult r;
    r.stop = StopReason::MaxTokens;
    r.n_prompt_tokens = 20;
    r.t_prompt_ms = 150.0;
    rec.endRequest(r);
    return ring.latest()->requests.back();
}

// A speculative request (scripted SpecStats) on prompt key "p".
std::shared_ptr<const RequestTrace> recordSpecRequest(size_t n, const char * method, double accept, const Tokenizer * tok) {
    SnapshotRing ring(2);
    TraceRecorder rec(ring, TraceRecorderParams{1e12, 4, 40, [] { return 0.0; }});
    ScriptedSpecParams p;
    p.method = method;
    p.nTokens = n;
    p.acceptFirst = accept;
    p.draftMax = accept > 0 ? 6 : 0;
    const ScriptedSpecRun run = makeScriptedSpecRun(p, tok);
    rec.beginRequest(std::string("spec ") + method, 40);
    rec.setPromptKey("p");
    rec.setQueueTime(30.0);
    for (const auto & e : run.events) rec.onToken(e);
    GenerateResult r = run.result();
    if (accept <= 0) r.spec = SpecStats{};
    r.t_prompt_ms = 150.0;
    r.n_prompt_tokens = 40;
    rec.endRequest(r);
    return ring.latest()->requests.back();
}

// The KV trace of a scripted chat workload on the real scheduler, run until
// minTokens tokens went through the forward pass (or it finished).
std::shared_ptr<const KvTrace> recordKv(ScriptedKvParams p, int64_t minTokens, const Tokenizer * tok) {
    if (tok) p.nVocab = tok->n_vocab();
    SnapshotRing ring(2);
    TraceRecorder rec(ring);
    KvRecorderParams kp;
    kp.minIntervalMs = 1e12;  // one snapshot at the end
    if (tok) kp.tokenText = [tok](Token t) { return tok->token_to_piece(t, true); };
    KvRecorder kv(rec, kp);
    auto w = ScriptedKvWorkload::create(p);
    if (!w) return nullptr;
    while ((*w)->step(&kv) && (minTokens <= 0 || (*w)->tokensProcessed() < minTokens)) {}
    QElapsedTimer t;
    t.start();
    kv.publishNow();  // what a producer pays per snapshot (page map, tree, sharers, log)
    qInfo("BENCH kv snapshot: %zu steps, %zu pages, %zu tree nodes, %zu requests: %.2f ms", kv.latest()->steps.size(),
          size_t(kv.latest()->nPages), kv.latest()->tree.size(), kv.latest()->requests.size(), double(t.nsecsElapsed()) * 1e-6);
    return kv.latest();
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0.0 : v[v.size() / 2];
}

}  // namespace

class TestInspectorWidget : public QObject {
    Q_OBJECT
  private slots:
    void initTestCase();
    void panelsRender_data();
    void panelsRender();
    void clickTogglesTreeNodeAndTypingEdits();
    void idleDoesNotRedrawButPublishesDo();
    void frameTimeWithLargeHistory_data();
    void frameTimeWithLargeHistory();

  private:
    bool skipWithoutGl();
    std::unique_ptr<ImGuiWidget> makeWidget();
    std::shared_ptr<const InspectorSnapshot> snapshotFor(const QString & kind);

    QTemporaryDir m_dir;
    QHash<QString, int> m_emptyInk;
    bool m_gl = false;
    std::shared_ptr<const ModelInfo> m_model;
    std::shared_ptr<const InspectorSnapshot> m_typical, m_large;
};

void TestInspectorWidget::initTestCase() {
    m_gl = QGuiApplication::platformName() != QLatin1String("offscreen");
    auto spec = synth_preset("tiny-llama");
    QVERIFY(spec.ok());
    const std::string path = m_dir.filePath("tiny.gguf").toStdString();
    QVERIFY(write_synthetic_model(*spec, path, {}, 1).ok());
    auto info = loadModelInfo(path);
    QVERIFY(info.ok());
    m_model = *info;

    auto typical = std::make_shared<InspectorSnapshot>();
    typical->model = m_model;
    for (size_t n : {40, 300, 2000}) typical->requests.push_back(recordRequest(n, n, m_model->tokenizer.get()));
    typical->requests.push_back(recordSpecRequest(300, "none", 0.0, m_model->tokenizer.get()));
    typical->requests.push_back(recordSpecRequest(300, "lookup", 0.7, m_model->tokenizer.get()));
    typical->kv = recordKv(ScriptedKvParams{}, 0, m_model->tokenizer.get());
    QVERIFY(typical->kv && !typical->kv->steps.empty() && !typical->kv->tree.empty());
    m_typical = typical;

    auto large = std::make_shared<InspectorSnapshot>();
    // The real model file when present (262,144-entry vocab arrays in the metadata).
    const QString real = QStringLiteral(GLASSBOX_MODEL_DIR "/gemma-3-270m-q4_k_m.gguf");
    auto big_model = QFile::exists(real) ? loadModelInfo(real.toStdString()) : Result<std::shared_ptr<const ModelInfo>>(m_model);
    large->model = big_model.ok() ? *big_model : m_model;
    for (int i = 0; i < 31; ++i) large->requests.push_back(recordRequest(200, uint64_t(i) + 7, large->model->tokenizer.get()));
    large->requests.push_back(recordRequest(100000, 99, large->model->tokenizer.get()));
    large->requests.push_back(recordSpecRequest(100000, "lookahead", 0.8, large->model->tokenizer.get()));
    // 100,000+ tokens through a 2,048-page cache: thousands of steps, a big tree.
    ScriptedKvParams big;
    big.scheduler = kv::SchedulerParams{2048, 16, 256, 16, true};
    big.nConversations = 64;
    big.nTurns = 16;
    big.maxNewTokens = 64;
    QElapsedTimer kv_timer;
    kv_timer.start();
    large->kv = recordKv(big, 100000, large->model->tokenizer.get());
    QVERIFY(large->kv);
    int64_t kv_tokens = 0;
    for (size_t i = 0; i < large->kv->steps.size(); ++i) kv_tokens += large->kv->steps[i].nPrefill + large->kv->steps[i].nDecode;
    qInfo("large KV trace: %zu steps, %lld tokens, %zu tree nodes, %zu requests (%lld ms)", large->kv->steps.size(),
          static_cast<long long>(kv_tokens), large->kv->tree.size(), large->kv->requests.size(),
          static_cast<long long>(kv_timer.elapsed()));
    QVERIFY(kv_tokens >= 100000);
    m_large = large;
}

bool TestInspectorWidget::skipWithoutGl() { return !m_gl; }

std::unique_ptr<ImGuiWidget> TestInspectorWidget::makeWidget() {
    auto w = std::make_unique<ImGuiWidget>();
    w->addPanel(std::make_unique<LatencyPanel>());
    w->addPanel(std::make_unique<TokensPanel>());
    w->addPanel(std::make_unique<ModelPanel>());
    auto tok = std::make_unique<TokenizerPanel>();
    w->addPanel(std::move(tok));
    w->addPanel(std::make_unique<KvCachePanel>());
    auto tree = std::make_unique<PrefixTreePanel>();
    tree->selectNode(1);  // the details view too (node ids start at 1)
    w->addPanel(std::move(tree));
    w->addPanel(std::make_unique<SpecPanel>());
    w->addPanel(std::make_unique<BatchingPanel>());
    w->resize(1000, 700);
    return w;
}

std::shared_ptr<const InspectorSnapshot> TestInspectorWidget::snapshotFor(const QString & kind) {
    if (kind == "typical") return m_typical;
    if (kind == "large") return m_large;
    return std::make_shared<InspectorSnapshot>();
}

void TestInspectorWidget::panelsRender_data() {
    QTest::addColumn<QString>("panel");
    QTest::addColumn<QString>("data");
    for (const char * panel : {"Latency", "Tokens", "Model", "Tokenizer", "KV cache", "Prefix tree", "Speculative", "Batching"})
        for (const char * data : {"empty", "typical", "large"}) QTest::addRow("%s %s", panel, data) << panel << data;
}

void TestInspectorWidget::panelsRender() {
    if (skipWithoutGl()) QSKIP("QOpenGLWidget needs a display (run under xvfb-run)");
    QFETCH(QString, panel);
    QFETCH(QString, data);
    auto w = makeWidget();
    w->setSnapshot(snapshotFor(data));
    const int index = w->panelIndex(panel);
    QVERIFY(index >= 0);
    if (panel == "Tokenizer" && data == "large") {
        std::string text;
        for (int i = 0; i < 3000; ++i) text += "The quick brown fox " + std::to_string(i) + " jumps.\n";
        static_cast<TokenizerPanel *>(w->panel(index))->setText(text);
    }
    w->show();
    QVERIFY(QTest::qWaitForWindowExposed(w.get()));
    QVERIFY2(w->isGlReady(), "the renderer did not initialise");
    const QImage image = w->grabPanel(index);
    QVERIFY(!image.isNull());
    QCOMPARE(image.size(), w->size() * w->devicePixelRatio());
    QCOMPARE(w->currentPanel(), index);

    // Hover across the panel (tooltips), scroll, click: no asserts.
    for (int y = 60; y < w->height(); y += 220) {
        for (int x = 40; x < w->width(); x += 320) {
            QTest::mouseMove(w.get(), QPoint(x, y));
            w->grabFramebuffer();
        }
    }
    QWheelEvent wheel(QPointF(500, 500), w->mapToGlobal(QPointF(500, 500)), QPoint(), QPoint(0, -360), Qt::NoButton,
                      Qt::NoModifier, Qt::NoScrollPhase, false);
    QCoreApplication::sendEvent(w.get(), &wheel);
    w->grabFramebuffer();
    QTest::mouseClick(w.get(), Qt::LeftButton, {}, QPoint(300, 250));
    w->grabFramebuffer();

    const QImage after = w->grabPanel(index);
    const int ink = inkPixels(image);
    const int total = image.width() * image.height();
    if (!qEnvironmentVariableIsEmpty("GLASSBOX_SCREENSHOT_DIR")) {
        const QDir dir(qEnvironmentVariable("GLASSBOX_SCREENSHOT_DIR"));
        image.save(dir.filePath(QString("%1-%2.png").arg(panel.toLower().replace(' ', '-'), data)));
    }
    qInfo("%s %s: %d of %d pixels drawn (%.1f%%), device pixel ratio %.1f", qPrintable(panel), qPrintable(data), ink,
          total, 100.0 * ink / total, w->devicePixelRatioF());
    // Tabs and at least a message; with data, much more.
    QVERIFY2(ink > total / 200, qPrintable(QString("ink %1").arg(ink)));
    if (data == "empty") {
        m_emptyInk[panel] = ink;
    } else if (m_emptyInk.contains(panel)) {  // the rows run empty, typical, large
        const int empty_ink = m_emptyInk[panel];
        if (panel != "Tokenizer" || data == "large")  // the playground has its own text even without a snapshot model
            QVERIFY2(ink > 2 * empty_ink, qPrintable(QString("ink %1 vs empty %2").arg(ink).arg(empty_ink)));
    }
    QVERIFY(inkPixels(after) > total / 200);
}

void TestInspectorWidget::clickTogglesTreeNodeAndTypingEdits() {
    if (skipWithoutGl()) QSKIP("QOpenGLWidget needs a display (run under xvfb-run)");
    ImGuiWidget w;
    auto probe_owner = std::make_unique<ProbePanel>();
    ProbePanel * probe = probe_owner.get();
    w.addPanel(std::move(probe_owner));
    w.resize(600, 400);
    w.show();
    QVERIFY(QTest::qWaitForWindowExposed(&w));
    w.grabPanel(0);
    QVERIFY(!probe->isOpen);
    QVERIFY(probe->nodeCenter.y() > 0);

    // Press and release arrive before any frame: both must still reach ImGui.
    QTest::mouseClick(&w, Qt::LeftButton, {}, probe->nodeCenter);
    for (int i = 0; i < 4; ++i) w.grabFramebuffer();
    QVERIFY(probe->isOpen);
    QTest::mouseClick(&w, Qt::LeftButton, {}, probe->nodeCenter);
    for (int i = 0; i < 4; ++i) w.grabFramebuffer();
    QVERIFY(!probe->isOpen);

    // Click into the text field and type; Backspace edits.
    QTest::mouseClick(&w, Qt::LeftButton, {}, probe->editCenter);
    for (int i = 0; i < 3; ++i) w.grabFramebuffer();
    QTest::keyClicks(&w, "glass box");
    QTest::keyClick(&w, Qt::Key_Backspace);
    QTest::keyClick(&w, Qt::Key_X);
    // One change per key per frame: each repeated key waits for the next frame.
    for (int i = 0; i < 100 && w.hasPendingInput(); ++i) w.grabFramebuffer();
    QVERIFY(!w.hasPendingInput());
    w.grabFramebuffer();
    QCOMPARE(QString::fromStdString(probe->text), QStringLiteral("glass box"));
    // The frames were driven by grabFramebuffer; the queue must be drained.
    const int before = probe->draws;
    w.grabFramebuffer();
    QCOMPARE(probe->draws, before + 1);
}

void TestInspectorWidget::idleDoesNotRedrawButPublishesDo() {
    if (skipWithoutGl()) QSKIP("QOpenGLWidget needs a display (run under xvfb-run)");
    SnapshotRing ring;
    auto w = makeWidget();
    w->setSnapshotSource(&ring);
    w->show();
    QVERIFY(QTest::qWaitForWindowExposed(w.get()));
    QTest::qWait(300);  // settle frames
    const quint64 settled = w->frameCount();
    QVERIFY(settled > 0);
    QTest::qWait(500);
    QCOMPARE(w->frameCount(), settled);  // idle: no frames

    // A producer thread publishes a burst; the GUI repaints (coalesced) and shows the latest.
    TraceRecorder rec(ring, TraceRecorderParams{0.0, 4, 20, {}});
    std::thread producer([&] {
        rec.beginRequest("burst");
        for (const auto & e : makeScriptedTokenEvents(ScriptedTraceParams{500, 3, 3, 10.0, 5.0, 1000, {}})) rec.onToken(e);
        rec.endRequest(GenerateResult{});
    });
    producer.join();
    QTRY_VERIFY(w->frameCount() > settled);
    QTRY_COMPARE(w->snapshot().get(), ring.latest().get());
    QTest::qWait(300);
    const quint64 frames = w->frameCount() - settled;
    qInfo("%llu publishes drew %llu frames", static_cast<unsigned long long>(rec.publishCount()),
          static_cast<unsigned long long>(frames));
    QVERIFY(frames < rec.publishCount());  // coalesced, not one frame per publish
    const quint64 after = w->frameCount();
    QTest::qWait(400);
    QCOMPARE(w->frameCount(), after);  // idle again
    w->setSnapshotSource(nullptr);
}

void TestInspectorWidget::frameTimeWithLargeHistory_data() {
    QTest::addColumn<QString>("panel");
    QTest::addColumn<QString>("data");
    for (const char * panel : {"Latency", "Tokens", "Model", "KV cache", "Prefix tree", "Speculative", "Batching"})
        for (const char * data : {"typical", "large"}) QTest::addRow("%s %s", panel, data) << panel << data;
}

// Not a pass/fail check: prints frame times for bench/NOTES.md.
void TestInspectorWidget::frameTimeWithLargeHistory() {
    if (skipWithoutGl()) QSKIP("QOpenGLWidget needs a display (run under xvfb-run)");
    QFETCH(QString, panel);
    QFETCH(QString, data);
    auto w = makeWidget();
    w->resize(1280, 800);
    w->setSnapshot(snapshotFor(data));
    w->show();
    QVERIFY(QTest::qWaitForWindowExposed(w.get()));
    w->grabPanel(w->panelIndex(panel));
    std::vector<double> build, total;
    for (int i = 0; i < 10; ++i) {
        QTest::mouseMove(w.get(), QPoint(200 + i * 50, 300));  // hover changes every frame
        QElapsedTimer t;
        t.start();
        w->grabFramebuffer();
        total.push_back(double(t.nsecsElapsed()) * 1e-6);
        build.push_back(w->lastFrameBuildMs());
    }
    size_t tokens = 0;
    for (const auto & r : snapshotFor(data)->requests) tokens = std::max(tokens, r->tokens.size());
    qInfo("BENCH panel=%s tokens=%zu build_ms=%.2f frame_ms=%.2f (%s)", qPrintable(panel), tokens, median(build),
          median(total), qPrintable(w->glInfo()));
}

QTEST_MAIN(TestInspectorWidget)
#include "tst_inspector_widget.moc"
