// InspectorHost: the Dear ImGui inspector (glassbox_ui_inspector) inside the
// app's Inspector dock. Feeds its TraceRecorder from the engine worker's
// signals on the GUI thread (requests, tokens with their speculative origin,
// results with SpecStats, queue time); the KV cache, Prefix tree and Batching
// panels from the batching engine's steps (a KvRecorder on the engine thread,
// whose immutable snapshots are handed to the GUI thread) or, for replies on
// the one-sequence Session, from its reuse counts; and
// reads the loaded model's GGUF summary on a worker thread for the Model and
// Tokenizer panels. A toolbar saves the run (the store's perf_runs table),
// exports it as JSON / CSV and saves the current panel as PNG.
// Built only when the inspector library is (GLASSBOX_HAVE_INSPECTOR).
#pragma once

#include "app_types.h"

#include <QWidget>

#include <memory>
#include <vector>

class ChatStore;
class EngineWorker;
class QLabel;

namespace gb::ui {
class ImGuiWidget;
class SnapshotRing;
class TraceRecorder;
class KvRecorder;
struct KvTrace;
struct InspectorSnapshot;
}  // namespace gb::ui

class InspectorHost : public QWidget {
    Q_OBJECT
public:
    // store: where "Save run" writes (null: the button is hidden).
    InspectorHost(EngineWorker *engine, QWidget *parent = nullptr, ChatStore *store = nullptr);
    ~InspectorHost() override;

    gb::ui::ImGuiWidget *imgui() const { return m_widget; }
    // The latest published snapshot (null: none yet); ->kv is the KV cache /
    // prefix tree / batching view.
    std::shared_ptr<const gb::ui::InspectorSnapshot> latestSnapshot() const;

public slots:
    // Shows the panel with this title (case-insensitive); false if there is none.
    bool openPanel(const QString &panel);
    // The run shown now (every request in the latest snapshot, the KV steps).
    void saveRun();                          // into the store
    QString exportRun(const QString &path);  // .json or .csv; "" or an error
    bool savePanelPng(const QString &path);  // the current panel

private:
    void onModelLoaded(const ModelInfo &info);

    void setStatus(const QString &text);

    EngineWorker *m_engine;
    ChatStore *m_store = nullptr;
    QLabel *m_status = nullptr;
    std::vector<double> m_times;   // token times of the request being recorded
    qint64 m_conversation = 0;
    int m_contextLength = 0;
    std::unique_ptr<gb::ui::SnapshotRing> m_ring;
    std::unique_ptr<gb::ui::TraceRecorder> m_recorder;
    // The KvRecorder, shared with the engine thread (behind its own mutex; it
    // outlives this widget while the engine still holds the observer).
    struct KvFeed;
    std::shared_ptr<KvFeed> m_kv;
    gb::ui::ImGuiWidget *m_widget = nullptr;
    quint64 m_request = 0;  // the engine request being recorded (0: none)
    QString m_modelPath;
};
