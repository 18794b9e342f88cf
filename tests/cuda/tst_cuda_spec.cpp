// Speculative decoding on the CUDA Context (token trees): decode_tree gives
// each root path the bits of decoding it token by token (up to 32 nodes: the
// decode step's matvec kernels), commit_tree leaves the K/V of plain decoding (the
// continuation's logits are bit-identical), and speculative generation with
// lookup / lookahead trees, self-draft (skip_layers on the GPU) and a draft
// model emits plain greedy CUDA decoding's tokens, on synthetic models of each
// architecture. Fresh random weights and tokens each run (GLASSBOX_TEST_SEED
// repeats one). Needs an NVIDIA GPU (label cuda).
#include "glassbox/cuda_backend.h"
#include "glassbox/model.h"
#include "glassbox/sampler.h"
#include "glassbox/spec/spec_decoder.h"
#include "glassbox/spec/speculator.h"
#include "glassbox/synth.h"

#include <QTemporaryDir>
#include <QtTest>

#include <chrono>
#include <cmath>
#include <cstring>
#include <random>
#include "synth_model.h"
#include "test_seed.h"

using namespace gb;

namespace {

bool same_bits(std::span<const float> a, std::span<const float> b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

double max_abs_diff(std::span<const float> a, std::span<const float> b) {
    double m = 0.0;
    for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) m = std::max(m, double(std::fabs(a[i] - b[i])));
    return m;
}

// mean over rows of KL(softmax(a) || softmax(b))
double mean_kl(std::span<const float> a, std::span<const float> b, int n_vocab) {
    const size_t n = a.size() / size_t(n_vocab);
    double sum = 0.0;
    for (size_t t = 0; t < n; ++t) {
        const float * p = a.data() + t * n_vocab;
        const float * q = b.data() + t * n_vocab;
        const double mp = *std::max_element(p, p + n_vocab), mq = *std::max_element(q, q + n_vocab);
        double zp = 0.0, zq = 0.0;
        for (int i = 0; i < n_vocab; ++i) { zp += std::exp(p[i] - mp); zq += std::exp(q[i] - mq); }
        double kl = 0.0;
        for (int i = 0; i < n_vocab; ++i) {
            const double lp = p[i] - mp - std::log(zp), lq = q[i] - mq - std::log(zq);
            kl += std::exp(lp) * (lp - lq);
        }
        sum += kl;
    }
    return n ? sum / double(n) : 0.0;
}

// Proposes the known greedy continuation as a tree: at every depth a wrong
// first child, then the right token as its second child (so verification
// leaves the first-child chain: tree_logits and commit_tree of a branch).
class OracleSpeculator final : public Speculator {
  public:
    OracleSpeculator(size_t prompt_len, std::vector<Token> cont, int32_t n_vocab)
        : m_prompt_len(prompt_len), m_cont(std::move(cont)), m_n_vocab(n_vocab) {}
    const char * name() const override { return "oracle"; }
    Status propose(std::span<const Token> tokens, int32_t max_len, Draft & out, const std::atomic<bool> *) override {
        out.clear();
        const size_t g = tokens.size() - m_prompt_len;  // continuation tokens emitted so far (the last one pending)
        int32_t parent = -1;
        for (int32_t d = 0; d < max_len && g + size_t(d) < m_cont.size(); ++d) {
            const Token right = m_cont[g + size_t(d)];
            out.add(parent, Token((right + 1 + d) % m_n_vocab));  // wrong first child (a leaf)
            parent = out.add(parent, right);
        }
        return {};
    }

  private:
    size_t m_prompt_len;
    std::vector<Token> m_cont;
    int32_t m_n_vocab;
};

Result<std::unique_ptr<Context>> gpu_context(std::shared_ptr<const Model> m, const ContextParams & cp) {
    cuda::CudaContextParams gp;
    gp.context = cp;
    return cuda::create_context(std::move(m), gp);
}

}  // namespace

class TstCudaSpec : public QObject {
    Q_OBJECT

