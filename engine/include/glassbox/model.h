// A loaded model (architecture, hyper-parameters, weights viewed in the mmap,
// tokenizer, chat template) and a Context that runs its forward pass on the CPU
// with a per-sequence F16 or Q8_0 KV cache (kv::CpuKvStorage, pages in order).
#pragma once

#include "glassbox/gguf.h"
#include "glassbox/kv/kv_storage.h"
#include "glassbox/result.h"
#include "glassbox/tokenizer.h"

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace gb {

enum class Arch { Llama, Qwen2, Gemma3 };
const char * arch_name(Arch a);

enum class RopeStyle { Normal, Neox };  // adjacent pairs (llama) / split halves (qwen2, gemma3)

struct HParams {
    Arch      arch = Arch::Llama;
    int32_t   n_vocab = 0;
    int32_t   n_ctx_train = 0;
    int32_t   n_embd = 0;
    int32_t   n_layer = 0;
    int32_t   n_head = 0;
    int32_t   n_head_kv = 0;
    int32_t   head_dim_k = 0;      // key_length (n_embd / n_head unless given)
    int32_t   head_dim_v = 0;
    int32_t   n_ff = 0;
    float     rms_eps = 1e-5f;
    float     rope_freq_base = 10000.0f;
    float     rope_freq_base_swa = 10000.0f;  // gemma3 local layers
    float     rope_freq_scale = 1.0f;
    float     rope_freq_scale_swa = 1.0f;     // gemma3 local layers
    RopeStyle rope_style = RopeStyle::Normal;
    int32_t   sliding_window = 0;             // 0 = none
    std::vector<bool> layer_is_swa;           // per layer
    float     attn_scale = 0.0f;              // 0 = 1/sqrt(head_dim_k)
    float     embd_scale = 1.0f;              // gemma: sqrt(n_embd)
    float     final_logit_softcap = 0.0f;     // 0 = none
};

struct LoadParams {
    // Called with progress in [0, 1]; return false to cancel the load.
    std::function<bool(float progress)> progress;
};

class Model {
  public:
    static Result<std::shared_ptr<const Model>> load(const std::string & path, const LoadParams & params = {});
    virtual ~Model() = default;

    virtual const HParams &    hparams() const = 0;
    virtual const gguf::File & file() const = 0;
    virtual const Tokenizer &  tokenizer() const = 0;
    virtual std::shared_ptr<const Tokenizer> tokenizer_ptr() const = 0;
    virtual std::string chat_template_source() const = 0;  // "" if none in the file
    virtual std::string description() const = 0;           // "gemma3 270M Q4_K_M"
    virtual uint64_t    n_params() const = 0;
};

struct ContextParams {
    int32_t n_ctx = 4096;       // clamped to n_ctx_train
    int32_t n_threads = 0;      // 0 = hardware concurrency
    int32_t n_batch = 512;      // max tokens per forward chunk in prefill
    kv::KvType kv_type = kv::KvType::F16;  // [kv] K/V storage type (Q8_0: ~53% of F16's bytes; head_dim % 32 == 0)
    int32_t kv_page_size = 0;              // [kv] page size of the one-sequence, in-order page storage; 0: one page of n_ctx
    // [quantlab] Optional: called before each weight matmul with its input
    // x [n_tokens, n_cols] (layer -1 for the output head). For calibration (GPTQ).
    std::function<void(int layer, const char * weight_name, const float * x, int64_t n_tokens, int64_t n_cols)>
        matmul_observer;
    // [spec] Layers the forward pass skips (their residual passes through
    // unchanged): the same loaded model as a cheaper self-drafter. Empty = none.
    std::vector<int32_t> skip_layers;
};

// [spec] One logits row summarised where it was computed (the GPU): its
// argmax (the lowest id among the maxima), the maximum, and
// lse = log(sum_i exp(l_i - max)) in double, so the argmax token's
// log-probability is float(-lse) (Sampler::logprob_of up to summation order).
struct RowSummary {
    Token  argmax = -1;
    float  max = 0.0f;
    double lse = 0.0;
};

// One sequence's state. Not thread-safe; one thread drives it.
class Context {
  public:
    static Result<std::unique_ptr<Context>> create(std::shared_ptr<const Model> model, const ContextParams & params);
    virtual ~Context() = default;

    // Runs tokens at positions [n_past(), n_past() + n). Fails with OutOfRange
    // when they would not fit the context. all_logits: keep logits of every
    // token ([n, n_vocab]); otherwise only the last ([n_vocab]).
    // cancel (optional) is polled between chunks and layers.
    virtual Status decode(std::span<const Token> tokens, bool all_logits,
                          const std::atomic<bool> * cancel = nullptr) = 0;
    virtual std::span<const float> logits() const = 0;
    virtual int32_t n_past() const = 0;
    virtual int32_t n_ctx() const = 0;
    virtual void    truncate(int32_t n_past) = 0;  // forget positions >= n_past
    virtual const Model & model() const = 0;
    virtual size_t  kv_bytes() const = 0;

    // [spec] Token-tree verification (SpecInfer / Medusa style). Node i is
    // tokens[i] with parent parents[i] in [-1, i) (-1: a child of the committed
    // sequence); it sits at position n_past() + depth(i) (roots at depth 0) and
    // attends to the committed K/V plus its ancestors only. Each node gives the
    // bits that decoding its root-to-node path as a plain sequence would give.
    // Nodes occupy cache rows n_past() + i until commit_tree(); n_past() does
    // not move. At most n_batch nodes. logits() then holds the rows of
    // out_nodes, in that order ([out_nodes.size(), n_vocab]).
    virtual bool   supports_tree() const { return false; }
    // The most nodes (the pending token included) one verification pass gives
    // plain-step bits for; speculation keeps its trees within it.
    virtual int32_t max_tree_nodes() const { return INT32_MAX; }
    virtual Status decode_tree(std::span<const Token> tokens, std::span<const int32_t> parents,
                               std::span<const int32_t> out_nodes, const std::atomic<bool> * cancel = nullptr);
    // Logits of more nodes of the last decode_tree() (replaces logits()).
    virtual Status tree_logits(std::span<const int32_t> nodes);
    // Keeps the K/V of path (root first, each node the parent of the next) as
    // positions n_past() .. n_past() + path.size() - 1, compacted into place;
    // everything else of the tree is forgotten. An empty path drops the tree.
    // decode() and truncate() also drop a pending tree.
    virtual Status commit_tree(std::span<const int32_t> path);
    // [spec] A summary of each row logits() would return, computed on the
    // device that holds them; the rows are then copied to the host only if
    // logits() is called. Empty where not available (the CPU: read logits()).
    virtual std::span<const RowSummary> row_summaries() const { return {}; }
};

// Summation orders of the CPU backend (process-wide).
//  BatchInvariant (default): a row's result never depends on how many tokens
//    share the batch or how threads split it, so batched, speculative and
//    single-token decoding give identical logits.
//  LlamaCpp: reproduce the summation orders of llama.cpp's CPU backend (its
//    AVX-512 build) for the types gemma-3-270m uses (Q5_0, Q8_0, Q4_K, Q6_K),
//    bit for bit; results then depend on the batch size as llama.cpp's do, and
//    prefill skips the VNNI GEMM for those types. For verification against llama.cpp.
enum class CpuNumerics { BatchInvariant, LlamaCpp };
void set_cpu_numerics(CpuNumerics mode);
CpuNumerics cpu_numerics();

// The scalar fp32 reference forward pass (the test oracle): every weight
// dequantized to f32, plain loops, no cache reuse. Returns [n, n_vocab].
Result<std::vector<float>> reference_forward(const Model & model, std::span<const Token> tokens);

}  // namespace gb
