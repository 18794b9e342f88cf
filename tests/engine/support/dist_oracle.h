// The independent oracle of the sampled speculative decoding tests
// (tst_speculative, tst_batch_engine_spec): the exact joint distribution of the
// first three tokens under top-k sampling, enumerated with a Context, and a
// chi-square goodness-of-fit p-value for observed samples against it.
#pragma once

#include "glassbox/model.h"

#include <QtGlobal>

#include <algorithm>
#include <cmath>
#include <map>
#include <span>
#include <utility>
#include <vector>

namespace gb::test {

// Regularized upper incomplete gamma Q(a, x) (series / continued fraction): the chi-square p-value.
inline double gamma_q(double a, double x) {
    if (x <= 0) return 1.0;
    const double lg = std::lgamma(a);
    if (x < a + 1) {
        double sum = 1.0 / a, term = sum;
        for (int n = 1; n < 1000; ++n) {
            term *= x / (a + n);
            sum += term;
            if (term < sum * 1e-15) break;
        }
        return 1.0 - sum * std::exp(-x + a * std::log(x) - lg);
    }
    double b = x + 1 - a, c = 1e300, d = 1 / b, h = d;
    for (int i = 1; i < 1000; ++i) {
        const double an = -i * (i - a);
        b += 2;
        d = an * d + b;
        if (std::fabs(d) < 1e-300) d = 1e-300;
        c = b + an / c;
        if (std::fabs(c) < 1e-300) c = 1e-300;
        d = 1 / d;
        const double del = d * c;
        h *= del;
        if (std::fabs(del - 1) < 1e-15) break;
    }
    return std::exp(-x + a * std::log(x) - lg) * h;
}

// Chi-square goodness of fit of n observed samples; cells with expected count
// < 5 are pooled, with the outcomes the oracle calls impossible. bins (if
// given) receives the number of cells.
inline double chi_square_p(const std::map<std::vector<Token>, double> & expected_p, const std::map<std::vector<Token>, int> & observed,
                           int n, int * bins_out = nullptr) {
    double stat = 0.0, pooled_e = 0.0, pooled_o = 0.0;
    int bins = 0;
    int seen = 0;
    for (const auto & [k, p] : expected_p) {
        const double e = p * n;
        auto it = observed.find(k);
        const double o = it == observed.end() ? 0.0 : it->second;
        seen += int(o);
        if (e < 5) {
            pooled_e += e;
            pooled_o += o;
            continue;
        }
        stat += (o - e) * (o - e) / e;
        ++bins;
    }
    pooled_o += n - seen;  // outcomes the oracle says are impossible
    if (pooled_e > 0 || pooled_o > 0) {
        const double e = std::max(pooled_e, 1e-9);
        stat += (pooled_o - e) * (pooled_o - e) / e;
        ++bins;
    }
    if (bins_out) *bins_out = bins;
    return gamma_q((bins - 1) / 2.0, stat / 2.0);
}

// Top-k + temperature sampling's distribution: softmax over the k largest logits.
inline std::vector<std::pair<Token, double>> top_k_dist(std::span<const float> logits, int k, float temp = 1.0f) {
    std::vector<Token> idx(logits.size());
    for (size_t i = 0; i < idx.size(); ++i) idx[i] = Token(i);
    std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), [&](Token a, Token b) {
        return logits[size_t(a)] > logits[size_t(b)] || (logits[size_t(a)] == logits[size_t(b)] && a < b);
    });
    double z = 0.0;
    std::vector<std::pair<Token, double>> out;
    for (int i = 0; i < k; ++i) {
        const double e = std::exp((double(logits[size_t(idx[i])]) - logits[size_t(idx[0])]) / temp);
        out.emplace_back(idx[i], e);
        z += e;
    }
    for (auto & pr : out) pr.second /= z;
    return out;
}

// The exact joint distribution of the three tokens top-k sampling (temperature
// 1) continues prompt with, by enumeration with ctx (left holding some branch).
inline std::map<std::vector<Token>, double> first_three_dist(Context & ctx, const std::vector<Token> & prompt, int k) {
    std::map<std::vector<Token>, double> expect;
    auto decode = [&](std::span<const Token> toks) {
        if (!ctx.decode(toks, false)) qFatal("first_three_dist: decode failed");
    };
    const int32_t n = int32_t(prompt.size());
    ctx.truncate(0);
    decode(prompt);
    const std::vector<float> l0(ctx.logits().begin(), ctx.logits().end());
    for (auto [t1, p1] : top_k_dist(l0, k)) {
        ctx.truncate(n);
        decode(std::span<const Token>(&t1, 1));
        const std::vector<float> l1(ctx.logits().begin(), ctx.logits().end());
        for (auto [t2, p2] : top_k_dist(l1, k)) {
            ctx.truncate(n + 1);
            decode(std::span<const Token>(&t2, 1));
            for (auto [t3, p3] : top_k_dist(ctx.logits(), k)) expect[{t1, t2, t3}] = p1 * p2 * p3;
        }
    }
    return expect;
}

}  // namespace gb::test