    QTemporaryDir m_dir;
    uint64_t m_seed = 0;
    std::mt19937 m_rng;

    // seed_type: the weights of that type's model (another type: the same
    // weights quantized differently)
    std::shared_ptr<const Model> model(const std::string & preset, const std::string & ftype, const std::string & seed_type = {}) {
        return gb::test::preset_model(m_dir.path().toStdString(), preset, ftype, m_seed, seed_type);
    }
    std::vector<Token> random_tokens(const Model & m, int n) {
        std::uniform_int_distribution<int> d(3, m.hparams().n_vocab - 1);
        std::vector<Token> t(static_cast<size_t>(n));
        for (auto & x : t) x = d(m_rng);
        return t;
    }
    static ContextParams params() {
        ContextParams cp;
        cp.n_ctx = 512;
        cp.n_batch = 64;
        return cp;
    }

    static void arch_rows() {
        QTest::addColumn<QString>("preset");
        QTest::addColumn<QString>("ftype");
        QTest::newRow("tiny-llama Q4_K_M") << "tiny-llama" << "Q4_K_M";
        QTest::newRow("tiny-llama Q8_0") << "tiny-llama" << "Q8_0";
        QTest::newRow("tiny-llama F16") << "tiny-llama" << "F16";
        QTest::newRow("tiny-llama Q5_1") << "tiny-llama" << "Q5_1";  // generic (non-fast) matvec path
        QTest::newRow("tiny-qwen2 Q4_K_M") << "tiny-qwen2" << "Q4_K_M";
        QTest::newRow("tiny-gemma3 Q4_K_M") << "tiny-gemma3" << "Q4_K_M";
    }

  private slots:
    void initTestCase() {
        const cuda::DeviceReport r = cuda::probe();
        if (!r.available) QSKIP(qPrintable(QString::fromStdString("no usable CUDA device: " + r.message)));
        QVERIFY(m_dir.isValid());
        m_seed = gb::test::run_seed();
        m_rng.seed(uint32_t(m_seed));
    }

