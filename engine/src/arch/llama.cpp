// The llama architecture (Llama 2/3, Mistral, TinyLlama): RMSNorm, RoPE on
// adjacent pairs, SwiGLU FFN, optional untied output and rope_freqs factors.
#include "arch/arch.h"

namespace gb::arch {
namespace {

Status load_hparams(const KeyReader & keys, HParams & hp) {
    GB_TRY_STATUS(load_common_hparams(keys, hp));
    hp.rope_style = RopeStyle::Normal;
    return {};
}

Status bind_weights(Binder & binder, const HParams & hp, Weights & w) {
    return bind_common_weights(binder, hp, w);
}

}  // namespace

const ArchSpec & llama_spec() {
    static const ArchSpec spec{Arch::Llama, "llama", Traits{}, &load_hparams, &bind_weights};
    return spec;
}

}  // namespace gb::arch
