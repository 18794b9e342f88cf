// ChatView: the messages of the current conversation's active branch, one
// MessageWidget each, kept in step with ChatController snapshots (widgets
// are reused by message id, so streaming only updates the last one). Sticks
// to the bottom while a reply streams unless the user scrolled up.
#pragma once

#include "app_types.h"

#include <QScrollArea>

class ChatController;
class MessageWidget;
class QLabel;
class QVBoxLayout;

class ChatView : public QScrollArea {
    Q_OBJECT
public:
    explicit ChatView(ChatController *controller, QWidget *parent = nullptr);

    QList<MessageWidget *> messageWidgets() const { return m_widgets; }
    MessageWidget *widgetFor(qint64 messageId) const;
    bool tokenView() const { return m_tokenView; }

public slots:
    void setTokenView(bool on);
    // Tokens tinted by origin (accepted draft, correction, bonus) instead of probability.
    void setOriginColours(bool on);
    bool originColours() const { return m_originColours; }
    void setEmptyText(const QString &text);
    void refresh();  // from the controller's snapshot

private:
    MessageWidget *createWidget();

    ChatController *m_controller;
    QWidget *m_content = nullptr;
    QVBoxLayout *m_layout = nullptr;
    QLabel *m_empty = nullptr;
    QList<MessageWidget *> m_widgets;
    qint64 m_conversationId = -1;
    bool m_tokenView = false;
    bool m_originColours = false;
    bool m_stickToBottom = true;
};
