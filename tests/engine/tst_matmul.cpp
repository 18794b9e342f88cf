// CPU matmul and thread pool: every weight type against a double-precision
// oracle built from dequantize_row (weights) and the activations quantized and
// dequantized by an independent copy of llama.cpp's formulas; every SIMD path
// (scalar, AVX2, AVX512-VNNI, forced one at a time, skipped where the CPU lacks
// it) incl. the prefill GEMMs; odd sizes and thread counts; thread pool stress.
#include "cpu/matmul.h"
#include "cpu/thread_pool.h"
#include "cpu/vec_dot.h"
#include "glassbox/tensor_type.h"
#include "quants.h"

#include <QtTest>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <random>
#include <thread>
#include <vector>

using gb::TensorType;

namespace {

const TensorType k_types[] = {
    TensorType::F32,  TensorType::F16,  TensorType::BF16, TensorType::Q8_0, TensorType::Q4_0,
    TensorType::Q4_1, TensorType::Q5_0, TensorType::Q5_1, TensorType::Q2_K, TensorType::Q3_K,
    TensorType::Q4_K, TensorType::Q5_K, TensorType::Q6_K,
};

// The activation format llama.cpp dots each weight type with.
TensorType act_type_of(TensorType t) {
    switch (t) {
        case TensorType::F32: case TensorType::F16: case TensorType::BF16: return t;
        case TensorType::Q4_0: case TensorType::Q5_0: case TensorType::Q8_0: return TensorType::Q8_0;
        case TensorType::Q4_1: case TensorType::Q5_1: return TensorType::Q8_1;
        default: return TensorType::Q8_K;
    }
}

void put_f16(uint8_t * p, float v) {
    const uint16_t h = gb::fp32_to_fp16(v);
    std::memcpy(p, &h, 2);
}

// Weight rows: either quantize_row_ref of random floats (realistic bytes), or
// random bytes with the fp16 scale fields overwritten by sane values (every bit
// pattern of the quants, scales and high-bit masks gets exercised).
std::vector<uint8_t> make_weights(TensorType t, int64_t n_rows, int64_t n_cols, bool random_bytes, std::mt19937 & rng) {
    const size_t rb = gb::row_size(t, n_cols);
    std::vector<uint8_t> w(rb * static_cast<size_t>(n_rows));
    std::uniform_real_distribution<float> uni(-1.0f, 1.0f);
    std::vector<float> row(static_cast<size_t>(n_cols));
    const bool is_float = t == TensorType::F32 || t == TensorType::F16 || t == TensorType::BF16;
    if (!random_bytes || is_float) {
        for (int64_t r = 0; r < n_rows; ++r) {
            const float scale = 0.02f + 0.1f * std::fabs(uni(rng));
            for (float & v : row) v = scale * uni(rng) * uni(rng) * 2.0f;
            if (!gb::quantize_row_ref(t, row.data(), w.data() + r * rb, n_cols)) qFatal("quantize_row_ref failed");
        }
        return w;
    }
    for (uint8_t & b : w) b = static_cast<uint8_t>(rng());
    const size_t bs = gb::type_traits(t).type_size;
    std::uniform_real_distribution<float> dist(0.0005f, 0.01f);
    for (size_t off = 0; off < w.size(); off += bs) {
        uint8_t * blk = w.data() + off;
        const float sign = (rng() & 1) ? 1.0f : -1.0f;
        switch (t) {
            case TensorType::Q4_0: case TensorType::Q5_0: put_f16(blk, sign * dist(rng)); break;
            case TensorType::Q8_0:
                put_f16(blk, sign * dist(rng));
                // NOTE: ggml's quantizers never emit -128 (and maddubs would saturate on it).
                for (int j = 2; j < 34; ++j) if (blk[j] == 0x80) blk[j] = 0x81;
                break;
            case TensorType::Q4_1: case TensorType::Q5_1: put_f16(blk, dist(rng)); put_f16(blk + 2, -8.0f * dist(rng)); break;
            case TensorType::Q2_K:
                put_f16(blk + offsetof(gb::block_q2_K, d), dist(rng));
                put_f16(blk + offsetof(gb::block_q2_K, dmin), dist(rng));
                break;
            case TensorType::Q3_K: put_f16(blk + offsetof(gb::block_q3_K, d), sign * dist(rng)); break;
            case TensorType::Q4_K: case TensorType::Q5_K: put_f16(blk, dist(rng) * 0.1f); put_f16(blk + 2, dist(rng) * 0.1f); break;
            case TensorType::Q6_K: put_f16(blk + offsetof(gb::block_q6_K, d), sign * dist(rng) * 0.05f); break;
            default: break;
        }
    }
    return w;
}

std::vector<float> make_activations(int64_t n_tokens, int64_t n_cols, std::mt19937 & rng) {
    std::normal_distribution<float> nd(0.0f, 1.0f);
    std::vector<float> x(static_cast<size_t>(n_tokens * n_cols));
    for (float & v : x) v = nd(rng);
    // a few outliers, as real hidden states have
    for (int64_t i = 0; i < n_tokens; ++i) x[static_cast<size_t>(i * n_cols + (i * 7) % n_cols)] *= 20.0f;
    return x;
}

// Independent restatement of llama.cpp's activation quantizers (x86 paths).
// Q8_0/Q8_1: d = amax/127, q = round_half_even(x * 127/amax); Q8_K: scale from
// the signed max-magnitude element, q = min(127, round_half_even(-127/max * x)).
// Returns the dequantized values; for Q8_1 also d * sum(q) per block.
std::vector<double> oracle_activation(TensorType act, const float * x, int64_t n, std::vector<double> * q8_1_sums) {
    std::vector<double> out(static_cast<size_t>(n));
    if (act == TensorType::F32) {
        for (int64_t i = 0; i < n; ++i) out[i] = x[i];
    } else if (act == TensorType::F16) {
        for (int64_t i = 0; i < n; ++i) out[i] = gb::fp16_to_fp32(gb::fp32_to_fp16(x[i]));
    } else if (act == TensorType::BF16) {
        for (int64_t i = 0; i < n; ++i) out[i] = gb::bf16_to_fp32(gb::fp32_to_bf16(x[i]));
    } else if (act == TensorType::Q8_0 || act == TensorType::Q8_1) {
        for (int64_t b = 0; b < n; b += 32) {
            float amax = 0.0f;
            for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[b + j]));
            const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
            const double d = gb::fp16_to_fp32(gb::fp32_to_fp16(amax / 127.0f));
            double s = 0.0;
            for (int j = 0; j < 32; ++j) {
                const double q = std::nearbyint(x[b + j] * id);
                out[b + j] = d * q;
                s += d * q;
            }
            if (q8_1_sums) q8_1_sums->push_back(s);
        }
    } else {
        for (int64_t b = 0; b < n; b += 256) {
            float amax = 0.0f, mx = 0.0f;
            for (int j = 0; j < 256; ++j) {
                if (std::fabs(x[b + j]) > amax) {
                    amax = std::fabs(x[b + j]);
                    mx = x[b + j];
                }
            }
            const float iscale = amax != 0.0f ? -127.0f / mx : 0.0f;
            const double d = amax != 0.0f ? 1.0f / iscale : 0.0f;
            for (int j = 0; j < 256; ++j) out[b + j] = d * std::min(127.0, double(std::nearbyint(iscale * x[b + j])));
        }
    }
    return out;
}

