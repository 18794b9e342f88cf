// Speculative decoding on tiny synthetic models: greedy output equals plain
// decoding for every method, draft length and tree shape; sampled output has the
// target's exact distribution (chi-square against brute-force enumeration, and
// the test rejects deliberately broken acceptance rules); K/V after rollback
// equals plain decoding's; incompatible drafts are refused with the reason;
// Context::decode_tree gives each node the bits of its path decoded alone and
// commit_tree leaves the K/V of plain decoding; skip_layers = zeroed layers.
#include "batch_engine_fixture.h"
#include "dist_oracle.h"
#include "glassbox/gguf.h"
#include "glassbox/model.h"
#include "glassbox/sampler.h"
#include "glassbox/session.h"
#include "glassbox/spec/spec_decoder.h"
#include "glassbox/synth.h"
#include "cpu/matmul.h"
#include "cpu/thread_pool.h"
#include "spec/draft_model.h"
#include "spec/target_dist.h"

#include <QTemporaryDir>
#include <QtTest>
#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <random>

using namespace gb;
using gb::test::chi_square_p;
using gb::test::fixed_spec;
using gb::test::same_bits;

class TstSpeculative : public QObject {
    Q_OBJECT
  private slots:
    void initTestCase();
    void targetDistMatchesSampler_data();
    void targetDistMatchesSampler();
    void greedyEqualsPlain_data();
    void greedyEqualsPlain();
    void treeIsExercised();
    void adaptiveAndAutoOffStayLossless();
    void lookaheadWindowGreedy_data();
    void lookaheadWindowGreedy();
    void lookaheadJacobiWindow();
    void drafterWindow();
    void drafterTimedAtCreation();
    void drafterWindowGreedy_data();
    void drafterWindowGreedy();
    void distribution_data();
    void distribution();
    void rollbackMatchesPlainKv_data();
    void rollbackMatchesPlainKv();
    void incompatibleDraftRefused();
    void layerSkippedCopy();
    void treeDecodeMatchesPlain_data();
    void treeDecodeMatchesPlain();
    void treeDecodeErrors();
    void skipLayersContext();
    void statsJson();
    void sessionIntegration();

  private:
    QTemporaryDir m_dir;
    std::map<std::string, std::shared_ptr<const Model>> m_models;
    std::shared_ptr<const Model> model(const std::string & key) { return m_models.at(key); }
};

namespace {

std::unique_ptr<Context> make_ctx(std::shared_ptr<const Model> m, int32_t n_ctx = 512) {
    ContextParams cp;
    cp.n_ctx = n_ctx;
    cp.n_threads = 1;
    auto c = Context::create(std::move(m), cp);
    if (!c) qFatal("context: %s", c.error().message.c_str());
    return std::move(c.value());
}

// Plain decoding oracle: Sampler picks, one decode per token.
std::vector<Token> plain_generate(Context & ctx, const std::vector<Token> & prompt, int32_t n, const SamplerParams & sp) {
    ctx.truncate(0);
    if (!ctx.decode(prompt, false)) qFatal("decode");
    Sampler s(sp);
    for (Token t : prompt) s.accept(t);
    std::vector<Token> out;
    for (int32_t i = 0; i < n; ++i) {
        const Token t = s.sample(ctx.logits());
        s.accept(t);
        out.push_back(t);
        if (i + 1 < n) {
            const Token one[1] = {t};
            if (!ctx.decode(one, false)) qFatal("decode");
        }
    }
    return out;
}

std::unique_ptr<Speculator> make_spec(const std::string & method, std::shared_ptr<const Model> target,
                                      std::shared_ptr<const Model> draft, const SpecConfig & base,
                                      const SamplerParams & sp) {
    SpecConfig cfg = base;
    if (method == "lookup") cfg.method = SpecMethod::PromptLookup;
    else if (method == "lookahead") cfg.method = SpecMethod::Lookahead;
    else if (method == "draft") { cfg.method = SpecMethod::DraftModel; cfg.draft_model = std::move(draft); }
    else if (method == "selfdraft") { cfg.method = SpecMethod::SelfDraft; cfg.skip_layers = {1}; }
    else cfg.method = SpecMethod::None;
    auto s = make_speculator(std::move(target), cfg, sp, 512, 1);
    if (!s) qFatal("make_speculator(%s): %s", method.c_str(), s.error().message.c_str());
    return std::move(s.value());
}

// Prompts: repetitive (lookup matches), varied, and a short one.
std::vector<Token> prompt_of(int which) {
    switch (which) {
        case 0: return {1, 300, 301, 302, 303, 300, 301, 302, 304, 300, 301, 305, 306, 300, 301};
        case 1: {
            std::vector<Token> p = {1};
            std::mt19937 rng(7);
            for (int i = 0; i < 40; ++i) p.push_back(Token(259 + rng() % 200));
            return p;
        }
        default: return {1, 270};
    }
}

// gguf copy with edited metadata (for incompatible-vocabulary drafts).
void copy_with(const std::string & src, const std::string & dst, const std::function<void(gguf::Writer &, const gguf::File &)> & edit) {
    auto f = gguf::File::open(src);
    if (!f) qFatal("open");
    gguf::Writer w;
    for (const auto & [k, v] : (*f)->metadata()) {
        if (k == "general.alignment") continue;
        w.set(k, v);
    }
    edit(w, **f);
    for (const gguf::TensorInfo & t : (*f)->tensors()) {
        const uint8_t * p = t.data;
        if (!w.add_tensor(t.name, t.type, std::vector<int64_t>(t.ne, t.ne + t.n_dims),
                          [p](uint8_t * d, size_t n) { std::copy(p, p + n, d); })) qFatal("add_tensor");
    }
    if (!w.write(dst)) qFatal("write");
}

// gguf copy whose layers `zero` have zero output projections (attn_output,
// ffn_down): those layers then leave the residual exactly unchanged.
void zeroed_layers_copy(const std::string & src, const std::string & dst, const std::vector<int> & zero) {
    auto f = gguf::File::open(src);
    if (!f) qFatal("open");
    gguf::Writer w;
    for (const auto & [k, v] : (*f)->metadata()) if (k != "general.alignment") w.set(k, v);
    for (const gguf::TensorInfo & t : (*f)->tensors()) {
        bool z = false;
        for (int l : zero) {
            const std::string b = "blk." + std::to_string(l) + ".";
            z = z || t.name == b + "attn_output.weight" || t.name == b + "ffn_down.weight";
        }
        const uint8_t * p = t.data;
        if (!w.add_tensor(t.name, t.type, std::vector<int64_t>(t.ne, t.ne + t.n_dims), [p, z](uint8_t * dst, size_t n) {
                if (z) std::fill(dst, dst + n, uint8_t(0));
                else std::copy(p, p + n, dst);
            })) qFatal("add_tensor");
    }
    if (!w.write(dst)) qFatal("write");
}

// A random token tree of n nodes (parents first); deep chains when chain_bias is high.
void random_tree(std::mt19937 & rng, int32_t n, double chain_bias, std::vector<Token> & tok, std::vector<int32_t> & par) {
    tok.clear();
    par.clear();
    for (int32_t i = 0; i < n; ++i) {
        int32_t p;
        if (i == 0) p = -1;
        else if (std::uniform_real_distribution<double>(0, 1)(rng) < chain_bias) p = i - 1;
        else p = int32_t(rng() % uint32_t(i + 1)) - 1;
        par.push_back(p);
        tok.push_back(Token(259 + rng() % 250));
    }
}

}  // namespace

