// CUDA backend: device discovery and a self-test kernel. Runs on machines with
// no driver (static runtime): probe() reports why CUDA is unavailable.
#include "glassbox/cuda_backend.h"
#include "cublas_dl.h"

#include <cuda_runtime.h>

#include <cstdio>
#include <string>

namespace gb::cuda {

namespace {

// y[i] = a * x[i] + y[i]
__global__ void saxpy_kernel(int n, float a, const float * x, float * y) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = a * x[i] + y[i];
}

std::string err_text(cudaError_t e) { return std::string(cudaGetErrorName(e)) + ": " + cudaGetErrorString(e); }

// Runs a tiny kernel and checks the result, so "available" means kernels launch.
bool self_test(std::string * why) {
    const int n = 256;
    float host_x[n], host_y[n];
    for (int i = 0; i < n; ++i) { host_x[i] = float(i); host_y[i] = 1.0f; }
    float *dx = nullptr, *dy = nullptr;
    cudaError_t e = cudaMalloc(&dx, n * sizeof(float));
    if (e == cudaSuccess) e = cudaMalloc(&dy, n * sizeof(float));
    if (e == cudaSuccess) e = cudaMemcpy(dx, host_x, sizeof host_x, cudaMemcpyHostToDevice);
    if (e == cudaSuccess) e = cudaMemcpy(dy, host_y, sizeof host_y, cudaMemcpyHostToDevice);
    if (e == cudaSuccess) {
        saxpy_kernel<<<(n + 127) / 128, 128>>>(n, 2.0f, dx, dy);
        e = cudaGetLastError();
    }
    if (e == cudaSuccess) e = cudaMemcpy(host_y, dy, sizeof host_y, cudaMemcpyDeviceToHost);
    cudaFree(dx);
    cudaFree(dy);
    if (e != cudaSuccess) { *why = "self-test failed: " + err_text(e); return false; }
    for (int i = 0; i < n; ++i) {
        if (host_y[i] != 2.0f * float(i) + 1.0f) { *why = "self-test computed a wrong result"; return false; }
    }
    return true;
}

}  // namespace

DeviceReport probe() {
    DeviceReport r;
    r.compiled = true;
    int count = 0;
    const cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess) {
        r.message = "CUDA unavailable (" + err_text(e) + "); using the CPU";
        return r;
    }
    if (count == 0) {
        r.message = "no CUDA device found; using the CPU";
        return r;
    }
    for (int d = 0; d < count; ++d) {
        cudaDeviceProp p{};
        if (cudaGetDeviceProperties(&p, d) != cudaSuccess) continue;
        char line[512];
        std::snprintf(line, sizeof line, "%s (sm_%d%d, %.0f GiB)", p.name, p.major, p.minor,
                      double(p.totalGlobalMem) / (1024.0 * 1024.0 * 1024.0));
        r.devices.emplace_back(line);
    }
    std::string why;
    if (!self_test(&why)) {
        r.message = "CUDA device present but " + why + "; using the CPU";
        return r;
    }
    r.available = true;
    // Which library the prefill GEMMs use (loaded once): "cuBLAS 13.1.0 (libcublas.so.13)" or why not.
    r.message = std::to_string(count) + " CUDA device(s); prefill GEMMs: " + blas::describe();
    return r;
}

}  // namespace gb::cuda
