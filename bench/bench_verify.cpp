// Cost of the matmuls of one verification forward pass against a plain decode
// step: every layer's weight matrices and the output head of a real model, run
// with cpu::matmul for n = 1..nmax activation rows, as the Context runs them.
// Prints median wall and process CPU ms per pass (a pass = all layers + head)
// and the ratio to n = 1, for the whole pass and for the head alone; with --ab 1
// also the same with the small-batch kernels off (the prefill paths), interleaved;
// with --ab 2 the small-batch kernels without their software pipelining instead.
//   bench_verify MODEL [--threads 2] [--nmax 16] [--reps 5] [--ab 0|1|2]
#include "arch/arch.h"
#include "bench_util.h"
#include "cpu/matmul.h"
#include "cpu/thread_pool.h"
#include "glassbox/model.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <random>
#include <string>
#include <vector>

using namespace gb;
using bench::median;
using bench::now_ms;

namespace {

double cpu_ms() {
    timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return double(ts.tv_sec) * 1e3 + double(ts.tv_nsec) * 1e-6;
}

}  // namespace

int main(int argc, char ** argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: bench_verify MODEL [--threads N] [--nmax N] [--reps N]\n");
        return 2;
    }
    int threads = 2, nmax = 16, reps = 5, ab = 0;
    if (!bench::int_options(argc, argv, 2, {{"--threads", &threads}, {"--nmax", &nmax}, {"--reps", &reps}, {"--ab", &ab}})) return 2;
    const std::shared_ptr<const Model> m = bench::load_model(argv[1]);
    if (!m) return 1;
    const arch::Weights & w = arch::weights_of(*m);
    std::vector<cpu::WeightView> layer_ws;
    for (const arch::LayerWeights & l : w.layers) {
        for (const arch::Matrix * mx : {&l.wq, &l.wk, &l.wv, &l.wo, &l.ffn_gate, &l.ffn_up, &l.ffn_down}) {
            if (*mx) layer_ws.push_back(mx->view());
        }
    }
    const cpu::WeightView head = w.output.view();
    int64_t max_cols = head.n_cols, max_rows = head.n_rows;
    for (const auto & v : layer_ws) {
        max_cols = std::max(max_cols, v.n_cols);
        max_rows = std::max(max_rows, v.n_rows);
    }
    cpu::ThreadPool pool(threads);
    std::mt19937 rng(5);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    std::vector<float> x(size_t(nmax) * size_t(max_cols)), y(size_t(nmax) * size_t(max_rows));
    for (float & v : x) v = nd(rng);

    struct Series {
        std::vector<std::vector<double>> t_body, c_body, t_head, c_head;
    };
    Series series[2];
    for (Series & se : series) {
        for (auto * v : {&se.t_body, &se.c_body, &se.t_head, &se.c_head}) v->resize(size_t(nmax) + 1);
    }
    for (int r = 0; r < reps + 1; ++r) {  // rep 0: warm-up
        for (int n = 1; n <= nmax; ++n) {
            for (int mode = ab ? 0 : 1; mode < 2; ++mode) {
                if (ab == 2) cpu::set_small_batch_pipelining(mode == 1);
                else cpu::set_small_batch_kernels(mode == 1);
                Series & se = series[mode];
                double t0 = now_ms(), c0 = cpu_ms();
                for (const auto & v : layer_ws) cpu::matmul(v, x.data(), n, y.data(), pool);
                double t1 = now_ms(), c1 = cpu_ms();
                cpu::matmul(head, x.data(), n, y.data(), pool);
                const double t2 = now_ms(), c2 = cpu_ms();
                if (r == 0) continue;
                se.t_body[size_t(n)].push_back(t1 - t0);
                se.c_body[size_t(n)].push_back(c1 - c0);
                se.t_head[size_t(n)].push_back(t2 - t1);
                se.c_head[size_t(n)].push_back(c2 - c1);
            }
        }
    }
    std::printf("bench_verify: %s, %zu layer matrices + head [%lld x %lld], %d threads, path %s, %d reps (medians)\n",
                m->description().c_str(), layer_ws.size(), (long long)head.n_rows, (long long)head.n_cols, threads,
                cpu::simd_path(), reps);
    for (int mode = ab ? 0 : 1; mode < 2; ++mode) {
        const Series & se = series[mode];
        std::printf("\nsmall-batch kernels %s\n", mode ? "on" : ab == 2 ? "on, not pipelined" : "off");
        const double tb1 = median(se.t_body[1]), cb1 = median(se.c_body[1]), th1 = median(se.t_head[1]), ch1 = median(se.c_head[1]);
        std::printf("| n | pass wall ms | / n=1 | pass CPU ms | / n=1 | layers CPU ms | / n=1 | head CPU ms | / n=1 |\n|---|---|---|---|---|---|---|---|---|\n");
        for (int n = 1; n <= nmax; ++n) {
            const double tb = median(se.t_body[size_t(n)]), cb = median(se.c_body[size_t(n)]);
            const double th = median(se.t_head[size_t(n)]), ch = median(se.c_head[size_t(n)]);
            std::printf("| %d | %.1f | %.2f | %.1f | %.2f | %.1f | %.2f | %.1f | %.2f |\n", n, tb + th, (tb + th) / (tb1 + th1), cb + ch,
                        (cb + ch) / (cb1 + ch1), cb, cb / cb1, ch, ch / ch1);
        }
    }
    return 0;
}
