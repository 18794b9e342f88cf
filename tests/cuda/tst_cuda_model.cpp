// Whole-model logits of the CUDA Context against the CPU path on synthetic
// models of each architecture (fresh random weights and tokens each run),
// teacher-forced: prefill (GEMM path), small batches (matvec path) and
// token-by-token decode (CUDA graph). The oracle is the scalar fp32 reference
// forward pass (gb::reference_forward). The prefill (f16 activations) and the
// decode paths with CudaContextParams::precise_decode (activations in two int8
// planes, ~16 bits: Q8Act::lo) meet the criterion: overall top-1 >=
// 99% and mean KL(p_ref || p_gpu) < kPrefillMaxKl / kDecodeMaxKl. The default
// decode quantizes activations to 8 bits, as the CPU Context does, and 8-bit
// rounding flips near-ties of the nearly flat logits of random models (the CPU
// Context agrees with the reference on only ~83-100% of top-1 tokens): there
// (and in partial offload, whose layers after N run the CPU Context's
// numerics) mean KL < kMaxKl and <= kDecodeKlVsCpu x the CPU Context's,
// top-1 >= 99% on the decisive positions (reference top-1 margin >= kMargin
// logits), and overall top-1 no worse than the CPU Context's minus 3 points,
// 3 positions or 3 standard deviations of two near-tie flip rates, whichever
// is more (top1_slack). Also partial offload (first N
// layers on the GPU, the rest on the CPU) and the memory-estimate refusal
// that proposes the N that fits. And the real gemma-3-270m (GB_REAL_MODEL or
// GLASSBOX_MODEL_DIR; skipped when absent), teacher-forced on a fixed text,
// against the f32 reference and the CPU Context (see kRealMinTop1).
// Needs an NVIDIA GPU (label cuda).
#include "glassbox/cuda_backend.h"
#include "glassbox/model.h"
#include "glassbox/synth.h"

#include <QFileInfo>
#include <QScopeGuard>
#include <QTemporaryDir>
#include <QtTest>

#include <chrono>
#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <random>
#include <set>
#include "logit_agreement.h"
#include "synth_model.h"
#include "test_seed.h"

using namespace gb;