void TstSpeculative::initTestCase() {
    QVERIFY(m_dir.isValid());
    const std::string d = m_dir.path().toStdString();
    for (const char * preset : {"tiny-llama", "tiny-qwen2", "tiny-gemma3"}) {
        SynthSpec s = *synth_preset(preset);
        s.n_layer = 3;
        s.weight_std = 0.25f;  // peaky next-token distributions (repetitive greedy text)
        m_models[std::string(preset)] = gb::test::write_and_load(s, d + "/" + preset + ".gguf", 1);
        s.seed = 99;  // same vocabulary, other weights: a draft that disagrees often
        m_models[std::string(preset) + "-draft"] = gb::test::write_and_load(s, d + "/" + preset + "-draft.gguf", 1);
    }
    {
        const Status st = write_layer_skipped_copy(*m_models["tiny-llama"], {2}, d + "/tiny-llama-skip2.gguf");
        if (!st) qFatal("skip copy: %s", st.error().message.c_str());
        m_models["tiny-llama-skip2"] = std::move(Model::load(d + "/tiny-llama-skip2.gguf").value());
    }
    SynthSpec g6 = *synth_preset("tiny-gemma3");
    g6.n_layer = 6;
    m_models["tiny-gemma3-6"] = gb::test::write_and_load(g6, d + "/tiny-gemma3-6.gguf", 1);
    SynthSpec s = *synth_preset("tiny-llama");
    s.n_vocab = 600;
    m_models["tiny-llama-600"] = gb::test::write_and_load(s, d + "/tiny-llama-600.gguf", 1);
}

void TstSpeculative::targetDistMatchesSampler_data() {
    QTest::addColumn<float>("temp");
    QTest::addColumn<int>("top_k");
    QTest::addColumn<float>("top_p");
    QTest::addColumn<float>("min_p");
    QTest::addColumn<float>("repeat");
    QTest::addColumn<float>("freq");
    QTest::newRow("defaults") << 0.8f << 40 << 0.95f << 0.05f << 1.0f << 0.0f;
    QTest::newRow("pure") << 1.0f << 0 << 1.0f << 0.0f << 1.0f << 0.0f;
    QTest::newRow("topk") << 0.7f << 5 << 1.0f << 0.0f << 1.0f << 0.0f;
    QTest::newRow("topp-minp") << 1.3f << 0 << 0.7f << 0.1f << 1.0f << 0.0f;
    QTest::newRow("penalties") << 0.9f << 20 << 0.9f << 0.02f << 1.3f << 0.4f;
}

void TstSpeculative::targetDistMatchesSampler() {
    QFETCH(float, temp); QFETCH(int, top_k); QFETCH(float, top_p); QFETCH(float, min_p);
    QFETCH(float, repeat); QFETCH(float, freq);
    std::mt19937 g(3);
    std::normal_distribution<float> nd(0.0f, 3.0f);
    for (int trial = 0; trial < 200; ++trial) {
        std::vector<float> logits(300);
        for (float & x : logits) x = nd(g);
        std::vector<Token> hist;
        for (int i = 0; i < 30; ++i) hist.push_back(Token(g() % 300));
        SamplerParams sp;
        sp.temperature = temp; sp.top_k = top_k; sp.top_p = top_p; sp.min_p = min_p;
        sp.repeat_penalty = repeat; sp.frequency_penalty = freq; sp.penalty_last_n = 16;
        sp.seed = 1000 + uint64_t(trial);
        Sampler s(sp);
        for (Token t : hist) s.accept(t);
        CandidateArray d;
        spec::target_dist(logits, sp, hist, d);
        std::mt19937_64 rng(sp.seed);
        for (int k = 0; k < 5; ++k) QCOMPARE(spec::draw(d, rng), s.sample(logits));
        sp.temperature = 0.0f;
        Sampler sg(sp);
        for (Token t : hist) sg.accept(t);
        QCOMPARE(spec::greedy_token(logits, sp, hist), sg.sample(logits));
    }
}

void TstSpeculative::greedyEqualsPlain_data() {
    QTest::addColumn<QString>("arch");
    QTest::addColumn<QString>("method");
    QTest::addColumn<int>("draft_max");
    QTest::addColumn<int>("branches");
    QTest::addColumn<int>("prompt");
    for (const char * arch : {"tiny-llama", "tiny-qwen2", "tiny-gemma3"}) {
        for (const char * method : {"lookup", "lookahead", "draft", "draft-self", "selfdraft"}) {
            for (int k : {1, 2, 5}) {
                for (int br : {1, 3}) {
                    if (br > 1 && std::string(method).find("draft") != std::string::npos) continue;  // chains only
                    for (int p = 0; p < 3; ++p) {
                        QTest::addRow("%s/%s/k%d/b%d/p%d", arch, method, k, br, p) << arch << method << k << br << p;
                    }
                }
            }
        }
    }
}

void TstSpeculative::greedyEqualsPlain() {
    QFETCH(QString, arch); QFETCH(QString, method); QFETCH(int, draft_max); QFETCH(int, branches); QFETCH(int, prompt);
    const std::string a = arch.toStdString();
    std::string m = method.toStdString();
    auto target = model(a);
    std::shared_ptr<const Model> draft = m == "draft-self" ? target : model(a + "-draft");
    if (m == "draft-self") m = "draft";
    SamplerParams sp;
    sp.temperature = 0.0f;
    const std::vector<Token> p = prompt_of(prompt);
    const int32_t n = 32;
    auto ctx = make_ctx(target);
    const std::vector<Token> want = plain_generate(*ctx, p, n, sp);
    auto r = speculative_generate(*ctx, make_spec(m, target, draft, fixed_spec(SpecMethod::None, draft_max, branches), sp), p, n,
                                  fixed_spec(SpecMethod::None, draft_max, branches), sp, false);
    QVERIFY2(r.ok(), r.ok() ? "" : r.error().message.c_str());
    QCOMPARE(r->tokens, want);
    QCOMPARE(int64_t(r->tokens.size()), r->stats.emitted);
    // Origins add up; a draft of the target itself is always accepted.
    QCOMPARE(r->stats.n_target + r->stats.n_draft + r->stats.n_correction + r->stats.n_bonus, r->stats.emitted);
    if (method == "draft-self") {
        QCOMPARE(r->stats.accepted, r->stats.proposed);
        QVERIFY(r->stats.accepted > 0);
    }
}

namespace {
// Proposes a fixed-shape tree around the known plain continuation: branch 1
// wrong at depth 1, branch 2 right for 2 tokens then wrong, branch 3 right for
// `right` tokens; so the verifier must leave the first decoded branch.
class OracleTreeSpeculator final : public Speculator {
  public:
    OracleTreeSpeculator(std::vector<Token> full, int32_t right) : m_full(std::move(full)), m_right(right) {}
    const char * name() const override { return "oracle-tree"; }
    Status propose(std::span<const Token> t, int32_t max_len, Draft & out, const std::atomic<bool> *) override {
        out.clear();
        const size_t at = t.size();  // next position
        if (at + size_t(max_len) > m_full.size()) return {};
        auto truth = [&](size_t i) { return m_full[at + i]; };
        auto wrong = [&](size_t i) { return Token(259 + (truth(i) + 7 - 259) % 200); };
        std::vector<Token> b1 = {wrong(0), truth(1)}, b2, b3;
        for (int32_t i = 0; i < max_len; ++i) b2.push_back(i < 2 ? truth(size_t(i)) : wrong(size_t(i)));
        for (int32_t i = 0; i < max_len; ++i) b3.push_back(i < m_right ? truth(size_t(i)) : wrong(size_t(i)));
        out.add_branch(b1);
        out.add_branch(b2);
        out.add_branch(b3);
        return {};
    }
  private:
    std::vector<Token> m_full;
    int32_t m_right;
};
}  // namespace