struct Oracle {
    std::vector<double> y;    // [n_tokens, n_rows]
    std::vector<double> tol;  // allowed |error| per output
};

Oracle make_oracle(TensorType t, const std::vector<uint8_t> & w, int64_t n_rows, int64_t n_cols,
                   const std::vector<float> & x, int64_t n_tokens) {
    const size_t rb = gb::row_size(t, n_cols);
    std::vector<float> wd(static_cast<size_t>(n_rows * n_cols));
    for (int64_t r = 0; r < n_rows; ++r) {
        if (!gb::dequantize_row(t, w.data() + r * rb, wd.data() + r * n_cols, n_cols)) qFatal("dequantize_row failed");
    }
    const TensorType act = act_type_of(t);
    const bool has_min = t == TensorType::Q4_1 || t == TensorType::Q5_1;
    Oracle o;
    o.y.resize(static_cast<size_t>(n_tokens * n_rows));
    o.tol.resize(o.y.size());
    for (int64_t tk = 0; tk < n_tokens; ++tk) {
        std::vector<double> sums;
        const std::vector<double> xq = oracle_activation(act, x.data() + tk * n_cols, n_cols, &sums);
        for (int64_t r = 0; r < n_rows; ++r) {
            double acc = 0.0, mag = 0.0, min_term = 0.0;
            for (int64_t c = 0; c < n_cols; ++c) {
                const double p = double(wd[r * n_cols + c]) * xq[c];
                acc += p;
                mag += std::fabs(p);
            }
            if (has_min) {
                // The kernel uses s = fp16(d * sum q): allow its fp16 rounding.
                const size_t bs = gb::type_traits(t).type_size;
                for (size_t b = 0; b < sums.size(); ++b) {
                    uint16_t m;
                    std::memcpy(&m, w.data() + r * rb + b * bs + 2, 2);
                    min_term += std::fabs(gb::fp16_to_fp32(m) * sums[b]);
                }
            }
            o.y[tk * n_rows + r] = acc;
            o.tol[tk * n_rows + r] = 3e-6 * std::sqrt(double(n_cols)) * mag + min_term * (1.0 / 1024.0) + 1e-30;
        }
    }
    return o;
}

std::vector<float> run_matmul(TensorType t, const std::vector<uint8_t> & w, int64_t n_rows, int64_t n_cols,
                              const std::vector<float> & x, int64_t n_tokens, gb::cpu::ThreadPool & pool) {
    gb::cpu::WeightView v;
    v.type = t;
    v.n_cols = n_cols;
    v.n_rows = n_rows;
    v.row_bytes = gb::row_size(t, n_cols);
    v.data = w.data();
    std::vector<float> y(static_cast<size_t>(n_tokens * n_rows), std::nanf(""));
    gb::cpu::matmul(v, x.data(), n_tokens, y.data(), pool);
    return y;
}

