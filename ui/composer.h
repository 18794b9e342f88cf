// Composer: the message input under the chat. Enter (or Ctrl+Enter) sends,
// Shift+Enter starts a new line; Send turns into Stop while the current
// conversation generates.
#pragma once

#include <QPlainTextEdit>
#include <QWidget>

class QPushButton;

// The text box: turns Enter into submit().
class PromptEdit : public QPlainTextEdit {
    Q_OBJECT
public:
    using QPlainTextEdit::QPlainTextEdit;
    QSize sizeHint() const override;
signals:
    void submit();
protected:
    void keyPressEvent(QKeyEvent *event) override;
};

class Composer : public QWidget {
    Q_OBJECT
public:
    explicit Composer(QWidget *parent = nullptr);

    QString text() const;
    void setText(const QString &text);
    void clear();
    PromptEdit *editor() const { return m_edit; }
    QPushButton *sendButton() const { return m_send; }
    QPushButton *stopButton() const { return m_stop; }

public slots:
    void setGenerating(bool generating);
    void focusInput();

signals:
    void submitted(const QString &text);  // the caller clears the box once it is accepted
    void stopRequested();

private:
    void trySubmit();

    PromptEdit *m_edit = nullptr;
    QPushButton *m_send = nullptr;
    QPushButton *m_stop = nullptr;
    bool m_generating = false;
};
