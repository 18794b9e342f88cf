// Tests for the inspector's snapshot producers: percentiles, histograms,
// entropy, latency and token statistics against brute-force computations on
// scripted token events; the recorder's rate limit and chunk sharing; the
// ring under concurrent producers; tensor summaries of a synthetic GGUF file.
#include "inspector/model_info.h"
#include "inspector/scripted_trace.h"
#include "inspector/snapshot.h"
#include "inspector/snapshot_ring.h"
#include "inspector/trace_recorder.h"

#include "glassbox/synth.h"

#include <QTemporaryDir>
#include <QtTest>

#include <algorithm>
#include <cmath>
#include <map>
#include <random>
#include <regex>
#include <thread>

using namespace gb;
using namespace gb::ui;

namespace {

// Percentile by full sort and linear interpolation (numpy's default method).
double brutePercentile(std::vector<double> v, double q) {
    if (v.empty()) return 0.0;
    std::sort(v.begin(), v.end());
    const double rank = q / 100.0 * double(v.size() - 1);
    const size_t lo = size_t(rank);
    const size_t hi = std::min(lo + 1, v.size() - 1);
    return v[lo] + (rank - double(lo)) * (v[hi] - v[lo]);
}

// Bin of v by walking the edges lo + k*w (no division).
std::vector<uint32_t> bruteHistogram(const std::vector<double> & v, int n, double lo, double hi) {
    std::vector<uint32_t> c(size_t(n), 0);
    const double w = (hi - lo) / n;
    for (double x : v) {
        if (x < lo || x > hi) continue;
        int k = 0;
        while (k + 1 < n && x >= lo + (k + 1) * w) ++k;
        ++c[size_t(k)];
    }
    return c;
}

std::vector<double> randomValues(size_t n, uint64_t seed, bool duplicates) {
    std::mt19937_64 rng(seed);
    std::vector<double> v(n);
    for (double & x : v) x = duplicates ? double(rng() % 7) : std::ldexp(double(rng() >> 11), -53) * 100.0;
    return v;
}

std::vector<double> timesOf(const std::vector<TokenEvent> & events) {
    std::vector<double> t;
    for (const auto & e : events) t.push_back(e.t_ms);
    return t;
}

}  // namespace

class TestInspectorSnapshot : public QObject {
    Q_OBJECT
  private slots:
    void percentile_data();
    void percentile();
    void percentileMatchesNumpy();
    void histogram_data();
    void histogram();
    void entropyExactWithFullDistribution();
    void entropyTopKIsLowerBound();
    void latencyStatsOnScriptedEvents_data();
    void latencyStatsOnScriptedEvents();
    void tokenStatsOnScriptedEvents();
    void recorderRateLimitsAndKeepsEveryToken();
    void recorderSharesChunksBetweenSnapshots();
    void recorderBoundsRequests();
    void ringBoundedUnderConcurrentProducers();
    void modelInfoTotals();
    void tensorHistogramMatchesBruteForce();
    void requantizationError();
    void layerOfTensor_data();
    void layerOfTensor();

  private:
    QTemporaryDir m_dir;
    std::string modelPath();
    std::string m_model;
};

void TestInspectorSnapshot::percentile_data() {
    QTest::addColumn<int>("n");
    QTest::addColumn<bool>("duplicates");
    QTest::addColumn<double>("q");
    for (int n : {1, 2, 3, 10, 1001})
        for (double q : {0.0, 1.0, 50.0, 95.0, 99.0, 100.0})
            for (bool dup : {false, true})
                QTest::addRow("n%d q%g %s", n, q, dup ? "dup" : "uniq") << n << dup << q;
}

void TestInspectorSnapshot::percentile() {
    QFETCH(int, n);
    QFETCH(bool, duplicates);
    QFETCH(double, q);
    const auto v = randomValues(size_t(n), uint64_t(n) * 31 + (duplicates ? 7 : 0), duplicates);
    auto work = v;
    QCOMPARE(percentileInPlace(work, q), brutePercentile(v, q));
}

