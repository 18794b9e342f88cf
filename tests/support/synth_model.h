// Test helpers shared by the engine and CUDA tests: a synthetic model written to
// a file and loaded (any failure ends the test run with the reason), random tokens.
#pragma once

#include "glassbox/model.h"
#include "glassbox/synth.h"

#include <QtGlobal>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <vector>

namespace gb::test {

inline std::shared_ptr<const Model> write_and_load(const SynthSpec & spec, const std::string & path, int n_threads) {
    Status st = write_synthetic_model(spec, path, {}, n_threads);
    if (!st) qFatal("%s", st.error().to_string().c_str());
    auto m = Model::load(path);
    if (!m) qFatal("%s", m.error().to_string().c_str());
    return *m;
}

// A synthetic preset ("tiny-llama") with a weight mix ("Q4_K_M"), weights seeded
// by seed and the preset + seed_type (default: ftype; the same seed_type with
// another ftype gives the same weights quantized differently), written into dir
// once (a file already there is loaded, never rewritten under a mapped model).
inline std::shared_ptr<const Model> preset_model(const std::string & dir, const std::string & preset, const std::string & ftype,
                                                 uint64_t seed, const std::string & seed_type = {}) {
    auto spec = synth_preset(preset);
    if (!spec) qFatal("%s", spec.error().to_string().c_str());
    auto types = synth_types(ftype);
    if (!types) qFatal("%s", types.error().to_string().c_str());
    spec->types = *types;
    spec->seed = seed + std::hash<std::string>{}(preset + (seed_type.empty() ? ftype : seed_type));
    const std::string path = dir + "/" + preset + "-" + ftype + "-" + seed_type + ".gguf";
    if (!std::filesystem::exists(path)) return write_and_load(*spec, path, 0);
    auto m = Model::load(path);
    if (!m) qFatal("%s", m.error().to_string().c_str());
    return *m;
}

// n ids in [3, n_vocab) (above the special tokens of the synthetic vocabularies)
inline std::vector<Token> random_tokens(const Model & m, int n, std::mt19937 & rng) {
    std::uniform_int_distribution<int> d(3, m.hparams().n_vocab - 1);
    std::vector<Token> t(static_cast<size_t>(n));
    for (auto & x : t) x = d(rng);
    return t;
}

}  // namespace gb::test
