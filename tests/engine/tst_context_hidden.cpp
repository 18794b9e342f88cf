// The CPU side of CUDA partial offload (engine/src/context_hidden.h): a CPU
// Context fed hidden states instead of tokens. With no layer skipped, feeding
// the scaled embedding rows must give the logits of decode() bit for bit, in
// one chunk and token by token; bad sizes are refused. (The GPU side and the
// splits with N > 0 are tested in tests/cuda/tst_cuda_model.cpp.)
#include "context_hidden.h"
#include "synth_model.h"
#include "glassbox/model.h"
#include "glassbox/synth.h"

#include <QTemporaryDir>
#include <QtTest>

#include <chrono>
#include <random>

using namespace gb;

class TstContextHidden : public QObject {
    Q_OBJECT

    QTemporaryDir m_dir;
    std::mt19937 m_rng;

    std::shared_ptr<const Model> model(const std::string & preset, uint64_t seed) {
        auto spec = synth_preset(preset);
        if (!spec) qFatal("%s", spec.error().to_string().c_str());
        auto types = synth_types("Q4_K_M");
        if (!types) qFatal("%s", types.error().to_string().c_str());
        spec->types = *types;
        spec->seed = seed;
        const std::string path = m_dir.filePath(QString::fromStdString(preset + ".gguf")).toStdString();
        return gb::test::write_and_load(*spec, path, 0);
    }

    // x [n, n_embd] = embd_scale * token_embd[tokens]
    static std::vector<float> embeddings(const Model & m, const std::vector<Token> & toks) {
        const HParams & hp = m.hparams();
        const gguf::TensorInfo * t = m.file().find_tensor("token_embd.weight");
        std::vector<float> x(toks.size() * size_t(hp.n_embd));
        for (size_t i = 0; i < toks.size(); ++i) {
            float * row = x.data() + i * size_t(hp.n_embd);
            dequantize_row(t->type, t->data + size_t(toks[i]) * row_size(t->type, hp.n_embd), row, hp.n_embd);
            if (hp.embd_scale != 1.0f) {
                for (int j = 0; j < hp.n_embd; ++j) row[j] *= hp.embd_scale;
            }
        }
        return x;
    }

  private slots:
    void initTestCase() {
        QVERIFY(m_dir.isValid());
        const uint64_t seed = uint64_t(std::chrono::system_clock::now().time_since_epoch().count());
        qInfo("seed %llu", static_cast<unsigned long long>(seed));
        m_rng.seed(uint32_t(seed));
    }

    void equals_decode_data() {
        QTest::addColumn<QString>("preset");
        QTest::newRow("tiny-llama") << "tiny-llama";
        QTest::newRow("tiny-gemma3 (embedding scale, windows)") << "tiny-gemma3";
    }
    void equals_decode() {
        QFETCH(QString, preset);
        auto m = model(preset.toStdString(), m_rng());
        const int V = m->hparams().n_vocab, n = 40;
        std::uniform_int_distribution<int> pick(0, V - 1);
        std::vector<Token> toks(static_cast<size_t>(n));
        for (auto & t : toks) t = pick(m_rng);
        ContextParams cp;
        cp.n_ctx = 64;
        cp.n_batch = 64;
        cp.n_threads = 2;
        auto a = Context::create(m, cp);
        auto b = Context::create(m, cp);
        QVERIFY(a.ok() && b.ok());
        const std::vector<float> x = embeddings(*m, toks);
        // one chunk, all logits
        QVERIFY((*a)->decode(toks, true).ok());
        std::vector<float> got(size_t(n) * size_t(V), NAN);
        QVERIFY(detail::decode_hidden(**b, x.data(), n, n, got.data()).ok());
        QCOMPARE((*b)->n_past(), n);
        const auto want = (*a)->logits();
        QVERIFY(std::equal(want.begin(), want.end(), got.begin()));
        // token by token after a truncate, last-row logits
        (*a)->truncate(n / 2);
        (*b)->truncate(n / 2);
        for (int i = n / 2; i < n; ++i) {
            QVERIFY((*a)->decode(std::span<const Token>(toks).subspan(size_t(i), 1), false).ok());
            std::vector<float> row(size_t(V), NAN);
            QVERIFY(detail::decode_hidden(**b, x.data() + size_t(i) * m->hparams().n_embd, 1, 1, row.data()).ok());
            const auto w = (*a)->logits();
            QVERIFY2(std::equal(w.begin(), w.end(), row.begin()), qPrintable(QString("position %1").arg(i)));
        }
        QCOMPARE((*b)->n_past(), n);
    }

    void refuses_bad_sizes() {
        auto m = model("tiny-llama", m_rng());
        ContextParams cp;
        cp.n_ctx = 32;
        cp.n_batch = 16;
        cp.n_threads = 1;
        auto c = Context::create(m, cp);
        QVERIFY(c.ok());
        std::vector<float> x(size_t(32) * m->hparams().n_embd, 0.5f);
        std::vector<float> out(size_t(m->hparams().n_vocab));
        auto too_many = detail::decode_hidden(**c, x.data(), 17, 1, out.data());
        QVERIFY(!too_many.ok());
        QCOMPARE(too_many.error().code, ErrorCode::InvalidArgument);
        QVERIFY(detail::decode_hidden(**c, x.data(), 16, 0, nullptr).ok());
        QVERIFY(detail::decode_hidden(**c, x.data(), 16, 1, out.data()).ok());
        auto full = detail::decode_hidden(**c, x.data(), 1, 1, out.data());
        QVERIFY(!full.ok());
        QCOMPARE(full.error().code, ErrorCode::OutOfRange);
        QCOMPARE((*c)->n_past(), 32);
    }
};

QTEST_APPLESS_MAIN(TstContextHidden)
#include "tst_context_hidden.moc"
