// CUDA kernels against CPU references (the engine's dequantizers and double
// loops) on fresh random inputs each run; every device output is poisoned
// with NaN before the kernel runs, so unwritten elements fail the checks.
// Needs an NVIDIA GPU (label cuda).
#include "glassbox/tensor_type.h"
#include "test_api.h"

#include <QScopeGuard>
#include <QtTest>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <random>
#include "test_seed.h"


using namespace gb;
namespace ct = gb::cuda::testing;

namespace {

// ||a - b|| / ||b||; infinity when a has a non-finite value or sizes differ.
double rel_err(const std::vector<float> & a, const std::vector<double> & b) {
    if (a.size() != b.size()) return INFINITY;
    double num = 0.0, den = 0.0;
    for (size_t i = 0; i < a.size(); ++i) {
        if (!std::isfinite(a[i])) return INFINITY;
        num += (a[i] - b[i]) * (a[i] - b[i]);
        den += b[i] * b[i];
    }
    return std::sqrt(num / std::max(den, 1e-30));
}


float h16(float x) { return fp16_to_fp32(fp32_to_fp16(x)); }

// The decode harnesses' activation form for the current data row: one int8
// plane where the row's tag ends in "one plane" (the BatchForward's form),
// else two (the decode Context's); restored at scope exit.
struct PlaneScope {
    bool two;
    PlaneScope() : two(!QByteArray(QTest::currentDataTag()).endsWith("one plane")) { ct::set_two_planes(two); }
    ~PlaneScope() { ct::set_two_planes(true); }
};
// Bounds of results computed from quantized activations (relative error
// against double oracles with the exact weights): 8-bit activations (one
// plane) ~0.5% rounding; two planes ~16 bits (step amax / 32512, measured
// ~2e-5).
double act_bound(bool two, double one_plane) { return two ? 2e-4 : one_plane; }

}  // namespace

class TstCudaKernels : public QObject {
    Q_OBJECT

    std::mt19937 m_rng;
    std::vector<float> randn(size_t n, float mean = 0.0f, float sd = 1.0f) {
        std::normal_distribution<float> d(mean, sd);
        std::vector<float> v(n);
        for (auto & x : v) x = d(m_rng);
        return v;
    }
    // Random weights of a type: GGUF bytes and their exact f32 values.
    void random_weight(TensorType t, int64_t n_cols, int64_t n_rows, std::vector<uint8_t> * bytes, std::vector<float> * vals) {
        const std::vector<float> src = randn(size_t(n_cols * n_rows));
        const size_t rs = row_size(t, n_cols);
        bytes->assign(rs * size_t(n_rows), 0);
        vals->assign(src.size(), 0.0f);
        for (int64_t r = 0; r < n_rows; ++r) {
            QVERIFY(quantize_row_ref(t, src.data() + r * n_cols, bytes->data() + size_t(r) * rs, n_cols));
            QVERIFY(dequantize_row(t, bytes->data() + size_t(r) * rs, vals->data() + r * n_cols, n_cols));
        }
    }

  private slots:
    void initTestCase() {
        std::string why;
        if (!ct::device_available(&why)) QSKIP(qPrintable(QString::fromStdString("no usable CUDA device: " + why)));
        uint64_t seed = gb::test::run_seed();
        m_rng.seed(uint32_t(seed));
    }