void TstSpeculative::treeIsExercised() {
    auto target = model("tiny-llama");
    SamplerParams sp;
    sp.temperature = 0.0f;
    auto ctx = make_ctx(target);
    for (int pr = 0; pr < 3; ++pr) {
        const std::vector<Token> p = prompt_of(pr);
        const std::vector<Token> want = plain_generate(*ctx, p, 40, sp);
        std::vector<Token> full = p;
        full.insert(full.end(), want.begin(), want.end());
        for (int k : {5, 8}) {
            for (int right : {1, 3, 5}) {
                auto r = speculative_generate(*ctx, std::make_unique<OracleTreeSpeculator>(full, right), p, 40,
                                              fixed_spec(SpecMethod::None, k, 3), sp, false);
                QVERIFY(r.ok());
                QCOMPARE(r->tokens, want);
                // Branch 1 is wrong at its first token, so every accepted token
                // comes from branches 2 and 3: the walk left the first-child chain.
                // The first-child chain's head rows come with decode_tree; the
                // other nodes' rows too once the walk is seen to leave the chain
                // often (it always does here), else one more head call per switch.
                int64_t spec_steps = 0, one_call = 0;
                for (const SpecStep & s : r->stats.per_step) {
                    if (s.proposed == 0) continue;
                    ++spec_steps;
                    QCOMPARE(s.accepted, std::min(std::max(right, 2), s.draft_len));
                    QVERIFY(s.decode_calls >= 1);
                    QVERIFY(s.decode_calls <= (right > 2 && s.draft_len > 2 ? 3 : 2));
                    one_call += s.decode_calls == 1;
                }
                QVERIFY(spec_steps > 0);
                if (k == 5) QVERIFY(one_call > 0);  // eager rows once the walk keeps leaving the chain
            }
        }
    }
    // Lookup offers several continuations as a tree: check the tree shape.
    SpecConfig cfg = fixed_spec(SpecMethod::None, 4, 3);
    auto lk = make_prompt_lookup_speculator(cfg);
    Draft d;
    const std::vector<Token> ctxt = prompt_of(0);  // ends with "300 301"; seen before 302, 302, 305
    QVERIFY(lk->propose(ctxt, 4, d, nullptr).ok());
    int32_t root_kids = 0;
    for (int32_t par : d.parent) root_kids += par < 0;
    QCOMPARE(root_kids, 2);  // 305 (most recent) and 302
    QCOMPARE(d.tokens[0], Token(305));
    QCOMPARE(d.depth(), 4);
}

void TstSpeculative::adaptiveAndAutoOffStayLossless() {
    auto target = model("tiny-qwen2");
    SamplerParams sp;
    sp.temperature = 0.0f;
    SpecConfig cfg;  // adaptive + auto-off (defaults)
    cfg.draft_max = 6;
    auto ctx = make_ctx(target);
    for (const char * method : {"lookup", "draft", "lookahead"}) {
        for (int pr = 0; pr < 3; ++pr) {
            auto r = speculative_generate(*ctx, make_spec(method, target, model("tiny-qwen2-draft"), cfg, sp),
                                          prompt_of(pr), 50, cfg, sp, false);
            QVERIFY(r.ok());
            QCOMPARE(r->tokens, plain_generate(*ctx, prompt_of(pr), 50, sp));
        }
    }
}

void TstSpeculative::lookaheadWindowGreedy_data() {
    QTest::addColumn<QString>("arch");
    QTest::addColumn<int>("window");
    QTest::addColumn<int>("ngram");
    QTest::addColumn<int>("verify");
    QTest::addColumn<int>("draft_max");
    QTest::addColumn<int>("prompt");
    const int shapes[][4] = {{1, 2, 1, 1}, {3, 3, 2, 2}, {5, 4, 3, 3}, {4, 5, 1, 4}, {7, 3, 5, 6}, {2, 6, 2, 5}};
    for (const char * arch : {"tiny-llama", "tiny-qwen2", "tiny-gemma3"}) {
        for (const auto & sh : shapes) {
            for (int p = 0; p < 3; ++p) {
                QTest::addRow("%s/W%d/N%d/G%d/k%d/p%d", arch, sh[0], sh[1], sh[2], sh[3], p)
                    << arch << sh[0] << sh[1] << sh[2] << sh[3] << p;
            }
        }
    }
}

// Lookahead decoding with its Jacobi window: greedy output equals plain
// decoding for window sizes W, n-gram sizes N and verified candidates G.
void TstSpeculative::lookaheadWindowGreedy() {
    QFETCH(QString, arch); QFETCH(int, window); QFETCH(int, ngram); QFETCH(int, verify); QFETCH(int, draft_max);
    QFETCH(int, prompt);
    auto target = model(arch.toStdString());
    SamplerParams sp;
    sp.temperature = 0.0f;
    SpecConfig cfg = fixed_spec(SpecMethod::None, draft_max, verify);
    cfg.lookahead_window = window;
    cfg.lookahead_ngram = ngram;
    auto ctx = make_ctx(target);
    const std::vector<Token> p = prompt_of(prompt);
    const std::vector<Token> want = plain_generate(*ctx, p, 40, sp);
    auto r = speculative_generate(*ctx, make_spec("lookahead", target, nullptr, cfg, sp), p, 40, cfg, sp, false);
    QVERIFY2(r.ok(), r.ok() ? "" : r.error().message.c_str());
    QCOMPARE(r->tokens, want);
    QVERIFY(r->stats.proposed > 0);
}

namespace {
// Lends the lookahead speculator to a SpecDecoder and keeps what passed: the
// last draft (with its window as aux nodes) and the observation.
class Recording final : public Speculator {
  public:
    explicit Recording(Speculator & s) : m_s(s) {}
    const char * name() const override { return m_s.name(); }
    Status propose(std::span<const Token> t, int32_t k, Draft & out, const std::atomic<bool> * c) override {
        Status st = m_s.propose(t, k, out, c);
        draft = out;
        seq.assign(t.begin(), t.end());
        observed = false;
        return st;
    }
    void observe(const SpecObservation & o) override {
        m_s.observe(o);
        aux_next = o.aux_next;
        observed = true;
    }
    Draft draft;
    std::vector<Token> seq, aux_next;
    bool observed = false;
  private:
    Speculator & m_s;
};
}  // namespace