void TestInspectorSnapshot::percentileMatchesNumpy() {
    // numpy.percentile(range(1, 11), [50, 95, 99]) == [5.5, 9.55, 9.91]
    std::vector<double> v = {7, 3, 10, 1, 9, 2, 8, 4, 6, 5};
    auto w = v;
    QVERIFY(std::fabs(percentileInPlace(w, 50) - 5.5) < 1e-12);
    w = v;
    QVERIFY(std::fabs(percentileInPlace(w, 95) - 9.55) < 1e-12);
    w = v;
    QVERIFY(std::fabs(percentileInPlace(w, 99) - 9.91) < 1e-12);
    std::vector<double> empty;
    QCOMPARE(percentileInPlace(empty, 50), 0.0);
}

void TestInspectorSnapshot::histogram_data() {
    QTest::addColumn<int>("n");
    QTest::addColumn<int>("bins");
    QTest::addRow("one value") << 1 << 10;
    QTest::addRow("100 in 7") << 100 << 7;
    QTest::addRow("5000 in 40") << 5000 << 40;
}

void TestInspectorSnapshot::histogram() {
    QFETCH(int, n);
    QFETCH(int, bins);
    const auto v = randomValues(size_t(n), uint64_t(n), false);
    const Histogram h = makeHistogram(v, bins);
    QCOMPARE(int(h.counts.size()), bins);
    QCOMPARE(h.total, uint64_t(n));
    const double lo = *std::min_element(v.begin(), v.end());
    const double hi = *std::max_element(v.begin(), v.end());
    if (n > 1) {
        QCOMPARE(h.lo, lo);
        QCOMPARE(h.hi, hi);
    } else {
        QVERIFY(h.lo < lo && h.hi > hi);
    }
    const auto expected = bruteHistogram(v, bins, h.lo, h.hi);
    for (int i = 0; i < bins; ++i) QCOMPARE(h.counts[size_t(i)], expected[size_t(i)]);
    // Values outside a fixed range are not counted.
    const Histogram part = makeHistogram(v, bins, 25.0, 75.0);
    const auto inside = std::count_if(v.begin(), v.end(), [](double x) { return x >= 25.0 && x <= 75.0; });
    QCOMPARE(part.total, uint64_t(inside));
}

void TestInspectorSnapshot::entropyExactWithFullDistribution() {
    std::mt19937_64 rng(5);
    std::normal_distribution<double> normal(0, 2);
    for (int trial = 0; trial < 20; ++trial) {
        const int n = 2 + trial * 3;
        std::vector<double> logits(static_cast<size_t>(n));
        for (double & l : logits) l = normal(rng);
        const double mx = *std::max_element(logits.begin(), logits.end());
        double z = 0;
        for (double l : logits) z += std::exp(l - mx);
        std::vector<TokenLogprob> top;
        double h = 0;
        for (int i = 0; i < n; ++i) {
            const double lp = logits[size_t(i)] - mx - std::log(z);
            h -= std::exp(lp) * lp;
            top.push_back({Token(i), float(lp)});
        }
        std::sort(top.begin(), top.end(), [](auto & a, auto & b) { return a.logprob > b.logprob; });
        const float got = tokenEntropy(top[0].id, top[0].logprob, top);
        QVERIFY2(std::fabs(got - h) < 1e-4 * std::max(1.0, h), qPrintable(QString("%1 vs %2").arg(got).arg(h)));
    }
}

