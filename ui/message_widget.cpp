// MessageWidget: layout, state -> widgets (refresh), inline editing.
#include "message_widget.h"

#include "message_text_view.h"

#include <QApplication>
#include <QClipboard>
#include <QEvent>
#include <QHBoxLayout>
#include <QJsonObject>
#include <QLabel>
#include <QPlainTextEdit>
#include <QPushButton>
#include <QToolButton>
#include <QVBoxLayout>

MessageWidget::MessageWidget(QWidget *parent)
    : QFrame(parent)
{
    setFrameShape(QFrame::NoFrame);
    setAutoFillBackground(true);
    auto *outer = new QVBoxLayout(this);
    outer->setContentsMargins(12, 8, 12, 8);
    outer->setSpacing(4);

    auto *header = new QHBoxLayout;
    header->setSpacing(4);
    m_role = new QLabel(this);
    m_role->setObjectName(QStringLiteral("roleLabel"));
    QFont bold = m_role->font();
    bold.setBold(true);
    m_role->setFont(bold);
    header->addWidget(m_role);
    header->addSpacing(8);
    m_prev = makeButton(QStringLiteral("prevBranch"), QStringLiteral("‹"), tr("Previous version of this message"));
    m_branch = new QLabel(this);
    m_branch->setObjectName(QStringLiteral("branchLabel"));
    m_branch->setAccessibleName(tr("Message version"));
    m_next = makeButton(QStringLiteral("nextBranch"), QStringLiteral("›"), tr("Next version of this message"));
    header->addWidget(m_prev);
    header->addWidget(m_branch);
    header->addWidget(m_next);
    header->addStretch(1);
    m_copy = makeButton(QStringLiteral("copyButton"), tr("Copy"), tr("Copy the message text"));
    m_edit = makeButton(QStringLiteral("editButton"), tr("Edit"), tr("Edit this message (keeps the old version as a branch)"));
    m_regenerate = makeButton(QStringLiteral("regenerateButton"), tr("Regenerate"), tr("Write a new reply (Ctrl+R for the last one)"));
    header->addWidget(m_copy);
    header->addWidget(m_edit);
    header->addWidget(m_regenerate);
    outer->addLayout(header);

    m_text = new MessageTextView(this);
    m_text->setAccessibleName(tr("Message text"));
    outer->addWidget(m_text);

    m_editorBox = new QWidget(this);
    auto *editLayout = new QVBoxLayout(m_editorBox);
    editLayout->setContentsMargins(0, 0, 0, 0);
    m_editor = new QPlainTextEdit(m_editorBox);
    m_editor->setObjectName(QStringLiteral("messageEditor"));
    m_editor->setAccessibleName(tr("Edit message"));
    m_editor->setMinimumHeight(80);
    editLayout->addWidget(m_editor);
    auto *editButtons = new QHBoxLayout;
    editButtons->addStretch(1);
    auto *cancel = new QPushButton(tr("Cancel"), m_editorBox);
    cancel->setObjectName(QStringLiteral("cancelEdit"));
    auto *save = new QPushButton(tr("Save && Send"), m_editorBox);
    save->setObjectName(QStringLiteral("saveEdit"));
    save->setDefault(true);
    editButtons->addWidget(cancel);
    editButtons->addWidget(save);
    editLayout->addLayout(editButtons);
    m_editorBox->hide();
    outer->addWidget(m_editorBox);

    m_status = new QLabel(this);
    m_status->setObjectName(QStringLiteral("statusLabel"));
    m_status->setWordWrap(true);
    m_status->hide();
    outer->addWidget(m_status);
    m_stats = new QLabel(this);
    m_stats->setObjectName(QStringLiteral("statsLabel"));
    m_stats->setAccessibleName(tr("Reply statistics"));
    m_stats->setTextInteractionFlags(Qt::TextSelectableByMouse);
    QFont small = m_stats->font();
    small.setPointSizeF(small.pointSizeF() * 0.85);
    m_stats->setFont(small);
    m_stats->setForegroundRole(QPalette::PlaceholderText);
    m_stats->hide();
    outer->addWidget(m_stats);

    connect(m_prev, &QToolButton::clicked, this, [this] { emit siblingRequested(m_message.id, -1); });
    connect(m_next, &QToolButton::clicked, this, [this] { emit siblingRequested(m_message.id, +1); });
    connect(m_copy, &QToolButton::clicked, this, [this] { QApplication::clipboard()->setText(m_message.content); });
    connect(m_edit, &QToolButton::clicked, this, &MessageWidget::beginEdit);
    connect(m_regenerate, &QToolButton::clicked, this, [this] { emit regenerateRequested(m_message.id); });
    connect(cancel, &QPushButton::clicked, this, &MessageWidget::cancelEdit);
    connect(save, &QPushButton::clicked, this, [this] {
        const QString text = m_editor->toPlainText();
        if (text.trimmed().isEmpty())
            return;
        cancelEdit();
        emit editSubmitted(m_message.id, text);
    });
    updateBackground();
}

