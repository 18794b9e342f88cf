// The real gemma-3-270m Q4_K_M model (skipped when the file is missing): loads,
// and the optimized Context agrees with the scalar reference forward pass on a
// short prompt (same top-1 token at every position, small logit differences),
// and with llama.cpp's logits on the same prompt (fixture from
// scripts/make_forward_fixtures.py).
#include "cpu/matmul.h"
#include "glassbox/model.h"

#include <QElapsedTimer>
#include <QFile>
#include <QFileInfo>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QtTest>

#include <cmath>

using namespace gb;

class TstModelGemma : public QObject {
    Q_OBJECT

    std::shared_ptr<const Model> m_model;

  private slots:
    void initTestCase() {
        const QString path = QStringLiteral(GLASSBOX_MODEL_DIR "/gemma-3-270m-q4_k_m.gguf");
        if (!QFileInfo::exists(path)) QSKIP("model file missing: " GLASSBOX_MODEL_DIR "/gemma-3-270m-q4_k_m.gguf");
        QElapsedTimer timer;
        timer.start();
        auto m = Model::load(path.toStdString());
        QVERIFY2(m.ok(), m.ok() ? "" : m.error().to_string().c_str());
        qInfo("load took %lld ms", static_cast<long long>(timer.elapsed()));
        m_model = *m;
    }

    void hparams() {
        const HParams & hp = m_model->hparams();
        QCOMPARE(hp.arch, Arch::Gemma3);
        QCOMPARE(hp.n_layer, 18);
        QCOMPARE(hp.n_embd, 640);
        QCOMPARE(hp.n_head, 4);
        QCOMPARE(hp.n_head_kv, 1);
        QCOMPARE(hp.head_dim_k, 256);
        QCOMPARE(hp.n_ff, 2048);
        QCOMPARE(hp.n_vocab, 262144);
        QCOMPARE(hp.sliding_window, 512);
        QCOMPARE(hp.rope_freq_base, 1000000.0f);
        QCOMPARE(hp.rope_freq_base_swa, 10000.0f);
        for (int il = 0; il < hp.n_layer; ++il) QCOMPARE(bool(hp.layer_is_swa[il]), il % 6 != 5);
        QCOMPARE(m_model->description(), std::string("gemma3 270M Q4_K_M"));
    }

    // Same top-1 token where the reference has no near-tie, and a bound on
    // the max |difference|: logits of this model span tens of units; the
    // Context quantizes activations to 8 bits per block and K/V to F16 where
    // the oracle stays in f32/double. Gemma's residual stream has large
    // outliers, so this moves logits by up to ~1.5 (3-6% relative rms),
    // about as much as llama.cpp differs from the same oracle (measured).
    void matches_reference() {
        const std::vector<Token> tokens = {2, 818, 5279, 529, 7001, 563, 9079, 236761};  // <bos> + 7 text tokens
        QElapsedTimer timer;
        timer.start();
        auto ref = reference_forward(*m_model, tokens);
        QVERIFY(ref.ok());
        qInfo("reference_forward: %lld ms", static_cast<long long>(timer.restart()));
        ContextParams p;
        p.n_ctx     = 64;
        p.n_threads = 2;
        auto ctx    = Context::create(m_model, p);
        QVERIFY(ctx.ok());
        QVERIFY((*ctx)->decode(tokens, true).ok());
        qInfo("Context prefill of %zu tokens: %lld ms", tokens.size(), static_cast<long long>(timer.elapsed()));
        const auto got    = (*ctx)->logits();
        const int n_vocab = m_model->hparams().n_vocab;
        QCOMPARE(got.size(), ref->size());
        double max_diff = 0.0, max_abs = 0.0;
        for (size_t t = 0; t < tokens.size(); ++t) {
            const float * a = got.data() + t * n_vocab;
            const float * b = ref->data() + t * n_vocab;
            const int top_a = int(std::max_element(a, a + n_vocab) - a);
            const int top_b = int(std::max_element(b, b + n_vocab) - b);
            float second_b = -INFINITY;  // the reference's runner-up logit
            for (int i = 0; i < n_vocab; ++i) {
                if (i != top_b) second_b = std::max(second_b, b[i]);
            }
            // Same top-1 unless the reference itself has a near-tie (top-2 gap
            // under 0.25, far below the logit noise bounded below): position 4
            // of this prompt is one (gap 0.13; llama.cpp's own gap there is 0.006).
            if (b[top_b] - second_b >= 0.25f) {
                QVERIFY2(top_a == top_b, qPrintable(QString("position %1: top-1 %2 vs reference %3").arg(t).arg(top_a).arg(top_b)));
            }
            for (int i = 0; i < n_vocab; ++i) {
                max_diff = std::max(max_diff, double(std::fabs(a[i] - b[i])));
                max_abs  = std::max(max_abs, double(std::fabs(b[i])));
            }
        }
        qInfo("max |logit diff| %.4f (max |logit| %.2f)", max_diff, max_abs);
        QVERIFY(max_abs > 1.0);
        QVERIFY2(max_diff < 2.0, qPrintable(QString("max diff %1").arg(max_diff)));
    }

