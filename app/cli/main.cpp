// glassbox-cli: command-line front end to the engine (thin: logic lives in the libraries).
#include "commands.h"

#include <cstdio>
#include <cstring>
#include <string>

namespace {

void usage() {
    std::fprintf(stderr,
                 "usage: glassbox-cli <command> [options]\n"
                 "commands:\n"
                 "  info -m FILE                      metadata and tensor table\n"
                 "  tokenize -m FILE TEXT             token ids and pieces\n"
                 "  generate -m FILE -p TEXT -n N     generate text (stdout: the text only)\n"
                 "           [-t THREADS] [--backend cpu|cuda [-ngl N] [--precise-decode]] [--greedy | --temp T] [--top-k K] [--top-p P] [--min-p P]\n"
                 "           [--repeat-penalty R] [--seed S] [--stop STR]... [-c CTX] [--chat]\n"
                 "  chat -m FILE [-s SYSTEM]           interactive chat with the model's template\n"
                 "  bench -m FILE [-p 512] [-n 128] [-t THREADS] [-r REPS] [--json] [--backend cpu|cuda [-ngl N] [--precise-decode]]\n"
                 "  bench-chat -m FILE [-t 2] [--turns 10] [--system-tokens 1000] [-n 24] [--kv f16|q8_0] [--page-size 16] [--json]\n"
                 "                                    per-turn TTFT of a chat, prefix cache on and off\n"
                 "  bench-serve -m FILE [-t 2] [--streams 1,4,16] [-n 32] [--long-prompt 4000] [--budget 256] [--kv f16|q8_0] [--backend cpu|cuda]\n"
                 "              [--spec none|lookup|lookahead] [--spec-every K] [--draft-max N] [--json]\n"
                 "                                    concurrent streams vs sequential; long prompt with/without chunked prefill\n"
                 "  perplexity -m FILE -f TEXTFILE [-c 512] [-t THREADS] [--chunks N]\n"
                 "  synth --shape NAME --type TYPE -o FILE [--seed S]   random-weight GGUF (--list)\n"
                 "  devices                           CUDA availability\n"
                 "  quantize -m IN -o OUT [--type T] [--attn T --ffn T --embd T --output T]\n"
                 "           [--gptq --calib FILE [--gptq-type Q4_0|Q4_K] [--group 32] [--act-order]] [--strict]\n"
                 "  eval -m REF -m VARIANT... -f TEXT [--ctx 512] [--chunks N] [--json]\n"
                 "  logits -m FILE -p TEXT -o OUT.f32  all-token logits (raw float32) for comparisons\n");
}

}  // namespace

int main(int argc, char ** argv) {
    if (argc < 2 || !std::strcmp(argv[1], "-h") || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "help")) {
        usage();
        return argc < 2 ? 2 : 0;
    }
    const std::string cmd = argv[1];
    if (cmd == "info") return gbcli::cmd_info(argc, argv);
    if (cmd == "tokenize") return gbcli::cmd_tokenize(argc, argv);
    if (cmd == "generate") return gbcli::cmd_generate(argc, argv);
    if (cmd == "chat") return gbcli::cmd_chat(argc, argv);
    if (cmd == "bench") return gbcli::cmd_bench(argc, argv);
    if (cmd == "bench-chat") return gbcli::cmd_bench_chat(argc, argv);
    if (cmd == "bench-serve") return gbcli::cmd_bench_serve(argc, argv);
    if (cmd == "perplexity") return gbcli::cmd_perplexity(argc, argv);
    if (cmd == "synth") return gbcli::cmd_synth(argc, argv);
    if (cmd == "devices") return gbcli::cmd_devices(argc, argv);
    if (cmd == "quantize") return gbcli::cmd_quantize(argc, argv);
    if (cmd == "eval") return gbcli::cmd_eval(argc, argv);
    if (cmd == "logits") return gbcli::cmd_logits(argc, argv);
    std::fprintf(stderr, "glassbox-cli: unknown command \"%s\"\n", cmd.c_str());
    usage();
    return 2;
}