    // A random tree of n nodes holding `path` (depth d) as one root path, its
    // nodes placed after decoy siblings; every node's logits against decoding
    // its root path token by token (the oracle: plain single-token steps on a
    // second context). Up to 32 nodes: the same bits; more (GEMM path): close.
    // Then commit_tree(path) and the continuation against plain decoding. The
    // chain cases (a first-child chain, half of it committed: a path whose K/V
    // rows are already in place, which the fused verification commits without
    // a kernel) check that too.
    void treeMatchesPlain_data() { arch_rows(); }
    void treeMatchesPlain() {
        QFETCH(QString, preset);
        QFETCH(QString, ftype);
        auto m = model(preset.toStdString(), ftype.toStdString());
        const int V = m->hparams().n_vocab;
        const std::vector<Token> prompt = random_tokens(*m, 37);
        struct Case { int n_nodes; bool chain; };
        for (const Case tc : {Case{1, false}, Case{2, false}, Case{5, false}, Case{9, false}, Case{17, false}, Case{32, false}, Case{40, false},
                              Case{7, true}, Case{16, true}}) {
            const int n_nodes = tc.n_nodes;
            // tree: parents first; node i's parent is a random earlier node or -1 (chain: i - 1)
            std::uniform_int_distribution<int> coin(0, 2);
            std::vector<Token> tok = random_tokens(*m, n_nodes);
            std::vector<int32_t> par(static_cast<size_t>(n_nodes));
            for (int i = 0; i < n_nodes; ++i) {
                std::uniform_int_distribution<int> pick(-1, i - 1);
                par[size_t(i)] = tc.chain ? i - 1 : i == 0 || coin(m_rng) == 0 ? -1 : pick(m_rng);
            }
            // the committed path: the deepest node's root path
            std::vector<int> depth(static_cast<size_t>(n_nodes));
            int deepest = 0;
            for (int i = 0; i < n_nodes; ++i) {
                depth[size_t(i)] = par[size_t(i)] < 0 ? 0 : depth[size_t(par[size_t(i)])] + 1;
                if (depth[size_t(i)] > depth[size_t(deepest)]) deepest = i;
            }
            std::vector<int32_t> path;
            for (int a = deepest; a >= 0; a = par[size_t(a)]) path.insert(path.begin(), a);
            if (tc.chain) path.resize(size_t(n_nodes + 1) / 2);  // 0, 1, ...: already in place

            auto g = gpu_context(m, params());
            QVERIFY2(g.ok(), g.ok() ? "" : g.error().to_string().c_str());
            QVERIFY((*g)->supports_tree());
            QVERIFY((*g)->decode(prompt, false).ok());
            std::vector<int32_t> all(static_cast<size_t>(n_nodes));
            for (int i = 0; i < n_nodes; ++i) all[size_t(i)] = n_nodes - 1 - i;  // rows in reverse node order
            QVERIFY((*g)->decode_tree(tok, par, all).ok());
            QCOMPARE((*g)->n_past(), int32_t(prompt.size()));
            const std::vector<float> tree(((*g)->logits()).begin(), ((*g)->logits()).end());
            QCOMPARE(tree.size(), size_t(n_nodes) * size_t(V));

            // oracle: every node's root path decoded token by token after the prompt
            auto plain = gpu_context(m, params());
            QVERIFY(plain.ok());
            QVERIFY((*plain)->decode(prompt, false).ok());
            int n_same = 0;
            double worst = 0.0;
            for (int i = 0; i < n_nodes; ++i) {
                std::vector<Token> seq;
                for (int a = i; a >= 0; a = par[size_t(a)]) seq.insert(seq.begin(), tok[size_t(a)]);
                (*plain)->truncate(int32_t(prompt.size()));
                for (Token t : seq) QVERIFY((*plain)->decode(std::span<const Token>(&t, 1), false).ok());
                const std::span<const float> want = (*plain)->logits();
                const std::span<const float> got(tree.data() + size_t(n_nodes - 1 - i) * V, size_t(V));
                n_same += same_bits(want, got);
                worst = std::max(worst, max_abs_diff(want, got));
                if (n_nodes > 32) QVERIFY2(mean_kl(want, got, V) < 2e-3, "tree node (GEMM path) far from plain decoding");
            }
            qInfo("%s: %d nodes (depth %zu): %d of %d rows bit-identical to plain decoding, max |diff| %.3g", qPrintable(preset + " " + ftype),
                  n_nodes, path.size(), n_same, n_nodes, worst);
            if (n_nodes <= 32) QCOMPARE(n_same, n_nodes);

            // tree_logits of a subset: the same rows again (the same bits where
            // both head calls take the matvec path)
            const std::vector<int32_t> two = {path.back(), path.front()};
            QVERIFY((*g)->tree_logits(two).ok());
            const std::span<const float> again = (*g)->logits().subspan(0, size_t(V));
            const std::span<const float> first(tree.data() + size_t(n_nodes - 1 - path.back()) * V, size_t(V));
            if (n_nodes <= 32) QVERIFY(same_bits(again, first));
            else QVERIFY(mean_kl(first, again, V) < 2e-3);
            // a broken path is refused
            if (path.size() >= 2) {
                const std::vector<int32_t> bad = {path[1]};
                QVERIFY(!(*g)->commit_tree(bad).ok());
                QVERIFY((*g)->decode_tree(tok, par, {}).ok());
            }
            // commit the path; the continuation must equal plain decoding's, bit for bit
            QVERIFY((*g)->commit_tree(path).ok());
            QCOMPARE((*g)->n_past(), int32_t(prompt.size() + path.size()));
            std::vector<Token> seq;
            for (int32_t a : path) seq.push_back(tok[size_t(a)]);
            (*plain)->truncate(int32_t(prompt.size()));
            QVERIFY((*plain)->decode(seq, false).ok());
            const std::vector<Token> more = random_tokens(*m, 6);
            for (Token t : more) {
                QVERIFY((*g)->decode(std::span<const Token>(&t, 1), false).ok());
                QVERIFY((*plain)->decode(std::span<const Token>(&t, 1), false).ok());
                if (n_nodes <= 32) {
                    QVERIFY2(same_bits((*g)->logits(), (*plain)->logits()), "K/V after commit_tree differs from plain decoding");
                } else {
                    QVERIFY2(mean_kl((*plain)->logits(), (*g)->logits(), V) < 2e-3, "K/V after commit_tree far from plain decoding");
                }
            }
        }
    }

