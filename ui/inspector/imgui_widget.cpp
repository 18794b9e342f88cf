// ImGuiWidget: ImGui context lifetime, Qt input -> ImGui 1.86 IO, frame pacing
// (draw only when something changed), fonts for the device pixel ratio.
#include "imgui_widget.h"

#include "imgui_renderer.h"
#include "snapshot_ring.h"

#include <imgui.h>

#include <QClipboard>
#include <QFile>
#include <QGuiApplication>
#include <QKeyEvent>
#include <QMouseEvent>
#include <QOpenGLContext>
#include <QOpenGLFunctions>
#include <QPointer>
#include <QTimer>
#include <QWheelEvent>

#include <algorithm>
#include <atomic>
#include <mutex>

namespace gb::ui {

// Shared between the widget and a ring's listener (which runs on producer
// threads): the widget clears `widget` under the mutex before it dies.
struct WakeState {
    std::mutex mutex;
    ImGuiWidget * widget = nullptr;
    std::atomic<bool> pending{false};
};

namespace {

// Makes a context current for a scope, restoring the previous one.
class ContextScope {
  public:
    explicit ContextScope(ImGuiContext * ctx) : m_prev(ImGui::GetCurrentContext()) { ImGui::SetCurrentContext(ctx); }
    ~ContextScope() { ImGui::SetCurrentContext(m_prev); }
  private:
    ImGuiContext * m_prev;
};

// Our indices into io.KeysDown[] (letters use their ASCII code).
enum KeyIndex {
    KeyTab = 1, KeyLeft, KeyRight, KeyUp, KeyDown, KeyPageUp, KeyPageDown, KeyHome, KeyEnd,
    KeyInsert, KeyDelete, KeyBackspace, KeySpace, KeyEnter, KeyEscape, KeyKeypadEnter,
};

int keyIndex(const QKeyEvent * e) {
    const int k = e->key();
    if (k >= Qt::Key_A && k <= Qt::Key_Z) return 'A' + (k - Qt::Key_A);
    switch (k) {
    case Qt::Key_Tab: case Qt::Key_Backtab: return KeyTab;
    case Qt::Key_Left: return KeyLeft;
    case Qt::Key_Right: return KeyRight;
    case Qt::Key_Up: return KeyUp;
    case Qt::Key_Down: return KeyDown;
    case Qt::Key_PageUp: return KeyPageUp;
    case Qt::Key_PageDown: return KeyPageDown;
    case Qt::Key_Home: return KeyHome;
    case Qt::Key_End: return KeyEnd;
    case Qt::Key_Insert: return KeyInsert;
    case Qt::Key_Delete: return KeyDelete;
    case Qt::Key_Backspace: return KeyBackspace;
    case Qt::Key_Space: return KeySpace;
    case Qt::Key_Return: return KeyEnter;
    case Qt::Key_Enter: return (e->modifiers() & Qt::KeypadModifier) ? KeyKeypadEnter : KeyEnter;
    case Qt::Key_Escape: return KeyEscape;
    default: return -1;
    }
}

void setupKeyMap(ImGuiIO & io) {
    io.KeyMap[ImGuiKey_Tab] = KeyTab;
    io.KeyMap[ImGuiKey_LeftArrow] = KeyLeft;
    io.KeyMap[ImGuiKey_RightArrow] = KeyRight;
    io.KeyMap[ImGuiKey_UpArrow] = KeyUp;
    io.KeyMap[ImGuiKey_DownArrow] = KeyDown;
    io.KeyMap[ImGuiKey_PageUp] = KeyPageUp;
    io.KeyMap[ImGuiKey_PageDown] = KeyPageDown;
    io.KeyMap[ImGuiKey_Home] = KeyHome;
    io.KeyMap[ImGuiKey_End] = KeyEnd;
    io.KeyMap[ImGuiKey_Insert] = KeyInsert;
    io.KeyMap[ImGuiKey_Delete] = KeyDelete;
    io.KeyMap[ImGuiKey_Backspace] = KeyBackspace;
    io.KeyMap[ImGuiKey_Space] = KeySpace;
    io.KeyMap[ImGuiKey_Enter] = KeyEnter;
    io.KeyMap[ImGuiKey_Escape] = KeyEscape;
    io.KeyMap[ImGuiKey_KeyPadEnter] = KeyKeypadEnter;
    io.KeyMap[ImGuiKey_A] = 'A';
    io.KeyMap[ImGuiKey_C] = 'C';
    io.KeyMap[ImGuiKey_V] = 'V';
    io.KeyMap[ImGuiKey_X] = 'X';
    io.KeyMap[ImGuiKey_Y] = 'Y';
    io.KeyMap[ImGuiKey_Z] = 'Z';
}

int mouseButtonIndex(Qt::MouseButton b) {
    switch (b) {
    case Qt::LeftButton: return 0;
    case Qt::RightButton: return 1;
    case Qt::MiddleButton: return 2;
    case Qt::BackButton: return 3;
    case Qt::ForwardButton: return 4;
    default: return -1;
    }
}

const char * clipboardGet(void * user) {
    auto * w = static_cast<QByteArray *>(user);
    *w = QGuiApplication::clipboard()->text().toUtf8();
    return w->constData();
}

void clipboardSet(void *, const char * text) { QGuiApplication::clipboard()->setText(QString::fromUtf8(text)); }

}  // namespace

ImGuiWidget::ImGuiWidget(QWidget * parent)
    : QOpenGLWidget(parent), m_renderer(std::make_unique<ImGuiRenderer>()), m_wake(std::make_shared<WakeState>()) {
    m_wake->widget = this;
    setFocusPolicy(Qt::StrongFocus);
    setMouseTracking(true);
    setAttribute(Qt::WA_InputMethodEnabled, false);
    setMinimumSize(200, 150);

    ImGuiContext * prev = ImGui::GetCurrentContext();
    m_context = ImGui::CreateContext();
    ImGui::SetCurrentContext(m_context);
    ImGuiIO & io = ImGui::GetIO();
    io.IniFilename = nullptr;  // no imgui.ini next to the app
    io.LogFilename = nullptr;
    io.ConfigInputTextCursorBlink = false;  // a blinking cursor would need frames while idle
    io.ConfigFlags |= ImGuiConfigFlags_NavEnableKeyboard;
    io.BackendFlags |= ImGuiBackendFlags_RendererHasVtxOffset | ImGuiBackendFlags_HasMouseCursors;
    io.BackendPlatformName = "glassbox-qt";
    io.BackendRendererName = "glassbox-qopengl";
    io.SetClipboardTextFn = clipboardSet;
    io.GetClipboardTextFn = clipboardGet;
    io.ClipboardUserData = &m_clipboard;
    setupKeyMap(io);
    ImGui::StyleColorsDark();
    ImGuiStyle & style = ImGui::GetStyle();
    style.WindowRounding = 0.0f;
    style.FrameRounding = 3.0f;
    style.TabRounding = 3.0f;
    ImGui::SetCurrentContext(prev);
    m_clock.start();
}

ImGuiWidget::~ImGuiWidget() {
    {
        std::lock_guard lock(m_wake->mutex);
        m_wake->widget = nullptr;
    }
    if (m_ring) m_ring->setListener({});
    if (m_glReady) {
        makeCurrent();
        m_renderer->destroy();
        doneCurrent();
    }
    m_panels.clear();
    ImGuiContext * prev = ImGui::GetCurrentContext();
    ImGui::DestroyContext(m_context);
    if (prev != m_context) ImGui::SetCurrentContext(prev);
}

void ImGuiWidget::addPanel(std::unique_ptr<InspectorPanel> panel) {
    m_panels.push_back(std::move(panel));
    scheduleFrame();
}

InspectorPanel * ImGuiWidget::panel(int index) const {
    return index >= 0 && index < panelCount() ? m_panels[size_t(index)].get() : nullptr;
}

int ImGuiWidget::panelIndex(const QString & title) const {
    for (int i = 0; i < panelCount(); ++i)
        if (title.compare(QString::fromUtf8(m_panels[size_t(i)]->title()), Qt::CaseInsensitive) == 0) return i;
    return -1;
}

void ImGuiWidget::setCurrentPanel(int index) {
    if (index < 0 || index >= panelCount()) return;
    m_requestedPanel = index;
    if (index != m_current) {
        m_current = index;
        emit currentPanelChanged(index);
    }
    scheduleFrame();
}

void ImGuiWidget::setTabsVisible(bool visible) {
    m_tabsVisible = visible;
    m_requestedPanel = m_current;
    scheduleFrame();
}

void ImGuiWidget::setSnapshotSource(SnapshotRing * ring) {
    if (m_ring) m_ring->setListener({});
    m_ring = ring;
    if (!ring) return;
    std::weak_ptr<WakeState> weak = m_wake;
    ring->setListener([weak] {
        auto wake = weak.lock();
        if (!wake || wake->pending.exchange(true)) return;  // a repaint is already queued
        std::lock_guard lock(wake->mutex);
        if (wake->widget)
            QMetaObject::invokeMethod(wake->widget, [w = wake->widget] { w->onSnapshotPublished(); }, Qt::QueuedConnection);
    });
    onSnapshotPublished();
}

void ImGuiWidget::onSnapshotPublished() {
    m_wake->pending.store(false);
    if (m_ring) {
        auto latest = m_ring->latest();
        if (latest && latest != m_snapshot) {
            m_snapshot = std::move(latest);
            scheduleFrame();
        }
    }
}

void ImGuiWidget::setSnapshot(std::shared_ptr<const InspectorSnapshot> snapshot) {
    m_snapshot = std::move(snapshot);
    scheduleFrame();
}

void ImGuiWidget::scheduleFrame() {
    m_settleFrames = std::max(m_settleFrames, 2);
    update();
}

QImage ImGuiWidget::grabPanel(int index, int frames) {
    setCurrentPanel(index);
    QImage image;
    for (int i = 0; i < std::max(frames, 1); ++i) image = grabFramebuffer();
    return image;
}

bool ImGuiWidget::savePng(const QString & path) { return grabFramebuffer().save(path, "PNG"); }

bool ImGuiWidget::savePanelPng(int index, const QString & path) {
    const QImage image = grabPanel(index);
    return !image.isNull() && image.save(path, "PNG");
}

// --- GL ---------------------------------------------------------------------

void ImGuiWidget::initializeGL() {
    QOpenGLContext * ctx = context();
    const QSurfaceFormat f = ctx->format();
    auto * gl = ctx->functions();
    m_glInfo = QStringLiteral("%1 %2.%3 %4: %5")
                   .arg(ctx->isOpenGLES() ? "GLES" : "GL")
                   .arg(f.majorVersion())
                   .arg(f.minorVersion())
                   .arg(f.profile() == QSurfaceFormat::CoreProfile ? "core" : "compat")
                   .arg(QString::fromLatin1(reinterpret_cast<const char *>(gl->glGetString(GL_RENDERER))));
    if (m_renderer->isInitialized()) m_renderer->destroy();  // the widget was re-parented: new context
    m_glReady = m_renderer->initialize();
    if (!m_glReady) qWarning("inspector: shader setup failed: %s", qPrintable(m_renderer->log()));
    m_fontDpr = 0;  // the font texture belongs to the old context, if any
}

void ImGuiWidget::resizeGL(int, int) { m_settleFrames = std::max(m_settleFrames, 2); }

void ImGuiWidget::buildFonts() {
    const qreal dpr = devicePixelRatioF();
    if (dpr == m_fontDpr) return;
    ImGuiIO & io = ImGui::GetIO();
    io.Fonts->Clear();
    static const ImWchar kRanges[] = {
        0x0020, 0x024F,  // Latin, Latin-1, Latin Extended
        0x0370, 0x03FF,  // Greek (σ)
        0x2000, 0x206F,  // general punctuation (… ‹ ›)
        0x2190, 0x21FF,  // arrows (↵ →)
        0x2400, 0x243F,  // control pictures (␊ ␉)
        0x2580, 0x25FF,  // blocks and shapes (▁ used by SentencePiece, ■)
        0,
    };
    // Rasterise at device pixels and scale back, so text stays crisp on high-DPI screens.
    const float size = 14.0f;
    ImFontConfig cfg;
    cfg.OversampleH = 2;
    cfg.OversampleV = 1;
    static const char * kFontPath = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";
    ImFont * font = nullptr;
    if (QFile::exists(QString::fromLatin1(kFontPath)))
        font = io.Fonts->AddFontFromFileTTF(kFontPath, float(size * dpr), &cfg, kRanges);
    if (!font) {
        ImFontConfig def;
        def.SizePixels = float(13.0 * dpr);
        io.Fonts->AddFontDefault(&def);
    }
    io.FontGlobalScale = float(1.0 / dpr);
    m_renderer->uploadFontAtlas(io.Fonts);
    m_fontDpr = dpr;
}

void ImGuiWidget::paintGL() {
    auto * gl = context()->functions();
    gl->glClearColor(0.08f, 0.08f, 0.09f, 1.0f);
    gl->glClear(GL_COLOR_BUFFER_BIT);
    if (!m_glReady) return;

    ContextScope scope(m_context);
    QElapsedTimer t;
    t.start();
    buildFonts();
    ImGuiIO & io = ImGui::GetIO();
    applyInput();
    const qreal dpr = devicePixelRatioF();
    io.DisplaySize = ImVec2(float(width()), float(height()));
    io.DisplayFramebufferScale = ImVec2(float(dpr), float(dpr));
    const qint64 now = m_clock.nsecsElapsed();
    io.DeltaTime = m_lastFrameNs == 0 ? 1.0f / 60.0f : std::max(float(double(now - m_lastFrameNs) * 1e-9), 1e-4f);
    m_lastFrameNs = now;

    ImGui::NewFrame();
    drawPanels();
    ImGui::Render();
    m_lastBuildMs = double(t.nsecsElapsed()) * 1e-6;
    t.restart();
    m_renderer->render(ImGui::GetDrawData());
    m_lastRenderMs = double(t.nsecsElapsed()) * 1e-6;
    m_wantKeyboard = io.WantCaptureKeyboard || io.WantTextInput;
    applyCursor();
    ++m_frameCount;

    bool animate = false;
    for (const auto & p : m_panels) animate |= p->wantsAnimation();
    if (m_settleFrames > 0) --m_settleFrames;
    if (!m_input.empty() || m_settleFrames > 0 || animate) {
        if (!m_frameScheduled) {  // not update() from inside paintGL: pace at ~60 Hz
            m_frameScheduled = true;
            QTimer::singleShot(animate ? 16 : 0, this, [this] {
                m_frameScheduled = false;
                update();
            });
        }
    }
    emit frameRendered();
}

void ImGuiWidget::drawPanels() {
    const ImGuiIO & io = ImGui::GetIO();
    static const InspectorSnapshot kEmpty;
    const InspectorSnapshot & snap = m_snapshot ? *m_snapshot : kEmpty;
    ImGui::SetNextWindowPos(ImVec2(0, 0));
    ImGui::SetNextWindowSize(io.DisplaySize);
    const ImGuiWindowFlags flags = ImGuiWindowFlags_NoDecoration | ImGuiWindowFlags_NoMove |
                                   ImGuiWindowFlags_NoSavedSettings | ImGuiWindowFlags_NoBringToFrontOnFocus;
    ImGui::Begin("##inspector", nullptr, flags);
    if (m_panels.empty()) {
        ImGui::TextDisabled("No inspector panels.");
    } else if (!m_tabsVisible || m_panels.size() == 1) {
        InspectorPanel * p = m_panels[size_t(std::clamp(m_current, 0, panelCount() - 1))].get();
        ImGui::PushID(p);
        p->draw(snap);
        ImGui::PopID();
    } else if (ImGui::BeginTabBar("##panels")) {
        for (int i = 0; i < panelCount(); ++i) {
            InspectorPanel * p = m_panels[size_t(i)].get();
            const ImGuiTabItemFlags tab_flags = (i == m_requestedPanel) ? ImGuiTabItemFlags_SetSelected : 0;
            if (ImGui::BeginTabItem(p->title(), nullptr, tab_flags)) {
                if (m_requestedPanel < 0 && i != m_current) {  // the user clicked a tab
                    m_current = i;
                    emit currentPanelChanged(i);
                }
                ImGui::PushID(p);
                p->draw(snap);
                ImGui::PopID();
                ImGui::EndTabItem();
            }
        }
        ImGui::EndTabBar();
        m_requestedPanel = -1;
    }
    ImGui::End();
}

void ImGuiWidget::applyCursor() {
    const int cursor = ImGui::GetMouseCursor();
    if (cursor == m_lastCursor) return;
    m_lastCursor = cursor;
    Qt::CursorShape shape = Qt::ArrowCursor;
    switch (cursor) {
    case ImGuiMouseCursor_None: shape = Qt::BlankCursor; break;
    case ImGuiMouseCursor_TextInput: shape = Qt::IBeamCursor; break;
    case ImGuiMouseCursor_ResizeAll: shape = Qt::SizeAllCursor; break;
    case ImGuiMouseCursor_ResizeNS: shape = Qt::SizeVerCursor; break;
    case ImGuiMouseCursor_ResizeEW: shape = Qt::SizeHorCursor; break;
    case ImGuiMouseCursor_ResizeNESW: shape = Qt::SizeBDiagCursor; break;
    case ImGuiMouseCursor_ResizeNWSE: shape = Qt::SizeFDiagCursor; break;
    case ImGuiMouseCursor_Hand: shape = Qt::PointingHandCursor; break;
    case ImGuiMouseCursor_NotAllowed: shape = Qt::ForbiddenCursor; break;
    default: break;
    }
    setCursor(shape);
}

// --- input ------------------------------------------------------------------

void ImGuiWidget::queueInput(const InputEvent & e) {
    m_input.push_back(e);
    scheduleFrame();
}

// Applies queued events until one would change a mouse button or key that
// already changed in this frame; the rest wait for the next frame.
void ImGuiWidget::applyInput() {
    ImGuiIO & io = ImGui::GetIO();
    unsigned buttons_changed = 0;
    std::vector<int> keys_changed;
    while (!m_input.empty()) {
        const InputEvent & e = m_input.front();
        if (e.kind == InputEvent::Kind::MouseButton) {
            if (buttons_changed & (1u << e.code)) break;
            buttons_changed |= 1u << e.code;
            io.MouseDown[e.code] = e.down;
            io.MousePos = ImVec2(e.x, e.y);
        } else if (e.kind == InputEvent::Kind::Key) {
            if (std::find(keys_changed.begin(), keys_changed.end(), e.code) != keys_changed.end()) break;
            keys_changed.push_back(e.code);
            io.KeysDown[e.code] = e.down;
        } else if (e.kind == InputEvent::Kind::MousePos) {
            io.MousePos = ImVec2(e.x, e.y);
        } else if (e.kind == InputEvent::Kind::Wheel) {
            io.MouseWheelH += e.x;
            io.MouseWheel += e.y;
        } else if (e.kind == InputEvent::Kind::Char) {
            io.AddInputCharacterUTF16(ImWchar16(e.code));
        } else if (e.kind == InputEvent::Kind::Focus) {
            io.AddFocusEvent(e.down);
        }
        if (e.kind == InputEvent::Kind::Key || e.kind == InputEvent::Kind::MouseButton ||
            e.kind == InputEvent::Kind::Wheel) {
            io.KeyCtrl = e.mods & Qt::ControlModifier;
            io.KeyShift = e.mods & Qt::ShiftModifier;
            io.KeyAlt = e.mods & Qt::AltModifier;
            io.KeySuper = e.mods & Qt::MetaModifier;
        }
        m_input.pop_front();
    }
}

void ImGuiWidget::mousePressEvent(QMouseEvent * e) {
    const int b = mouseButtonIndex(e->button());
    if (b < 0) return;
    const QPointF p = e->position();
    queueInput({InputEvent::Kind::MouseButton, float(p.x()), float(p.y()), b, true, e->modifiers()});
}

void ImGuiWidget::mouseReleaseEvent(QMouseEvent * e) {
    const int b = mouseButtonIndex(e->button());
    if (b < 0) return;
    const QPointF p = e->position();
    queueInput({InputEvent::Kind::MouseButton, float(p.x()), float(p.y()), b, false, e->modifiers()});
}

// ImGui detects double clicks itself from press timing; Qt's double-click
// event replaces the second press.
void ImGuiWidget::mouseDoubleClickEvent(QMouseEvent * e) { mousePressEvent(e); }

void ImGuiWidget::mouseMoveEvent(QMouseEvent * e) {
    const QPointF p = e->position();
    queueInput({InputEvent::Kind::MousePos, float(p.x()), float(p.y()), 0, false, e->modifiers()});
}

void ImGuiWidget::leaveEvent(QEvent *) {
    queueInput({InputEvent::Kind::MousePos, -FLT_MAX, -FLT_MAX, 0, false, {}});
}

void ImGuiWidget::wheelEvent(QWheelEvent * e) {
    // One notch (120 units) scrolls one ImGui wheel step.
    const QPoint d = e->angleDelta();
    queueInput({InputEvent::Kind::Wheel, float(d.x()) / 120.0f, float(d.y()) / 120.0f, 0, false, e->modifiers()});
    e->accept();
}

void ImGuiWidget::keyPressEvent(QKeyEvent * e) {
    const int k = keyIndex(e);
    if (k >= 0) queueInput({InputEvent::Kind::Key, 0, 0, k, true, e->modifiers()});
    if (!(e->modifiers() & (Qt::ControlModifier | Qt::MetaModifier))) {
        for (QChar c : e->text())
            if (c.unicode() >= 0x20 && c.unicode() != 0x7f)
                queueInput({InputEvent::Kind::Char, 0, 0, int(c.unicode()), false, e->modifiers()});
    }
    if (m_wantKeyboard || k < 0) e->accept();
    else e->ignore();  // let window shortcuts through when ImGui does not want keys
}

void ImGuiWidget::keyReleaseEvent(QKeyEvent * e) {
    if (e->isAutoRepeat()) return;  // held keys repeat in ImGui itself
    const int k = keyIndex(e);
    if (k >= 0) queueInput({InputEvent::Kind::Key, 0, 0, k, false, e->modifiers()});
}

void ImGuiWidget::focusInEvent(QFocusEvent *) { queueInput({InputEvent::Kind::Focus, 0, 0, 0, true, {}}); }
void ImGuiWidget::focusOutEvent(QFocusEvent *) { queueInput({InputEvent::Kind::Focus, 0, 0, 0, false, {}}); }

bool ImGuiWidget::focusNextPrevChild(bool next) {
    if (m_wantKeyboard) return false;  // Tab goes to ImGui
    return QOpenGLWidget::focusNextPrevChild(next);
}

}  // namespace gb::ui