    void linear_data() {
        QTest::addColumn<int>("type");
        QTest::addColumn<int>("n_tok");
        QTest::addColumn<bool>("gemm");
        QTest::addColumn<bool>("long_rows");
        QTest::addColumn<QString>("gemm_mode");  // GB_CUDA_GEMM: "" auto (cuBLAS when loaded), "64"/"128" fused tiles, "slab", "cublas"
        const TensorType types[] = {TensorType::F32, TensorType::F16, TensorType::BF16, TensorType::Q4_0, TensorType::Q4_1,
                                    TensorType::Q5_0, TensorType::Q5_1, TensorType::Q8_0, TensorType::Q2_K, TensorType::Q3_K,
                                    TensorType::Q4_K, TensorType::Q5_K, TensorType::Q6_K};
        for (TensorType t : types) {
            QTest::newRow(qPrintable(QString("%1 matvec x1").arg(type_name(t)))) << int(t) << 1 << false << false << QString();
            QTest::newRow(qPrintable(QString("%1 matvec x3").arg(type_name(t)))) << int(t) << 3 << false << false << QString();
            QTest::newRow(qPrintable(QString("%1 gemm x37").arg(type_name(t)))) << int(t) << 37 << true << false << QString();
            QTest::newRow(qPrintable(QString("%1 gemm x130").arg(type_name(t)))) << int(t) << 130 << true << false << QString();
            QTest::newRow(qPrintable(QString("%1 gemm x200 tile128").arg(type_name(t)))) << int(t) << 200 << true << false
                                                                                          << QString("128");
            QTest::newRow(qPrintable(QString("%1 gemm x130 slab").arg(type_name(t)))) << int(t) << 130 << true << false
                                                                                      << QString("slab");
            // our fused kernel's 64-token tile (the default path when cuBLAS is absent)
            QTest::newRow(qPrintable(QString("%1 gemm x37 tile64").arg(type_name(t)))) << int(t) << 37 << true << false
                                                                                       << QString("64");
        }
        // cuBLAS (loaded at run time): F16/BF16 weights straight, the others
        // dequantized to f16 slabs first (256-row slabs here: the slab loop);
        // bias rows check the epilogue kernel. Skipped when cuBLAS is absent.
        for (TensorType t : {TensorType::F16, TensorType::BF16, TensorType::Q4_K, TensorType::Q6_K, TensorType::Q8_0}) {
            QTest::newRow(qPrintable(QString("%1 gemm x130 cublas").arg(type_name(t)))) << int(t) << 130 << true << false
                                                                                        << QString("cublas");
        }
        for (TensorType t : {TensorType::F16, TensorType::BF16, TensorType::Q4_K}) {
            QTest::newRow(qPrintable(QString("%1 gemm x37 cublas bias").arg(type_name(t)))) << int(t) << 37 << true << false
                                                                                            << QString("cublas bias");
        }
        // Rows of 32 * odd values: the fused kernel needs multiples of 64, so the slab path runs.
        for (TensorType t : {TensorType::Q8_0, TensorType::Q4_0, TensorType::F16}) {
            QTest::newRow(qPrintable(QString("%1 gemm x37 k800").arg(type_name(t)))) << int(t) << 37 << true << false << QString("k800");
        }
        // One activation plane (8 bits; the BatchForward's form): each kernel family once.
        for (TensorType t : {TensorType::Q4_0, TensorType::Q5_1, TensorType::Q3_K, TensorType::Q4_K, TensorType::Q6_K, TensorType::Q8_0}) {
            QTest::newRow(qPrintable(QString("%1 matvec x2 one plane").arg(type_name(t)))) << int(t) << 2 << false << false << QString();
        }
        for (TensorType t : {TensorType::Q4_K, TensorType::Q6_K}) {
            QTest::newRow(qPrintable(QString("%1 matvec x1 long rows one plane").arg(type_name(t)))) << int(t) << 1 << false << true << QString();
            QTest::newRow(qPrintable(QString("%1 matvec x1 ks2 one plane").arg(type_name(t)))) << int(t) << 1 << false << false << QString("ks2");
            QTest::newRow(qPrintable(QString("%1 matvec x1 stream one plane").arg(type_name(t)))) << int(t) << 1 << false << false << QString("stream");
        }
        // Rows of >= 4096 values take the several-passes-in-flight matvec kernels.
        for (TensorType t : {TensorType::Q4_K, TensorType::Q6_K, TensorType::Q8_0, TensorType::F16}) {
            QTest::newRow(qPrintable(QString("%1 matvec x1 long rows").arg(type_name(t)))) << int(t) << 1 << false << true << QString();
            QTest::newRow(qPrintable(QString("%1 matvec x2 long rows").arg(type_name(t)))) << int(t) << 2 << false << true << QString();
            // split-K matvec (GB_CUDA_MV_KS): 2 or 4 warps per row pair
            QTest::newRow(qPrintable(QString("%1 matvec x2 long rows ks2").arg(type_name(t)))) << int(t) << 2 << false << true << QString("ks2");
            QTest::newRow(qPrintable(QString("%1 matvec x1 long rows ks4").arg(type_name(t)))) << int(t) << 1 << false << true << QString("ks4");
            QTest::newRow(qPrintable(QString("%1 matvec x3 ks4").arg(type_name(t)))) << int(t) << 3 << false << false << QString("ks4");
            // the output head's stream kernel (one wave of blocks walking the rows), on
            // 1503 rows taken as a head (GB_CUDA_HEAD_ROWS=1000) and a grid of 5 blocks
            // (GB_CUDA_HEAD_GRID): each warp walks many row pairs
            QTest::newRow(qPrintable(QString("%1 matvec x1 stream").arg(type_name(t)))) << int(t) << 1 << false << false << QString("stream");
            QTest::newRow(qPrintable(QString("%1 matvec x2 long rows stream").arg(type_name(t)))) << int(t) << 2 << false << true << QString("stream");
        }
    }
    // y = x W^T. Bounds: decode path with q8 activations (act_bound: two
    // planes 2e-4, one plane 1.5e-2), float weights with f32 activations 1e-5;
    // GEMM (f16 operands) 5e-3.
    void linear() {
        const PlaneScope planes;
        QFETCH(int, type);
        QFETCH(int, n_tok);
        QFETCH(bool, gemm);
        QFETCH(bool, long_rows);
        QFETCH(QString, gemm_mode);
        const TensorType t = TensorType(type);
        // odd rows: tile and row-group edges; 301 > 256-row slabs
        const int64_t n_cols = long_rows ? 4352 : (gemm_mode == "k800" ? 800 : 768);
        const int64_t n_rows = gemm ? 301 : (gemm_mode == "stream" ? 1503 : 67);
        if (gemm_mode == "stream") {
            qputenv("GB_CUDA_HEAD_ROWS", "1000");
            qputenv("GB_CUDA_HEAD_GRID", "5");
        }
        auto reset_head = qScopeGuard([] { qunsetenv("GB_CUDA_HEAD_ROWS"); qunsetenv("GB_CUDA_HEAD_GRID"); });
        const bool want_cublas = gemm_mode.startsWith("cublas"), with_bias = gemm_mode.endsWith("bias");
        if (gemm_mode == "64" || gemm_mode == "128" || gemm_mode == "slab") qputenv("GB_CUDA_GEMM", gemm_mode.toUtf8());
        else if (want_cublas) qputenv("GB_CUDA_GEMM", "cublas");
        else qunsetenv("GB_CUDA_GEMM");
        auto reset_mode = qScopeGuard([] { qunsetenv("GB_CUDA_GEMM"); });
        if (gemm_mode.startsWith("ks")) qputenv("GB_CUDA_MV_KS", gemm_mode.mid(2).toUtf8());
        else qunsetenv("GB_CUDA_MV_KS");
        auto reset_ks = qScopeGuard([] { qunsetenv("GB_CUDA_MV_KS"); });
        if (want_cublas && !ct::gemm_uses_cublas(t, n_tok)) QSKIP(qPrintable(QString::fromStdString(ct::cublas_describe())));
        std::vector<uint8_t> bytes;
        std::vector<float> w;
        random_weight(t, n_cols, n_rows, &bytes, &w);
        const std::vector<float> x = randn(size_t(n_tok * n_cols));
        const std::vector<float> bias = with_bias ? randn(size_t(n_rows)) : std::vector<float>{};
        std::vector<double> ref(size_t(n_tok * n_rows));
        for (int tk = 0; tk < n_tok; ++tk)
            for (int64_t r = 0; r < n_rows; ++r) {
                double a = with_bias ? double(bias[size_t(r)]) : 0.0;
                for (int64_t c = 0; c < n_cols; ++c) a += double(w[r * n_cols + c]) * x[tk * n_cols + c];
                ref[tk * n_rows + r] = a;
            }
        auto y = ct::linear(t, bytes, n_cols, n_rows, x, n_tok, gemm, bias);
        QVERIFY2(y.ok(), y.ok() ? "" : y.error().to_string().c_str());
        const double err = rel_err(*y, ref);
        const bool is_float = t == TensorType::F32 || t == TensorType::F16 || t == TensorType::BF16;
        const double bound = gemm ? 5e-3 : (is_float ? 1e-5 : act_bound(planes.two, 1.5e-2));
        qInfo("%s n_tok %d %s: relative error %.3g (bound %.1g)", type_name(t), n_tok,
              gemm ? (ct::gemm_uses_cublas(t, n_tok) ? "gemm (cuBLAS)" : "gemm (ours)") : (planes.two ? "matvec" : "matvec, one plane"),
              err, bound);
        QVERIFY2(err < bound, qPrintable(QString("relative error %1").arg(err)));
    }

