// `bench-chat` (per-turn time to first token of a 10-turn chat with a long
// system prompt, prefix cache on and off) and `bench-serve` (concurrent streams
// against sequential, and a long prompt arriving while streams decode, with and
// without chunked prefill), both on the continuous-batching BatchEngine.
#include "commands.h"
#include "common.h"

#include "glassbox/cuda_backend.h"
#include "glassbox/kv/batch_engine.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <sstream>

namespace gbcli {

namespace {

using gb::kv::BatchEngine;
using gb::kv::BatchEngineParams;
using gb::kv::EngineEvent;
using gb::kv::GenRequest;
using gb::kv::RequestId;

double percentile(std::vector<double> v, double q) {
    if (v.empty()) return 0.0;
    std::sort(v.begin(), v.end());
    const size_t i = size_t(std::ceil(q * double(v.size()))) - (q > 0 ? 1 : 0);
    return v[std::min(i, v.size() - 1)];
}

gb::SamplerParams greedy() {
    gb::SamplerParams p;
    p.temperature = 0.0f;
    return p;
}

const char * k_sentences[] = {
    "You are Glassbox, a careful assistant running entirely on the user's own computer.",
    "Answer questions about programming, science, history and everyday life in plain language.",
    "When you are not sure about a fact, say so instead of guessing, and explain how the user could check it.",
    "Prefer short paragraphs and concrete examples; use lists only when the content is a list.",
    "For code, give complete, compilable snippets with a one-line explanation of each non-obvious step.",
    "Never invent citations, file names, command-line options or library functions that you have not seen.",
    "If a request is ambiguous, state the interpretation you chose before answering it.",
    "Keep the tone friendly and direct, without flattery, and do not repeat the question back.",
    "Units: use SI units, and give both Celsius and Fahrenheit when talking about weather.",
    "Dates are written as year, month, day; times use the 24-hour clock.",
};
const char * k_questions[] = {
    "How do I reverse a linked list in C?", "Why is the sky blue?", "What caused the fall of the Roman Empire?",
    "Explain what a hash map is.", "How long should I boil an egg?", "What is the difference between TCP and UDP?",
    "Can you suggest a name for a grey cat?", "How does a refrigerator work?", "What is a monad, briefly?",
    "Give me a tip for learning a new language.",
};
const char * k_topics[] = {
    "a lighthouse keeper", "a lost robot", "the first city on Mars", "a dragon who hates fire", "an old violin",
    "a detective cat", "a storm at sea", "a library that never closes", "two rival bakers", "a time-travelling clock",
    "a forest that sings", "the last train home", "a chess prodigy", "an island of glass", "a mountain rescue",
    "a garden on the moon",
};

struct Runner {
    std::shared_ptr<const gb::Model> model;
    BatchEngineParams params;
};

std::unique_ptr<BatchEngine> make_engine(const Runner & r, const BatchEngineParams & p) {
    auto e = BatchEngine::create(r.model, p);
    if (!e) {
        std::fprintf(stderr, "glassbox-cli: %s\n", e.error().to_string().c_str());
        return nullptr;
    }
    return std::move(*e);
}

// Per-stream token timestamps of a run.
struct RunStats {
    double wall_ms = 0.0;
    int64_t n_tokens = 0;
    std::vector<double> itl_ms;  // inter-token gaps, all streams
    std::map<RequestId, std::vector<double>> times;
    std::map<RequestId, std::vector<gb::Token>> tokens;
    int64_t n_steps = 0;
    double tok_per_s() const { return wall_ms > 0 ? 1000.0 * double(n_tokens) / wall_ms : 0.0; }
};

void collect(BatchEngine & e, RunStats & st) {
    e.set_listener([&st](const EngineEvent & ev) {
        if (ev.kind != EngineEvent::Kind::Token) return;
        auto & t = st.times[ev.id];
        if (!t.empty()) st.itl_ms.push_back(ev.t_ms - t.back());
        t.push_back(ev.t_ms);
        st.tokens[ev.id].push_back(ev.token);
        ++st.n_tokens;
    });
}

}  // namespace

int cmd_bench_chat(int argc, char ** argv) {
    Args args(argc, argv, 2, {"--json"});
    const auto path = args.get("-m");
    const int32_t n_threads = int32_t(args.get_int("-t", 2));
    const int32_t n_turns = int32_t(args.get_int("--turns", 10));
    const int32_t n_system = int32_t(args.get_int("--system-tokens", 1000));
    const int32_t n_reply = int32_t(args.get_int("-n", 24));
    const int32_t page_size = int32_t(args.get_int("--page-size", 16));
    const std::string kv = args.get_or("--kv", "f16");
    const bool json = args.has("--json");
    if (!args.ok()) return fail(args.error());
    if (!path) return fail("bench-chat needs -m FILE");
    auto kv_type = gb::kv::parse_kv_type(kv);
    if (!kv_type) return fail(kv_type.error().message);
    auto model = load_model(*path);
    if (!model) return 1;
    const gb::Tokenizer & tok = model->tokenizer();

    // ~n_system tokens of system prompt, then per turn "User: ...\nAssistant:" and the reply.
    std::vector<gb::Token> system = tok.encode("", true, false);
    for (int i = 0; int32_t(system.size()) < n_system; ++i) {
        const auto t = tok.encode(std::string(k_sentences[i % 10]) + (i % 3 == 2 ? "\n" : " "), false, false);
        system.insert(system.end(), t.begin(), t.end());
    }
    system.resize(size_t(n_system));

    BatchEngineParams p;
    p.n_threads = n_threads;
    p.kv_type = *kv_type;
    p.page_size = page_size;
    p.n_ctx = 4096;
    p.max_tokens_per_step = 512;
    p.max_running = 4;
    struct Turn { int32_t prompt = 0, hit = 0; double ttft = 0.0; };
    std::vector<Turn> turns[2];
    std::vector<std::vector<gb::Token>> replies[2];
    for (int on = 1; on >= 0; --on) {
        p.prefix_cache = on == 1;
        auto e = make_engine({model, p}, p);
        if (!e) return 1;
        std::vector<gb::Token> history = system;
        for (int t = 0; t < n_turns; ++t) {
            const auto u = tok.encode(std::string("\nUser: ") + k_questions[t % 10] + "\nAssistant:", false, false);
            history.insert(history.end(), u.begin(), u.end());
            GenRequest r;
            r.prompt = history;
            r.max_new_tokens = n_reply;
            r.sampling = greedy();
            const double t0 = e->now_ms();
            const auto a = e->submit(r);
            if (a.verdict == gb::kv::Admission::Impossible) return fail("bench-chat: " + a.reason);
            Turn tr;
            tr.prompt = int32_t(history.size());
            double first = -1.0;
            auto st = e->run_to_completion([&](const gb::kv::StepReport & rep) {
                for (const auto & ad : rep.metrics.admitted) tr.hit += ad.prefix_hit_tokens;
                for (const auto & ev : rep.events)
                    if (ev.kind == EngineEvent::Kind::Token && first < 0) first = ev.t_ms;
            });
            if (!st) return fail(st.error().to_string());
            tr.ttft = first - t0;
            turns[on].push_back(tr);
            const auto & g = e->request(a.id)->generated;
            replies[on].push_back(g);
            history.insert(history.end(), g.begin(), g.end());
            if (!json) std::fprintf(stderr, "cache %s turn %d: %d prompt tokens, TTFT %.0f ms\n", on ? "on" : "off", t + 1, tr.prompt, tr.ttft);
        }
    }
    const bool same = replies[0] == replies[1];
    if (json) {
        std::printf("{\"bench\":\"chat\",\"threads\":%d,\"kv\":\"%s\",\"page_size\":%d,\"system_tokens\":%d,\"reply_tokens\":%d,"
                    "\"replies_identical\":%s,\"turns\":[",
                    n_threads, kv.c_str(), page_size, n_system, n_reply, same ? "true" : "false");
        for (int t = 0; t < n_turns; ++t) {
            std::printf("%s{\"turn\":%d,\"prompt_tokens\":%d,\"prefix_hit_tokens\":%d,\"ttft_ms_cache\":%.2f,\"ttft_ms_no_cache\":%.2f}",
                        t ? "," : "", t + 1, turns[1][t].prompt, turns[1][t].hit, turns[1][t].ttft, turns[0][t].ttft);
        }
        std::printf("]}\n");
    } else {
        std::printf("| turn | prompt tokens | prefix-hit tokens | new tokens | TTFT cache on ms | TTFT cache off ms | off/on |\n");
        std::printf("|---:|---:|---:|---:|---:|---:|---:|\n");
        for (int t = 0; t < n_turns; ++t) {
            const Turn & a = turns[1][t];
            const Turn & b = turns[0][t];
            std::printf("| %d | %d | %d | %d | %.0f | %.0f | %.1f |\n", t + 1, a.prompt, a.hit, a.prompt - a.hit, a.ttft, b.ttft,
                        b.ttft / std::max(a.ttft, 1e-9));
        }
        std::printf("replies identical with and without the prefix cache: %s\n", same ? "yes" : "NO");
    }
    return same ? 0 : 1;
}

int cmd_bench_serve(int argc, char ** argv) {
    Args args(argc, argv, 2, {"--json"});
    const auto path = args.get("-m");
    const int32_t n_threads = int32_t(args.get_int("-t", 2));
    const int32_t n_gen = int32_t(args.get_int("-n", 32));
    const int32_t n_long = int32_t(args.get_int("--long-prompt", 4000));
    const int32_t chunk_budget = int32_t(args.get_int("--budget", 256));
    const std::string kv = args.get_or("--kv", "f16");
    const std::string streams_arg = args.get_or("--streams", "1,4,16");
    const std::string backend = args.get_or("--backend", "cpu");
    const bool json = args.has("--json");
    // Speculation per stream: method, on every spec_every-th stream (1 = all).
    const std::string spec_arg = args.get_or("--spec", "none");
    const int32_t spec_every = std::max<int32_t>(1, int32_t(args.get_int("--spec-every", 1)));
    const int32_t draft_max = int32_t(args.get_int("--draft-max", 8));
    if (!args.ok()) return fail(args.error());
    if (!path) return fail("bench-serve needs -m FILE");
    gb::SpecConfig spec_cfg;
    if (!gb::parse_spec_method(spec_arg, &spec_cfg.method)) return fail("--spec: unknown method " + spec_arg);
    spec_cfg.draft_max = draft_max;
    auto kv_type = gb::kv::parse_kv_type(kv);
    if (!kv_type) return fail(kv_type.error().message);
    std::vector<int> stream_counts;
    {
        std::stringstream ss(streams_arg);
        std::string x;
        while (std::getline(ss, x, ',')) stream_counts.push_back(std::max(1, std::atoi(x.c_str())));
    }
    auto model = load_model(*path);
    if (!model) return 1;
    const gb::Tokenizer & tok = model->tokenizer();
    auto prompt_of = [&](int i) {
        return tok.encode(std::string("Write a long story about ") + k_topics[i % 16] + ". Once upon a time,", true, false);
    };
    // Stream i's request; speculating when --spec is set and i % spec_every == 0.
    auto request = [&](std::vector<gb::Token> prompt, int32_t n_new, int i) {
        GenRequest r;
        r.prompt = std::move(prompt);
        r.sampling = greedy();
        r.max_new_tokens = n_new;
        if (i >= 0 && i % spec_every == 0) r.spec = spec_cfg;
        return r;
    };
    struct SpecSum { int64_t proposed = 0, accepted = 0, emitted = 0, steps = 0; };
    auto add_spec = [](SpecSum & s, const BatchEngine & e, RequestId id) {
        if (const gb::SpecStats * st = e.spec_stats(id)) {
            s.proposed += st->proposed;
            s.accepted += st->accepted;
            s.emitted += st->emitted;
            s.steps += st->steps;
        }
    };

    BatchEngineParams base;
    base.n_threads = n_threads;
    base.kv_type = *kv_type;
    base.page_size = 16;
    base.n_ctx = 8192;
    base.max_tokens_per_step = chunk_budget;
    base.max_running = 16;
    if (backend == "cuda") {
        base.make_forward = [](std::shared_ptr<const gb::Model> m, const gb::kv::BatchForwardParams & fp) {
            return gb::cuda::create_batch_forward(std::move(m), fp);
        };
    } else if (backend != "cpu") {
        return fail("bench-serve: unknown backend \"" + backend + "\" (cpu or cuda)");
    }
    const Runner runner{model, base};
    {  // warm-up (threads, page faults)
        auto e = make_engine(runner, base);
        if (!e) return 1;
        (void)e->submit(request(prompt_of(0), 4, 0));
        if (!e->run_to_completion()) return 1;
    }

    // 1. N streams at once vs the same N one after another.
    struct Row { int n; RunStats conc, seq; bool same = true; SpecSum spec; };
    std::vector<Row> rows;
    for (int n : stream_counts) {
        Row row;
        row.n = n;
        for (int mode = 0; mode < 2; ++mode) {  // 0: concurrent, 1: sequential
            BatchEngineParams p = base;
            p.prefix_cache = false;  // distinct prompts; keep the comparison about batching
            auto e = make_engine(runner, p);
            if (!e) return 1;
            RunStats & st = mode == 0 ? row.conc : row.seq;
            collect(*e, st);
            std::vector<RequestId> ids;
            const double t0 = e->now_ms();
            for (int i = 0; i < n; ++i) {
                ids.push_back(e->submit(request(prompt_of(i), n_gen, i)).id);
                if (mode == 1) {
                    auto s = e->run_to_completion();
                    if (!s) return fail(s.error().to_string());
                }
            }
            auto s = e->run_to_completion([&](const gb::kv::StepReport &) { ++st.n_steps; });
            if (!s) return fail(s.error().to_string());
            st.wall_ms = e->now_ms() - t0;
            if (mode == 0) for (RequestId id : ids) add_spec(row.spec, *e, id);
        }
        for (auto & [id, t] : row.conc.tokens) row.same = row.same && t == row.seq.tokens[id];
        if (!json)
            std::fprintf(stderr, "%d streams: %.1f tok/s concurrent, %.1f tok/s sequential\n", n, row.conc.tok_per_s(), row.seq.tok_per_s());
        rows.push_back(std::move(row));
    }

    // 2. A long prompt arriving while 4 streams decode, with and without chunked prefill.
    struct Arrival { bool chunked; RunStats st; double p50 = 0, p99 = 0, max = 0, long_ttft = 0; };
    std::vector<Arrival> arrivals;
    std::vector<gb::Token> long_prompt = tok.encode("", true, false);
    for (int i = 0; int32_t(long_prompt.size()) < n_long; ++i) {
        const auto t = tok.encode(std::string(k_sentences[i % 10]) + " ", false, false);
        long_prompt.insert(long_prompt.end(), t.begin(), t.end());
    }
    long_prompt.resize(size_t(n_long));
    for (int chunked = 1; chunked >= 0; --chunked) {
        Arrival a;
        a.chunked = chunked == 1;
        BatchEngineParams p = base;
        p.prefix_cache = false;
        p.max_running = 5;
        p.max_tokens_per_step = chunked ? chunk_budget : n_long + 16;  // without chunking the whole prompt goes in one step
        auto e = make_engine(runner, p);
        if (!e) return 1;
        collect(*e, a.st);
        std::vector<RequestId> ids;
        for (int i = 0; i < 4; ++i) ids.push_back(e->submit(request(prompt_of(i), n_gen + 40, i)).id);
        // let them reach steady decoding
        int steps = 0;
        while (steps < 8) {
            auto r = e->step();
            if (!r) return fail(r.error().to_string());
            ++steps;
        }
        const double t_arrive = e->now_ms();
        const auto la = e->submit(request(long_prompt, 2, -1));
        if (la.verdict == gb::kv::Admission::Impossible) return fail("bench-serve: " + la.reason);
        // run until the long request has its first token and the streams decoded a few more
        a.st.itl_ms.clear();
        while (e->has_work()) {
            auto r = e->step();
            if (!r) return fail(r.error().to_string());
            for (const auto & ev : r->events)
                if (ev.kind == EngineEvent::Kind::Token && ev.id == la.id && a.long_ttft == 0) a.long_ttft = ev.t_ms - t_arrive;
            if (a.long_ttft > 0) break;
        }
        // gaps of the 4 streams while the prompt was being prefilled
        std::vector<double> gaps;
        for (RequestId id : ids) {
            const auto & t = a.st.times[id];
            for (size_t k = 1; k < t.size(); ++k)
                if (t[k] > t_arrive) gaps.push_back(t[k] - t[k - 1]);
        }
        a.p50 = percentile(gaps, 0.5);
        a.p99 = percentile(gaps, 0.99);
        a.max = gaps.empty() ? 0.0 : *std::max_element(gaps.begin(), gaps.end());
        a.st.itl_ms = gaps;
        for (RequestId id : ids) (void)e->cancel(id);
        (void)e->cancel(la.id);
        if (!json)
            std::fprintf(stderr, "long prompt, chunked %s: stream ITL p50 %.0f p99 %.0f ms, long TTFT %.0f ms\n", a.chunked ? "on" : "off",
                         a.p50, a.p99, a.long_ttft);
        arrivals.push_back(std::move(a));
    }

    if (json) {
        std::printf("{\"bench\":\"serve\",\"backend\":\"%s\",\"threads\":%d,\"kv\":\"%s\",\"gen_tokens\":%d,\"spec\":\"%s\",\"spec_every\":%d,\"streams\":[",
                    backend.c_str(), n_threads, kv.c_str(), n_gen, spec_arg.c_str(), spec_every);
        for (size_t i = 0; i < rows.size(); ++i) {
            const Row & r = rows[i];
            std::printf("%s{\"n\":%d,\"tok_s\":%.2f,\"itl_p50_ms\":%.2f,\"itl_p99_ms\":%.2f,\"seq_tok_s\":%.2f,\"seq_itl_p50_ms\":%.2f,"
                        "\"seq_itl_p99_ms\":%.2f,\"speedup\":%.3f,\"identical\":%s,\"spec_proposed\":%lld,\"spec_accepted\":%lld,"
                        "\"spec_tokens_per_step\":%.3f}",
                        i ? "," : "", r.n, r.conc.tok_per_s(), percentile(r.conc.itl_ms, 0.5), percentile(r.conc.itl_ms, 0.99), r.seq.tok_per_s(),
                        percentile(r.seq.itl_ms, 0.5), percentile(r.seq.itl_ms, 0.99), r.conc.tok_per_s() / std::max(r.seq.tok_per_s(), 1e-9),
                        r.same ? "true" : "false", (long long)r.spec.proposed, (long long)r.spec.accepted,
                        r.spec.steps ? double(r.spec.emitted) / double(r.spec.steps) : 0.0);
        }
        std::printf("],\"long_prompt\":{\"tokens\":%d,\"budget\":%d,\"runs\":[", n_long, chunk_budget);
        for (size_t i = 0; i < arrivals.size(); ++i) {
            const Arrival & a = arrivals[i];
            std::printf("%s{\"chunked\":%s,\"itl_p50_ms\":%.2f,\"itl_p99_ms\":%.2f,\"itl_max_ms\":%.2f,\"long_ttft_ms\":%.2f}", i ? "," : "",
                        a.chunked ? "true" : "false", a.p50, a.p99, a.max, a.long_ttft);
        }
        std::printf("]}}\n");
    } else {
        std::printf("backend: %s\n\n", backend.c_str());
        std::printf("| streams | aggregate tok/s | ITL p50 ms | ITL p99 ms | sequential tok/s | seq ITL p50 ms | seq ITL p99 ms | speedup | same tokens |\n");
        std::printf("|---:|---:|---:|---:|---:|---:|---:|---:|---|\n");
        for (const Row & r : rows) {
            std::printf("| %d | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %.2f | %s |\n", r.n, r.conc.tok_per_s(), percentile(r.conc.itl_ms, 0.5),
                        percentile(r.conc.itl_ms, 0.99), r.seq.tok_per_s(), percentile(r.seq.itl_ms, 0.5), percentile(r.seq.itl_ms, 0.99),
                        r.conc.tok_per_s() / std::max(r.seq.tok_per_s(), 1e-9), r.same ? "yes" : "NO");
        }
        if (spec_cfg.method != gb::SpecMethod::None) {
            std::printf("\nspeculation (%s, every %d. stream, draft max %d), concurrent runs:\n\n| streams | proposed | accepted | tokens per spec-stream step |\n|---:|---:|---:|---:|\n",
                        spec_arg.c_str(), spec_every, draft_max);
            for (const Row & r : rows)
                std::printf("| %d | %lld | %lld | %.2f |\n", r.n, (long long)r.spec.proposed, (long long)r.spec.accepted,
                            r.spec.steps ? double(r.spec.emitted) / double(r.spec.steps) : 0.0);
        }
        std::printf("\n%d-token prompt arriving while 4 streams decode (token budget %d per step when chunked):\n\n", n_long, chunk_budget);
        std::printf("| chunked prefill | stream ITL p50 ms | p99 ms | max ms | long prompt TTFT ms |\n|---|---:|---:|---:|---:|\n");
        for (const Arrival & a : arrivals)
            std::printf("| %s | %.0f | %.0f | %.0f | %.0f |\n", a.chunked ? "on" : "off", a.p50, a.p99, a.max, a.long_ttft);
    }
    bool all_same = true;
    for (const Row & r : rows) all_same = all_same && r.same;
    return all_same ? 0 : 1;
}

}  // namespace gbcli
