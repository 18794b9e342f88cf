// InspectorDock and the inspector plug-in function.
#include "inspector_dock.h"

#include "app_context.h"

#include <QLabel>

#ifdef GLASSBOX_HAVE_INSPECTOR
#include "inspector_host.h"
#endif

QWidget *createInspectorContent(AppContext *context, const QString &requestedPanel, QWidget *parent)
{
#ifdef GLASSBOX_HAVE_INSPECTOR
    // The ImGui inspector, fed from the engine worker (glassbox_ui_inspector).
    auto *host = new InspectorHost(context->engine(), parent);
    if (!requestedPanel.isEmpty())
        host->openPanel(requestedPanel);
    return host;
#else
    Q_UNUSED(context);
#endif
    auto *label = new QLabel(parent);
    label->setObjectName(QStringLiteral("inspectorPlaceholder"));
    label->setAlignment(Qt::AlignCenter);
    label->setWordWrap(true);
    label->setForegroundRole(QPalette::PlaceholderText);
    QString text = QObject::tr("The inspector is not part of this build yet.");
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
    setWidget(createInspectorContent(m_context, m_requestedPanel, this));
}

void InspectorDock::openPanel(const QString &panel)
{
    m_requestedPanel = panel;
    QWidget *current = widget();
    // A content widget with an openPanel(QString) slot switches itself; the placeholder is rebuilt.
    if (current && current->metaObject()->indexOfMethod("openPanel(QString)") >= 0) {
        QMetaObject::invokeMethod(current, "openPanel", Q_ARG(QString, panel));
    } else {
        setWidget(createInspectorContent(m_context, m_requestedPanel, this));
        if (current)
            current->deleteLater();
    }
    show();
    raise();
}