using gb::cpu::SimdPath;

// Forces path p; false if this CPU lacks it.
bool use_path(SimdPath p) {
    if (!gb::cpu::force_simd_path(p)) return false;
    return std::strcmp(gb::cpu::simd_path(), gb::cpu::simd_path_name(p)) == 0;
}

bool have_avx2() {
    const bool ok = use_path(SimdPath::Avx2);
    gb::cpu::force_simd_path(SimdPath::Auto);
    return ok;
}

bool is_float_type(TensorType t) { return t == TensorType::F32 || t == TensorType::F16 || t == TensorType::BF16; }

bool check_vs_oracle(const std::vector<float> & y, const Oracle & o, const QString & what) {
    for (size_t i = 0; i < y.size(); ++i) {
        const double err = std::fabs(double(y[i]) - o.y[i]);
        if (!(err <= o.tol[i])) {
            qWarning("%s out %zu: got %g want %g (tol %g)", qPrintable(what), i, double(y[i]), o.y[i], o.tol[i]);
            return false;
        }
    }
    return true;
}

}  // namespace

class TstMatmul : public QObject {
    Q_OBJECT
  private slots:
    // The canonical kernels (vec_dot.h); the llama.cpp-order ones used by
    // default (cpu::set_llamacpp_order) are checked by tst_model_llamacpp.
    void initTestCase() { gb::cpu::set_llamacpp_order(false); }
    void cleanup() { gb::cpu::force_simd_path(gb::cpu::SimdPath::Auto); }
    void activationQuantizers_data();
    void activationQuantizers();
    void matmulVsOracle_data();
    void matmulVsOracle();
    void pathsAgree_data();
    void pathsAgree();
    void largeShapesTiled_data();
    void largeShapesTiled();
    void groupMatchesSingle_data();
    void groupMatchesSingle();
    void decodeRowKernels_data();
    void decodeRowKernels();
    void smallBatchKernels_data();
    void smallBatchKernels();
    void poolRunEveryThreadOnce();
    void poolParallelForCoverage();
    void poolWakesAfterSleep();
};

void TstMatmul::activationQuantizers_data() {
    QTest::addColumn<int>("act");
    QTest::newRow("Q8_0") << int(TensorType::Q8_0);
    QTest::newRow("Q8_1") << int(TensorType::Q8_1);
    QTest::newRow("Q8_K") << int(TensorType::Q8_K);
}

// The shared activation quantizers against the oracle's independent formulas
// (bit-exact), and Q8_K against llama.cpp's quantize_row_q8_K_ref in quants.
void TstMatmul::activationQuantizers() {
    QFETCH(int, act);
    const TensorType at = TensorType(act);
    std::mt19937 rng(7);
    const int64_t n = 1024;
    std::vector<float> x = make_activations(3, n, rng);
    x[5] = 0.0f;
    std::fill(x.begin() + 256, x.begin() + 512, 0.0f);  // an all-zero block
    // a magnitude tie of opposite signs in block 2 of every row: the first one sets the sign of d
    for (int64_t t = 0; t < 3; ++t) {
        float amax = 0.0f;
        for (int j = 512; j < 768; ++j) amax = std::max(amax, std::fabs(x[size_t(t * n + j)]));
        x[size_t(t * n + 520)] = -amax;
        x[size_t(t * n + 530)] = amax;
    }
    for (int64_t t = 0; t < 3; ++t) {
        const float * xr = x.data() + t * n;
        std::vector<double> sums;
        const std::vector<double> want = oracle_activation(at, xr, n, &sums);
        std::vector<uint8_t> q(gb::row_size(at, n));
        if (at == TensorType::Q8_K) {
            gb::cpu::quantize_row_q8_K_act(xr, q.data(), n);
            std::vector<gb::block_q8_K> ref(n / 256);
            gb::quantize_row_q8_K_ref(xr, ref.data(), n);
            QVERIFY(std::memcmp(ref.data(), q.data(), q.size()) == 0);
            gb::cpu::TypeKernels k;  // the AVX2 table's vectorized quantizer: the same bytes
            if (have_avx2() && gb::cpu::avx2_kernels(TensorType::Q4_K, &k)) {
                std::vector<uint8_t> q2(q.size(), 0xab);
                k.quantize(xr, q2.data(), n);
                QVERIFY(std::memcmp(q2.data(), q.data(), q.size()) == 0);
            }
            for (int64_t b = 0; b < n / 256; ++b) {
                const auto * blk = reinterpret_cast<const gb::block_q8_K *>(q.data()) + b;
                for (int j = 0; j < 256; ++j) QCOMPARE(double(blk->d) * blk->qs[j], want[b * 256 + j]);
                for (int g = 0; g < 16; ++g) {
                    int s = 0;
                    for (int l = 0; l < 16; ++l) s += blk->qs[16 * g + l];
                    QCOMPARE(int(blk->bsums[g]), s);
                }
            }
            continue;
        }
        // both paths: scalar table and (when present) AVX2 table
        for (int path = 0; path < 2; ++path) {
            gb::cpu::TypeKernels k;
            const TensorType wt = at == TensorType::Q8_0 ? TensorType::Q4_0 : TensorType::Q4_1;
            if (path == 0 ? !gb::cpu::scalar_kernels(wt, &k) : !(have_avx2() && gb::cpu::avx2_kernels(wt, &k))) continue;
            std::fill(q.begin(), q.end(), 0);
            k.quantize(xr, q.data(), n);
            const size_t bs = gb::type_traits(at).type_size;
            for (int64_t b = 0; b < n / 32; ++b) {
                const uint8_t * blk = q.data() + b * bs;
                uint16_t dh;
                std::memcpy(&dh, blk, 2);
                const int8_t * qs = reinterpret_cast<const int8_t *>(blk + (at == TensorType::Q8_1 ? 4 : 2));
                for (int j = 0; j < 32; ++j) QCOMPARE(double(gb::fp16_to_fp32(dh)) * qs[j], want[b * 32 + j]);
                if (at == TensorType::Q8_1) {
                    uint16_t sh;
                    std::memcpy(&sh, blk + 2, 2);
                    int isum = 0;
                    for (int j = 0; j < 32; ++j) isum += qs[j];
                    float amax = 0.0f;
                    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(xr[b * 32 + j]));
                    QCOMPARE(sh, gb::fp32_to_fp16((amax / 127.0f) * float(isum)));
                    QVERIFY(std::fabs(gb::fp16_to_fp32(sh) - sums[b]) <= std::fabs(sums[b]) / 1024.0 + 1e-12);
                }
            }
        }
    }
}

