// The real model against llama.cpp on the same file: greedy continuations must
// be identical token for token, and perplexity on a shipped text within 1%.
// Fixtures: scripts/make_llamacpp_fixtures.py (llama-cpp-python).
#include "glassbox/model.h"
#include "glassbox/perplexity.h"
#include "glassbox/session.h"

#include <QFile>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QtTest>

namespace {

const char * k_model = GLASSBOX_MODEL_DIR "/gemma-3-270m-q4_k_m.gguf";
const char * k_fixture = GLASSBOX_FIXTURE_DIR "/llamacpp/gemma3_270m_q4_k_m.json";

std::vector<gb::Token> to_tokens(const QJsonArray & a) {
    std::vector<gb::Token> v;
    for (const QJsonValue & x : a) v.push_back(gb::Token(x.toInt()));
    return v;
}

QString ids_text(const std::vector<gb::Token> & v) {
    QStringList s;
    for (gb::Token t : v) s << QString::number(t);
    return s.join(' ');
}

}  // namespace

class TstModelLlamaCpp : public QObject {
    Q_OBJECT
  private slots:
    void initTestCase();
    void greedyMatchesLlamaCpp_data();
    void greedyMatchesLlamaCpp();
    void perplexityMatchesLlamaCpp();

  private:
    QJsonObject m_fixture;
    std::shared_ptr<const gb::Model> m_model;
};

void TstModelLlamaCpp::initTestCase() {
    if (!QFile::exists(k_model)) QSKIP("default model not installed (run ./setup.sh)");
    QFile f(k_fixture);
    QVERIFY2(f.open(QIODevice::ReadOnly), k_fixture);
    m_fixture = QJsonDocument::fromJson(f.readAll()).object();
    QVERIFY(!m_fixture.isEmpty());
    auto model = gb::Model::load(k_model);
    QVERIFY2(model.ok(), model.ok() ? "" : model.error().message.c_str());
    m_model = *model;
}

void TstModelLlamaCpp::greedyMatchesLlamaCpp_data() {
    QTest::addColumn<int>("index");
    const QJsonArray cases = m_fixture.value("cases").toArray();
    for (int i = 0; i < cases.size(); ++i) {
        QTest::newRow(cases[i].toObject().value("prompt").toString().left(32).toUtf8().constData()) << i;
    }
}

void TstModelLlamaCpp::greedyMatchesLlamaCpp() {
    QFETCH(int, index);
    const QJsonObject c = m_fixture.value("cases").toArray()[index].toObject();
    const std::string prompt = c.value("prompt").toString().toStdString();
    const bool special = c.value("parse_special").toBool();
    const std::vector<gb::Token> prompt_ids = to_tokens(c.value("prompt_ids").toArray());
    const std::vector<gb::Token> expected = to_tokens(c.value("generated_ids").toArray());

    // Same tokenization as llama.cpp.
    const gb::Tokenizer & tok = m_model->tokenizer();
    QCOMPARE(ids_text(tok.encode(prompt, true, special)), ids_text(prompt_ids));

    gb::SessionParams sp;
    sp.context.n_ctx = 256;
    sp.context.n_threads = 2;
    auto session = gb::Session::create(m_model, sp);
    QVERIFY(session.ok());
    gb::GenerateParams gp;
    gp.sampling.temperature = 0.0f;
    gp.max_tokens = int32_t(expected.size());
    gp.ignore_eos = true;
    std::vector<gb::Token> got;
    auto r = (*session)->generate(prompt_ids, gp, [&](const gb::TokenEvent & ev) {
        if (ev.id >= 0) got.push_back(ev.id);
        return true;
    });
    QVERIFY2(r.ok(), r.ok() ? "" : r.error().message.c_str());
    QCOMPARE(ids_text(got), ids_text(expected));
}

void TstModelLlamaCpp::perplexityMatchesLlamaCpp() {
    const QJsonObject p = m_fixture.value("perplexity").toObject();
    QFile f(QString(GLASSBOX_FIXTURE_DIR "/../../") + p.value("text").toString());
    QVERIFY(f.open(QIODevice::ReadOnly));
    const QByteArray text = f.readAll();
    const gb::Tokenizer & tok = m_model->tokenizer();
    const std::vector<gb::Token> tokens = tok.encode(std::string_view(text.constData(), size_t(text.size())), true, false);
    QCOMPARE(int(tokens.size()), p.value("n_tokens").toInt());

    gb::PerplexityParams pp;
    pp.n_ctx = p.value("n_ctx").toInt();
    pp.n_threads = 2;
    auto r = gb::compute_perplexity(m_model, tokens, pp);
    QVERIFY2(r.ok(), r.ok() ? "" : r.error().message.c_str());
    const double ref = p.value("ppl").toDouble();
    qInfo("perplexity: glassbox %.4f, llama.cpp %.4f (%+.3f%%)", r->ppl, ref, 100.0 * (r->ppl / ref - 1.0));
    QCOMPARE(int(r->n_scored), p.value("n_scored").toInt());
    QVERIFY2(std::abs(r->ppl / ref - 1.0) < 0.01, "perplexity differs from llama.cpp's by 1% or more");
}

QTEST_APPLESS_MAIN(TstModelLlamaCpp)
#include "tst_model_llamacpp.moc"
