// The vectorized pieces of the CPU forward pass against their generic code:
// attend() in batch order (AVX2, vectorized over keys) must give the same
// bits as the generic per-key loop for every window, head size and score range.
#include "forward_ops.h"
#include "glassbox/tensor_type.h"

#include <QtTest>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

class TstForwardOps : public QObject {
    Q_OBJECT

  private slots:
    void attendMatchesGeneric_data();
    void attendMatchesGeneric();
    void attendMappedMatchesPositionOrder();
};

void TstForwardOps::attendMatchesGeneric_data() {
    QTest::addColumn<int>("head_dim_k");
    QTest::addColumn<int>("head_dim_v");
    QTest::addColumn<float>("spread");  // std of q and k: large values drive exp to underflow
    QTest::newRow("hd64") << 64 << 64 << 1.0f;
    QTest::newRow("hd128") << 128 << 128 << 1.0f;
    QTest::newRow("hd256") << 256 << 256 << 0.5f;
    QTest::newRow("hd64-wide-scores") << 64 << 64 << 6.0f;
    QTest::newRow("hd96-v40") << 96 << 40 << 1.0f;
    QTest::newRow("hd80") << 80 << 80 << 1.0f;
    QTest::newRow("hd72-generic-only") << 72 << 72 << 1.0f;  // not a multiple of 16: generic code both times
}

void TstForwardOps::attendMatchesGeneric() {
    QFETCH(int, head_dim_k);
    QFETCH(int, head_dim_v);
    QFETCH(float, spread);
    const int n_ctx = 300;
    const int64_t k_stride = head_dim_k * 2 + 16, v_stride = head_dim_v * 3;  // several heads per row
    std::mt19937 rng(7);
    std::normal_distribution<float> nd(0.0f, spread);
    std::vector<uint16_t> k(size_t(n_ctx) * k_stride), v(size_t(n_ctx) * v_stride);
    for (auto & x : k) x = gb::fp32_to_fp16(nd(rng));
    for (auto & x : v) x = gb::fp32_to_fp16(nd(rng) / spread);
    std::vector<float> q(static_cast<size_t>(head_dim_k));
    for (auto & x : q) x = nd(rng);
    std::vector<float> scratch(size_t(gb::ops::attend_scratch_floats(n_ctx, head_dim_k, head_dim_v)));
    std::vector<float> fast(static_cast<size_t>(head_dim_v)), ref(static_cast<size_t>(head_dim_v));
    const float scale = 1.0f / std::sqrt(float(head_dim_k));
    const int windows[][2] = {{0, 1}, {0, 5}, {0, 8}, {0, 16}, {0, 17}, {3, 11}, {5, 40}, {17, 18}, {0, 300}, {13, 290}, {100, 164}};
    for (const auto & w : windows) {
        gb::ops::force_generic_attend(false);
        gb::ops::attend(fast.data(), q.data(), k.data(), k_stride, v.data(), v_stride, w[0], w[1], head_dim_k, head_dim_v, scale,
                        false, scratch.data());
        gb::ops::force_generic_attend(true);
        gb::ops::attend(ref.data(), q.data(), k.data(), k_stride, v.data(), v_stride, w[0], w[1], head_dim_k, head_dim_v, scale,
                        false, scratch.data());
        gb::ops::force_generic_attend(false);
        for (int d = 0; d < head_dim_v; ++d) {
            QVERIFY2(std::isfinite(ref[size_t(d)]), "reference output not finite");
            if (std::memcmp(&fast[size_t(d)], &ref[size_t(d)], 4) != 0) {
                QFAIL(qPrintable(QString("window [%1, %2) column %3: %4 vs generic %5")
                                     .arg(w[0]).arg(w[1]).arg(d).arg(double(fast[size_t(d)]), 0, 'g', 9).arg(double(ref[size_t(d)]), 0, 'g', 9)));
            }
        }
    }
}

// attend_mapped (positions >= tail_from at scattered rows) on the vectorized path
// against the generic attend() over the same keys/values stored in position order.
void TstForwardOps::attendMappedMatchesPositionOrder() {
    const int hd = 64, n_pos = 120, tail_from = 100, n_rows = 140;
    std::mt19937 rng(11);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    std::vector<uint16_t> k(size_t(n_rows) * hd), v(size_t(n_rows) * hd);
    for (auto & x : k) x = gb::fp32_to_fp16(nd(rng));
    for (auto & x : v) x = gb::fp32_to_fp16(nd(rng));
    // tail positions 100..119 live at rows 139, 137, ..., 101 (scattered, descending)
    std::vector<int32_t> tail_rows;
    for (int j = tail_from; j < n_pos; ++j) tail_rows.push_back(n_rows - 1 - 2 * (j - tail_from));
    std::vector<uint16_t> k_pos(size_t(n_pos) * hd), v_pos(size_t(n_pos) * hd);
    for (int j = 0; j < n_pos; ++j) {
        const int r = j < tail_from ? j : tail_rows[size_t(j - tail_from)];
        std::memcpy(&k_pos[size_t(j) * hd], &k[size_t(r) * hd], hd * 2);
        std::memcpy(&v_pos[size_t(j) * hd], &v[size_t(r) * hd], hd * 2);
    }
    std::vector<float> q(static_cast<size_t>(hd));
    for (auto & x : q) x = nd(rng);
    std::vector<float> scratch(size_t(gb::ops::attend_scratch_floats(n_rows, hd, hd)));
    std::vector<float> fast(static_cast<size_t>(hd)), ref(static_cast<size_t>(hd));
    for (const int lo : {0, 7, 95, 104}) {
        gb::ops::force_generic_attend(false);
        gb::ops::attend_mapped(fast.data(), q.data(), k.data(), hd, v.data(), hd, lo, n_pos, tail_from, tail_rows.data(), hd, hd,
                               0.125f, false, scratch.data());
        gb::ops::force_generic_attend(true);
        gb::ops::attend(ref.data(), q.data(), k_pos.data(), hd, v_pos.data(), hd, lo, n_pos, hd, hd, 0.125f, false, scratch.data());
        gb::ops::force_generic_attend(false);
        QVERIFY2(std::memcmp(fast.data(), ref.data(), fast.size() * sizeof(float)) == 0, qPrintable(QString("lo %1").arg(lo)));
    }
}

QTEST_GUILESS_MAIN(TstForwardOps)
#include "tst_forward_ops.moc"