void TstMatmul::matmulVsOracle_data() {
    QTest::addColumn<int>("type");
    QTest::addColumn<bool>("random_bytes");
    QTest::addColumn<int>("path");
    for (TensorType t : k_types) {
        for (int mode = 0; mode < 2; ++mode) {
            for (SimdPath p : {SimdPath::Scalar, SimdPath::Avx2, SimdPath::Avx512Vnni}) {
                const QByteArray name = QByteArray(gb::type_name(t)) + (mode ? "/random-bytes/" : "/quantized/") + gb::cpu::simd_path_name(p);
                QTest::newRow(name.constData()) << int(t) << bool(mode) << int(p);
            }
        }
    }
}

// Odd shapes: 37 rows (not a tile or strip multiple), 768 columns (771 for the
// float types: a ragged SIMD tail); 1, 3 tokens (decode kernels), 5, 17, 29
// tokens (prefill: GEMM where the path has one for that many tokens, ragged
// token tiles); 1-3 threads.
void TstMatmul::matmulVsOracle() {
    QFETCH(int, type);
    QFETCH(bool, random_bytes);
    QFETCH(int, path);
    const TensorType t = TensorType(type);
    if (!use_path(SimdPath(path))) QSKIP("path not available on this CPU");
    std::mt19937 rng(1234 + type);
    const int64_t n_rows = 37, n_cols = is_float_type(t) ? 771 : 768;
    const std::vector<uint8_t> w = make_weights(t, n_rows, n_cols, random_bytes, rng);
    for (int64_t n_tokens : {1, 3, 5, 17, 29}) {
        const std::vector<float> x = make_activations(n_tokens, n_cols, rng);
        const Oracle o = make_oracle(t, w, n_rows, n_cols, x, n_tokens);
        for (int threads : {1, 2, 3}) {
            gb::cpu::ThreadPool pool(threads);
            const std::vector<float> y = run_matmul(t, w, n_rows, n_cols, x, n_tokens, pool);
            QVERIFY2(check_vs_oracle(y, o, QString("tokens %1 threads %2").arg(n_tokens).arg(threads)), "see warning");
        }
    }
}

void TstMatmul::pathsAgree_data() {
    QTest::addColumn<int>("type");
    QTest::addColumn<int>("path");
    for (SimdPath p : {SimdPath::Scalar, SimdPath::Avx2, SimdPath::Avx512Vnni}) {
        for (TensorType t : k_types) {
            QTest::newRow((QByteArray(gb::type_name(t)) + "/" + gb::cpu::simd_path_name(p)).constData()) << int(t) << int(p);
        }
    }
}

