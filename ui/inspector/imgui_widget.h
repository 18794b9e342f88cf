// A QOpenGLWidget that hosts one Dear ImGui context and draws inspector panels
// (as tabs) from the latest published snapshot. Qt input is queued and fed to
// ImGui's 1.86 input API one state change per frame, so fast clicks are never
// lost. Frames are drawn only on input, new snapshot data, resize, or while a
// panel animates: an idle inspector costs nothing.
#pragma once

#include "inspector_panel.h"
#include "snapshot.h"

#include <QElapsedTimer>
#include <QImage>
#include <QOpenGLWidget>

#include <deque>
#include <memory>
#include <vector>

struct ImGuiContext;

namespace gb::ui {

class ImGuiRenderer;
class SnapshotRing;
struct WakeState;

class ImGuiWidget : public QOpenGLWidget {
    Q_OBJECT
  public:
    explicit ImGuiWidget(QWidget * parent = nullptr);
    ~ImGuiWidget() override;

    void addPanel(std::unique_ptr<InspectorPanel> panel);
    int panelCount() const { return int(m_panels.size()); }
    InspectorPanel * panel(int index) const;
    int panelIndex(const QString & title) const;  // case-insensitive, -1 if none
    int currentPanel() const { return m_current; }
    void setCurrentPanel(int index);
    void setTabsVisible(bool visible);  // false: only the current panel, full size

    // Follows a ring: repaints (coalesced, on the GUI thread) when producers
    // publish. The ring must outlive the widget or be detached with nullptr.
    void setSnapshotSource(SnapshotRing * ring);
    void setSnapshot(std::shared_ptr<const InspectorSnapshot> snapshot);
    std::shared_ptr<const InspectorSnapshot> snapshot() const { return m_snapshot; }

    // Renders `frames` frames (layout settles in ImGui after a frame or two)
    // and returns the last one. The widget must have a size (it may be hidden).
    QImage grabPanel(int index, int frames = 3);
    bool savePng(const QString & path);  // the widget as shown
    bool savePanelPng(int index, const QString & path);

    ImGuiContext * imguiContext() const { return m_context; }
    quint64 frameCount() const { return m_frameCount; }
    double lastFrameBuildMs() const { return m_lastBuildMs; }   // NewFrame..Render (CPU)
    double lastFrameRenderMs() const { return m_lastRenderMs; } // GL submission (CPU side)
    bool isGlReady() const { return m_glReady; }
    bool hasPendingInput() const { return !m_input.empty(); }  // events waiting for the next frame
    QString glInfo() const { return m_glInfo; }

  signals:
    void frameRendered();
    void currentPanelChanged(int index);

  protected:
    void initializeGL() override;
    void resizeGL(int w, int h) override;
    void paintGL() override;

    void mousePressEvent(QMouseEvent * e) override;
    void mouseReleaseEvent(QMouseEvent * e) override;
    void mouseDoubleClickEvent(QMouseEvent * e) override;
    void mouseMoveEvent(QMouseEvent * e) override;
    void wheelEvent(QWheelEvent * e) override;
    void keyPressEvent(QKeyEvent * e) override;
    void keyReleaseEvent(QKeyEvent * e) override;
    void focusInEvent(QFocusEvent * e) override;
    void focusOutEvent(QFocusEvent * e) override;
    void leaveEvent(QEvent * e) override;
    bool focusNextPrevChild(bool next) override;

  private:
    struct InputEvent {
        enum class Kind { MousePos, MouseButton, Wheel, Key, Char, Focus } kind;
        float x = 0, y = 0;
        int   code = 0;        // mouse button or key index
        bool  down = false;
        Qt::KeyboardModifiers mods;
    };
    void queueInput(const InputEvent & e);
    void applyInput();
    void buildFonts();
    void drawPanels();
    void scheduleFrame();
    void onSnapshotPublished();
    void applyCursor();

    ImGuiContext * m_context = nullptr;
    std::unique_ptr<ImGuiRenderer> m_renderer;
    std::vector<std::unique_ptr<InspectorPanel>> m_panels;
    int m_current = 0;
    int m_requestedPanel = 0;
    bool m_tabsVisible = true;

    std::shared_ptr<const InspectorSnapshot> m_snapshot;
    SnapshotRing * m_ring = nullptr;
    std::shared_ptr<WakeState> m_wake;

    std::deque<InputEvent> m_input;
    int m_settleFrames = 2;
    bool m_frameScheduled = false;
    bool m_glReady = false;
    bool m_wantKeyboard = false;
    qreal m_fontDpr = 0;
    QElapsedTimer m_clock;
    qint64 m_lastFrameNs = 0;
    quint64 m_frameCount = 0;
    double m_lastBuildMs = 0;
    double m_lastRenderMs = 0;
    int m_lastCursor = -2;
    QByteArray m_clipboard;
    QString m_glInfo;
};

}  // namespace gb::ui
