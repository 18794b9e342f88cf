// The speculative decoding loop: adaptive draft length, one-pass verification
// of a draft chain or token tree (Context::decode_tree, tree attention mask),
// exact acceptance rules, K/V of the accepted path kept with commit_tree(),
// statistics.
#include "glassbox/spec/spec_decoder.h"

#include "spec/draft_controller.h"
#include "spec/target_dist.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <random>
#include <unordered_map>

namespace gb {
namespace {

using Clock = std::chrono::steady_clock;
double ms_between(Clock::time_point a, Clock::time_point b) {
    return std::chrono::duration<double, std::milli>(b - a).count();
}

using spec::Controller;
using spec::keep_first_chain;
using spec::prune_depth;

}  // namespace

struct SpecDecoder::Impl {
    Controller ctl;
    std::mt19937_64 rng;
    CandidateArray cand;
    bool probing = false;
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
    bool off = false;
    Controller c = m_impl->ctl;
    return m_spec ? c.choose(m_cfg, m_cfg.draft_max, &off) : 0;
}

void SpecDecoder::begin(std::span<const Token> tokens) {
    m_tokens.assign(tokens.begin(), tokens.end());
    if (m_spec) m_spec->reset();
}

Status SpecDecoder::step(std::vector<SpecToken> & out, int32_t max_new, int32_t n_logprobs,
                         const std::atomic<bool> * cancel) {
    Impl & im = *m_impl;
    const auto t_step0 = Clock::now();
    const bool greedy = m_sampling.temperature <= 0.0f;
    const int32_t n_vocab = m_target.model().hparams().n_vocab;
    SpecStep st;

    auto emit = [&](Token id, SpecOrigin origin, std::span<const float> row) {
        SpecToken t;
        t.id = id;
        t.origin = origin;
        if (!row.empty()) {
            t.logprob = Sampler::logprob_of(row, id);
            if (n_logprobs > 0) t.top = Sampler::top_logprobs(row, n_logprobs);
        }
        out.push_back(std::move(t));
        m_tokens.push_back(id);
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
        m_stats.plain_step_ms = im.ctl.t_plain;
        ++m_stats.steps;
        m_stats.per_step.push_back(st);
    };

    const int32_t n_past = m_target.n_past();
    // Right after prefill: the first token comes from the prefill logits.
    if (size_t(n_past) == m_tokens.size()) {
        const std::span<const float> row = m_target.logits().subspan(m_target.logits().size() - size_t(n_vocab));
        emit(sample_plain(row), SpecOrigin::Target, row);
        finish();
        return {};
    }
    if (size_t(n_past) + 1 != m_tokens.size()) {
        return make_error(ErrorCode::Internal, "speculative decoder out of step with its context (n_past " +
                                                   std::to_string(n_past) + ", tokens " + std::to_string(m_tokens.size()) + ")");
    }
    const Token pending = m_tokens.back();

    // Draft length: adaptive, capped by the request and the context.
    int32_t k_max = std::min(m_cfg.draft_max, max_new - 1);
    k_max = std::min(k_max, m_target.n_ctx() - n_past - 1);
    bool off = false;
    im.ctl.probing = false;
    const int32_t k = m_spec ? im.ctl.choose(m_cfg, k_max, &off) : 0;
    st.draft_len = k;
    if (off) ++m_stats.off_steps;

    Draft draft;
    if (k > 0) {
        const auto t0 = Clock::now();
        GB_TRY_STATUS(m_spec->propose(m_tokens, k, draft, cancel));
        prune_depth(draft, k);
        st.t_draft_ms = ms_between(t0, Clock::now());
        if (!draft.empty()) Controller::ema(im.ctl.t_draft, st.t_draft_ms / double(draft.depth()));
    }

    if (draft.empty()) {  // plain step: decode the pending token, sample the next
        const Token one[1] = {pending};
        const auto t0 = Clock::now();
        GB_TRY_STATUS(m_target.decode(one, false, cancel));
        Controller::ema(im.ctl.t_plain, ms_between(t0, Clock::now()));
        const std::span<const float> row = m_target.logits();
        emit(sample_plain(row), SpecOrigin::Target, row);
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
    const bool tree_backend = m_target.supports_tree();
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
    ++m_stats.spec_steps;

    // One forward pass over [pending] + draft as a token tree (tree node 0 =
    // the pending token, tree node i + 1 = draft node i). The output head
    // (gemma-3-270m: a 262k x 640 matrix, ~40% of a plain step) costs about the
    // same for 1 to ~16 rows, as it is bound by reading the matrix: small trees
    // get every row at once; larger ones a first-child chain at a time, another
    // head call only when the walk leaves the chain (bench/NOTES.md).
    // row_of[tree node] = its row in the target's logits() (-1: not computed).
    constexpr int32_t kEagerHeadRows = 16;
    std::vector<Token> batch;
    std::vector<int32_t> parents, out_nodes, row_of(size_t(n_nodes) + 1, -1);
    batch.push_back(pending);
    parents.push_back(-1);
    for (int32_t i = 0; i < n_nodes; ++i) {
        batch.push_back(draft.tokens[size_t(i)]);
        parents.push_back(draft.parent[size_t(i)] + 1);
    }
    const int32_t draft_depth = draft.depth();
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

    const auto t_verify0 = Clock::now();
    st.decode_calls = 1;
    if (tree_backend) {
        chain_from(-1);
        if (int32_t(batch.size()) <= kEagerHeadRows && int32_t(out_nodes.size()) < int32_t(batch.size())) {
            // the chain first (its rows keep their order), then the other nodes
            for (int32_t i = 0; i <= n_nodes; ++i) {
                if (row_of[size_t(i)] < 0) {
                    row_of[size_t(i)] = int32_t(out_nodes.size());
                    out_nodes.push_back(i);
                }
            }
        }
        GB_TRY_STATUS(m_target.decode_tree(batch, parents, out_nodes, cancel));
    } else {  // a chain: every row
        GB_TRY_STATUS(m_target.decode(batch, true, cancel));
        for (size_t r = 0; r < row_of.size(); ++r) row_of[r] = int32_t(r);
    }
    int32_t d = 0;       // depth of the current (accepted) node
    int32_t node = -1;   // current node (-1 = root)
    std::vector<int32_t> accepted_path = {0};  // tree nodes kept: the pending token + accepted ones
    std::vector<std::pair<Token, float>> pcur;  // sampling: current target distribution (sparse)
    std::unordered_map<Token, float> pmap;
    for (;;) {
        const std::span<const float> row = row_at(node);
        const int32_t kid0 = node < 0 ? root_first : first_child[size_t(node)];
        if (kid0 >= 0) {
            if (size_t(d) >= m_stats.attempted_at.size()) {
                m_stats.attempted_at.resize(size_t(d) + 1, 0);
                m_stats.accepted_at.resize(size_t(d) + 1, 0);
            }
            ++m_stats.attempted_at[size_t(d)];
        }
        int32_t chosen = -1;
        Token target_tok = -1;
        if (greedy) {
            // Greedy: the target's token is fixed; accept the child that equals it.
            target_tok = spec::greedy_token(row, m_sampling, m_tokens);
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

        if (chosen < 0) {  // correction (some child rejected) or bonus (leaf reached)
            emit(target_tok, kid0 >= 0 ? SpecOrigin::Correction : SpecOrigin::Bonus, row);
            break;
        }
        // accepted
        ++m_stats.accepted_at[size_t(d)];
        ++st.accepted;
        emit(draft.tokens[size_t(chosen)], SpecOrigin::Draft, row);
        ++d;
        node = chosen;
        accepted_path.push_back(chosen + 1);
        if (row_of[size_t(chosen) + 1] < 0) {
            // The walk left the first-child chain: logits of the chosen branch
            // (its hidden states are already computed).
            chain_from(chosen);
            ++st.decode_calls;
            GB_TRY_STATUS(m_target.tree_logits(out_nodes));
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
        obs.tail_tokens.push_back(draft.tokens[size_t(c)]);
        obs.tail_next.push_back(spec::argmax(row_at(c)));
    }
    if (tree_backend) GB_TRY_STATUS(m_target.commit_tree(accepted_path));
    else m_target.truncate(n_past + 1 + d);

    // Controller: acceptance per position, cost per extra verified token.
    for (int32_t i = 0; i < d; ++i) im.ctl.alpha = 0.85 * im.ctl.alpha + 0.15;
    if (m_stats.origins.back() == SpecOrigin::Correction) im.ctl.alpha = 0.85 * im.ctl.alpha;
    if (im.ctl.probing) {  // a failed probe backs off (up to 16x), a useful one resets the interval
        const int32_t base = std::max(1, m_cfg.probe_interval);
        im.ctl.probe_every = d == 0 ? std::min(im.ctl.probe_every * 2, base * 16) : base;
    }
    if (im.ctl.t_plain > 0.0 && draft_depth > 0) im.ctl.observe_verify(double(draft_depth), st.t_verify_ms - im.ctl.t_plain);
    finish();
    obs.tokens = m_tokens;
    obs.n_accepted = d;
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
