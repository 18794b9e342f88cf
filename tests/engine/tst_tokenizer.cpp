// Tokenizers against llama.cpp: tiny byte-level BPE (four pre-tokenizers) and
// SPM vocabularies stored as GGUF fixtures with llama.cpp's ids, the streaming
// UTF-8 decoder against Python's errors="replace", and building from vectors.
#include "glassbox/gguf.h"
#include "tokenizer_fixture.h"

using namespace tokfix;

namespace {

std::shared_ptr<const gb::tok::VocabTokenizer> build_or_fail(gb::tok::VocabData data) {
    auto r = gb::tok::VocabTokenizer::build(std::move(data));
    if (!r) qWarning() << r.error().to_string().c_str();
    return r ? r.value() : nullptr;
}

gb::tok::VocabData fixture_vocab(const char * gguf_name) {
    auto file = gb::gguf::File::open(fixture_path(gguf_name).toStdString());
    if (!file) qWarning() << file.error().to_string().c_str();
    if (!file) return {};
    auto data = gb::tok::read_vocab_data(*file.value());
    if (!data) qWarning() << data.error().to_string().c_str();
    return data ? data.value() : gb::tok::VocabData{};
}

// A vocabulary of the 256 byte tokens plus a control and a user-defined token.
std::shared_ptr<const gb::tok::VocabTokenizer> byte_vocab() {
    gb::tok::VocabData d;
    d.model = "llama";
    for (int b = 0; b < 256; ++b) {
        char buf[8];
        std::snprintf(buf, sizeof buf, "<0x%02X>", b);
        d.tokens.push_back(buf);
        d.types.push_back(6);
    }
    d.tokens.push_back("<ctl>");
    d.types.push_back(3);
    d.tokens.push_back("<usr>");
    d.types.push_back(4);
    d.bos = 256;
    d.eos = 256;
    d.unk = 256;
    return build_or_fail(std::move(d));
}

std::string stream_all(const gb::Tokenizer & tok, const std::string & bytes) {
    gb::StreamDecoder dec(tok);
    std::string out;
    for (const char c : bytes) out += dec.push(gb::Token(uint8_t(c)));
    return out + dec.flush();
}

}  // namespace

class TstTokenizer : public QObject {
    Q_OBJECT
  private slots:
    void bpeMatchesLlama_data();
    void bpeMatchesLlama();
    void bpeFromGguf();
    void bpePreAliases();
    void spmMatchesLlama();
    void spmRoundTrip();
    void buildErrors();
    void streamEmojiSplitAcrossTokens();
    void streamInvalidBytes();
    void streamMatchesPythonReplace();
    void streamSpecialTokens();
};

void TstTokenizer::bpeMatchesLlama_data() {
    QTest::addColumn<QString>("pre");
    for (const char * pre : {"gpt-2", "llama-bpe", "qwen2", "default"}) QTest::newRow(pre) << QString(pre);
}

void TstTokenizer::bpeMatchesLlama() {
    QFETCH(QString, pre);
    const QJsonObject all = load_json("bpe_tiny.json").object();
    QVERIFY(!all.isEmpty());
    const QJsonObject ref = all["pre"].toObject()[pre].toObject();
    QVERIFY(!ref.isEmpty());

    gb::tok::VocabData data = fixture_vocab("bpe_tiny.gguf");
    QCOMPARE(data.model, std::string("gpt2"));
    QCOMPARE(data.merges.size(), size_t(all["n_merges"].toInt()));
    data.pre = pre.toStdString();
    const auto tok = build_or_fail(std::move(data));
    QVERIFY(tok);
    QVERIFY(tok->warnings().empty());
    compare_facts(*tok, ref["facts"].toObject());
    QCOMPARE(compare_cases(*tok, ref["cases"].toArray(), pre), 0);
}

void TstTokenizer::bpeFromGguf() {
    auto file = gb::gguf::File::open(fixture_path("bpe_tiny.gguf").toStdString());
    QVERIFY(file);
    auto tok = gb::Tokenizer::from_gguf(*file.value());
    QVERIFY2(tok, tok ? "" : tok.error().to_string().c_str());
    const QJsonObject ref = load_json("bpe_tiny.json").object()["pre"].toObject()["gpt-2"].toObject();
    QCOMPARE(compare_cases(*tok.value(), ref["cases"].toArray(), "from_gguf"), 0);
    QCOMPARE(tok.value()->attr(tok.value()->bos()), gb::TokenAttr::Control);
    QCOMPARE(tok.value()->text(tok.value()->eos()), std::string("<|stop|>"));
}

void TstTokenizer::bpePreAliases() {
    // "gpt2" is accepted for "gpt-2"; an unknown name falls back to the GPT-2
    // regex with a warning instead of failing (llama.cpp refuses the file).
    const QJsonObject ref = load_json("bpe_tiny.json").object()["pre"].toObject()["gpt-2"].toObject();
    for (const char * pre : {"gpt2", "no-such-pre"}) {
        gb::tok::VocabData data = fixture_vocab("bpe_tiny.gguf");
        data.pre = pre;
        const auto tok = build_or_fail(std::move(data));
        QVERIFY(tok);
        QCOMPARE(tok->warnings().empty(), std::string(pre) == "gpt2");
        QCOMPARE(compare_cases(*tok, ref["cases"].toArray(), pre), 0);
    }
}