// Bit-identity (cpu/vec_dot.h's canonical per-row formulas): every (row, token)
// output is the same float whether the token is computed alone (decode), in a
// batch of 5, 12, 17 or 64 (dot4 kernels or the GEMM, ragged tiles), on 1-3
// threads, and on this path or the scalar one. The scalar result itself is
// checked against the double oracle.
void TstMatmul::pathsAgree() {
    QFETCH(int, type);
    QFETCH(int, path);
    const TensorType t = TensorType(type);
    const SimdPath p = SimdPath(path);
    if (!use_path(p)) QSKIP("path not available on this CPU");
    std::mt19937 rng(99 + type);
    const int64_t n_rows = 37, n_cols = is_float_type(t) ? 771 : 768, n_max = 64;
    const std::vector<uint8_t> w = make_weights(t, n_rows, n_cols, true, rng);
    const std::vector<float> x = make_activations(n_max, n_cols, rng);
    // reference: the scalar path, one token at a time
    QVERIFY(use_path(SimdPath::Scalar));
    std::vector<float> ref(static_cast<size_t>(n_max * n_rows));
    {
        gb::cpu::ThreadPool pool(1);
        for (int64_t tk = 0; tk < n_max; ++tk) {
            const std::vector<float> x1(x.begin() + tk * n_cols, x.begin() + (tk + 1) * n_cols);
            const std::vector<float> y1 = run_matmul(t, w, n_rows, n_cols, x1, 1, pool);
            std::memcpy(ref.data() + tk * n_rows, y1.data(), y1.size() * sizeof(float));
        }
    }
    const Oracle o = make_oracle(t, w, n_rows, n_cols, x, n_max);
    QVERIFY2(check_vs_oracle(ref, o, "scalar reference"), "see warning");
    QVERIFY(use_path(p));
    for (int threads : {1, 2, 3}) {
        gb::cpu::ThreadPool pool(threads);
        for (int64_t n_tokens : {1, 5, 12, 17, 64}) {
            const std::vector<float> xn(x.begin(), x.begin() + n_tokens * n_cols);
            const std::vector<float> y = run_matmul(t, w, n_rows, n_cols, xn, n_tokens, pool);
            for (size_t i = 0; i < y.size(); ++i) {
                if (std::memcmp(&y[i], &ref[i], sizeof(float)) != 0) {
                    QFAIL(qPrintable(QString("tokens %1 threads %2: row %3 token %4: %5 vs scalar decode %6")
                                         .arg(n_tokens).arg(threads).arg(i % n_rows).arg(i / n_rows)
                                         .arg(double(y[i]), 0, 'g', 9).arg(double(ref[i]), 0, 'g', 9)));
                }
            }
        }
        // the same token alone, in the middle of the batch
        const std::vector<float> x1(x.begin() + 40 * n_cols, x.begin() + 41 * n_cols);
        const std::vector<float> y1 = run_matmul(t, w, n_rows, n_cols, x1, 1, pool);
        QVERIFY(std::memcmp(y1.data(), ref.data() + 40 * n_rows, y1.size() * sizeof(float)) == 0);
    }
}

void TstMatmul::groupMatchesSingle_data() {
    QTest::addColumn<int>("set");
    QTest::newRow("mixed types") << 0;
    QTest::newRow("Q5_0 x3 + Q8_0") << 1;
}

// matmul_group (q/k/v, gate/up sharing one input): the same bits as one
// matmul per weight, with weight types of one and of different activation
// formats, decode (fused), small batches (fused: 2, 7, 13 tokens) and a
// prefill batch, on 1-3 threads; and a group of one type (gemma-3's Q5_0
// q/k/v: one shared activation layout) with a Q8_0 weight after it.
void TstMatmul::groupMatchesSingle() {
    QFETCH(int, set);
    std::mt19937 rng(5);
    const int64_t n_cols = 512;
    const TensorType mixed[] = {TensorType::Q4_K, TensorType::Q6_K, TensorType::Q8_0, TensorType::F16};
    const TensorType same[] = {TensorType::Q5_0, TensorType::Q5_0, TensorType::Q5_0, TensorType::Q8_0};
    const TensorType * types = set == 0 ? mixed : same;
    const int64_t rows[] = {300, 45, 133, 64};
    std::vector<std::vector<uint8_t>> w;
    gb::cpu::WeightView views[4];
    for (int i = 0; i < 4; ++i) {
        w.push_back(make_weights(types[i], rows[i], n_cols, true, rng));
        views[i] = gb::cpu::WeightView{types[i], n_cols, rows[i], gb::row_size(types[i], n_cols), w.back().data()};
    }
    const std::vector<float> x = make_activations(20, n_cols, rng);
    for (int threads : {1, 2, 3}) {
        gb::cpu::ThreadPool pool(threads);
        for (int64_t n_tokens : {1, 2, 7, 13, 20}) {
            for (int n_w : {2, 3, 4}) {
                std::vector<std::vector<float>> got(4), want(4);
                float * ys[4];
                for (int i = 0; i < n_w; ++i) {
                    got[size_t(i)].assign(size_t(rows[i] * n_tokens), -1.0f);
                    want[size_t(i)].assign(size_t(rows[i] * n_tokens), -2.0f);
                    ys[i] = got[size_t(i)].data();
                    gb::cpu::matmul(views[i], x.data(), n_tokens, want[size_t(i)].data(), pool);
                }
                gb::cpu::matmul_group(views, ys, n_w, x.data(), n_tokens, pool);
                for (int i = 0; i < n_w; ++i) {
                    QVERIFY2(std::memcmp(got[size_t(i)].data(), want[size_t(i)].data(), got[size_t(i)].size() * sizeof(float)) == 0,
                             qPrintable(QString("weight %1 (%2) tokens %3 threads %4 group of %5")
                                            .arg(i).arg(gb::type_name(types[i])).arg(n_tokens).arg(threads).arg(n_w)));
                }
            }
        }
    }
}

