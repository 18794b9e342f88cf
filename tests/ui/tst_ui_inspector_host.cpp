// The inspector inside the app (InspectorHost over a fake engine): replies feed
// the Latency / Tokens panels and the KV panels (the Session's prompt counts),
// "Save run" lands in the store's perf_runs table, a run exports as JSON and
// CSV, and the current panel saves as a PNG. Needs OpenGL (xvfb-run).
#include "fake_backend.h"
#include "inspector_dock.h"
#include "inspector_host.h"
#include "ui_test_util.h"

#include "inspector/imgui_widget.h"
#include "inspector/kv_trace.h"

#include <QImage>
#include <QJsonArray>
#include <QJsonDocument>

class TestUiInspectorHost : public QObject {
    Q_OBJECT
private slots:
    void recordsSavesAndExports()
    {
        if (QGuiApplication::platformName() == QLatin1String("offscreen"))
            QSKIP("the inspector needs OpenGL (run under xvfb-run)");
        QTemporaryDir dir;
        auto control = std::make_shared<FakeBackendControl>();
        TestApp app;
        QVERIFY(app.start(dir.path(), std::make_unique<FakeBackend>(control)));
        QVERIFY(app.loadModel(touchFile(dir.filePath(QStringLiteral("fake.gguf")))));
        app.window->inspectorDock()->openPanel(QStringLiteral("KV cache"));
        QTRY_VERIFY(qobject_cast<InspectorHost *>(app.window->inspectorDock()->content()));
        auto *host = qobject_cast<InspectorHost *>(app.window->inspectorDock()->content());
        gb::ui::ImGuiWidget *w = host->imgui();
        QCOMPARE(w->currentPanel(), w->panelIndex(QStringLiteral("KV cache")));

        QVERIFY(app.typeAndSend(QStringLiteral("first question")));
        QVERIFY(app.typeAndSend(QStringLiteral("second one")));
        // Two requests recorded; the KV view has their prompt counts (the fake
        // engine: 10 tokens per message, no reuse) and one step per token.
        QTRY_VERIFY(w->snapshot() && w->snapshot()->requests.size() == 2 && w->snapshot()->kv &&
                    w->snapshot()->kv->requests.size() == 2);
        const auto snap = w->snapshot();
        const gb::ui::KvTrace &kv = *snap->kv;
        QCOMPARE(kv.requests[0].promptTokens, 10);
        QCOMPARE(kv.requests[1].promptTokens, 30);  // user, assistant, user
        size_t tokens = 0;
        for (const auto &r : snap->requests)
            tokens += r->tokens.size();
        QCOMPARE(kv.steps.size(), tokens + 2);  // a prefill step per request, then one per token
        QVERIFY(kv.nPages > 0);

        // Save run -> the store.
        QSignalSpy saved(app.context->store(), &ChatStore::perfRunSaved);
        host->saveRun();
        QVERIFY(saved.wait(5000));
        const PerfRunRecord run = saved.first().at(1).value<PerfRunRecord>();
        QVERIFY(run.id > 0);
        QCOMPARE(run.data.value(QStringLiteral("kind")).toString(), QStringLiteral("glassbox inspector run"));
        QCOMPARE(run.data.value(QStringLiteral("requests")).toArray().size(), 2);
        QSignalSpy listed(app.context->store(), &ChatStore::perfRunsListed);
        app.context->store()->listPerfRuns();
        QVERIFY(listed.wait(5000));
        const auto runs = listed.first().at(1).value<QList<PerfRunRecord>>();
        QCOMPARE(runs.size(), 1);
        QCOMPARE(runs.first().data.value(QStringLiteral("kv")).toObject().value(QStringLiteral("steps")).toArray().size(),
                 qsizetype(kv.steps.size()));

        // Export and PNG.
        QCOMPARE(host->exportRun(dir.filePath(QStringLiteral("run.json"))), QString());
        QFile json(dir.filePath(QStringLiteral("run.json")));
        QVERIFY(json.open(QIODevice::ReadOnly));
        QCOMPARE(QJsonDocument::fromJson(json.readAll()).object().value(QStringLiteral("requests")).toArray().size(), 2);
        QCOMPARE(host->exportRun(dir.filePath(QStringLiteral("run.csv"))), QString());
        QVERIFY(QFile::exists(dir.filePath(QStringLiteral("run.steps.csv"))));
        QVERIFY(host->savePanelPng(dir.filePath(QStringLiteral("panel.png"))));
        const QImage png(dir.filePath(QStringLiteral("panel.png")));
        QVERIFY(!png.isNull());
        QCOMPARE(png.size(), w->size() * w->devicePixelRatio());
    }
};

QTEST_MAIN(TestUiInspectorHost)
#include "tst_ui_inspector_host.moc"
