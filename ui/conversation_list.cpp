// ConversationList: rows from ChatController's list or search hits, inline
// rename (the row becomes editable), pin and delete.
#include "conversation_list.h"

#include "chat_controller.h"

#include <QKeyEvent>
#include <QLineEdit>
#include <QListWidget>
#include <QMenu>
#include <QMessageBox>
#include <QPushButton>
#include <QTimer>
#include <QVBoxLayout>

namespace {
constexpr int kIdRole = Qt::UserRole + 1;
constexpr int kTitleRole = Qt::UserRole + 2;
constexpr int kPinnedRole = Qt::UserRole + 3;
}  // namespace

ConversationList::ConversationList(ChatController *controller, QWidget *parent)
    : QWidget(parent)
    , m_controller(controller)
{
    auto *layout = new QVBoxLayout(this);
    layout->setContentsMargins(6, 6, 6, 6);
    m_new = new QPushButton(tr("New chat"), this);
    m_new->setObjectName(QStringLiteral("newChatButton"));
    m_new->setToolTip(tr("Start a new conversation (Ctrl+N)"));
    m_new->setAccessibleName(tr("New chat"));
    layout->addWidget(m_new);
    m_search = new QLineEdit(this);
    m_search->setObjectName(QStringLiteral("searchField"));
    m_search->setPlaceholderText(tr("Search chats (Ctrl+F)"));
    m_search->setAccessibleName(tr("Search conversations"));
    m_search->setClearButtonEnabled(true);
    layout->addWidget(m_search);
    m_list = new QListWidget(this);
    m_list->setObjectName(QStringLiteral("conversationList"));
    m_list->setAccessibleName(tr("Conversations"));
    m_list->setContextMenuPolicy(Qt::CustomContextMenu);
    m_list->setEditTriggers(QAbstractItemView::EditKeyPressed);
    m_list->setUniformItemSizes(true);
    m_list->setHorizontalScrollBarPolicy(Qt::ScrollBarAlwaysOff);
    m_list->setTextElideMode(Qt::ElideRight);
    m_list->installEventFilter(this);
    layout->addWidget(m_list, 1);

    m_searchTimer = new QTimer(this);
    m_searchTimer->setSingleShot(true);
    m_searchTimer->setInterval(200);

    connect(m_new, &QPushButton::clicked, m_controller, [this] { m_controller->newConversation(); });
    connect(m_search, &QLineEdit::textChanged, this, [this](const QString &text) {
        if (text.trimmed().isEmpty()) {
            m_searchTimer->stop();
            m_lastQuery.clear();
            rebuild();
        } else {
            m_searchTimer->start();
        }
    });
    connect(m_searchTimer, &QTimer::timeout, this, [this] {
        m_lastQuery = m_search->text().trimmed();
        m_controller->search(m_lastQuery);
    });
    connect(m_controller, &ChatController::searchResultsReady, this,
            [this](const QString &text, const QList<ConversationRecord> &hits) {
                if (text == m_lastQuery && isSearching())
                    showRows(hits, true);
            });
    connect(m_controller, &ChatController::conversationsChanged, this, [this] {
        if (!isSearching())
            rebuild();
    });
    connect(m_controller, &ChatController::generationStateChanged, this, [this] {
        if (!isSearching())
            rebuild();
    });
    connect(m_controller, &ChatController::currentConversationChanged, this, [this](qint64 id) {
        m_updating = true;
        QListWidgetItem *item = itemFor(id);
        m_list->setCurrentItem(item);
        if (!item)
            m_list->clearSelection();
        m_updating = false;
    });
    connect(m_list, &QListWidget::currentItemChanged, this, [this](QListWidgetItem *item) {
        if (m_updating || !item)
            return;
        const qint64 id = idOf(item);
        if (id != m_controller->currentConversationId())
            m_controller->openConversation(id);
    });
    connect(m_list, &QListWidget::itemChanged, this, [this](QListWidgetItem *item) {
        if (m_updating)
            return;
        m_editing = false;
        const QString title = item->text().trimmed();
        const QString old = item->data(kTitleRole).toString();
        if (!title.isEmpty() && title != old)
            m_controller->renameConversation(idOf(item), title);
        else
            rebuild();
    });
    connect(m_list->itemDelegate(), &QAbstractItemDelegate::closeEditor, this, [this] {
        m_editing = false;
        QTimer::singleShot(0, this, [this] {
            if (!isSearching())
                rebuild();
        });
    });
    connect(m_list, &QListWidget::customContextMenuRequested, this, &ConversationList::showContextMenu);
}

bool ConversationList::isSearching() const
{
    return !m_search->text().trimmed().isEmpty();
}

