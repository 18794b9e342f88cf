// Small helpers shared by the C++ benchmarks in bench/: wall clock, medians,
// "--flag N" integer options, and loading a model with its error printed.
#pragma once

#include "glassbox/model.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <initializer_list>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace gb::bench {

inline double now_ms() {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

inline double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0.0 : (v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]));
}

// Reads "--name N" pairs from argv[first..] into the named ints; an unknown
// flag is reported and makes it return false.
inline bool int_options(int argc, char ** argv, int first, std::initializer_list<std::pair<const char *, int *>> opts) {
    for (int i = first; i + 1 < argc; i += 2) {
        bool known = false;
        for (const auto & [name, dst] : opts) {
            if (std::string(argv[i]) == name) {
                *dst = std::atoi(argv[i + 1]);
                known = true;
            }
        }
        if (!known) {
            std::fprintf(stderr, "unknown option %s\n", argv[i]);
            return false;
        }
    }
    return true;
}

// The model at path, or nullptr after printing why it did not load.
inline std::shared_ptr<const Model> load_model(const char * path) {
    auto model = Model::load(path);
    if (!model) {
        std::fprintf(stderr, "%s\n", model.error().message.c_str());
        return nullptr;
    }
    return std::shared_ptr<const Model>(std::move(model.value()));
}

}  // namespace gb::bench