// The window is the paper's 2-D lookahead branch: W x (levels) aux nodes, node
// (l, i) seeing the oldest level up to column i and then its own column; the
// target's argmax after each last-level node (checked against a plain decode of
// the node's path) becomes the next level, the oldest level is dropped once
// there are N - 1 levels.
void TstSpeculative::lookaheadJacobiWindow() {
    const int W = 4, N = 4;
    for (const char * arch : {"tiny-llama", "tiny-gemma3"}) {
        auto target = model(arch);
        SamplerParams sp;
        sp.temperature = 0.0f;
        SpecConfig cfg = fixed_spec(SpecMethod::None, 3, 2);
        cfg.lookahead_window = W;
        cfg.lookahead_ngram = N;
        auto la = make_spec("lookahead", target, nullptr, cfg, sp);
        auto rec_owned = std::make_unique<Recording>(*la);
        Recording & rec = *rec_owned;
        auto ctx = make_ctx(target);
        auto oracle = make_ctx(target);
        const std::vector<Token> p = prompt_of(1);
        QVERIFY(ctx->decode(p, false));
        SpecDecoder dec(*ctx, std::move(rec_owned), cfg, sp);
        dec.begin(p);
        std::vector<SpecToken> out;
        QVERIFY(dec.step(out, 64, 0));  // the first token comes from the prefill
        std::vector<Token> prev_last;   // last level's Jacobi outputs of the previous step
        for (int stepi = 0; stepi < 8; ++stepi) {
            QVERIFY(dec.step(out, 64, 0));
            QVERIFY(rec.observed);
            const Draft & d = rec.draft;
            const int levels = std::min(stepi + 1, N - 1);
            QCOMPARE(int(d.aux_tokens.size()), W * levels);
            QCOMPARE(rec.aux_next.size(), d.aux_tokens.size());
            for (int l = 0; l < levels; ++l) {
                for (int i = 0; i < W; ++i) {
                    const int j = l * W + i;
                    const int want_parent = l == 0 ? (i == 0 ? -1 : i - 1) : (l - 1) * W + i;
                    QCOMPARE(d.aux_parent[size_t(j)], want_parent);
                    QCOMPARE(int(d.aux_output[size_t(j)]), l == levels - 1 ? 1 : 0);
                    if (l == levels - 1 && !prev_last.empty()) QCOMPARE(d.aux_tokens[size_t(j)], prev_last[size_t(i)]);
                }
            }
            prev_last.clear();
            for (int i = 0; i < W; ++i) {
                const int j = (levels - 1) * W + i;
                // oracle: plain decoding of the committed sequence + the node's root path
                std::vector<Token> path;
                for (int a = j; a >= 0; a = d.aux_parent[size_t(a)]) path.push_back(d.aux_tokens[size_t(a)]);
                std::vector<Token> full = rec.seq;
                full.insert(full.end(), path.rbegin(), path.rend());
                QCOMPARE(int(path.size()), levels + i);
                oracle->truncate(0);
                QVERIFY(oracle->decode(full, false));
                QCOMPARE(rec.aux_next[size_t(j)], spec::argmax(oracle->logits()));
                prev_last.push_back(rec.aux_next[size_t(j)]);
            }
        }
        // Still lossless.
        std::vector<Token> got;
        for (const SpecToken & t : out) got.push_back(t.id);
        QCOMPARE(got, plain_generate(*oracle, p, int32_t(got.size()), sp));
    }
}

namespace {
// A deterministic tree drafter that knows the target: at each node its two most
// likely next tokens (from a second target Context), depth 2: 2 + 4 nodes.
// Exercises the multi-candidate rejection rule that lookup and lookahead use.
class TopTwoTreeSpeculator final : public Speculator {
  public:
    explicit TopTwoTreeSpeculator(std::shared_ptr<const Model> m) : m_ctx(make_ctx(std::move(m))) {}
    const char * name() const override { return "top2-tree"; }
    Status propose(std::span<const Token> t, int32_t max_len, Draft & out, const std::atomic<bool> *) override {
        out.clear();
        m_ctx->truncate(0);
        GB_TRY_STATUS(m_ctx->decode(t, false));
        const auto top = Sampler::top_logprobs(m_ctx->logits(), 2);
        for (const TokenLogprob & a : top) {
            const int32_t n = out.add(-1, a.id);
            if (max_len < 2) continue;
            m_ctx->truncate(int32_t(t.size()));
            GB_TRY_STATUS(m_ctx->decode(std::span<const Token>(&a.id, 1), false));
            for (const TokenLogprob & b : Sampler::top_logprobs(m_ctx->logits(), 2)) out.add(n, b.id);
        }
        return {};
    }
  private:
    std::unique_ptr<Context> m_ctx;
};
}  // namespace

// Lends a speculator to one SpecDecoder (the drafter's Context is reused across runs).
class Borrowed final : public Speculator {
  public:
    explicit Borrowed(Speculator & s) : m_s(s) {}
    const char * name() const override { return m_s.name(); }
    Status propose(std::span<const Token> t, int32_t k, Draft & out, const std::atomic<bool> * c) override { return m_s.propose(t, k, out, c); }
    void observe(const SpecObservation & o) override { m_s.observe(o); }
    void reset() override { m_s.reset(); }
  private:
    Speculator & m_s;
};

// A model drafter lent to a SpecDecoder whose timed step passes the timing
// gate (on tiny models drafter and target cost alike, and the gate would never
// start it): the controller's probes, window restarts and full catch-ups run.
class CheaplyTimed final : public Speculator {
  public:
    explicit CheaplyTimed(std::unique_ptr<Speculator> s) : m_s(std::move(s)) {}
    const char * name() const override { return m_s->name(); }
    Status propose(std::span<const Token> t, int32_t k, Draft & out, const std::atomic<bool> * c) override { return m_s->propose(t, k, out, c); }
    void observe(const SpecObservation & o) override { m_s->observe(o); }
    void reset() override { m_s->reset(); }
    bool has_model_cost() const override { return true; }
    Result<double> step_ms(const std::atomic<bool> *) override { return 1e-3; }
    void set_ingest_window(int32_t w) override { m_s->set_ingest_window(w); }
    int32_t last_ingested() const override { return m_s->last_ingested(); }
  private:
    std::unique_ptr<Speculator> m_s;
};

// A model drafter's step is timed when it is made (part of loading it), so a
// reply never pays for the timing: step_ms() then hands back that reading
// (the same value, not a new measurement) and leaves the drafter empty.
void TstSpeculative::drafterTimedAtCreation() {
    auto target = model("tiny-llama");
    SamplerParams sp;
    sp.temperature = 0.0f;
    auto made = make_draft_model_speculator(*target, model("tiny-llama-draft"), fixed_spec(SpecMethod::None, 3, 1), sp, 512, 1);
    QVERIFY(made);
    auto * dm = dynamic_cast<spec::DraftModelSpeculator *>(made->get());
    QVERIFY(dm);
    QCOMPARE(dm->context().n_past(), 0);
    QVERIFY(dm->cached_tokens().empty());
    auto a = dm->step_ms(nullptr);
    QVERIFY(a);
    QVERIFY(*a > 0.0);
    for (int i = 0; i < 3; ++i) {
        auto b = dm->step_ms(nullptr);
        QVERIFY(b);
        QCOMPARE(*b, *a);
    }
    QCOMPARE(dm->context().n_past(), 0);
}

