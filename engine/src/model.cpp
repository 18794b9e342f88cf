// Model loading: opens the GGUF, picks the architecture, reads hyper-parameters,
// binds every weight in the mapping (checked for presence, type and shape) and
// builds the tokenizer. Also the metadata/tensor helpers the architectures share.
#include "arch/arch.h"

#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <map>

namespace gb {

const char * arch_name(Arch a) {
    switch (a) {
        case Arch::Llama:  return "llama";
        case Arch::Qwen2:  return "qwen2";
        case Arch::Gemma3: return "gemma3";
    }
    return "?";
}

namespace arch {

// ---- metadata ---------------------------------------------------------------

bool KeyReader::has(std::string_view key) const { return m_file.find(full(key)) != nullptr; }

Status KeyReader::i32(std::string_view key, int32_t * out, bool required) const {
    const std::string name = full(key);
    const gguf::Value * v  = m_file.find(name);
    if (!v) {
        if (!required) return {};
        return make_error(ErrorCode::InvalidFile, m_file.path() + ": missing metadata key " + name);
    }
    if (v->as_array()) {
        return make_error(ErrorCode::Unsupported, m_file.path() + ": " + name + " is an array (per-layer values are not supported)");
    }
    const std::optional<int64_t> i = v->as_int();
    if (!i || *i < INT32_MIN || *i > INT32_MAX) {
        return make_error(ErrorCode::InvalidFile, m_file.path() + ": metadata key " + name + " is not a 32-bit integer");
    }
    *out = static_cast<int32_t>(*i);
    return {};
}

Status KeyReader::f32(std::string_view key, float * out, bool required) const {
    const std::string name = full(key);
    const gguf::Value * v  = m_file.find(name);
    if (!v) {
        if (!required) return {};
        return make_error(ErrorCode::InvalidFile, m_file.path() + ": missing metadata key " + name);
    }
    const std::optional<double> f = v->as_float();
    if (!f || !std::isfinite(*f)) {
        return make_error(ErrorCode::InvalidFile, m_file.path() + ": metadata key " + name + " is not a finite number");
    }
    *out = static_cast<float>(*f);
    return {};
}

Status KeyReader::str(std::string_view key, std::string * out, bool required) const {
    const std::string name = full(key);
    const gguf::Value * v  = m_file.find(name);
    if (!v) {
        if (!required) return {};
        return make_error(ErrorCode::InvalidFile, m_file.path() + ": missing metadata key " + name);
    }
    const std::string * s = v->as_string();
    if (!s) return make_error(ErrorCode::InvalidFile, m_file.path() + ": metadata key " + name + " is not a string");
    *out = *s;
    return {};
}

Status load_common_hparams(const KeyReader & k, HParams & hp) {
    const std::string & path = k.file().path();
    GB_TRY_STATUS(k.i32("context_length", &hp.n_ctx_train));
    GB_TRY_STATUS(k.i32("embedding_length", &hp.n_embd));
    GB_TRY_STATUS(k.i32("block_count", &hp.n_layer));
    GB_TRY_STATUS(k.i32("feed_forward_length", &hp.n_ff));
    GB_TRY_STATUS(k.i32("attention.head_count", &hp.n_head));
    hp.n_head_kv = hp.n_head;
    GB_TRY_STATUS(k.i32("attention.head_count_kv", &hp.n_head_kv, false));
    GB_TRY_STATUS(k.f32("attention.layer_norm_rms_epsilon", &hp.rms_eps));

    auto bad = [&](const std::string & what) { return make_error(ErrorCode::InvalidFile, path + ": " + what); };
    if (hp.n_embd <= 0 || hp.n_embd > (1 << 20)) return bad("embedding_length out of range");
    if (hp.n_layer <= 0 || hp.n_layer > 4096) return bad("block_count out of range");
    if (hp.n_ff <= 0 || hp.n_ff > (1 << 22)) return bad("feed_forward_length out of range");
    if (hp.n_head <= 0 || hp.n_head > 4096) return bad("attention.head_count out of range");
    if (hp.n_head_kv <= 0 || hp.n_head % hp.n_head_kv != 0) {
        return bad("attention.head_count_kv (" + std::to_string(hp.n_head_kv) + ") must divide head_count (" +
                   std::to_string(hp.n_head) + ")");
    }
    if (hp.n_ctx_train <= 0) return bad("context_length must be positive");
    if (!(hp.rms_eps > 0.0f)) return bad("attention.layer_norm_rms_epsilon must be positive");

    hp.head_dim_k = hp.n_embd / hp.n_head;
    GB_TRY_STATUS(k.i32("attention.key_length", &hp.head_dim_k, false));
    hp.head_dim_v = hp.head_dim_k;
    GB_TRY_STATUS(k.i32("attention.value_length", &hp.head_dim_v, false));
    if (hp.head_dim_k <= 0 || hp.head_dim_k % 2 != 0 || hp.head_dim_k > 4096) return bad("attention.key_length must be even and positive");
    if (hp.head_dim_v <= 0 || hp.head_dim_v > 4096) return bad("attention.value_length out of range");

    int32_t n_rot = hp.head_dim_k;
    GB_TRY_STATUS(k.i32("rope.dimension_count", &n_rot, false));
    if (n_rot != hp.head_dim_k) {
        return make_error(ErrorCode::Unsupported, path + ": partial rotary embeddings (rope.dimension_count " +
                                                      std::to_string(n_rot) + " != head dim " + std::to_string(hp.head_dim_k) + ")");
    }
    int32_t n_expert = 0;
    GB_TRY_STATUS(k.i32("expert_count", &n_expert, false));
    if (n_expert > 0) return make_error(ErrorCode::Unsupported, path + ": mixture-of-experts models are not supported");

    GB_TRY_STATUS(k.f32("rope.freq_base", &hp.rope_freq_base, false));
    if (!(hp.rope_freq_base > 0.0f)) return bad("rope.freq_base must be positive");
    // RoPE scaling: linear only (positions divided by the factor).
    std::string scaling = "linear";
    GB_TRY_STATUS(k.str("rope.scaling.type", &scaling, false));
    float factor = 0.0f;
    GB_TRY_STATUS(k.f32("rope.scaling.factor", &factor, false));
    if (!k.has("rope.scaling.factor")) GB_TRY_STATUS(k.f32("rope.scale_linear", &factor, false));
    if (scaling == "none") {
        factor = 0.0f;
    } else if (scaling != "linear") {
        return make_error(ErrorCode::Unsupported, path + ": rope scaling type '" + scaling + "' (only linear is supported)");
    }
    if (factor != 0.0f && factor != 1.0f) {
        if (!(factor > 0.0f)) return bad("rope scaling factor must be positive");
        hp.rope_freq_scale = 1.0f / factor;
    }
    hp.rope_freq_base_swa  = hp.rope_freq_base;
    hp.rope_freq_scale_swa = hp.rope_freq_scale;
    hp.layer_is_swa.assign(static_cast<size_t>(hp.n_layer), false);
    return {};
}

// ---- tensors ----------------------------------------------------------------

Binder::Binder(const gguf::File & file, Weights & weights, const LoadParams & params, int n_steps)
    : m_file(file), m_weights(weights), m_params(params), m_n_steps(n_steps) {}

Status Binder::step() {
    ++m_done;
    if (m_params.progress && !m_params.progress(std::min(1.0f, float(m_done) / float(std::max(1, m_n_steps))))) {
        return make_error(ErrorCode::Cancelled, m_file.path() + ": loading cancelled");
    }
    return {};
}

Status Binder::check(const gguf::TensorInfo & t, int n_dims, int64_t ne0, int64_t ne1) {
    const TypeTraits * tr = type_traits(static_cast<uint32_t>(t.type));
    if (!tr || !tr->computable) {
        return make_error(ErrorCode::Unsupported, m_file.path() + ": tensor " + t.name + " has type " +
                                                      (tr ? tr->name : "unknown") + ", which the engine cannot compute with");
    }
    const int64_t want[4] = {ne0, ne1, 1, 1};
    bool ok = t.ne[2] == 1 && t.ne[3] == 1 && t.ne[0] == want[0] && t.ne[1] == want[1];
    if (!ok) {
        auto fmt = [](const int64_t * ne, int n) {
            std::string s = "[";
            for (int i = 0; i < n; ++i) s += (i ? ", " : "") + std::to_string(ne[i]);
            return s + "]";
        };
        return make_error(ErrorCode::InvalidFile, m_file.path() + ": tensor " + t.name + " has shape " +
                                                      fmt(t.ne, std::max(1, t.n_dims)) + ", expected " + fmt(want, n_dims));
    }
    if (t.ne[0] % tr->block_size != 0) {
        return make_error(ErrorCode::InvalidFile, m_file.path() + ": tensor " + t.name + " row length is not a multiple of its block size");
    }
    return {};
}

Status Binder::matrix(const std::string & name, int64_t ne0, int64_t ne1, Matrix * out, bool required) {
    const gguf::TensorInfo * t = m_file.find_tensor(name);
    if (!t) {
        if (!required) return {};
        return make_error(ErrorCode::InvalidFile, m_file.path() + ": missing tensor " + name);
    }
    GB_TRY_STATUS(check(*t, 2, ne0, ne1));
    out->t = t;
    return {};
}

Status Binder::vector(const std::string & name, int64_t n, Vector * out, bool required) {
    const gguf::TensorInfo * t = m_file.find_tensor(name);
    if (!t) {
        if (!required) return {};
        return make_error(ErrorCode::InvalidFile, m_file.path() + ": missing tensor " + name);
    }
    GB_TRY_STATUS(check(*t, 1, n, 1));
    out->n = n;
    if (t->type == TensorType::F32) {
        out->data = reinterpret_cast<const float *>(t->data);  // NOTE: the reader aligns tensor data (>= 32 bytes)
    } else {
        std::vector<float> & v = m_weights.owned.emplace_back(static_cast<size_t>(n));
        if (!dequantize_row(t->type, t->data, v.data(), n)) {
            return make_error(ErrorCode::Unsupported, m_file.path() + ": cannot convert tensor " + name);
        }
        out->data = v.data();
    }
    return {};
}

Status bind_common_weights(Binder & b, const HParams & hp, Weights & w) {
    const int64_t n_embd = hp.n_embd, n_vocab = hp.n_vocab;
    GB_TRY_STATUS(b.matrix("token_embd.weight", n_embd, n_vocab, &w.tok_embd));
    GB_TRY_STATUS(b.vector("output_norm.weight", n_embd, &w.output_norm));
    GB_TRY_STATUS(b.matrix("output.weight", n_embd, n_vocab, &w.output, false));
    if (!w.output) w.output = w.tok_embd;  // tied embeddings
    GB_TRY_STATUS(b.vector("rope_freqs.weight", hp.head_dim_k / 2, &w.rope_freqs, false));
    GB_TRY_STATUS(b.step());

    const int64_t n_q = int64_t(hp.n_head) * hp.head_dim_k, n_k = int64_t(hp.n_head_kv) * hp.head_dim_k;
    const int64_t n_v = int64_t(hp.n_head_kv) * hp.head_dim_v, n_o = int64_t(hp.n_head) * hp.head_dim_v;
    w.layers.resize(static_cast<size_t>(hp.n_layer));
    for (int il = 0; il < hp.n_layer; ++il) {
        LayerWeights & l = w.layers[il];
        const std::string p = "blk." + std::to_string(il) + ".";
        GB_TRY_STATUS(b.vector(p + "attn_norm.weight", n_embd, &l.attn_norm));
        GB_TRY_STATUS(b.matrix(p + "attn_q.weight", n_embd, n_q, &l.wq));
        GB_TRY_STATUS(b.matrix(p + "attn_k.weight", n_embd, n_k, &l.wk));
        GB_TRY_STATUS(b.matrix(p + "attn_v.weight", n_embd, n_v, &l.wv));
        GB_TRY_STATUS(b.matrix(p + "attn_output.weight", n_o, n_embd, &l.wo));
        GB_TRY_STATUS(b.vector(p + "ffn_norm.weight", n_embd, &l.ffn_norm));
        GB_TRY_STATUS(b.matrix(p + "ffn_gate.weight", n_embd, hp.n_ff, &l.ffn_gate));
        GB_TRY_STATUS(b.matrix(p + "ffn_up.weight", n_embd, hp.n_ff, &l.ffn_up));
        GB_TRY_STATUS(b.matrix(p + "ffn_down.weight", hp.n_ff, n_embd, &l.ffn_down));
        GB_TRY_STATUS(b.step());
    }
    return {};
}

const ArchSpec * find_spec(std::string_view name) {
    for (const ArchSpec * s : {&llama_spec(), &qwen2_spec(), &gemma3_spec()}) {
        if (name == s->name) return s;
    }
    return nullptr;
}

const ArchSpec & spec_of(Arch a) {
    switch (a) {
        case Arch::Qwen2:  return qwen2_spec();
        case Arch::Gemma3: return gemma3_spec();
        case Arch::Llama:  break;
    }
    return llama_spec();
}

}  // namespace arch

// ---- the model --------------------------------------------------------------

namespace {

const char * file_type_name(int64_t ftype) {
    static const std::map<int64_t, const char *> names = {
        {0, "F32"},      {1, "F16"},      {2, "Q4_0"},     {3, "Q4_1"},    {7, "Q8_0"},    {8, "Q5_0"},
        {9, "Q5_1"},     {10, "Q2_K"},    {11, "Q3_K_S"},  {12, "Q3_K_M"}, {13, "Q3_K_L"}, {14, "Q4_K_S"},
        {15, "Q4_K_M"},  {16, "Q5_K_S"},  {17, "Q5_K_M"},  {18, "Q6_K"},   {19, "IQ2_XXS"}, {20, "IQ2_XS"},
        {21, "Q2_K_S"},  {22, "IQ3_XS"},  {23, "IQ3_XXS"}, {24, "IQ1_S"},  {25, "IQ4_NL"}, {26, "IQ3_S"},
        {27, "IQ3_M"},   {28, "IQ2_S"},   {29, "IQ2_M"},   {30, "IQ4_XS"}, {31, "IQ1_M"},  {32, "BF16"},
        {36, "TQ1_0"},   {37, "TQ2_0"},   {38, "MXFP4"},
    };
    auto it = names.find(ftype);
    return it == names.end() ? nullptr : it->second;
}

std::string size_label(uint64_t n) {
    char buf[32];
    if (n >= 1000000000ull) std::snprintf(buf, sizeof buf, "%.1fB", double(n) / 1e9);
    else std::snprintf(buf, sizeof buf, "%" PRIu64 "M", (n + 500000) / 1000000);
    return buf;
}

class ModelImpl final : public Model {
  public:
    const HParams &    hparams() const override { return m_hp; }
    const gguf::File & file() const override { return *m_file; }
    const Tokenizer &  tokenizer() const override { return *m_tok; }
    std::shared_ptr<const Tokenizer> tokenizer_ptr() const override { return m_tok; }
    std::string chat_template_source() const override {
        auto s = m_file->get_string("tokenizer.chat_template");
        return s ? std::string(*s) : std::string();
    }
    std::string description() const override { return m_description; }
    uint64_t    n_params() const override { return m_n_params; }

