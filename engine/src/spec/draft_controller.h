// The adaptive draft-length controller and draft pruning helpers of the
// speculative decoder, shared by SpecDecoder (single stream) and
// kv::BatchEngine (speculation per request inside continuous batching).
#pragma once

#include "glassbox/spec/speculator.h"

#include <algorithm>
#include <cstdint>
#include <vector>

namespace gb::spec {

// Draft length controller. Expected tokens per step with draft depth k and
// per-depth acceptance a: E(k) = 1 + a + ... + a^k. Cost: a plain step
// t_plain, verification's overhead over it t_fixed + k t_extra (fitted to the
// measured (depth, overhead) pairs: the output head's cost is nearly flat in
// rows, the body's grows per node), each drafted depth t_draft.
// k maximises E(k) / C(k); k = 0 means a plain step is the better deal.
struct Controller {
    double alpha = 0.7;           // EMA of per-depth acceptance
    double t_plain = 0.0;         // ms, EMA (0 = not measured yet)
    double t_fixed = 0.0;         // ms of verification overhead independent of depth
    double t_extra = 0.0;         // ms per unit of draft depth
    double t_draft = 0.0;         // ms per drafted depth
    bool   have_extra = false;
    double s0 = 0, sx = 0, sy = 0, sxx = 0, sxy = 0;  // decayed sums of (depth, overhead)

    // One verification: draft depth x, overhead y = t_verify - t_plain (ms).
    void observe_verify(double x, double y) {
        constexpr double keep = 0.85;
        s0 = keep * s0 + 1; sx = keep * sx + x; sy = keep * sy + y; sxx = keep * sxx + x * x; sxy = keep * sxy + x * y;
        const double mx = sx / s0, my = sy / s0, var = sxx / s0 - mx * mx;
        t_extra = var > 0.25 ? (sxy / s0 - mx * my) / var : 0.0;
        t_fixed = my - t_extra * mx;
        if (t_extra < 0.0 || t_fixed < 0.0 || var <= 0.25) {  // one depth seen (or a bad fit): proportional
            t_fixed = 0.0;
            t_extra = std::max(0.0, sxy / std::max(1e-9, sxx));
        }
        have_extra = true;
    }
    int32_t plain_run = 0;        // consecutive plain steps chosen by auto-off
    int32_t probe_every = 0;      // current probe interval (doubles while probes fail)
    bool    probing = false;      // the step being run is a probe

    static void ema(double & v, double x, double w = 0.3) { v = v == 0.0 ? x : (1 - w) * v + w * x; }

    double expected(int32_t k) const {
        double e = 0.0, ak = 1.0;
        for (int32_t i = 0; i <= k; ++i) { e += ak; ak *= alpha; }
        return e;
    }
    double cost(int32_t k) const { return t_plain + t_fixed + k * (t_extra + t_draft); }

    // Returns the draft length for the next step; *off: auto-off chose plain.
    int32_t choose(const SpecConfig & cfg, int32_t k_max, bool * off) {
        *off = false;
        if (k_max <= 0) return 0;
        if (!cfg.adaptive && !cfg.auto_off) return k_max;
        if (t_plain == 0.0) return 0;  // measure one plain step first
        int32_t best = 0;
        double best_rate = 1.0 / t_plain;
        for (int32_t k = 1; k <= k_max; ++k) {
            const double rate = expected(k) / std::max(1e-6, cost(k));
            if (rate > best_rate * 1.0001) { best_rate = rate; best = k; }
        }
        if (!have_extra) best = std::max(best, std::min(k_max, 2));  // no verify cost measured yet: probe
        if (!cfg.adaptive) best = best > 0 ? k_max : 0;
        if (best == 0) {
            if (!cfg.auto_off) return std::max(1, std::min(cfg.draft_min, k_max));
            if (probe_every == 0) probe_every = std::max(1, cfg.probe_interval);
            if (++plain_run >= probe_every) {  // probe: acceptance may have changed
                plain_run = 0;
                probing = true;
                return std::max(1, std::min(cfg.draft_min, k_max));
            }
            *off = true;
            return 0;
        }
        plain_run = 0;
        return std::max(best, std::min(cfg.draft_min, k_max));
    }
};

// Keeps only nodes at depth <= k (parents precede children).
inline void prune_depth(Draft & d, int32_t k) {
    std::vector<int32_t> depth(d.size()), remap(d.size(), -1);
    Draft out;
    for (size_t i = 0; i < d.size(); ++i) {
        const int32_t p = d.parent[i];
        depth[i] = p < 0 ? 1 : depth[size_t(p)] + 1;
        if (depth[i] > k || (p >= 0 && remap[size_t(p)] < 0)) continue;
        remap[i] = out.add(p < 0 ? -1 : remap[size_t(p)], d.tokens[i]);
        if (!d.q.empty()) out.q.push_back(std::move(d.q[i]));
    }
    d = std::move(out);
}

// Keeps only the first-child chain (parents precede children).
inline void keep_first_chain(Draft & d) {
    Draft out;
    int32_t want_parent = -1, last = -1;
    for (size_t i = 0; i < d.size(); ++i) {
        if (d.parent[i] != want_parent) continue;
        last = out.add(last, d.tokens[i]);
        if (!d.q.empty()) out.q.push_back(std::move(d.q[i]));
        want_parent = int32_t(i);
    }
    d = std::move(out);
}

}  // namespace gb::spec