void TestInspectorSnapshot::entropyTopKIsLowerBound() {
    // p = {0.5, 0.2, 0.1, 0.1, 0.05, 0.05}; list the top 3.
    const std::vector<double> p = {0.5, 0.2, 0.1, 0.1, 0.05, 0.05};
    double exact = 0;
    for (double x : p) exact -= x * std::log(x);
    std::vector<TokenLogprob> top = {{0, float(std::log(0.5))}, {1, float(std::log(0.2))}, {2, float(std::log(0.1))}};
    const double rest = 0.2;
    const double expected = -(0.5 * std::log(0.5) + 0.2 * std::log(0.2) + 0.1 * std::log(0.1)) - rest * std::log(rest);
    const float got = tokenEntropy(0, float(std::log(0.5)), top);
    QVERIFY(std::fabs(got - expected) < 1e-5);
    QVERIFY(got < exact);
    // The chosen token outside the list counts too.
    const float with_chosen = tokenEntropy(5, float(std::log(0.05)), top);
    const double expected2 = expected + rest * std::log(rest) - 0.05 * std::log(0.05) - 0.15 * std::log(0.15);
    QVERIFY(std::fabs(with_chosen - expected2) < 1e-5);
    // No alternatives: only the chosen token and the rest.
    QVERIFY(std::fabs(tokenEntropy(0, 0.0f, {}) - 0.0f) < 1e-7);
}

void TestInspectorSnapshot::latencyStatsOnScriptedEvents_data() {
    QTest::addColumn<int>("n");
    QTest::addRow("0") << 0;
    QTest::addRow("1") << 1;
    QTest::addRow("2") << 2;
    QTest::addRow("500") << 500;
    QTest::addRow("100000") << 100000;
}

void TestInspectorSnapshot::latencyStatsOnScriptedEvents() {
    QFETCH(int, n);
    ScriptedTraceParams p;
    p.nTokens = size_t(n);
    p.seed = uint64_t(n) + 3;
    const auto events = makeScriptedTokenEvents(p);
    const auto t = timesOf(events);
    const LatencyStats s = computeLatencyStats(t, t.empty() ? 0.0 : t[0], 40);
    std::vector<double> gaps;
    for (size_t i = 1; i < t.size(); ++i) gaps.push_back(t[i] - t[i - 1]);
    QCOMPARE(s.nTokens, size_t(n));
    QCOMPARE(s.nGaps, gaps.size());
    if (!t.empty()) QCOMPARE(s.ttftMs, p.ttftMs);
    if (gaps.empty()) {
        QCOMPARE(s.p50Ms, 0.0);
        QCOMPARE(s.itl.total, uint64_t(0));
        return;
    }
    double sum = 0;
    for (double g : gaps) sum += g;
    QVERIFY(std::fabs(s.meanMs - sum / double(gaps.size())) < 1e-9 * s.meanMs + 1e-12);
    QCOMPARE(s.minMs, *std::min_element(gaps.begin(), gaps.end()));
    QCOMPARE(s.maxMs, *std::max_element(gaps.begin(), gaps.end()));
    QCOMPARE(s.p50Ms, brutePercentile(gaps, 50));
    QCOMPARE(s.p95Ms, brutePercentile(gaps, 95));
    QCOMPARE(s.p99Ms, brutePercentile(gaps, 99));
    QVERIFY(s.p50Ms <= s.p95Ms && s.p95Ms <= s.p99Ms && s.p99Ms <= s.maxMs);
    QVERIFY(std::fabs(s.tokensPerS - double(gaps.size()) * 1000.0 / (t.back() - t.front())) < 1e-9);
    QCOMPARE(s.itl.total, uint64_t(gaps.size()));
    const auto expected = bruteHistogram(gaps, 40, s.itl.lo, s.itl.hi);
    for (size_t i = 0; i < expected.size(); ++i) QCOMPARE(s.itl.counts[i], expected[i]);
}