    // The streaming Q4_K / Q6_K kernels (matvec_pipe.cu; one and two planes): each shape class
    // against the double oracle, and every token of a 3-token launch bit for
    // bit equal to its own one-token launch (verification trees and batches
    // rely on it). Skipped where the device takes the other kernels.
    void pipe_data() {
        QTest::addColumn<int>("type");
        QTest::addColumn<int>("n_cols");
        QTest::addColumn<int>("n_rows");
        const int q4 = int(TensorType::Q4_K), q6 = int(TensorType::Q6_K);
        QTest::newRow("Q4_K 4096 cols, 16-row tiles one plane") << q4 << 4096 << 1056;
        QTest::newRow("Q4_K 2048 cols one plane") << q4 << 2048 << 64;
        QTest::newRow("Q4_K 14336 cols, 7 warps one plane") << q4 << 14336 << 36;
        QTest::newRow("Q4_K 8192 cols, 4 warps one plane") << q4 << 8192 << 20;
        QTest::newRow("Q4_K 16384 cols, 8 warps one plane") << q4 << 16384 << 8;
        QTest::newRow("Q6_K 14336 cols, 7 warps one plane") << q6 << 14336 << 36;
        QTest::newRow("Q6_K 8192 cols, 4 warps one plane") << q6 << 8192 << 20;
        QTest::newRow("Q6_K 16384 cols, 8 warps one plane") << q6 << 16384 << 8;
        // two planes (precise decode)
        QTest::newRow("Q4_K 4096 cols, 16-row tiles") << q4 << 4096 << 1056;
        QTest::newRow("Q4_K 2048 cols") << q4 << 2048 << 64;
        QTest::newRow("Q4_K 14336 cols, 7 warps") << q4 << 14336 << 36;
        QTest::newRow("Q6_K 8192 cols, 4 warps") << q6 << 8192 << 20;
    }
    void pipe() {
        const PlaneScope planes;
        QFETCH(int, type);
        QFETCH(int, n_cols);
        QFETCH(int, n_rows);
        const TensorType t = TensorType(type);
        qputenv("GB_CUDA_PIPE_MIN_ROWS", "0");  // small matrices take them too
        auto reset_min = qScopeGuard([] { qunsetenv("GB_CUDA_PIPE_MIN_ROWS"); });
        if (!ct::pipe_taken(t, n_cols, n_rows, false)) QSKIP("the streaming kernels are not taken on this device");
        std::vector<uint8_t> bytes;
        std::vector<float> w;
        random_weight(t, n_cols, n_rows, &bytes, &w);
        const int n_tok = 3;
        const std::vector<float> x = randn(size_t(n_tok * n_cols));
        auto y = ct::linear(t, bytes, n_cols, n_rows, x, n_tok, false);
        QVERIFY2(y.ok(), y.ok() ? "" : y.error().to_string().c_str());
        std::vector<double> ref(size_t(n_tok * n_rows));
        for (int tk = 0; tk < n_tok; ++tk)
            for (int64_t r = 0; r < n_rows; ++r) {
                double a = 0.0;
                for (int64_t c = 0; c < n_cols; ++c) a += double(w[r * n_cols + c]) * x[tk * n_cols + c];
                ref[tk * n_rows + r] = a;
            }
        const double err = rel_err(*y, ref);
        qInfo("%s %d x %d streaming matvec, 3 tokens: relative error %.3g", type_name(t), n_cols, n_rows, err);
        QVERIFY2(err < act_bound(planes.two, 1.5e-2), qPrintable(QString("relative error %1").arg(err)));
        for (int tk = 0; tk < n_tok; ++tk) {
            const std::vector<float> xt(x.begin() + tk * n_cols, x.begin() + (tk + 1) * n_cols);
            auto y1 = ct::linear(t, bytes, n_cols, n_rows, xt, 1, false);
            QVERIFY2(y1.ok(), y1.ok() ? "" : y1.error().to_string().c_str());
            QVERIFY2(std::memcmp(y1->data(), y->data() + tk * n_rows, size_t(n_rows) * 4) == 0,
                     qPrintable(QString("token %1 of 3: bits differ from its one-token launch").arg(tk)));
        }
        if (t == TensorType::Q4_K && n_cols <= 4096) {  // the gate/up pair too
            QVERIFY(ct::pipe_taken(t, n_cols, n_rows, true));
            std::vector<uint8_t> bu;
            std::vector<float> wu;
            random_weight(t, n_cols, n_rows, &bu, &wu);
            const std::vector<float> xs = randn(size_t(n_tok * n_cols), 0.0f, 0.1f);
            std::vector<float> q8;
            auto yg = ct::glu(t, bytes, t, bu, n_cols, n_rows, xs, n_tok, 0, &q8);
            QVERIFY2(yg.ok(), yg.ok() ? "" : yg.error().to_string().c_str());
            std::vector<double> rg(size_t(n_tok * n_rows));
            for (int tk = 0; tk < n_tok; ++tk)
                for (int64_t r = 0; r < n_rows; ++r) {
                    double g = 0.0, u = 0.0;
                    for (int64_t c = 0; c < n_cols; ++c) {
                        g += double(w[r * n_cols + c]) * xs[tk * n_cols + c];
                        u += double(wu[r * n_cols + c]) * xs[tk * n_cols + c];
                    }
                    rg[tk * n_rows + r] = g / (1.0 + std::exp(-g)) * u;
                }
            const double ge = rel_err(*yg, rg), qe = rel_err(q8, rg);
            qInfo("Q4_K %d x %d streaming gate/up: relative error %.3g, q8 %.3g", n_cols, n_rows, ge, qe);
            QVERIFY2(ge < act_bound(planes.two, 3e-2), qPrintable(QString("gate/up relative error %1").arg(ge)));
            QVERIFY2(qe < 2 * act_bound(planes.two, 2e-2), qPrintable(QString("gate/up q8 relative error %1").arg(qe)));
            const std::vector<float> x0(xs.begin() + 2 * n_cols, xs.end());
            std::vector<float> q81;
            auto yg1 = ct::glu(t, bytes, t, bu, n_cols, n_rows, x0, 1, 0, &q81);
            QVERIFY2(yg1.ok(), yg1.ok() ? "" : yg1.error().to_string().c_str());
            QVERIFY2(std::memcmp(yg1->data(), yg->data() + 2 * n_rows, size_t(n_rows) * 4) == 0, "gate/up: token 3 of 3 differs from its one-token launch");
        }
    }

