// Row (de)quantization against llama.cpp's reference quantizer bytes and gguf-py's
// numpy dequantizers (fixture from scripts/make_quant_fixtures.py), plus
// round-trip error bounds and F16/BF16 exactness.
#include "glassbox/tensor_type.h"
#include "quants.h"

#include <QtTest>
#include <cmath>
#include <cstring>
#include <fstream>
#include <random>
#include <vector>

namespace {

struct FixtureType {
    uint32_t             id = 0;
    std::vector<uint8_t> bytes;  // llama.cpp quantized rows
    std::vector<float>   deq;    // gguf-py dequantization of bytes
};

struct Fixture {
    bool                     ok = false;
    QString                  error;
    QString                  meta;
    uint32_t                 n_rows = 0;
    uint32_t                 n_per_row = 0;
    std::vector<float>       input;
    std::vector<FixtureType> types;
};

const Fixture & fixture() {
    static const Fixture fx = [] {
        Fixture f;
        const std::string path = std::string(GLASSBOX_FIXTURE_DIR) + "/quants/quants.bin";
        std::ifstream in(path, std::ios::binary);
        if (!in) {
            f.error = QString::fromStdString("cannot open " + path);
            return f;
        }
        auto rd = [&](void * p, size_t n) { in.read(static_cast<char *>(p), static_cast<std::streamsize>(n)); return bool(in); };
        auto u32 = [&]() { uint32_t v = 0; rd(&v, 4); return v; };
        char magic[4];
        if (!rd(magic, 4) || std::memcmp(magic, "GBQF", 4) != 0 || u32() != 1) {
            f.error = "bad magic/version";
            return f;
        }
        std::string meta(u32(), '\0');
        rd(meta.data(), meta.size());
        f.meta = QString::fromStdString(meta);
        f.n_rows = u32();
        f.n_per_row = u32();
        const size_t n = size_t(f.n_rows) * f.n_per_row;
        f.input.resize(n);
        rd(f.input.data(), n * 4);
        const uint32_t n_types = u32();
        for (uint32_t i = 0; i < n_types; ++i) {
            FixtureType t;
            t.id = u32();
            t.bytes.resize(u32());
            rd(t.bytes.data(), t.bytes.size());
            t.deq.resize(n);
            rd(t.deq.data(), n * 4);
            f.types.push_back(std::move(t));
        }
        f.ok = bool(in);
        if (!f.ok) f.error = "truncated fixture";
        return f;
    }();
    return fx;
}

const FixtureType * fixture_type(gb::TensorType t) {
    for (const FixtureType & ft : fixture().types) {
        if (ft.id == uint32_t(t)) return &ft;
    }
    return nullptr;
}

uint32_t float_bits(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    return u;
}

const gb::TensorType k_fixture_types[] = {
    gb::TensorType::F16,  gb::TensorType::BF16, gb::TensorType::Q4_0, gb::TensorType::Q4_1,
    gb::TensorType::Q5_0, gb::TensorType::Q5_1, gb::TensorType::Q8_0, gb::TensorType::Q2_K,
    gb::TensorType::Q3_K, gb::TensorType::Q4_K, gb::TensorType::Q5_K, gb::TensorType::Q6_K,
};

}  // namespace

class TstQuants : public QObject {
    Q_OBJECT
  private slots:
    void initTestCase();
    void bytesMatchLlamaCpp_data();
    void bytesMatchLlamaCpp();
    void dequantMatchesGgufPy_data();
    void dequantMatchesGgufPy();
    void roundTripError_data();
    void roundTripError();
    void halfTypesExact();
    void f32Copy();
    void rejectsUnsupported();
    void q8KActivations();
    void q8_1Activations();
};

void TstQuants::initTestCase() {
    const Fixture & f = fixture();
    QVERIFY2(f.ok, qPrintable(f.error));
    QCOMPARE(f.types.size(), std::size(k_fixture_types));
    qInfo("fixture: %s", qPrintable(f.meta));
}

