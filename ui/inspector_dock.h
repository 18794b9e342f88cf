// InspectorDock: the "Inspector" dock of the main window. Its content comes
// from createInspectorContent() (inspector_dock.cpp), the one place where the
// Dear ImGui inspector (ui/inspector/, glassbox_ui_inspector, through
// InspectorHost) plugs in; builds without it get a placeholder.
// `--inspector PANEL` is kept as requestedPanel() and selects that panel.
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
    void replaceContent();

    AppContext *m_context;
    QString m_requestedPanel;
};

// Builds the dock's content: the ImGui inspector (InspectorHost) showing
// requestedPanel first, or a placeholder when the build has no inspector.
QWidget *createInspectorContent(AppContext *context, const QString &requestedPanel, QWidget *parent);
