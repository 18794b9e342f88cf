// Fenced code block scanning (CommonMark fences: ``` or ~~~, up to three
// spaces of indent, closed by a fence of the same character at least as
// long) and rendering through QTextDocument::setMarkdown.
#include "markdown.h"

#include <QTextBlock>
#include <QTextCursor>
#include <QTextDocument>

namespace markdown {

namespace {

struct Fence {
    QChar ch;
    int length = 0;
    int indent = 0;
    bool valid() const { return length >= 3; }
};

Fence fenceOf(const QString &line)
{
    Fence f;
    int i = 0;
    while (i < line.size() && i < 4 && line[i] == QLatin1Char(' '))
        ++i;
    if (i > 3 || i >= line.size() || (line[i] != QLatin1Char('`') && line[i] != QLatin1Char('~')))
        return f;
    f.indent = i;
    f.ch = line[i];
    while (i < line.size() && line[i] == f.ch)
        ++i;
    f.length = i - f.indent;
    // A backtick fence's info string may not contain backticks.
    if (f.ch == QLatin1Char('`') && line.mid(i).contains(QLatin1Char('`')))
        f.length = 0;
    return f;
}

bool closes(const QString &line, const Fence &open)
{
    const Fence f = fenceOf(line);
    if (!f.valid() || f.ch != open.ch || f.length < open.length)
        return false;
    return line.mid(f.indent + f.length).trimmed().isEmpty();
}

}  // namespace

Prepared prepare(const QString &text)
{
    Prepared out;
    const QStringList lines = text.split(QLatin1Char('\n'));
    QStringList result;
    Fence open;
    QStringList code;
    for (const QString &line : lines) {
        if (open.valid()) {
            if (closes(line, open)) {
                out.codeBlocks.append(code.join(QLatin1Char('\n')));
                code.clear();
                open = Fence{};
            } else {
                // Content lines lose up to the fence's indentation.
                int strip = 0;
                while (strip < open.indent && strip < line.size() && line[strip] == QLatin1Char(' '))
                    ++strip;
                code.append(line.mid(strip));
            }
            result.append(line);
            continue;
        }
        const Fence f = fenceOf(line);
        if (f.valid()) {
            open = f;
            const QString indent(f.indent, QLatin1Char(' '));
            result.append(indent + QStringLiteral("[Copy code](%1:%2)").arg(QLatin1String(kCopyScheme)).arg(out.codeBlocks.size()));
            result.append(QString());
        }
        result.append(line);
    }
    if (open.valid())
        out.codeBlocks.append(code.join(QLatin1Char('\n')));
    out.markdown = result.join(QLatin1Char('\n'));
    return out;
}

QStringList render(QTextDocument *doc, const QString &text, const QPalette &palette)
{
    const Prepared p = prepare(text);
    doc->setMarkdown(p.markdown, QTextDocument::MarkdownFeatures(QTextDocument::MarkdownDialectGitHub |
                                                                 QTextDocument::MarkdownNoHTML));
    // Code blocks: a tinted background so they stand out in light and dark palettes.
    const QColor background = palette.color(QPalette::AlternateBase);
    QTextCursor cursor(doc);
    for (QTextBlock b = doc->begin(); b.isValid(); b = b.next()) {
        const QTextBlockFormat bf = b.blockFormat();
        if (!bf.hasProperty(QTextFormat::BlockCodeFence) && !bf.hasProperty(QTextFormat::BlockCodeLanguage))
            continue;
        QTextBlockFormat styled = bf;
        styled.setBackground(background);
        cursor.setPosition(b.position());
        cursor.setBlockFormat(styled);
    }
    return p.codeBlocks;
}

}  // namespace markdown
