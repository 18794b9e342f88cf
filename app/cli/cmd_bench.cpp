// `bench` (prefill and decode tokens/s like llama-bench) and `perplexity`.
#include "commands.h"
#include "common.h"

#include "glassbox/perplexity.h"
#include "glassbox/cuda_backend.h"

#include <sys/resource.h>
#include <time.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <random>
#include <sstream>

namespace gbcli {

namespace {

struct Stat {
    double mean = 0.0, stddev = 0.0;
};

Stat stats_of(const std::vector<double> & v) {
    Stat s;
    if (v.empty()) return s;
    for (double x : v) s.mean += x;
    s.mean /= double(v.size());
    for (double x : v) s.stddev += (x - s.mean) * (x - s.mean);
    s.stddev = v.size() > 1 ? std::sqrt(s.stddev / double(v.size() - 1)) : 0.0;
    return s;
}

double peak_rss_mib() {
    struct rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    return double(ru.ru_maxrss) / 1024.0;  // ru_maxrss is KiB on Linux
}

using Clock = std::chrono::steady_clock;

// CPU time of the whole process (all threads), seconds: on a shared machine
// it moves less than wall time when other jobs take the cores.
double process_cpu_s() {
    timespec ts{};
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

}  // namespace

int cmd_bench(int argc, char ** argv) {
    Args args(argc, argv, 2, {"--json", "--llamacpp-numerics", "--precise-decode"});
    if (args.has("--llamacpp-numerics")) gb::set_cpu_numerics(gb::CpuNumerics::LlamaCpp);
    if (!args.ok()) return fail(args.error());
    const auto path = args.get("-m");
    if (!path) return fail("bench needs -m FILE");
    const int32_t n_prompt = int32_t(args.get_int("-p", 512));
    const int32_t n_gen = int32_t(args.get_int("-n", 128));
    const int32_t n_threads = int32_t(args.get_int("-t", 0));
    const int32_t reps = int32_t(args.get_int("-r", 5));
    const int32_t n_batch = int32_t(args.get_int("-b", 512));
    const std::string backend = args.get_or("--backend", "cpu");
    const int32_t n_gpu_layers = int32_t(args.get_int("-ngl", -1));
    if (!args.ok()) return fail(args.error());
    if (n_prompt < 0 || n_gen < 0 || reps < 1) return fail("bench: -p/-n must be >= 0 and -r >= 1");

    auto model = load_model(*path);
    if (!model) return 1;
    gb::ContextParams cp;
    cp.n_ctx = std::max(n_prompt, n_gen) + 16;
    cp.n_threads = n_threads;
    cp.n_batch = n_batch;
    std::string used;
    auto ctx = make_context(model, cp, backend, n_gpu_layers, &used, args.has("--precise-decode"));
    if (!ctx) return 1;

    std::mt19937 rng(1234);
    std::uniform_int_distribution<gb::Token> pick(0, model->tokenizer().n_vocab() - 1);
    auto random_tokens = [&](int32_t n) {
        std::vector<gb::Token> t(static_cast<size_t>(n));
        for (auto & x : t) x = pick(rng);
        return t;
    };

    std::vector<double> pp_tps, tg_tps;
    double pp_cpu_s = 0.0, tg_cpu_s = 0.0;  // summed over the timed reps
    for (int32_t r = -1; r < reps; ++r) {  // r == -1: warm-up
        if (n_prompt > 0) {
            const auto toks = random_tokens(n_prompt);
            ctx->truncate(0);
            const double c0 = process_cpu_s();
            const auto t0 = Clock::now();
            gb::Status st = ctx->decode(toks, false);
            const double s = std::chrono::duration<double>(Clock::now() - t0).count();
            if (!st) return fail(st.error().message);
            if (r >= 0) pp_tps.push_back(n_prompt / s);
            if (r >= 0) pp_cpu_s += process_cpu_s() - c0;
        }
        if (n_gen > 0) {
            ctx->truncate(0);
            const auto toks = random_tokens(n_gen);
            const double c0 = process_cpu_s();
            const auto t0 = Clock::now();
            for (int32_t i = 0; i < n_gen; ++i) {
                gb::Status st = ctx->decode(std::span<const gb::Token>(&toks[size_t(i)], 1), false);
                if (!st) return fail(st.error().message);
                // what a greedy step hands the host: the row's summary (argmax, log-sum-exp:
                // CUDA, from the decode graph) or the logits row (CPU: already in host memory)
                if (ctx->row_summaries().empty()) (void)ctx->logits();
            }
            const double s = std::chrono::duration<double>(Clock::now() - t0).count();
            if (r >= 0) tg_tps.push_back(n_gen / s);
            if (r >= 0) tg_cpu_s += process_cpu_s() - c0;
        }
    }
    const Stat pp = stats_of(pp_tps), tg = stats_of(tg_tps);
    const double rss = peak_rss_mib();
    const double file_mib = double(model->file().file_size()) / (1024.0 * 1024.0);
    const double kv_mib = double(ctx->kv_bytes()) / (1024.0 * 1024.0);
    // Weight bytes one decode step reads: every tensor but the embedding
    // table, which is read whole only when it doubles as the output matrix.
    double weight_bytes = 0.0;
    const bool tied = model->file().find_tensor("output.weight") == nullptr;
    for (const auto & t : model->file().tensors()) {
        if (t.name == "token_embd.weight" && !tied) continue;
        weight_bytes += double(t.n_bytes);
    }
    if (args.has("--json")) {
        std::printf("{\"model\": \"%s\", \"backend\": \"%s\", \"file_mib\": %.1f, \"n_threads\": %d, \"reps\": %d, "
                    "\"pp\": {\"n\": %d, \"tps\": %.3f, \"std\": %.3f, \"cpu_ms_per_tok\": %.4f}, "
                    "\"tg\": {\"n\": %d, \"tps\": %.3f, \"std\": %.3f, \"cpu_ms_per_tok\": %.4f}, "
                    "\"peak_rss_mib\": %.1f, \"kv_mib\": %.1f, \"bytes_per_token\": %.0f}\n",
                    model->description().c_str(), used.c_str(), file_mib, n_threads, reps, n_prompt, pp.mean, pp.stddev,
                    n_prompt > 0 ? 1e3 * pp_cpu_s / (double(reps) * n_prompt) : 0.0, n_gen, tg.mean, tg.stddev,
                    n_gen > 0 ? 1e3 * tg_cpu_s / (double(reps) * n_gen) : 0.0, rss, kv_mib, weight_bytes);
    } else {
        std::printf("backend: %s\n| model | threads | test | t/s |\n|---|---|---|---|\n", used.c_str());
        if (n_prompt > 0) {
            std::printf("| %s | %d | pp%d | %.2f ± %.2f |\n", model->description().c_str(), n_threads, n_prompt,
                        pp.mean, pp.stddev);
        }
        if (n_gen > 0) {
            std::printf("| %s | %d | tg%d | %.2f ± %.2f |\n", model->description().c_str(), n_threads, n_gen, tg.mean,
                        tg.stddev);
        }
        std::printf("peak RSS %.1f MiB (file %.1f MiB, KV cache %.1f MiB)\n", rss, file_mib, kv_mib);
    }
    return 0;
}

int cmd_perplexity(int argc, char ** argv) {
    Args args(argc, argv, 2, {"--json", "--llamacpp-numerics", "--precise-decode"});
    if (args.has("--llamacpp-numerics")) gb::set_cpu_numerics(gb::CpuNumerics::LlamaCpp);
    if (!args.ok()) return fail(args.error());
    const auto path = args.get("-m");
    const auto text_path = args.get("-f");
    if (!path || !text_path) return fail("perplexity needs -m FILE -f TEXTFILE");
    gb::PerplexityParams pp;
    pp.n_ctx = int32_t(args.get_int("-c", 512));
    pp.n_threads = int32_t(args.get_int("-t", 0));
    pp.max_chunks = int32_t(args.get_int("--chunks", 0));
    if (!args.ok()) return fail(args.error());
    std::ifstream in(*text_path, std::ios::binary);
    if (!in) return fail("cannot open " + *text_path);
    std::stringstream ss;
    ss << in.rdbuf();

    auto model = load_model(*path);
    if (!model) return 1;
    const gb::Tokenizer & tok = model->tokenizer();
    const std::vector<gb::Token> tokens = tok.encode(ss.str(), tok.add_bos(), false);
    pp.progress = [](int32_t c, int32_t n) {
        std::fprintf(stderr, "\rchunk %d/%d", c + 1, n);
        return true;
    };
    auto r = gb::compute_perplexity(model, tokens, pp);
    std::fprintf(stderr, "\n");
    if (!r) return fail(r.error().message);
    if (args.has("--json")) {
        std::printf("{\"ppl\": %.6f, \"nll\": %.6f, \"n_scored\": %lld, \"n_chunks\": %d, \"n_tokens\": %zu}\n", r->ppl,
                    r->nll_mean, static_cast<long long>(r->n_scored), r->n_chunks, tokens.size());
    } else {
        std::printf("perplexity: %.4f over %lld tokens in %d chunks of %d\n", r->ppl, static_cast<long long>(r->n_scored),
                    r->n_chunks, pp.n_ctx);
    }
    return 0;
}

}  // namespace gbcli
