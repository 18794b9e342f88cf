// Type table and fp16/bf16 conversions against exhaustive round trips.
#include "glassbox/tensor_type.h"

#include <QtTest>
#include <cmath>
#include <cstring>

class TstTensorType : public QObject {
    Q_OBJECT
  private slots:
    void knownSizes_data();
    void knownSizes();
    void unknownIds();
    void fp16RoundTripAllHalves();
    void fp16RoundingTiesToEven();
    void bf16RoundTrip();
};

void TstTensorType::knownSizes_data() {
    QTest::addColumn<uint32_t>("id");
    QTest::addColumn<qint64>("block");
    QTest::addColumn<qint64>("bytes");
    QTest::newRow("Q4_0") << 2u << qint64(32) << qint64(18);
    QTest::newRow("Q5_1") << 7u << qint64(32) << qint64(24);
    QTest::newRow("Q8_0") << 8u << qint64(32) << qint64(34);
    QTest::newRow("Q2_K") << 10u << qint64(256) << qint64(84);
    QTest::newRow("Q3_K") << 11u << qint64(256) << qint64(110);
    QTest::newRow("Q4_K") << 12u << qint64(256) << qint64(144);
    QTest::newRow("Q5_K") << 13u << qint64(256) << qint64(176);
    QTest::newRow("Q6_K") << 14u << qint64(256) << qint64(210);
    QTest::newRow("BF16") << 30u << qint64(1) << qint64(2);
}

void TstTensorType::knownSizes() {
    QFETCH(uint32_t, id);
    QFETCH(qint64, block);
    QFETCH(qint64, bytes);
    const gb::TypeTraits * t = gb::type_traits(id);
    QVERIFY(t != nullptr);
    QCOMPARE(t->block_size, block);
    QCOMPARE(qint64(t->type_size), bytes);
    gb::TensorType parsed;
    QVERIFY(gb::type_from_name(t->name, &parsed));
    QCOMPARE(uint32_t(parsed), id);
}

void TstTensorType::unknownIds() {
    QVERIFY(gb::type_traits(4) == nullptr);   // removed Q4_2
    QVERIFY(gb::type_traits(31) == nullptr);  // removed Q4_0_4_4
    QVERIFY(gb::type_traits(1000) == nullptr);
    gb::TensorType t;
    QVERIFY(!gb::type_from_name("Q9_9", &t));
}

static float hw_half_to_float(uint16_t h) {
    _Float16 v;
    std::memcpy(&v, &h, 2);
    return float(v);
}

void TstTensorType::fp16RoundTripAllHalves() {
    for (uint32_t h = 0; h < 65536; ++h) {
        const float f = gb::fp16_to_fp32(uint16_t(h));
        const float ref = hw_half_to_float(uint16_t(h));
        if (std::isnan(ref)) {
            QVERIFY(std::isnan(f));
            continue;
        }
        QCOMPARE(f, ref);
        QCOMPARE(gb::fp32_to_fp16(f), uint16_t(h));
    }
}

void TstTensorType::fp16RoundingTiesToEven() {
    // Compare against the compiler's own float -> _Float16 conversion on a sweep.
    uint32_t bits = 0x30000000u;
    for (int i = 0; i < 200000; ++i, bits += 0x1357u) {
        float f;
        std::memcpy(&f, &bits, 4);
        if (!(f < 70000.0f)) break;
        const _Float16 ref = static_cast<_Float16>(f);
        uint16_t refbits;
        std::memcpy(&refbits, &ref, 2);
        QCOMPARE(gb::fp32_to_fp16(f), refbits);
        QCOMPARE(gb::fp32_to_fp16(-f), uint16_t(refbits | 0x8000u));
    }
}

void TstTensorType::bf16RoundTrip() {
    for (uint32_t h = 0; h < 65536; h += 7) {
        const float f = gb::bf16_to_fp32(uint16_t(h));
        if (std::isnan(f)) continue;
        QCOMPARE(gb::fp32_to_bf16(f), uint16_t(h));
    }
    QCOMPARE(gb::fp32_to_bf16(1.00390625f), uint16_t(0x3f80));  // tie rounds to even
}

QTEST_APPLESS_MAIN(TstTensorType)
#include "tst_tensor_type.moc"