void TestInspectorSnapshot::tokenStatsOnScriptedEvents() {
    ScriptedTraceParams p;
    p.nTokens = 3000;
    p.nTop = 4;
    SnapshotRing ring;
    TraceRecorder rec(ring);
    rec.beginRequest("scripted");
    const auto events = makeScriptedTokenEvents(p);
    for (size_t i = 0; i < events.size(); ++i) rec.onToken(events[i], i % 10 == 0 ? TokenOrigin::Bonus : TokenOrigin::Sampled);
    rec.publishNow();
    const auto snap = ring.latest();
    QVERIFY(snap && snap->requests.size() == 1);
    const TokenStats & s = snap->requests[0]->tokenStats;
    double sum_lp = 0, sum_p = 0, sum_h = 0, max_h = 0;
    for (const auto & e : events) {
        sum_lp += e.logprob;
        sum_p += std::exp(double(e.logprob));
        sum_h += tokenEntropy(e.id, e.logprob, e.top);
        max_h = std::max(max_h, double(tokenEntropy(e.id, e.logprob, e.top)));
    }
    QCOMPARE(s.maxEntropy, max_h);
    const double n = double(events.size());
    QCOMPARE(s.nTokens, events.size());
    QVERIFY(std::fabs(s.meanLogprob - sum_lp / n) < 1e-9);
    QVERIFY(std::fabs(s.perplexity - std::exp(-sum_lp / n)) < 1e-9);
    QVERIFY(std::fabs(s.meanProb - sum_p / n) < 1e-9);
    QVERIFY(std::fabs(s.meanEntropy - sum_h / n) < 1e-6);
    QCOMPARE(s.byOrigin[size_t(TokenOrigin::Bonus)], size_t(300));
    QCOMPARE(s.byOrigin[size_t(TokenOrigin::Sampled)], size_t(2700));
    QCOMPARE(s.prob.total, uint64_t(3000));
}

void TestInspectorSnapshot::recorderRateLimitsAndKeepsEveryToken() {
    SnapshotRing ring(8);
    double now = 0.0;
    TraceRecorderParams params;
    params.minIntervalMs = 40.0;
    params.clockMs = [&now] { return now; };
    TraceRecorder rec(ring, params);
    ScriptedTraceParams p;
    p.nTokens = 1000;
    const auto events = makeScriptedTokenEvents(p);
    rec.beginRequest("scripted", 12);
    const uint64_t before = rec.publishCount();
    for (const auto & e : events) {
        now = e.t_ms;  // the clock follows the token times
        rec.onToken(e);
    }
    const uint64_t streaming = rec.publishCount() - before;
    const double span = events.back().t_ms - events.front().t_ms;
    QVERIFY2(double(streaming) <= span / params.minIntervalMs + 1.0, qPrintable(QString::number(streaming)));
    QVERIFY(streaming >= uint64_t(span / (params.minIntervalMs + 4 * p.meanItlMs * 2)));  // still published while streaming
    GenerateResult r;
    r.stop = StopReason::EndOfGeneration;
    r.n_prompt_tokens = 12;
    r.t_first_token_ms = events.front().t_ms;
    r.t_total_ms = events.back().t_ms + 1.0;
    rec.endRequest(r);
    QCOMPARE(ring.sequence(), rec.publishCount());
    const auto snap = ring.latest();
    QCOMPARE(snap->sequence, ring.sequence());
    QCOMPARE(snap->requests.size(), size_t(1));
    const RequestTrace & t = *snap->requests[0];
    QVERIFY(t.finished);
    QCOMPARE(t.stopReason, std::string("end of generation"));
    QCOMPARE(t.tokens.size(), events.size());
    for (size_t i = 0; i < events.size(); ++i) {
        QCOMPARE(t.tokens[i].id, events[i].id);
        QCOMPARE(t.tokens[i].tMs, events[i].t_ms);
        QCOMPARE(t.tokens[i].logprob, events[i].logprob);
        QCOMPARE(t.tokens[i].top.size(), events[i].top.size());
    }
    QCOMPARE(t.latency.p95Ms, [&] {
        std::vector<double> g;
        for (size_t i = 1; i < events.size(); ++i) g.push_back(events[i].t_ms - events[i - 1].t_ms);
        return brutePercentile(g, 95);
    }());
}