    // Context::row_summaries (greedy verification and plain greedy decoding read
    // these instead of the rows): after a plain step, a tree (asked before
    // logits(), which then copies the rows) and a tree_logits() subset, each
    // summary against its row on the host: argmax (lowest id among the
    // maxima), max, log-sum-exp (long double oracle) and the argmax's
    // log-probability against Sampler::logprob_of; none after an all-logits decode.
    void rowSummaries_data() {
        QTest::addColumn<QString>("preset");
        QTest::newRow("tiny-llama") << "tiny-llama";
        QTest::newRow("tiny-gemma3") << "tiny-gemma3";  // final logit soft-capping
    }
    void rowSummaries() {
        QFETCH(QString, preset);
        auto m = model(preset.toStdString(), "Q4_K_M");
        const int V = m->hparams().n_vocab;
        auto check = [&](Context & c, int n_rows, const char * what) {
            const std::span<const RowSummary> sums = c.row_summaries();
            QCOMPARE(int(sums.size()), n_rows);
            const std::vector<RowSummary> kept(sums.begin(), sums.end());  // before logits() copies the rows
            const std::span<const float> l = c.logits();
            QCOMPARE(l.size(), size_t(n_rows) * size_t(V));
            for (int r = 0; r < n_rows; ++r) {
                const std::span<const float> row = l.subspan(size_t(r) * V, size_t(V));
                const int best = int(std::max_element(row.begin(), row.end()) - row.begin());  // the first maximum
                long double sum = 0.0L;
                for (float v : row) sum += std::exp((long double)v - (long double)row[size_t(best)]);
                const double lse = double(std::log(sum));
                const RowSummary & g = kept[size_t(r)];
                QVERIFY2(g.argmax == best, qPrintable(QString("%1 row %2: argmax %3 vs %4").arg(what).arg(r).arg(g.argmax).arg(best)));
                QCOMPARE(g.max, row[size_t(best)]);
                QVERIFY2(std::fabs(g.lse - lse) <= 1e-11 * std::max(1.0, std::fabs(lse)), what);
                QVERIFY(std::fabs(float(-g.lse) - Sampler::logprob_of(row, best)) <= 1e-5f);
            }
        };
        auto g = gpu_context(m, params());
        QVERIFY(g.ok());
        const std::vector<Token> prompt = random_tokens(*m, 29);
        QVERIFY((*g)->decode(prompt, false).ok());
        check(**g, 1, "prefill");
        const Token one = random_tokens(*m, 1)[0];
        QVERIFY((*g)->decode(std::span<const Token>(&one, 1), false).ok());
        check(**g, 1, "decode step");
        const std::vector<Token> tok = random_tokens(*m, 9);
        const std::vector<int32_t> par = {-1, 0, 1, 0, 3, -1, 5, 2, 7};
        const std::vector<int32_t> out = {8, 0, 4, 2, 6, 1, 7, 3, 5};
        QVERIFY((*g)->decode_tree(tok, par, out).ok());
        check(**g, 9, "tree");
        QVERIFY((*g)->tree_logits(std::vector<int32_t>{5, 6}).ok());
        check(**g, 2, "tree_logits");
        QVERIFY((*g)->commit_tree(std::vector<int32_t>{0, 1, 2}).ok());
        QVERIFY((*g)->decode(random_tokens(*m, 3), true).ok());
        QVERIFY((*g)->row_summaries().empty());  // all_logits rows are on the host only
    }

