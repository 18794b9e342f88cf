// Speculative decoding: the configuration a request carries (method + options),
// the origin of each emitted token, and per-step / per-position statistics.
// Kept small and Qt-free so session.h can include it.
#pragma once

#include "glassbox/result.h"
#include "glassbox/tokenizer.h"

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace gb {

class Model;
class Context;
struct ContextParams;

enum class SpecMethod { None, DraftModel, PromptLookup, Lookahead, SelfDraft };
const char * spec_method_name(SpecMethod m);  // "none" "draft" "lookup" "lookahead" "selfdraft"
bool parse_spec_method(std::string_view name, SpecMethod * out);

// Where an emitted token came from (same order as the inspector's gb::ui::TokenOrigin:
// Sampled, DraftAccepted, DraftCorrected, Bonus).
enum class SpecOrigin : uint8_t {
    Target,      // sampled from the target with no draft offered (plain decoding step)
    Draft,       // a drafted token the target accepted
    Correction,  // the target's own token after it rejected a draft token
    Bonus,       // the target's extra token after the whole draft branch was accepted
};
const char * spec_origin_name(SpecOrigin o);

struct SpecConfig {
    SpecMethod method = SpecMethod::None;
    int32_t draft_max = 12;         // longest draft (tree depth); the controller picks up to this
    int32_t draft_min = 1;          // adaptive length never goes below this while speculating
    bool    adaptive = true;        // adapt the draft length (and chain/tree, lookahead window) to acceptance and measured cost
    bool    auto_off = true;        // fall back to plain steps while speculation would be slower
    int32_t probe_interval = 16;    // model drafters, while off: one full-depth probe every N plain steps
                                    // (doubling while probes fail; lookup/lookahead learn for free from shadow drafts)
    int32_t draft_window = 16;      // model drafters (adaptive + auto-off): a probe feeds the drafter at most this many
                                    // tokens (+ the first as an attention sink); 0 = the whole context
    double  probe_budget = 0.01;    // model drafters: what speculating may lose (timing, probes, speculative steps,
                                    // in plain steps) as a share of the tokens emitted so far; over it, plain steps
                                    // only until the share has grown; <= 0: no bound

    // DraftModel: a loaded model (preferred) or a path loaded on first use.
    std::shared_ptr<const Model> draft_model;
    std::string draft_model_path;
    int32_t draft_threads = 0;      // 0 = the target's thread count

    // PromptLookup: n-gram sizes tried from ngram_max down to ngram_min.
    int32_t ngram_min = 1;
    int32_t ngram_max = 3;
    int32_t max_branches = 3;       // distinct continuations verified as a token tree (1 = chain)

    // Lookahead (Jacobi): window of lookahead_window positions x (lookahead_ngram - 1)
    // levels decoded every step with the verification branch; n-gram size N of
    // the pool; G = lookahead_candidates pool n-grams verified per step.
    int32_t lookahead_window = 5;
    int32_t lookahead_ngram = 4;
    int32_t lookahead_candidates = 3;
    bool    lookahead_seed_prompt = true;  // also put the prompt's n-grams in the pool

    // SelfDraft: layers of the target skipped by the drafter (empty: a default set).
    std::vector<int32_t> skip_layers;

    // Makes the drafter's Context (draft model, self-draft), e.g. on the GPU;
    // empty = Context::create (CPU). Session fills it with its own context_factory.
    std::function<Result<std::unique_ptr<Context>>(std::shared_ptr<const Model>, const ContextParams &)> context_factory;
};

// One verification step.
struct SpecStep {
    int32_t draft_len = 0;      // draft length budget used (0 = plain step)
    int32_t proposed = 0;       // draft tokens (tree nodes) proposed
    int32_t accepted = 0;       // draft tokens accepted
    int32_t emitted = 0;        // tokens emitted (accepted + correction/bonus)
    int32_t decode_calls = 0;   // target calls: 1 decode_tree + 1 output-head batch per branch switch
    double  t_draft_ms = 0.0;
    double  t_verify_ms = 0.0;
    int32_t ingested = 0;       // model drafters: tokens the drafter decoded to catch up before drafting
    bool    probe = false;      // model drafters: a probe taken while speculation was off
};

struct SpecStats {
    std::string method = "none";
    int64_t steps = 0;              // target steps (each emits >= 1 token)
    int64_t spec_steps = 0;         // steps that verified a non-empty draft
    int64_t proposed = 0;
    int64_t accepted = 0;
    int64_t emitted = 0;
    int64_t n_target = 0, n_draft = 0, n_correction = 0, n_bonus = 0;  // emitted tokens by origin
    int64_t off_steps = 0;          // plain steps taken because auto-off judged speculation slower
    int64_t probes = 0;             // model drafters: speculative steps taken as probes while off
    int64_t drafter_ingested = 0;   // model drafters: tokens decoded to catch up (prefill / window restarts), not drafting
    std::vector<int64_t> attempted_at;  // [d]: steps whose draft reached depth d (offered a token there)
    std::vector<int64_t> accepted_at;   // [d]: ... and the target accepted a token at depth d
    double t_draft_ms = 0.0, t_verify_ms = 0.0, t_total_ms = 0.0;
    double plain_step_ms = 0.0;     // measured cost of one plain target step (EMA; 0 if never measured)
    std::vector<SpecStep> per_step;
    std::vector<SpecOrigin> origins;   // per emitted token

    double acceptance_rate() const { return proposed ? double(accepted) / double(proposed) : 0.0; }
    double mean_accepted_len() const { return spec_steps ? double(accepted) / double(spec_steps) : 0.0; }
    double tokens_per_step() const { return steps ? double(emitted) / double(steps) : 0.0; }
    double tokens_per_s() const { return t_total_ms > 0 ? 1000.0 * double(emitted) / t_total_ms : 0.0; }
    // Estimate of plain decoding speed from the measured plain step cost.
    double plain_tokens_per_s() const { return plain_step_ms > 0 ? 1000.0 / plain_step_ms : 0.0; }
    std::string to_json(bool with_steps = false) const;
};

}  // namespace gb