QList<qint64> ConversationList::shownIds() const
{
    QList<qint64> ids;
    for (int i = 0; i < m_list->count(); ++i)
        ids.append(idOf(m_list->item(i)));
    return ids;
}

qint64 ConversationList::idOf(const QListWidgetItem *item) const
{
    return item ? item->data(kIdRole).toLongLong() : 0;
}

QListWidgetItem *ConversationList::itemFor(qint64 conversationId) const
{
    for (int i = 0; i < m_list->count(); ++i)
        if (idOf(m_list->item(i)) == conversationId)
            return m_list->item(i);
    return nullptr;
}

void ConversationList::rebuild()
{
    showRows(m_controller->conversations(), false);
}

void ConversationList::showRows(const QList<ConversationRecord> &rows, bool searchHits)
{
    if (m_editing)
        return;  // do not yank the row being renamed
    m_updating = true;
    m_list->clear();
    for (const ConversationRecord &c : rows) {
        QString label = c.title;
        if (c.pinned)
            label = QStringLiteral("★ ") + label;
        if (m_controller->isGenerating(c.id))
            label += QStringLiteral("  ●");
        auto *item = new QListWidgetItem(label, m_list);
        item->setData(kIdRole, c.id);
        item->setData(kTitleRole, c.title);
        item->setData(kPinnedRole, c.pinned);
        item->setFlags(item->flags() | Qt::ItemIsEditable);
        QString tip = c.title;
        if (searchHits && !c.snippet.isEmpty())
            tip += QStringLiteral("\n") + c.snippet;
        if (c.updatedAt.isValid())
            tip += QStringLiteral("\n") + QLocale().toString(c.updatedAt.toLocalTime(), QLocale::ShortFormat);
        item->setToolTip(tip);
        if (c.id == m_controller->currentConversationId())
            m_list->setCurrentItem(item);
    }
    m_updating = false;
}

void ConversationList::focusSearch()
{
    m_search->setFocus();
    m_search->selectAll();
}

void ConversationList::startRename(qint64 conversationId)
{
    QListWidgetItem *item = itemFor(conversationId);
    if (!item)
        return;
    m_updating = true;
    item->setText(item->data(kTitleRole).toString());  // edit the bare title
    m_updating = false;
    m_list->setCurrentItem(item);
    m_editing = true;
    m_list->editItem(item);
}

void ConversationList::togglePin(qint64 conversationId)
{
    if (QListWidgetItem *item = itemFor(conversationId))
        m_controller->setConversationPinned(conversationId, !item->data(kPinnedRole).toBool());
}

void ConversationList::deleteConversation(qint64 conversationId, bool confirm)
{
    QListWidgetItem *item = itemFor(conversationId);
    if (!item)
        return;
    if (!confirm) {
        m_controller->deleteConversation(conversationId);
        return;
    }
    auto *box = new QMessageBox(QMessageBox::Question, tr("Delete conversation"),
                                tr("Delete \"%1\" and all its messages?").arg(item->data(kTitleRole).toString()),
                                QMessageBox::Yes | QMessageBox::Cancel, this);
    box->setObjectName(QStringLiteral("confirmDelete"));
    box->setAttribute(Qt::WA_DeleteOnClose);
    connect(box, &QMessageBox::finished, this, [this, conversationId](int result) {
        if (result == QMessageBox::Yes)
            m_controller->deleteConversation(conversationId);
    });
    box->open();
}

void ConversationList::showContextMenu(const QPoint &pos)
{
    QListWidgetItem *item = m_list->itemAt(pos);
    if (!item)
        return;
    const qint64 id = idOf(item);
    QMenu menu(this);
    menu.addAction(tr("Rename"), this, [this, id] { startRename(id); });
    menu.addAction(item->data(kPinnedRole).toBool() ? tr("Unpin") : tr("Pin to top"), this,
                   [this, id] { togglePin(id); });
    menu.addSeparator();
    menu.addAction(tr("Delete…"), this, [this, id] { deleteConversation(id, true); });
    menu.exec(m_list->viewport()->mapToGlobal(pos));
}

bool ConversationList::eventFilter(QObject *watched, QEvent *event)
{
    if (watched == m_list && event->type() == QEvent::KeyPress && !m_editing) {
        auto *key = static_cast<QKeyEvent *>(event);
        const qint64 id = idOf(m_list->currentItem());
        if (id && key->key() == Qt::Key_F2) {
            startRename(id);
            return true;
        }
        if (id && key->key() == Qt::Key_Delete) {
            deleteConversation(id, true);
            return true;
        }
    }
    return QWidget::eventFilter(watched, event);
}