// One row per (type, input row): our quantizer's bytes equal llama.cpp's.
void TstQuants::bytesMatchLlamaCpp_data() {
    QTest::addColumn<uint32_t>("type");
    QTest::addColumn<int>("row");
    for (gb::TensorType t : k_fixture_types) {
        for (uint32_t r = 0; r < fixture().n_rows; ++r) {
            QTest::addRow("%s/row%u", gb::type_name(t), r) << uint32_t(t) << int(r);
        }
    }
}

void TstQuants::bytesMatchLlamaCpp() {
    QFETCH(uint32_t, type);
    QFETCH(int, row);
    const auto t = gb::TensorType(type);
    const Fixture & f = fixture();
    const FixtureType * ft = fixture_type(t);
    QVERIFY(ft != nullptr);
    const size_t rs = gb::row_size(t, f.n_per_row);
    QCOMPARE(ft->bytes.size(), rs * f.n_rows);
    std::vector<uint8_t> ours(rs, 0xAA);
    QVERIFY(gb::quantize_row_ref(t, f.input.data() + size_t(row) * f.n_per_row, ours.data(), f.n_per_row));
    const uint8_t * ref = ft->bytes.data() + size_t(row) * rs;
    for (size_t i = 0; i < rs; ++i) {
        if (ours[i] != ref[i]) {
            const size_t bs = gb::type_traits(t).type_size;
            QFAIL(qPrintable(QString("byte %1 (block %2, offset %3): ours 0x%4, llama.cpp 0x%5")
                                 .arg(i).arg(i / bs).arg(i % bs)
                                 .arg(ours[i], 2, 16, QChar('0')).arg(ref[i], 2, 16, QChar('0'))));
        }
    }
}

// Our dequantization of llama.cpp's bytes equals gguf-py's numpy one.
// Both evaluate the same float32 products in the same order (d*sc first,
// then *q, then -dmin*m), so we require bit equality.
void TstQuants::dequantMatchesGgufPy_data() {
    QTest::addColumn<uint32_t>("type");
    for (gb::TensorType t : k_fixture_types) QTest::newRow(gb::type_name(t)) << uint32_t(t);
}

void TstQuants::dequantMatchesGgufPy() {
    QFETCH(uint32_t, type);
    const auto t = gb::TensorType(type);
    const Fixture & f = fixture();
    const FixtureType * ft = fixture_type(t);
    QVERIFY(ft != nullptr);
    const size_t rs = gb::row_size(t, f.n_per_row);
    std::vector<float> ours(f.n_per_row);
    for (uint32_t r = 0; r < f.n_rows; ++r) {
        QVERIFY(gb::dequantize_row(t, ft->bytes.data() + r * rs, ours.data(), f.n_per_row));
        for (uint32_t i = 0; i < f.n_per_row; ++i) {
            const float ref = ft->deq[size_t(r) * f.n_per_row + i];
            if (float_bits(ours[i]) != float_bits(ref) && !(ours[i] == 0.0f && ref == 0.0f)) {
                QFAIL(qPrintable(QString("row %1 element %2: ours %3, gguf-py %4")
                                     .arg(r).arg(i).arg(double(ours[i]), 0, 'g', 9).arg(double(ref), 0, 'g', 9)));
            }
        }
    }
}

