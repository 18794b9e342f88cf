// The speculation policy shared by SpecDecoder (single stream) and
// kv::BatchEngine (per request): acceptance per draft depth learned from
// "shadow" walks of full-depth proposals, verification cost per batch size
// measured online, and the plan (draft depth, chain or tree, lookahead window
// or not, or a plain step) with the most expected tokens per millisecond.
// Plus the draft pruning helpers.
#pragma once

#include "glassbox/spec/speculator.h"

#include <algorithm>
#include <cstdint>
#include <deque>
#include <span>
#include <vector>

namespace gb::spec {

// Conditional acceptance per depth (the target accepts a token at depth d
// given it accepted every one above): decayed counts with a Beta prior, so a
// few observations move it and old ones fade.
struct DepthAcceptance {
    static constexpr int32_t kMaxDepth = 64;
    static constexpr double kKeep = 0.85;    // decay per observation at a depth (~7 recent ones count)
    static constexpr double kPrior = 0.5;    // prior acceptance (Controller: at depth 0; deeper, the depth above's estimate) ...
    static constexpr double kPriorW = 0.5;   // ... worth half an observation
    double hit[kMaxDepth] = {};
    double seen[kMaxDepth] = {};
    void add(int32_t d, bool ok);
    double p(int32_t d) const;                               // with the Beta(kPrior) prior
    double p(int32_t d, double prior, double prior_w) const;  // with a given prior
};

// Milliseconds of one target forward pass over n tokens (n = 1: a plain step;
// a verification: pending token + draft nodes + lookahead window nodes),
// measured online: per n the median of the last 3 readings (the mean of the
// first two; one slow reading under machine load does not outlive two more;
// not the lower median: biased low, it made 2-token verifies look as cheap
// as a plain step on open prompts; a reading above n plain steps is clamped
// to that), linear between measured sizes, beyond the
// largest with the mean slope from n = 1 (a prior slope before any verification);
// a size not measured yet (or not for a while: load changes) is taken
// optimistically until it is (exploration).
struct CostModel {
    static constexpr int32_t kMaxN = 160;
    static constexpr double kPriorSlope = 0.25;  // extra plain steps per token before any measurement
    static constexpr int32_t kReadings = 3;  // readings kept per size
    double ms[kMaxN + 1] = {};                // the estimate per size (median of the readings)
    double readings[kMaxN + 1][kReadings] = {};
    int32_t n_obs[kMaxN + 1] = {};
    int64_t last_obs[kMaxN + 1] = {};  // clock of the latest observation per size
    int64_t clock = 0;                 // observations so far
    static constexpr int64_t kStale = 48;  // a size not measured for this many observations is explored again
    void observe(int32_t n, double t_ms);
    static constexpr double kExploreSlope = 0.1;  // unmeasured sizes: optimistic extra plain steps per token
    double cost(int32_t n) const;       // what choices use: estimate(), optimistic where not measured; 0 while no plain step is measured
    double estimate(int32_t n) const;   // measured, else interpolated / extrapolated
    double t_plain() const { return ms[1]; }
};

// What a proposal looks like to the controller.
struct DraftShape {
    int32_t depth = 0;                 // longest branch
    int32_t chain_depth = 0;           // the first-child chain's length
    int32_t cls = 0;                   // Draft::cls
    int32_t n_aux = 0;                 // lookahead window nodes
    double  first_p = -1.0;            // Draft::first_p (< 0: none)
    bool    branched = false;          // more than one continuation somewhere
    std::vector<int32_t> nodes_upto;   // [k]: tree nodes at depth <= k (k = 0 .. depth)
};
DraftShape shape_of(const Draft & d);

struct Plan {
    int32_t k = 0;         // draft depth (0 = plain step)
    bool tree = false;     // verify the whole (pruned) tree, else its first-child chain
    bool window = false;   // keep the lookahead window (aux nodes)
    bool off = false;      // a plain step because speculation would be slower
    bool probe = false;    // speculating to learn, or turning on again after plain steps (model drafters only)
};

class Controller {
  public:
    static constexpr int32_t kClasses = 8;
    // A plan must beat a plain step's tokens per ms by this factor.
    static constexpr double kMargin = 1.05;
    // The lookahead window is kept while it adds at most this share to the step's cost.
    static constexpr double kWindowShare = 0.10;

