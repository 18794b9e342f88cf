// The qwen2 architecture (Qwen 2 / 2.5): like llama, with biases on Q, K and V
// and RoPE on split halves (neox style).
#include "arch/arch.h"

namespace gb::arch {
namespace {

Status load_hparams(const KeyReader & keys, HParams & hp) {
    GB_TRY_STATUS(load_common_hparams(keys, hp));
    hp.rope_style = RopeStyle::Neox;
    return {};
}

Status bind_weights(Binder & binder, const HParams & hp, Weights & w) {
    GB_TRY_STATUS(bind_common_weights(binder, hp, w));
    for (int il = 0; il < hp.n_layer; ++il) {
        LayerWeights & l    = w.layers[il];
        const std::string p = "blk." + std::to_string(il) + ".";
        GB_TRY_STATUS(binder.vector(p + "attn_q.bias", int64_t(hp.n_head) * hp.head_dim_k, &l.bq));
        GB_TRY_STATUS(binder.vector(p + "attn_k.bias", int64_t(hp.n_head_kv) * hp.head_dim_k, &l.bk));
        GB_TRY_STATUS(binder.vector(p + "attn_v.bias", int64_t(hp.n_head_kv) * hp.head_dim_v, &l.bv));
    }
    return {};
}

}  // namespace

const ArchSpec & qwen2_spec() {
    static const ArchSpec spec{Arch::Qwen2, "qwen2", Traits{.qkv_bias = true}, &load_hparams, &bind_weights};
    return spec;
}

}  // namespace gb::arch