void TestInspectorSnapshot::recorderSharesChunksBetweenSnapshots() {
    SnapshotRing ring;
    TraceRecorder rec(ring, TraceRecorderParams{1e9, 4, 10, [] { return 0.0; }});
    ScriptedTraceParams p;
    p.nTokens = TokenHistory::kChunkSize * 2 + 10;
    const auto events = makeScriptedTokenEvents(p);
    rec.beginRequest("a");
    for (const auto & e : events) rec.onToken(e);
    rec.publishNow();
    const auto first = ring.latest();
    rec.onToken(events[0]);
    rec.publishNow();
    const auto second = ring.latest();
    const auto & c1 = first->requests[0]->tokens.chunks();
    const auto & c2 = second->requests[0]->tokens.chunks();
    QCOMPARE(c1.size(), size_t(3));
    QCOMPARE(c1[0].get(), c2[0].get());  // full chunks are shared, not copied
    QCOMPARE(c1[1].get(), c2[1].get());
    QVERIFY(c1[2].get() != c2[2].get());
    QCOMPARE(first->requests[0]->tokens.size(), events.size());  // the old snapshot did not change
    QCOMPARE(second->requests[0]->tokens.size(), events.size() + 1);
}

void TestInspectorSnapshot::recorderBoundsRequests() {
    SnapshotRing ring;
    TraceRecorderParams params;
    params.maxRequests = 3;
    TraceRecorder rec(ring, params);
    for (int i = 0; i < 7; ++i) {
        rec.beginRequest("r" + std::to_string(i));
        rec.onToken(TokenEvent{1, "x", 5.0, -0.1f, {}});
    }
    rec.endRequest(GenerateResult{});
    const auto snap = ring.latest();
    QCOMPARE(snap->requests.size(), size_t(3));
    QCOMPARE(snap->requests.back()->label, std::string("r6"));
    QCOMPARE(snap->requests.front()->label, std::string("r4"));
    QCOMPARE(snap->requests.front()->stopReason, std::string("cancelled"));  // replaced while running
}

void TestInspectorSnapshot::ringBoundedUnderConcurrentProducers() {
    SnapshotRing ring(16);
    std::atomic<int> notified{0};
    ring.setListener([&] { notified.fetch_add(1); });
    constexpr int kThreads = 4, kEach = 3000;
    std::atomic<bool> done{false};
    std::atomic<bool> monotonic{true};
    std::thread reader([&] {
        uint64_t last = 0;
        while (!done) {
            const auto s = ring.latest();
            if (s) {
                if (s->sequence < last) monotonic = false;
                last = s->sequence;
            }
        }
    });
    std::vector<std::thread> producers;
    for (int t = 0; t < kThreads; ++t)
        producers.emplace_back([&ring, t] {
            for (int i = 0; i < kEach; ++i) {
                auto s = std::make_shared<InspectorSnapshot>();
                s->publishedMs = t * 1e6 + i;
                ring.publish(std::move(s));
            }
        });
    for (auto & p : producers) p.join();
    done = true;
    reader.join();
    QVERIFY(monotonic);
    QCOMPARE(ring.sequence(), uint64_t(kThreads * kEach));
    QCOMPARE(notified.load(), kThreads * kEach);
    const auto hist = ring.history();
    QCOMPARE(hist.size(), ring.capacity());
    for (size_t i = 1; i < hist.size(); ++i) QCOMPARE(hist[i]->sequence, hist[i - 1]->sequence + 1);
    QCOMPARE(hist.back()->sequence, ring.sequence());
}

std::string TestInspectorSnapshot::modelPath() {
    if (m_model.empty()) {
        auto spec = synth_preset("tiny-llama");
        if (!spec) return {};
        SynthSpec s = *spec;
        s.n_layer = 3;
        s.weight_std = 0.02f;
        const std::string path = m_dir.filePath("tiny.gguf").toStdString();
        if (!write_synthetic_model(s, path, {}, 1).ok()) return {};
        m_model = path;
    }
    return m_model;
}