    // --- acceptance ---
    // Cheap speculators (prompt lookup, lookahead): the step's full-depth
    // proposal, walked on the tokens emitted from now on (speculating or not).
    // For greedy decoding that walk is exactly what verification would
    // accept; for sampling with deterministic drafts it has the same
    // distribution (a drafted child is accepted with probability p(x)).
    void shadow_start(const Draft & d);
    void on_emitted(Token t);
    // Model drafters (no free proposal): the verification walk's outcome at depth d.
    void observe_walk(int32_t cls, int32_t d, bool ok);
    // Acceptance at depth d of drafts of class cls: the class's counts with
    // the all-classes estimate as their prior (worth kClassPriorW
    // observations), so a class seen a few times is not taken at its word.
    static constexpr double kClassPriorW = 2.0;
    double p(int32_t cls, bool tree, int32_t d) const;
    // The all-classes estimate at depth d, with depth d - 1's as its prior.
    double pooled(bool tree, int32_t d) const;
    // Depth 0's acceptance for a draft whose speculator estimates its first
    // token at first_p (< 0: none): as p(cls, tree, 0), but the class's prior
    // (the all-classes estimate) capped at first_p. A class seen rarely (e.g.
    // prompt lookup's 1-token matches whose occurrences disagree) otherwise
    // borrows the acceptance of the classes that dominate the pool (long
    // matches, near 1 in a copy), and drafts 10-12 tokens whose first is
    // mostly wrong (edit-code: ~2 plain steps lost each).
    double p_first(int32_t cls, bool tree, double first_p) const;
    // Expected tokens emitted by a step drafting k depths: 1 + p0 + p0 p1 + ...
    // (p0 = p_first(cls, tree, first_p)).
    double expected(int32_t cls, bool tree, int32_t k, double first_p = -1.0) const;

    // --- cost ---
    CostModel costs;
    double t_draft = 0.0;  // ms per drafted depth (model drafters; EMA)

    // --- the plan ---
    // s: the full-depth proposal's shape (model drafters: a chain of k_max);
    // model_cost: drafting costs t_draft per depth and there is no shadow.
    Plan choose(const SpecConfig & cfg, const DraftShape & s, int32_t k_max, bool model_cost);
    // The expected tokens per ms of a plan (for tests and stats).
    double rate(const DraftShape & s, int32_t k, bool tree, bool window, bool model_cost) const;
    // Model drafters: a probe's outcome (a useless one doubles the interval, up to 16x).
    void probe_done(const SpecConfig & cfg, bool useful);
    // Model drafters (adaptive): the deepest plan or probe is twice the depths
    // recently accepted from the top (2 x model_reach(), at least 1), so a
    // drafter whose tokens are rejected costs one drafted token a probe, not
    // k_max, and a good one reaches full depth in a few steps (1, 2, 4, ...).
    int32_t model_reach() const;
    int32_t model_depth_cap() const { return std::max(1, 2 * model_reach()); }
    // Model drafters: whether drafting at t_draft ms a token could beat a plain
    // step by kMargin at some depth 1..k_max even with every drafted token
    // accepted (verify costs as measured, else interpolated / extrapolated).
    // True while no plain step or drafting time is known.
    bool model_can_pay(int32_t k_max) const;

    // Model drafters: what speculating has cost, in plain steps. Every
    // speculative step of a model drafter (probe or not) and the drafter's
    // timing add (ms / t_plain - tokens emitted) to debt() (negative: time
    // gained). A probe is taken only while debt() plus the next probe's
    // expected loss stays within cfg.probe_budget of the tokens emitted so far
    // (on_emitted), so probes of a drafter that does not pay cost at most that
    // share of the reply (plus one probe's misestimate); and while the debt is
    // above that share, no plan speculates either (a drafter that pays has a
    // negative debt: its steps gain time). A plan that turns a model drafter
    // on after plain steps is a probe too (Plan::probe): it pays a catch-up.
    void model_spent(double ms, int32_t emitted, bool probe);
    double debt() const { return m_debt; }
    // The next probe's expected loss in plain steps: the recent probes' (each
    // at least 0); before any probe, a restart on cfg.draft_window + 1 tokens
    // at kIngestShare of a drafting step each and a 2-token verify, less the
    // token it emits.
    static constexpr double kIngestShare = 0.25;  // a token of a batched catch-up / a one-token drafting step (measured 0.18-0.27, Q2_K copy, CPU)
    double probe_loss_estimate(const SpecConfig & cfg) const;
    bool probe_affordable(const SpecConfig & cfg) const;
    // Whether a cost of `steps` plain steps (e.g. the drafter's catch-up on
    // the whole context) fits the budget now.
    bool affordable(const SpecConfig & cfg, double steps) const;
    int64_t emitted() const { return m_emitted; }

    int32_t last_k = 0;
    static void ema(double & v, double x, double w = 0.3) { v = v == 0.0 ? x : (1 - w) * v + w * x; }

  private:
    static int32_t clamp_cls(int32_t c) { return c < 0 ? 0 : c >= kClasses ? kClasses - 1 : c; }
    struct Walk {
        std::vector<Token> tokens;
        std::vector<int32_t> first_child, next_sibling;
        int32_t root_first = -1;
        int32_t cls = 0;
        int32_t chain_node = -2, tree_node = -2;  // -1 = at the root, -2 = finished
        int32_t depth = 0;
    };
    DepthAcceptance m_chain[kClasses], m_tree[kClasses], m_chain_all, m_tree_all;
    std::deque<Walk> m_walks;
    int32_t m_plain_run = 0, m_probe_every = 0;
    double m_debt = 0.0;         // model_spent
    double m_probe_loss = -1.0;  // EMA of the probes' losses (>= 0); -1: no probe yet
    int64_t m_emitted = 0;       // on_emitted calls
};

// Keeps only nodes at depth <= k (parents precede children).
void prune_depth(Draft & d, int32_t k);
// Keeps only the first-child chain (parents precede children); aux nodes too.
void keep_first_chain(Draft & d);

}  // namespace gb::spec
