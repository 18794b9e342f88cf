// `synth`: writes a random-weight GGUF of a preset shape (engine/include/glassbox/synth.h).
#include "args.h"
#include "commands.h"

#include "glassbox/synth.h"

#include <chrono>
#include <cstdio>
#include <filesystem>

namespace gbcli {

int cmd_synth(int argc, char ** argv) {
    Args args(argc, argv, 2, {"--list"});
    if (!args.ok()) return fail(args.error());
    if (args.has("--list")) {
        for (const std::string & n : gb::synth_preset_names()) std::printf("%s\n", n.c_str());
        return 0;
    }
    const auto shape = args.get("--shape");
    const auto out = args.get("-o");
    if (!shape || !out) return fail("synth needs --shape NAME -o FILE [--type Q4_K_M] [--seed S] [-t THREADS] (--list for shapes)");
    auto spec = gb::synth_preset(*shape);
    if (!spec) return fail(spec.error().message);
    auto types = gb::synth_types(args.get_or("--type", "Q4_K_M"));
    if (!types) return fail(types.error().message);
    spec->types = *types;
    spec->seed = static_cast<uint64_t>(args.get_int("--seed", 1));
    const int n_threads = static_cast<int>(args.get_int("-t", 0));
    if (!args.ok()) return fail(args.error());
    const auto unknown = args.unknown({"--shape", "-o", "--type", "--seed", "-t", "--list"});
    if (!unknown.empty()) return fail("synth: unknown option " + unknown[0]);

    const auto t0 = std::chrono::steady_clock::now();
    int last_pct = -1;
    const gb::Status st = gb::write_synthetic_model(*spec, *out, [&](float p) {
        const int pct = static_cast<int>(p * 100.0f);
        if (pct != last_pct) std::fprintf(stderr, "\rwriting %s: %3d%%", out->c_str(), last_pct = pct);
        return true;
    }, n_threads);
    std::fprintf(stderr, "\n");
    if (!st.ok()) return fail(st.error().message);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::error_code ec;
    const auto size = std::filesystem::file_size(*out, ec);
    std::printf("%s: %s %s, %llu bytes in %.1f s\n", out->c_str(), shape->c_str(), args.get_or("--type", "Q4_K_M").c_str(),
                static_cast<unsigned long long>(ec ? 0 : size), secs);
    return 0;
}

}  // namespace gbcli
