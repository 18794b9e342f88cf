// MessageTextView: rendering modes, fit-to-content height, code copy links
// and token tooltips (hit-testing the document layout).
#include "message_text_view.h"

#include "markdown.h"

#include <QAbstractTextDocumentLayout>
#include <QApplication>
#include <QClipboard>
#include <QDesktopServices>
#include <QHelpEvent>
#include <QScrollBar>
#include <QTextBlock>
#include <QToolTip>

#include <cmath>

namespace {

constexpr int kTokenIndexProperty = QTextFormat::UserProperty + 1;

QString visible(const QString &text)
{
    QString t = text;
    t.replace(QLatin1Char('\n'), QStringLiteral("\\n"));
    t.replace(QLatin1Char('\t'), QStringLiteral("\\t"));
    return t.isEmpty() ? QStringLiteral("∅") : t;
}

}  // namespace

MessageTextView::MessageTextView(QWidget *parent)
    : QTextBrowser(parent)
{
    setOpenLinks(false);
    setFrameShape(QFrame::NoFrame);
    setHorizontalScrollBarPolicy(Qt::ScrollBarAlwaysOff);
    setVerticalScrollBarPolicy(Qt::ScrollBarAlwaysOff);
    setSizePolicy(QSizePolicy::Expanding, QSizePolicy::Fixed);
    setTextInteractionFlags(Qt::TextBrowserInteraction);
    viewport()->setAutoFillBackground(false);
    setAutoFillBackground(false);
    setMouseTracking(true);
    document()->setDocumentMargin(2);
    connect(document()->documentLayout(), &QAbstractTextDocumentLayout::documentSizeChanged, this,
            [this] { fitHeight(); });
    connect(this, &QTextBrowser::anchorClicked, this, &MessageTextView::onAnchor);
}

void MessageTextView::showPlain(const QString &text)
{
    if (m_mode == Mode::Plain && text == m_source)
        return;
    m_mode = Mode::Plain;
    m_source = text;
    m_codeBlocks.clear();
    m_tokens.clear();
    setPlainText(text);
}

void MessageTextView::showMarkdown(const QString &text)
{
    if (m_mode == Mode::Markdown && text == m_source)
        return;
    m_mode = Mode::Markdown;
    m_source = text;
    m_tokens.clear();
    m_codeBlocks = markdown::render(document(), text, palette());
    fitHeight();
}

void MessageTextView::showTokens(const QList<GeneratedToken> &tokens)
{
    m_mode = Mode::Tokens;
    m_tokens = tokens;
    m_codeBlocks.clear();
    m_source.clear();
    document()->clear();
    QTextCursor cursor(document());
    const QColor base = palette().color(QPalette::Base);
    const bool dark = base.lightnessF() < 0.5;
    for (int i = 0; i < tokens.size(); ++i) {
        const GeneratedToken &t = tokens[i];
        m_source += t.text;
        if (t.text.isEmpty())
            continue;
        const double p = std::exp(double(t.logprob));
        QTextCharFormat fmt;
        if (m_originTint) {
            const QColor c = originColour(t.source, dark);
            if (c.isValid())
                fmt.setBackground(c);
        } else {
            // Red (unlikely) through yellow to green (certain), light enough to read text on.
            QColor c = QColor::fromHsvF(0.33 * std::clamp(p, 0.0, 1.0), 0.55, dark ? 0.45 : 1.0);
            c.setAlphaF(dark ? 0.8f : 0.45f);
            fmt.setBackground(c);
        }
        fmt.setProperty(kTokenIndexProperty, i);
        cursor.insertText(t.text, fmt);
    }
    fitHeight();
}

void MessageTextView::setOriginTint(bool on)
{
    if (on == m_originTint)
        return;
    m_originTint = on;
    if (m_mode == Mode::Tokens)
        showTokens(QList<GeneratedToken>(m_tokens));
}