QToolButton *MessageWidget::makeButton(const QString &objectName, const QString &text, const QString &toolTip)
{
    auto *b = new QToolButton(this);
    b->setObjectName(objectName);
    b->setText(text);
    b->setToolTip(toolTip);
    b->setAccessibleName(toolTip);
    b->setAutoRaise(true);
    return b;
}

void MessageWidget::setMessage(const MessageRecord &message, bool generating)
{
    const bool roleChanged = message.role != m_message.role;
    m_message = message;
    m_generating = generating;
    if (roleChanged)
        updateBackground();
    refresh();
}

void MessageWidget::setTokens(const QList<GeneratedToken> &tokens)
{
    m_tokens = tokens;
    if (m_tokenView)
        refresh();
}

void MessageWidget::setOriginTint(bool on)
{
    m_text->setOriginTint(on);
}

void MessageWidget::setTokenView(bool on)
{
    if (on == m_tokenView)
        return;
    m_tokenView = on;
    refresh();
}

void MessageWidget::setBusy(bool busy)
{
    if (busy == m_busy)
        return;
    m_busy = busy;
    refresh();
}

void MessageWidget::refresh()
{
    const MessageRecord &m = m_message;
    const bool assistant = m.role == QLatin1String("assistant");
    const bool user = m.role == QLatin1String("user");
    m_role->setText(user ? tr("You") : assistant ? tr("Assistant") : tr("System"));

    const bool branches = m.siblingCount > 1;
    m_prev->setVisible(branches);
    m_next->setVisible(branches);
    m_branch->setVisible(branches);
    m_branch->setText(QStringLiteral("%1/%2").arg(m.siblingIndex + 1).arg(m.siblingCount));
    m_prev->setEnabled(!m_busy && m.siblingIndex > 0);
    m_next->setEnabled(!m_busy && m.siblingIndex + 1 < m.siblingCount);

    m_edit->setVisible(!assistant || !m_generating);
    m_edit->setEnabled(!m_busy);
    m_regenerate->setVisible(assistant);
    m_regenerate->setEnabled(!m_busy);

    if (assistant && m_tokenView && !m_tokens.isEmpty())
        m_text->showTokens(m_tokens);
    else if (assistant)
        m_text->showMarkdown(m_generating ? m.content + QStringLiteral(" ▍") : m.content);
    else
        m_text->showPlain(m.content);

    QString status;
    bool failed = false;
    if (m_generating && m.content.isEmpty())
        status = tr("Thinking…");
    else if (m.state == MessageState::Cancelled)
        status = tr("Stopped.");
    else if (m.state == MessageState::Interrupted)
        status = tr("Interrupted (the app closed while this reply was written).");
    else if (m.state == MessageState::Failed) {
        status = tr("Failed: %1").arg(m.stats.value(QStringLiteral("error")).toString());
        failed = true;
    }
    m_status->setText(status);
    // Failures in red (readable on light and dark backgrounds), the rest greyed.
    QPalette sp = m_status->palette();
    sp.setColor(QPalette::WindowText, failed ? QColor(0xd0, 0x3a, 0x3a) : palette().color(QPalette::PlaceholderText));
    m_status->setPalette(sp);
    m_status->setVisible(!status.isEmpty());

    const QString stats = assistant && !m_generating ? statsText(m.stats) : QString();
    m_stats->setText(stats);
    m_stats->setVisible(!stats.isEmpty());
}

