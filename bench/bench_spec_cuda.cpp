// Speculative decoding on the CUDA Context: (1) what verifying n tokens costs
// against one plain decode step (decode_tree of an n-node chain with every
// output row, then either the rows' device summaries (argmax + log-sum-exp:
// what greedy SpecDecoder reads now) or all rows copied to the host), and (2)
// generation tokens/s of plain greedy decoding against each method on a
// grounded (repetitive) prompt. Synthetic weights make text garbage, so real
// acceptance is meaningless here: the "oracle" rows force it (the draft is the
// target's own greedy continuation, known from the plain run; "oracle@a":
// each draft token replaced by a wrong one with probability 1 - a), and the
// real methods run on a prompt that repeats the model's own continuation.
//   bench_spec_cuda MODEL [--draft FILE] [--fill 256] [--reps 15] [--gen 128 (0: verification cost only)]
//                   [--once 1,8,16: only one decode_tree (chain, every row) + commit of each size after the
//                    prefill, nothing timed: for a profiler's per-kernel times]
// Prints markdown tables; medians of wall time over reps (verify) or 3 runs (gen).
#include "bench_util.h"
#include "glassbox/cuda_backend.h"
#include "glassbox/model.h"
#include "glassbox/spec/spec_decoder.h"
#include "glassbox/spec/speculator.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

using namespace gb;
using bench::median;
using bench::now_ms;

namespace {

void die(const std::string & what, const Error & e) {
    std::fprintf(stderr, "bench_spec_cuda: %s: %s\n", what.c_str(), e.message.c_str());
    std::exit(1);
}

Result<std::unique_ptr<Context>> gpu_context(std::shared_ptr<const Model> m, const ContextParams & cp) {
    cuda::CudaContextParams gp;
    gp.context = cp;
    return cuda::create_context(std::move(m), gp);
}

// The target's known greedy continuation as a chain; each token replaced by a
// wrong one with probability 1 - accept (seeded).
class OracleSpeculator final : public Speculator {
  public:
    OracleSpeculator(size_t prompt_len, std::vector<Token> cont, int32_t n_vocab, double accept)
        : m_prompt_len(prompt_len), m_cont(std::move(cont)), m_n_vocab(n_vocab), m_accept(accept), m_rng(7) {}
    const char * name() const override { return "oracle"; }
    Status propose(std::span<const Token> tokens, int32_t max_len, Draft & out, const std::atomic<bool> *) override {
        out.clear();
        const size_t g = tokens.size() - m_prompt_len;
        std::uniform_real_distribution<double> u(0.0, 1.0);
        int32_t parent = -1;
        for (int32_t d = 0; d < max_len && g + size_t(d) < m_cont.size(); ++d) {
            Token t = m_cont[g + size_t(d)];
            if (u(m_rng) >= m_accept) t = Token((t + 1) % m_n_vocab);
            parent = out.add(parent, t);
        }
        return {};
    }

  private:
    size_t m_prompt_len;
    std::vector<Token> m_cont;
    int32_t m_n_vocab;
    double m_accept;
    std::mt19937 m_rng;
};

struct GenResult {
    double tok_s = 0.0, ms = 0.0;
    std::vector<Token> tokens;
    SpecStats stats;
};

// Prefill (untimed), then n_gen tokens through SpecDecoder (timed).
GenResult generate(Context & ctx, std::shared_ptr<Speculator> spec, const SpecConfig & cfg, std::span<const Token> prompt, int n_gen) {
    SamplerParams sp;
    sp.temperature = 0.0f;
    sp.repeat_penalty = 1.0f;
    ctx.truncate(0);
    if (auto st = ctx.decode(prompt, false); !st.ok()) die("prefill", st.error());
    SpecDecoder dec(ctx, std::move(spec), cfg, sp);
    dec.begin(prompt);
    GenResult r;
    std::vector<SpecToken> out;
    const double t0 = now_ms();
    while (int(r.tokens.size()) < n_gen) {
        out.clear();
        if (auto st = dec.step(out, n_gen - int(r.tokens.size()), 0); !st.ok()) die("step", st.error());
        for (const SpecToken & t : out) r.tokens.push_back(t.id);
    }
    r.ms = now_ms() - t0;
    r.tok_s = 1000.0 * double(r.tokens.size()) / r.ms;
    r.stats = dec.stats();
    return r;
}

}  // namespace

