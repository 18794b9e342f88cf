// Private model internals shared by the loader, the optimized Context and the
// reference forward pass: per-architecture traits and loaders (one .cpp per
// architecture), and the weight table, which points into the GGUF mapping.
#pragma once

#include "cpu/matmul.h"
#include "glassbox/model.h"

#include <cmath>
#include <string>
#include <string_view>
#include <vector>

namespace gb::arch {

enum class FfnAct { Silu, GeluTanh };  // SwiGLU (llama, qwen2) / GeGLU (gemma)

// How a block differs between architectures (the forward passes read these).
struct Traits {
    bool   qkv_bias   = false;  // qwen2: biases on Q, K, V
    bool   qk_norm    = false;  // gemma3: per-head RMSNorm of Q and K before RoPE
    bool   post_norms = false;  // gemma3: RMSNorm of the attention and FFN outputs before each residual add
    bool   scale_q    = false;  // gemma3: Q multiplied by the attention scale before Q K^T (else the scores are)
    FfnAct act        = FfnAct::Silu;
};

// A 2-D weight in the mapping, ne = [n_cols, n_rows] (ggml order).
struct Matrix {
    const gguf::TensorInfo * t = nullptr;
    explicit operator bool() const { return t != nullptr; }
    cpu::WeightView view() const {
        cpu::WeightView v;
        v.type      = t->type;
        v.n_cols    = t->ne[0];
        v.n_rows    = t->ne[1];
        v.row_bytes = row_size(t->type, t->ne[0]);
        v.data      = t->data;
        return v;
    }
    const uint8_t * row(int64_t r) const { return t->data + static_cast<size_t>(r) * row_size(t->type, t->ne[0]); }
};

// A 1-D f32 vector (norm weights, biases): in the mapping when stored as F32,
// otherwise converted once at load time into Weights::owned.
struct Vector {
    const float * data = nullptr;
    int64_t       n    = 0;
    explicit operator bool() const { return data != nullptr; }
};

struct LayerWeights {
    Vector attn_norm;                  // [n_embd]
    Matrix wq;                         // [n_embd, n_head * head_dim_k]
    Matrix wk;                         // [n_embd, n_head_kv * head_dim_k]
    Matrix wv;                         // [n_embd, n_head_kv * head_dim_v]
    Matrix wo;                         // [n_head * head_dim_v, n_embd]
    Vector bq, bk, bv;                 // qkv_bias: [n_head * head_dim_k] ...
    Vector q_norm, k_norm;             // qk_norm: [head_dim_k]
    Vector attn_post_norm;             // post_norms: [n_embd]
    Vector ffn_norm;                   // [n_embd]
    Matrix ffn_gate, ffn_up;           // [n_embd, n_ff]
    Matrix ffn_down;                   // [n_ff, n_embd]
    Vector ffn_post_norm;              // post_norms: [n_embd]
};

struct Weights {
    Matrix tok_embd;                   // [n_embd, n_vocab]
    Vector output_norm;                // [n_embd]
    Matrix output;                     // [n_embd, n_vocab]; = tok_embd when tied
    Vector rope_freqs;                 // optional [head_dim_k / 2] frequency divisors (llama 3.1+)
    std::vector<LayerWeights> layers;  // [n_layer]
    std::vector<std::vector<float>> owned;  // storage of converted vectors
};

// Looks up tensors, checking presence, computable type and exact shape.
// Errors name the tensor. Reports progress and honours cancellation.
class Binder {
  public:
    Binder(const gguf::File & file, Weights & weights, const LoadParams & params, int n_steps);

    // ne0 = row length (input features), ne1 = rows (output features).
    Status matrix(const std::string & name, int64_t ne0, int64_t ne1, Matrix * out, bool required = true);
    Status vector(const std::string & name, int64_t n, Vector * out, bool required = true);
    // One unit of progress; Cancelled when the callback says stop.
    Status step();

  private:
    Status check(const gguf::TensorInfo & t, int n_dims, int64_t ne0, int64_t ne1);
    const gguf::File & m_file;
    Weights &          m_weights;
    const LoadParams & m_params;
    int                m_n_steps;
    int                m_done = 0;
};

// Reads `<arch>.<key>` metadata; a missing required key is InvalidFile.
class KeyReader {
  public:
    KeyReader(const gguf::File & file, std::string prefix) : m_file(file), m_prefix(std::move(prefix)) {}
    Status i32(std::string_view key, int32_t * out, bool required = true) const;
    Status f32(std::string_view key, float * out, bool required = true) const;
    Status str(std::string_view key, std::string * out, bool required = true) const;
    bool   has(std::string_view key) const;
    std::string full(std::string_view key) const { return m_prefix + "." + std::string(key); }
    const gguf::File & file() const { return m_file; }

  private:
    const gguf::File & m_file;
    std::string        m_prefix;
};

// One architecture: traits, hyper-parameters from metadata, tensor table.
struct ArchSpec {
    Arch         arch;
    const char * name;  // general.architecture value
    Traits       traits;
    Status (*load_hparams)(const KeyReader & keys, HParams & hp);
    Status (*bind_weights)(Binder & binder, const HParams & hp, Weights & w);
};

const ArchSpec & llama_spec();
const ArchSpec & qwen2_spec();
const ArchSpec & gemma3_spec();
const ArchSpec * find_spec(std::string_view arch_name);
const ArchSpec & spec_of(Arch a);

// Shared by the architectures (model.cpp).
Status load_common_hparams(const KeyReader & keys, HParams & hp);
// The tensors every supported architecture has (embeddings, norms, attention,
// gated FFN, optional output = tied embeddings).
Status bind_common_weights(Binder & binder, const HParams & hp, Weights & w);
// Number of progress steps bind_weights takes.
inline int bind_steps(const HParams & hp) { return hp.n_layer + 1; }

// The weights of a loaded model (the Model must come from Model::load).
const Weights & weights_of(const Model & model);
const Traits &  traits_of(const Model & model);

// Per-layer RoPE parameters.
inline float rope_base(const HParams & hp, int il) { return hp.layer_is_swa[il] ? hp.rope_freq_base_swa : hp.rope_freq_base; }
inline float rope_scale(const HParams & hp, int il) { return hp.layer_is_swa[il] ? hp.rope_freq_scale_swa : hp.rope_freq_scale; }
inline float attn_scale(const HParams & hp) { return hp.attn_scale > 0.0f ? hp.attn_scale : 1.0f / std::sqrt(float(hp.head_dim_k)); }

}  // namespace gb::arch
