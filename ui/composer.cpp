// Composer: key handling and the Send/Stop buttons.
#include "composer.h"

#include <QHBoxLayout>
#include <QKeyEvent>
#include <QPushButton>
#include <QVBoxLayout>

QSize PromptEdit::sizeHint() const
{
    const int lines = 3;
    return QSize(QPlainTextEdit::sizeHint().width(),
                 fontMetrics().lineSpacing() * lines + 2 * (frameWidth() + int(document()->documentMargin())));
}

void PromptEdit::keyPressEvent(QKeyEvent *event)
{
    const bool enter = event->key() == Qt::Key_Return || event->key() == Qt::Key_Enter;
    if (enter && !(event->modifiers() & Qt::ShiftModifier)) {
        emit submit();
        event->accept();
        return;
    }
    QPlainTextEdit::keyPressEvent(event);
}

Composer::Composer(QWidget *parent)
    : QWidget(parent)
{
    auto *layout = new QHBoxLayout(this);
    layout->setContentsMargins(8, 6, 8, 8);
    m_edit = new PromptEdit(this);
    m_edit->setObjectName(QStringLiteral("promptEdit"));
    m_edit->setAccessibleName(tr("Message"));
    m_edit->setPlaceholderText(tr("Message the model — Enter sends, Shift+Enter for a new line"));
    m_edit->setTabChangesFocus(true);
    m_edit->setSizePolicy(QSizePolicy::Expanding, QSizePolicy::Fixed);
    layout->addWidget(m_edit, 1);

    auto *buttons = new QVBoxLayout;
    m_send = new QPushButton(tr("Send"), this);
    m_send->setObjectName(QStringLiteral("sendButton"));
    m_send->setAccessibleName(tr("Send message"));
    m_send->setToolTip(tr("Send (Enter or Ctrl+Enter)"));
    m_stop = new QPushButton(tr("Stop"), this);
    m_stop->setObjectName(QStringLiteral("stopButton"));
    m_stop->setAccessibleName(tr("Stop generating"));
    m_stop->setToolTip(tr("Stop the reply (Esc)"));
    m_stop->hide();
    buttons->addWidget(m_send);
    buttons->addWidget(m_stop);
    buttons->addStretch(1);
    layout->addLayout(buttons);

    connect(m_edit, &PromptEdit::submit, this, &Composer::trySubmit);
    connect(m_send, &QPushButton::clicked, this, &Composer::trySubmit);
    connect(m_stop, &QPushButton::clicked, this, &Composer::stopRequested);
}

QString Composer::text() const
{
    return m_edit->toPlainText();
}

void Composer::setText(const QString &text)
{
    m_edit->setPlainText(text);
}

void Composer::clear()
{
    m_edit->clear();
}

void Composer::setGenerating(bool generating)
{
    m_generating = generating;
    m_send->setVisible(!generating);
    m_stop->setVisible(generating);
}

void Composer::focusInput()
{
    m_edit->setFocus();
}

void Composer::trySubmit()
{
    const QString t = text();
    if (t.trimmed().isEmpty() || m_generating)
        return;
    emit submitted(t);
}
