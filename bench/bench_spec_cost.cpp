// What a speculative verification costs against one plain decode step on this
// machine: decode_tree() of a k-node chain with all k output rows or with one,
// and the output head alone for n rows: cpu::matmul (small-batch kernels for
// 2..16 rows, as the Context runs it), and the same with those kernels off.
// Interleaved repetitions, medians of wall time, ratios to decode(1).
//   bench_spec_cost MODEL [--threads 2] [--ctx 200] [--kmax 16] [--reps 5] [--head-only 1]
#include "arch/arch.h"
#include "bench_util.h"
#include "cpu/matmul.h"
#include "cpu/thread_pool.h"
#include "glassbox/model.h"

#include <algorithm>
#include <atomic>
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

}  // namespace

int main(int argc, char ** argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: bench_spec_cost MODEL [--threads N] [--ctx N] [--kmax N] [--reps N]\n");
        return 2;
    }
    int threads = 2, n_ctx_fill = 200, kmax = 16, reps = 5, head_only = 0;
    if (!bench::int_options(argc, argv, 2, {{"--threads", &threads}, {"--ctx", &n_ctx_fill}, {"--kmax", &kmax},
                                              {"--reps", &reps}, {"--head-only", &head_only}})) return 2;
    const std::shared_ptr<const Model> m = bench::load_model(argv[1]);
    if (!m) return 1;
    ContextParams cp;
    cp.n_ctx = n_ctx_fill + kmax + 64;
    cp.n_threads = threads;
    auto ctx_r = Context::create(m, cp);
    if (!ctx_r) {
        std::fprintf(stderr, "%s\n", ctx_r.error().message.c_str());
        return 1;
    }
    Context & ctx = **ctx_r;
    const int32_t n_vocab = m->hparams().n_vocab;
    std::mt19937 rng(5);
    std::vector<Token> prompt;
    for (int i = 0; i < n_ctx_fill; ++i) prompt.push_back(Token(1000 + rng() % 20000));
    if (!ctx.decode(prompt, false)) return 1;
    const int32_t base = ctx.n_past();

    // output head alone
    const arch::Weights & w = arch::weights_of(*m);
    const cpu::WeightView head = w.output.view();
    cpu::ThreadPool pool(threads);
    std::vector<float> x(size_t(kmax) * size_t(head.n_cols)), y(size_t(kmax) * size_t(n_vocab));
    std::normal_distribution<float> nd(0.0f, 1.0f);
    for (float & v : x) v = nd(rng);

    std::vector<double> t_plain;
    std::vector<std::vector<double>> t_all(size_t(kmax) + 1), t_one(size_t(kmax) + 1), t_head(size_t(kmax) + 1), t_small(size_t(kmax) + 1);
    std::vector<float> y2(y.size());
    std::vector<Token> toks;
    std::vector<int32_t> par, outs;
    for (int r = 0; r < reps; ++r) {
        for (int k = 1; k <= kmax; ++k) {
            // plain step
            if (!head_only) {
                const Token one[1] = {Token(2000 + k)};
                const double t0 = now_ms();
                if (!ctx.decode(one, false)) return 1;
                t_plain.push_back(now_ms() - t0);
                ctx.truncate(base);
            }
            toks.clear();
            par.clear();
            for (int i = 0; i < k; ++i) {
                toks.push_back(Token(3000 + 7 * i + r));
                par.push_back(i - 1);
            }
            double t0 = now_ms();
            if (!head_only) {
            // chain of k nodes, all k rows
            outs.clear();
            for (int i = 0; i < k; ++i) outs.push_back(i);
            t0 = now_ms();
            if (!ctx.decode_tree(toks, par, outs)) return 1;
            t_all[size_t(k)].push_back(now_ms() - t0);
            (void)ctx.commit_tree({});
            // chain of k nodes, one row
            const int32_t one_row[1] = {0};
            t0 = now_ms();
            if (!ctx.decode_tree(toks, par, one_row)) return 1;
            t_one[size_t(k)].push_back(now_ms() - t0);
            (void)ctx.commit_tree({});
            }
            // head alone, k rows
            t0 = now_ms();
            cpu::matmul(head, x.data(), k, y.data(), pool);
            t_head[size_t(k)].push_back(now_ms() - t0);
            t0 = now_ms();
            cpu::set_small_batch_kernels(false);
            cpu::matmul(head, x.data(), k, y2.data(), pool);
            cpu::set_small_batch_kernels(true);
            t_small[size_t(k)].push_back(now_ms() - t0);
            if (std::memcmp(y.data(), y2.data(), sizeof(float) * size_t(k) * size_t(n_vocab)) != 0) std::printf("MISMATCH k=%d\n", k);
        }
    }
    const double p = median(t_plain);
    std::printf("model %s, %d threads, context %d, %d reps; plain decode(1) median %.1f ms\n", m->description().c_str(), threads,
                base, reps, p);
    std::printf("| k | tree all rows ms | ratio | tree 1 row ms | ratio | head k rows ms | ratio to head 1 | head, small-batch kernels off, ms | ratio |\n|---|---|---|---|---|---|---|---|---|\n");
    const double h1 = median(t_head[1]);
    for (int k = 1; k <= kmax; ++k) {
        const double a = median(t_all[size_t(k)]), o = median(t_one[size_t(k)]), h = median(t_head[size_t(k)]);
        const double sb = median(t_small[size_t(k)]);
        std::printf("| %d | %.1f | %.2f | %.1f | %.2f | %.1f | %.2f | %.1f | %.2f |\n", k, a, a / p, o, o / p, h, h / h1, sb, sb / h1);
    }
    return 0;
}
