// ChatView: snapshot reconciliation and scrolling.
#include "chat_view.h"

#include "chat_controller.h"
#include "message_widget.h"

#include <QLabel>
#include <QScrollBar>
#include <QVBoxLayout>

ChatView::ChatView(ChatController *controller, QWidget *parent)
    : QScrollArea(parent)
    , m_controller(controller)
{
    setObjectName(QStringLiteral("chatView"));
    setAccessibleName(tr("Conversation"));
    setWidgetResizable(true);
    setFrameShape(QFrame::NoFrame);
    setHorizontalScrollBarPolicy(Qt::ScrollBarAlwaysOff);
    m_content = new QWidget;
    m_content->setBackgroundRole(QPalette::Base);
    m_content->setAutoFillBackground(true);
    m_layout = new QVBoxLayout(m_content);
    m_layout->setContentsMargins(0, 0, 0, 0);
    m_layout->setSpacing(1);
    m_empty = new QLabel(tr("Type a message below to start a conversation."), m_content);
    m_empty->setObjectName(QStringLiteral("emptyLabel"));
    m_empty->setAlignment(Qt::AlignCenter);
    m_empty->setWordWrap(true);
    m_empty->setForegroundRole(QPalette::PlaceholderText);
    m_empty->setMinimumHeight(120);
    m_layout->addWidget(m_empty);
    m_layout->addStretch(1);
    setWidget(m_content);

    QScrollBar *bar = verticalScrollBar();
    connect(bar, &QScrollBar::valueChanged, this,
            [this, bar](int value) { m_stickToBottom = value >= bar->maximum() - 4; });
    connect(bar, &QScrollBar::rangeChanged, this, [this, bar](int, int max) {
        if (m_stickToBottom)
            bar->setValue(max);
    });

    connect(m_controller, &ChatController::snapshotChanged, this, &ChatView::refresh);
    connect(m_controller, &ChatController::tokenReceived, this,
            [this](qint64 conversationId, qint64 messageId, const GeneratedToken &) {
                if (!m_tokenView || conversationId != m_controller->currentConversationId())
                    return;
                if (MessageWidget *w = widgetFor(messageId))
                    w->setTokens(m_controller->tokens(messageId));
            });
    refresh();
}

MessageWidget *ChatView::widgetFor(qint64 messageId) const
{
    for (MessageWidget *w : m_widgets)
        if (w->messageId() == messageId)
            return w;
    return nullptr;
}

void ChatView::setTokenView(bool on)
{
    m_tokenView = on;
    for (MessageWidget *w : std::as_const(m_widgets)) {
        if (on)
            w->setTokens(m_controller->tokens(w->messageId()));
        w->setTokenView(on);
    }
}

void ChatView::setOriginColours(bool on)
{
    m_originColours = on;
    for (MessageWidget *w : std::as_const(m_widgets))
        w->setOriginTint(on);
}

void ChatView::setEmptyText(const QString &text)
{
    m_empty->setText(text);
}

MessageWidget *ChatView::createWidget()
{
    auto *w = new MessageWidget(m_content);
    w->setTokenView(m_tokenView);
    w->setOriginTint(m_originColours);
    connect(w, &MessageWidget::editSubmitted, m_controller, &ChatController::editMessage);
    connect(w, &MessageWidget::regenerateRequested, m_controller, &ChatController::regenerate);
    connect(w, &MessageWidget::siblingRequested, m_controller, &ChatController::switchSibling);
    return w;
}

void ChatView::refresh()
{
    const ChatSnapshot s = m_controller->snapshot();
    if (s.conversation.id != m_conversationId) {
        m_conversationId = s.conversation.id;
        m_stickToBottom = true;
    }
    const bool busy = s.generation.active();
    const qint64 streaming = busy ? s.generation.messageId : 0;
    QList<MessageRecord> messages;
    for (const MessageRecord &m : s.messages)
        if (m.role != QLatin1String("system"))
            messages.append(m);

    // Keep the widgets of the common prefix; the rest of the path is new.
    int keep = 0;
    while (keep < m_widgets.size() && keep < messages.size() && m_widgets[keep]->messageId() == messages[keep].id)
        ++keep;
    while (m_widgets.size() > keep) {
        MessageWidget *w = m_widgets.takeLast();
        w->hide();
        w->deleteLater();
    }
    for (int i = 0; i < messages.size(); ++i) {
        const MessageRecord &m = messages[i];
        MessageWidget *w = nullptr;
        if (i < m_widgets.size()) {
            w = m_widgets[i];
        } else {
            w = createWidget();
            m_layout->insertWidget(m_layout->count() - 1, w);
            m_widgets.append(w);
        }
        if (m_tokenView && m.role == QLatin1String("assistant"))
            w->setTokens(m_controller->tokens(m.id));
        w->setMessage(m, m.id == streaming);
        w->setBusy(busy);
    }
    m_empty->setVisible(m_widgets.isEmpty() && !s.loading);
}
