// Times the CPU matmul per weight type: a matvec (decode) and an n-token
// matmul (prefill) at a realistic shape, on 1 and 2 threads; prints GB/s of
// weights streamed and GFLOP/s, with a summary table last.
//   bench_matmul [--rows N] [--cols N] [--tokens N] [--threads 1,2] [--types Q4_0,Q4_K] [--min-time S] [--scalar] [--path avx2|avx512vnni|scalar]
#include "cpu/matmul.h"
#include "cpu/thread_pool.h"
#include "glassbox/tensor_type.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <ctime>
#include <vector>

using gb::TensorType;

namespace {

struct Row {
    std::string type;
    int threads;
    double mv_ms, mv_gbs, pp_ms, pp_gflops, mv_cpu_ms, pp_cpu_ms;
};

std::vector<std::string> split(const std::string & s) {
    std::vector<std::string> out;
    size_t p = 0;
    while (p <= s.size()) {
        const size_t q = s.find(',', p);
        out.push_back(s.substr(p, q == std::string::npos ? std::string::npos : q - p));
        if (q == std::string::npos) break;
        p = q + 1;
    }
    return out;
}

void put_f16(uint8_t * p, float v) {
    const uint16_t h = gb::fp32_to_fp16(v);
    std::memcpy(p, &h, 2);
}

// Random quant bytes with small sane fp16 scales in the fields that hold them
// (never time kernels on zeros).
std::vector<uint8_t> make_weights(TensorType t, int64_t n_rows, int64_t n_cols) {
    std::mt19937 rng(42);
    const size_t rb = gb::row_size(t, n_cols);
    std::vector<uint8_t> w(rb * static_cast<size_t>(n_rows));
    if (t == TensorType::F32 || t == TensorType::F16 || t == TensorType::BF16) {
        std::uniform_real_distribution<float> uni(-0.05f, 0.05f);
        std::vector<float> row(static_cast<size_t>(n_cols));
        for (int64_t r = 0; r < n_rows; ++r) {
            for (float & v : row) v = uni(rng);
            gb::quantize_row_ref(t, row.data(), w.data() + r * rb, n_cols);
        }
        return w;
    }
    for (size_t i = 0; i < w.size(); i += 4) {
        const uint32_t v = rng();
        std::memcpy(w.data() + i, &v, std::min<size_t>(4, w.size() - i));
    }
    const size_t bs = gb::type_traits(t).type_size;
    for (size_t off = 0; off < w.size(); off += bs) {
        uint8_t * b = w.data() + off;
        switch (t) {
            case TensorType::Q2_K: put_f16(b + 80, 0.01f); put_f16(b + 82, 0.01f); break;
            case TensorType::Q3_K: put_f16(b + 108, 0.01f); break;
            case TensorType::Q6_K: put_f16(b + 208, 0.001f); break;
            case TensorType::Q4_1: case TensorType::Q5_1:
            case TensorType::Q4_K: case TensorType::Q5_K: put_f16(b, 0.001f); put_f16(b + 2, 0.001f); break;
            default: put_f16(b, 0.01f); break;
        }
    }
    return w;
}

double now_s() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

double cpu_s() {
    timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return double(ts.tv_sec) + double(ts.tv_nsec) * 1e-9;
}

// Median wall seconds per call over repetitions that fill min_time (at least
// 3), and the median process CPU seconds (all threads, spinning included):
// on a loaded shared machine the CPU time of a 1-thread run is the steadier number.
template <typename F>
double time_median(F && f, double min_time, double * cpu_median) {
    f();  // warm up
    std::vector<double> t, c;
    const double start = now_s();
    while (t.size() < 3 || (now_s() - start < min_time && t.size() < 1000)) {
        const double t0 = now_s(), c0 = cpu_s();
        f();
        t.push_back(now_s() - t0);
        c.push_back(cpu_s() - c0);
    }
    std::sort(t.begin(), t.end());
    std::sort(c.begin(), c.end());
    *cpu_median = c[c.size() / 2];
    return t[t.size() / 2];
}

}  // namespace