void TstSpeculative::drafterWindow() {
    // The drafter's K/V after each proposal, against an independent oracle: a
    // fresh Context of the draft model decoding what the drafter should hold
    // (the sequence's first token + its last W tokens after a restart; those
    // + what came since while the catch-up fits W; the whole sequence with no
    // window) and continuing greedily.
    auto target = model("tiny-llama");
    auto draft = model("tiny-llama-draft");
    SamplerParams sp;
    sp.temperature = 0.0f;
    auto made = make_draft_model_speculator(*target, draft, fixed_spec(SpecMethod::None, 3, 1), sp, 512, 1);
    QVERIFY(made);
    auto * dm = dynamic_cast<spec::DraftModelSpeculator *>(made->get());
    QVERIFY(dm);
    auto oracle_ctx = make_ctx(draft);
    auto oracle = [&](const std::vector<Token> & held, int32_t k) { return plain_generate(*oracle_ctx, held, k, sp); };
    auto window_of = [](const std::vector<Token> & seq, int32_t from) {
        std::vector<Token> w = {seq[0]};
        w.insert(w.end(), seq.begin() + from, seq.end());
        return w;
    };
    std::vector<Token> seq = prompt_of(1);  // 41 tokens
    QCOMPARE(int(seq.size()), 41);
    Draft d;
    dm->set_ingest_window(4);
    QVERIFY(dm->propose(seq, 3, d, nullptr));
    QCOMPARE(dm->last_ingested(), 5);  // the first token + the last 4, not 41
    QCOMPARE(dm->window_start(), 37);
    std::vector<Token> held = window_of(seq, 37);
    QCOMPARE(d.tokens, oracle(held, 3));
    // it holds the window + the drafted tokens that needed logits (k - 1)
    QCOMPARE(dm->context().n_past(), 5 + 2);
    std::vector<Token> want_cached = held;
    want_cached.insert(want_cached.end(), d.tokens.begin(), d.tokens.begin() + 2);
    QCOMPARE(dm->cached_tokens(), want_cached);

    // The first draft token accepted, then a correction: a catch-up of one token.
    seq.push_back(d.tokens[0]);
    seq.push_back(d.tokens[1] == 300 ? 301 : 300);
    QVERIFY(dm->propose(seq, 3, d, nullptr));
    QCOMPARE(dm->last_ingested(), 1);
    QCOMPARE(dm->window_start(), 37);
    QCOMPARE(d.tokens, oracle(window_of(seq, 37), 3));  // the window grew with the sequence

    // Ten tokens later (a probe after plain steps): a restart on the last 4.
    for (int i = 0; i < 10; ++i) seq.push_back(Token(260 + 7 * i));
    QVERIFY(dm->propose(seq, 3, d, nullptr));
    QCOMPARE(dm->last_ingested(), 5);
    QCOMPARE(dm->window_start(), int(seq.size()) - 4);
    QCOMPARE(d.tokens, oracle(window_of(seq, int(seq.size()) - 4), 3));
    QCOMPARE(dm->context().n_past(), 5 + 2);

    // No window (a plan that pays): the whole sequence, once.
    dm->set_ingest_window(0);
    QVERIFY(dm->propose(seq, 3, d, nullptr));
    QCOMPARE(dm->last_ingested(), int(seq.size()));
    QCOMPARE(dm->window_start(), 0);
    QCOMPARE(d.tokens, oracle(seq, 3));
    seq.push_back(d.tokens[0]);
    QVERIFY(dm->propose(seq, 3, d, nullptr));
    QCOMPARE(dm->last_ingested(), 1);
    QCOMPARE(d.tokens, oracle(seq, 3));

    // Random growth under a window of 6: a proposal never feeds more than 7
    // tokens, and what the drafter holds is always the oracle's context.
    dm->set_ingest_window(6);
    std::mt19937 rng(3);
    for (int it = 0; it < 12; ++it) {
        const int grow = int(rng() % 12);
        for (int i = 0; i < grow; ++i) seq.push_back(Token(259 + rng() % 200));
        if (grow == 0) seq.push_back(d.tokens[0]);
        QVERIFY(dm->propose(seq, 2, d, nullptr));
        QVERIFY2(dm->last_ingested() <= 7, qPrintable(QString("fed %1 tokens").arg(dm->last_ingested())));
        const int32_t ws = dm->window_start();
        QCOMPARE(d.tokens, oracle(ws > 0 ? window_of(seq, ws) : seq, 2));
    }
}

void TstSpeculative::drafterWindowGreedy_data() {
    QTest::addColumn<QString>("method");
    QTest::addColumn<int>("window");
    QTest::addColumn<double>("budget");
    for (const char * m : {"draft", "draft-self"}) {
        for (int w : {2, 5}) {
            for (double b : {0.0, 0.05, 1.0}) {
                QTest::newRow(qPrintable(QString("%1/w%2/budget%3").arg(m).arg(w).arg(b))) << QString(m) << w << b;
            }
        }
    }
}

void TstSpeculative::drafterWindowGreedy() {
    // Adaptive + auto-off with probes every step while off: window restarts,
    // growing windows and full catch-ups (when the budget allows) all happen,
    // and greedy output stays plain decoding's.
    QFETCH(QString, method); QFETCH(int, window); QFETCH(double, budget);
    auto target = model("tiny-llama");
    auto draft = method == "draft-self" ? target : model("tiny-llama-draft");
    SamplerParams sp;
    sp.temperature = 0.0f;
    SpecConfig cfg;
    cfg.draft_max = 4;
    cfg.probe_interval = 1;
    cfg.draft_window = window;
    cfg.probe_budget = budget;
    auto ctx = make_ctx(target);
    int64_t probes = 0, restarts = 0;
    for (int which : {0, 1}) {
        const std::vector<Token> p = prompt_of(which);
        const int32_t n = 48;
        const std::vector<Token> want = plain_generate(*ctx, p, n, sp);
        auto spec = std::make_unique<CheaplyTimed>(make_spec("draft", target, draft, cfg, sp));
        auto r = speculative_generate(*ctx, std::move(spec), p, n, cfg, sp, false);
        QVERIFY(r);
        QCOMPARE(r->tokens, want);
        int64_t fed = 0;
        for (const SpecStep & st : r->stats.per_step) {
            fed += st.ingested;
            if (st.probe) QVERIFY2(st.ingested <= window + 1, qPrintable(QString("a probe fed %1 tokens").arg(st.ingested)));
            restarts += st.ingested == window + 1;
        }
        QCOMPARE(fed, r->stats.drafter_ingested);
        probes += r->stats.probes;
        // the target drafting for itself on the whole context (no budget: plans that pay catch up fully)
        if (method == "draft-self" && budget == 0.0) QVERIFY(r->stats.accepted > 0);
    }
    if (method == "draft" && budget == 0.0) {
        QVERIFY(probes > 0);
        QVERIFY(restarts > 0);
    }
}

void TstSpeculative::distribution_data() {
    QTest::addColumn<QString>("method");
    QTest::addColumn<int>("rule");  // AcceptRule
    QTest::newRow("none/exact") << "none" << int(AcceptRule::Exact);
    QTest::newRow("draft/exact") << "draft" << int(AcceptRule::Exact);
    // the drafter restarted on a window of the sequence (first token + last 8 of the 15)
    QTest::newRow("draft-window/exact") << "draft-window" << int(AcceptRule::Exact);
    QTest::newRow("draft-window/always-accept") << "draft-window" << int(AcceptRule::AlwaysAccept);
    QTest::newRow("tree/exact") << "tree" << int(AcceptRule::Exact);
    QTest::newRow("lookahead/exact") << "lookahead" << int(AcceptRule::Exact);
    QTest::newRow("draft/always-accept") << "draft" << int(AcceptRule::AlwaysAccept);
    QTest::newRow("draft/ignore-residual") << "draft" << int(AcceptRule::IgnoreResidual);
    QTest::newRow("tree/always-accept") << "tree" << int(AcceptRule::AlwaysAccept);
    QTest::newRow("tree/ignore-residual") << "tree" << int(AcceptRule::IgnoreResidual);
}