    // Mixed weight types sharing x in one matvec call (one fast-path launch):
    // each job's rows against the double oracle.
    void linear_mixed_data() {
        QTest::addColumn<int>("n_tok");
        QTest::addColumn<int>("n_cols");
        QTest::newRow("x1") << 1 << 1280;  // 5 superblocks: partial last pass for every unit size
        QTest::newRow("x3") << 3 << 1280;
        QTest::newRow("x1 long rows") << 1 << 4352;  // >= 4096: several passes in flight, partial last group
        QTest::newRow("x2 long rows") << 2 << 4352;
        QTest::newRow("x3 one plane") << 3 << 1280;
        QTest::newRow("x2 long rows one plane") << 2 << 4352;
    }
    void linear_mixed() {
        const PlaneScope planes;
        QFETCH(int, n_tok);
        QFETCH(int, n_cols);
        const std::vector<TensorType> types = {TensorType::Q4_K, TensorType::Q6_K, TensorType::Q8_0, TensorType::F16, TensorType::Q5_K};
        const std::vector<int64_t> rows = {67, 40, 33, 9, 17};
        std::vector<std::vector<uint8_t>> bytes(types.size());
        std::vector<std::vector<float>> w(types.size());
        for (size_t i = 0; i < types.size(); ++i) random_weight(types[i], n_cols, rows[i], &bytes[i], &w[i]);
        const std::vector<float> x = randn(size_t(n_tok * n_cols));
        auto y = ct::linear_jobs(types, bytes, rows, n_cols, x, n_tok);
        QVERIFY2(y.ok(), y.ok() ? "" : y.error().to_string().c_str());
        size_t off = 0;
        for (size_t i = 0; i < types.size(); ++i) {
            std::vector<double> ref(size_t(n_tok * rows[i]));
            for (int tk = 0; tk < n_tok; ++tk)
                for (int64_t r = 0; r < rows[i]; ++r) {
                    double a = 0.0;
                    for (int64_t c = 0; c < n_cols; ++c) a += double(w[i][r * n_cols + c]) * x[tk * n_cols + c];
                    ref[tk * rows[i] + r] = a;
                }
            const std::vector<float> got(y->begin() + off, y->begin() + off + ref.size());
            off += ref.size();
            const double err = rel_err(got, ref);
            const double bound = types[i] == TensorType::F16 ? 1e-5 : act_bound(planes.two, 1.5e-2);
            qInfo("%s in a mixed launch, n_tok %d: relative error %.3g", type_name(types[i]), n_tok, err);
            QVERIFY2(err < bound, qPrintable(QString("%1: relative error %2").arg(type_name(types[i])).arg(err)));
        }
    }