void TstMatmul::decodeRowKernels_data() {
    QTest::addColumn<int>("type");
    QTest::addColumn<int>("path");
    // the types with row kernels on some path
    for (SimdPath p : {SimdPath::Avx2, SimdPath::Avx512Vnni}) {
        for (TensorType t : {TensorType::Q4_0, TensorType::Q5_0, TensorType::Q8_0, TensorType::Q4_K, TensorType::Q6_K}) {
            QTest::newRow((QByteArray(gb::type_name(t)) + "/" + gb::cpu::simd_path_name(p)).constData()) << int(t) << int(p);
        }
    }
}

// The decode row kernels called directly (TypeKernels::rows4 and ::rows, e.g.
// the 8-row AVX512-VNNI Q4_0/Q5_0/Q8_0 ones): every output bit-identical to the
// scalar one-row kernel on the same activation bytes, for every row count
// 0..40 and 61 (8-row groups, 4-row and 1-row tails), from row offsets that are
// not multiples of 4 or 8, and nothing written past the last row.
void TstMatmul::decodeRowKernels() {
    QFETCH(int, type);
    QFETCH(int, path);
    const TensorType t = TensorType(type);
    const SimdPath p = SimdPath(path);
    if (!use_path(p)) QSKIP("path not available on this CPU");
    gb::cpu::TypeKernels sk, k;
    QVERIFY(gb::cpu::scalar_kernels(t, &sk));
    const bool have = p == SimdPath::Avx2 ? gb::cpu::avx2_kernels(t, &k) : gb::cpu::avx512vnni_kernels(t, &k);
    if (!have || (k.rows4 == nullptr && k.rows == nullptr)) QSKIP("no row kernel for this type on this path");
    std::mt19937 rng(1234 + type);
    const int64_t n_rows = 67, n_cols = 768;
    const size_t rb = gb::row_size(t, n_cols);
    const std::vector<uint8_t> w = make_weights(t, n_rows, n_cols, true, rng);
    const std::vector<float> x = make_activations(1, n_cols, rng);
    // activations in the weight type's format, by the scalar quantizer (the
    // vector quantizers give the same bytes: activationQuantizers)
    QCOMPARE(int(k.act_type), int(sk.act_type));
    std::vector<uint8_t> act(gb::row_size(sk.act_type, n_cols) + 64);
    if (sk.quantize != nullptr) sk.quantize(x.data(), act.data(), n_cols);
    else std::memcpy(act.data(), x.data(), x.size() * sizeof(float));
    std::vector<float> ref(static_cast<size_t>(n_rows));
    for (int64_t r = 0; r < n_rows; ++r) sk.dot1(n_cols, w.data() + r * rb, act.data(), 0, &ref[size_t(r)]);
    auto same = [&](const float * got, int64_t r0, int64_t cnt, const char * what) {
        for (int64_t i = 0; i < cnt; ++i) {
            if (std::memcmp(&got[i], &ref[size_t(r0 + i)], sizeof(float)) != 0) {
                qWarning("%s: rows [%lld, +%lld): row %lld: %.9g vs scalar %.9g", what, (long long)r0, (long long)cnt,
                         (long long)(r0 + i), double(got[i]), double(ref[size_t(r0 + i)]));
                return false;
            }
        }
        return std::isnan(got[cnt]);  // the sentinel after the last row
    };
    for (int64_t r0 : {0, 1, 3, 5}) {
        if (k.rows4 != nullptr) {
            for (int64_t g = r0; g + 4 <= n_rows; g += 4) {
                std::vector<float> out(5, std::nanf(""));
                k.rows4(n_cols, w.data() + g * rb, rb, act.data(), out.data());
                QVERIFY2(same(out.data(), g, 4, "rows4"), "see warning");
            }
        }
        if (k.rows != nullptr) {
            for (int64_t cnt = 0; r0 + cnt <= n_rows; cnt += (cnt < 40 ? 1 : n_rows - r0 - cnt > 0 ? n_rows - r0 - cnt : 1)) {
                std::vector<float> out(static_cast<size_t>(cnt + 1), std::nanf(""));
                k.rows(n_cols, w.data() + r0 * rb, rb, cnt, act.data(), out.data());
                QVERIFY2(same(out.data(), r0, cnt, "rows"), "see warning");
            }
        }
    }
}

void TstMatmul::smallBatchKernels_data() {
    QTest::addColumn<int>("type");
    for (TensorType t : k_types) QTest::newRow(gb::type_name(t)) << int(t);
}