    std::unique_ptr<gguf::File>      m_file;
    HParams                          m_hp;
    const arch::ArchSpec *           m_spec = nullptr;
    arch::Weights                    m_weights;
    std::shared_ptr<const Tokenizer> m_tok;
    std::string                      m_description;
    uint64_t                         m_n_params = 0;
};

std::string describe(const gguf::File & f, const HParams & hp, uint64_t n_params) {
    std::string s = arch_name(hp.arch);
    auto label    = f.get_string("general.size_label");
    s += " " + (label ? std::string(*label) : size_label(n_params));
    const char * ft = nullptr;
    if (auto t = f.get_int("general.file_type")) ft = file_type_name(*t);
    if (!ft) {  // most common type among the matrices
        std::map<TensorType, uint64_t> count;
        for (const auto & t : f.tensors()) {
            if (t.n_dims >= 2) count[t.type] += uint64_t(t.n_elements());
        }
        uint64_t best = 0;
        for (auto [type, n] : count) {
            if (n > best) best = n, ft = type_name(type);
        }
    }
    if (ft) s += std::string(" ") + ft;
    return s;
}

}  // namespace

Result<std::shared_ptr<const Model>> Model::load(const std::string & path, const LoadParams & params) {
    auto model  = std::make_shared<ModelImpl>();
    auto opened = gguf::File::open(path);
    if (!opened) return opened.error();
    model->m_file           = std::move(opened.value());
    const gguf::File & file = *model->m_file;

    auto arch_str = file.get_string("general.architecture");
    if (!arch_str) return make_error(ErrorCode::InvalidFile, path + ": missing metadata key general.architecture");
    const arch::ArchSpec * spec = arch::find_spec(*arch_str);
    if (!spec) {
        return make_error(ErrorCode::Unsupported, path + ": architecture '" + std::string(*arch_str) +
                                                      "' is not supported (supported: llama, qwen2, gemma3)");
    }
    model->m_spec  = spec;
    HParams & hp   = model->m_hp;
    hp.arch        = spec->arch;
    const arch::KeyReader keys(file, spec->name);
    GB_TRY_STATUS(spec->load_hparams(keys, hp));

    const gguf::TensorInfo * embd = file.find_tensor("token_embd.weight");
    if (!embd) return make_error(ErrorCode::InvalidFile, path + ": missing tensor token_embd.weight");
    hp.n_vocab = static_cast<int32_t>(embd->ne[1]);
    if (embd->ne[1] <= 0 || embd->ne[1] > INT32_MAX) return make_error(ErrorCode::InvalidFile, path + ": bad vocabulary size");

    arch::Binder binder(file, model->m_weights, params, arch::bind_steps(hp) + 1);
    GB_TRY_STATUS(spec->bind_weights(binder, hp, model->m_weights));

    auto tok = Tokenizer::from_gguf(file);
    if (!tok) return tok.error();
    model->m_tok = std::move(tok.value());
    if (model->m_tok->n_vocab() > hp.n_vocab) {
        return make_error(ErrorCode::InvalidFile, path + ": tokenizer has " + std::to_string(model->m_tok->n_vocab()) +
                                                      " tokens but token_embd.weight only " + std::to_string(hp.n_vocab) + " rows");
    }
    GB_TRY_STATUS(binder.step());

    for (const auto & t : file.tensors()) model->m_n_params += uint64_t(t.n_elements());
    model->m_description = describe(file, hp, model->m_n_params);
    return std::shared_ptr<const Model>(std::move(model));
}

namespace arch {

const Weights & weights_of(const Model & model) {
    const auto * impl = dynamic_cast<const ModelImpl *>(&model);
    assert(impl && "weights_of: the model must come from Model::load");
    return impl->m_weights;
}

const Traits & traits_of(const Model & model) {
    const auto * impl = dynamic_cast<const ModelImpl *>(&model);
    assert(impl);
    return impl->m_spec->traits;
}

}  // namespace arch
}  // namespace gb