// Quantize -> dequantize of Gaussian data: relative RMSE below a bound set by
// the bits per weight (each extra bit roughly halves the error). Bounds are
// ~1.25x the values measured with llama.cpp-identical quantizers (printed).
void TstQuants::roundTripError_data() {
    QTest::addColumn<uint32_t>("type");
    QTest::addColumn<double>("bound");
    QTest::newRow("Q8_0") << uint32_t(gb::TensorType::Q8_0) << 0.007;
    QTest::newRow("Q6_K") << uint32_t(gb::TensorType::Q6_K) << 0.022;
    QTest::newRow("Q5_1") << uint32_t(gb::TensorType::Q5_1) << 0.047;
    QTest::newRow("Q5_0") << uint32_t(gb::TensorType::Q5_0) << 0.054;
    QTest::newRow("Q5_K") << uint32_t(gb::TensorType::Q5_K) << 0.045;
    QTest::newRow("Q4_1") << uint32_t(gb::TensorType::Q4_1) << 0.095;
    QTest::newRow("Q4_0") << uint32_t(gb::TensorType::Q4_0) << 0.11;
    QTest::newRow("Q4_K") << uint32_t(gb::TensorType::Q4_K) << 0.09;
    QTest::newRow("Q3_K") << uint32_t(gb::TensorType::Q3_K) << 0.19;
    QTest::newRow("Q2_K") << uint32_t(gb::TensorType::Q2_K) << 0.37;
    QTest::newRow("BF16") << uint32_t(gb::TensorType::BF16) << 0.0021;
    QTest::newRow("F16") << uint32_t(gb::TensorType::F16) << 0.00027;
}

void TstQuants::roundTripError() {
    QFETCH(uint32_t, type);
    QFETCH(double, bound);
    const auto t = gb::TensorType(type);
    constexpr int64_t n = 4096;
    std::mt19937 gen(1234);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    std::vector<float> x(n), y(n);
    for (float & v : x) v = nd(gen);
    std::vector<uint8_t> q(gb::row_size(t, n));
    QVERIFY(gb::quantize_row_ref(t, x.data(), q.data(), n));
    QVERIFY(gb::dequantize_row(t, q.data(), y.data(), n));
    double se = 0, ss = 0;
    for (int64_t i = 0; i < n; ++i) {
        se += double(y[i] - x[i]) * double(y[i] - x[i]);
        ss += double(x[i]) * double(x[i]);
    }
    const double rel = std::sqrt(se / ss);
    qInfo("%s relative rmse %.5f (bound %.4f)", gb::type_name(t), rel, bound);
    QVERIFY2(rel < bound, qPrintable(QString("relative rmse %1 >= %2").arg(rel).arg(bound)));
    QVERIFY(rel > 0.0);  // not a pass-through
}

// Every finite half / bf16 value survives dequantize -> quantize unchanged.
void TstQuants::halfTypesExact() {
    for (gb::TensorType t : {gb::TensorType::F16, gb::TensorType::BF16}) {
        std::vector<uint16_t> h, back(65536);
        for (uint32_t v = 0; v < 65536; ++v) {
            const uint16_t e = t == gb::TensorType::F16 ? ((v >> 10) & 0x1f) : ((v >> 7) & 0xff);
            const uint16_t emax = t == gb::TensorType::F16 ? 0x1f : 0xff;
            if (e != emax) h.push_back(uint16_t(v));
        }
        const int64_t n = int64_t(h.size());
        std::vector<float> f(n);
        QVERIFY(gb::dequantize_row(t, h.data(), f.data(), n));
        QVERIFY(gb::quantize_row_ref(t, f.data(), back.data(), n));
        for (int64_t i = 0; i < n; ++i) {
            if (back[i] != h[i]) QFAIL(qPrintable(QString("%1: 0x%2 -> 0x%3").arg(gb::type_name(t)).arg(h[i], 0, 16).arg(back[i], 0, 16)));
        }
    }
    // one known value each way
    const float one_third = 1.0f / 3.0f;
    uint16_t h16 = 0, hb = 0;
    QVERIFY(gb::quantize_row_ref(gb::TensorType::F16, &one_third, &h16, 1));
    QVERIFY(gb::quantize_row_ref(gb::TensorType::BF16, &one_third, &hb, 1));
    QCOMPARE(h16, uint16_t(0x3555));
    QCOMPARE(hb, uint16_t(0x3eab));
}

