// Requantization: plan and llama.cpp fallbacks, metadata, re-opened files give
// logits close to the source, GPTQ end to end on a tiny model, and bad input.
#include "glassbox/model.h"
#include "glassbox/quant/requantize.h"
#include "glassbox/synth.h"

#include <QtTest>

#include <cmath>
#include <filesystem>

using namespace gb;
using namespace gb::quant;

namespace {

std::string tmp_dir() {
    const std::string d = QDir::tempPath().toStdString() + "/gb_requant_" + std::to_string(QCoreApplication::applicationPid());
    std::filesystem::create_directories(d);
    return d;
}

std::vector<float> logits_of(const std::string & path, const std::vector<Token> & toks) {
    auto m = Model::load(path);
    if (!m) return {};
    ContextParams cp;
    cp.n_ctx = 64;
    cp.n_threads = 2;
    auto ctx = Context::create(*m, cp);
    if (!ctx || !(*ctx)->decode(toks, true).ok()) return {};
    auto l = (*ctx)->logits();
    return {l.begin(), l.end()};
}

// relative RMS difference of two logit arrays
double rel_rms(const std::vector<float> & a, const std::vector<float> & b) {
    double num = 0, den = 0;
    for (size_t i = 0; i < a.size(); ++i) { num += (a[i] - b[i]) * double(a[i] - b[i]); den += double(a[i]) * a[i]; }
    return std::sqrt(num / std::max(den, 1e-30));
}

}  // namespace

class TestRequantize : public QObject {
    Q_OBJECT
    std::string m_dir, m_src;
    std::vector<Token> m_toks = {1, 300, 301, 302, 400, 401, 270, 280, 290, 310, 320, 330};

  private slots:
    void initTestCase() {
        m_dir = tmp_dir();
        auto spec = synth_preset("tiny-llama");
        QVERIFY(spec.ok());
        spec->types = *synth_types("F32");
        m_src = m_dir + "/src.gguf";
        QVERIFY(write_synthetic_model(*spec, m_src).ok());
    }
    void cleanupTestCase() { std::filesystem::remove_all(m_dir); }

    void formats() {
        QVERIFY(!parse_format("as-in-file")->has_value());
        QCOMPARE(int(**parse_format("q4_k")), int(TensorType::Q4_K));
        auto bad = parse_format("Q7_X");
        QVERIFY(!bad.ok());
        QVERIFY(bad.error().message.find("Q7_X") != std::string::npos);
        QVERIFY(!parse_format("IQ2_XXS").ok());
        QCOMPARE(int(tensor_class_of("blk.0.attn_q.weight")), int(TensorClass::Attention));
        QCOMPARE(int(tensor_class_of("blk.3.ffn_down.weight")), int(TensorClass::FeedForward));
        QCOMPARE(int(tensor_class_of("blk.3.attn_norm.weight")), int(TensorClass::Other));
        QCOMPARE(int(tensor_class_of("token_embd.weight")), int(TensorClass::Embedding));
        QCOMPARE(int(tensor_class_of("output.weight")), int(TensorClass::Output));
    }

    void requantized_logits_close_data() {
        QTest::addColumn<QString>("type");
        QTest::addColumn<double>("tol");
        // random tiny weights amplify rounding; the tolerances follow the bit widths
        QTest::newRow("F16") << "F16" << 0.003;
        QTest::newRow("Q8_0") << "Q8_0" << 0.04;
        QTest::newRow("Q6_K") << "Q6_K" << 0.1;
        QTest::newRow("Q4_K") << "Q4_K" << 0.35;
        QTest::newRow("Q4_0") << "Q4_0" << 0.4;
    }
    void requantized_logits_close() {
        QFETCH(QString, type);
        QFETCH(double, tol);
        RequantizeParams p;
        p.plan.base = *parse_format(type.toStdString());
        const TensorType out_type = type == "F16" ? TensorType::F16 : TensorType::Q8_0;
        p.plan.by_class[TensorClass::Output] = out_type;
        int n_progress = 0;
        p.progress = [&](float, const std::string &) { ++n_progress; };
        const std::string out = m_dir + "/rq_" + type.toStdString() + ".gguf";
        auto r = requantize_file(m_src, out, p);
        QVERIFY2(r.ok(), r ? "" : r.error().message.c_str());
        QVERIFY(n_progress > 0);
        QVERIFY(r->bytes_out < r->bytes_in);
        auto f = gguf::File::open(out);
        QVERIFY(f.ok());
        QCOMPARE(*(*f)->get_string("general.architecture"), std::string_view("llama"));
        QVERIFY((*f)->get_string("glassbox.quantization.plan")->find(type.toStdString()) != std::string_view::npos);
        QCOMPARE(int((*f)->find_tensor("blk.0.ffn_up.weight")->type), int(*p.plan.base));
        QCOMPARE(int((*f)->find_tensor("output.weight")->type), int(out_type));
        QCOMPARE(int((*f)->find_tensor("blk.0.attn_norm.weight")->type), int(TensorType::F32));
        const auto a = logits_of(m_src, m_toks), b = logits_of(out, m_toks);
        QVERIFY(!a.empty() && a.size() == b.size());
        const double e = rel_rms(a, b);
        qInfo("%s: relative RMS logit difference %.5f", qPrintable(type), e);
        QVERIFY(e < tol);
    }