void TstSpeculative::distribution() {
    QFETCH(QString, method); QFETCH(int, rule);
    auto target = model("tiny-llama");
    auto draft = model("tiny-llama-skip2");  // the target without its last layer: similar, not equal
    SamplerParams sp;
    sp.temperature = 1.0f; sp.top_k = 4; sp.top_p = 1.0f; sp.min_p = 0.0f;
    const std::vector<Token> p = prompt_of(0);
    const int K = 4;
    auto ctx = make_ctx(target);
    // Exact joint distribution of (t1, t2, t3) by enumeration with an independent top-k softmax.
    const std::map<std::vector<Token>, double> expect = gb::test::first_three_dist(*ctx, p, K);
    const int n = 2000;
    std::map<std::vector<Token>, int> seen;
    SpecConfig cfg = fixed_spec(SpecMethod::None, 3, 2);
    int64_t proposed = 0, accepted = 0;
    std::unique_ptr<Speculator> shared;
    sp.seed = 4999;
    if (method == "tree") shared = std::make_unique<TopTwoTreeSpeculator>(target);
    else if (method == "draft-window") {
        shared = make_spec("draft", target, draft, cfg, sp);
        shared->set_ingest_window(8);  // Borrowed does not pass the decoder's window on: it stays 8
    } else if (method != "none") shared = make_spec(method.toStdString(), target, draft, cfg, sp);
    for (int i = 0; i < n; ++i) {
        sp.seed = 5000 + uint64_t(i);
        std::unique_ptr<Speculator> spec;
        if (shared) spec = std::make_unique<Borrowed>(*shared);
        ctx->truncate(0);
        QVERIFY(ctx->decode(p, false));
        SpecDecoder dec(*ctx, std::move(spec), cfg, sp);
        dec.set_accept_rule(AcceptRule(rule));
        dec.begin(p);
        std::vector<SpecToken> out;
        // max_new 3 leaves room for a depth-2 draft at the second step
        QVERIFY(dec.step(out, 3, 0));
        while (out.size() < 3) QVERIFY(dec.step(out, 3 - int32_t(out.size()) + 1, 0));
        seen[{out[0].id, out[1].id, out[2].id}]++;
        proposed += dec.stats().proposed;
        accepted += dec.stats().accepted;
    }
    const double pv = chi_square_p(expect, seen, n);
    qInfo("%s rule %d: chi-square p = %.3g, proposed %lld accepted %lld", qPrintable(method), rule, pv,
          (long long)proposed, (long long)accepted);
    if (method != "none") QVERIFY(proposed >= n);
    if (rule == int(AcceptRule::Exact)) {
        QVERIFY2(pv > 1e-3, "the exact rule's samples do not follow the target distribution");
        if (method == "draft" || method == "tree") QVERIFY(accepted > n / 4 && accepted < proposed);  // both outcomes, often
        // a drafter that sees 9 of the 15 prompt tokens agrees less (measured: 176 of 5956), still both outcomes
        if (method == "draft-window") QVERIFY(accepted > n / 40 && accepted < proposed);
    } else {
        QVERIFY2(pv < 1e-6, "a broken acceptance rule went unnoticed");
    }
}

void TstSpeculative::rollbackMatchesPlainKv_data() {
    QTest::addColumn<QString>("method");
    QTest::addColumn<float>("temp");
    for (const char * m : {"draft", "lookup", "lookahead", "selfdraft"}) {
        QTest::addRow("%s/greedy", m) << m << 0.0f;
        QTest::addRow("%s/sampled", m) << m << 0.9f;
    }
}

void TstSpeculative::rollbackMatchesPlainKv() {
    QFETCH(QString, method); QFETCH(float, temp);
    auto target = model("tiny-llama");
    SamplerParams sp;
    sp.temperature = temp;
    sp.seed = 11;
    const std::vector<Token> p = prompt_of(1);
    SpecConfig cfg = fixed_spec(SpecMethod::None, 5, 2);
    auto ctx = make_ctx(target);
    auto spec = make_spec(method.toStdString(), target, model("tiny-llama-draft"), cfg, sp);
    auto r = speculative_generate(*ctx, std::move(spec), p, 45, cfg, sp, false);
    QVERIFY(r.ok());
    QVERIFY2(r->stats.n_correction > 0, "no rejection happened: the test would prove nothing");
    // Continue both: the speculative context (holding prompt + output minus the
    // pending token) and a plain one decoded token by token.
    std::vector<Token> seq = p;
    seq.insert(seq.end(), r->tokens.begin(), r->tokens.end());
    QCOMPARE(ctx->n_past(), int32_t(seq.size()) - 1);
    auto plain = make_ctx(target);
    QVERIFY(plain->decode(p, false));
    for (size_t i = p.size(); i + 1 < seq.size(); ++i) QVERIFY(plain->decode(std::span<const Token>(&seq[i], 1), false));
    const std::vector<Token> cont = {seq.back(), 300, 301, 302};
    QVERIFY(ctx->decode(cont, true));
    QVERIFY(plain->decode(cont, true));
    const auto a = ctx->logits();
    const auto b = plain->logits();
    QCOMPARE(a.size(), b.size());
    double max_diff = 0.0;
    for (size_t i = 0; i < a.size(); ++i) max_diff = std::max(max_diff, double(std::fabs(a[i] - b[i])));
    qInfo("max |logit diff| after continuing: %g", max_diff);
    QCOMPARE(max_diff, 0.0);  // batch-invariant kernels: the kept K/V is bit for bit plain decoding's
}

void TstSpeculative::incompatibleDraftRefused() {
    auto target = model("tiny-llama");
    SpecConfig cfg;
    SamplerParams sp;
    auto r = make_draft_model_speculator(*target, model("tiny-llama-600"), cfg, sp, 256, 1);
    QVERIFY(!r.ok());
    QVERIFY2(r.error().message.find("vocabulary size differs (target 512, draft 600)") != std::string::npos,
             r.error().message.c_str());
    // Same size, two token texts swapped and a different BOS.
    const std::string d = m_dir.path().toStdString();
    copy_with(d + "/tiny-llama-draft.gguf", d + "/swapped.gguf", [](gguf::Writer & w, const gguf::File & f) {
        std::vector<std::string> toks;
        for (const gguf::Value & v : f.get_array("tokenizer.ggml.tokens")->items) toks.push_back(*v.as_string());
        std::swap(toks[400], toks[401]);
        w.set_array_string("tokenizer.ggml.tokens", toks);
        w.set_u32("tokenizer.ggml.bos_token_id", 2);
    });
    auto swapped = Model::load(d + "/swapped.gguf");
    QVERIFY(swapped.ok());
    const Status st = check_vocab_compatible(*target, **swapped);
    QVERIFY(!st.ok());
    const std::string msg = st.error().message;
    qInfo("%s", msg.c_str());
    QVERIFY(msg.find("BOS token differs (target 1, draft 2)") != std::string::npos);
    QVERIFY(msg.find("id 400 is") != std::string::npos);
    QVERIFY(msg.find("id 401 is") != std::string::npos);
    QVERIFY(check_vocab_compatible(*target, *model("tiny-llama-draft")).ok());
}

