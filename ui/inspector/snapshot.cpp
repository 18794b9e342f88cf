// Statistics over token traces (percentiles, histograms, entropy) and the
// chunked token history.
#include "snapshot.h"

#include <algorithm>
#include <cmath>

namespace gb::ui {

const char * tokenOriginName(TokenOrigin origin) {
    switch (origin) {
    case TokenOrigin::Sampled: return "sampled";
    case TokenOrigin::DraftAccepted: return "draft accepted";
    case TokenOrigin::DraftCorrected: return "draft corrected";
    case TokenOrigin::Bonus: return "bonus";
    }
    return "?";
}

void TokenHistoryBuilder::append(TokenSample sample) {
    m_tail.push_back(std::move(sample));
    if (m_tail.size() == TokenHistory::kChunkSize) {
        m_full.push_back(std::make_shared<const TokenHistory::Chunk>(std::move(m_tail)));
        m_tail = {};
        m_tail.reserve(64);
    }
}

TokenHistory TokenHistoryBuilder::snapshot() const {
    TokenHistory h;
    h.m_chunks = m_full;
    if (!m_tail.empty()) h.m_chunks.push_back(std::make_shared<const TokenHistory::Chunk>(m_tail));
    h.m_size = size();
    return h;
}

void TokenHistoryBuilder::clear() {
    m_full.clear();
    m_tail.clear();
}

uint32_t Histogram::maxCount() const {
    uint32_t m = 0;
    for (uint32_t c : counts) m = std::max(m, c);
    return m;
}

double percentileInPlace(std::vector<double> & values, double q) {
    if (values.empty()) return 0.0;
    q = std::clamp(q, 0.0, 100.0);
    // rank = q/100 * (n-1); interpolate between the values at floor and ceil.
    const double rank = q / 100.0 * double(values.size() - 1);
    const size_t lo = size_t(std::floor(rank));
    const size_t hi = std::min(lo + 1, values.size() - 1);
    std::nth_element(values.begin(), values.begin() + lo, values.end());
    const double v_lo = values[lo];
    if (hi == lo) return v_lo;
    // The next order statistic is the minimum of the part right of lo.
    const double v_hi = *std::min_element(values.begin() + lo + 1, values.end());
    return v_lo + (rank - double(lo)) * (v_hi - v_lo);
}

Histogram makeHistogram(std::span<const double> values, int nBins, double lo, double hi) {
    Histogram h;
    h.lo = lo;
    h.hi = hi;
    h.counts.assign(size_t(std::max(nBins, 1)), 0);
    const double width = (hi - lo) / double(h.counts.size());
    for (double v : values) {
        if (!(v >= lo && v <= hi)) continue;  // also drops NaN
        size_t bin = width > 0 ? size_t((v - lo) / width) : 0;
        if (bin >= h.counts.size()) bin = h.counts.size() - 1;
        ++h.counts[bin];
        ++h.total;
    }
    return h;
}

Histogram makeHistogram(std::span<const double> values, int nBins) {
    if (values.empty()) return makeHistogram(values, nBins, 0.0, 1.0);
    double lo = values[0], hi = values[0];
    for (double v : values) {
        if (std::isnan(v)) continue;
        lo = std::min(lo, v);
        hi = std::max(hi, v);
    }
    if (hi <= lo) {  // a single value: one unit-wide range around it
        lo -= 0.5;
        hi += 0.5;
    }
    return makeHistogram(values, nBins, lo, hi);
}

float tokenEntropy(Token id, float logprob, std::span<const TokenLogprob> top) {
    double sum_p = 0.0, h = 0.0;
    bool has_chosen = false;
    for (const TokenLogprob & t : top) {
        const double p = std::exp(double(t.logprob));
        sum_p += p;
        if (p > 0) h -= p * double(t.logprob);
        has_chosen |= t.id == id;
    }
    if (!has_chosen && id >= 0) {
        const double p = std::exp(double(logprob));
        sum_p += p;
        if (p > 0) h -= p * double(logprob);
    }
    const double rest = 1.0 - sum_p;
    if (rest > 1e-12) h -= rest * std::log(rest);
    return float(std::max(h, 0.0));
}

LatencyStats computeLatencyStats(std::span<const double> times, double ttftMs, int nBins) {
    LatencyStats s;
    s.nTokens = times.size();
    s.ttftMs = ttftMs;
    std::vector<double> gaps;
    if (times.size() >= 2) {
        gaps.reserve(times.size() - 1);
        for (size_t i = 1; i < times.size(); ++i) gaps.push_back(times[i] - times[i - 1]);
    }
    s.nGaps = gaps.size();
    s.itl = makeHistogram(gaps, nBins);
    if (gaps.empty()) return s;
    s.decodeMs = times.back() - times.front();
    s.tokensPerS = s.decodeMs > 0 ? double(s.nGaps) * 1000.0 / s.decodeMs : 0.0;
    double sum = 0.0;
    s.minMs = s.maxMs = gaps[0];
    for (double g : gaps) {
        sum += g;
        s.minMs = std::min(s.minMs, g);
        s.maxMs = std::max(s.maxMs, g);
    }
    s.meanMs = sum / double(gaps.size());
    s.p50Ms = percentileInPlace(gaps, 50.0);
    s.p95Ms = percentileInPlace(gaps, 95.0);
    s.p99Ms = percentileInPlace(gaps, 99.0);
    return s;
}

TokenStats computeTokenStats(const TokenHistory & tokens, int nBins) {
    TokenStats s;
    s.nTokens = tokens.size();
    std::vector<double> probs;
    probs.reserve(tokens.size());
    double sum_lp = 0.0, sum_p = 0.0, sum_h = 0.0;
    for (const auto & chunk : tokens.chunks()) {
        for (const TokenSample & t : *chunk) {
            const double p = std::exp(double(t.logprob));
            sum_lp += t.logprob;
            sum_p += p;
            sum_h += t.entropy;
            s.maxEntropy = std::max(s.maxEntropy, double(t.entropy));
            probs.push_back(p);
            ++s.byOrigin[size_t(t.origin) & 3];
        }
    }
    s.prob = makeHistogram(probs, nBins, 0.0, 1.0);
    if (s.nTokens == 0) return s;
    const double n = double(s.nTokens);
    s.meanLogprob = sum_lp / n;
    s.perplexity = std::exp(-s.meanLogprob);
    s.meanProb = sum_p / n;
    s.meanEntropy = sum_h / n;
    return s;
}

}  // namespace gb::ui
