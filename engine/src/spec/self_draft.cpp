// Method 4, self-draft: the target itself with some layers skipped drafts for
// the full target: a second Context on the same loaded model with
// ContextParams::skip_layers (no copy of the weights). Also here: the
// layer-skipped GGUF copy (a stand-in "draft model" file for tests/benchmarks).
#include "glassbox/spec/speculator.h"

#include "spec/draft_model.h"

#include <algorithm>
#include <set>

namespace gb {
namespace {

// gemma3's local/global layer pattern is by layer index (global when il % 6 == 5).
bool index_patterned(const Model & m) { return m.hparams().arch == Arch::Gemma3 && m.hparams().sliding_window > 0; }

}  // namespace

std::vector<int32_t> default_skip_layers(const Model & model) {
    const int32_t n = model.hparams().n_layer;
    std::vector<int32_t> skip;
    if (index_patterned(model)) {
        // One whole group of 6 from the middle, so the rest keeps its pattern.
        if (n >= 12) {
            const int32_t g0 = ((n / 6) / 2) * 6;
            for (int32_t i = g0; i < g0 + 6 && i < n; ++i) skip.push_back(i);
        }
        return skip;
    }
    // Every other layer of the middle half.
    for (int32_t i = n / 4; i < (3 * n) / 4; i += 2) skip.push_back(i);
    return skip;
}

Status write_layer_skipped_copy(const Model & model, const std::vector<int32_t> & skip_layers, const std::string & path) {
    const HParams & hp = model.hparams();
    const std::set<int32_t> skip(skip_layers.begin(), skip_layers.end());
    for (int32_t l : skip) {
        if (l < 0 || l >= hp.n_layer) {
            return make_error(ErrorCode::InvalidArgument, "skip layer " + std::to_string(l) + " outside 0.." +
                                                              std::to_string(hp.n_layer - 1));
        }
    }
    if (int32_t(skip.size()) >= hp.n_layer) return make_error(ErrorCode::InvalidArgument, "cannot skip every layer");
    std::vector<int32_t> new_index(size_t(hp.n_layer), -1);
    int32_t kept = 0;
    for (int32_t l = 0; l < hp.n_layer; ++l) {
        if (!skip.count(l)) new_index[size_t(l)] = kept++;
    }
    if (index_patterned(model)) {
        for (int32_t l = 0; l < hp.n_layer; ++l) {
            const int32_t i = new_index[size_t(l)];
            if (i >= 0 && (l % 6 == 5) != (i % 6 == 5)) {
                return make_error(ErrorCode::Unsupported,
                                  "gemma3 decides local/global attention by layer index (every 6th is global): skipping "
                                  "these layers would turn layer " + std::to_string(l) + " into layer " + std::to_string(i) +
                                  " of the other kind; skip whole groups of 6 (e.g. 6-11) or use a Context skip-layers option");
            }
        }
    }
    const gguf::File & f = model.file();
    const std::string arch = std::string(f.get_string("general.architecture").value_or(""));
    gguf::Writer w;
    for (const auto & [key, value] : f.metadata()) {
        if (key == "general.alignment") {
            if (auto a = value.as_uint()) w.set_alignment(uint32_t(*a));
            continue;
        }
        if (key == arch + ".block_count") {
            w.set_u32(key, uint32_t(kept));
            continue;
        }
        w.set(key, value);
    }
    for (const gguf::TensorInfo & t : f.tensors()) {
        std::string name = t.name;
        if (name.rfind("blk.", 0) == 0) {
            const size_t dot = name.find('.', 4);
            const int32_t l = std::stoi(name.substr(4, dot - 4));
            if (l < 0 || l >= hp.n_layer || new_index[size_t(l)] < 0) continue;
            name = "blk." + std::to_string(new_index[size_t(l)]) + name.substr(dot);
        }
        std::vector<int64_t> ne(t.ne, t.ne + t.n_dims);
        const uint8_t * src = t.data;
        GB_TRY_STATUS(w.add_tensor(name, t.type, ne, [src](uint8_t * dst, size_t n) { std::copy(src, src + n, dst); }));
    }
    return w.write(path);
}

Result<std::unique_ptr<Speculator>> make_self_draft_speculator(std::shared_ptr<const Model> target, const SpecConfig & cfg,
                                                               const SamplerParams & sampling, int32_t n_ctx,
                                                               int32_t n_threads) {
    std::vector<int32_t> skip = cfg.skip_layers.empty() ? default_skip_layers(*target) : cfg.skip_layers;
    if (skip.empty()) return make_error(ErrorCode::InvalidArgument, "self-draft: no layers to skip for this model");
    ContextParams cp;
    cp.n_ctx = n_ctx;
    cp.n_threads = cfg.draft_threads > 0 ? cfg.draft_threads : n_threads;
    cp.skip_layers = std::move(skip);
    auto ctx = cfg.context_factory ? cfg.context_factory(target, cp) : Context::create(target, cp);
    if (!ctx) return Error{ctx.error().code, "self-draft: " + ctx.error().message};
    auto sp = std::make_unique<spec::DraftModelSpeculator>(std::move(target), std::move(ctx.value()), sampling, "selfdraft");
    GB_TRY_STATUS(sp->time_step(nullptr));  // its step's cost, measured as part of making it (draft_model.h)
    return std::unique_ptr<Speculator>(std::move(sp));
}

Result<std::unique_ptr<Speculator>> make_speculator(std::shared_ptr<const Model> target, const SpecConfig & cfg,
                                                    const SamplerParams & sampling, int32_t n_ctx, int32_t n_threads) {
    switch (cfg.method) {
        case SpecMethod::None: return std::unique_ptr<Speculator>();
        case SpecMethod::PromptLookup: return make_prompt_lookup_speculator(cfg);
        case SpecMethod::Lookahead: return make_lookahead_speculator(cfg);
        case SpecMethod::SelfDraft: return make_self_draft_speculator(target, cfg, sampling, n_ctx, n_threads);
        case SpecMethod::DraftModel: {
            std::shared_ptr<const Model> draft = cfg.draft_model;
            if (!draft) {
                if (cfg.draft_model_path.empty()) {
                    return make_error(ErrorCode::InvalidArgument, "speculative method \"draft\" needs a draft model (--draft-model FILE)");
                }
                auto m = Model::load(cfg.draft_model_path);
                if (!m) return m.error();
                draft = std::move(m.value());
            }
            return make_draft_model_speculator(*target, std::move(draft), cfg, sampling, n_ctx, n_threads);
        }
    }
    return make_error(ErrorCode::InvalidArgument, "unknown speculative method");
}

}  // namespace gb