namespace {

constexpr double kMaxKl = 2e-3;       // mean KL over positions (nats)
constexpr double kMinTop1 = 0.99;     // on decisive positions
// How far overall top-1 (gpu_top1) may fall below the CPU Context's (cpu_top1):
// 3 points, 3 positions, or three standard deviations of the difference of the
// two flip rates (each with its own variance: an unpooled two-proportion
// test), whichever is more. Flips are near ties (the decisive positions and KL
// are checked apart): on 200 random tokens of the gemma3-270m shape, ~120
// positions lead by < kMargin and 8-bit activations flip 5-9% of all positions
// in either engine, so a 3-point bound failed a partial-offload row at 0.910 vs
// 0.945 (decisive 1.0000, KL half the CPU Context's; H200, seventh session).
// With the CPU's rate for both, a row where the CPU Context flipped 1 of 200
// failed at 0.960 vs 0.995 (tiny-qwen2 batches of 3: decisive 1.0000, KL
// 3.3e-5 vs the CPU's 5.3e-5; seed 1795793799966150980, H200, eighth session).
double top1_slack(int n_positions, double cpu_top1, double gpu_top1) {
    const double n = std::max(1, n_positions);
    const double p = std::clamp(1.0 - cpu_top1, 0.0, 1.0), q = std::clamp(1.0 - gpu_top1, 0.0, 1.0);
    return std::max({0.03, 3.0 / n, 3.0 * std::sqrt((p * (1.0 - p) + q * (1.0 - q)) / n)});
}
// Decisive: reference top-1 minus top-2 logit >= kMargin. 8-bit activation
// rounding moves logits of these random models by a few hundredths: the CPU
// Context against the reference flipped 24 of 11235 positions with a lead
// >= 0.05, all of them below 0.1 (2 flips in a 160-position row: ~5% a check),
// and 0 of 9015 with a lead >= 0.1 (tiny llama/gemma3/qwen2 Q4_K_M, 70 seeds,
// dev machine, h6/agree); 0.05 before.
constexpr double kMargin = 0.1;
// Prefill (tensor-core GEMM with f16 activations; no 8-bit activations
// anywhere) against the f32 reference: the criterion, overall top-1
// >= 99% (on fewer than 100 positions one position may differ), and a mean KL
// bound (measured: synthetic rows <= 3.6e-7, real model 1.9e-6).
constexpr double kPrefillMinTop1 = 0.99;
constexpr double kPrefillMaxKl = 2e-5;
double prefill_min_top1(int n) { return std::min(kPrefillMinTop1, 1.0 - 1.0 / std::max(1, n)); }
// Precise decode and small batches (matvec with activations in two int8 planes
// per 32 values, x ~= d (q + lo / 256)): the prefill's criterion, overall
// top-1 >= prefill_min_top1 and mean KL < kDecodeMaxKl (measured: synthetic
// rows <= 5.4e-8, real model 3.0e-7, H200). (An emulation of the 8-bit decode
// on the dev machine's CPU, per projection class: each class of matmul input
// (q/k/v, gate/up, down; less attn_output and the head) at 8 bits costs ~1-4
// flips of the real model's 298 positions; 12-bit activations, 1 flip.)
constexpr double kDecodeMaxKl = 2e-5;
// Default decode (activations at 8 bits per 32 values, as the CPU Context
// quantizes them per 32 or 256): no further from the f32 reference than the
// CPU Context is, in KL (<= kDecodeKlVsCpu x the CPU Context's, measured
// 0.2-1.0x) and in top-1 (top1_slack).
constexpr double kDecodeKlVsCpu = 1.5;
// Real model (teacher-forced, 298 tokens of kRealText). 8-bit activation
// rounding makes a forward pass chaotic at the bit level: a rounding decision
// that flips moves the next layer's input by a whole step, so any difference
// of float order grows to the full quantization noise within a few layers.
// Measured on the dev machine's CPU (2026-11-27, h6/agree): one 1-ulp change of
// 0.01% of the matmul inputs moves the CPU Context's logits to top-1 0.970 /
// KL 3.5e-3 against its own; the CPU Context in llama.cpp's summation order
// (the same quantizers, bit for bit) agrees with it on 95.6%, KL 5.5e-3; the
// f32 reference itself agrees with it on 95.6%, KL 4.9e-3 (70% of which from
// its per-256 Q8_K activations of the Q4_K / Q6_K matmuls). So >= 99% against
// the CPU Context needs the CPU Context's bits, not better arithmetic; against
// the f32 reference the prefill (measured top-1 1.0000, KL 1.9e-6, H200) and
// the precise decode (1.0000, KL 3.0e-7) meet the criterion, the
// default decode the CPU Context's own distance (top-1 0.980, KL 2.0e-3 vs the
// CPU Context's 0.956, 4.9e-3). Against the CPU Context: top-1 >= 99% where its top-1 leads by >= kRealMargin logits,
// overall top-1 >= 93%, mean KL(p_cpu || p_gpu) < kRealMaxKl.
constexpr double kRealMinTop1 = 0.99;
constexpr double kRealMargin = 0.5;
constexpr double kRealMinTop1All = 0.93;
constexpr double kRealMaxKl = 0.02;

// About 300 tokens of plain English for the real-model test.
constexpr const char * kRealText =
    "The lighthouse keeper climbed the spiral stairs every evening at dusk, carrying a small tin of oil and a cloth "
    "for the lens. For thirty years he had watched the ships pass the rocky point, some of them heavy with grain "
    "from the southern farms, others light and fast, bound for the islands where the fishing fleets wintered. He "
    "kept a ledger of every vessel he saw: its name when he could read it, the colour of its sails, the hour, and "
    "the state of the sea. On stormy nights he did not sleep at all. He sat by the great lamp and listened to the "
    "wind tearing at the shutters, and he thought about the sailors out there in the dark, trusting the light to "
    "show them where the land began. In the spring a young woman from the town came to help him. She was a student "
    "of astronomy, and she asked whether she might use the gallery at the top of the tower to watch the stars. He "
    "agreed on the condition that she also learned to trim the wick and polish the brass. Over the summer they "
    "became friends. She taught him the names of the constellations and how to find the pole star, and he taught "
    "her how to read the weather from the shape of the clouds and the colour of the water at sunrise. When autumn "
    "came she returned to the university, but she wrote to him every month, and in each letter she included a "
    "small drawing of the sky as it would look from the lighthouse on the night the letter arrived.";

using gb::test::Agreement;
Agreement compare(std::span<const float> ref, std::span<const float> got, int V, double margin = kMargin) {
    return gb::test::compare_logits(ref, got, V, margin);
}

}  // namespace