void TstTokenizer::spmMatchesLlama() {
    const QJsonObject ref = load_json("spm_tiny.json").object();
    QVERIFY(!ref.isEmpty());
    const auto tok = build_or_fail(fixture_vocab("spm_tiny.gguf"));
    QVERIFY(tok);
    compare_facts(*tok, ref["facts"].toObject());
    QCOMPARE(compare_cases(*tok, ref["cases"].toArray(), "spm_tiny"), 0);
}

void TstTokenizer::spmRoundTrip() {
    // With byte fallback every byte of valid UTF-8 survives; the space prefix
    // comes back as a leading space. (Texts with the user-defined "\n" or
    // "<tool>" get another prefix after each of them, so they are left out.)
    const auto tok = build_or_fail(fixture_vocab("spm_tiny.gguf"));
    QVERIFY(tok);
    int n = 0;
    for (const QJsonValue & cv : load_json("spm_tiny.json").object()["cases"].toArray()) {
        const QJsonObject c = cv.toObject();
        const std::string text = from_hex(c["text_hex"]);
        if (text.empty() || !valid_utf8(text) || text.find('\n') != std::string::npos ||
            text.find("<tool>") != std::string::npos)
            continue;
        ++n;
        const std::string back = pieces(*tok, tok->encode(text, false, false), false);
        QCOMPARE(show(back), show(" " + text));
    }
    QVERIFY(n > 60);
}

void TstTokenizer::buildErrors() {
    gb::tok::VocabData empty;
    empty.model = "llama";
    auto r = gb::tok::VocabTokenizer::build(empty);
    QVERIFY(!r);
    QCOMPARE(r.error().code, gb::ErrorCode::InvalidFile);

    gb::tok::VocabData bert;
    bert.model = "bert";
    bert.tokens = {"a"};
    r = gb::tok::VocabTokenizer::build(bert);
    QVERIFY(!r);
    QCOMPARE(r.error().code, gb::ErrorCode::Unsupported);

    gb::tok::VocabData short_scores;
    short_scores.model = "llama";
    short_scores.tokens = {"a", "b"};
    short_scores.scores = {0.0f};
    r = gb::tok::VocabTokenizer::build(short_scores);
    QVERIFY(!r);
    QVERIFY(r.error().message.find("scores") != std::string::npos);

    gb::tok::VocabData bad_id;
    bad_id.model = "llama";
    bad_id.tokens = {"<unk>", "<s>", "</s>"};
    bad_id.eos = 7;  // out of range: warning, default (2) kept
    r = gb::tok::VocabTokenizer::build(bad_id);
    QVERIFY(r);
    QCOMPARE(r.value()->eos(), 2);
    QCOMPARE(r.value()->warnings().size(), size_t(1));
}

void TstTokenizer::streamEmojiSplitAcrossTokens() {
    const auto tok = byte_vocab();
    QVERIFY(tok);
    gb::StreamDecoder dec(*tok);
    const std::string thumbs = "\xF0\x9F\x91\x8D";  // U+1F44D
    QCOMPARE(dec.push(0xF0), std::string());
    QCOMPARE(dec.push(0x9F), std::string());
    QCOMPARE(dec.push(0x91), std::string());
    QCOMPARE(dec.push(0x8D), thumbs);
    // ZWJ sequence: each complete codepoint comes out as soon as it is whole.
    QCOMPARE(dec.push(0xE2), std::string());
    QCOMPARE(dec.push(0x80), std::string());
    QCOMPARE(dec.push(0x8D), std::string("\xE2\x80\x8D"));
    QCOMPARE(dec.push('a'), std::string("a"));
    QCOMPARE(dec.flush(), std::string());
}

void TstTokenizer::streamInvalidBytes() {
    const auto tok = byte_vocab();
    QVERIFY(tok);
    const std::string fffd = "\xEF\xBF\xBD";
    gb::StreamDecoder dec(*tok);
    QCOMPARE(dec.push(0xFF), fffd);             // can never start a sequence
    QCOMPARE(dec.push(0xF0), std::string());    // may still complete
    QCOMPARE(dec.push(0x9F), std::string());
    QCOMPARE(dec.push('x'), fffd + "x");        // cannot any more: one U+FFFD
    QCOMPARE(dec.push(0xC3), std::string());
    QCOMPARE(dec.flush(), fffd);                // truncated at the end
    QCOMPARE(dec.flush(), std::string());
    QCOMPARE(dec.push(0xED), std::string());
    QCOMPARE(dec.push(0xA0), fffd + fffd);      // surrogate: both bytes invalid
}

void TstTokenizer::streamMatchesPythonReplace() {
    const auto tok = byte_vocab();
    QVERIFY(tok);
    const QJsonArray cases = load_json("utf8_stream.json").array();
    QVERIFY(cases.size() > 100);
    for (const QJsonValue & cv : cases) {
        const QJsonObject c = cv.toObject();
        const std::string bytes = from_hex(c["hex"]);
        QCOMPARE(show(stream_all(*tok, bytes)), c["decoded_hex"].toString());
    }
}

void TstTokenizer::streamSpecialTokens() {
    const auto tok = byte_vocab();
    QVERIFY(tok);
    gb::StreamDecoder plain(*tok);
    QCOMPARE(plain.push(256), std::string());        // control: hidden
    QCOMPARE(plain.push(257), std::string("<usr>"));  // user-defined: always text
    gb::StreamDecoder special(*tok, true);
    QCOMPARE(special.push(256), std::string("<ctl>"));
}

QTEST_APPLESS_MAIN(TstTokenizer)
#include "tst_tokenizer.moc"
