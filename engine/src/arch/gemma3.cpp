// The gemma3 architecture (text): embeddings scaled by sqrt(n_embd), per-head
// Q/K RMSNorm, RMSNorm after attention and after the FFN, GeGLU (tanh GELU),
// neox RoPE, tied output. Five local (sliding-window, RoPE base 10000) layers
// then one global layer (RoPE base and scaling from the file), repeating.
// Norm weights are used as stored: llama.cpp's converter already added Gemma's +1.
#include "arch/arch.h"

#include <cmath>

namespace gb::arch {
namespace {

constexpr int kSwaPattern = 6;  // layer il is global when il % 6 == 5

Status load_hparams(const KeyReader & keys, HParams & hp) {
    GB_TRY_STATUS(load_common_hparams(keys, hp));
    hp.rope_style = RopeStyle::Neox;
    hp.sliding_window = 0;
    GB_TRY_STATUS(keys.i32("attention.sliding_window", &hp.sliding_window, false));
    if (hp.sliding_window < 0) {
        return make_error(ErrorCode::InvalidFile, keys.file().path() + ": " + keys.full("attention.sliding_window") + " is negative");
    }
    if (hp.sliding_window > 0) {
        for (int il = 0; il < hp.n_layer; ++il) hp.layer_is_swa[il] = il % kSwaPattern < kSwaPattern - 1;
        hp.rope_freq_base_swa  = 10000.0f;  // fixed for local layers (not in the file)
        hp.rope_freq_scale_swa = 1.0f;      // scaling applies to global layers only
    }
    hp.final_logit_softcap = 0.0f;
    GB_TRY_STATUS(keys.f32("final_logit_softcapping", &hp.final_logit_softcap, false));
    hp.embd_scale = std::sqrt(float(hp.n_embd));
    // query_pre_attn_scalar is head_dim except for the 27B model (62 layers),
    // where it is n_embd / n_head (gemma_pytorch config, as llama.cpp does).
    hp.attn_scale = hp.n_layer == 62 ? 1.0f / std::sqrt(float(hp.n_embd / hp.n_head)) : 1.0f / std::sqrt(float(hp.head_dim_k));
    return {};
}

Status bind_weights(Binder & binder, const HParams & hp, Weights & w) {
    GB_TRY_STATUS(bind_common_weights(binder, hp, w));
    for (int il = 0; il < hp.n_layer; ++il) {
        LayerWeights & l    = w.layers[il];
        const std::string p = "blk." + std::to_string(il) + ".";
        GB_TRY_STATUS(binder.vector(p + "attn_q_norm.weight", hp.head_dim_k, &l.q_norm));
        GB_TRY_STATUS(binder.vector(p + "attn_k_norm.weight", hp.head_dim_k, &l.k_norm));
        GB_TRY_STATUS(binder.vector(p + "post_attention_norm.weight", hp.n_embd, &l.attn_post_norm));
        GB_TRY_STATUS(binder.vector(p + "post_ffw_norm.weight", hp.n_embd, &l.ffn_post_norm));
    }
    return {};
}

}  // namespace

const ArchSpec & gemma3_spec() {
    static const ArchSpec spec{Arch::Gemma3, "gemma3",
                               Traits{.qkv_bias = false, .qk_norm = true, .post_norms = true, .scale_q = true, .act = FfnAct::GeluTanh},
                               &load_hparams, &bind_weights};
    return spec;
}

}  // namespace gb::arch