    void fallback_and_strict() {
        SynthSpec s = *synth_preset("tiny-llama");
        s.n_embd = 64; s.head_dim = 16; s.n_ff = 96;  // rows of 64 / 96 cannot take 256-blocks
        s.types = *synth_types("F32");
        const std::string small = m_dir + "/small.gguf";
        QVERIFY(write_synthetic_model(s, small).ok());
        auto f = gguf::File::open(small);
        QVERIFY(f.ok());
        QuantPlan plan;
        plan.base = TensorType::Q4_K;
        auto tp = plan_requantize(**f, plan);
        QVERIFY(tp.ok());
        for (const TensorPlan & t : *tp) {
            if (t.name == "blk.0.attn_q.weight") { QCOMPARE(int(t.to), int(TensorType::Q5_0)); QVERIFY(t.fallback); }
            if (t.name == "blk.0.ffn_down.weight") { QCOMPARE(int(t.to), int(TensorType::Q5_0)); }  // 96 % 32 == 0
        }
        plan.allow_fallback = false;
        auto strict = plan_requantize(**f, plan);
        QVERIFY(!strict.ok());
        QVERIFY(strict.error().message.find(".weight") != std::string::npos);  // names the tensor
        QVERIFY(strict.error().message.find("256") != std::string::npos);
        // requantize_file refuses too, and writes nothing
        RequantizeParams p;
        p.plan = plan;
        const std::string out = m_dir + "/strict.gguf";
        QVERIFY(!requantize_file(small, out, p).ok());
        QVERIFY(!std::filesystem::exists(out));
    }

    void cancel_leaves_nothing() {
        std::atomic<bool> cancel{true};
        RequantizeParams p;
        p.plan.base = TensorType::Q8_0;
        p.cancel = &cancel;
        const std::string out = m_dir + "/cancelled.gguf";
        auto r = requantize_file(m_src, out, p);
        QVERIFY(!r.ok());
        QCOMPARE(int(r.error().code), int(ErrorCode::Cancelled));
        QVERIFY(!std::filesystem::exists(out));
    }

    void gptq_end_to_end() {
        std::string text;
        for (int i = 0; i < 40; ++i) text += "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu ";
        RequantizeParams p;
        p.gptq.enabled = true;
        p.gptq.type = TensorType::Q4_0;
        p.gptq.calib_text = text;
        p.gptq.calib_ctx = 128;
        p.gptq.min_calib_tokens = 64;
        p.n_threads = 2;
        const std::string out = m_dir + "/gptq.gguf";
        auto r = requantize_file(m_src, out, p);
        QVERIFY2(r.ok(), r ? "" : r.error().message.c_str());
        int n_gptq = 0;
        for (const auto & t : r->tensors) n_gptq += t.gptq;
        QCOMPARE(n_gptq, 2 * 7);  // q, k, v, o, gate, up, down in 2 layers
        auto f = gguf::File::open(out);
        QVERIFY(f.ok());
        QCOMPARE(*(*f)->get_string("glassbox.quantization.method"), std::string_view("gptq"));
        QCOMPARE(*(*f)->get_int("general.file_type"), int64_t(2));
        const auto a = logits_of(m_src, m_toks), b = logits_of(out, m_toks);
        QVERIFY(!b.empty());
        QVERIFY(rel_rms(a, b) < 0.3);

        // calibration text too short: a clear error, nothing written
        p.gptq.calib_text = "alpha beta";
        const std::string out2 = m_dir + "/gptq_short.gguf";
        auto bad = requantize_file(m_src, out2, p);
        QVERIFY(!bad.ok());
        QVERIFY(bad.error().message.find("calibration text") != std::string::npos);
        QVERIFY(!std::filesystem::exists(out2));
        // the source model stays usable
        QVERIFY(!logits_of(m_src, m_toks).empty());
    }
};

QTEST_APPLESS_MAIN(TestRequantize)
#include "tst_requantize.moc"
