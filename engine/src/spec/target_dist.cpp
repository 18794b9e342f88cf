// Mirror of Sampler's stage chain that returns the distribution instead of a
// draw. tst_speculative checks it draws exactly what Sampler draws for equal seeds.
#include "spec/target_dist.h"

#include "cpu/row_ops.h"

#include <algorithm>
#include <cmath>
#include <unordered_map>

namespace gb::spec {
namespace {

// Penalty stage: counts over the last penalty_last_n tokens of history.
void apply_penalties(CandidateArray & cur, const SamplerParams & p, std::span<const Token> history) {
    if (!p.has_penalties() || history.empty()) return;
    const size_t n = std::min(history.size(), size_t(p.penalty_last_n));
    std::unordered_map<Token, int32_t> counts;
    for (size_t i = history.size() - n; i < history.size(); ++i) ++counts[history[i]];
    // Candidates are in id order before any sorting stage.
    for (const auto & [id, cnt] : counts) {
        if (id < 0 || size_t(id) >= cur.items.size()) continue;
        Candidate & c = cur.items[size_t(id)];
        if (p.repeat_penalty != 1.0f) c.logit = c.logit > 0 ? c.logit / p.repeat_penalty : c.logit * p.repeat_penalty;
        c.logit -= float(cnt) * p.frequency_penalty + p.presence_penalty;
    }
    cur.sorted = false;
}

void fill(CandidateArray & cur, std::span<const float> logits) {
    cur.items.resize(logits.size());
    for (size_t i = 0; i < logits.size(); ++i) cur.items[i] = Candidate{Token(i), logits[i], 0.0f};
    cur.sorted = false;
}

bool before(const Candidate & a, const Candidate & b) { return a.logit > b.logit || (a.logit == b.logit && a.id < b.id); }

}  // namespace

void target_dist(std::span<const float> logits, const SamplerParams & p, std::span<const Token> history,
                 CandidateArray & cur) {
    fill(cur, logits);
    apply_penalties(cur, p, history);
    // top-k
    if (p.top_k > 0) {
        const size_t k = std::min<size_t>(size_t(p.top_k), cur.items.size());
        if (k != 0 && k != cur.items.size()) {
            if (!cur.sorted) {
                std::partial_sort(cur.items.begin(), cur.items.begin() + long(k), cur.items.end(), before);
                cur.sorted = true;
            }
            cur.items.resize(k);
        }
    }
    // top-p: smallest prefix whose mass reaches p
    if (p.top_p < 1.0f) {
        cur.softmax();
        double cum = 0.0;
        size_t keep = cur.items.size();
        for (size_t i = 0; i < cur.items.size(); ++i) {
            cum += cur.items[i].p;
            if (cum >= p.top_p) { keep = i + 1; break; }
        }
        cur.items.resize(std::max<size_t>(keep, 1));
    }
    // min-p
    if (p.min_p > 0.0f) {
        cur.sort();
        if (!cur.items.empty()) {
            const float threshold = cur.items.front().logit + std::log(p.min_p);
            size_t keep = 1;
            while (keep < cur.items.size() && cur.items[keep].logit >= threshold) ++keep;
            cur.items.resize(keep);
        }
    }
    // temperature
    for (Candidate & c : cur.items) c.logit /= p.temperature;
    cur.softmax();
}

Token greedy_token(std::span<const float> logits, const SamplerParams & p, std::span<const Token> history) {
    if (!p.has_penalties()) return argmax(logits);
    CandidateArray cur;
    fill(cur, logits);
    apply_penalties(cur, p, history);
    const auto best = std::max_element(cur.items.begin(), cur.items.end(), [](const Candidate & a, const Candidate & b) {
        return a.logit < b.logit || (a.logit == b.logit && a.id > b.id);
    });
    return best->id;
}

Token argmax(std::span<const float> logits) {
    return logits.empty() ? Token(0) : Token(cpu::row_argmax(logits.data(), int64_t(logits.size())));
}

Token draw(const CandidateArray & dist, std::mt19937_64 & rng) {
    std::uniform_real_distribution<double> uni(0.0, 1.0);
    const double r = uni(rng);
    double cum = 0.0;
    for (const Candidate & c : dist.items) {
        cum += c.p;
        if (r < cum) return c.id;
    }
    return dist.items.back().id;
}

Token draw(const std::vector<std::pair<Token, float>> & dist, std::mt19937_64 & rng) {
    std::uniform_real_distribution<double> uni(0.0, 1.0);
    const double r = uni(rng);
    double cum = 0.0;
    for (const auto & [id, p] : dist) {
        cum += p;
        if (r < cum) return id;
    }
    return dist.back().first;
}

}  // namespace gb::spec