class TstCudaModel : public QObject {
    Q_OBJECT

    QTemporaryDir m_dir;
    uint64_t m_seed = 0;
    std::mt19937 m_rng;

    std::shared_ptr<const Model> model(const std::string & preset, const std::string & ftype) {
        return gb::test::preset_model(m_dir.path().toStdString(), preset, ftype, m_seed);
    }

  private slots:
    void initTestCase() {
        const cuda::DeviceReport r = cuda::probe();
        if (!r.available) QSKIP(qPrintable(QString::fromStdString("no usable CUDA device: " + r.message)));
        QVERIFY(m_dir.isValid());
        m_seed = gb::test::run_seed();
        m_rng.seed(uint32_t(m_seed));
    }

    void logits_data() {
        QTest::addColumn<QString>("preset");
        QTest::addColumn<QString>("ftype");
        QTest::addColumn<int>("n_tok");
        QTest::newRow("tiny-llama Q4_K_M") << "tiny-llama" << "Q4_K_M" << 200;
        QTest::newRow("tiny-llama Q8_0") << "tiny-llama" << "Q8_0" << 200;
        QTest::newRow("tiny-llama F16") << "tiny-llama" << "F16" << 200;
        QTest::newRow("tiny-llama Q5_1") << "tiny-llama" << "Q5_1" << 200;
        QTest::newRow("tiny-qwen2 Q4_K_M") << "tiny-qwen2" << "Q4_K_M" << 200;
        QTest::newRow("tiny-gemma3 Q4_K_M") << "tiny-gemma3" << "Q4_K_M" << 200;
        QTest::newRow("gemma3-270m Q4_K_M") << "gemma3-270m" << "Q4_K_M" << 48;
        // rows of 2048 / 8192 values in Q4_K and Q6_K: the streaming decode kernels (matvec_pipe.cu)
        QTest::newRow("mid-llama Q4_K_M") << "mid-llama" << "Q4_K_M" << 64;  // layer 1: Q6_K ffn_down
    }
    void logits() {
        QFETCH(QString, preset);
        QFETCH(QString, ftype);
        QFETCH(int, n_tok);
        auto m = model(preset.toStdString(), ftype.toStdString());
        const int V = m->hparams().n_vocab;
        std::uniform_int_distribution<int> pick(0, V - 1);
        std::vector<Token> toks(static_cast<size_t>(n_tok));
        for (auto & t : toks) t = pick(m_rng);

        ContextParams cp;
        cp.n_ctx = 512;
        cp.n_batch = 512;
        cp.n_threads = 0;
        auto refr = reference_forward(*m, toks);
        QVERIFY(refr.ok());
        const std::vector<float> & ref = *refr;
        auto cpu = Context::create(m, cp);
        QVERIFY(cpu.ok());
        QVERIFY((*cpu)->decode(toks, true).ok());
        const Agreement ca = compare(ref, (*cpu)->logits(), V);
        qInfo("%s CPU Context vs reference: top-1 %.4f (decisive %.4f of %d), KL mean %.3g max %.3g",
              qPrintable(preset + " " + ftype), ca.top1, ca.top1_decisive, ca.n_decisive, ca.mean_kl, ca.max_kl);
        // the criterion: prefill (kPrefillMinTop1, kPrefillMaxKl) and
        // precise decode (prefill_min_top1, kDecodeMaxKl); the 8-bit decode: no
        // further from the reference than the CPU Context
        auto check = [&](const Agreement & a, const std::string & what) {
            qInfo("%s %s vs reference: top-1 %.4f (decisive %.4f of %d), KL mean %.3g max %.3g", qPrintable(preset + " " + ftype),
                  what.c_str(), a.top1, a.top1_decisive, a.n_decisive, a.mean_kl, a.max_kl);
            if (what.find("prefill") != std::string::npos) return a.top1 >= prefill_min_top1(a.n) && a.mean_kl < kPrefillMaxKl;
            if (what.find("precise") != std::string::npos) return a.top1 >= prefill_min_top1(a.n) && a.mean_kl < kDecodeMaxKl;
            return a.mean_kl < kMaxKl && a.mean_kl <= kDecodeKlVsCpu * ca.mean_kl + 1e-6 && a.top1_decisive >= kMinTop1 &&
                   a.top1 >= ca.top1 - top1_slack(a.n, ca.top1, a.top1);
        };

        cuda::CudaContextParams gp;
        gp.context = cp;
        // 1. prefill: one call, all logits (tensor-core GEMM path; flash attention
        //    forced, as the small synthetic models have too few heads to pick it)
        {
            qputenv("GB_CUDA_FLASH", "1");
            auto unforce = qScopeGuard([] { qunsetenv("GB_CUDA_FLASH"); });
            auto g = cuda::create_context(m, gp);
            QVERIFY2(g.ok(), g.ok() ? "" : g.error().to_string().c_str());
            QVERIFY((*g)->decode(toks, true).ok());
            QVERIFY2(check(compare(ref, (*g)->logits(), V), "GPU prefill"), "prefill disagrees with the reference");
        }
        // (both decode modes: 8-bit activations, then precise_decode)
        for (const bool precise : {false, true}) {
            gp.precise_decode = precise;
            const std::string mode = precise ? " (precise)" : "";
            // 2. batches of 3 (matvec path with several tokens)
            {
                auto g = cuda::create_context(m, gp);
                QVERIFY(g.ok());
                std::vector<float> got;
                for (size_t i = 0; i < toks.size(); i += 3) {
                    const size_t n = std::min<size_t>(3, toks.size() - i);
                    QVERIFY((*g)->decode(std::span<const Token>(toks).subspan(i, n), true).ok());
                    got.insert(got.end(), (*g)->logits().begin(), (*g)->logits().end());
                }
                QVERIFY2(check(compare(ref, got, V), "GPU batches of 3" + mode), "small batches disagree with the reference");
            }
            // 3. token by token (CUDA graph), then truncate and replay a suffix
            {
                auto g = cuda::create_context(m, gp);
                QVERIFY(g.ok());
                std::vector<float> got;
                std::vector<Token> greedy;
                for (size_t i = 0; i < toks.size(); ++i) {
                    QVERIFY((*g)->decode(std::span<const Token>(toks).subspan(i, 1), false).ok());
                    auto gt = cuda::greedy_token(**g);
                    QVERIFY(gt.ok());
                    greedy.push_back(*gt);
                    const auto l = (*g)->logits();
                    QCOMPARE(l.size(), size_t(V));
                    got.insert(got.end(), l.begin(), l.end());
                    QCOMPARE(Token(std::max_element(l.begin(), l.end()) - l.begin()), greedy.back());  // device argmax
                }
                QVERIFY2(check(compare(ref, got, V), "GPU decode" + mode), "token-by-token decode disagrees with the reference");
                // truncate and decode the rest again: same logits as before
                const size_t cut = toks.size() / 4;
                (*g)->truncate(int32_t(cut));
                std::vector<float> again;
                for (size_t i = cut; i < toks.size(); ++i) {
                    QVERIFY((*g)->decode(std::span<const Token>(toks).subspan(i, 1), false).ok());
                    again.insert(again.end(), (*g)->logits().begin(), (*g)->logits().end());
                }
                const Agreement b = compare(std::span<const float>(got).subspan(cut * size_t(V)), again, V);
                QVERIFY2(b.top1 == 1.0 && b.mean_kl < 1e-9, "decode after truncate differs");
            }
        }
    }