    // An empty commit drops the tree: the next decode continues after the prompt.
    void dropTree() {
        auto m = model("tiny-llama", "Q4_K_M");
        const std::vector<Token> prompt = random_tokens(*m, 20);
        auto g = gpu_context(m, params());
        auto plain = gpu_context(m, params());
        QVERIFY(g.ok() && plain.ok());
        QVERIFY((*g)->decode(prompt, false).ok());
        QVERIFY((*plain)->decode(prompt, false).ok());
        const std::vector<Token> tok = random_tokens(*m, 6);
        const std::vector<int32_t> par = {-1, 0, 0, 1, -1, 4};
        QVERIFY((*g)->decode_tree(tok, par, {}).ok());
        QVERIFY((*g)->commit_tree({}).ok());
        QVERIFY(!(*g)->tree_logits(std::vector<int32_t>{0}).ok());  // no pending tree
        const std::vector<Token> next = random_tokens(*m, 3);
        QVERIFY((*g)->decode(next, false).ok());
        QVERIFY((*plain)->decode(next, false).ok());
        QVERIFY(same_bits((*g)->logits(), (*plain)->logits()));
        // bad trees are refused
        QVERIFY(!(*g)->decode_tree(tok, std::vector<int32_t>{-1, 1, 0, 1, -1, 4}, {}).ok());
        QVERIFY(!(*g)->decode_tree(std::vector<Token>{Token(m->hparams().n_vocab)}, std::vector<int32_t>{-1}, {}).ok());
    }

    // skip_layers on the GPU: logits close to the CPU Context skipping the same
    // layers, and far from the full model's (the layers are really skipped).
    void skipLayers() {
        auto m = model("tiny-llama", "Q8_0");
        const int V = m->hparams().n_vocab;
        const std::vector<Token> toks = random_tokens(*m, 24);
        ContextParams cp = params();
        cp.skip_layers = default_skip_layers(*m);
        QVERIFY(!cp.skip_layers.empty());
        auto cpu = Context::create(m, cp);
        auto g = gpu_context(m, cp);
        auto full = gpu_context(m, params());
        QVERIFY2(g.ok(), g.ok() ? "" : g.error().to_string().c_str());
        QVERIFY(cpu.ok() && full.ok());
        QVERIFY((*cpu)->decode(toks, true).ok());
        QVERIFY((*g)->decode(toks, true).ok());
        QVERIFY((*full)->decode(toks, true).ok());
        const double kl_cpu = mean_kl((*cpu)->logits(), (*g)->logits(), V);
        const double kl_full = mean_kl((*full)->logits(), (*g)->logits(), V);
        qInfo("skip %zu layers: KL(CPU skip || GPU skip) %.3g, KL(GPU full || GPU skip) %.3g", cp.skip_layers.size(), kl_cpu, kl_full);
        QVERIFY(kl_cpu < 5e-3);
        QVERIFY(kl_full > 20 * kl_cpu);
        ContextParams bad = params();
        bad.skip_layers = {m->hparams().n_layer};
        QVERIFY(!gpu_context(m, bad).ok());
    }

