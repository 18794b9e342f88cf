// Requantize a GGUF model: a plan of target formats (whole model or per tensor
// class), validation with llama.cpp's fallbacks, execution with progress and
// cancellation, optional GPTQ from calibration text, written as a GGUF whose
// metadata is preserved and records the quantization (glassbox.quantization.*).
#pragma once

#include "glassbox/gguf.h"
#include "glassbox/model.h"
#include "glassbox/quant/gptq.h"
#include "glassbox/result.h"

#include <atomic>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace gb::quant {

enum class TensorClass { Attention, FeedForward, Embedding, Output, Other };
const char * tensor_class_name(TensorClass c);
TensorClass tensor_class_of(std::string_view tensor_name);

// A target format: nullopt = as in the file. Accepted names (case-insensitive):
// "as-in-file" (or "keep"), F16, Q8_0, Q6_K, Q5_K, Q4_K, Q4_0, Q3_K, Q2_K.
using Format = std::optional<TensorType>;
Result<Format> parse_format(std::string_view name);
std::string format_name(const Format & f);

struct QuantPlan {
    Format base;                       // every 2-D weight unless a class overrides it
    std::map<TensorClass, Format> by_class;
    bool allow_fallback = true;        // false: a row length the block cannot take is an error
    Format for_class(TensorClass c) const;
    std::string describe() const;      // "base=Q4_K attn=Q8_0"
};

struct TensorPlan {
    std::string name;
    TensorClass cls = TensorClass::Other;
    TensorType  from = TensorType::F32;
    TensorType  to = TensorType::F32;
    bool        fallback = false;      // `to` differs from the requested format (row length)
    bool        gptq = false;          // quantized with GPTQ (filled in by requantize_file)
    size_t      bytes_from = 0, bytes_to = 0;
};

// The per-tensor types the plan gives (1-D tensors and norms keep their type).
// llama.cpp fallbacks when ne[0] is not a multiple of the block: Q4_K->Q5_0,
// Q5_K->Q5_1, Q6_K->Q8_0, Q2_K/Q3_K->Q4_0, then F16.
Result<std::vector<TensorPlan>> plan_requantize(const gguf::File & file, const QuantPlan & plan);

struct GptqOptions {
    bool        enabled = false;
    TensorType  type = TensorType::Q4_0;  // Q4_0 or Q4_K: weights of attention/ffn layers
    GptqParams  params;
    bool        weighted_rtn = false;     // instead of GPTQ: importance-weighted RTN (diag(H))
    std::string calib_text;
    int32_t     calib_ctx = 512;
    int32_t     min_calib_tokens = 128;
    int32_t     max_calib_tokens = 2048;
};

struct RequantizeParams {
    QuantPlan  plan;
    GptqOptions gptq;
    int32_t    n_threads = 0;
    std::function<void(float progress, const std::string & stage)> progress;  // optional
    const std::atomic<bool> * cancel = nullptr;                                 // optional
};

struct RequantizeReport {
    std::vector<TensorPlan> tensors;
    uint64_t bytes_in = 0, bytes_out = 0;   // tensor data
    int64_t  calib_tokens = 0;
};

// Collects H = X^T X of every layer weight's input over calibration tokens.
// Error if the text gives fewer than min_calib_tokens tokens.
Result<std::map<std::string, InputStats>> collect_input_stats(std::shared_ptr<const Model> model,
                                                             const GptqOptions & opts, int32_t n_threads,
                                                             const std::atomic<bool> * cancel = nullptr);

// Writes `out_path` (via .tmp + rename; nothing is left on error or cancel).
Result<RequantizeReport> requantize_file(const std::string & in_path, const std::string & out_path,
                                         const RequantizeParams & params);

// "Requantize on load": requantizes into `<dir>/<stem>.<plan>.gguf` (reused when
// it exists and records the same plan), then loads it.
Result<std::shared_ptr<const Model>> load_requantized(const std::string & in_path, const std::string & cache_dir,
                                                      const RequantizeParams & params);

}  // namespace gb::quant
