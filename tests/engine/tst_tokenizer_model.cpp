// The gemma-3 SPM tokenizer from the real model file against llama.cpp's ids
// for a corpus of hard strings (tests/fixtures/tokenizer/gemma3.json).
#include "glassbox/gguf.h"
#include "tokenizer_fixture.h"

#include <QFileInfo>

using namespace tokfix;

class TstTokenizerModel : public QObject {
    Q_OBJECT
  private slots:
    void initTestCase();
    void gemmaMatchesLlama();
    void gemmaRoundTrip();
    void gemmaSpecialTokens();

  private:
    std::unique_ptr<gb::gguf::File>        m_file;
    std::shared_ptr<const gb::Tokenizer>   m_tok;
    const gb::tok::VocabTokenizer *        m_vtok = nullptr;
    QJsonObject                            m_ref;
};

void TstTokenizerModel::initTestCase() {
    const QString path = QString(GLASSBOX_MODEL_DIR) + "/gemma-3-270m-q4_k_m.gguf";
    if (!QFileInfo::exists(path)) QSKIP("model file not found");
    auto file = gb::gguf::File::open(path.toStdString());
    QVERIFY2(file, file ? "" : file.error().to_string().c_str());
    m_file = std::move(file.value());
    auto tok = gb::Tokenizer::from_gguf(*m_file);
    QVERIFY2(tok, tok ? "" : tok.error().to_string().c_str());
    m_tok = tok.value();
    m_vtok = dynamic_cast<const gb::tok::VocabTokenizer *>(m_tok.get());
    QVERIFY(m_vtok);
    m_ref = load_json("gemma3.json").object();
    QVERIFY(!m_ref.isEmpty());
}

void TstTokenizerModel::gemmaMatchesLlama() {
    compare_facts(*m_vtok, m_ref["facts"].toObject());
    QCOMPARE(compare_cases(*m_tok, m_ref["cases"].toArray(), "gemma3"), 0);
}

void TstTokenizerModel::gemmaRoundTrip() {
    // No space prefix for gemma and byte fallback for everything else, so the
    // pieces give back the exact bytes of valid UTF-8. (Invalid lead bytes
    // swallow the next bytes into one symbol, so an escaped space after them
    // comes back as raw U+2581, as in llama.cpp.)
    int n = 0;
    for (const QJsonValue & cv : m_ref["cases"].toArray()) {
        const QJsonObject c = cv.toObject();
        if (c["special"].toBool() || c["add_bos"].toBool()) continue;
        const std::string text = from_hex(c["text_hex"]);
        if (!valid_utf8(text)) continue;
        QCOMPARE(show(pieces(*m_tok, m_tok->encode(text, false, false), false)), show(text));
        ++n;
    }
    QVERIFY(n > 40);
}

void TstTokenizerModel::gemmaSpecialTokens() {
    const gb::Tokenizer & t = *m_tok;
    QCOMPARE(t.n_vocab(), 262144);
    QCOMPARE(t.text(105), std::string("<start_of_turn>"));
    QCOMPARE(t.attr(105), gb::TokenAttr::Control);
    QCOMPARE(t.attr(107), gb::TokenAttr::UserDefined);  // "\n"
    QCOMPARE(t.attr(238), gb::TokenAttr::Byte);         // <0x00>
    QCOMPARE(t.attr(2364), gb::TokenAttr::Normal);
    QVERIFY(t.is_eog(106) && t.is_eog(1) && !t.is_eog(105));
    QCOMPARE(t.token_to_piece(105, false), std::string());
    QCOMPARE(t.token_to_piece(105, true), std::string("<start_of_turn>"));
    const std::vector<gb::Token> ids = t.encode("<start_of_turn>user\nHi<end_of_turn>", true, true);
    QCOMPARE(ids.front(), t.bos());
    QCOMPARE(ids[1], gb::Token(105));
    QCOMPARE(ids.back(), gb::Token(106));
}

QTEST_APPLESS_MAIN(TstTokenizerModel)
#include "tst_tokenizer_model.moc"
