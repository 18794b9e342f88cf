// `generate` (one completion, text only on stdout) and `chat` (interactive).
#include "commands.h"
#include "common.h"

#include <cstdio>
#include <iostream>

namespace gbcli {

namespace {

void print_stats(const gb::GenerateResult & r) {
    std::fprintf(stderr,
                 "\n[prompt %d tokens (%d cached) %.1f tok/s | generated %d tokens %.1f tok/s | first token %.0f ms | "
                 "stop: %s]\n",
                 r.n_prompt_tokens, r.n_prompt_reused, r.prompt_tokens_per_s(), r.n_generated, r.gen_tokens_per_s(),
                 r.t_first_token_ms, gb::stop_reason_name(r.stop));
}

}  // namespace

int cmd_generate(int argc, char ** argv) {
    Args args(argc, argv, 2, k_generate_flags);
    if (!args.ok()) return fail(args.error());
    for (const std::string & u : args.unknown(k_generate_options)) return fail("unknown option " + u);
    const auto path = args.get("-m");
    const auto prompt = args.get("-p");
    if (!path || !prompt) return fail("generate needs -m FILE and -p TEXT");
    gb::SessionParams sp;
    gb::GenerateParams gp;
    gp.max_tokens = 128;
    read_generate_options(args, &sp, &gp);
    if (!args.ok()) return fail(args.error());

    auto model = load_model(*path);
    if (!model) return 1;
    auto session = gb::Session::create(model, sp);
    if (!session) return fail(session.error().message);
    if (!(*session)->template_warning().empty() && args.has("--chat")) {
        std::fprintf(stderr, "warning: %s\n", (*session)->template_warning().c_str());
    }
    std::fprintf(stderr, "sampler: %s\n", gb::Sampler(gp.sampling).describe().c_str());

    auto on_token = [](const gb::TokenEvent & ev) {
        std::fwrite(ev.text.data(), 1, ev.text.size(), stdout);
        std::fflush(stdout);
        return true;
    };
    gb::Result<gb::GenerateResult> r = args.has("--chat")
                                           ? (*session)->chat({{"user", *prompt}}, gp, on_token)
                                           : (*session)->complete(*prompt, gp, on_token);
    if (!r) return fail(r.error().message);
    std::fflush(stdout);
    print_stats(*r);
    // [spec] acceptance statistics as JSON on stderr
    if (args.has("--stats") && gp.spec.method != gb::SpecMethod::None) {
        std::fprintf(stderr, "%s\n", r->spec.to_json(false).c_str());
    }
    return 0;
}

int cmd_chat(int argc, char ** argv) {
    Args args(argc, argv, 2, k_generate_flags);
    if (!args.ok()) return fail(args.error());
    for (const std::string & u : args.unknown(k_generate_options)) return fail("unknown option " + u);
    const auto path = args.get("-m");
    if (!path) return fail("chat needs -m FILE");
    gb::SessionParams sp;
    sp.overflow = gb::OverflowPolicy::DropOldestTurns;
    gb::GenerateParams gp;
    read_generate_options(args, &sp, &gp);
    if (!args.ok()) return fail(args.error());

    auto model = load_model(*path);
    if (!model) return 1;
    auto session = gb::Session::create(model, sp);
    if (!session) return fail(session.error().message);
    if (!(*session)->template_warning().empty()) {
        std::fprintf(stderr, "note: %s\n", (*session)->template_warning().c_str());
    }

    std::vector<gb::ChatMessage> history;
    if (auto sys = args.get("-s")) history.push_back({"system", *sys});
    std::fprintf(stderr, "Chatting with %s. Type /exit or Ctrl-D to quit, /reset to start over.\n",
                 model->description().c_str());
    std::string line;
    for (;;) {
        std::fprintf(stderr, "\n> ");
        if (!std::getline(std::cin, line)) break;
        if (line == "/exit" || line == "/quit") break;
        if (line == "/reset") {
            const bool has_system = !history.empty() && history[0].role == "system";
            history.resize(has_system ? 1 : 0);
            std::fprintf(stderr, "(conversation cleared)\n");
            continue;
        }
        if (line.empty()) continue;
        history.push_back({"user", line});
        auto r = (*session)->chat(history, gp, [](const gb::TokenEvent & ev) {
            std::fwrite(ev.text.data(), 1, ev.text.size(), stdout);
            std::fflush(stdout);
            return true;
        });
        if (!r) {
            std::fprintf(stderr, "\nerror: %s\n", r.error().message.c_str());
            history.pop_back();
            continue;
        }
        std::printf("\n");
        if (args.has("--stats")) print_stats(*r);
        if (r->n_dropped_messages > 0) {
            std::fprintf(stderr, "(%d older messages no longer fit the context and were left out)\n",
                         r->n_dropped_messages);
        }
        history.push_back({"assistant", r->text});
    }
    std::fprintf(stderr, "\n");
    return 0;
}

}  // namespace gbcli
