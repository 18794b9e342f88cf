// Test helpers shared by the engine tests: a synthetic model written to a file
// and loaded (any failure ends the test run with the reason), random tokens.
#pragma once

#include "glassbox/model.h"
#include "glassbox/synth.h"

#include <QtGlobal>

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

// n ids in [3, n_vocab) (above the special tokens of the synthetic vocabularies)
inline std::vector<Token> random_tokens(const Model & m, int n, std::mt19937 & rng) {
    std::uniform_int_distribution<int> d(3, m.hparams().n_vocab - 1);
    std::vector<Token> t(static_cast<size_t>(n));
    for (auto & x : t) x = d(rng);
    return t;
}

}  // namespace gb::test
