// Sampler chain stages and the chain itself.
#include "glassbox/sampler.h"

#include "cpu/row_ops.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <limits>
#include <numeric>
#include <unordered_map>

namespace gb {

void CandidateArray::sort() {
    if (sorted) return;
    std::sort(items.begin(), items.end(), [](const Candidate & a, const Candidate & b) {
        return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
    });
    sorted = true;
}

void CandidateArray::softmax() {
    sort();
    if (items.empty()) return;
    const float max_l = items.front().logit;
    double sum = 0.0;
    for (Candidate & c : items) {
        c.p = std::exp(c.logit - max_l);
        sum += c.p;
    }
    for (Candidate & c : items) c.p = static_cast<float>(c.p / sum);
}

namespace {

// Repetition (llama.cpp rule), frequency and presence penalties over the last
// penalty_last_n accepted tokens.
class PenaltyStage final : public SamplerStage {
  public:
    PenaltyStage(float repeat, float freq, float presence, int32_t last_n)
        : m_repeat(repeat), m_freq(freq), m_presence(presence), m_last_n(std::max(0, last_n)) {}
    const char * name() const override { return "penalties"; }
    void apply(CandidateArray & cur) override {
        if (m_counts.empty()) return;
        for (Candidate & c : cur.items) {
            auto it = m_counts.find(c.id);
            if (it == m_counts.end()) continue;
            if (m_repeat != 1.0f) c.logit = c.logit > 0 ? c.logit / m_repeat : c.logit * m_repeat;
            c.logit -= float(it->second) * m_freq + m_presence;
        }
        cur.sorted = false;
    }
    void accept(Token id) override {
        if (m_last_n == 0) return;
        m_history.push_back(id);
        ++m_counts[id];
        if (int32_t(m_history.size()) > m_last_n) {
            const Token old = m_history.front();
            m_history.pop_front();
            if (--m_counts[old] == 0) m_counts.erase(old);
        }
    }
    void reset() override { m_history.clear(); m_counts.clear(); }

  private:
    float m_repeat, m_freq, m_presence;
    int32_t m_last_n;
    std::deque<Token> m_history;
    std::unordered_map<Token, int32_t> m_counts;
};

class TopKStage final : public SamplerStage {
  public:
    explicit TopKStage(int32_t k) : m_k(k) {}
    const char * name() const override { return "top-k"; }
    void apply(CandidateArray & cur) override {
        const size_t k = std::min<size_t>(size_t(m_k), cur.items.size());
        if (k == 0 || k == cur.items.size()) return;
        if (!cur.sorted) {
            std::partial_sort(cur.items.begin(), cur.items.begin() + k, cur.items.end(),
                              [](const Candidate & a, const Candidate & b) {
                                  return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
                              });
            cur.sorted = true;
        }
        cur.items.resize(k);
    }

  private:
    int32_t m_k;
};

// Keeps the smallest prefix (by probability) whose mass reaches p.
class TopPStage final : public SamplerStage {
  public:
    explicit TopPStage(float p) : m_p(p) {}
    const char * name() const override { return "top-p"; }
    void apply(CandidateArray & cur) override {
        cur.softmax();
        double cum = 0.0;
        size_t keep = cur.items.size();
        for (size_t i = 0; i < cur.items.size(); ++i) {
            cum += cur.items[i].p;
            if (cum >= m_p) { keep = i + 1; break; }
        }
        cur.items.resize(std::max<size_t>(keep, 1));
    }

  private:
    float m_p;
};

// Drops tokens whose probability is below min_p times the top probability.
class MinPStage final : public SamplerStage {
  public:
    explicit MinPStage(float p) : m_p(p) {}
    const char * name() const override { return "min-p"; }
    void apply(CandidateArray & cur) override {
        cur.sort();
        if (cur.items.empty()) return;
        // p_i / p_max = exp(l_i - l_max) >= min_p  <=>  l_i >= l_max + log(min_p)
        const float threshold = cur.items.front().logit + std::log(m_p);
        size_t keep = 1;
        while (keep < cur.items.size() && cur.items[keep].logit >= threshold) ++keep;
        cur.items.resize(keep);
    }