// The small-batch kernels (vec_dot.h MultiKernels: 2..16 tokens, each weight
// row read once), called directly: every (row, token) output bit-identical to
// the scalar one-row kernel on the same activation bytes, for every token count
// 1..16, row counts 0..9, 13, 17 and the rest from offsets 0 and 3 (4-row
// groups and tails), rows longer than one decode chunk and rows of at most
// one (the 32-block types' software-pipelined groups), nothing written
// outside [nt rows of ldo) x [cnt), with the groups' software pipelining on
// and off; then through cpu::matmul for 1..16 tokens
// on 1-3 threads against the one-token (decode) matmul.
void TstMatmul::smallBatchKernels() {
    QFETCH(int, type);
    const TensorType t = TensorType(type);
    if (!use_path(SimdPath::Avx512Vnni)) QSKIP("AVX512-VNNI not available on this CPU");
    gb::cpu::MultiKernels m;
    gb::cpu::TypeKernels sk, k;
    QVERIFY(gb::cpu::scalar_kernels(t, &sk));
    QVERIFY(gb::cpu::avx512vnni_kernels(t, &k));
    const bool have = gb::cpu::avx512vnni_multi(t, &m);
    if (t == TensorType::Q4_0 || t == TensorType::Q5_0 || t == TensorType::Q8_0 || t == TensorType::Q4_K || t == TensorType::Q6_K) {
        QVERIFY2(have, "the real model's weight types must have a small-batch kernel");
    }
    std::mt19937 rng(777 + type);
    // 72 32-blocks: > one decode chunk; 640 / 768: within one (gemma-3-270m's rows are 640)
    const int64_t short_cols = gb::type_traits(t).block_size == 256 ? 768 : 640;
    for (const int64_t n_cols : {is_float_type(t) ? int64_t(771) : int64_t(2304), is_float_type(t) ? int64_t(0) : short_cols}) {
    if (n_cols == 0) continue;
    const int64_t n_rows = 41;
    const size_t rb = gb::row_size(t, n_cols);
    const std::vector<uint8_t> w = make_weights(t, n_rows, n_cols, true, rng);
    const int n_max = gb::cpu::k_multi_max_tokens;
    const std::vector<float> x = make_activations(n_max, n_cols, rng);
    if (have) {
        QCOMPARE(int(k.act_type), int(sk.act_type));
        const size_t arb = gb::row_size(sk.act_type, n_cols);
        std::vector<uint8_t> act(arb * size_t(n_max));
        for (int tk = 0; tk < n_max; ++tk) sk.quantize(x.data() + tk * n_cols, act.data() + size_t(tk) * arb, n_cols);
        std::vector<float> ref(size_t(n_max * n_rows));
        for (int tk = 0; tk < n_max; ++tk)
            for (int64_t r = 0; r < n_rows; ++r) sk.dot1(n_cols, w.data() + r * rb, act.data() + size_t(tk) * arb, 0, &ref[size_t(tk * n_rows + r)]);
        std::vector<uint8_t> prep_buf;
        for (const bool pipelined : {true, false}) {
        gb::cpu::set_small_batch_pipelining(pipelined);
        for (int nt = 1; nt <= n_max; ++nt) {
            prep_buf.assign(m.prep_bytes(n_cols, nt) + 64, 0xcd);
            uint8_t * prep = prep_buf.data() + ((64 - reinterpret_cast<uintptr_t>(prep_buf.data()) % 64) % 64);
            m.prep(act.data(), arb, nt, n_cols, prep);
            for (int64_t r0 : {0, 3}) {
                for (int64_t cnt : {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 13, 17, -1}) {
                    if (cnt < 0) cnt = n_rows - r0;
                    const size_t ldo = size_t(cnt) + 2;
                    std::vector<float> out(size_t(nt) * ldo + 1, std::nanf(""));
                    m.run(n_cols, w.data() + r0 * rb, rb, cnt, prep, nt, out.data(), ldo);
                    for (int tk = 0; tk < nt; ++tk) {
                        for (size_t i = 0; i < ldo; ++i) {
                            const float got = out[size_t(tk) * ldo + i];
                            if (int64_t(i) >= cnt) {
                                QVERIFY2(std::isnan(got), qPrintable(QString("nt %1 rows [%2, +%3): written past the rows").arg(nt).arg(r0).arg(cnt)));
                                continue;
                            }
                            const float want = ref[size_t(tk * n_rows + r0 + int64_t(i))];
                            if (std::memcmp(&got, &want, sizeof(float)) != 0) {
                                QFAIL(qPrintable(QString("%8 cols, pipelined %9, nt %1 rows [%2, +%3): row %4 token %5: %6 vs scalar %7").arg(nt).arg(r0).arg(cnt)
                                                     .arg(r0 + int64_t(i)).arg(tk).arg(double(got), 0, 'g', 9).arg(double(want), 0, 'g', 9).arg(n_cols).arg(pipelined)));
                            }
                        }
                    }
                    QVERIFY(std::isnan(out.back()));
                }
            }
        }
        }
        gb::cpu::set_small_batch_pipelining(true);
    }
    // through cpu::matmul (any type: the kernels or the fallback paths)
    for (int threads : {1, 2, 3}) {
        gb::cpu::ThreadPool pool(threads);
        std::vector<float> one(size_t(n_max * n_rows));
        for (int tk = 0; tk < n_max; ++tk) {
            const std::vector<float> x1(x.begin() + tk * n_cols, x.begin() + (tk + 1) * n_cols);
            const std::vector<float> y1 = run_matmul(t, w, n_rows, n_cols, x1, 1, pool);
            std::memcpy(one.data() + tk * n_rows, y1.data(), y1.size() * sizeof(float));
        }
        for (int64_t nt = 2; nt <= n_max; ++nt) {
            const std::vector<float> xn(x.begin(), x.begin() + nt * n_cols);
            const std::vector<float> y = run_matmul(t, w, n_rows, n_cols, xn, nt, pool);
            QVERIFY2(std::memcmp(y.data(), one.data(), y.size() * sizeof(float)) == 0,
                     qPrintable(QString("cpu::matmul, %1 tokens, %2 threads, %3 columns").arg(nt).arg(threads).arg(n_cols)));
        }
    }
    }
}