int main(int argc, char ** argv) {
    int64_t n_rows = 8192, n_cols = 2048, n_tokens = 512;
    double min_time = 0.5;
    std::vector<int> threads = {1, 2};
    std::vector<std::string> types = {"Q4_0", "Q8_0", "Q5_0", "Q4_K", "Q5_K", "Q6_K", "F16", "F32",
                                      "Q4_1", "Q5_1", "Q2_K", "Q3_K", "BF16"};
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        const char * v = i + 1 < argc ? argv[i + 1] : "";
        if (a == "--rows") { n_rows = std::atoll(v); ++i; }
        else if (a == "--cols") { n_cols = std::atoll(v); ++i; }
        else if (a == "--tokens") { n_tokens = std::atoll(v); ++i; }
        else if (a == "--min-time") { min_time = std::atof(v); ++i; }
        else if (a == "--threads") { threads.clear(); for (auto & s : split(v)) threads.push_back(std::atoi(s.c_str())); ++i; }
        else if (a == "--types") { types = split(v); ++i; }
        else if (a == "--scalar") { gb::cpu::force_scalar(true); }
        else if (a == "--path") {
            const std::string p = v;
            const gb::cpu::SimdPath sp = p == "scalar" ? gb::cpu::SimdPath::Scalar : p == "avx2" ? gb::cpu::SimdPath::Avx2
                                       : p == "avx512vnni" ? gb::cpu::SimdPath::Avx512Vnni : gb::cpu::SimdPath::Auto;
            if (!gb::cpu::force_simd_path(sp)) { std::fprintf(stderr, "path %s not available\n", v); return 2; }
            ++i;
        }
        else { std::fprintf(stderr, "unknown argument %s\n", a.c_str()); return 2; }
    }
    std::printf("bench_matmul: W [%lld x %lld], prefill %lld tokens, path %s\n",
                (long long)n_rows, (long long)n_cols, (long long)n_tokens, gb::cpu::simd_path());

    std::vector<float> x(static_cast<size_t>(n_tokens * n_cols));
    std::mt19937 rng(1);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    for (float & v : x) v = nd(rng);
    std::vector<float> y(static_cast<size_t>(n_tokens * n_rows));

    std::vector<Row> rows;
    for (const std::string & name : types) {
        TensorType t;
        if (!gb::type_from_name(name.c_str(), &t)) { std::fprintf(stderr, "unknown type %s\n", name.c_str()); return 2; }
        const std::vector<uint8_t> w = make_weights(t, n_rows, n_cols);
        gb::cpu::WeightView wv{t, n_cols, n_rows, gb::row_size(t, n_cols), w.data()};
        for (int nth : threads) {
            gb::cpu::ThreadPool pool(nth);
            double mv_cpu = 0, pp_cpu = 0;
            const double mv = time_median([&] { gb::cpu::matmul(wv, x.data(), 1, y.data(), pool); }, min_time, &mv_cpu);
            const double pp = time_median([&] { gb::cpu::matmul(wv, x.data(), n_tokens, y.data(), pool); }, min_time, &pp_cpu);
            Row r{name, nth, mv * 1e3, double(w.size()) / mv * 1e-9, pp * 1e3,
                  2.0 * double(n_rows) * double(n_cols) * double(n_tokens) / pp * 1e-9, mv_cpu * 1e3, pp_cpu * 1e3};
            std::printf("  %-5s t=%d  matvec %8.3f ms %7.2f GB/s (cpu %.3f ms)   prefill %9.2f ms %7.2f GFLOP/s (cpu %.1f ms)\n",
                        name.c_str(), nth, r.mv_ms, r.mv_gbs, r.mv_cpu_ms, r.pp_ms, r.pp_gflops, r.pp_cpu_ms);
            std::fflush(stdout);
            rows.push_back(r);
        }
    }
    std::printf("\n| type | threads | matvec ms | matvec GB/s | matvec cpu ms | prefill ms | prefill GFLOP/s | prefill cpu ms |\n");
    std::printf("|------|---------|-----------|-------------|---------------|------------|-----------------|----------------|\n");
    for (const Row & r : rows) {
        std::printf("| %s | %d | %.3f | %.2f | %.3f | %.2f | %.2f | %.1f |\n", r.type.c_str(), r.threads, r.mv_ms, r.mv_gbs,
                    r.mv_cpu_ms, r.pp_ms, r.pp_gflops, r.pp_cpu_ms);
    }
    return 0;
}