void TstSpeculative::layerSkippedCopy() {
    // The copy without layer 1 must compute what the target computes when
    // layer 1 is an identity: compare with a copy whose layer 1 output
    // projections are zero (attn_output, ffn_down) -> residual unchanged.
    auto target = model("tiny-llama");
    const std::string d = m_dir.path().toStdString();
    QVERIFY(write_layer_skipped_copy(*target, {1}, d + "/skip1.gguf").ok());
    copy_with(d + "/tiny-llama.gguf", d + "/zero1.gguf", [](gguf::Writer &, const gguf::File &) {});
    // Rewrite zero1 with zeroed layer-1 output projections.
    {
        auto f = gguf::File::open(d + "/tiny-llama.gguf");
        QVERIFY(f.ok());
        gguf::Writer w;
        for (const auto & [k, v] : (*f)->metadata()) if (k != "general.alignment") w.set(k, v);
        for (const gguf::TensorInfo & t : (*f)->tensors()) {
            const bool zero = t.name == "blk.1.attn_output.weight" || t.name == "blk.1.ffn_down.weight";
            const uint8_t * p = t.data;
            QVERIFY(w.add_tensor(t.name, t.type, std::vector<int64_t>(t.ne, t.ne + t.n_dims), [p, zero](uint8_t * dst, size_t n) {
                if (zero) std::fill(dst, dst + n, uint8_t(0));
                else std::copy(p, p + n, dst);
            }).ok());
        }
        QVERIFY(w.write(d + "/zero1.gguf").ok());
    }
    auto a = Model::load(d + "/skip1.gguf");
    auto b = Model::load(d + "/zero1.gguf");
    QVERIFY(a.ok() && b.ok());
    QCOMPARE((*a)->hparams().n_layer, target->hparams().n_layer - 1);
    const std::vector<Token> p = prompt_of(1);
    auto ca = make_ctx(*a);
    auto cb = make_ctx(*b);
    QVERIFY(ca->decode(p, false));
    QVERIFY(cb->decode(p, false));
    double max_diff = 0.0;
    for (size_t i = 0; i < ca->logits().size(); ++i) max_diff = std::max(max_diff, double(std::fabs(ca->logits()[i] - cb->logits()[i])));
    QVERIFY2(max_diff < 1e-3, qPrintable(QString::number(max_diff)));
    // gemma3's index-based layer pattern is protected.
    auto g6 = model("tiny-gemma3-6");
    QVERIFY(g6->hparams().sliding_window > 0);
    const Status st = write_layer_skipped_copy(*g6, {1}, d + "/bad.gguf");
    QVERIFY(!st.ok());
    QVERIFY2(st.error().message.find("layer 5 into layer 4") != std::string::npos, st.error().message.c_str());
    QVERIFY(write_layer_skipped_copy(*g6, {0, 1, 2, 3, 4, 5}, d + "/bad.gguf").ok() == false);  // every layer
    QVERIFY(write_layer_skipped_copy(*g6, {2, 3}, d + "/ok.gguf").ok() == false);  // 5 -> 3

}

void TstSpeculative::treeDecodeMatchesPlain_data() {
    QTest::addColumn<QString>("arch");
    QTest::addColumn<int>("n_prompt");
    QTest::addColumn<int>("n_nodes");
    QTest::addColumn<double>("chain_bias");
    for (const char * arch : {"tiny-llama", "tiny-qwen2", "tiny-gemma3", "tiny-gemma3-6"}) {
        // short prompt (sliding window not reached), long (nodes cross the window edge)
        for (int np : {3, 21}) {
            QTest::addRow("%s/p%d/chain", arch, np) << arch << np << 7 << 1.0;
            QTest::addRow("%s/p%d/bushy", arch, np) << arch << np << 12 << 0.2;
            QTest::addRow("%s/p%d/mixed", arch, np) << arch << np << 20 << 0.6;
        }
    }
}

void TstSpeculative::treeDecodeMatchesPlain() {
    // Oracle: for every node, a fresh Context decoding prompt + the node's root
    // path one token at a time. decode_tree must give the same bits; after
    // commit_tree(path) the K/V must be plain decoding's: continuing gives the
    // same bits as continuing the oracle.
    QFETCH(QString, arch); QFETCH(int, n_prompt); QFETCH(int, n_nodes); QFETCH(double, chain_bias);
    auto target = model(arch.toStdString());
    const int32_t n_vocab = target->hparams().n_vocab;
    std::mt19937 rng(uint32_t(n_prompt * 131 + n_nodes));
    std::vector<Token> prompt = {1};
    for (int i = 1; i < n_prompt; ++i) prompt.push_back(Token(259 + rng() % 250));
    auto ctx = make_ctx(target);
    auto plain = make_ctx(target);
    for (int trial = 0; trial < 3; ++trial) {
        std::vector<Token> tok;
        std::vector<int32_t> par;
        random_tree(rng, n_nodes, chain_bias, tok, par);
        ctx->truncate(0);
        QVERIFY(ctx->decode(prompt, false));
        // every node's logits, in a shuffled order
        std::vector<int32_t> order(static_cast<size_t>(n_nodes));
        for (int32_t i = 0; i < n_nodes; ++i) order[size_t(i)] = i;
        std::shuffle(order.begin(), order.end(), rng);
        QVERIFY(ctx->decode_tree(tok, par, order).ok());
        QCOMPARE(ctx->n_past(), int32_t(prompt.size()));
        QCOMPARE(ctx->logits().size(), size_t(n_nodes) * size_t(n_vocab));
        std::vector<float> tree_logits(ctx->logits().begin(), ctx->logits().end());
        auto path_of = [&](int32_t node) {
            std::vector<int32_t> path;
            for (int32_t a = node; a >= 0; a = par[size_t(a)]) path.insert(path.begin(), a);
            return path;
        };
        for (size_t r = 0; r < order.size(); ++r) {
            const int32_t node = order[r];
            plain->truncate(0);
            QVERIFY(plain->decode(prompt, false));
            for (int32_t a : path_of(node)) QVERIFY(plain->decode(std::span<const Token>(&tok[size_t(a)], 1), false));
            const std::span<const float> got(tree_logits.data() + r * size_t(n_vocab), size_t(n_vocab));
            QVERIFY2(same_bits(got, plain->logits()), qPrintable(QString("node %1 (depth %2)").arg(node).arg(path_of(node).size())));
        }
        // tree_logits() recomputes a subset with the same bits
        const int32_t a = order[0], b = order.back();
        const int32_t pair[2] = {b, a};
        QVERIFY(ctx->tree_logits(pair).ok());
        QVERIFY(same_bits(ctx->logits().subspan(0, size_t(n_vocab)),
                          std::span<const float>(tree_logits.data() + (order.size() - 1) * size_t(n_vocab), size_t(n_vocab))));
        QVERIFY(same_bits(ctx->logits().subspan(size_t(n_vocab)), std::span<const float>(tree_logits.data(), size_t(n_vocab))));
        // keep the path of a random node (the deepest one on the last trial)
        int32_t keep = int32_t(rng() % uint32_t(n_nodes));
        if (trial == 2) {
            for (int32_t i = 0; i < n_nodes; ++i) if (path_of(i).size() > path_of(keep).size()) keep = i;
        }
        const std::vector<int32_t> path = path_of(keep);
        QVERIFY(ctx->commit_tree(path).ok());
        QCOMPARE(ctx->n_past(), int32_t(prompt.size() + path.size()));
        plain->truncate(0);
        QVERIFY(plain->decode(prompt, false));
        for (int32_t x : path) QVERIFY(plain->decode(std::span<const Token>(&tok[size_t(x)], 1), false));
        const std::vector<Token> cont = {300, 301, 302, 303, 304, 305, 306, 307, 308, 309};
        QVERIFY(ctx->decode(cont, true));
        QVERIFY(plain->decode(cont, true));
        QVERIFY2(same_bits(ctx->logits(), plain->logits()), "K/V after commit_tree differs from plain decoding");
    }
}

