// The speculative decoding loop: adaptive draft length, one-pass verification
// of a draft chain or token tree (Context::decode_tree, tree attention mask),
// exact acceptance rules, K/V of the accepted path kept with commit_tree(),
// statistics.
#include "glassbox/spec/spec_decoder.h"

#include "spec/draft_controller.h"
#include "spec/target_dist.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cmath>
#include <random>
#include <unordered_map>

namespace gb {
namespace {

using Clock = std::chrono::steady_clock;
double ms_between(Clock::time_point a, Clock::time_point b) {
    return std::chrono::duration<double, std::milli>(b - a).count();
}

// Chains verify only the head rows the walk is likely to need (GB_SPEC_LAZY_HEAD=0: every row, for A/B runs).
bool lazy_head_enabled() {
    static const bool on = [] {
        const char * e = std::getenv("GB_SPEC_LAZY_HEAD");
        return !(e && *e == '0');
    }();
    return on;
}

using spec::Controller;
using spec::keep_first_chain;
using spec::prune_depth;

}  // namespace

struct SpecDecoder::Impl {
    Controller ctl;
    std::mt19937_64 rng;
    CandidateArray cand;
    double p_leave = 0.3;  // EMA: how often the greedy walk leaves the first-child chain
    bool drafter_timed = false;     // model drafters: one step timed before the first prefill
    bool drafter_useless = false;   // ... and it cannot pay even if always accepted: never started
    double ingest_ms = 0.0;         // model drafters: EMA of ms per token of a catch-up (0: not measured)
};

SpecDecoder::SpecDecoder(Context & target, std::shared_ptr<Speculator> spec, const SpecConfig & cfg,
                         const SamplerParams & sampling)
    : m_target(target), m_spec(std::move(spec)), m_cfg(cfg), m_sampling(sampling), m_impl(std::make_unique<Impl>()) {
    uint64_t seed = sampling.seed;
    if (seed == 0) seed = (uint64_t(std::random_device{}()) << 32) ^ std::random_device{}();
    m_impl->rng.seed(seed ^ 0x5bd1e9955bd1e995ull);
    m_stats.method = m_spec ? m_spec->name() : "none";
}

SpecDecoder::~SpecDecoder() = default;

int32_t SpecDecoder::draft_len() const {
    return m_spec ? m_impl->ctl.last_k : 0;
}

void SpecDecoder::begin(std::span<const Token> tokens) {
    m_tokens.assign(tokens.begin(), tokens.end());
    if (std::getenv("GB_SPEC_TRACE_IDS")) {  // diagnostics: the prompt's ids, then every emitted id (offline policy studies)
        std::fprintf(stderr, "ids-prompt");
        for (Token t : m_tokens) std::fprintf(stderr, " %d", int(t));
        std::fprintf(stderr, "\n");
    }
    if (m_spec) m_spec->reset();
}

Status SpecDecoder::step(std::vector<SpecToken> & out, int32_t max_new, int32_t n_logprobs,
                         const std::atomic<bool> * cancel) {
    Impl & im = *m_impl;
    const auto t_step0 = Clock::now();
    const bool greedy = m_sampling.temperature <= 0.0f;
    const int32_t n_vocab = m_target.model().hparams().n_vocab;
    SpecStep st;
    // Greedy without penalties or top-n log-probabilities needs from a row only
    // its argmax and that token's log-probability: where the backend summarises
    // rows on its device (Context::row_summaries(), the GPU), no row is copied
    // or scanned on the host.
    const bool summaries_do = m_sampling.greedy_argmax() && n_logprobs <= 0;
    std::span<const RowSummary> sums;  // of the rows logits() holds now (empty: read the rows)
    auto refresh_sums = [&]() { sums = summaries_do ? m_target.row_summaries() : std::span<const RowSummary>{}; };

    // row: the token's logits row (may be empty when sum is given); sum: its summary
    auto emit = [&](Token id, SpecOrigin origin, std::span<const float> row, const RowSummary * sum = nullptr) {
        SpecToken t;
        t.id = id;
        t.origin = origin;
        if (sum && sum->argmax == id && n_logprobs <= 0) {
            t.logprob = float(double(sum->max) - double(sum->max) - sum->lse);
        } else if (!row.empty()) {
            t.logprob = Sampler::logprob_of(row, id);
            if (n_logprobs > 0) t.top = Sampler::top_logprobs(row, n_logprobs);
        }
        out.push_back(std::move(t));
        m_tokens.push_back(id);
        static const bool trace_ids = std::getenv("GB_SPEC_TRACE_IDS") != nullptr;
        if (trace_ids) std::fprintf(stderr, "ids-emit %d\n", int(id));
        im.ctl.on_emitted(id);
        m_stats.origins.push_back(origin);
        ++m_stats.emitted;
        ++st.emitted;
        switch (origin) {
            case SpecOrigin::Target:     ++m_stats.n_target; break;
            case SpecOrigin::Draft:      ++m_stats.n_draft; break;
            case SpecOrigin::Correction: ++m_stats.n_correction; break;
            case SpecOrigin::Bonus:      ++m_stats.n_bonus; break;
        }
    };
    auto sample_plain = [&](std::span<const float> row) -> Token {
        if (greedy) return spec::greedy_token(row, m_sampling, m_tokens);
        spec::target_dist(row, m_sampling, m_tokens, im.cand);
        return spec::draw(im.cand, im.rng);
    };
    auto finish = [&]() {
        st.t_verify_ms = ms_between(t_step0, Clock::now()) - st.t_draft_ms;
        m_stats.t_draft_ms += st.t_draft_ms;
        m_stats.t_verify_ms += st.t_verify_ms;
        m_stats.t_total_ms += ms_between(t_step0, Clock::now());
        m_stats.plain_step_ms = im.ctl.costs.t_plain();
        ++m_stats.steps;
        m_stats.per_step.push_back(st);
    };

    const int32_t n_past = m_target.n_past();
    // Right after prefill: the first token comes from the prefill logits.
    if (size_t(n_past) == m_tokens.size()) {
        refresh_sums();
        if (!sums.empty()) {
            emit(sums.back().argmax, SpecOrigin::Target, {}, &sums.back());
        } else {
            const std::span<const float> row = m_target.logits().subspan(m_target.logits().size() - size_t(n_vocab));
            emit(sample_plain(row), SpecOrigin::Target, row);
        }
        finish();
        return {};
    }
    if (size_t(n_past) + 1 != m_tokens.size()) {
        return make_error(ErrorCode::Internal, "speculative decoder out of step with its context (n_past " +
                                                   std::to_string(n_past) + ", tokens " + std::to_string(m_tokens.size()) + ")");
    }
    const Token pending = m_tokens.back();

    // The plan: draft depth (adaptive, capped by the request and the context),
    // chain or tree, lookahead window or not, or a plain step.
    int32_t k_max = std::min(m_cfg.draft_max, max_new - 1);
    k_max = std::min(k_max, m_target.n_ctx() - n_past - 1);
    const bool tree_backend = m_target.supports_tree();
    const bool model_cost = m_spec && m_spec->has_model_cost();
    spec::Plan plan;
    Draft draft;
    static const bool trace = std::getenv("GB_SPEC_TRACE") != nullptr;  // diagnostics: each step's plan on stderr
    if (m_spec && k_max > 0 && !model_cost) {
        // A cheap speculator proposes at full depth every step: the proposal is
        // the controller's shadow (what verification would accept, learned from
        // the tokens this and the next steps emit, speculating or not).
        const auto t0 = Clock::now();
        GB_TRY_STATUS(m_spec->propose(m_tokens, k_max, draft, cancel));
        prune_depth(draft, k_max);
        st.t_draft_ms = ms_between(t0, Clock::now());
        if (!tree_backend) {  // a chain only: aux nodes cannot be decoded
            draft.aux_tokens.clear();
            draft.aux_parent.clear();
            draft.aux_output.clear();
            keep_first_chain(draft);
        }
        im.ctl.shadow_start(draft);
        plan = im.ctl.choose(m_cfg, spec::shape_of(draft), k_max, false);
        if (trace) {
            const spec::DraftShape sh = spec::shape_of(draft);
            std::fprintf(stderr, "k=%d tree=%d win=%d off=%d depth=%d cls=%d first_p=%.2f p0_chain=%.2f p0_tree=%.2f t1=%.1f c2=%.1f c4=%.1f c7=%.1f c13=%.1f p=", plan.k, plan.tree, plan.window, plan.off, sh.depth, sh.cls, sh.first_p,
                         im.ctl.p_first(sh.cls, false, sh.first_p), im.ctl.p_first(sh.cls, true, sh.first_p),
                         im.ctl.costs.cost(1), im.ctl.costs.cost(2), im.ctl.costs.cost(4), im.ctl.costs.cost(7), im.ctl.costs.cost(13));
            for (int i = 0; i < sh.depth; ++i) std::fprintf(stderr, "%.2f ", im.ctl.p(sh.cls, plan.tree, i));
            std::fprintf(stderr, "\n");
        }
        if (plan.k <= 0) {
            draft.clear();
        } else {
            if (!plan.tree) keep_first_chain(draft);
            prune_depth(draft, plan.k);
            if (!plan.window) {
                draft.aux_tokens.clear();
                draft.aux_parent.clear();
                draft.aux_output.clear();
            }
        }
    } else if (m_spec && k_max > 0) {
        // A model drafter: drafting costs compute, so the plan comes first (a
        // chain of k_max as the shape; probes at full depth while off).
        spec::DraftShape s;
        s.depth = s.chain_depth = k_max;
        s.nodes_upto.resize(size_t(k_max) + 1);
        for (int32_t i = 0; i <= k_max; ++i) s.nodes_upto[size_t(i)] = i;
        if (!im.drafter_timed && m_cfg.auto_off && im.ctl.costs.n_obs[1] >= 3) {
            // Before the drafter prefills the prompt (and after three plain steps,
            // the first of which pays for cold caches, so t_plain is known): the
            // cost of one of its steps (timed when the drafter was made); a
            // drafter that could not pay even if every token were accepted is
            // never started (its prefill alone would make the reply slower).
            im.drafter_timed = true;
            const auto t_time0 = Clock::now();
            auto ms = m_spec->step_ms(cancel);
            if (!ms) return ms.error();
            if (*ms > 0.0) {
                im.ctl.model_spent(ms_between(t_time0, Clock::now()), 0, false);  // the timing is a cost of the method too
                Controller::ema(im.ctl.t_draft, *ms);
                im.drafter_useless = !im.ctl.model_can_pay(k_max);
                if (trace) std::fprintf(stderr, "drafter step %.2f ms (timing took %.1f ms), plain %.2f ms: %s\n", *ms, ms_between(t_time0, Clock::now()), im.ctl.costs.t_plain(), im.drafter_useless ? "cannot pay, not started" : "may pay");
            }
        }
        if (m_cfg.auto_off && (!im.drafter_timed || im.drafter_useless)) {
            plan.off = true;
        } else {
            plan = im.ctl.choose(m_cfg, s, k_max, true);
            if (trace && plan.k > 0) std::fprintf(stderr, "model plan k=%d probe=%d cap=%d p0=%.2f p1=%.2f t1=%.1f c2=%.1f c3=%.1f t_draft=%.1f rate %.4f vs plain %.4f\n", plan.k, plan.probe, im.ctl.model_depth_cap(), im.ctl.p(0, false, 0), im.ctl.p(0, false, 1), im.ctl.costs.t_plain(), im.ctl.costs.cost(2), im.ctl.costs.cost(3), im.ctl.t_draft, im.ctl.rate(s, plan.k, false, false, true), 1.0 / std::max(1e-9, im.ctl.costs.t_plain()));
        }
        if (plan.k > 0) {
            // How much of the context the drafter may catch up on: a probe (the
            // drafter has not shown it pays) at most cfg.draft_window tokens, a
            // restart on the sequence's end when it is further behind; a plan
            // that pays the whole context once its catch-up (estimated at the
            // measured ms per caught-up token, or a drafting step each) fits
            // the budget that bounds what speculating may lose, else it keeps
            // the window it has (which grows with the sequence while it is on).
            // Fixed configurations (no auto-off) always see the whole context.
            int32_t window = 0;
            if (m_cfg.auto_off && m_cfg.draft_window > 0) {
                const double t1 = im.ctl.costs.t_plain();
                const double per_tok = im.ingest_ms > 0.0 ? im.ingest_ms : im.ctl.t_draft;
                const double full_steps = t1 > 0.0 ? double(m_tokens.size()) * per_tok / t1 : 0.0;
                window = plan.probe || !im.ctl.affordable(m_cfg, full_steps) ? m_cfg.draft_window : 0;
            }
            m_spec->set_ingest_window(window);
            const auto t0 = Clock::now();
            GB_TRY_STATUS(m_spec->propose(m_tokens, plan.k, draft, cancel));
            prune_depth(draft, plan.k);
            st.t_draft_ms = ms_between(t0, Clock::now());
            st.ingested = m_spec->last_ingested();
            st.probe = plan.probe;
            m_stats.drafter_ingested += st.ingested;
            if (plan.probe) ++m_stats.probes;
            // Drafting cost per depth from steady steps only (a catch-up of a
            // token or two, as while speculating); a longer catch-up gives the
            // cost per caught-up token instead (its one drafting step included).
            if (!draft.empty() && st.ingested <= 2) {
                Controller::ema(im.ctl.t_draft, st.t_draft_ms / double(draft.depth()));
            } else if (!draft.empty()) {
                const double rest = std::max(0.0, st.t_draft_ms - double(draft.depth() - 1) * im.ctl.t_draft);
                Controller::ema(im.ingest_ms, rest / double(st.ingested));
            }
            draft.aux_tokens.clear();
            draft.aux_parent.clear();
            draft.aux_output.clear();
        }
    }
    // The backend verifies at most max_tree_nodes() nodes (pending included)
    // with plain-step bits (CUDA: its decode matvecs); beyond that greedy output
    // could differ, so shed the lookahead window, then branches, then depth.
    const size_t node_cap = size_t(std::max(1, m_target.max_tree_nodes()));
    if (1 + draft.size() + draft.aux_tokens.size() > node_cap) {
        draft.aux_tokens.clear();
        draft.aux_parent.clear();
        draft.aux_output.clear();
    }
    if (1 + draft.size() > node_cap) keep_first_chain(draft);
    if (1 + draft.size() > node_cap) {
        prune_depth(draft, int32_t(node_cap) - 1);
        plan.k = std::min(plan.k, draft.depth());
    }
    st.draft_len = plan.k;
    if (plan.off) ++m_stats.off_steps;

    if (draft.empty() && draft.aux_tokens.empty()) {  // plain step: decode the pending token, sample the next
        const Token one[1] = {pending};
        const auto t0 = Clock::now();
        GB_TRY_STATUS(m_target.decode(one, false, cancel));
        refresh_sums();
        if (!sums.empty()) {
            // the step's whole cost (the summary's launch and copy included), as verification readings have theirs
            im.ctl.costs.observe(1, ms_between(t0, Clock::now()));
            emit(sums.back().argmax, SpecOrigin::Target, {}, &sums.back());
        } else {
            im.ctl.costs.observe(1, ms_between(t0, Clock::now()));
            const std::span<const float> row = m_target.logits();
            emit(sample_plain(row), SpecOrigin::Target, row);
        }
        st.decode_calls = 1;
        finish();
        if (m_spec) {
            SpecObservation obs;
            obs.tokens = m_tokens;
            m_spec->observe(obs);
        }
        return {};
    }

    // ---- verification ----
    // A backend without token trees verifies the first-child chain only.
    if (!tree_backend) keep_first_chain(draft);
    const int32_t n_nodes = int32_t(draft.size());
    std::vector<int32_t> first_child(size_t(n_nodes), -1), next_sibling(size_t(n_nodes), -1), depth(size_t(n_nodes), 0);
    int32_t root_first = -1;
    {
        std::vector<int32_t> last_child(size_t(n_nodes), -1);
        int32_t root_last = -1;
        for (int32_t i = 0; i < n_nodes; ++i) {
            const int32_t p = draft.parent[size_t(i)];
            depth[size_t(i)] = p < 0 ? 1 : depth[size_t(p)] + 1;
            int32_t & fc = p < 0 ? root_first : first_child[size_t(p)];
            int32_t & lc = p < 0 ? root_last : last_child[size_t(p)];
            if (fc < 0) fc = i;
            else next_sibling[size_t(lc)] = i;
            lc = i;
        }
    }
    st.proposed = n_nodes;
    m_stats.proposed += n_nodes;
    if (n_nodes > 0) ++m_stats.spec_steps;

    // One forward pass over [pending] + draft + aux as a token tree (tree node
    // 0 = the pending token, tree node i + 1 = draft node i, tree node
    // n_nodes + 1 + j = aux node j). The output head (gemma-3-270m: a 262k x 640
    // Q8_0 matrix, ~half of a plain step) costs, in units of its 1-row cost,
    // head_cost(n) for n rows (measured with bench_spec_cost on the 2-core dev
    // machine, bench/NOTES.md): the first-child chain's rows are computed with
    // the tree; the other nodes' rows too while the walk leaves the chain often
    // enough to pay for them, else in one more head call when it does.
    // row_of[tree node] = its row in the target's logits() (-1: not computed).
    auto head_cost = [](int32_t n) { return n <= 1 ? 1.0 : n <= 4 ? 1.3 : 1.45 + 0.045 * n; };
    const int32_t n_aux = int32_t(draft.aux_tokens.size());
    std::vector<Token> batch;
    std::vector<int32_t> parents, out_nodes, row_of(size_t(n_nodes) + 1, -1);
    batch.push_back(pending);
    parents.push_back(-1);
    for (int32_t i = 0; i < n_nodes; ++i) {
        batch.push_back(draft.tokens[size_t(i)]);
        parents.push_back(draft.parent[size_t(i)] + 1);
    }
    for (int32_t j = 0; j < n_aux; ++j) {
        const int32_t ap = draft.aux_parent[size_t(j)];
        if (ap >= j || ap < -1) return make_error(ErrorCode::Internal, "speculator: aux node " + std::to_string(j) + " has parent " + std::to_string(ap));
        batch.push_back(draft.aux_tokens[size_t(j)]);
        parents.push_back(ap < 0 ? 0 : n_nodes + 1 + ap);
    }
    auto chain_from = [&](int32_t node) {  // node and its first-child chain (node -1 = the root)
        std::fill(row_of.begin(), row_of.end(), -1);
        out_nodes.clear();
        out_nodes.push_back(node + 1);
        for (int32_t c = node < 0 ? root_first : first_child[size_t(node)]; c >= 0; c = first_child[size_t(c)]) {
            out_nodes.push_back(c + 1);
        }
        for (size_t r = 0; r < out_nodes.size(); ++r) row_of[size_t(out_nodes[r])] = int32_t(r);
    };
    auto row_at = [&](int32_t node) {
        return m_target.logits().subspan(size_t(row_of[size_t(node) + 1]) * size_t(n_vocab), size_t(n_vocab));
    };
    auto sum_at = [&](int32_t node) -> const RowSummary * {  // nullptr: read row_at(node)
        return sums.empty() ? nullptr : &sums[size_t(row_of[size_t(node) + 1])];
    };
    auto argmax_at = [&](int32_t node) { const RowSummary * s = sum_at(node); return s ? s->argmax : spec::argmax(row_at(node)); };

    bool lazy_rows = false;  // the chain's deeper head rows are left for a second head call
    const auto t_verify0 = Clock::now();
    st.decode_calls = 1;
    std::vector<Token> aux_next;
    if (tree_backend) {
        chain_from(-1);
        const int32_t n_other = n_nodes + 1 - int32_t(out_nodes.size());
        const int32_t n_chain = int32_t(out_nodes.size());
        if (n_other > 0 && head_cost(n_chain + n_other) - head_cost(n_chain) < im.p_leave * head_cost(std::min(n_other, 4))) {
            // the chain first (its rows keep their order), then the other nodes
            for (int32_t i = 0; i <= n_nodes; ++i) {
                if (row_of[size_t(i)] < 0) {
                    row_of[size_t(i)] = int32_t(out_nodes.size());
                    out_nodes.push_back(i);
                }
            }
        } else if (n_other == 0 && n_chain > 2 && lazy_head_enabled() && m_target.max_tree_nodes() == INT32_MAX) {
            // A chain: rows only as deep as the walk is likely to get. Rows
            // 0..m-1 check draft depths 0..m-1; row m onwards comes in one more
            // head call (tree_logits, below) when all m are accepted. Pick the m
            // with the least expected head cost, head_cost(m) + reach(m) *
            // head_cost(n_chain - m), reach(m) = p0 p1 ... p(m-1) from the
            // controller (e.g. a 1-token prompt match whose first token is
            // rarely right: one row instead of 13). The CPU Context only (no
            // node cap): there each head row costs a share of the weight pass;
            // the CUDA Context (capped trees) runs every node's row in one pass.
            double best = head_cost(n_chain), reach = 1.0;
            int32_t m_best = n_chain;
            for (int32_t m = 1; m < n_chain; ++m) {
                reach *= m == 1 ? im.ctl.p_first(draft.cls, false, draft.first_p) : im.ctl.p(draft.cls, false, m - 1);
                const double c = head_cost(m) + reach * head_cost(n_chain - m);
                if (c < best) { best = c; m_best = m; }
            }
            if (m_best < n_chain) {
                for (int32_t r = m_best; r < n_chain; ++r) row_of[size_t(out_nodes[size_t(r)])] = -1;
                out_nodes.resize(size_t(m_best));
                lazy_rows = true;
            }
        }
        const size_t first_aux_row = out_nodes.size();
        for (int32_t j = 0; j < n_aux; ++j) {
            if (draft.aux_output[size_t(j)]) out_nodes.push_back(n_nodes + 1 + j);
        }
        GB_TRY_STATUS(m_target.decode_tree(batch, parents, out_nodes, cancel));
        refresh_sums();
        if (n_aux > 0) {  // Jacobi outputs, before a later head call replaces logits()
            aux_next.assign(size_t(n_aux), -1);
            size_t r = first_aux_row;
            for (int32_t j = 0; j < n_aux; ++j) {
                if (!draft.aux_output[size_t(j)]) continue;
                aux_next[size_t(j)] = !sums.empty() ? sums[r].argmax : spec::argmax(m_target.logits().subspan(r * size_t(n_vocab), size_t(n_vocab)));
                ++r;
            }
        }
    } else {  // a chain: every row
        GB_TRY_STATUS(m_target.decode(batch, true, cancel));
        refresh_sums();
        for (size_t r = 0; r < row_of.size(); ++r) row_of[r] = int32_t(r);
    }
    // What the cost model learns: the target's forward passes only (as the
    // plain step's reading), not the walk (argmax, log-probabilities and
    // bookkeeping per emitted token: a per-token cost a plain step pays too).
    double t_fwd_ms = ms_between(t_verify0, Clock::now());
    bool left_chain = false;  // the walk took a node that is not its parent's first child
    int32_t d = 0;       // depth of the current (accepted) node
    int32_t node = -1;   // current node (-1 = root)
    std::vector<int32_t> accepted_path = {0};  // tree nodes kept: the pending token + accepted ones
    std::vector<std::pair<Token, float>> pcur;  // sampling: current target distribution (sparse)
    std::unordered_map<Token, float> pmap;
    for (;;) {
        const RowSummary * sum = sum_at(node);
        const std::span<const float> row = sum ? std::span<const float>{} : row_at(node);
        const int32_t kid0 = node < 0 ? root_first : first_child[size_t(node)];
        if (kid0 >= 0) {
            if (size_t(d) >= m_stats.attempted_at.size()) {
                m_stats.attempted_at.resize(size_t(d) + 1, 0);
                m_stats.accepted_at.resize(size_t(d) + 1, 0);
            }
            ++m_stats.attempted_at[size_t(d)];
        }
        const int32_t depth_here = d;
        int32_t chosen = -1;
        Token target_tok = -1;
        if (greedy) {
            // Greedy: the target's token is fixed; accept the child that equals it.
            target_tok = sum ? sum->argmax : spec::greedy_token(row, m_sampling, m_tokens);
            for (int32_t c = kid0; c >= 0; c = next_sibling[size_t(c)]) {
                if (draft.tokens[size_t(c)] == target_tok) { chosen = c; break; }
            }
            if (m_rule == AcceptRule::AlwaysAccept && kid0 >= 0) chosen = kid0;
        } else {
            // Sampling: modified rejection sampling (Leviathan et al. 2023; SpecInfer's
            // multi-candidate form for trees). p = the target's distribution after the
            // same sampler stages (penalties, top-k, top-p, min-p, temperature).
            // For each child x in order, with q its draft distribution (a point mass
            // on x for deterministic guesses):
            //   accept x with probability min(1, p(x) / q(x));
            //   otherwise p <- norm(max(0, p - q)) and try the next child.
            // When no child is accepted, the token is drawn from the final p. Each
            // emitted token is then distributed exactly as p: P(x) = q(x)min(1,p/q)
            // + (1 - sum_y min(p(y), q(y))) * max(0, p(x) - q(x)) / Z = p(x).
            spec::target_dist(row, m_sampling, m_tokens, im.cand);
            pcur.clear();
            for (const Candidate & c : im.cand.items) pcur.emplace_back(c.id, c.p);
            std::uniform_real_distribution<double> uni(0.0, 1.0);
            for (int32_t c = kid0; c >= 0 && chosen < 0; c = next_sibling[size_t(c)]) {
                const Token x = draft.tokens[size_t(c)];
                const bool has_q = !draft.q.empty() && !draft.q[size_t(c)].empty();
                pmap.clear();
                for (const auto & [id, p] : pcur) pmap[id] = p;
                const float px = pmap.count(x) ? pmap[x] : 0.0f;
                float qx = 1.0f;
                if (has_q) {
                    qx = 0.0f;
                    for (const auto & [id, q] : draft.q[size_t(c)]) if (id == x) { qx = q; break; }
                }
                const double a = qx > 0.0f ? std::min(1.0, double(px) / double(qx)) : 1.0;
                if (m_rule == AcceptRule::AlwaysAccept || uni(im.rng) < a) { chosen = c; break; }
                if (m_rule == AcceptRule::IgnoreResidual) continue;  // broken on purpose: keeps p unchanged
                // p <- norm(max(0, p - q))
                if (has_q) {
                    for (const auto & [id, q] : draft.q[size_t(c)]) {
                        auto it = pmap.find(id);
                        if (it != pmap.end()) it->second = std::max(0.0f, it->second - q);
                    }
                } else {
                    pmap[x] = std::max(0.0f, px - 1.0f);
                }
                double z = 0.0;
                for (auto & [id, p] : pcur) { p = pmap[id]; z += p; }
                if (z <= 0.0) {  // p was entirely covered by q (numerically): fall back to p without x
                    spec::target_dist(row, m_sampling, m_tokens, im.cand);
                    pcur.clear();
                    for (const Candidate & cc : im.cand.items) if (cc.id != x) pcur.emplace_back(cc.id, cc.p);
                    z = 0.0;
                    for (const auto & pr : pcur) z += pr.second;
                    if (pcur.empty()) { pcur.emplace_back(x, 1.0f); z = 1.0; }
                }
                for (auto & pr : pcur) pr.second = float(pr.second / z);
            }
            if (chosen < 0) target_tok = spec::draw(pcur, im.rng);
        }

        if (kid0 >= 0 && model_cost) im.ctl.observe_walk(draft.cls, depth_here, chosen >= 0);
        if (chosen < 0) {  // correction (some child rejected) or bonus (leaf reached)
            emit(target_tok, kid0 >= 0 ? SpecOrigin::Correction : n_nodes > 0 ? SpecOrigin::Bonus : SpecOrigin::Target,
                 row.empty() && sum->argmax != target_tok ? row_at(node) : row, sum);
            break;
        }
        // accepted
        ++m_stats.accepted_at[size_t(d)];
        ++st.accepted;
        const Token acc_tok = draft.tokens[size_t(chosen)];
        emit(acc_tok, SpecOrigin::Draft, row.empty() && sum->argmax != acc_tok ? row_at(node) : row, sum);
        ++d;
        if (chosen != kid0) left_chain = true;
        node = chosen;
        accepted_path.push_back(chosen + 1);
        if (row_of[size_t(chosen) + 1] < 0) {
            // The walk left the first-child chain: logits of the chosen branch
            // (its hidden states are already computed).
            chain_from(chosen);
            ++st.decode_calls;
            const auto t_head0 = Clock::now();
            GB_TRY_STATUS(m_target.tree_logits(out_nodes));
            refresh_sums();
            t_fwd_ms += ms_between(t_head0, Clock::now());
        }
    }
    st.t_verify_ms = ms_between(t_verify0, Clock::now());
    m_stats.accepted += st.accepted;

    // Keep the K/V of the accepted path (compacted into place), forget the
    // rest; the emitted correction/bonus token is pending (decoded with the
    // next draft). The tail for the speculator: the first-child chain below the
    // last accepted node (rejected or unverified) with the target's argmax
    // after each (its rows are computed: the current chain contains it).
    SpecObservation obs;
    for (int32_t c = node < 0 ? root_first : first_child[size_t(node)]; c >= 0; c = first_child[size_t(c)]) {
        if (row_of[size_t(c) + 1] < 0) break;  // a row left out (lazy head rows): the tail ends here
        obs.tail_tokens.push_back(draft.tokens[size_t(c)]);
        obs.tail_next.push_back(argmax_at(c));
    }
    if (tree_backend) GB_TRY_STATUS(m_target.commit_tree(accepted_path));
    else m_target.truncate(n_past + 1 + d);

    // Controller: the cost of a forward pass over this many tokens; a model
    // drafter's probe outcome.
    if (n_nodes + 1 > int32_t(draft.depth()) + 1) im.p_leave = 0.9 * im.p_leave + (left_chain ? 0.1 : 0.0);  // trees only
    if (model_cost) {
        // What the step cost against plain steps for its tokens (the drafter's
        // catch-up included): the budget that gates probes.
        im.ctl.model_spent(st.t_draft_ms + t_fwd_ms, d + 1, plan.probe);
    }
    if (plan.probe) {
        // A probe was worth it if its tokens per ms beat a plain step's with
        // drafting as it costs while speculating (a catch-up of one or two
        // tokens: a window restart's prefill is a probe's own cost, which the
        // budget above accounts); else the probes back off, so a drafter that
        // is accepted but too slow stops costing.
        const double t1 = im.ctl.costs.t_plain();
        const double draft_ms = st.ingested <= 2 ? st.t_draft_ms : im.ctl.t_draft * double(std::max(1, draft.depth()));
        const double step_ms = draft_ms + t_fwd_ms;
        im.ctl.probe_done(m_cfg, t1 > 0.0 && step_ms > 0.0 && double(d + 1) / step_ms > 1.0 / t1);
    }
    // (A verify with head rows left out is not a reading of cost(n): the
    // controller plans with full verifies, which lazy rows only make cheaper.)
    if (!lazy_rows) im.ctl.costs.observe(int32_t(batch.size()), t_fwd_ms);
    if (trace) std::fprintf(stderr, "  verify n=%d rows=%d%s accepted=%d calls=%d fwd %.1f ms, %.1f ms (%.2f plain)\n", int(batch.size()), int(out_nodes.size()), lazy_rows ? " (lazy)" : "", d, st.decode_calls, t_fwd_ms, st.t_verify_ms, st.t_verify_ms / std::max(1e-9, im.ctl.costs.t_plain()));
    if (trace && model_cost) std::fprintf(stderr, "  drafter%s: ingested %d, draft %.1f ms, t_draft %.2f ms, ingest %.2f ms/token, debt %.2f plain steps of budget %.2f\n", plan.probe ? " probe" : "", st.ingested, st.t_draft_ms, im.ctl.t_draft, im.ingest_ms, im.ctl.debt(), m_cfg.probe_budget * double(im.ctl.emitted()));
    finish();
    obs.tokens = m_tokens;
    obs.n_accepted = d;
    obs.aux_next = std::move(aux_next);
    m_spec->observe(obs);
    return {};
}

Result<SpecGenerateResult> speculative_generate(Context & target, std::unique_ptr<Speculator> spec,
                                                std::span<const Token> prompt, int32_t max_new,
                                                const SpecConfig & cfg, const SamplerParams & sampling,
                                                bool stop_at_eog, const std::atomic<bool> * cancel) {
    if (prompt.empty()) return make_error(ErrorCode::InvalidArgument, "empty prompt");
    target.truncate(0);
    GB_TRY_STATUS(target.decode(prompt, false, cancel));
    SpecDecoder dec(target, std::move(spec), cfg, sampling);
    dec.begin(prompt);
    SpecGenerateResult res;
    const Tokenizer & tok = target.model().tokenizer();
    std::vector<SpecToken> out;
    while (int32_t(res.tokens.size()) < max_new) {
        out.clear();
        GB_TRY_STATUS(dec.step(out, max_new - int32_t(res.tokens.size()), 0, cancel));
        bool stop = false;
        for (const SpecToken & t : out) {
            res.tokens.push_back(t.id);
            res.origins.push_back(t.origin);
            if (stop_at_eog && tok.is_eog(t.id)) { stop = true; break; }
        }
        if (stop || target.n_past() + 1 >= target.n_ctx()) break;
    }
    // The context holds exactly prompt + emitted tokens except the last.
    target.truncate(std::min<int32_t>(target.n_past(), int32_t(prompt.size() + res.tokens.size()) - 1));
    res.stats = dec.stats();
    return res;
}

}  // namespace gb