    // llama.cpp on the same file and prompt, evaluated as one batch as the
    // fixture was: same top-1 at every position and its top-20 logits matched
    // within 1e-3. In llama.cpp numerics mode (cpu::set_llamacpp_order) the
    // Context follows llama.cpp's CPU numerics (roundings and summation
    // orders), so the logits are measured bit-identical (0); without that they
    // differed by up to ~1.2 on this model (large activations). A wrong mask,
    // RoPE or norm moves them by many units.
    void matches_llama_cpp() {
        cpu::set_llamacpp_order(true);  // llama.cpp numerics mode (cpu/matmul.h)
        struct Reset { ~Reset() { cpu::set_llamacpp_order(false); } } reset;
        QFile f(QStringLiteral(GLASSBOX_FIXTURE_DIR "/llamacpp/gemma3_270m_logits.json"));
        QVERIFY(f.open(QIODevice::ReadOnly));
        const QJsonObject fixture = QJsonDocument::fromJson(f.readAll()).object();
        std::vector<Token> tokens;
        for (const auto & v : fixture["tokens"].toArray()) tokens.push_back(v.toInt());
        const QJsonArray positions = fixture["positions"].toArray();
        QCOMPARE(size_t(positions.size()), tokens.size());
        ContextParams p;
        p.n_ctx     = 64;
        p.n_threads = 2;
        p.n_batch   = 512;  // one batch, as llama.cpp ran it (chunking: tst_forward)
        auto ctx    = Context::create(m_model, p);
        QVERIFY(ctx.ok());
        QVERIFY((*ctx)->decode(tokens, true).ok());
        const auto got    = (*ctx)->logits();
        const int n_vocab = m_model->hparams().n_vocab;
        double max_diff   = 0.0;
        for (qsizetype t = 0; t < positions.size(); ++t) {
            const QJsonArray ids    = positions[t].toObject()["ids"].toArray();
            const QJsonArray logits = positions[t].toObject()["logits"].toArray();
            const float * row       = got.data() + size_t(t) * n_vocab;
            QCOMPARE(int(std::max_element(row, row + n_vocab) - row), ids[0].toInt());
            for (qsizetype i = 0; i < ids.size(); ++i) max_diff = std::max(max_diff, std::fabs(row[ids[i].toInt()] - logits[i].toDouble()));
        }
        qInfo("max |logit diff| vs llama.cpp over its top-20: %.4f", max_diff);
        QVERIFY2(max_diff < 1e-3, qPrintable(QString("max diff %1").arg(max_diff)));
    }
};

QTEST_APPLESS_MAIN(TstModelGemma)
#include "tst_model_gemma.moc"
