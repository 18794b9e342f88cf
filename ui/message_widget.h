// MessageWidget: one message of the chat view: who wrote it, its text
// (Markdown for replies), the branch switcher (< 2/3 >), copy / edit /
// regenerate actions, an inline editor, and the reply's stats line.
#pragma once

#include "app_types.h"

#include <QFrame>

class MessageTextView;
class QLabel;
class QPlainTextEdit;
class QToolButton;
class QWidget;

class MessageWidget : public QFrame {
    Q_OBJECT
public:
    explicit MessageWidget(QWidget *parent = nullptr);

    // generating: this is the reply being streamed right now.
    void setMessage(const MessageRecord &message, bool generating);
    // Tokens of the reply (this run of the app); shown in token view.
    void setTokens(const QList<GeneratedToken> &tokens);
    void setTokenView(bool on);
    // Token view tinted by where each token came from (speculative decoding).
    void setOriginTint(bool on);
    // While the conversation generates, edit and regenerate are disabled.
    void setBusy(bool busy);

    const MessageRecord &message() const { return m_message; }
    qint64 messageId() const { return m_message.id; }
    MessageTextView *textView() const { return m_text; }

    void beginEdit();
    void cancelEdit();
    bool isEditing() const;

    // "42 tokens · 18.3 tokens/s · first token 120 ms · prefix cache 30/50"
    static QString statsText(const QJsonObject &stats);

signals:
    void editSubmitted(qint64 messageId, const QString &text);
    void regenerateRequested(qint64 messageId);
    void siblingRequested(qint64 messageId, int delta);

protected:
    void changeEvent(QEvent *event) override;

private:
    void refresh();
    void updateBackground();
    QToolButton *makeButton(const QString &objectName, const QString &text, const QString &toolTip);

    MessageRecord m_message;
    QList<GeneratedToken> m_tokens;
    bool m_generating = false;
    bool m_tokenView = false;
    bool m_busy = false;

    QLabel *m_role = nullptr;
    QToolButton *m_prev = nullptr;
    QLabel *m_branch = nullptr;
    QToolButton *m_next = nullptr;
    QToolButton *m_copy = nullptr;
    QToolButton *m_edit = nullptr;
    QToolButton *m_regenerate = nullptr;
    MessageTextView *m_text = nullptr;
    QWidget *m_editorBox = nullptr;
    QPlainTextEdit *m_editor = nullptr;
    QLabel *m_status = nullptr;
    QLabel *m_stats = nullptr;
};
