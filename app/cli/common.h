// Shared pieces of the generation commands: model loading and sampling options.
#pragma once

#include "args.h"

#include "glassbox/model.h"
#include "glassbox/session.h"

#include <memory>
#include <string>

namespace gbcli {

// Loads with a progress line on stderr; prints the error and returns null on failure.
std::shared_ptr<const gb::Model> load_model(const std::string & path);

// Options shared by generate/chat: -t -c --greedy --temp --top-k --top-p --min-p
// --repeat-penalty --repeat-last-n --presence-penalty --frequency-penalty --seed --stop -n
void read_generate_options(Args & args, gb::SessionParams * sp, gb::GenerateParams * gp);
// [spec] speculative decoding options (also called by read_generate_options).
void read_spec_options(Args & args, gb::SpecConfig * sc);
extern const std::set<std::string> k_generate_flags;

// --backend cpu|cuda, -ngl N and --precise-decode (CUDA decode with 16-bit
// activations: CudaContextParams::precise_decode): a CUDA context when asked for
// and available, else (with a message on stderr) the CPU one. Null with the
// error printed on failure.
std::unique_ptr<gb::Context> make_context(std::shared_ptr<const gb::Model> model, const gb::ContextParams & cp,
                                          const std::string & backend, int32_t n_gpu_layers, std::string * used,
                                          bool precise_decode = false);
// The same as a Session context factory (for generate/chat).
void set_backend(gb::SessionParams * sp, const std::string & backend, int32_t n_gpu_layers, bool precise_decode = false);
extern const std::set<std::string> k_generate_options;

}  // namespace gbcli
