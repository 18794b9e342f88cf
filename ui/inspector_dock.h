// InspectorDock: the "Inspector" dock of the main window. Its content comes
// from createInspectorContent() (inspector_dock.cpp), the one place where the
// Dear ImGui inspector (ui/inspector/, glassbox_ui_inspector) plugs in; until
// then it holds a placeholder. `--inspector PANEL` is kept as requestedPanel().
#pragma once

#include <QDockWidget>

class AppContext;

class InspectorDock : public QDockWidget {
    Q_OBJECT
public:
    InspectorDock(AppContext *context, QWidget *parent = nullptr);

    // Opens the dock on a panel ("Tokens", "Latency", "Model", ...); the name is
    // kept for the inspector widget (which may not exist yet).
    void openPanel(const QString &panel);
    QString requestedPanel() const { return m_requestedPanel; }
    QWidget *content() const { return widget(); }

private:
    AppContext *m_context;
    QString m_requestedPanel;
};

// Builds the dock's content. The plug-in point for the ImGui inspector:
// return its QOpenGLWidget (fed from context's engine/controller signals) and
// show requestedPanel first. Returns a placeholder while it is not built in.
QWidget *createInspectorContent(AppContext *context, const QString &requestedPanel, QWidget *parent);
