// cuBLAS through dlopen: a five-function table (create, set stream, set
// workspace, GemmEx, status string), one handle and a 32 MiB workspace per
// device, a mutex around each enqueue. The handle's stream is set for every
// call, so the callers' streams (Context, BatchForward) can share it.
#include "cublas_dl.h"

#include <dlfcn.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <type_traits>

namespace gb::cuda::blas {
namespace {

// The few ABI values we use (cublas_api.h / library_types.h; stable across
// cuBLAS 11-13), declared here so the build needs no cuBLAS headers.
using Handle = void *;
using StatusT = int;
constexpr int kOpN = 0, kOpT = 1;
constexpr int kR16F = 2, kR16BF = 14, kR32F = 0;
constexpr int kCompute32F = 68;
constexpr int kGemmDefault = -1;
constexpr int kMaxDevices = 16;
constexpr size_t kWorkspace = size_t(32) << 20;

struct Table {
    StatusT (*create)(Handle *) = nullptr;
    StatusT (*set_stream)(Handle, cudaStream_t) = nullptr;
    StatusT (*set_workspace)(Handle, void *, size_t) = nullptr;
    StatusT (*gemm_ex)(Handle, int, int, int, int, int, const void *, const void *, int, int, const void *, int, int,
                       const void *, void *, int, int, int, int) = nullptr;
    StatusT (*get_property)(int, int *) = nullptr;
    const char * (*status_string)(StatusT) = nullptr;
};

struct Lib {
    bool        ok = false;
    std::string line;
    Table       f;
    std::mutex  mu;
    Handle      handle[kMaxDevices] = {};
    void *      workspace[kMaxDevices] = {};
    bool        failed[kMaxDevices] = {};  // handle or workspace could not be made: our kernels there
};

Lib & lib() {
    static Lib * l = [] {
        auto * L = new Lib;  // never freed: handles live for the process
        const char * off = std::getenv("GB_CUDA_CUBLAS");
        if (off && off[0] == '0') {
            L->line = "cuBLAS off (GB_CUDA_CUBLAS=0): our wmma kernels";
            return L;
        }
        const char * env_path = std::getenv("GB_CUBLAS_PATH");
        const char * names[] = {env_path, "libcublas.so.13", "/usr/local/cuda/lib64/libcublas.so.13", "libcublas.so.12",
                                "/usr/local/cuda/lib64/libcublas.so.12"};
        void *       h = nullptr;
        const char * used = nullptr;
        std::string  errs;
        for (const char * n : names) {
            if (!n || !*n) continue;
            h = dlopen(n, RTLD_NOW | RTLD_LOCAL);
            if (h) { used = n; break; }
            const char * e = dlerror();
            if (errs.empty() && e) errs = e;
        }
        if (!h) {
            L->line = "cuBLAS not found (" + errs + "): our wmma kernels";
            return L;
        }
        auto sym = [&](auto & fp, const char * name) {
            fp = reinterpret_cast<std::remove_reference_t<decltype(fp)>>(dlsym(h, name));
            return fp != nullptr;
        };
        Table & t = L->f;
        if (!sym(t.create, "cublasCreate_v2") || !sym(t.set_stream, "cublasSetStream_v2") ||
            !sym(t.set_workspace, "cublasSetWorkspace_v2") || !sym(t.gemm_ex, "cublasGemmEx") ||
            !sym(t.get_property, "cublasGetProperty") || !sym(t.status_string, "cublasGetStatusString")) {
            L->line = std::string("cuBLAS at ") + used + " lacks a symbol we need: our wmma kernels";
            dlclose(h);
            return L;
        }
        int major = 0, minor = 0, patch = 0;
        t.get_property(0, &major);  // MAJOR_VERSION, MINOR_VERSION, PATCH_LEVEL
        t.get_property(1, &minor);
        t.get_property(2, &patch);
        L->ok = true;
        L->line = "cuBLAS " + std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(patch) + " (" + used +
                  ")";
        return L;
    }();
    return *l;
}

// The current device's handle, made on first use (under L.mu). A device where
// that fails (old driver for this cuBLAS, no memory) says so once on stderr and
// keeps our kernels.
Handle device_handle(Lib & L, int * dev_out) {
    int dev = 0;
    if (cudaGetDevice(&dev) != cudaSuccess || dev < 0 || dev >= kMaxDevices) return nullptr;
    *dev_out = dev;
    if (L.handle[dev] || L.failed[dev]) return L.handle[dev];
    Handle h = nullptr;
    void * ws = nullptr;
    const StatusT st = L.f.create(&h);
    cudaError_t e = cudaSuccess;
    if (st == 0) e = cudaMalloc(&ws, kWorkspace);
    if (st != 0 || e != cudaSuccess) {
        std::fprintf(stderr, "glassbox: cuBLAS unusable on device %d (%s): our GEMM kernels there\n", dev,
                     st != 0 ? L.f.status_string(st) : cudaGetErrorString(e));
        L.failed[dev] = true;
        (void)cudaGetLastError();
        return nullptr;  // (a handle made before a failed workspace is kept: cuBLAS handles are cheap)
    }
    L.handle[dev] = h;
    L.workspace[dev] = ws;
    return h;
}

}  // namespace

bool available() {
    Lib & L = lib();
    if (!L.ok) return false;
    std::lock_guard<std::mutex> lock(L.mu);
    int dev = 0;
    return device_handle(L, &dev) != nullptr;
}
const std::string & describe() { return lib().line; }

Status gemm_xwT(Operand t, const void * w, int64_t ldw, const void * x, int64_t ldx, float * y, int64_t ldy, int M, int N,
                int K, cudaStream_t s) {
    Lib & L = lib();
    if (!L.ok) return make_error(ErrorCode::Unsupported, "cuBLAS gemm: " + L.line);
    if (ldw > INT32_MAX || ldx > INT32_MAX || ldy > INT32_MAX)
        return make_error(ErrorCode::Unsupported, "cuBLAS gemm: leading dimension over 2^31");
    std::lock_guard<std::mutex> lock(L.mu);
    auto check = [&](StatusT st, const char * what) -> Status {
        if (st == 0) return {};
        return make_error(ErrorCode::Internal, std::string("cuBLAS: ") + what + " failed: " + L.f.status_string(st) + " (" +
                                                   std::to_string(st) + ")");
    };
    int dev = 0;
    const Handle h = device_handle(L, &dev);
    if (!h) return make_error(ErrorCode::Unsupported, "cuBLAS gemm: no handle on this device");
    // Stream first: setting it resets the workspace to cuBLAS's own pool.
    GB_TRY_STATUS(check(L.f.set_stream(h, s), "cublasSetStream"));
    GB_TRY_STATUS(check(L.f.set_workspace(h, L.workspace[dev], kWorkspace), "cublasSetWorkspace"));
    const float one = 1.0f, zero = 0.0f;
    const int dt = t == Operand::F16 ? kR16F : kR16BF;
    // Column-major view: Y^T [N, M] (ld ldy) = (W^T)^T [N, K] . X^T [K, M].
    return check(L.f.gemm_ex(h, kOpT, kOpN, N, M, K, &one, w, dt, int(ldw), x, dt, int(ldx), &zero, y, kR32F, int(ldy),
                             kCompute32F, kGemmDefault),
                 "cublasGemmEx");
}

}  // namespace gb::cuda::blas
