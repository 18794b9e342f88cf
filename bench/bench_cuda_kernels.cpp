// Device times of single decode kernels on Llama-8B/1B shapes (weights of
// random bytes, rotated past the L2 cache), with the bandwidth they reach.
// Prints a table; asserts nothing. Needs an NVIDIA GPU.
#include "glassbox/tensor_type.h"
#include "test_api.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>

using namespace gb;

int main() {
    std::string why;
    if (!cuda::testing::device_available(&why)) {
        std::fprintf(stderr, "bench_cuda_kernels: no CUDA device: %s\n", why.c_str());
        return 1;
    }
    struct Case { const char * what; TensorType t; int64_t cols, rows; const char * label; };
    const Case cases[] = {
        {"matvec", TensorType::Q4_K, 4096, 6144, "8B qkv-sized Q4_K"},
        {"matvec", TensorType::Q4_K, 4096, 4096, "8B attn_output Q4_K"},
        {"matvec", TensorType::Q4_K, 14336, 4096, "8B ffn_down Q4_K"},
        {"matvec", TensorType::Q6_K, 14336, 4096, "8B ffn_down Q6_K"},
        {"matvec", TensorType::Q4_K, 4096, 14336, "8B ffn_gate Q4_K (alone)"},
        {"glu", TensorType::Q4_K, 4096, 14336, "8B gate+up fused Q4_K"},
        {"matvec", TensorType::Q6_K, 4096, 128256, "8B output Q6_K"},
        {"matvec", TensorType::Q4_K, 2048, 8192, "1B ffn_gate Q4_K (alone)"},
        {"glu", TensorType::Q4_K, 2048, 8192, "1B gate+up fused Q4_K"},
        {"matvec", TensorType::Q8_0, 8192, 2048, "1B ffn_down Q8_0"},
        {"matvec", TensorType::F16, 8192, 2048, "1B ffn_down F16"},
        {"glu", TensorType::F16, 2048, 8192, "1B gate+up fused F16"},
        {"add_norm", TensorType::F32, 4096, 1, "add_norm 4096 (+q8)"},
        {"add_norm", TensorType::F32, 2048, 1, "add_norm 2048 (+q8)"},
    };
    // The default decode's activations (one int8 plane); GB_BENCH_TWO_PLANES=1:
    // precise decode's two planes. (Until the eighth session this bench ran
    // with the test harness's default, two planes, since h7/agree2.)
    const char * tp = std::getenv("GB_BENCH_TWO_PLANES");
    cuda::testing::set_two_planes(tp && tp[0] == '1');
    std::printf("activations: %s\n", cuda::testing::two_planes() ? "two int8 planes (precise decode)" : "one int8 plane (default decode)");
    std::printf("| kernel | shape (cols x rows) | us | GB/s |\n|---|---|---:|---:|\n");
    for (const Case & c : cases) {
        const double mat = double(row_size(c.t, c.cols)) * double(c.rows);
        const int iters = int(std::min(200.0, std::max(10.0, 2e9 / mat)));
        auto r = cuda::testing::time_kernel(c.what, c.t, c.cols, c.rows, iters);
        if (!r) {
            std::printf("| %s | %lld x %lld | error: %s | |\n", c.label, (long long)c.cols, (long long)c.rows, r.error().to_string().c_str());
            continue;
        }
        const double bytes = std::string(c.what) == "add_norm" ? 0.0
                             : double(row_size(c.t, c.cols)) * double(c.rows) * (std::string(c.what) == "glu" ? 2 : 1);
        std::printf("| %s | %lld x %lld | %.2f | %.0f |\n", c.label, (long long)c.cols, (long long)c.rows, *r, bytes / (*r * 1e3));
    }
    return 0;
}