QString MessageWidget::statsText(const QJsonObject &s)
{
    if (!s.contains(QStringLiteral("tokens")))
        return {};
    QStringList parts;
    const int tokens = s.value(QStringLiteral("tokens")).toInt();
    parts << (tokens == 1 ? tr("1 token") : tr("%1 tokens").arg(tokens));
    const double tps = s.value(QStringLiteral("tokens_per_s")).toDouble();
    if (tps > 0)
        parts << tr("%1 tokens/s").arg(tps, 0, 'f', 1);
    if (s.contains(QStringLiteral("ttft_ms")))
        parts << tr("first token %1 ms").arg(qRound(s.value(QStringLiteral("ttft_ms")).toDouble()));
    const int prompt = s.value(QStringLiteral("prompt_tokens")).toInt();
    if (prompt > 0)
        parts << tr("prefix cache %1/%2").arg(s.value(QStringLiteral("prompt_tokens_reused")).toInt()).arg(prompt);
    const double queued = s.value(QStringLiteral("queue_ms")).toDouble();
    if (queued >= 1.0)
        parts << tr("queued %1 ms").arg(qRound(queued));
    if (s.value(QStringLiteral("engine")).toString() == QLatin1String("batch"))
        parts << tr("batching engine");
    if (s.contains(QStringLiteral("spec_method"))) {
        const qint64 proposed = s.value(QStringLiteral("spec_proposed")).toInteger();
        const qint64 accepted = s.value(QStringLiteral("spec_accepted")).toInteger();
        parts << tr("speculative %1: %2/%3 drafted accepted")
                     .arg(s.value(QStringLiteral("spec_method")).toString())
                     .arg(accepted)
                     .arg(proposed);
    }
    const QString stop = s.value(QStringLiteral("stop")).toString();
    if (stop == QLatin1String("max_tokens"))
        parts << tr("stopped at the token limit");
    else if (stop == QLatin1String("context_full"))
        parts << tr("context full");
    return parts.join(QStringLiteral(" · "));
}

void MessageWidget::beginEdit()
{
    m_editor->setPlainText(m_message.content);
    m_editorBox->show();
    m_text->hide();
    m_editor->setFocus();
    auto *save = m_editorBox->findChild<QPushButton *>(QStringLiteral("saveEdit"));
    save->setText(m_message.role == QLatin1String("user") ? tr("Save && Send") : tr("Save"));
}

void MessageWidget::cancelEdit()
{
    m_editorBox->hide();
    m_text->show();
}

bool MessageWidget::isEditing() const
{
    return !m_editorBox->isHidden();
}

void MessageWidget::changeEvent(QEvent *event)
{
    QFrame::changeEvent(event);
    if (event->type() == QEvent::PaletteChange)
        updateBackground();
}

void MessageWidget::updateBackground()
{
    // Replies sit on the base colour; the user's messages on a faint accent tint.
    const QPalette app = QApplication::palette(this);
    const QColor base = app.color(QPalette::Base);
    QColor bg = base;
    if (m_message.role == QLatin1String("user")) {
        const QColor accent = app.color(QPalette::Highlight);
        bg = QColor::fromRgbF(base.redF() * 0.85f + accent.redF() * 0.15f, base.greenF() * 0.85f + accent.greenF() * 0.15f,
                              base.blueF() * 0.85f + accent.blueF() * 0.15f);
    }
    QPalette p = palette();
    if (p.color(QPalette::Window) == bg)
        return;
    p.setColor(QPalette::Window, bg);
    setPalette(p);
}
