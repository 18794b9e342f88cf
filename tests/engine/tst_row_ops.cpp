// cpu::row_argmax and cpu::row_log_sum_exp (the vectorized whole-row
// reductions behind greedy sampling, log-probabilities and the speculative
// walk) against plain double-precision loops: every length 1..100 (vector
// bodies and tails), a 262144-entry vocabulary row, ties, -inf entries.
#include "cpu/row_ops.h"
#include "glassbox/sampler.h"

#include <QtTest>
#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

class TstRowOps : public QObject {
    Q_OBJECT
  private slots:
    void argmaxFirstMaximum();
    void argmaxTies();
    void logSumExpMatchesDouble();
    void logSumExpVocabRow();
    void logSumExpWithMinusInfinity();
    void samplerUsesIt();
};

namespace {

std::vector<float> random_row(size_t n, uint32_t seed, float sd = 3.0f) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> d(0.0f, sd);
    std::vector<float> v(n);
    for (float & x : v) x = d(rng);
    return v;
}

int64_t ref_argmax(const std::vector<float> & v) { return int64_t(std::max_element(v.begin(), v.end()) - v.begin()); }

double ref_lse(const std::vector<float> & v) {
    const float mx = *std::max_element(v.begin(), v.end());
    double s = 0.0;
    for (float x : v) s += std::exp(double(x) - double(mx));
    return std::log(s);
}

}  // namespace

void TstRowOps::argmaxFirstMaximum() {
    for (size_t n = 1; n <= 100; ++n) {
        for (uint32_t seed = 0; seed < 4; ++seed) {
            const auto v = random_row(n, uint32_t(n) * 7 + seed);
            QCOMPARE(gb::cpu::row_argmax(v.data(), int64_t(n)), ref_argmax(v));
        }
    }
    QCOMPARE(gb::cpu::row_argmax(nullptr, 0), int64_t(-1));
    const auto big = random_row(262144, 5);
    QCOMPARE(gb::cpu::row_argmax(big.data(), int64_t(big.size())), ref_argmax(big));
}

void TstRowOps::argmaxTies() {
    // the maximum appears several times (in the vector body and the tail): the first wins
    for (size_t n : {9u, 31u, 32u, 33u, 67u, 1000u}) {
        std::vector<float> v(n, -1.0f);
        const size_t a = n / 3, b = n - 1;
        v[b] = 5.0f;
        QCOMPARE(gb::cpu::row_argmax(v.data(), int64_t(n)), int64_t(b));
        v[a] = 5.0f;
        QCOMPARE(gb::cpu::row_argmax(v.data(), int64_t(n)), int64_t(a));
        v[0] = 5.0f;
        QCOMPARE(gb::cpu::row_argmax(v.data(), int64_t(n)), int64_t(0));
    }
    std::vector<float> all(40, -INFINITY);
    QCOMPARE(gb::cpu::row_argmax(all.data(), 40), int64_t(0));
}

void TstRowOps::logSumExpMatchesDouble() {
    for (size_t n = 1; n <= 100; ++n) {
        const auto v = random_row(n, 1000 + uint32_t(n), 5.0f);
        float mx = 0.0f;
        const double got = gb::cpu::row_log_sum_exp(v.data(), int64_t(n), &mx);
        QCOMPARE(mx, *std::max_element(v.begin(), v.end()));
        QVERIFY2(std::abs(got - ref_lse(v)) < 2e-6, qPrintable(QString("n %1: %2 vs %3").arg(n).arg(got).arg(ref_lse(v))));
    }
}

void TstRowOps::logSumExpVocabRow() {
    // a vocabulary-sized row with a wide spread (exponents down to the float
    // underflow region) and a flat one (every term counts: summation error)
    for (float sd : {1.0f, 8.0f, 40.0f}) {
        const auto v = random_row(262144, 77, sd);
        float mx = 0.0f;
        const double got = gb::cpu::row_log_sum_exp(v.data(), int64_t(v.size()), &mx);
        QVERIFY2(std::abs(got - ref_lse(v)) < 2e-6, qPrintable(QString("sd %1: %2 vs %3").arg(sd).arg(got).arg(ref_lse(v))));
    }
    std::vector<float> flat(262144, 0.25f);
    float mx = 0.0f;
    QVERIFY(std::abs(gb::cpu::row_log_sum_exp(flat.data(), int64_t(flat.size()), &mx) - std::log(262144.0)) < 2e-6);
}

void TstRowOps::logSumExpWithMinusInfinity() {
    // masked entries (-inf) contribute nothing, wherever they are
    auto v = random_row(100, 9);
    std::vector<float> kept;
    for (size_t i = 0; i < v.size(); ++i) {
        if (i % 3 == 1) v[i] = -INFINITY;
        else kept.push_back(v[i]);
    }
    float mx = 0.0f;
    QVERIFY(std::abs(gb::cpu::row_log_sum_exp(v.data(), int64_t(v.size()), &mx) - ref_lse(kept)) < 2e-6);
}

void TstRowOps::samplerUsesIt() {
    // greedy sampling and log-probabilities on a vocabulary-sized row
    const auto v = random_row(262144, 3);
    gb::SamplerParams p;
    p.temperature = 0.0f;
    gb::Sampler s(p);
    QCOMPARE(int64_t(s.sample(v)), ref_argmax(v));
    const int id = 12345;
    const double expect = double(v[size_t(id)]) - double(*std::max_element(v.begin(), v.end())) - ref_lse(v);
    QVERIFY(std::abs(double(gb::Sampler::logprob_of(v, id)) - expect) < 2e-6);
}

QTEST_APPLESS_MAIN(TstRowOps)
#include "tst_row_ops.moc"
