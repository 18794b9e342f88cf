// glassbox-cli subcommands; each returns the process exit code.
#pragma once

#include <string>

namespace gbcli {

int cmd_info(int argc, char ** argv);
int cmd_tokenize(int argc, char ** argv);
int cmd_generate(int argc, char ** argv);
int cmd_chat(int argc, char ** argv);
int cmd_bench(int argc, char ** argv);
int cmd_bench_chat(int argc, char ** argv);   // [kv]
int cmd_bench_serve(int argc, char ** argv);  // [kv]
int cmd_synth(int argc, char ** argv);
int cmd_perplexity(int argc, char ** argv);
int cmd_devices(int argc, char ** argv);
int cmd_quantize(int argc, char ** argv);  // [quantlab]
int cmd_eval(int argc, char ** argv);      // [quantlab]
int cmd_logits(int argc, char ** argv);    // [quantlab]

// Prints "glassbox-cli: <message>" on stderr and returns 1.
int fail(const std::string & message);

}  // namespace gbcli