int main(int argc, char ** argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: bench_spec_cuda MODEL [--draft FILE] [--fill N] [--reps N] [--gen N]\n");
        return 2;
    }
    std::string draft_path, once;
    int fill = 256, reps = 15, n_gen = 128;
    for (int i = 2; i + 1 < argc; i += 2) {
        const std::string a = argv[i];
        if (a == "--draft") draft_path = argv[i + 1];
        else if (a == "--fill") fill = std::atoi(argv[i + 1]);
        else if (a == "--reps") reps = std::atoi(argv[i + 1]);
        else if (a == "--gen") n_gen = std::atoi(argv[i + 1]);
        else if (a == "--once") once = argv[i + 1];
    }
    auto lm = Model::load(argv[1]);
    if (!lm) die("load", lm.error());
    std::shared_ptr<const Model> m = std::move(*lm);
    const int V = m->hparams().n_vocab;
    ContextParams cp;
    cp.n_ctx = 2048;
    cp.n_batch = 64;
    const double t_ctx0 = now_ms();
    auto gc = gpu_context(m, cp);
    if (!gc) die("CUDA context", gc.error());
    Context & ctx = **gc;
    const double t_ctx = now_ms() - t_ctx0;
    std::mt19937 rng(1);
    std::uniform_int_distribution<int> pick(3, V - 1);
    std::printf("model %s\n\ncontext created in %.1f ms (GB_CUDA_TREE_PRECAPTURE=%s, GB_CUDA_TREE_FUSE=%s)\n\n", m->description().c_str(), t_ctx,
                std::getenv("GB_CUDA_TREE_PRECAPTURE") ? std::getenv("GB_CUDA_TREE_PRECAPTURE") : "default",
                std::getenv("GB_CUDA_TREE_FUSE") ? std::getenv("GB_CUDA_TREE_FUSE") : "default");

    if (!once.empty()) {
        std::vector<Token> prompt(static_cast<size_t>(fill));
        for (auto & t : prompt) t = pick(rng);
        if (auto st = ctx.decode(prompt, false); !st.ok()) die("prefill", st.error());
        for (size_t p = 0; p < once.size();) {
            const int n = std::atoi(once.c_str() + p);
            std::vector<Token> tok(static_cast<size_t>(n));
            std::vector<int32_t> par(static_cast<size_t>(n)), out(static_cast<size_t>(n));
            for (int i = 0; i < n; ++i) { tok[size_t(i)] = pick(rng); par[size_t(i)] = i - 1; out[size_t(i)] = i; }
            if (auto st = ctx.decode_tree(tok, par, out); !st.ok()) die("decode_tree", st.error());
            if (ctx.row_summaries().size() != size_t(n)) die("row_summaries", Error{ErrorCode::Internal, "wrong count"});
            if (auto st = ctx.commit_tree(std::span<const int32_t>(out).subspan(0, size_t(n) / 2)); !st.ok()) die("commit_tree", st.error());
            ctx.truncate(fill);
            std::printf("once: decode_tree of %d nodes\n", n);
            const size_t c = once.find(',', p);
            p = c == std::string::npos ? once.size() : c + 1;
        }
        return 0;
    }

    // ---- 1. verification cost --------------------------------------------------
    {
        std::vector<Token> prompt(static_cast<size_t>(fill));
        for (auto & t : prompt) t = pick(rng);
        if (auto st = ctx.decode(prompt, false); !st.ok()) die("prefill", st.error());
        const int ns[] = {1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 40, 64};
        {  // each size's first verification on this context (a graph capture unless precaptured)
            std::printf("first use (decode_tree + summaries + commit), ms:");
            for (const int n : ns) {
                std::vector<Token> tok(static_cast<size_t>(n));
                std::vector<int32_t> par(static_cast<size_t>(n)), out(static_cast<size_t>(n));
                for (int i = 0; i < n; ++i) { tok[size_t(i)] = pick(rng); par[size_t(i)] = i - 1; out[size_t(i)] = i; }
                const double t0 = now_ms();
                if (auto st = ctx.decode_tree(tok, par, out); !st.ok()) die("decode_tree", st.error());
                if (ctx.row_summaries().size() != size_t(n)) die("row_summaries", Error{ErrorCode::Internal, "wrong count"});
                if (auto st = ctx.commit_tree(std::span<const int32_t>(out).subspan(0, size_t(n) / 2)); !st.ok()) die("commit_tree", st.error());
                std::printf(" n=%d %.3f", n, now_ms() - t0);
                ctx.truncate(fill);
            }
            std::printf("\n\n");
        }
        std::vector<std::vector<double>> t_tree(std::size(ns)), t_chain(std::size(ns)), t_tree_sum(std::size(ns));
        std::vector<double> t_plain, t_plain_sum;
        for (int r = 0; r < reps + 2; ++r) {  // 2 warm-up rounds, interleaved
            {
                const Token one = pick(rng);
                const double t0 = now_ms();
                if (auto st = ctx.decode(std::span<const Token>(&one, 1), false); !st.ok()) die("decode", st.error());
                volatile float sink = ctx.logits()[0];  // the row SpecDecoder reads
                (void)sink;
                if (r >= 2) t_plain.push_back(now_ms() - t0);
                ctx.truncate(fill);
                const double t1 = now_ms();
                if (auto st = ctx.decode(std::span<const Token>(&one, 1), false); !st.ok()) die("decode", st.error());
                if (ctx.row_summaries().empty()) die("row_summaries", Error{ErrorCode::Internal, "none after decode"});
                if (r >= 2) t_plain_sum.push_back(now_ms() - t1);
                ctx.truncate(fill);
            }
            for (size_t k = 0; k < std::size(ns); ++k) {
                const int n = ns[k];
                std::vector<Token> tok(static_cast<size_t>(n));
                std::vector<int32_t> par(static_cast<size_t>(n)), out(static_cast<size_t>(n));
                for (int i = 0; i < n; ++i) { tok[size_t(i)] = pick(rng); par[size_t(i)] = i - 1; out[size_t(i)] = i; }
                double t0 = now_ms();
                if (auto st = ctx.decode_tree(tok, par, out); !st.ok()) die("decode_tree", st.error());
                volatile float sink = ctx.logits()[0];
                (void)sink;
                if (auto st = ctx.commit_tree(std::span<const int32_t>(out).subspan(0, size_t(n) / 2)); !st.ok()) die("commit_tree", st.error());
                if (r >= 2) t_tree[k].push_back(now_ms() - t0);
                ctx.truncate(fill);
                // the same with the rows' device summaries only (greedy verification)
                t0 = now_ms();
                if (auto st = ctx.decode_tree(tok, par, out); !st.ok()) die("decode_tree", st.error());
                if (ctx.row_summaries().size() != size_t(n)) die("row_summaries", Error{ErrorCode::Internal, "wrong count"});
                if (auto st = ctx.commit_tree(std::span<const int32_t>(out).subspan(0, size_t(n) / 2)); !st.ok()) die("commit_tree", st.error());
                if (r >= 2) t_tree_sum[k].push_back(now_ms() - t0);
                ctx.truncate(fill);
                // the same tokens as a plain chunk with every row (the chain verification of a backend without trees)
                t0 = now_ms();
                if (auto st = ctx.decode(tok, true); !st.ok()) die("decode chain", st.error());
                sink = ctx.logits()[0];
                if (r >= 2) t_chain[k].push_back(now_ms() - t0);
                ctx.truncate(fill);
            }
        }
        const double plain = median(t_plain), plain_sum = median(t_plain_sum);
        std::printf("verification cost at context %d (median of %d; head for all nodes in one pass: %s). Summaries: decode step = "
                    "decode(1) + its row's device summary, tree = decode_tree + every row's summary + commit. Rows: decode step = "
                    "decode(1) + its logits row on the host, tree = decode_tree + every row on the host + commit.\n\n",
                    fill, reps, std::getenv("GB_CUDA_HEAD_MULTI") && std::getenv("GB_CUDA_HEAD_MULTI")[0] == '0' ? "off" : "on");
        std::printf("| n tokens | tree, summaries, ms | / step (summary) | tree, rows, ms | / step (row) | decode(n, all logits), ms | / step (row) |\n"
                    "|---:|---:|---:|---:|---:|---:|---:|\n");
        std::printf("| decode step | %.3f | 1.00 | %.3f | 1.00 | | |\n", plain_sum, plain);
        for (size_t k = 0; k < std::size(ns); ++k) {
            const double a = median(t_tree[k]), b = median(t_chain[k]), c = median(t_tree_sum[k]);
            std::printf("| %d | %.3f | %.2f | %.3f | %.2f | %.3f | %.2f |\n", ns[k], c, c / plain_sum, a, a / plain, b, b / plain);
        }
        std::printf("\n");
    }

    if (n_gen <= 0) return 0;
    // ---- 2. generation ----------------------------------------------------------
    std::vector<Token> phrase(16);
    for (auto & t : phrase) t = pick(rng);
    std::vector<Token> prompt;
    for (int r = 0; r < 4; ++r) prompt.insert(prompt.end(), phrase.begin(), phrase.end());
    SpecConfig none;
    const GenResult base0 = generate(ctx, nullptr, none, prompt, n_gen);
    // prompt2: the prompt, the model's own continuation, the prompt again
    std::vector<Token> prompt2 = prompt;
    prompt2.insert(prompt2.end(), base0.tokens.begin(), base0.tokens.end());
    prompt2.insert(prompt2.end(), prompt.begin(), prompt.end());
    std::vector<double> base_ms;
    GenResult base;
    for (int r = 0; r < 3; ++r) {
        base = generate(ctx, nullptr, none, prompt2, n_gen);
        base_ms.push_back(base.ms);
    }
    const double base_med = median(base_ms);
    std::printf("generation: %d tokens after a %zu-token grounded prompt (a 16-token phrase x4, the model's own %d-token continuation, the phrase x4), greedy; median of 3 runs\n\n",
                n_gen, prompt2.size(), n_gen);
    std::printf("| method | config | tok/s | speedup | same tokens | proposed | accepted | tokens/step | steps |\n|---|---|---:|---:|:---:|---:|---:|---:|---:|\n");
    std::printf("| plain | | %.1f | 1.00 | yes | | | 1.00 | %d |\n", 1000.0 * n_gen / base_med, n_gen);
    std::shared_ptr<const Model> draft_model;
    if (!draft_path.empty()) {
        auto d = Model::load(draft_path);
        if (!d) die("draft model", d.error());
        draft_model = std::move(*d);
    }
    auto row = [&](const std::string & name, const std::string & conf, auto make_spec, const SpecConfig & cfg) {
        std::vector<double> ms;
        GenResult g;
        std::shared_ptr<Speculator> s = make_spec();  // reused across runs, as Session does
        if (!s) return;
        for (int r = 0; r < 3; ++r) {
            s->reset();
            g = generate(ctx, s, cfg, prompt2, n_gen);
            ms.push_back(g.ms);
        }
        const double med = median(ms);
        const SpecStats & st = g.stats;
        std::printf("| %s | %s | %.1f | %.2f | %s | %lld | %lld | %.2f | %lld |\n", name.c_str(), conf.c_str(), 1000.0 * n_gen / med,
                    base_med / med, g.tokens == base.tokens ? "yes" : "NO", (long long)st.proposed, (long long)st.accepted,
                    st.steps ? double(g.tokens.size()) / double(st.steps) : 0.0, (long long)st.steps);
        std::fflush(stdout);
    };
    for (double acc : {1.0, 0.8, 0.5}) {
        for (int k : {2, 4, 8, 16}) {
            if (acc < 1.0 && k != 4 && k != 8) continue;
            SpecConfig cfg;
            cfg.method = SpecMethod::PromptLookup;  // bookkeeping only: the speculator is the oracle
            cfg.draft_max = k;
            cfg.adaptive = false;
            cfg.auto_off = false;
            char conf[64];
            std::snprintf(conf, sizeof conf, "chain k=%d, p(accept)=%.1f", k, acc);
            row("oracle", conf, [&] { return std::make_shared<OracleSpeculator>(prompt2.size(), base.tokens, V, acc); }, cfg);
        }
    }
    SamplerParams sp;
    sp.temperature = 0.0f;
    sp.repeat_penalty = 1.0f;
    for (const char * meth : {"lookup", "lookahead", "selfdraft", "draft"}) {
        for (int fixed = 0; fixed < 2; ++fixed) {
            SpecConfig cfg;
            parse_spec_method(meth, &cfg.method);
            cfg.context_factory = gpu_context;
            if (cfg.method == SpecMethod::DraftModel) {
                if (!draft_model) continue;
                cfg.draft_model = draft_model;
            }
            if (fixed) {
                cfg.draft_max = 6;
                cfg.adaptive = false;
                cfg.auto_off = false;
            }
            const std::string conf = fixed ? "fixed draft 6, always on" : "default (adaptive, auto-off)";
            row(meth, conf, [&]() -> std::shared_ptr<Speculator> {
                auto s = make_speculator(m, cfg, sp, cp.n_ctx, 0);
                if (!s) {
                    std::printf("| %s | %s | %s |\n", meth, conf.c_str(), s.error().message.c_str());
                    return nullptr;
                }
                return std::shared_ptr<Speculator>(std::move(*s));
            }, cfg);
        }
    }
    return 0;
}