void TstSpeculative::treeDecodeErrors() {
    auto target = model("tiny-llama");
    auto ctx = make_ctx(target, 64);
    QVERIFY(ctx->supports_tree());
    const std::vector<Token> p = prompt_of(0);
    QVERIFY(ctx->decode(p, false));
    const std::vector<Token> tok = {300, 301, 302};
    const std::vector<int32_t> bad_parent = {-1, 1, 0};  // node 1 its own parent
    const int32_t none[1] = {0};
    QVERIFY(!ctx->decode_tree(tok, bad_parent, none).ok());
    const std::vector<int32_t> par = {-1, 0, 0};
    QVERIFY(ctx->decode_tree(tok, par, none).ok());
    const int32_t out_of_tree[1] = {3};
    QVERIFY(!ctx->tree_logits(out_of_tree).ok());
    const int32_t not_a_path[2] = {0, 0};  // node 0 is not its own child
    QVERIFY(!ctx->commit_tree(not_a_path).ok());
    QCOMPARE(ctx->n_past(), int32_t(p.size()));
    // decode() drops the pending tree
    QVERIFY(ctx->decode_tree(tok, par, none).ok());
    QVERIFY(ctx->decode(std::span<const Token>(&tok[0], 1), false));
    const int32_t root[1] = {0};
    QVERIFY(!ctx->commit_tree(root).ok());
    QCOMPARE(ctx->n_past(), int32_t(p.size()) + 1);
    // too big for the context
    std::vector<Token> big(64, 300);
    std::vector<int32_t> chain(64);
    for (int32_t i = 0; i < 64; ++i) chain[size_t(i)] = i - 1;
    QVERIFY(!ctx->decode_tree(big, chain, none).ok());
}

void TstSpeculative::skipLayersContext() {
    // A Context that skips layers computes exactly what the model computes when
    // those layers add nothing to the residual (zero output projections), for
    // any set, gemma3's index-patterned layers included (which the GGUF copy refuses).
    const std::string d = m_dir.path().toStdString();
    struct Case { const char * model; std::vector<int> skip; };
    for (const Case & c : {Case{"tiny-llama", {1}}, Case{"tiny-llama", {2}}, Case{"tiny-gemma3-6", {1}},
                           Case{"tiny-gemma3-6", {0, 3, 5}}, Case{"tiny-qwen2", {0, 2}}}) {
        const std::string path = d + "/" + c.model + ".gguf";
        const std::string zpath = d + "/zeroed-" + c.model + ".gguf";
        zeroed_layers_copy(path, zpath, c.skip);
        auto zm = Model::load(zpath);
        QVERIFY(zm.ok());
        ContextParams cp;
        cp.n_ctx = 128;
        cp.n_threads = 1;
        cp.skip_layers = std::vector<int32_t>(c.skip.begin(), c.skip.end());
        auto skipped = Context::create(model(c.model), cp);
        QVERIFY(skipped.ok());
        auto zeroed = make_ctx(*zm, 128);
        auto full = make_ctx(model(c.model), 128);
        const std::vector<Token> p = prompt_of(1);
        QVERIFY((*skipped)->decode(p, true));
        QVERIFY(zeroed->decode(p, true));
        QVERIFY(full->decode(p, true));
        QVERIFY2(same_bits((*skipped)->logits(), zeroed->logits()), c.model);
        QVERIFY(!same_bits((*skipped)->logits(), full->logits()));  // the skip did something
        // and token trees on a skipping Context too
        const std::vector<Token> tok = {300, 301, 302};
        const std::vector<int32_t> par = {-1, 0, -1};
        const int32_t out[1] = {1};
        QVERIFY((*skipped)->decode_tree(tok, par, out).ok());
        QVERIFY(zeroed->decode(std::span<const Token>(tok.data(), 2), false));
        QVERIFY(same_bits((*skipped)->logits(), zeroed->logits()));
    }
    ContextParams cp;
    cp.skip_layers = {0, 1, 2};
    QVERIFY(!Context::create(model("tiny-llama"), cp).ok());  // every layer
    cp.skip_layers = {3};
    QVERIFY(!Context::create(model("tiny-llama"), cp).ok());  // no such layer
}

void TstSpeculative::statsJson() {
    auto target = model("tiny-llama");
    SamplerParams sp;
    sp.temperature = 0.0f;
    auto ctx = make_ctx(target);
    auto r = speculative_generate(*ctx, make_spec("lookup", target, nullptr, fixed_spec(SpecMethod::None, 4, 1), sp), prompt_of(0), 30,
                                  fixed_spec(SpecMethod::None, 4, 1), sp, false);
    QVERIFY(r.ok());
    const SpecStats & s = r->stats;
    int64_t att = 0, acc = 0;
    for (size_t i = 0; i < s.attempted_at.size(); ++i) {
        QVERIFY(s.accepted_at[i] <= s.attempted_at[i]);
        if (i > 0) QVERIFY(s.attempted_at[i] <= s.attempted_at[i - 1]);
        att += s.attempted_at[i];
        acc += s.accepted_at[i];
    }
    QCOMPARE(acc, s.accepted);
    QCOMPARE(s.n_draft, s.accepted);
    QCOMPARE(int64_t(s.origins.size()), s.emitted);
    const std::string j = s.to_json(true);
    QVERIFY(j.find("\"method\":\"lookup\"") != std::string::npos);
    QVERIFY(j.find("\"acceptance_at\":[") != std::string::npos);
    QVERIFY(j.find("\"token_origins\":\"") != std::string::npos);
}

void TstSpeculative::sessionIntegration() {
    auto target = model("tiny-qwen2");
    SessionParams sp;
    sp.context.n_ctx = 256;
    sp.context.n_threads = 1;
    auto plain = Session::create(target, sp);
    auto spec = Session::create(target, sp);
    QVERIFY(plain.ok() && spec.ok());
    GenerateParams gp;
    gp.sampling.temperature = 0.0f;
    gp.max_tokens = 40;
    gp.ignore_eos = true;
    gp.n_logprobs = 2;
    std::vector<TokenEvent> a, b;
    for (const char * method : {"lookup", "lookahead", "draft"}) {
        gp.spec = fixed_spec(SpecMethod::None, 4, 2);
        QVERIFY(parse_spec_method(method, &gp.spec.method));
        gp.spec.draft_model = model("tiny-qwen2-draft");
        for (int pr = 0; pr < 3; ++pr) {  // the second request reuses cached prefixes
            a.clear();
            b.clear();
            GenerateParams gplain = gp;
            gplain.spec.method = SpecMethod::None;
            auto ra = (*plain)->generate(prompt_of(pr), gplain, [&](const TokenEvent & e) { if (e.id >= 0) a.push_back(e); return true; });
            auto rb = (*spec)->generate(prompt_of(pr), gp, [&](const TokenEvent & e) { if (e.id >= 0) b.push_back(e); return true; });
            QVERIFY(ra.ok() && rb.ok());
            QCOMPARE(rb->text, ra->text);
            QCOMPARE(b.size(), a.size());
            for (size_t i = 0; i < a.size(); ++i) {
                QCOMPARE(b[i].id, a[i].id);
                QVERIFY(std::fabs(b[i].logprob - a[i].logprob) < 1e-4f);
                QCOMPARE(b[i].top.size(), a[i].top.size());
            }
            QCOMPARE(rb->spec.method, std::string(method));
            QCOMPARE(rb->spec.emitted, int64_t(rb->n_generated));
            QCOMPARE((*spec)->cached_tokens(), (*plain)->cached_tokens());
            int64_t drafts = 0;
            for (const TokenEvent & e : b) drafts += e.origin == SpecOrigin::Draft;
            QCOMPARE(drafts, rb->spec.n_draft);
        }
    }
}

QTEST_APPLESS_MAIN(TstSpeculative)
#include "tst_speculative.moc"
