// ConversationList: the sidebar. New chat, search (titles and message text,
// through the store), and per-conversation rename / pin / delete from the
// context menu or keys (F2, Delete). Selecting a row opens the conversation.
#pragma once

#include "app_types.h"

#include <QWidget>

class ChatController;
class QLineEdit;
class QListWidget;
class QListWidgetItem;
class QPushButton;
class QTimer;

class ConversationList : public QWidget {
    Q_OBJECT
public:
    explicit ConversationList(ChatController *controller, QWidget *parent = nullptr);

    QLineEdit *searchField() const { return m_search; }
    QListWidget *list() const { return m_list; }
    // Conversation ids in display order.
    QList<qint64> shownIds() const;
    bool isSearching() const;

public slots:
    void focusSearch();
    void startRename(qint64 conversationId);
    void togglePin(qint64 conversationId);
    // confirm: ask first (a non-blocking message box).
    void deleteConversation(qint64 conversationId, bool confirm = true);

private:
    void rebuild();
    void showRows(const QList<ConversationRecord> &rows, bool searchHits);
    void showContextMenu(const QPoint &pos);
    qint64 idOf(const QListWidgetItem *item) const;
    QListWidgetItem *itemFor(qint64 conversationId) const;
    bool eventFilter(QObject *watched, QEvent *event) override;

    ChatController *m_controller;
    QLineEdit *m_search = nullptr;
    QListWidget *m_list = nullptr;
    QPushButton *m_new = nullptr;
    QTimer *m_searchTimer = nullptr;
    QString m_lastQuery;
    bool m_updating = false;
    bool m_editing = false;  // a row is being renamed
};