    // Fused decode gate/up: act(Wg x) * (Wu x) and its q8, against doubles.
    void glu_data() {
        QTest::addColumn<int>("tg");
        QTest::addColumn<int>("tu");
        QTest::addColumn<int>("kind");
        QTest::addColumn<int>("n_tok");
        QTest::addColumn<int>("n_cols");
        QTest::addColumn<int>("n_rows");
        const int q4 = int(TensorType::Q4_K), q6 = int(TensorType::Q6_K), q8 = int(TensorType::Q8_0), f16 = int(TensorType::F16);
        QTest::newRow("Q4_K silu x1") << q4 << q4 << 0 << 1 << 768 << 96;
        QTest::newRow("Q6_K/Q4_K gelu x3") << q6 << q4 << 1 << 3 << 768 << 96;
        QTest::newRow("Q8_0 silu x2") << q8 << q8 << 0 << 2 << 768 << 96;
        QTest::newRow("F16 gelu x1") << f16 << f16 << 1 << 1 << 768 << 96;
        QTest::newRow("Q4_K silu x2, 4096 cols") << q4 << q4 << 0 << 2 << 4096 << 96;
        // 1024 rows: 32 blocks of 32 rows
        QTest::newRow("Q4_K silu x2, 4096 cols, 1024 rows") << q4 << q4 << 0 << 2 << 4096 << 1024;
        QTest::newRow("Q6_K gelu x1, 1024 cols, 1024 rows") << q6 << q6 << 1 << 1 << 1024 << 1024;
        QTest::newRow("Q8_0 silu x3, 512 cols, 1024 rows") << q8 << q8 << 0 << 3 << 512 << 1024;
        QTest::newRow("F16 silu x1, 2048 cols, 1024 rows") << f16 << f16 << 0 << 1 << 2048 << 1024;
        QTest::newRow("Q4_K silu x2 one plane") << q4 << q4 << 0 << 2 << 768 << 96;
        QTest::newRow("Q6_K/Q4_K gelu x1 one plane") << q6 << q4 << 1 << 1 << 768 << 96;
    }
    // (bounds: act_bound for the output, x2 for its q8 round trip)
    void glu() {
        const PlaneScope planes;
        QFETCH(int, tg);
        QFETCH(int, tu);
        QFETCH(int, kind);
        QFETCH(int, n_tok);
        QFETCH(int, n_cols);
        QFETCH(int, n_rows);
        std::vector<uint8_t> bg, bu;
        std::vector<float> wg, wu;
        random_weight(TensorType(tg), n_cols, n_rows, &bg, &wg);
        random_weight(TensorType(tu), n_cols, n_rows, &bu, &wu);
        const std::vector<float> x = randn(size_t(n_tok * n_cols), 0.0f, 0.1f);
        std::vector<float> q8;
        auto y = ct::glu(TensorType(tg), bg, TensorType(tu), bu, n_cols, n_rows, x, n_tok, kind, &q8);
        QVERIFY2(y.ok(), y.ok() ? "" : y.error().to_string().c_str());
        std::vector<double> ref(size_t(n_tok * n_rows));
        for (int tk = 0; tk < n_tok; ++tk)
            for (int64_t r = 0; r < n_rows; ++r) {
                double g = 0.0, u = 0.0;
                for (int64_t c = 0; c < n_cols; ++c) {
                    g += double(wg[r * n_cols + c]) * x[tk * n_cols + c];
                    u += double(wu[r * n_cols + c]) * x[tk * n_cols + c];
                }
                const double a = kind == 0 ? g / (1.0 + std::exp(-g)) : 0.5 * g * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (g + 0.044715 * g * g * g)));
                ref[tk * n_rows + r] = a * u;
            }
        const bool f = TensorType(tg) == TensorType::F16;
        const double err = rel_err(*y, ref), qerr = rel_err(q8, ref);
        qInfo("glu %s/%s: relative error %.3g, q8 %.3g", type_name(TensorType(tg)), type_name(TensorType(tu)), err, qerr);
        QVERIFY2(err < (f ? 1e-5 : act_bound(planes.two, 3e-2)), qPrintable(QString("relative error %1").arg(err)));
        QVERIFY2(qerr < (f ? act_bound(planes.two, 2e-2) : 2 * act_bound(planes.two, 2e-2)), qPrintable(QString("q8 relative error %1").arg(qerr)));
    }

    void embed_data() {
        QTest::addColumn<int>("type");
        for (TensorType t : {TensorType::F32, TensorType::F16, TensorType::BF16, TensorType::Q4_0, TensorType::Q4_1, TensorType::Q5_0,
                             TensorType::Q5_1, TensorType::Q8_0, TensorType::Q2_K, TensorType::Q3_K, TensorType::Q4_K,
                             TensorType::Q5_K, TensorType::Q6_K})
            QTest::newRow(type_name(t)) << int(t);
    }
    // Embedding rows = dequantized rows * scale (same f32 arithmetic up to rounding).
    void embed() {
        QFETCH(int, type);
        const TensorType t = TensorType(type);
        const int64_t n_cols = 512, n_rows = 50;
        std::vector<uint8_t> bytes;
        std::vector<float> w;
        random_weight(t, n_cols, n_rows, &bytes, &w);
        std::uniform_int_distribution<int> pick(0, int(n_rows) - 1);
        const std::vector<int> rows = {0, int(n_rows) - 1, pick(m_rng), pick(m_rng)};
        const float scale = 1.7f;
        auto y = ct::embed(t, bytes, n_cols, n_rows, rows, scale);
        QVERIFY2(y.ok(), y.ok() ? "" : y.error().to_string().c_str());
        std::vector<double> ref;
        for (int r : rows)
            for (int64_t c = 0; c < n_cols; ++c) ref.push_back(double(w[r * n_cols + c]) * scale);
        const double err = rel_err(*y, ref);
        QVERIFY2(err < 1e-6, qPrintable(QString("relative error %1").arg(err)));
    }

    void add_norm_data() {
        QTest::addColumn<bool>("with_p");
        QTest::addColumn<bool>("with_post");
        QTest::newRow("norm") << false << false;
        QTest::newRow("add + norm") << true << false;
        QTest::newRow("post-norm + add + norm") << true << true;
        QTest::newRow("post-norm + add + norm, one plane") << true << true;
    }
    void add_norm() {
        const PlaneScope planes;
        QFETCH(bool, with_p);
        QFETCH(bool, with_post);
        const int n = 640, n_tok = 3;
        const float eps = 1e-6f;
        const auto x = randn(size_t(n * n_tok), 0.3f, 2.0f), w = randn(size_t(n), 1.0f, 0.1f);
        const auto p = with_p ? randn(size_t(n * n_tok)) : std::vector<float>{};
        const auto pw = with_post ? randn(size_t(n), 1.0f, 0.1f) : std::vector<float>{};
        std::vector<float> q8;
        auto got = ct::add_norm(x, p, pw, w, eps, n, n_tok, &q8);
        QVERIFY2(got.ok(), got.ok() ? "" : got.error().to_string().c_str());
        std::vector<double> ref_y, ref_x;
        for (int t = 0; t < n_tok; ++t) {
            std::vector<double> xr(x.begin() + t * n, x.begin() + (t + 1) * n);
            if (with_p) {
                double ss = 0.0;
                for (int i = 0; i < n; ++i) ss += double(p[t * n + i]) * p[t * n + i];
                const double sc = with_post ? 1.0 / std::sqrt(ss / n + eps) : 1.0;
                for (int i = 0; i < n; ++i) xr[i] += with_post ? p[t * n + i] * sc * pw[i] : p[t * n + i];
            }
            double ss = 0.0;
            for (double v : xr) ss += v * v;
            const double sc = 1.0 / std::sqrt(ss / n + eps);
            for (int i = 0; i < n; ++i) ref_y.push_back(xr[i] * sc * w[i]);
            ref_x.insert(ref_x.end(), xr.begin(), xr.end());
        }
        const std::vector<float> y(got->begin(), got->begin() + n * n_tok), nx(got->begin() + n * n_tok, got->end());
        QVERIFY2(rel_err(y, ref_y) < 1e-5, qPrintable(QString("y error %1").arg(rel_err(y, ref_y))));
        QVERIFY2(rel_err(nx, ref_x) < 1e-6, qPrintable(QString("x error %1").arg(rel_err(nx, ref_x))));
        QVERIFY2(rel_err(q8, ref_y) < act_bound(planes.two, 1e-2), qPrintable(QString("q8 error %1").arg(rel_err(q8, ref_y))));
    }

    void act_data() {
        QTest::addColumn<int>("kind");
        QTest::newRow("silu") << 0;
        QTest::newRow("gelu-tanh") << 1;
        QTest::newRow("silu, one plane") << 0;
    }
    void act() {
        const PlaneScope planes;
        QFETCH(int, kind);
        const size_t n = 32 * 97;
        const auto g = randn(n, 0.0f, 3.0f), u = randn(n);
        std::vector<float> q8;
        auto got = ct::act(g, u, kind, &q8);
        QVERIFY2(got.ok(), got.ok() ? "" : got.error().to_string().c_str());
        std::vector<double> ref(n);
        for (size_t i = 0; i < n; ++i) {
            const double x = g[i];
            const double a = kind == 0 ? x / (1.0 + std::exp(-x)) : 0.5 * x * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
            ref[i] = a * u[i];
        }
        QVERIFY2(rel_err(*got, ref) < 1e-5, qPrintable(QString("error %1").arg(rel_err(*got, ref))));
        QVERIFY2(rel_err(q8, ref) < act_bound(planes.two, 1e-2), qPrintable(QString("q8 error %1").arg(rel_err(q8, ref))));
    }

    // The decode path's activation quantizer (q8_quant_warp, the one place
    // it is defined) against its rule computed on the host: per 32 values
    // amax = max |v|, d = amax / 127 (f32), r = v / d, q = round_half_even(r)
    // (0 where amax = 0); one plane: s = d * sum(q) per half block; two
    // planes: lo = round_half_even(256 (r - q)), lo = 128 as (q + 1, -128), s
    // = (d / 256) * sum(256 q + lo); bit for bit, including half-way values (v
    // / d exactly k + 0.5), all-zero blocks, a single non-zero value and tiny
    // values. Two planes also keep |v - d (q + lo / 256)| <= d / 512 (plus r's
    // own rounding).
    void q8Quantizer_data() {
        QTest::addColumn<bool>("two");
        QTest::newRow("two planes") << true;
        QTest::newRow("one plane") << false;
    }
    void q8Quantizer() {
        QFETCH(bool, two);
        ct::set_two_planes(two);
        auto reset = qScopeGuard([] { ct::set_two_planes(true); });
        const size_t n_blocks = 512;
        std::vector<float> x = randn(32 * n_blocks, 0.0f, 2.0f);
        std::uniform_int_distribution<int> pick(-126, 126);
        for (size_t b = 0; b < 64; ++b) {  // blocks of exact ties: amax 127 * 2^k, d = 2^k, values (j + 0.5) * 2^k
            float * v = x.data() + 32 * b;
            v[0] = (b & 1) ? -127.0f : 127.0f;
            for (int j = 1; j < 32; ++j) v[j] = float(pick(m_rng)) + (j & 1 ? 0.5f : -0.5f);
            for (int j = 0; j < 32; ++j) v[j] *= std::ldexp(1.0f, int(b % 9) - 4);
        }
        std::fill(x.begin() + 32 * 64, x.begin() + 32 * 66, 0.0f);
        x[32 * 65 + 5] = -3.0f;
        for (size_t i = 32 * 66; i < 32 * 67; ++i) x[i] *= 1e-30f;
        auto got = ct::q8_quantize(x);
        QVERIFY2(got.ok(), got.ok() ? "" : got.error().to_string().c_str());
        QCOMPARE(got->q.size(), x.size());
        QCOMPARE(got->lo.size(), two ? x.size() : size_t(0));
        int bad = 0, ties = 0, far = 0;
        for (size_t b = 0; b < n_blocks; ++b) {
            const float * v = x.data() + 32 * b;
            float amax = 0.0f;
            for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(v[j]));
            const float d = amax / 127.0f;
            int sum[2] = {0, 0};
            bool same = got->d[b] == d;
            for (int j = 0; j < 32; ++j) {
                const float r = d > 0.0f ? v[j] / d : 0.0f;
                ties += r - std::floor(r) == 0.5f;
                int q = int(std::nearbyint(r));
                int lo = two ? int(std::nearbyint((r - float(q)) * 256.0f)) : 0;
                if (lo == 128) { q += 1; lo = -128; }
                sum[j / 16] += two ? 256 * q + lo : q;
                same = same && got->q[32 * b + size_t(j)] == q;
                if (two) {
                    same = same && got->lo[32 * b + size_t(j)] == lo;
                    const double back = double(d) * (double(q) + double(lo) / 256.0);
                    far += std::fabs(back - double(v[j])) > double(d) * (1.0 / 512 + 1e-5);  // (+ r's rounding)
                }
            }
            const float ds = two ? d / 256.0f : d;
            same = same && got->s[2 * b] == ds * float(sum[0]) && got->s[2 * b + 1] == ds * float(sum[1]);
            if (!same && ++bad <= 3) qWarning("block %zu differs from the rule", b);
        }
        QVERIFY(ties > 1000);
        QCOMPARE(bad, 0);
        QCOMPARE(far, 0);
    }

    void qkv_post_data() {
        QTest::addColumn<bool>("neox");
        QTest::addColumn<bool>("norms");
        QTest::addColumn<bool>("bias");
        QTest::addColumn<int>("hd");
        QTest::newRow("llama normal hd128") << false << false << false << 128;
        QTest::newRow("qwen2 neox bias hd64") << true << false << true << 64;
        QTest::newRow("gemma3 neox norms hd256") << true << true << false << 256;
        QTest::newRow("tiny hd16") << false << true << true << 16;
    }
    void qkv_post() {
        QFETCH(bool, neox);
        QFETCH(bool, norms);
        QFETCH(bool, bias);
        QFETCH(int, hd);
        ct::QkvIn in;
        in.n_head = 4; in.n_head_kv = 2; in.hd = hd; in.pos0 = 37; in.n_tok = 3; in.n_ctx = 64;
        in.neox = neox; in.q_scale = 0.125f; in.eps = 1e-6f;
        const int nq = in.n_head * hd, nk = in.n_head_kv * hd;
        in.q = randn(size_t(in.n_tok * nq)); in.k = randn(size_t(in.n_tok * nk)); in.v = randn(size_t(in.n_tok * nk));
        if (bias) { in.bq = randn(size_t(nq)); in.bk = randn(size_t(nk)); in.bv = randn(size_t(nk)); }
        if (norms) { in.q_norm = randn(size_t(hd), 1.0f, 0.1f); in.k_norm = randn(size_t(hd), 1.0f, 0.1f); }
        std::vector<double> inv(static_cast<size_t>(hd / 2));
        for (int i = 0; i < hd / 2; ++i) { inv[i] = std::pow(10000.0, -2.0 * i / hd); in.inv_freq.push_back(float(inv[i])); }
        auto got = ct::qkv_post(in);
        QVERIFY2(got.ok(), got.ok() ? "" : got.error().to_string().c_str());
        auto process = [&](const float * src, const std::vector<float> & b, const std::vector<float> & nw, int h, bool rope,
                           double scale, int pos) {
            std::vector<double> v(static_cast<size_t>(hd));
            for (int i = 0; i < hd; ++i) v[i] = double(src[i]) + (b.empty() ? 0.0 : b[size_t(h * hd + i)]);
            if (!nw.empty()) {
                double ss = 0.0;
                for (double x : v) ss += x * x;
                const double sc = 1.0 / std::sqrt(ss / hd + in.eps);
                for (int i = 0; i < hd; ++i) v[i] *= sc * nw[i];
            }
            if (rope) {
                for (int i = 0; i < hd / 2; ++i) {
                    const int a = neox ? i : 2 * i, bb = neox ? i + hd / 2 : 2 * i + 1;
                    const double th = pos * double(in.inv_freq[i]);
                    const double x0 = v[a], x1 = v[bb];
                    v[a] = x0 * std::cos(th) - x1 * std::sin(th);
                    v[bb] = x0 * std::sin(th) + x1 * std::cos(th);
                }
            }
            for (double & x : v) x *= scale;
            return v;
        };
        std::vector<double> rq, rk, rv;
        for (int t = 0; t < in.n_tok; ++t) {
            for (int h = 0; h < in.n_head; ++h) {
                auto v = process(&in.q[size_t(t * nq + h * hd)], in.bq, in.q_norm, h, true, in.q_scale, in.pos0 + t);
                rq.insert(rq.end(), v.begin(), v.end());
            }
            for (int h = 0; h < in.n_head_kv; ++h) {
                auto v = process(&in.k[size_t(t * nk + h * hd)], in.bk, in.k_norm, h, true, 1.0, in.pos0 + t);
                rk.insert(rk.end(), v.begin(), v.end());
                auto w = process(&in.v[size_t(t * nk + h * hd)], in.bv, {}, h, false, 1.0, in.pos0 + t);
                rv.insert(rv.end(), w.begin(), w.end());
            }
        }
        const size_t a = rq.size(), b = rk.size();
        QCOMPARE(got->size(), a + 2 * b);
        const std::vector<float> gq(got->begin(), got->begin() + a), gk(got->begin() + a, got->begin() + a + b),
            gv(got->begin() + a + b, got->end());
        QVERIFY2(rel_err(gq, rq) < 1e-5, qPrintable(QString("q error %1").arg(rel_err(gq, rq))));
        QVERIFY2(rel_err(gk, rk) < 1e-3, qPrintable(QString("k error %1").arg(rel_err(gk, rk))));  // f16 cache
        QVERIFY2(rel_err(gv, rv) < 1e-3, qPrintable(QString("v error %1").arg(rel_err(gv, rv))));
    }

    void attention_data() {
        QTest::addColumn<int>("hd");
        QTest::addColumn<int>("window");
        QTest::addColumn<int>("n_tok");
        QTest::addColumn<int>("n_split");
        QTest::addColumn<int>("pos0");
        QTest::newRow("prefill hd128") << 128 << 0 << 9 << 1 << 0;
        QTest::newRow("prefill hd64 at 40") << 64 << 0 << 7 << 1 << 40;
        QTest::newRow("prefill hd256 window 16") << 256 << 16 << 11 << 1 << 30;
        QTest::newRow("decode hd128 split 8") << 128 << 0 << 1 << 8 << 200;
        QTest::newRow("decode hd256 window 32 split 16") << 256 << 32 << 1 << 16 << 300;
        QTest::newRow("decode hd16 split 32 (empty splits)") << 16 << 0 << 1 << 32 << 5;
        QTest::newRow("small batch hd64 split 4") << 64 << 0 << 3 << 4 << 77;
        // combine fused into the split kernel (last block per head): n_split + 1000
        QTest::newRow("fused decode hd128 split 32") << 128 << 0 << 1 << 1032 << 200;
        QTest::newRow("fused decode hd16 split 32 (empty splits)") << 16 << 0 << 1 << 1032 << 5;
        QTest::newRow("fused small batch hd256 window 32 split 16") << 256 << 32 << 3 << 1016 << 300;
        // n_tok >= 16 with one split: the tensor-core (flash) kernel; partial query and key tiles
        QTest::newRow("flash hd64 x100") << 64 << 0 << 100 << 1 << 0;
        QTest::newRow("flash hd128 x70 at 45") << 128 << 0 << 70 << 1 << 45;
        QTest::newRow("flash hd256 window 24 x90 at 30") << 256 << 24 << 90 << 1 << 30;
        QTest::newRow("flash hd32 x16 at 3") << 32 << 0 << 16 << 1 << 3;
    }
    void attention() {
        QFETCH(int, hd);
        QFETCH(int, window);
        QFETCH(int, n_tok);
        QFETCH(int, n_split);
        QFETCH(int, pos0);
        ct::AttnIn in;
        in.fused = n_split > 1000;
        if (in.fused) n_split -= 1000;
        const bool flash = n_split == 1 && n_tok >= 16;  // enough query tiles x heads for the flash kernel
        in.n_head = flash ? 48 : 8; in.n_head_kv = in.n_head / 4; in.hd = hd; in.window = window; in.pos0 = pos0; in.n_tok = n_tok;
        in.n_ctx = pos0 + n_tok; in.n_split = n_split; in.scale = float(1.0 / std::sqrt(double(hd)));
        const int nk = in.n_head_kv * hd, nq = in.n_head * hd;
        in.q = randn(size_t(n_tok * nq));
        in.k = randn(size_t(in.n_ctx * nk));
        in.v = randn(size_t(in.n_ctx * nk));
        auto got = ct::attention(in);
        QVERIFY2(got.ok(), got.ok() ? "" : got.error().to_string().c_str());
        std::vector<double> ref;
        const int group = in.n_head / in.n_head_kv;
        for (int t = 0; t < n_tok; ++t) {
            const int pos = pos0 + t, lo = window > 0 ? std::max(0, pos - window + 1) : 0;
            for (int h = 0; h < in.n_head; ++h) {
                const int g = h / group;
                std::vector<double> s;
                double mx = -INFINITY;
                for (int j = lo; j <= pos; ++j) {
                    double a = 0.0;
                    for (int i = 0; i < hd; ++i) a += double(in.q[size_t(t * nq + h * hd + i)]) * h16(in.k[size_t(j * nk + g * hd + i)]);
                    s.push_back(a * in.scale);
                    mx = std::max(mx, s.back());
                }
                double sum = 0.0;
                for (double & x : s) sum += (x = std::exp(x - mx));
                for (int i = 0; i < hd; ++i) {
                    double a = 0.0;
                    for (int j = lo; j <= pos; ++j) a += s[size_t(j - lo)] / sum * h16(in.v[size_t(j * nk + g * hd + i)]);
                    ref.push_back(a);
                }
            }
        }
        const double err = rel_err(*got, ref);
        // f32 kernel 1e-4; the flash kernel rounds Q and P to f16 (like the GEMM's 5e-3)
        const double bound = flash ? 5e-3 : 1e-4;
        qInfo("attention hd %d n_tok %d: relative error %.3g (bound %.1g)", hd, n_tok, err, bound);
        QVERIFY2(err < bound, qPrintable(QString("relative error %1").arg(err)));
    }

    // [spec] matvec_multi (the output head of a verification tree, each weight
    // read once per up to 16 tokens): every token's row bit-identical to a
    // one-token matvec of that token (the decode step's kernel), output
    // poisoned first; short rows (768, one pass) and long rows (4352, several
    // passes in flight), token counts across the 4/8/16-token variants and
    // several 16-token slices; Q5_0 takes the generic fallback.
    void headMulti_data() {
        QTest::addColumn<int>("type");
        QTest::addColumn<int>("n_cols");
        QTest::addColumn<int>("n_rows");
        for (TensorType t : {TensorType::Q8_0, TensorType::Q6_K, TensorType::Q4_K, TensorType::F16, TensorType::Q5_0}) {
            // 1003: not a multiple of the 8 rows a block
            for (int nc : {768, 4352}) QTest::newRow(qPrintable(QString("%1 k%2").arg(type_name(t)).arg(nc))) << int(t) << nc << 1003;
        }
        // the one-token kernel is the head's stream kernel (1503 rows; GB_CUDA_HEAD_ROWS=1000,
        // GB_CUDA_HEAD_GRID=5: each warp walks many row pairs)
        for (TensorType t : {TensorType::Q8_0, TensorType::Q6_K, TensorType::Q4_K, TensorType::F16}) {
            QTest::newRow(qPrintable(QString("%1 k4352 stream").arg(type_name(t)))) << int(t) << 4352 << 1503;
        }
    }
    void headMulti() {
        QFETCH(int, type);
        QFETCH(int, n_cols);
        QFETCH(int, n_rows);
        const TensorType t = TensorType(type);
        std::vector<uint8_t> bytes;
        std::vector<float> w;
        random_weight(t, n_cols, n_rows, &bytes, &w);
        const bool stream = n_rows > 1003;
        if (stream) {
            qputenv("GB_CUDA_HEAD_ROWS", "1000");
            qputenv("GB_CUDA_HEAD_GRID", "5");
        }
        auto reset_head = qScopeGuard([] { qunsetenv("GB_CUDA_HEAD_ROWS"); qunsetenv("GB_CUDA_HEAD_GRID"); });
        for (int n_tok : {2, 3, 5, 8, 11, 16, 23, 33}) {
            if (stream && n_tok != 3 && n_tok != 8) continue;
            const std::vector<float> x = randn(size_t(n_tok) * size_t(n_cols));
            auto y = ct::linear_multi(t, bytes, n_cols, n_rows, x, n_tok);
            QVERIFY2(y.ok(), y.ok() ? "" : y.error().to_string().c_str());
            QCOMPARE(y->size(), size_t(n_tok) * size_t(n_rows));
            int same = 0;
            for (int tk = 0; tk < n_tok; ++tk) {
                const std::vector<float> xt(x.begin() + size_t(tk) * n_cols, x.begin() + size_t(tk + 1) * n_cols);
                auto one = ct::linear(t, bytes, n_cols, n_rows, xt, 1, false);
                QVERIFY(one.ok());
                same += std::memcmp(one->data(), y->data() + size_t(tk) * n_rows, size_t(n_rows) * sizeof(float)) == 0;
            }
            QCOMPARE(same, n_tok);
        }
    }

    // [spec] summarize_rows against a double-precision host oracle: argmax =
    // the lowest index among the maxima (a tie at two random places, most
    // often in different parts of the split row), the maximum itself, lse =
    // log(sum exp(l - max)) to 1e-11; rows with -inf entries and a constant
    // row (lse = log n); the output poisoned first.
    void rowSummaries() {
        for (int n : {262144, 1000, 128256}) {
            for (int n_rows : {1, 3, 33}) {
                std::vector<float> x = randn(size_t(n) * size_t(n_rows), 0.0f, 3.0f);
                std::uniform_int_distribution<int> pick(0, n - 1);
                for (int r = 0; r < n_rows; ++r) {
                    float * row = x.data() + size_t(r) * n;
                    if (r % 3 == 0) {  // a tie: the same maximum at two places
                        const int a = pick(m_rng), b = pick(m_rng);
                        row[a] = row[b] = 40.0f;
                    } else if (r % 3 == 1) {
                        for (int i = 0; i < n; i += 7) row[i] = -INFINITY;
                        row[n - 1] = 25.0f;  // the last entry the maximum
                    } else if (r == 2) {
                        std::fill(row, row + n, 1.5f);  // constant: argmax 0, lse = log n
                    }
                }
                auto got = ct::row_summaries(x, n, n_rows);
                QVERIFY2(got.ok(), got.ok() ? "" : got.error().to_string().c_str());
                QCOMPARE(int(got->size()), n_rows);
                for (int r = 0; r < n_rows; ++r) {
                    const float * row = x.data() + size_t(r) * n;
                    int best = 0;
                    for (int i = 1; i < n; ++i) if (row[i] > row[best]) best = i;
                    // long double: a double running sum of 262144 terms drifts by ~1e-12
                    long double sum = 0.0L;
                    for (int i = 0; i < n; ++i) sum += std::exp((long double)(row[i]) - (long double)(row[best]));
                    const double lse = double(std::log(sum));
                    const auto & g = (*got)[size_t(r)];
                    QCOMPARE(g.argmax, best);
                    QCOMPARE(g.max, row[best]);
                    QVERIFY2(std::fabs(g.lse - lse) <= 1e-11 * std::max(1.0, std::fabs(lse)),
                             qPrintable(QString("row %1 of %2 (n %3): lse %4 vs %5").arg(r).arg(n_rows).arg(n).arg(g.lse, 0, 'g', 17).arg(lse, 0, 'g', 17)));
                }
            }
        }
    }

    void argmax_softcap() {
        const int n = 262144, n_tok = 3;
        auto x = randn(size_t(n * n_tok));
        std::vector<int> want;
        for (int t = 0; t < n_tok; ++t) {
            std::uniform_int_distribution<int> pick(0, n - 1);
            const int i = pick(m_rng);
            x[size_t(t * n + i)] = 100.0f + float(t);
            want.push_back(i);
        }
        auto got = ct::argmax_rows(x, n, n_tok);
        QVERIFY2(got.ok(), got.ok() ? "" : got.error().to_string().c_str());
        QCOMPARE(*got, want);
        const std::vector<float> small(x.begin(), x.begin() + 4096);
        auto sc = ct::softcap(small, 30.0f);
        QVERIFY(sc.ok());
        std::vector<double> ref;
        for (float v : small) ref.push_back(30.0 * std::tanh(double(v) / 30.0));
        QVERIFY2(rel_err(*sc, ref) < 1e-6, qPrintable(QString("softcap error %1").arg(rel_err(*sc, ref))));
    }
};

QTEST_APPLESS_MAIN(TstCudaKernels)
#include "tst_cuda_kernels.moc"
