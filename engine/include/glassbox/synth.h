// Synthetic random-weight GGUF models (llama / qwen2 / gemma3) with the tensor
// names, shapes, metadata and an SPM tokenizer that llama.cpp expects: for
// tests (tiny presets) and benchmarks (real-model shapes) without downloads.
#pragma once

#include "glassbox/result.h"
#include "glassbox/tensor_type.h"

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace gb {

// Weight types of a synthetic file. Mirrors llama.cpp's quantization mixes:
//   type        most 2-D weights (attn_q/k/v/output, ffn_gate/up/down)
//   more_bits   attn_v and ffn_down in llama.cpp's "use_more_bits" layers
//               (first and last n_layer/8 layers and every third in between),
//               as in Q4_K_M / Q5_K_M
//   output      output.weight, or token_embd.weight when embeddings are tied
//   token_embd  token_embd.weight when embeddings are not tied
// Norms and biases are always F32. A weight whose row length is not a multiple
// of its type's block size falls back like llama.cpp does (Q4_K->Q5_0,
// Q5_K->Q5_1, Q6_K->Q8_0, Q2_K/Q3_K->Q4_0; then F16 if still not divisible).
struct SynthTypes {
    TensorType type       = TensorType::Q4_K;
    TensorType more_bits  = TensorType::Q6_K;
    TensorType output     = TensorType::Q6_K;
    TensorType token_embd = TensorType::Q4_K;
    uint32_t   file_type  = 15;  // general.file_type (llama_ftype), 15 = MOSTLY_Q4_K_M
};

// Parses a llama.cpp file-type name: "F32", "F16", "BF16", "Q4_0", "Q4_1",
// "Q5_0", "Q5_1", "Q8_0", "Q2_K", "Q3_K" (=Q3_K_M-like, uniform), "Q4_K"
// (=Q4_K_S-like, uniform), "Q5_K", "Q6_K", "Q4_K_M", "Q5_K_M" (case-insensitive).
// Uniform names use the one type everywhere (output included).
Result<SynthTypes> synth_types(std::string_view ftype);

struct SynthSpec {
    std::string arch = "llama";  // "llama" | "qwen2" | "gemma3"
    std::string name;            // general.name
    int32_t n_vocab     = 512;   // >= 259 (3 specials + 256 byte tokens)
    int32_t n_embd      = 64;
    int32_t n_layer     = 2;
    int32_t n_head      = 4;
    int32_t n_head_kv   = 2;
    int32_t head_dim    = 16;    // key_length = value_length
    int32_t n_ff        = 128;
    int32_t n_ctx_train = 2048;
    float   rope_base   = 10000.0f;
    float   rms_eps     = 1e-5f;
    int32_t sliding_window = 0;  // gemma3 only (attention.sliding_window)
    bool    tie_embeddings = true;
    SynthTypes types;
    uint64_t seed       = 1;
    float   weight_std  = 0.02f; // 2-D weights and biases ~ N(0, std^2); norms ~ 1 + N(0, 0.1^2)
};

// Presets: "llama-1b" (Llama-3.2-1B shape), "llama-8b" (Llama-3.1-8B),
// "qwen2-0.5b" (Qwen2.5-0.5B), "gemma3-270m" (gemma-3-270m), and tiny test
// models "tiny-llama", "tiny-qwen2", "tiny-gemma3". All default to Q4_K_M.
Result<SynthSpec> synth_preset(std::string_view name);
std::vector<std::string> synth_preset_names();

// Checks the spec (architecture, divisibility, vocab size, types).
Status synth_validate(const SynthSpec & spec);

// One tensor of the file that write_synthetic_model would write.
struct SynthTensor {
    std::string          name;
    TensorType           type;
    std::vector<int64_t> ne;  // ne[0] = row length
    size_t               n_bytes;
};
// The tensor table (names, final types after fallback, shapes, sizes) in file order.
Result<std::vector<SynthTensor>> synth_tensors(const SynthSpec & spec);

// The synthetic SPM vocabulary: "<unk>", "<s>", "</s>", "<0x00>".."<0xFF>",
// then unique pieces ("a".."z", "▁a", ..., "▁ab", ...). Ids: unk 0, bos 1, eos 2.
std::vector<std::string> synth_vocab(int32_t n_vocab);

// Writes the model to path, streaming tensor data (memory stays at about one
// tensor). Values are a pure function of (seed, tensor name, row), so equal
// specs give byte-identical files whatever the thread count.
// progress (optional) gets [0, 1]; returning false cancels (the file is removed).
// n_threads 0 = hardware concurrency.
Status write_synthetic_model(const SynthSpec & spec, const std::string & path,
                             const std::function<bool(float)> & progress = {}, int n_threads = 0);

}  // namespace gb
