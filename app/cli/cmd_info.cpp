// `info` (metadata + tensor table), `tokenize` and `devices`.
#include "args.h"
#include "commands.h"

#include "glassbox/cuda_backend.h"
#include "glassbox/gguf.h"
#include "glassbox/model.h"

#include <cinttypes>
#include <cstdio>

namespace gbcli {

int fail(const std::string & message) {
    std::fprintf(stderr, "glassbox-cli: %s\n", message.c_str());
    return 1;
}

int cmd_info(int argc, char ** argv) {
    Args args(argc, argv, 2, {});
    if (!args.ok()) return fail(args.error());
    const auto path = args.get("-m");
    if (!path) return fail("info needs -m FILE");
    auto file = gb::gguf::File::open(*path);
    if (!file) return fail(file.error().message);
    const gb::gguf::File & f = **file;
    std::printf("file: %s\nGGUF version: %u, alignment: %" PRIu64 ", data offset: %" PRIu64 ", size: %" PRIu64 " bytes\n",
                f.path().c_str(), f.version(), f.alignment(), f.data_offset(), f.file_size());
    std::printf("\nmetadata (%zu keys):\n", f.metadata().size());
    for (const auto & [key, value] : f.metadata()) {
        std::printf("  %-44s %s\n", key.c_str(), value.to_display().c_str());
    }
    std::printf("\ntensors (%zu):\n  %-40s %-6s %-24s %12s\n", f.tensors().size(), "name", "type", "shape", "bytes");
    uint64_t total = 0;
    for (const gb::gguf::TensorInfo & t : f.tensors()) {
        std::string shape = "[";
        for (int d = 0; d < t.n_dims; ++d) shape += (d ? ", " : "") + std::to_string(t.ne[d]);
        shape += "]";
        std::printf("  %-40s %-6s %-24s %12zu\n", t.name.c_str(), gb::type_name(t.type), shape.c_str(), t.n_bytes);
        total += t.n_bytes;
    }
    std::printf("  total tensor bytes: %" PRIu64 "\n", total);
    return 0;
}

int cmd_tokenize(int argc, char ** argv) {
    Args args(argc, argv, 2, {"--no-bos", "--no-special"});
    if (!args.ok()) return fail(args.error());
    const auto path = args.get("-m");
    if (!path || args.positional().empty()) return fail("tokenize needs -m FILE TEXT");
    auto file = gb::gguf::File::open(*path);
    if (!file) return fail(file.error().message);
    auto tok = gb::Tokenizer::from_gguf(**file);
    if (!tok) return fail(tok.error().message);
    const std::vector<gb::Token> ids =
        (*tok)->encode(args.positional()[0], !args.has("--no-bos") && (*tok)->add_bos(), !args.has("--no-special"));
    for (gb::Token id : ids) {
        std::printf("%6d  '%s'\n", id, (*tok)->token_to_piece(id, true).c_str());
    }
    std::fprintf(stderr, "%zu tokens\n", ids.size());
    return 0;
}

int cmd_devices(int, char **) {
    const gb::cuda::DeviceReport r = gb::cuda::probe();
    std::printf("%s\n", r.message.c_str());
    for (const auto & d : r.devices) std::printf("  %s\n", d.c_str());
    return 0;
}

}  // namespace gbcli
