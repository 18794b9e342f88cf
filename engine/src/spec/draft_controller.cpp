// The speculation policy (see draft_controller.h): shadow walks of full-depth
// proposals -> acceptance per depth, online cost per forward size -> the plan
// with the most expected tokens per millisecond, or a plain step.
#include "spec/draft_controller.h"

#include <algorithm>

namespace gb::spec {

void DepthAcceptance::add(int32_t d, bool ok) {
    if (d < 0 || d >= kMaxDepth) return;
    seen[d] = kKeep * seen[d] + 1.0;
    hit[d] = kKeep * hit[d] + (ok ? 1.0 : 0.0);
}

double DepthAcceptance::p(int32_t d) const { return p(d, kPrior, kPriorW); }

double DepthAcceptance::p(int32_t d, double prior, double prior_w) const {
    d = std::clamp(d, 0, kMaxDepth - 1);
    return (hit[d] + prior * prior_w) / (seen[d] + prior_w);
}

double Controller::pooled(bool tree, int32_t d) const {
    // Depth d's prior is depth d - 1's estimate (depth 0: kPrior): a depth
    // seen rarely (deep ones) is taken to be like the one above it, not a coin
    // flip, so a run that has seen long drafts accepted drafts long at once.
    const DepthAcceptance & all = tree ? m_tree_all : m_chain_all;
    d = std::clamp(d, 0, DepthAcceptance::kMaxDepth - 1);
    double est = DepthAcceptance::kPrior;
    for (int32_t i = 0; i <= d; ++i) est = all.p(i, est, DepthAcceptance::kPriorW);
    return est;
}

double Controller::p(int32_t cls, bool tree, int32_t d) const {
    const DepthAcceptance & one = tree ? m_tree[clamp_cls(cls)] : m_chain[clamp_cls(cls)];
    return one.p(d, pooled(tree, d), kClassPriorW);
}

double Controller::p_first(int32_t cls, bool tree, double first_p) const {
    if (first_p < 0.0) return p(cls, tree, 0);
    const DepthAcceptance & one = tree ? m_tree[clamp_cls(cls)] : m_chain[clamp_cls(cls)];
    return one.p(0, std::min(pooled(tree, 0), first_p), kClassPriorW);
}

double Controller::expected(int32_t cls, bool tree, int32_t k, double first_p) const {
    double e = 1.0, reach = 1.0;
    for (int32_t d = 0; d < k; ++d) {
        reach *= d == 0 ? p_first(cls, tree, first_p) : p(cls, tree, d);
        e += reach;
    }
    return e;
}

void CostModel::observe(int32_t n, double t_ms) {
    if (n < 1 || t_ms <= 0.0) return;
    n = std::min(n, kMaxN);
    // One forward over n tokens is never dearer than n plain steps: a larger
    // reading is the machine's noise (another process had the cores), clamped
    // so one spike does not rule a size out until it goes stale.
    if (n > 1 && ms[1] > 0.0) t_ms = std::min(t_ms, double(n) * ms[1]);
    readings[n][n_obs[n] % kReadings] = t_ms;
    ++n_obs[n];
    const int32_t k = std::min(n_obs[n], kReadings);
    double r[kReadings];
    std::copy(readings[n], readings[n] + k, r);
    std::sort(r, r + k);
    ms[n] = k == 2 ? 0.5 * (r[0] + r[1]) : r[k / 2];  // 1 reading: it; 2: their mean; 3: the median
    last_obs[n] = ++clock;
}

double CostModel::estimate(int32_t n) const {
    const double t1 = ms[1];
    if (t1 <= 0.0) return 0.0;
    n = std::clamp(n, 1, kMaxN);
    if (n_obs[n] > 0) return ms[n];
    int32_t lo = 1, hi = -1, top = 1;
    for (int32_t i = 2; i <= kMaxN; ++i) {
        if (n_obs[i] == 0) continue;
        top = i;
        if (i < n) lo = i;
        else if (hi < 0) hi = i;
    }
    if (hi > 0) return ms[lo] + (ms[hi] - ms[lo]) * double(n - lo) / double(hi - lo);
    // beyond every measured size: the mean slope from a plain step (a verify
    // cost curve is concave in n, so this errs on the expensive side)
    const double slope = top > 1 ? std::max(0.0, (ms[top] - t1) / double(top - 1)) : kPriorSlope * t1;
    return ms[top] + slope * double(n - top);
}

double CostModel::cost(int32_t n) const {
    const double est = estimate(n);
    n = std::clamp(n, 1, kMaxN);
    if (est <= 0.0 || (n_obs[n] > 0 && clock - last_obs[n] <= kStale)) return est;
    // Not measured yet: optimistic (the nearest measured size below plus
    // kExploreSlope plain steps per token), so a size that might pay gets
    // tried once and then is known; sizes that cannot pay even so never are.
    int32_t lo = 1;
    for (int32_t i = n - 1; i >= 1; --i) {
        if (n_obs[i] > 0) { lo = i; break; }
    }
    return std::min(est, ms[lo] + kExploreSlope * ms[1] * double(n - lo));
}

DraftShape shape_of(const Draft & d) {
    DraftShape s;
    s.cls = d.cls;
    s.n_aux = int32_t(d.aux_tokens.size());
    s.first_p = d.first_p;
    std::vector<int32_t> depth(d.size());
    std::vector<int32_t> kids(d.size() + 1, 0);  // [parent + 1]
    for (size_t i = 0; i < d.size(); ++i) {
        const int32_t p = d.parent[i];
        depth[i] = p < 0 ? 1 : depth[size_t(p)] + 1;
        s.depth = std::max(s.depth, depth[i]);
        if (++kids[size_t(p + 1)] > 1) s.branched = true;
    }
    for (int32_t want = -1, i = 0; i < int32_t(d.size()); ++i) {
        if (d.parent[size_t(i)] == want) { ++s.chain_depth; want = i; }
    }
    s.nodes_upto.assign(size_t(s.depth) + 1, 0);
    for (int32_t x : depth) ++s.nodes_upto[size_t(x)];
    for (size_t k = 1; k < s.nodes_upto.size(); ++k) s.nodes_upto[k] += s.nodes_upto[k - 1];
    return s;
}

void Controller::shadow_start(const Draft & d) {
    if (d.empty()) return;
    Walk w;
    w.tokens = d.tokens;
    w.cls = clamp_cls(d.cls);
    w.first_child.assign(d.size(), -1);
    w.next_sibling.assign(d.size(), -1);
    std::vector<int32_t> last(d.size(), -1);
    int32_t root_last = -1;
    for (int32_t i = 0; i < int32_t(d.size()); ++i) {
        const int32_t p = d.parent[size_t(i)];
        int32_t & fc = p < 0 ? w.root_first : w.first_child[size_t(p)];
        int32_t & lc = p < 0 ? root_last : last[size_t(p)];
        if (fc < 0) fc = i;
        else w.next_sibling[size_t(lc)] = i;
        lc = i;
    }
    w.chain_node = w.tree_node = -1;
    if (m_walks.size() >= 64) m_walks.pop_front();
    m_walks.push_back(std::move(w));
}

void Controller::on_emitted(Token t) {
    ++m_emitted;
    for (Walk & w : m_walks) {
        // tree: any child equal to t (what the greedy walk over a token tree accepts)
        if (w.tree_node != -2) {
            const int32_t c0 = w.tree_node < 0 ? w.root_first : w.first_child[size_t(w.tree_node)];
            if (c0 < 0) {
                w.tree_node = -2;  // leaf: the draft ends here
            } else {
                int32_t hit = -1;
                for (int32_t c = c0; c >= 0; c = w.next_sibling[size_t(c)]) {
                    if (w.tokens[size_t(c)] == t) { hit = c; break; }
                }
                m_tree[w.cls].add(w.depth, hit >= 0);
                m_tree_all.add(w.depth, hit >= 0);
                w.tree_node = hit >= 0 ? hit : -2;
            }
        }
        // chain: the first child only
        if (w.chain_node != -2) {
            const int32_t c0 = w.chain_node < 0 ? w.root_first : w.first_child[size_t(w.chain_node)];
            if (c0 < 0) {
                w.chain_node = -2;
            } else {
                const bool ok = w.tokens[size_t(c0)] == t;
                m_chain[w.cls].add(w.depth, ok);
                m_chain_all.add(w.depth, ok);
                w.chain_node = ok ? c0 : -2;
            }
        }
        ++w.depth;
    }
    while (!m_walks.empty() && m_walks.front().tree_node == -2 && m_walks.front().chain_node == -2) m_walks.pop_front();
}

void Controller::observe_walk(int32_t cls, int32_t d, bool ok) {
    m_chain[clamp_cls(cls)].add(d, ok);
    m_tree[clamp_cls(cls)].add(d, ok);
    m_chain_all.add(d, ok);
    m_tree_all.add(d, ok);
}

double Controller::rate(const DraftShape & s, int32_t k, bool tree, bool window, bool model_cost) const {
    const double t1 = costs.t_plain();
    if (t1 <= 0.0) return 0.0;
    if (k <= 0) return 1.0 / t1;
    k = std::min(k, std::max(1, tree ? s.depth : s.chain_depth));
    const int32_t nodes = tree && size_t(k) < s.nodes_upto.size() ? s.nodes_upto[size_t(k)] : k;
    const int32_t n = 1 + nodes + (window ? s.n_aux : 0);
    const double e = expected(s.cls, tree, k, s.first_p);
    return e / (costs.cost(n) + (model_cost ? double(k) * t_draft : 0.0));
}

Plan Controller::choose(const SpecConfig & cfg, const DraftShape & s, int32_t k_max, bool model_cost) {
    Plan best;
    const int32_t kmax = std::min(k_max, s.depth);
    last_k = 0;
    if (kmax <= 0) return best;  // nothing proposed: a plain step (not an auto-off choice)
    const bool can_tree = s.branched && cfg.max_branches > 1;
    const bool has_window = s.n_aux > 0;
    if (!cfg.adaptive && !cfg.auto_off) {  // fixed: everything proposed
        best.k = kmax;
        best.tree = can_tree;
        best.window = has_window;
        last_k = best.k;
        return best;
    }
    if (costs.t_plain() <= 0.0) {  // measure one plain step first
        best.off = cfg.auto_off;
        if (!cfg.auto_off) best.k = std::min(kmax, std::max(1, cfg.draft_min));
        last_k = best.k;
        return best;
    }
    const double plain_rate = rate(s, 0, false, false, model_cost);
    double best_rate = 0.0;
    const int32_t k_lo = cfg.adaptive ? 1 : kmax;
    const int32_t k_hi = model_cost && cfg.adaptive ? std::min(kmax, model_depth_cap()) : kmax;
    for (int32_t k = k_lo; k <= k_hi; ++k) {
        for (int tree = 0; tree <= (can_tree ? 1 : 0); ++tree) {
            const double r = rate(s, k, tree != 0, false, model_cost);
            if (r > best_rate) { best_rate = r; best.k = k; best.tree = tree != 0; }
        }
    }
    if (cfg.adaptive) best.k = std::max(best.k, std::min(k_hi, std::max(1, cfg.draft_min)));
    if (has_window) {
        // The window's value (future pool n-grams) is not in the rate: keep it
        // while it costs at most kWindowShare more than the step without it.
        const double with = rate(s, best.k, best.tree, true, model_cost);
        best.window = with * (1.0 + kWindowShare) >= best_rate;
    }
    // A model drafter whose speculating has already lost its budget (debt
    // above cfg.probe_budget of the tokens emitted: its estimates were wrong,
    // e.g. verify costs read under load) waits until the budget has grown.
    bool pays = best_rate > plain_rate * kMargin && (!model_cost || affordable(cfg, 0.0));
    // A model drafter turning speculation on after plain steps first catches
    // up on what it missed (a restart on its window): like a probe it waits
    // for the budget and counts as one (its loss goes into the estimate).
    const bool entry = pays && model_cost && cfg.auto_off && m_plain_run > 0;
    if (entry && !probe_affordable(cfg)) pays = false;
    if (pays || !cfg.auto_off) {
        m_plain_run = 0;
        best.probe = entry;
        last_k = best.k;
        return best;
    }
    // Speculation would be slower. Cheap speculators keep learning from their
    // shadow walks at no cost; model drafters probe now and then, at the depth
    // cap (full depth while the drafter is accepted, one token while it is not).
    if (model_cost) {
        if (m_probe_every == 0) m_probe_every = std::max(1, cfg.probe_interval);
        if (++m_plain_run >= m_probe_every && probe_affordable(cfg)) {
            m_plain_run = 0;
            Plan p;
            p.k = cfg.adaptive ? std::min(kmax, model_depth_cap()) : kmax;
            p.probe = true;
            last_k = p.k;
            return p;
        }
    }
    Plan off;
    off.off = true;
    return off;
}

bool Controller::model_can_pay(int32_t k_max) const {
    const double t1 = costs.t_plain();
    if (t1 <= 0.0 || t_draft <= 0.0) return true;
    for (int32_t k = 1; k <= k_max; ++k) {
        if (double(k + 1) / (costs.estimate(k + 1) + double(k) * t_draft) > kMargin / t1) return true;
    }
    return false;
}

int32_t Controller::model_reach() const {
    int32_t d = 0;
    while (d < DepthAcceptance::kMaxDepth && m_chain_all.hit[d] >= 0.5) ++d;  // about one recent acceptance at each
    return d;
}

void Controller::probe_done(const SpecConfig & cfg, bool useful) {
    const int32_t base = std::max(1, cfg.probe_interval);
    m_probe_every = useful ? base : std::min(std::max(base, m_probe_every) * 2, base * 16);
}

void Controller::model_spent(double ms, int32_t emitted, bool probe) {
    const double t1 = costs.t_plain();
    if (t1 <= 0.0 || ms < 0.0) return;
    const double loss = ms / t1 - double(emitted);
    m_debt += loss;
    if (probe) m_probe_loss = m_probe_loss < 0.0 ? std::max(0.0, loss) : 0.5 * m_probe_loss + 0.5 * std::max(0.0, loss);
}

double Controller::probe_loss_estimate(const SpecConfig & cfg) const {
    if (m_probe_loss >= 0.0) return m_probe_loss;
    const double t1 = costs.t_plain();
    if (t1 <= 0.0) return 0.0;
    const int32_t w = cfg.draft_window > 0 ? cfg.draft_window : 16;  // no window: the context's length, unknown here
    return std::max(0.0, (double(w + 1) * kIngestShare * t_draft + costs.estimate(2)) / t1 - 1.0);
}

bool Controller::affordable(const SpecConfig & cfg, double steps) const {
    if (cfg.probe_budget <= 0.0) return true;
    return m_debt + steps <= cfg.probe_budget * double(m_emitted);
}

bool Controller::probe_affordable(const SpecConfig & cfg) const { return affordable(cfg, probe_loss_estimate(cfg)); }

void prune_depth(Draft & d, int32_t k) {
    std::vector<int32_t> depth(d.size()), remap(d.size(), -1);
    Draft out;
    out.cls = d.cls;
    out.first_p = d.first_p;
    for (size_t i = 0; i < d.size(); ++i) {
        const int32_t p = d.parent[i];
        depth[i] = p < 0 ? 1 : depth[size_t(p)] + 1;
        if (depth[i] > k || (p >= 0 && remap[size_t(p)] < 0)) continue;
        remap[i] = out.add(p < 0 ? -1 : remap[size_t(p)], d.tokens[i]);
        if (!d.q.empty()) out.q.push_back(std::move(d.q[i]));
    }
    out.aux_tokens = std::move(d.aux_tokens);  // the lookahead window is not a draft node
    out.aux_parent = std::move(d.aux_parent);
    out.aux_output = std::move(d.aux_output);
    d = std::move(out);
}

void keep_first_chain(Draft & d) {
    Draft out;
    out.cls = d.cls;
    out.first_p = d.first_p;
    int32_t want_parent = -1, last = -1;
    for (size_t i = 0; i < d.size(); ++i) {
        if (d.parent[i] != want_parent) continue;
        last = out.add(last, d.tokens[i]);
        if (!d.q.empty()) out.q.push_back(std::move(d.q[i]));
        want_parent = int32_t(i);
    }
    out.aux_tokens = std::move(d.aux_tokens);
    out.aux_parent = std::move(d.aux_parent);
    out.aux_output = std::move(d.aux_output);
    d = std::move(out);
}

}  // namespace gb::spec