QColor MessageTextView::originColour(TokenSource source, bool dark)
{
    // Hues far apart (and from the probability scale's ends): blue, orange, violet.
    double hue = -1.0;
    switch (source) {
    case TokenSource::Target: return {};
    case TokenSource::Draft: hue = 0.58; break;
    case TokenSource::Correction: hue = 0.08; break;
    case TokenSource::Bonus: hue = 0.80; break;
    }
    QColor c = QColor::fromHsvF(hue, 0.6, dark ? 0.5 : 1.0);
    c.setAlphaF(dark ? 0.8f : 0.45f);
    return c;
}

void MessageTextView::copyCodeBlock(int index)
{
    if (index < 0 || index >= m_codeBlocks.size())
        return;
    QApplication::clipboard()->setText(m_codeBlocks[index]);
    emit codeBlockCopied(index);
}

int MessageTextView::tokenIndexAt(const QPoint &viewportPos) const
{
    if (m_mode != Mode::Tokens)
        return -1;
    const QPointF docPos = viewportPos + QPointF(horizontalScrollBar()->value(), verticalScrollBar()->value());
    const int pos = document()->documentLayout()->hitTest(docPos, Qt::ExactHit);
    if (pos < 0)
        return -1;
    QTextCursor c(document());
    c.setPosition(pos + 1 <= document()->characterCount() - 1 ? pos + 1 : pos);
    const QVariant v = c.charFormat().property(kTokenIndexProperty);
    return v.isValid() ? v.toInt() : -1;
}

QString MessageTextView::tokenToolTip(const GeneratedToken &token)
{
    QString tip = QStringLiteral("<b>%1</b> &nbsp; p = %2%")
                      .arg(visible(token.text).toHtmlEscaped())
                      .arg(100.0 * std::exp(double(token.logprob)), 0, 'f', 1);
    tip += QStringLiteral("<br>token id %1 · %2").arg(token.tokenId).arg(tokenSourceName(token.source));
    if (!token.top.isEmpty()) {
        tip += QStringLiteral("<br><i>top alternatives</i><table>");
        for (const TokenAlternative &a : token.top)
            tip += QStringLiteral("<tr><td>%1</td><td align=right>%2%</td></tr>")
                       .arg(visible(a.text).toHtmlEscaped())
                       .arg(100.0 * std::exp(double(a.logprob)), 0, 'f', 1);
        tip += QStringLiteral("</table>");
    }
    return tip;
}

bool MessageTextView::viewportEvent(QEvent *event)
{
    if (event->type() == QEvent::ToolTip && m_mode == Mode::Tokens) {
        auto *help = static_cast<QHelpEvent *>(event);
        const int i = tokenIndexAt(help->pos());
        if (i >= 0)
            QToolTip::showText(help->globalPos(), tokenToolTip(m_tokens[i]), viewport());
        else
            QToolTip::hideText();
        return true;
    }
    return QTextBrowser::viewportEvent(event);
}

void MessageTextView::resizeEvent(QResizeEvent *event)
{
    QTextBrowser::resizeEvent(event);
    fitHeight();
}

void MessageTextView::changeEvent(QEvent *event)
{
    QTextBrowser::changeEvent(event);
    // Code block tints come from the palette: redo them when it changes (light/dark switch).
    if (event->type() == QEvent::PaletteChange && m_mode == Mode::Markdown) {
        const QString text = m_source;
        m_source.clear();
        showMarkdown(text);
    }
}

QSize MessageTextView::sizeHint() const
{
    return QSize(QTextBrowser::sizeHint().width(), int(std::ceil(document()->size().height())) + 2 * frameWidth());
}

QSize MessageTextView::minimumSizeHint() const
{
    return QSize(50, sizeHint().height());
}

void MessageTextView::fitHeight()
{
    document()->setTextWidth(viewport()->width());
    const int h = int(std::ceil(document()->size().height())) + 2 * frameWidth();
    if (h != height())
        setFixedHeight(h);
}

void MessageTextView::onAnchor(const QUrl &url)
{
    if (url.scheme() == QLatin1String(markdown::kCopyScheme)) {
        bool ok = false;
        const int index = url.path().toInt(&ok);
        if (ok)
            copyCodeBlock(index);
        return;
    }
    if (url.scheme() == QLatin1String("http") || url.scheme() == QLatin1String("https"))
        QDesktopServices::openUrl(url);
}
