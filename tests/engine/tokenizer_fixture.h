// Shared by the tokenizer tests: reads the llama.cpp fixtures written by
// scripts/make_tokenizer_fixtures.py and compares a tokenizer against them.
#pragma once

#include "glassbox/tokenizer.h"
#include "tokenizer_impl.h"

#include <QByteArray>
#include <QFile>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QString>
#include <QtTest>

#include <string>
#include <vector>

namespace tokfix {

inline QString fixture_path(const char * name) {
    return QString(GLASSBOX_FIXTURE_DIR) + "/tokenizer/" + name;
}

inline QJsonDocument load_json(const char * name) {
    QFile f(fixture_path(name));
    if (!f.open(QIODevice::ReadOnly)) return {};
    return QJsonDocument::fromJson(f.readAll());
}

inline std::string from_hex(const QJsonValue & v) {
    const QByteArray b = QByteArray::fromHex(v.toString().toLatin1());
    return std::string(b.constData(), size_t(b.size()));
}

inline QString show(const std::string & s) {
    return QString::fromLatin1(QByteArray(s.data(), qsizetype(s.size())).toHex());
}

inline QString show_ids(const std::vector<gb::Token> & ids) {
    QStringList parts;
    for (const gb::Token t : ids) parts << QString::number(t);
    return parts.join(',');
}

inline bool valid_utf8(const std::string & s) {
    const QByteArray b(s.data(), qsizetype(s.size()));
    return QString::fromUtf8(b).toUtf8() == b;
}

inline std::vector<gb::Token> ids_of(const QJsonValue & v) {
    std::vector<gb::Token> out;
    for (const QJsonValue & x : v.toArray()) out.push_back(gb::Token(x.toInt()));
    return out;
}

inline std::string pieces(const gb::Tokenizer & tok, const std::vector<gb::Token> & ids, bool special) {
    std::string out;
    for (const gb::Token t : ids) out += tok.token_to_piece(t, special);
    return out;
}

// Compares every case (ids and decoded pieces); returns the number of failures
// and prints each one, so a test reports all mismatches at once.
inline int compare_cases(const gb::Tokenizer & tok, const QJsonArray & cases, const QString & label) {
    int failures = 0;
    for (const QJsonValue & cv : cases) {
        const QJsonObject c = cv.toObject();
        const std::string text = from_hex(c["text_hex"]);
        const bool add_bos = c["add_bos"].toBool();
        const bool special = c["special"].toBool();
        const std::vector<gb::Token> want = ids_of(c["ids"]);
        const std::vector<gb::Token> got = tok.encode(text, add_bos, special);
        const QString where = QString("%1/%2 add_bos=%3 special=%4").arg(label, c["name"].toString()).arg(add_bos).arg(special);
        if (got != want) {
            qWarning().noquote() << where << "ids differ\n  want" << show_ids(want) << "\n  got " << show_ids(got);
            ++failures;
            continue;
        }
        if (pieces(tok, got, false) != from_hex(c["pieces_hex"]) ||
            pieces(tok, got, true) != from_hex(c["pieces_special_hex"])) {
            qWarning().noquote() << where << "pieces differ:" << show(pieces(tok, got, false)) << "vs"
                                 << c["pieces_hex"].toString();
            ++failures;
        }
    }
    return failures;
}

// bos/eos/eot/add_bos, the whole end-of-generation set and sampled attribute bits.
inline void compare_facts(const gb::tok::VocabTokenizer & tok, const QJsonObject & f) {
    QCOMPARE(tok.n_vocab(), f["n_vocab"].toInt());
    QCOMPARE(tok.bos(), f["bos"].toInt());
    QCOMPARE(tok.eos(), f["eos"].toInt());
    QCOMPARE(tok.eot(), f["eot"].toInt());
    QCOMPARE(tok.add_bos(), f["add_bos"].toBool());
    std::vector<gb::Token> eog;
    for (gb::Token i = 0; i < tok.n_vocab(); ++i)
        if (tok.is_eog(i)) eog.push_back(i);
    QCOMPARE(show_ids(eog), show_ids(ids_of(f["eog"])));
    for (const QJsonValue & av : f["attrs"].toArray()) {
        const QJsonArray a = av.toArray();
        QCOMPARE(int(tok.vocab().attr[size_t(a[0].toInt())]), a[1].toInt());
    }
}

}  // namespace tokfix
