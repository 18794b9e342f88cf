// Programmatic dependent launch (Hopper): a kernel launched with launch_pdl may
// start while the previous kernel in the stream is still running. Every kernel
// so launched calls pdl_trigger() early (lets the next one start launching) and
// pdl_wait() before it reads anything a previous kernel wrote or writes
// anything; only immutable data (weights) may be touched before pdl_wait().
// Both are no-ops when the kernel was launched normally. GB_CUDA_PDL=0 turns
// the attribute off (plain stream order).
#pragma once

#include <cuda_runtime.h>

#include <cstdlib>
#include <utility>

namespace gb::cuda {

__device__ __forceinline__ void pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}
__device__ __forceinline__ void pdl_trigger() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

inline bool pdl_enabled() {
    static const bool on = [] {
        const char * e = std::getenv("GB_CUDA_PDL");
        return !(e && e[0] == '0');
    }();
    return on;
}

// Launches kernel k on stream s, with the programmatic-serialization attribute
// when enabled and s is a created stream (not the legacy default stream).
template <typename... KArgs, typename... Args>
cudaError_t launch_pdl(void (*k)(KArgs...), dim3 grid, dim3 block, size_t smem, cudaStream_t s, Args &&... args) {
    cudaLaunchConfig_t cfg{};
    cfg.gridDim = grid;
    cfg.blockDim = block;
    cfg.dynamicSmemBytes = smem;
    cfg.stream = s;
    cudaLaunchAttribute at[1];
    at[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    at[0].val.programmaticStreamSerializationAllowed = 1;
    cfg.attrs = at;
    cfg.numAttrs = (s != nullptr && pdl_enabled()) ? 1 : 0;
    return cudaLaunchKernelEx(&cfg, k, std::forward<Args>(args)...);
}

}  // namespace gb::cuda
