// Agreement of two sets of logits rows ([n, V], reference first): top-1 overall
// and on decisive positions (reference top-1 ahead of its second by >= margin),
// and the KL divergence of the second's softmax from the reference's.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <span>

namespace gb::test {

struct Agreement {
    double top1 = 0.0, mean_kl = 0.0, max_kl = 0.0, top1_decisive = 1.0;
    int    n = 0, n_decisive = 0;
};

inline Agreement compare_logits(std::span<const float> ref, std::span<const float> got, int V, double margin) {
    Agreement a;
    const size_t n = ref.size() / size_t(V);
    int same = 0, dec = 0, dec_same = 0;
    for (size_t t = 0; t < n; ++t) {
        const float * c = ref.data() + t * V;
        const float * g = got.data() + t * V;
        const int ac = int(std::max_element(c, c + V) - c);
        const int ag = int(std::max_element(g, g + V) - g);
        same += ac == ag;
        float second = -INFINITY;
        for (int i = 0; i < V; ++i) if (i != ac) second = std::max(second, c[i]);
        if (c[ac] - second >= margin) { ++dec; dec_same += ac == ag; }
        double mc = -INFINITY, mg = -INFINITY;
        bool finite = true;
        for (int i = 0; i < V; ++i) {
            mc = std::max(mc, double(c[i]));
            mg = std::max(mg, double(g[i]));
            finite = finite && std::isfinite(g[i]);
        }
        double zc = 0.0, zg = 0.0;
        for (int i = 0; i < V; ++i) { zc += std::exp(c[i] - mc); zg += std::exp(g[i] - mg); }
        double kl = 0.0;
        for (int i = 0; i < V; ++i) {
            const double lp = c[i] - mc - std::log(zc), lq = g[i] - mg - std::log(zg);
            kl += std::exp(lp) * (lp - lq);
        }
        if (!finite) kl = INFINITY;
        a.mean_kl += kl;
        a.max_kl = std::max(a.max_kl, kl);
    }
    a.n = int(n);
    a.n_decisive = dec;
    a.top1_decisive = dec ? double(dec_same) / double(dec) : 1.0;
    a.top1 = n ? double(same) / double(n) : 0.0;
    a.mean_kl = n ? a.mean_kl / double(n) : 0.0;
    return a;
}

}  // namespace gb::test