void TestInspectorSnapshot::modelInfoTotals() {
    const std::string path = modelPath();
    QVERIFY(!path.empty());
    auto info = loadModelInfo(path);
    QVERIFY(info.ok());
    const ModelInfo & m = **info;
    QCOMPARE(m.architecture, std::string("llama"));
    QVERIFY(m.tokenizer != nullptr);
    // Brute force: group by a regex over the names.
    std::map<int, std::pair<uint64_t, uint64_t>> expected;  // layer -> (params, bytes)
    const std::regex blk(R"(^blk\.(\d+)\.)");
    uint64_t bytes = 0;
    for (const auto & t : m.file->tensors()) {
        std::smatch match;
        const int layer = std::regex_search(t.name, match, blk) ? std::stoi(match[1]) : -1;
        expected[layer].first += uint64_t(t.n_elements());
        expected[layer].second += t.n_bytes;
        bytes += t.n_bytes;
    }
    QCOMPARE(m.layers.size(), expected.size());
    QCOMPARE(m.layers.size(), size_t(4));  // outside + 3 blocks
    for (const LayerTotal & l : m.layers) {
        QCOMPARE(l.nParams, expected[l.layer].first);
        QCOMPARE(l.nBytes, expected[l.layer].second);
    }
    QCOMPARE(m.totalBytes, bytes);
    uint64_t type_bytes = 0;
    for (const TypeTotal & t : m.types) type_bytes += t.nBytes;
    QCOMPARE(type_bytes, bytes);
    for (size_t i = 1; i < m.types.size(); ++i) QVERIFY(m.types[i - 1].nBytes >= m.types[i].nBytes);
}

void TestInspectorSnapshot::tensorHistogramMatchesBruteForce() {
    auto info = loadModelInfo(modelPath());
    QVERIFY(info.ok());
    const gguf::TensorInfo * t = (*info)->file->find_tensor("blk.1.ffn_up.weight");
    QVERIFY(t);
    // Everything: all rows.
    const WeightSample s = sampleTensorWeights(*t, size_t(t->n_elements()), 30);
    QVERIFY2(s.ok, s.error.c_str());
    QCOMPARE(s.nSampled, size_t(t->n_elements()));
    std::vector<float> all(size_t(t->n_elements()));
    const size_t row_bytes = row_size(t->type, t->ne[0]);
    for (int64_t r = 0; r < t->n_elements() / t->ne[0]; ++r)
        QVERIFY(dequantize_row(t->type, t->data + size_t(r) * row_bytes, all.data() + size_t(r * t->ne[0]), t->ne[0]));
    std::vector<double> v(all.begin(), all.end());
    double sum = 0;
    for (double x : v) sum += x;
    const double mean = sum / double(v.size());
    double var = 0;
    for (double x : v) var += (x - mean) * (x - mean);
    QVERIFY(std::fabs(s.mean - mean) < 1e-12);
    QVERIFY(std::fabs(s.stddev - std::sqrt(var / double(v.size()))) < 1e-12);
    QVERIFY(s.stddev > 0.015 && s.stddev < 0.025);  // synthetic weights ~ N(0, 0.02^2)
    QCOMPARE(s.minValue, *std::min_element(v.begin(), v.end()));
    const auto expected = bruteHistogram(v, 30, s.histogram.lo, s.histogram.hi);
    for (size_t i = 0; i < expected.size(); ++i) QCOMPARE(s.histogram.counts[i], expected[i]);

    // A sample: whole rows, evenly spaced, distinct.
    const auto rows = sampledRows(*t, size_t(t->ne[0]) * 5 + 3);
    QCOMPARE(rows.size(), size_t(5));
    for (size_t i = 1; i < rows.size(); ++i) QVERIFY(rows[i] > rows[i - 1]);
    QCOMPARE(sampleTensorWeights(*t, size_t(t->ne[0]) * 5, 10).nSampled, size_t(t->ne[0]) * 5);
}