  private:
    float m_p;
};

class TemperatureStage final : public SamplerStage {
  public:
    explicit TemperatureStage(float t) : m_t(t) {}
    const char * name() const override { return "temperature"; }
    void apply(CandidateArray & cur) override {
        for (Candidate & c : cur.items) c.logit /= m_t;
    }

  private:
    float m_t;
};

}  // namespace

Sampler::Sampler(const SamplerParams & params) : m_params(params) {
    m_seed = params.seed != 0 ? params.seed : (uint64_t(std::random_device{}()) << 32) ^ std::random_device{}();
    m_rng.seed(m_seed);
    const SamplerParams & p = m_params;
    if (p.repeat_penalty != 1.0f || p.frequency_penalty != 0.0f || p.presence_penalty != 0.0f) {
        m_stages.push_back(std::make_unique<PenaltyStage>(p.repeat_penalty, p.frequency_penalty,
                                                          p.presence_penalty, p.penalty_last_n));
    }
    if (p.temperature > 0.0f) {
        if (p.top_k > 0) m_stages.push_back(std::make_unique<TopKStage>(p.top_k));
        if (p.top_p < 1.0f) m_stages.push_back(std::make_unique<TopPStage>(p.top_p));
        if (p.min_p > 0.0f) m_stages.push_back(std::make_unique<MinPStage>(p.min_p));
        m_stages.push_back(std::make_unique<TemperatureStage>(p.temperature));
    }
}

namespace {
// Index of the first maximum (as std::max_element), vectorized (cpu/row_ops):
// a 262k vocabulary per token is otherwise a visible share of a decode step.
Token first_argmax(std::span<const float> x) { return Token(cpu::row_argmax(x.data(), int64_t(x.size()))); }
}  // namespace

Token Sampler::sample(std::span<const float> logits) {
    assert(!logits.empty());
    if (m_params.temperature <= 0.0f && m_stages.empty()) return first_argmax(logits);  // plain greedy, as below
    m_cur.items.resize(logits.size());
    for (size_t i = 0; i < logits.size(); ++i) m_cur.items[i] = Candidate{Token(i), logits[i], 0.0f};
    m_cur.sorted = false;
    for (auto & s : m_stages) s->apply(m_cur);

    if (m_params.temperature <= 0.0f) {  // greedy: first maximum, like argmax
        const auto best = std::max_element(m_cur.items.begin(), m_cur.items.end(),
                                           [](const Candidate & a, const Candidate & b) {
                                               return a.logit < b.logit || (a.logit == b.logit && a.id > b.id);
                                           });
        return best->id;
    }
    m_cur.softmax();
    std::uniform_real_distribution<double> uni(0.0, 1.0);
    const double r = uni(m_rng);
    double cum = 0.0;
    for (const Candidate & c : m_cur.items) {
        cum += c.p;
        if (r < cum) return c.id;
    }
    return m_cur.items.back().id;
}

void Sampler::accept(Token id) {
    for (auto & s : m_stages) s->accept(id);
}

void Sampler::reset() {
    for (auto & s : m_stages) s->reset();
    m_rng.seed(m_seed);
}

std::string Sampler::describe() const {
    std::string out;
    for (const auto & s : m_stages) {
        out += s->name();
        out += " -> ";
    }
    out += m_params.temperature <= 0.0f ? "greedy" : "dist";
    return out;
}

static double log_sum_exp(std::span<const float> logits, float * max_out) {
    return cpu::row_log_sum_exp(logits.data(), int64_t(logits.size()), max_out);
}

std::vector<TokenLogprob> Sampler::top_logprobs(std::span<const float> logits, int n) {
    std::vector<TokenLogprob> out;
    if (logits.empty() || n <= 0) return out;
    float mx = 0.0f;
    const double lse = log_sum_exp(logits, &mx);
    std::vector<Token> idx(logits.size());
    std::iota(idx.begin(), idx.end(), 0);
    const size_t k = std::min<size_t>(size_t(n), idx.size());
    std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), [&](Token a, Token b) {
        return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
    });
    for (size_t i = 0; i < k; ++i) out.push_back({idx[i], float(double(logits[idx[i]]) - mx - lse)});
    return out;
}

float Sampler::logprob_of(std::span<const float> logits, Token id) {
    float mx = 0.0f;
    const double lse = log_sum_exp(logits, &mx);
    return float(double(logits[size_t(id)]) - mx - lse);
}

}  // namespace gb
