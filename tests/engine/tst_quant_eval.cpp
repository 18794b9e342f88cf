// Evaluation metrics (KLD, same-top-token, correct-token probability, percentiles,
// perplexity) against a plain long-double implementation, and the variant table
// on a tiny synthetic model (a model against itself, and against compute_perplexity).
#include "glassbox/perplexity.h"
#include "glassbox/quant/eval.h"
#include "glassbox/synth.h"

#include <QtTest>

#include <cmath>
#include <filesystem>
#include <random>

using namespace gb;
using namespace gb::quant;

class TestQuantEval : public QObject {
    Q_OBJECT
  private slots:
    void compare_logits_matches_oracle() {
        std::mt19937 rng(11);
        std::normal_distribution<float> nd(0.0f, 3.0f);
        for (int trial = 0; trial < 20; ++trial) {
            const int n = 50 + trial * 7;
            std::vector<float> a(static_cast<size_t>(n)), b(static_cast<size_t>(n));
            for (int i = 0; i < n; ++i) { a[size_t(i)] = nd(rng); b[size_t(i)] = a[size_t(i)] + 0.3f * nd(rng); }
            const int target = trial % n;
            // oracle: softmax in long double, direct sums
            long double za = 0, zb = 0;
            for (int i = 0; i < n; ++i) { za += std::exp((long double)a[size_t(i)]); zb += std::exp((long double)b[size_t(i)]); }
            long double kld = 0;
            int ta = 0, tb = 0;
            for (int i = 0; i < n; ++i) {
                const long double pa = std::exp((long double)a[size_t(i)]) / za, pb = std::exp((long double)b[size_t(i)]) / zb;
                kld += pa * std::log(pa / pb);
                if (a[size_t(i)] > a[size_t(ta)]) ta = i;
                if (b[size_t(i)] > b[size_t(tb)]) tb = i;
            }
            const TokenCompare c = compare_logits(a.data(), b.data(), n, target);
            QVERIFY(std::fabs(c.kld - double(kld)) < 1e-9 * std::max(1.0, double(kld)));
            QCOMPARE(c.same_top, ta == tb);
            QVERIFY(std::fabs(c.p_ref - double(std::exp((long double)a[size_t(target)]) / za)) < 1e-12);
            QVERIFY(std::fabs(c.p_var - double(std::exp((long double)b[size_t(target)]) / zb)) < 1e-12);
            QVERIFY(std::fabs(c.nll_var + double(std::log(std::exp((long double)b[size_t(target)]) / zb))) < 1e-9);
        }
        // identical logits: KLD 0, same top
        std::vector<float> a = {1.0f, 2.0f, 3.0f};
        const TokenCompare c = compare_logits(a.data(), a.data(), 3, 0);
        QCOMPARE(c.kld, 0.0);
        QVERIFY(c.same_top);
    }
    void percentiles() {
        std::vector<double> v;
        for (int i = 100; i >= 0; --i) v.push_back(double(i));  // 0..100 shuffled order
        QCOMPARE(percentile(v, 50), 50.0);
        QCOMPARE(percentile(v, 99), 99.0);
        QCOMPARE(percentile({1.0, 2.0}, 50), 1.5);  // numpy.percentile([1,2],50)
        QCOMPARE(percentile({3.0, 1.0, 2.0, 10.0}, 90), 7.9);  // numpy: 7.9
    }
    void variants_table() {
        const std::string dir = QDir::tempPath().toStdString() + "/gb_quant_eval";
        std::filesystem::create_directories(dir);
        auto spec = synth_preset("tiny-llama");
        QVERIFY(spec.ok());
        spec->types = *synth_types("Q8_0");
        const std::string a = dir + "/a.gguf";
        QVERIFY(write_synthetic_model(*spec, a).ok());
        spec->types = *synth_types("Q4_0");
        const std::string b = dir + "/b.gguf";
        QVERIFY(write_synthetic_model(*spec, b).ok());
        std::string text;
        for (int i = 0; i < 60; ++i) text += "the quick brown fox jumps over a lazy dog and runs ";
        EvalParams ep;
        ep.n_ctx = 64;
        ep.max_chunks = 2;
        ep.n_threads = 2;
        auto r = evaluate_variants({{"a", a}, {"a2", a}, {"b", b}}, text, ep);
        QVERIFY2(r.ok(), r ? "" : r.error().message.c_str());
        QCOMPARE(int(r->size()), 3);
        const VariantResult & self = (*r)[1];
        QVERIFY(self.kld_mean < 1e-9);
        QCOMPARE(self.same_top_pct, 100.0);
        QVERIFY(std::fabs(self.dp_mean) < 1e-12);
        QCOMPARE(self.n_scored, int64_t(2 * (64 - 1 - 32)));
        QVERIFY((*r)[2].kld_mean > 0.0);
        QVERIFY((*r)[2].kld_p50 <= (*r)[2].kld_p90 && (*r)[2].kld_p90 <= (*r)[2].kld_p99 && (*r)[2].kld_p99 <= (*r)[2].kld_max);
        // perplexity equals compute_perplexity (an independent path through perplexity.cpp)
        for (int v : {0, 2}) {
            auto m = Model::load(v == 0 ? a : b);
            QVERIFY(m.ok());
            const Tokenizer & tok = (*m)->tokenizer();
            PerplexityParams pp;
            pp.n_ctx = 64;
            pp.max_chunks = 2;
            pp.n_threads = 2;
            auto ppl = compute_perplexity(*m, tok.encode(text, tok.add_bos(), false), pp);
            QVERIFY(ppl.ok());
            QVERIFY(std::fabs(ppl->ppl - (*r)[size_t(v)].ppl) < 1e-6 * ppl->ppl);
        }
        // memory = mapped weight tensors + the evaluation context's KV cache
        for (int v : {0, 2}) {
            auto m = Model::load(v == 0 ? a : b);
            QVERIFY(m.ok());
            uint64_t expect = 0;
            for (const auto & t : (*m)->file().tensors()) expect += t.n_bytes;
            ContextParams cp;
            cp.n_ctx = 64;
            cp.n_batch = 64;
            auto ctx = Context::create(*m, cp);
            QVERIFY(ctx.ok());
            expect += (*ctx)->kv_bytes();
            QCOMPARE((*r)[size_t(v)].memory_bytes, expect);
        }
        QVERIFY((*r)[2].memory_bytes < (*r)[0].memory_bytes);  // Q4_0 weights are smaller than Q8_0
        QVERIFY(format_table(*r).find("| b |") != std::string::npos);
        std::filesystem::remove_all(dir);
    }
};

QTEST_APPLESS_MAIN(TestQuantEval)
#include "tst_quant_eval.moc"