    // Partial offload: the embedding and the first N layers on the GPU, the
    // rest and the head on the CPU. Prefill (all logits, GEMM path) then
    // token-by-token decode (graph path) with a truncate, each against the
    // reference with the same criteria as the full-GPU rows.
    void partial_data() {
        QTest::addColumn<QString>("preset");
        QTest::addColumn<QString>("ftype");
        QTest::addColumn<int>("n_tok");
        QTest::newRow("tiny-llama Q4_K_M") << "tiny-llama" << "Q4_K_M" << 200;
        QTest::newRow("tiny-qwen2 Q4_K_M") << "tiny-qwen2" << "Q4_K_M" << 200;
        QTest::newRow("tiny-gemma3 Q4_K_M") << "tiny-gemma3" << "Q4_K_M" << 200;
        // 200 tokens like the tiny rows: >= 99% decisive top-1 tolerates no flip below
        // ~100 decisive positions (48 tokens give ~30)
        QTest::newRow("gemma3-270m Q4_K_M") << "gemma3-270m" << "Q4_K_M" << 200;
    }
    void partial() {
        QFETCH(QString, preset);
        QFETCH(QString, ftype);
        QFETCH(int, n_tok);
        auto m = model(preset.toStdString(), ftype.toStdString());
        const int V = m->hparams().n_vocab, L = m->hparams().n_layer;
        std::uniform_int_distribution<int> pick(0, V - 1);
        std::vector<Token> toks(static_cast<size_t>(n_tok));
        for (auto & t : toks) t = pick(m_rng);
        ContextParams cp;
        cp.n_ctx = 512;
        cp.n_batch = 512;
        auto refr = reference_forward(*m, toks);
        QVERIFY(refr.ok());
        const std::vector<float> & ref = *refr;
        auto cpu = Context::create(m, cp);
        QVERIFY(cpu.ok());
        QVERIFY((*cpu)->decode(toks, true).ok());
        const Agreement ca = compare(ref, (*cpu)->logits(), V);
        // The full-GPU rows' criteria, except that the decisive top-1 bound is
        // the CPU Context's own agreement when that is lower: the layers after N
        // run with the CPU Context's numerics (at N = 0 the split is the CPU
        // Context bit for bit, and one seed had it at 0.9889 of 90 decisive).
        auto check = [&](const Agreement & a, const std::string & what) {
            qInfo("%s %s vs reference: top-1 %.4f (decisive %.4f of %d), KL mean %.3g max %.3g (CPU Context top-1 %.4f, decisive %.4f)",
                  qPrintable(preset + " " + ftype), what.c_str(), a.top1, a.top1_decisive, a.n_decisive, a.mean_kl, a.max_kl, ca.top1,
                  ca.top1_decisive);
            return a.mean_kl < kMaxKl && a.top1_decisive >= std::min(kMinTop1, ca.top1_decisive) && a.top1 >= ca.top1 - top1_slack(a.n, ca.top1, a.top1);
        };
        for (int n_gpu : std::set<int>{0, 1, L / 2, L - 1}) {
            cuda::CudaContextParams gp;
            gp.context = cp;
            gp.n_gpu_layers = n_gpu;
            auto est = cuda::estimate_memory(*m, gp);
            QVERIFY(est.ok());
            cuda::CudaContextParams full = gp;
            full.n_gpu_layers = -1;
            auto est_full = cuda::estimate_memory(*m, full);
            QVERIFY(est_full.ok());
            QVERIFY2(est->total < est_full->total, "a partial split must need less device memory than the whole model");
            const std::string tag = "ngl " + std::to_string(n_gpu) + "/" + std::to_string(L);
            {
                auto g = cuda::create_context(m, gp);
                QVERIFY2(g.ok(), g.ok() ? "" : g.error().to_string().c_str());
                QVERIFY((*g)->decode(toks, true).ok());
                QCOMPARE((*g)->logits().size(), toks.size() * size_t(V));
                QVERIFY2(check(compare(ref, (*g)->logits(), V), tag + " prefill"), "partial prefill disagrees with the reference");
            }
            {
                auto g = cuda::create_context(m, gp);
                QVERIFY(g.ok());
                std::vector<float> got;
                for (size_t i = 0; i < toks.size(); ++i) {
                    QVERIFY((*g)->decode(std::span<const Token>(toks).subspan(i, 1), false).ok());
                    const auto l = (*g)->logits();
                    QCOMPARE(l.size(), size_t(V));
                    auto gt = cuda::greedy_token(**g);
                    QVERIFY(gt.ok());
                    QCOMPARE(*gt, Token(std::max_element(l.begin(), l.end()) - l.begin()));
                    got.insert(got.end(), l.begin(), l.end());
                }
                QCOMPARE((*g)->n_past(), int32_t(toks.size()));
                QVERIFY2(check(compare(ref, got, V), tag + " decode"), "partial decode disagrees with the reference");
                // truncate (both parts) and replay a suffix in one chunk: the same rows again
                const size_t cut = toks.size() / 2;
                (*g)->truncate(int32_t(cut));
                QVERIFY((*g)->decode(std::span<const Token>(toks).subspan(cut), true).ok());
                const Agreement b = compare(std::span<const float>(got).subspan(cut * size_t(V)), (*g)->logits(), V);
                qInfo("%s %s replay after truncate vs decode: top-1 %.4f KL mean %.3g", qPrintable(preset + " " + ftype), tag.c_str(),
                      b.top1, b.mean_kl);
                QVERIFY2(b.mean_kl < kMaxKl, "replay after truncate differs");
            }
        }
    }

