// InspectorDock and the inspector plug-in function.
#include "inspector_dock.h"

#include "app_context.h"

#include <QGuiApplication>
#include <QLabel>

#ifdef GLASSBOX_HAVE_INSPECTOR
#include "inspector_host.h"
#endif

QWidget *createInspectorContent(AppContext *context, const QString &requestedPanel, QWidget *parent)
{
    QString text = QObject::tr("The inspector is not part of this build.");
#ifdef GLASSBOX_HAVE_INSPECTOR
    // The ImGui inspector, fed from the engine worker (glassbox_ui_inspector). It
    // draws with OpenGL, which the offscreen and minimal platforms do not have.
    const QString platform = QGuiApplication::platformName();
    if (platform != QLatin1String("offscreen") && platform != QLatin1String("minimal")) {
        auto *host = new InspectorHost(context->engine(), parent, context->store());
        if (!requestedPanel.isEmpty())
            host->openPanel(requestedPanel);
        return host;
    }
    text = QObject::tr("The inspector needs a display with OpenGL (this one is \"%1\").").arg(platform);
#else
    Q_UNUSED(context);
#endif
    auto *label = new QLabel(parent);
    label->setObjectName(QStringLiteral("inspectorPlaceholder"));
    label->setAlignment(Qt::AlignCenter);
    label->setWordWrap(true);
    label->setForegroundRole(QPalette::PlaceholderText);
    if (!requestedPanel.isEmpty())
        text += QStringLiteral("\n") + QObject::tr("Requested panel: %1").arg(requestedPanel);
    label->setText(text);
    return label;
}

InspectorDock::InspectorDock(AppContext *context, QWidget *parent)
    : QDockWidget(tr("Inspector"), parent)
    , m_context(context)
{
    setObjectName(QStringLiteral("inspectorDock"));
    setAccessibleName(tr("Inspector"));
    setAllowedAreas(Qt::AllDockWidgetAreas);
    // The real content (an OpenGL widget) is made when the dock is first shown:
    // a hidden inspector costs nothing at start-up.
    auto *pending = new QWidget(this);
    pending->setObjectName(QStringLiteral("inspectorPending"));
    setWidget(pending);
    connect(this, &QDockWidget::visibilityChanged, this, [this](bool visible) {
        if (visible && widget() && widget()->objectName() == QLatin1String("inspectorPending"))
            replaceContent();
    });
}

void InspectorDock::replaceContent()
{
    QWidget *old = widget();
    setWidget(createInspectorContent(m_context, m_requestedPanel, this));
    if (old)
        old->deleteLater();
}

void InspectorDock::openPanel(const QString &panel)
{
    m_requestedPanel = panel;
    QWidget *current = widget();
    // A content widget with an openPanel(QString) slot switches itself; the placeholder is rebuilt.
    if (current && current->metaObject()->indexOfMethod("openPanel(QString)") >= 0)
        QMetaObject::invokeMethod(current, "openPanel", Q_ARG(QString, panel));
    else
        replaceContent();
    show();
    raise();
}