void TstMatmul::largeShapesTiled_data() {
    QTest::addColumn<int>("type");
    QTest::addColumn<int>("path");
    for (SimdPath p : {SimdPath::Avx2, SimdPath::Avx512Vnni}) {
        for (TensorType t : {TensorType::Q4_K, TensorType::Q6_K, TensorType::Q8_0, TensorType::Q5_0, TensorType::F16, TensorType::F32}) {
            QTest::newRow((QByteArray(gb::type_name(t)) + "/" + gb::cpu::simd_path_name(p)).constData()) << int(t) << int(p);
        }
    }
}

// Shapes big enough for the parallel matvec and several prefill tiles / GEMM
// panels in both directions (rows beyond one panel, tokens beyond one tile,
// token ranges split across threads, ragged ends).
void TstMatmul::largeShapesTiled() {
    QFETCH(int, type);
    QFETCH(int, path);
    const TensorType t = TensorType(type);
    if (!use_path(SimdPath(path))) QSKIP("path not available on this CPU");
    std::mt19937 rng(5 + type);
    for (int64_t n_rows : {1100, 40}) {
        const int64_t n_cols = 512;
        const std::vector<uint8_t> w = make_weights(t, n_rows, n_cols, false, rng);
        for (int64_t n_tokens : {1, 70}) {
            const std::vector<float> x = make_activations(n_tokens, n_cols, rng);
            const Oracle o = make_oracle(t, w, n_rows, n_cols, x, n_tokens);
            for (int threads : {2, 3}) {
                gb::cpu::ThreadPool pool(threads);
                const std::vector<float> y = run_matmul(t, w, n_rows, n_cols, x, n_tokens, pool);
                QVERIFY2(check_vs_oracle(y, o, QString("rows %1 tokens %2 threads %3").arg(n_rows).arg(n_tokens).arg(threads)), "see warning");
            }
        }
    }
}

// Many small run() calls: each call runs fn exactly once on every thread index.
void TstMatmul::poolRunEveryThreadOnce() {
    for (int n : {1, 2, 3, 5}) {
        gb::cpu::ThreadPool pool(n);
        QCOMPARE(pool.size(), n);
        std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
        std::atomic<int> bad{0};
        const int rounds = 20000;
        for (int round = 0; round < rounds; ++round) {
            pool.run([&](int ith, int nth) {
                if (nth != n || ith < 0 || ith >= n) bad.fetch_add(1);
                else hits[static_cast<size_t>(ith)].fetch_add(1, std::memory_order_relaxed);
            });
        }
        QCOMPARE(bad.load(), 0);
        for (int i = 0; i < n; ++i) QCOMPARE(hits[static_cast<size_t>(i)].load(), rounds);
    }
}

// parallel_for visits every index exactly once, for awkward n and grain.
void TstMatmul::poolParallelForCoverage() {
    for (int threads : {1, 2, 3}) {
        gb::cpu::ThreadPool pool(threads);
        for (int64_t n : {0, 1, 2, 3, 5, 17, 64, 1000, 4097}) {
            for (int64_t grain : {1, 3, 64, 5000}) {
                std::vector<std::atomic<int>> seen(static_cast<size_t>(n));
                std::atomic<int> bad{0};
                pool.parallel_for(n, grain, [&](int64_t b, int64_t e) {
                    if (b < 0 || e > n || b >= e) bad.fetch_add(1);
                    for (int64_t i = b; i < e && i >= 0 && i < n; ++i) seen[static_cast<size_t>(i)].fetch_add(1);
                });
                QCOMPARE(bad.load(), 0);
                for (int64_t i = 0; i < n; ++i) QCOMPARE(seen[static_cast<size_t>(i)].load(), 1);
            }
        }
    }
}

// Workers that went to sleep on the condition variable wake for the next job.
void TstMatmul::poolWakesAfterSleep() {
    gb::cpu::ThreadPool pool(3);
    for (int round = 0; round < 5; ++round) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        std::atomic<int> count{0};
        pool.run([&](int, int) { count.fetch_add(1); });
        QCOMPARE(count.load(), 3);
    }
}

QTEST_APPLESS_MAIN(TstMatmul)
#include "tst_matmul.moc"
