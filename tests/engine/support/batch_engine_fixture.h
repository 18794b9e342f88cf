// Fixtures shared by the BatchEngine tests (tst_batch_engine, tst_batch_engine_spec)
// and the speculative decoding tests: sampler and speculation settings, bitwise comparison, the
// synthetic preset models written once per run, an engine and a run-to-completion
// loop that checks the scheduler's invariants and the token budget after every step.
#pragma once

#include "synth_model.h"
#include "glassbox/kv/batch_engine.h"
#include "glassbox/sampler.h"
#include "glassbox/synth.h"

#include <QObject>
#include <QString>
#include <QTemporaryDir>
#include <QtGlobal>

#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <vector>

namespace gb::test {

inline SamplerParams greedy() {
    SamplerParams p;
    p.temperature = 0.0f;
    p.repeat_penalty = 1.0f;
    return p;
}

inline SamplerParams seeded(uint64_t seed) {
    SamplerParams p;
    p.temperature = 0.9f;
    p.top_k = 40;
    p.seed = seed;
    return p;
}

inline bool same_bits(std::span<const float> a, std::span<const float> b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// Speculation with a fixed draft length (no timing-driven adaptation, never
// switched off), so tests are deterministic; branches: max_branches and lookahead_candidates.
inline SpecConfig fixed_spec(SpecMethod m, int32_t draft_max, int32_t branches = 3) {
    SpecConfig c;
    c.method = m;
    c.draft_max = draft_max;
    c.max_branches = c.lookahead_candidates = branches;
    c.adaptive = c.auto_off = false;
    return c;
}

// The synth_preset models, each written to a temporary folder and loaded on
// first use; preset p gets the seed seed_base + hash(p).
class PresetModels {
  public:
    explicit PresetModels(uint64_t seed_base) : m_seed_base(seed_base) {}
    bool valid() const { return m_dir.isValid(); }
    std::shared_ptr<const Model> operator()(const std::string & preset) {
        if (auto it = m_models.find(preset); it != m_models.end()) return it->second;
        auto spec = synth_preset(preset);
        if (!spec) qFatal("%s", spec.error().to_string().c_str());
        spec->seed = m_seed_base + std::hash<std::string>{}(preset);
        const std::string path = m_dir.filePath(QString::fromStdString(preset + ".gguf")).toStdString();
        return m_models[preset] = write_and_load(*spec, path, 1);
    }

  private:
    QTemporaryDir m_dir;
    uint64_t      m_seed_base;
    std::map<std::string, std::shared_ptr<const Model>> m_models;
};

// Base of a test class on the preset models: the models and random prompts from a seeded generator.
class PresetModelTest : public QObject {
  protected:
    PresetModelTest(uint64_t model_seed_base, uint32_t rng_seed) : model(model_seed_base), m_rng(rng_seed) {}
    std::vector<Token> random_tokens(const Model & m, int n) { return gb::test::random_tokens(m, n, m_rng); }

    PresetModels model;
    std::mt19937 m_rng;
};

// BatchEngineParams with the settings the tests vary (max_running 0: the default).
inline kv::BatchEngineParams engine_params(int32_t page_size, int32_t n_pages, int32_t max_tokens_per_step, int32_t max_running = 0) {
    kv::BatchEngineParams p;
    p.page_size = page_size;
    p.n_pages = n_pages;
    p.max_tokens_per_step = max_tokens_per_step;
    if (max_running > 0) p.max_running = max_running;
    return p;
}

// A BatchEngine (2 threads unless p says otherwise); any failure ends the test run.
inline std::unique_ptr<kv::BatchEngine> engine(std::shared_ptr<const Model> m, kv::BatchEngineParams p) {
    if (p.n_threads == 0) p.n_threads = 2;
    auto e = kv::BatchEngine::create(std::move(m), p);
    if (!e) qFatal("%s", e.error().to_string().c_str());
    return std::move(*e);
}

// What run_all saw: the requests' ids, every step's events, preemptions and
// prefix-cache hits at admission.
struct RunLog {
    std::vector<kv::RequestId>   ids;
    std::vector<kv::EngineEvent> events;
    int n_preempted = 0;
    int prefix_hits = 0;
};

// Submits all requests (none may be impossible) and runs them concurrently to
// completion; returns each one's generated tokens.
inline std::vector<std::vector<Token>> run_all(kv::BatchEngine & e, const std::vector<kv::GenRequest> & reqs, RunLog * log = nullptr) {
    RunLog l;
    for (const auto & r : reqs) {
        auto a = e.submit(r);
        if (a.verdict == kv::Admission::Impossible) qFatal("unexpected impossible: %s", a.reason.c_str());
        l.ids.push_back(a.id);
    }
    int listener_hits = 0;
    e.set_listener([&](const kv::EngineEvent & ev) {
        if (ev.kind == kv::EngineEvent::Kind::Admitted) listener_hits += ev.prefix_hit_tokens;
    });
    Status st = e.run_to_completion([&](const kv::StepReport & rep) {
        l.n_preempted += int(rep.metrics.preempted.size());
        for (const auto & a : rep.metrics.admitted) l.prefix_hits += a.prefix_hit_tokens;
        if (auto inv = e.scheduler().check_invariants(); !inv) qFatal("invariants: %s", inv.error().message.c_str());
        if (rep.metrics.n_decode_tokens + rep.metrics.n_prefill_tokens > e.params().max_tokens_per_step) qFatal("over budget");
        l.events.insert(l.events.end(), rep.events.begin(), rep.events.end());
    });
    if (!st) qFatal("%s", st.error().to_string().c_str());
    e.set_listener({});
    // the listener sees the same hits as the step reports (first admissions)
    if (l.n_preempted == 0 && listener_hits != l.prefix_hits) qFatal("listener prefix hits %d != reported %d", listener_hits, l.prefix_hits);
    std::vector<std::vector<Token>> out;
    for (kv::RequestId id : l.ids) out.push_back(e.request(id)->generated);
    if (log) *log = std::move(l);
    return out;
}

}  // namespace gb::test
