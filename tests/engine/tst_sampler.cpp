// Sampler chain against brute-force computations of each stage and a
// chi-square test of the sampled distribution.
#include "glassbox/sampler.h"

#include <QtTest>
#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <random>
#include <set>

class TstSampler : public QObject {
    Q_OBJECT
  private slots:
    void greedyIsArgmax();
    void greedyTiesTakeLowestId();
    void repetitionPenaltyRule();
    void frequencyPresencePenalties();
    void penaltyWindowForgets();
    void allowedSets_data();
    void allowedSets();
    void distributionChiSquare();
    void seedReproducible();
    void logprobs();
};

namespace {

std::vector<float> random_logits(int n, uint32_t seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> d(0.0f, 2.0f);
    std::vector<float> v(static_cast<size_t>(n));
    for (auto & x : v) x = d(rng);
    return v;
}

// Brute force: which tokens may be drawn after top-k, top-p, min-p (temperature applied last).
std::set<int> brute_allowed(const std::vector<float> & logits, int top_k, float top_p, float min_p) {
    std::vector<int> idx(logits.size());
    std::iota(idx.begin(), idx.end(), 0);
    std::stable_sort(idx.begin(), idx.end(), [&](int a, int b) { return logits[a] > logits[b]; });
    if (top_k > 0 && size_t(top_k) < idx.size()) idx.resize(size_t(top_k));
    if (top_p < 1.0f) {
        std::vector<double> p;
        double z = 0;
        for (int i : idx) z += std::exp(double(logits[i]) - logits[idx[0]]);
        double cum = 0;
        size_t keep = idx.size();
        for (size_t j = 0; j < idx.size(); ++j) {
            cum += std::exp(double(logits[idx[j]]) - logits[idx[0]]) / z;
            if (cum >= top_p) { keep = j + 1; break; }
        }
        idx.resize(keep);
    }
    if (min_p > 0.0f) {
        std::vector<int> kept;
        for (int i : idx) {
            if (std::exp(double(logits[i]) - logits[idx[0]]) >= min_p - 1e-6) kept.push_back(i);
        }
        idx = kept;
    }
    return std::set<int>(idx.begin(), idx.end());
}

}  // namespace

void TstSampler::greedyIsArgmax() {
    for (uint32_t seed = 1; seed < 50; ++seed) {
        const auto logits = random_logits(1000, seed);
        gb::SamplerParams p;
        p.temperature = 0.0f;
        gb::Sampler s(p);
        const int expect = int(std::max_element(logits.begin(), logits.end()) - logits.begin());
        QCOMPARE(s.sample(logits), expect);
    }
}

void TstSampler::greedyTiesTakeLowestId() {
    std::vector<float> logits = {1.0f, 3.0f, 2.0f, 3.0f};
    gb::SamplerParams p;
    p.temperature = 0.0f;
    gb::Sampler s(p);
    QCOMPARE(s.sample(logits), 1);
    // a long row: equal maxima in different scan lanes, the first one wins
    std::vector<float> wide(1003, -1.0f);
    wide[500] = 7.0f;
    wide[37] = 7.0f;
    wide[1001] = 7.0f;
    QCOMPARE(s.sample(wide), 37);
}

void TstSampler::repetitionPenaltyRule() {
    // Positive logits are divided, negative multiplied (llama.cpp's rule).
    std::vector<float> logits = {2.0f, 1.9f, -0.5f, -0.6f};
    gb::SamplerParams p;
    p.temperature = 0.0f;
    p.repeat_penalty = 1.1f;
    gb::Sampler s(p);
    QCOMPARE(s.sample(logits), 0);
    s.accept(0);  // 2.0 / 1.1 = 1.818 < 1.9
    QCOMPARE(s.sample(logits), 1);
    s.accept(1);  // both penalised: 1.818 vs 1.727 -> 0 wins again
    QCOMPARE(s.sample(logits), 0);
    std::vector<float> neg = {-1.0f, -1.05f};
    gb::Sampler s2(p);
    s2.accept(0);  // -1.0 * 1.1 = -1.1 < -1.05
    QCOMPARE(s2.sample(neg), 1);
}

void TstSampler::frequencyPresencePenalties() {
    std::vector<float> logits = {3.0f, 2.0f, 1.5f};
    gb::SamplerParams p;
    p.temperature = 0.0f;
    p.frequency_penalty = 0.3f;
    p.presence_penalty = 0.5f;
    gb::Sampler s(p);
    s.accept(0);
    QCOMPARE(s.sample(logits), 0);  // 3.0 - 0.3 - 0.5 = 2.2 > 2.0
    s.accept(0);                    // 3.0 - 0.6 - 0.5 = 1.9 < 2.0
    QCOMPARE(s.sample(logits), 1);
}

