// InspectorHost: the Dear ImGui inspector (glassbox_ui_inspector) inside the
// app's Inspector dock. Feeds its TraceRecorder from the engine worker's
// signals on the GUI thread (requests, tokens, results) and reads the loaded
// model's GGUF summary on a worker thread for the Model and Tokenizer panels.
// Built only when the inspector library is (GLASSBOX_HAVE_INSPECTOR).
#pragma once

#include "app_types.h"

#include <QWidget>

#include <memory>

class EngineWorker;

namespace gb::ui {
class ImGuiWidget;
class SnapshotRing;
class TraceRecorder;
}  // namespace gb::ui

class InspectorHost : public QWidget {
    Q_OBJECT
public:
    InspectorHost(EngineWorker *engine, QWidget *parent = nullptr);
    ~InspectorHost() override;

    gb::ui::ImGuiWidget *imgui() const { return m_widget; }

public slots:
    // Shows the panel with this title (case-insensitive); false if there is none.
    bool openPanel(const QString &panel);

private:
    void onModelLoaded(const ModelInfo &info);

    EngineWorker *m_engine;
    std::unique_ptr<gb::ui::SnapshotRing> m_ring;
    std::unique_ptr<gb::ui::TraceRecorder> m_recorder;
    gb::ui::ImGuiWidget *m_widget = nullptr;
    quint64 m_request = 0;  // the engine request being recorded (0: none)
    QString m_modelPath;
};