    // The real gemma-3-270m Q4_K_M (GB_REAL_MODEL=path, else
    // GLASSBOX_MODEL_DIR/gemma-3-270m-q4_k_m.gguf; skipped when absent),
    // teacher-forced on kRealText: the f32 reference forward and the CPU
    // Context's logits (one batch) are the oracles for the CUDA Context's
    // prefill (GEMM + flash attention path) and token-by-token decode (CUDA
    // graph, matvec path), with the criteria stated at kPrefillMinTop1,
    // kDecodeMaxKl and kRealMinTop1.
    void real_model() {
        QString path = qEnvironmentVariable("GB_REAL_MODEL");
        if (path.isEmpty()) path = QStringLiteral(GLASSBOX_MODEL_DIR "/gemma-3-270m-q4_k_m.gguf");
        if (!QFileInfo::exists(path)) QSKIP(qPrintable("real model missing: " + path + " (set GB_REAL_MODEL)"));
        auto lm = Model::load(path.toStdString());
        QVERIFY2(lm.ok(), lm.ok() ? "" : lm.error().to_string().c_str());
        std::shared_ptr<const Model> m = *lm;
        const int V = m->hparams().n_vocab;
        const std::vector<Token> toks = m->tokenizer().encode(kRealText, true, false);
        QVERIFY(toks.size() > 200);
        ContextParams cp;
        cp.n_ctx = 512;
        cp.n_batch = 512;
        cp.n_threads = 0;
        auto cpu = Context::create(m, cp);
        QVERIFY(cpu.ok());
        QVERIFY((*cpu)->decode(toks, true).ok());
        const std::vector<float> ref((*cpu)->logits().begin(), (*cpu)->logits().end());
        QCOMPARE(ref.size(), toks.size() * size_t(V));
        auto check = [&](const Agreement & a, const char * what) {
            qInfo("gemma-3-270m (%zu tokens) %s vs CPU Context: top-1 %.4f (lead >= %.2g: %.4f of %d), KL mean %.3g max %.3g",
                  toks.size(), what, a.top1, kRealMargin, a.top1_decisive, a.n_decisive, a.mean_kl, a.max_kl);
            return a.top1_decisive >= kRealMinTop1 && a.top1 >= kRealMinTop1All && a.mean_kl < kRealMaxKl;
        };
        // The f32 reference forward (double sums, no activation quantization):
        // how far the CPU Context itself is from the model's exact outputs.
        const auto t_ref = std::chrono::steady_clock::now();
        auto exact = reference_forward(*m, toks);
        QVERIFY(exact.ok());
        const Agreement cpu_exact = compare(*exact, ref, V, kRealMargin);
        qInfo("gemma-3-270m CPU Context vs f32 reference: top-1 %.4f (lead >= %.2g: %.4f of %d), KL mean %.3g max %.3g (%.1f s)",
              cpu_exact.top1, kRealMargin, cpu_exact.top1_decisive, cpu_exact.n_decisive, cpu_exact.mean_kl, cpu_exact.max_kl,
              std::chrono::duration<double>(std::chrono::steady_clock::now() - t_ref).count());
        // For scale (logged, not asserted): the CPU Context in llama.cpp's summation order.
        {
            set_cpu_numerics(CpuNumerics::LlamaCpp);
            auto reset = qScopeGuard([] { set_cpu_numerics(CpuNumerics::BatchInvariant); });
            auto c2 = Context::create(m, cp);
            QVERIFY(c2.ok());
            QVERIFY((*c2)->decode(toks, true).ok());
            const Agreement a = compare(ref, (*c2)->logits(), V, kRealMargin);
            qInfo("gemma-3-270m CPU Context, llama.cpp order vs default order: top-1 %.4f (lead >= %.2g: %.4f of %d), KL mean %.3g max %.3g",
                  a.top1, kRealMargin, a.top1_decisive, a.n_decisive, a.mean_kl, a.max_kl);
        }
        // Against the f32 reference: the prefill and the precise decode by the
        // issue's criterion (all positions: top-1 >= 99%; KL < kPrefillMaxKl /
        // kDecodeMaxKl), the default decode no further than the CPU Context
        // (kDecodeKlVsCpu, top1_slack).
        enum class Path { Prefill, Decode, Precise };
        auto check_exact = [&](const std::vector<float> & got, Path p, const char * what) {
            const Agreement a = compare(*exact, got, V, kRealMargin);
            qInfo("gemma-3-270m %s vs f32 reference: top-1 %.4f (lead >= %.2g: %.4f of %d), KL mean %.3g max %.3g", what, a.top1,
                  kRealMargin, a.top1_decisive, a.n_decisive, a.mean_kl, a.max_kl);
            if (p == Path::Decode) return a.top1 >= cpu_exact.top1 - top1_slack(a.n, cpu_exact.top1, a.top1) && a.mean_kl <= kDecodeKlVsCpu * cpu_exact.mean_kl;
            return a.top1 >= prefill_min_top1(a.n) && a.mean_kl < (p == Path::Prefill ? kPrefillMaxKl : kDecodeMaxKl);
        };
        cuda::CudaContextParams gp;
        gp.context = cp;
        {
            auto g = cuda::create_context(m, gp);
            QVERIFY2(g.ok(), g.ok() ? "" : g.error().to_string().c_str());
            QVERIFY((*g)->decode(toks, true).ok());
            const std::vector<float> got((*g)->logits().begin(), (*g)->logits().end());
            QVERIFY2(check(compare(ref, got, V, kRealMargin), "GPU prefill"), "real-model prefill disagrees with the CPU Context");
            QVERIFY2(check_exact(got, Path::Prefill, "GPU prefill"), "real-model prefill misses the f32 reference criterion");
        }
        for (const bool precise : {false, true}) {
            gp.precise_decode = precise;
            auto g = cuda::create_context(m, gp);
            QVERIFY(g.ok());
            std::vector<float> got;
            got.reserve(ref.size());
            for (size_t i = 0; i < toks.size(); ++i) {
                QVERIFY((*g)->decode(std::span<const Token>(toks).subspan(i, 1), false).ok());
                const auto l = (*g)->logits();
                QCOMPARE(l.size(), size_t(V));
                got.insert(got.end(), l.begin(), l.end());
            }
            const char * what = precise ? "GPU decode (precise)" : "GPU decode";
            QVERIFY2(check(compare(ref, got, V, kRealMargin), what), "real-model decode disagrees with the CPU Context");
            QVERIFY2(check_exact(got, precise ? Path::Precise : Path::Decode, what),
                     precise ? "real-model precise decode misses the f32 reference criterion"
                             : "real-model decode is further from the f32 reference than the CPU Context");
        }
    }