void TestInspectorSnapshot::requantizationError() {
    auto info = loadModelInfo(modelPath());
    QVERIFY(info.ok());
    const gguf::File & f = *(*info)->file;
    // An F32 tensor requantized to F32 is exact.
    const gguf::TensorInfo * norm = f.find_tensor("blk.0.attn_norm.weight");
    QVERIFY(norm && norm->type == TensorType::F32);
    QuantError e = gb::ui::requantizationError(*norm, TensorType::F32, 1 << 20);
    QVERIFY(e.ok);
    QCOMPARE(e.rmse, 0.0);
    QVERIFY(std::isinf(e.snrDb));
    // Q8_0 against its error bound: |x - q d16| <= d/2 + 127 |d16 - d| <= d (1/2 + 127 * 2^-11), d = amax_block / 127.
    const gguf::TensorInfo * w = f.find_tensor("blk.2.attn_q.weight");
    QVERIFY(w);
    e = gb::ui::requantizationError(*w, TensorType::Q8_0, size_t(w->n_elements()));
    QVERIFY2(e.ok, e.error.c_str());
    std::vector<float> ref(size_t(w->n_elements()));
    const size_t row_bytes = row_size(w->type, w->ne[0]);
    for (int64_t r = 0; r < w->n_elements() / w->ne[0]; ++r)
        QVERIFY(dequantize_row(w->type, w->data + size_t(r) * row_bytes, ref.data() + size_t(r * w->ne[0]), w->ne[0]));
    double amax = 0, sig2 = 0;
    for (float x : ref) {
        amax = std::max(amax, double(std::fabs(x)));
        sig2 += double(x) * x;
    }
    QVERIFY(e.maxAbs > 0);
    QVERIFY(e.maxAbs <= amax / 127.0 * (0.5 + 127.0 / 2048.0) + 1e-9);
    QVERIFY(e.rmse <= e.maxAbs && e.meanAbs <= e.rmse);
    QVERIFY(std::fabs(e.refRms - std::sqrt(sig2 / double(ref.size()))) < 1e-9);
    QVERIFY(std::fabs(e.snrDb - 10 * std::log10(e.refRms * e.refRms / (e.rmse * e.rmse))) < 1e-6);
    // Fewer bits, more error.
    const QuantError q4 = gb::ui::requantizationError(*w, TensorType::Q4_0, size_t(w->n_elements()));
    QVERIFY(q4.ok && q4.rmse > e.rmse);
    QCOMPARE(e.bitsPerWeight, 8.5);
    // Targets need rows that split into blocks.
    const auto targets = requantizeTargets(64);
    QVERIFY(std::find(targets.begin(), targets.end(), TensorType::Q4_K) == targets.end());
    QVERIFY(std::find(targets.begin(), targets.end(), TensorType::Q8_0) != targets.end());
    // A hand-made F32 tensor with rows of 96: Q8_0 (block 32) works, Q4_K (block 256) cannot.
    std::vector<float> data(96 * 3);
    for (size_t i = 0; i < data.size(); ++i) data[i] = float(std::sin(double(i)));
    gguf::TensorInfo fake;
    fake.name = "fake";
    fake.type = TensorType::F32;
    fake.n_dims = 2;
    fake.ne[0] = 96;
    fake.ne[1] = 3;
    fake.n_bytes = data.size() * sizeof(float);
    fake.data = reinterpret_cast<const uint8_t *>(data.data());
    QVERIFY(!gb::ui::requantizationError(fake, TensorType::Q4_K, 1000).ok);
    const QuantError f8 = gb::ui::requantizationError(fake, TensorType::Q8_0, 1000);
    QVERIFY(f8.ok && f8.n == data.size() && f8.maxAbs <= 1.0 / 127.0 * (0.5 + 127.0 / 2048.0) + 1e-9);
}

void TestInspectorSnapshot::layerOfTensor_data() {
    QTest::addColumn<QString>("name");
    QTest::addColumn<int>("layer");
    QTest::newRow("block") << "blk.12.attn_q.weight" << 12;
    QTest::newRow("zero") << "blk.0.ffn_up.weight" << 0;
    QTest::newRow("embd") << "token_embd.weight" << -1;
    QTest::newRow("no dot") << "blk.7" << -1;
    QTest::newRow("no digits") << "blk.x.y" << -1;
}

void TestInspectorSnapshot::layerOfTensor() {
    QFETCH(QString, name);
    QFETCH(int, layer);
    QCOMPARE(gb::ui::layerOfTensor(name.toStdString()), layer);
}

QTEST_APPLESS_MAIN(TestInspectorSnapshot)
#include "tst_inspector_snapshot.moc"
