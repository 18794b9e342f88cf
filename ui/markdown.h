// Markdown for chat replies: fenced code blocks are found (for "Copy code"
// links and actions) and the text is rendered into a QTextDocument with Qt's
// GitHub-dialect importer (tables, lists, code), raw HTML shown as text.
#pragma once

#include <QPalette>
#include <QString>
#include <QStringList>

class QTextDocument;

namespace markdown {

// The scheme of the links placed above code blocks: copy-code:<index>.
inline constexpr char kCopyScheme[] = "copy-code";

struct Prepared {
    QString markdown;        // the text with a "Copy code" link above each fenced block
    QStringList codeBlocks;  // contents of the fenced blocks, in order (an unclosed one runs to the end)
};

Prepared prepare(const QString &text);

// Renders text (Markdown) into doc and gives code blocks a background from
// palette. Returns the code blocks (index = the N of copy-code:N links).
QStringList render(QTextDocument *doc, const QString &text, const QPalette &palette);

}  // namespace markdown