    // Speculative generation (greedy) on the GPU against plain greedy GPU decoding:
    // identical tokens for lookup and lookahead (token trees), self-draft and a
    // draft model (their drafter Contexts on the GPU through context_factory).
    void specGreedyEqualsPlain_data() {
        QTest::addColumn<QString>("preset");
        QTest::addColumn<QString>("ftype");
        QTest::addColumn<QString>("method");
        for (const char * p : {"tiny-llama", "tiny-qwen2", "tiny-gemma3"}) {
            for (const char * meth : {"oracle", "lookup", "lookahead", "selfdraft", "draft"}) {
                QTest::newRow((std::string(p) + " Q4_K_M " + meth).c_str()) << p << "Q4_K_M" << meth;
            }
        }
        QTest::newRow("tiny-llama Q8_0 lookup") << "tiny-llama" << "Q8_0" << "lookup";
        QTest::newRow("tiny-llama F16 lookahead") << "tiny-llama" << "F16" << "lookahead";
    }
    void specGreedyEqualsPlain() {
        QFETCH(QString, preset);
        QFETCH(QString, ftype);
        QFETCH(QString, method);
        auto m = model(preset.toStdString(), ftype.toStdString());
        // grounded prompt: a random phrase repeated, then the model's own greedy
        // continuation of it repeated too (lookup/lookahead find real matches)
        const std::vector<Token> phrase = random_tokens(*m, 12);
        std::vector<Token> prompt;
        for (int r = 0; r < 4; ++r) prompt.insert(prompt.end(), phrase.begin(), phrase.end());
        SamplerParams sp;
        sp.temperature = 0.0f;
        sp.repeat_penalty = 1.0f;
        constexpr int kNew = 48;
        SpecConfig none;
        auto pc = gpu_context(m, params());
        QVERIFY(pc.ok());
        auto plain = speculative_generate(**pc, nullptr, prompt, kNew, none, sp, false);
        QVERIFY2(plain.ok(), plain.ok() ? "" : plain.error().to_string().c_str());
        QCOMPARE(int(plain->tokens.size()), kNew);
        // repeat the model's continuation in the prompt: drafts the target accepts
        std::vector<Token> prompt2 = prompt;
        prompt2.insert(prompt2.end(), plain->tokens.begin(), plain->tokens.end());
        prompt2.insert(prompt2.end(), prompt.begin(), prompt.end());
        auto pc2 = gpu_context(m, params());
        QVERIFY(pc2.ok());
        auto plain2 = speculative_generate(**pc2, nullptr, prompt2, kNew, none, sp, false);
        QVERIFY(plain2.ok());

        SpecConfig cfg;
        const bool oracle = method == "oracle";
        QVERIFY(oracle || parse_spec_method(method.toStdString(), &cfg.method));
        if (oracle) cfg.method = SpecMethod::PromptLookup;  // the speculator is ours
        cfg.draft_max = 8;
        cfg.max_branches = 3;
        cfg.adaptive = cfg.auto_off = false;  // the full draft every step (timing-free: no measured costs)
        cfg.context_factory = gpu_context;
        if (cfg.method == SpecMethod::SelfDraft && default_skip_layers(*m).empty()) {
            cfg.skip_layers = {m->hparams().n_layer / 2};  // tiny gemma3: fewer layers than one local/global group
        }
        if (cfg.method == SpecMethod::DraftModel) cfg.draft_model = model(preset.toStdString(), "Q8_0", ftype.toStdString());  // the same weights in Q8_0
        for (int k = 0; k < 2; ++k) {
            const std::vector<Token> & pr = k == 0 ? prompt : prompt2;
            const auto & want = k == 0 ? plain->tokens : plain2->tokens;
            auto sc = gpu_context(m, params());
            QVERIFY(sc.ok());
            std::unique_ptr<Speculator> spec;
            if (oracle) {
                spec = std::make_unique<OracleSpeculator>(pr.size(), want, m->hparams().n_vocab);
            } else {
                auto made = make_speculator(m, cfg, sp, params().n_ctx, 0);
                QVERIFY2(made.ok(), made.ok() ? "" : made.error().to_string().c_str());
                spec = std::move(*made);
            }
            auto r = speculative_generate(**sc, std::move(spec), pr, kNew, cfg, sp, false);
            QVERIFY2(r.ok(), r.ok() ? "" : r.error().to_string().c_str());
            qInfo("%s %s prompt %d: proposed %lld accepted %lld steps %lld", qPrintable(preset + " " + ftype), qPrintable(method), k,
                  (long long)r->stats.proposed, (long long)r->stats.accepted, (long long)r->stats.steps);
            QCOMPARE(r->tokens, want);
            if (oracle) QVERIFY(r->stats.accepted >= kNew / 2);  // every right token is accepted
            if (method == "selfdraft" || method == "draft") QVERIFY(r->stats.proposed > 0);
        }
    }
};

QTEST_GUILESS_MAIN(TstCudaSpec)
#include "tst_cuda_spec.moc"
