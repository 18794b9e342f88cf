// MessageTextView: the body of one chat message. A read-only QTextBrowser
// that grows to fit its text (the chat view scrolls, not the message) and
// shows plain text, rendered Markdown (with "Copy code" links) or the reply's
// tokens, each with its probability and top alternatives on hover.
#pragma once

#include "app_types.h"

#include <QTextBrowser>

class MessageTextView : public QTextBrowser {
    Q_OBJECT
public:
    enum class Mode { Plain, Markdown, Tokens };

    explicit MessageTextView(QWidget *parent = nullptr);

    void showPlain(const QString &text);
    void showMarkdown(const QString &text);
    // One fragment per token, tinted by its probability (or its origin).
    void showTokens(const QList<GeneratedToken> &tokens);
    // Tint tokens by origin: accepted draft, correction, bonus; plain steps untinted.
    void setOriginTint(bool on);
    bool originTint() const { return m_originTint; }
    static QColor originColour(TokenSource source, bool dark);  // invalid for TokenSource::Target

    Mode mode() const { return m_mode; }
    QString sourceText() const { return m_source; }
    QStringList codeBlocks() const { return m_codeBlocks; }
    void copyCodeBlock(int index);

    // The token under a point of the viewport (Tokens mode), or -1.
    int tokenIndexAt(const QPoint &viewportPos) const;
    const QList<GeneratedToken> &tokens() const { return m_tokens; }
    static QString tokenToolTip(const GeneratedToken &token);

    QSize sizeHint() const override;
    QSize minimumSizeHint() const override;

signals:
    void codeBlockCopied(int index);

protected:
    bool viewportEvent(QEvent *event) override;
    void resizeEvent(QResizeEvent *event) override;
    void changeEvent(QEvent *event) override;

private:
    void fitHeight();
    void onAnchor(const QUrl &url);

    Mode m_mode = Mode::Plain;
    QString m_source;
    QStringList m_codeBlocks;
    QList<GeneratedToken> m_tokens;
    bool m_originTint = false;
};