    void refuses_when_too_big() {
        auto m = model("tiny-llama", "Q4_K_M");
        cuda::CudaContextParams gp;
        gp.context.n_ctx = 512;
        gp.memory_budget = 64 * 1024;  // 64 KiB
        auto est = cuda::estimate_memory(*m, gp);
        QVERIFY(est.ok());
        QVERIFY(est->total > gp.memory_budget);
        QVERIFY(est->weights > 0 && est->kv_cache > 0);
        auto g = cuda::create_context(m, gp);
        QVERIFY(!g.ok());
        QCOMPARE(g.error().code, ErrorCode::OutOfMemory);
        QVERIFY2(g.error().message.find("available") != std::string::npos, g.error().message.c_str());
        QVERIFY2(g.error().message.find("not even one layer") != std::string::npos, g.error().message.c_str());

        // A budget between "embedding + buffers + 2 layers" and "+ 3 layers":
        // all layers (or 3) are refused with a message proposing 2.
        m = model("tiny-gemma3", "Q4_K_M");
        const int L = m->hparams().n_layer;
        QVERIFY(L >= 4);
        cuda::CudaContextParams two = gp, three = gp;
        two.memory_budget = three.memory_budget = 0;
        two.n_gpu_layers = 2;
        three.n_gpu_layers = 3;
        auto e2 = cuda::estimate_memory(*m, two);
        auto e3 = cuda::estimate_memory(*m, three);
        QVERIFY(e2.ok() && e3.ok());
        QVERIFY(e2->total < e3->total);
        gp.memory_budget = (e2->total + e3->total) / 2;
        gp.n_gpu_layers = -1;
        auto e = cuda::estimate_memory(*m, gp);
        QVERIFY(e.ok());
        QCOMPARE(e->layers_that_fit, 2);
        auto r = cuda::create_context(m, gp);
        QVERIFY(!r.ok());
        QCOMPARE(r.error().code, ErrorCode::OutOfMemory);
        QVERIFY2(r.error().message.find("2 of " + std::to_string(L) + " layers would fit") != std::string::npos &&
                     r.error().message.find("-ngl 2") != std::string::npos,
                 r.error().message.c_str());
        gp.n_gpu_layers = 3;
        auto r3 = cuda::create_context(m, gp);
        QVERIFY(!r3.ok());
        QCOMPARE(r3.error().code, ErrorCode::OutOfMemory);
        QVERIFY2(r3.error().message.find("3 of " + std::to_string(L) + " layers need") != std::string::npos, r3.error().message.c_str());
        // ... and the proposed split loads and runs within that budget.
        gp.n_gpu_layers = 2;
        auto ok = cuda::create_context(m, gp);
        QVERIFY2(ok.ok(), ok.ok() ? "" : ok.error().to_string().c_str());
        const std::vector<Token> toks = {1, 2, 3, 4, 5};
        QVERIFY((*ok)->decode(toks, false).ok());
        QCOMPARE((*ok)->logits().size(), size_t(m->hparams().n_vocab));
    }
};

QTEST_APPLESS_MAIN(TstCudaModel)
#include "tst_cuda_model.moc"
