// Shared pieces of the generation commands.
#include "common.h"

#include "glassbox/cuda_backend.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstdio>
#include <thread>

namespace gbcli {

const std::set<std::string> k_generate_flags = {"--greedy", "--chat", "--ignore-eos", "--drop-old-turns", "--stats",
                                                "--spec-fixed", "--llamacpp-numerics", "--precise-decode"};
const std::set<std::string> k_generate_options = {
    "-m", "-p", "-n", "-t", "-c", "-s", "--greedy", "--temp", "--top-k", "--top-p", "--min-p", "--repeat-penalty",
    "--repeat-last-n", "--presence-penalty", "--frequency-penalty", "--seed", "--stop", "--chat", "--ignore-eos",
    "--drop-old-turns", "--stats", "--template", "--backend", "-ngl", "--llamacpp-numerics", "--precise-decode",
    // [spec] speculative decoding
    "--spec", "--draft-model", "--draft-max", "--ngram", "--spec-branches", "--spec-skip-layers", "--spec-fixed",
    "--lookahead-window", "--lookahead-ngram", "--lookahead-verify", "--draft-window", "--probe-budget"};

std::shared_ptr<const gb::Model> load_model(const std::string & path) {
    const auto t0 = std::chrono::steady_clock::now();
    gb::LoadParams lp;
    int last = -1;
    lp.progress = [&last](float p) {
        const int pct = int(p * 100.0f);
        if (pct / 10 != last / 10) {
            std::fprintf(stderr, "\rloading %3d%%", pct);
            last = pct;
        }
        return true;
    };
    auto model = gb::Model::load(path, lp);
    std::fprintf(stderr, "\r");
    if (!model) {
        std::fprintf(stderr, "glassbox-cli: %s\n", model.error().message.c_str());
        return nullptr;
    }
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    std::fprintf(stderr, "loaded %s in %.0f ms\n", (*model)->description().c_str(), ms);
    return *model;
}

std::unique_ptr<gb::Context> make_context(std::shared_ptr<const gb::Model> model, const gb::ContextParams & cp,
                                          const std::string & backend, int32_t n_gpu_layers, std::string * used,
                                          bool precise_decode) {
    if (backend == "cuda") {
        gb::cuda::CudaContextParams gp;
        gp.context = cp;
        gp.n_gpu_layers = n_gpu_layers;
        gp.precise_decode = precise_decode;
        auto c = gb::cuda::create_context(model, gp);
        if (c) {
            if (used) *used = "cuda";
            return std::move(*c);
        }
        std::fprintf(stderr, "glassbox-cli: CUDA backend not used: %s\n", c.error().message.c_str());
    } else if (backend != "cpu") {
        std::fprintf(stderr, "glassbox-cli: unknown backend \"%s\" (cpu or cuda); using the CPU\n", backend.c_str());
    }
    auto c = gb::Context::create(std::move(model), cp);
    if (!c) {
        std::fprintf(stderr, "glassbox-cli: %s\n", c.error().message.c_str());
        return nullptr;
    }
    if (used) *used = "cpu";
    return std::move(*c);
}

void set_backend(gb::SessionParams * sp, const std::string & backend, int32_t n_gpu_layers, bool precise_decode) {
    if (backend == "cpu") return;
    sp->context_factory = [backend, n_gpu_layers, precise_decode](std::shared_ptr<const gb::Model> m,
                                                 const gb::ContextParams & cp) -> gb::Result<std::unique_ptr<gb::Context>> {
        auto c = make_context(std::move(m), cp, backend, n_gpu_layers, nullptr, precise_decode);
        if (!c) return gb::make_error(gb::ErrorCode::Internal, "no context could be created");
        return c;
    };
}

void read_generate_options(Args & args, gb::SessionParams * sp, gb::GenerateParams * gp) {
    if (args.has("--llamacpp-numerics")) gb::set_cpu_numerics(gb::CpuNumerics::LlamaCpp);
    set_backend(sp, args.get_or("--backend", "cpu"), int32_t(args.get_int("-ngl", -1)), args.has("--precise-decode"));
    sp->context.n_threads = int32_t(args.get_int("-t", 0));
    sp->context.n_ctx = int32_t(args.get_int("-c", 4096));
    if (args.has("--drop-old-turns")) sp->overflow = gb::OverflowPolicy::DropOldestTurns;
    gb::SamplerParams & s = gp->sampling;
    s.temperature = float(args.get_float("--temp", s.temperature));
    if (args.has("--greedy")) s.temperature = 0.0f;
    s.top_k = int32_t(args.get_int("--top-k", s.top_k));
    s.top_p = float(args.get_float("--top-p", s.top_p));
    s.min_p = float(args.get_float("--min-p", s.min_p));
    s.repeat_penalty = float(args.get_float("--repeat-penalty", s.repeat_penalty));
    s.penalty_last_n = int32_t(args.get_int("--repeat-last-n", s.penalty_last_n));
    s.presence_penalty = float(args.get_float("--presence-penalty", s.presence_penalty));
    s.frequency_penalty = float(args.get_float("--frequency-penalty", s.frequency_penalty));
    s.seed = uint64_t(args.get_int("--seed", 0));
    gp->max_tokens = int32_t(args.get_int("-n", gp->max_tokens));
    gp->stop = args.get_all("--stop");
    gp->ignore_eos = args.has("--ignore-eos");
    read_spec_options(args, &gp->spec);
}

// [spec] --spec none|draft|lookup|lookahead|selfdraft [--draft-model FILE] [--draft-max N]
// [--ngram N] [--spec-branches N] [--spec-skip-layers 6,7,8|6-11] [--spec-fixed]
// [--lookahead-window W] [--lookahead-ngram N] [--lookahead-verify G]
// [--draft-window N (0: whole context)] [--probe-budget F (<= 0: no bound)]
void read_spec_options(Args & args, gb::SpecConfig * sc) {
    if (auto m = args.get("--spec")) {
        if (!gb::parse_spec_method(*m, &sc->method)) {
            std::fprintf(stderr, "glassbox-cli: unknown --spec %s (none|draft|lookup|lookahead|selfdraft)\n", m->c_str());
            std::exit(2);
        }
    }
    if (auto f = args.get("--draft-model")) {
        sc->draft_model_path = *f;
        if (!args.get("--spec")) sc->method = gb::SpecMethod::DraftModel;
    }
    sc->draft_max = int32_t(args.get_int("--draft-max", sc->draft_max));
    // model drafters: a probe's catch-up bound and the share of the reply's time probes may lose
    sc->draft_window = std::max(0, int32_t(args.get_int("--draft-window", sc->draft_window)));
    sc->probe_budget = args.get_float("--probe-budget", sc->probe_budget);
    if (args.get("--ngram")) {
        sc->ngram_max = int32_t(args.get_int("--ngram", sc->ngram_max));
        sc->lookahead_ngram = std::max(2, sc->ngram_max);
    }
    sc->max_branches = int32_t(args.get_int("--spec-branches", sc->max_branches));
    sc->lookahead_candidates = sc->max_branches;
    // lookahead decoding: W window positions x (N - 1) levels, G n-gram candidates verified per step
    sc->lookahead_window = int32_t(args.get_int("--lookahead-window", sc->lookahead_window));
    sc->lookahead_ngram = std::max(2, int32_t(args.get_int("--lookahead-ngram", sc->lookahead_ngram)));
    sc->lookahead_candidates = std::max(1, int32_t(args.get_int("--lookahead-verify", sc->lookahead_candidates)));
    if (auto l = args.get("--spec-skip-layers")) {  // "6,7,8" or ranges "3-5,9"
        size_t at = 0;
        while (at < l->size()) {
            const size_t comma = l->find(',', at);
            const std::string item = l->substr(at, comma - at);
            const size_t dash = item.find('-', 1);
            const int a = std::atoi(item.c_str());
            const int b = dash == std::string::npos ? a : std::atoi(item.c_str() + dash + 1);
            for (int i = a; i <= b; ++i) sc->skip_layers.push_back(i);
            if (comma == std::string::npos) break;
            at = comma + 1;
        }
    }
    if (args.has("--spec-fixed")) sc->adaptive = sc->auto_off = false;
}

}  // namespace gbcli