void TstQuants::f32Copy() {
    const float x[3] = {1.5f, -0.0f, 3.0e38f};
    float y[3] = {};
    float z[3] = {};
    QVERIFY(gb::quantize_row_ref(gb::TensorType::F32, x, y, 3));
    QVERIFY(gb::dequantize_row(gb::TensorType::F32, y, z, 3));
    QCOMPARE(std::memcmp(x, z, sizeof x), 0);
}

void TstQuants::rejectsUnsupported() {
    std::vector<float> f(256);
    std::vector<uint8_t> q(2048);
    QVERIFY(!gb::dequantize_row(gb::TensorType::IQ2_XXS, q.data(), f.data(), 256));
    QVERIFY(!gb::quantize_row_ref(gb::TensorType::IQ4_NL, f.data(), q.data(), 256));
    QVERIFY(!gb::quantize_row_ref(gb::TensorType::Q8_K, f.data(), q.data(), 256));  // not a weight type
    QVERIFY(!gb::dequantize_row(gb::TensorType::Q4_K, q.data(), f.data(), 100));   // not a whole block
    QVERIFY(!gb::quantize_row_ref(gb::TensorType::Q4_0, f.data(), q.data(), 33));
}

// Q8_K activation blocks: q = round(-127/max * x) ties-to-even, d = max/-127,
// bsums = per-16 sums; brute-force check.
void TstQuants::q8KActivations() {
    std::mt19937 gen(7);
    std::uniform_real_distribution<float> ud(-2.0f, 2.0f);
    std::vector<float> x(512);
    for (float & v : x) v = ud(gen);
    x[300] = -5.0f;  // the largest magnitude of block 1 is negative
    std::vector<gb::block_q8_K> b(2);
    gb::quantize_row_q8_K_ref(x.data(), b.data(), 512);
    for (int i = 0; i < 2; ++i) {
        float max = 0, amax = 0;
        for (int j = 0; j < 256; ++j) {
            if (std::fabs(x[256 * i + j]) > amax) { amax = std::fabs(x[256 * i + j]); max = x[256 * i + j]; }
        }
        const float iscale = -127.f / max;
        QCOMPARE(b[i].d, 1 / iscale);
        for (int j = 0; j < 256; ++j) {
            const int q = std::min(127, int(std::nearbyint(iscale * x[256 * i + j])));
            QCOMPARE(int(b[i].qs[j]), q);
        }
        for (int g = 0; g < 16; ++g) {
            int s = 0;
            for (int l = 0; l < 16; ++l) s += b[i].qs[16 * g + l];
            QCOMPARE(int(b[i].bsums[g]), s);
        }
    }
    std::vector<float> y(512);
    gb::dequantize_row_q8_K(b.data(), y.data(), 512);
    for (int k = 0; k < 512; ++k) QVERIFY(std::fabs(y[k] - x[k]) <= std::fabs(b[k / 256].d) * 0.5001f);
}

// Q8_1: like Q8_0 bytes plus s = d * sum(q) as fp16.
void TstQuants::q8_1Activations() {
    std::mt19937 gen(9);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    std::vector<float> x(64);
    for (float & v : x) v = nd(gen);
    std::vector<gb::block_q8_1> a(2);
    std::vector<gb::block_q8_0> b(2);
    gb::quantize_row_q8_1_ref(x.data(), a.data(), 64);
    gb::quantize_row_q8_0_ref(x.data(), b.data(), 64);
    for (int i = 0; i < 2; ++i) {
        QCOMPARE(a[i].d, b[i].d);
        QCOMPARE(std::memcmp(a[i].qs, b[i].qs, 32), 0);
        int s = 0;
        for (int j = 0; j < 32; ++j) s += a[i].qs[j];
        float amax = 0;
        for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[32 * i + j]));
        QCOMPARE(a[i].s, gb::fp32_to_fp16(float(s) * (amax / 127)));  // the unrounded d, as ggml
        QCOMPARE(a[i].d, gb::fp32_to_fp16(amax / 127));
    }
}

QTEST_APPLESS_MAIN(TstQuants)
#include "tst_quants.moc"