void TstSampler::penaltyWindowForgets() {
    std::vector<float> logits = {2.0f, 1.9f};
    gb::SamplerParams p;
    p.temperature = 0.0f;
    p.repeat_penalty = 2.0f;
    p.penalty_last_n = 2;
    gb::Sampler s(p);
    s.accept(0);
    QCOMPARE(s.sample(logits), 1);
    s.accept(5);
    s.accept(6);  // 0 left the window
    QCOMPARE(s.sample(logits), 0);
}

void TstSampler::allowedSets_data() {
    QTest::addColumn<int>("top_k");
    QTest::addColumn<float>("top_p");
    QTest::addColumn<float>("min_p");
    QTest::newRow("top-k 5") << 5 << 1.0f << 0.0f;
    QTest::newRow("top-p 0.5") << 0 << 0.5f << 0.0f;
    QTest::newRow("min-p 0.2") << 0 << 1.0f << 0.2f;
    QTest::newRow("k 20 p 0.9 min 0.05") << 20 << 0.9f << 0.05f;
}

void TstSampler::allowedSets() {
    QFETCH(int, top_k);
    QFETCH(float, top_p);
    QFETCH(float, min_p);
    const auto logits = random_logits(64, 7);
    const std::set<int> allowed = brute_allowed(logits, top_k, top_p, min_p);
    gb::SamplerParams p;
    p.temperature = 1.0f;
    p.top_k = top_k;
    p.top_p = top_p;
    p.min_p = min_p;
    p.seed = 99;
    gb::Sampler s(p);
    std::set<int> seen;
    for (int i = 0; i < 4000; ++i) {
        const int t = s.sample(logits);
        QVERIFY2(allowed.count(t), qPrintable(QString("token %1 outside the allowed set").arg(t)));
        seen.insert(t);
    }
    // Every allowed token with a reasonable share shows up.
    QVERIFY(seen.size() >= std::min<size_t>(allowed.size(), 2));
}

void TstSampler::distributionChiSquare() {
    // temperature 0.7, no filters: frequencies must follow softmax(logits / 0.7).
    const std::vector<float> logits = {1.0f, 0.5f, 0.0f, -0.5f, 2.0f, 1.5f};
    gb::SamplerParams p;
    p.temperature = 0.7f;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    p.seed = 12345;
    gb::Sampler s(p);
    const int n = 60000;
    std::vector<int> counts(logits.size(), 0);
    for (int i = 0; i < n; ++i) ++counts[size_t(s.sample(logits))];
    double z = 0;
    std::vector<double> prob(logits.size());
    for (size_t i = 0; i < logits.size(); ++i) z += prob[i] = std::exp(logits[i] / 0.7);
    double chi2 = 0;
    for (size_t i = 0; i < logits.size(); ++i) {
        const double e = n * prob[i] / z;
        chi2 += (counts[i] - e) * (counts[i] - e) / e;
    }
    // 5 degrees of freedom: p = 0.001 critical value is 20.5.
    QVERIFY2(chi2 < 20.5, qPrintable(QString("chi2 = %1").arg(chi2)));
}

void TstSampler::seedReproducible() {
    const auto logits = random_logits(200, 3);
    gb::SamplerParams p;
    p.seed = 42;
    gb::Sampler a(p), b(p);
    std::vector<int> ra, rb;
    for (int i = 0; i < 100; ++i) {
        ra.push_back(a.sample(logits));
        rb.push_back(b.sample(logits));
    }
    QCOMPARE(ra, rb);
    p.seed = 43;
    gb::Sampler c(p);
    std::vector<int> rc;
    for (int i = 0; i < 100; ++i) rc.push_back(c.sample(logits));
    QVERIFY(ra != rc);
}

void TstSampler::logprobs() {
    const auto logits = random_logits(500, 11);
    double z = 0;
    for (float l : logits) z += std::exp(double(l));
    const auto top = gb::Sampler::top_logprobs(logits, 5);
    QCOMPARE(int(top.size()), 5);
    for (size_t i = 1; i < top.size(); ++i) QVERIFY(top[i - 1].logprob >= top[i].logprob);
    for (const auto & t : top) {
        const double expect = double(logits[size_t(t.id)]) - std::log(z);
        QVERIFY(std::abs(t.logprob - expect) < 1e-4);
    }
    QCOMPARE(top[0].id, int(std::max_element(logits.begin(), logits.end()) - logits.begin()));
}

QTEST_APPLESS_MAIN(TstSampler)
#include "tst_sampler.moc"
