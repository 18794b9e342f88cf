// Device helpers for a row's argmax with the lowest index on ties, shared by
// the greedy argmax kernel (ops.cu) and the logits-row summaries (tree.cu).
#pragma once

#include <cmath>

namespace gb::cuda {

// This thread's (best, idx) over r[i] for i = b + threadIdx.x, + blockDim.x, ... < e
// (idx 0x7fffffff and best -inf when it has none).
__device__ __forceinline__ void argmax_scan(const float * r, int b, int e, float & best, int & idx) {
    best = -INFINITY;
    idx = 0x7fffffff;
    for (int i = b + int(threadIdx.x); i < e; i += int(blockDim.x)) {
        const float v = r[i];
        if (v > best) { best = v; idx = i; }  // first index on ties within a thread
    }
}

// Every lane ends with the warp's (best, idx): the largest value, lowest index on ties.
__device__ __forceinline__ void argmax_warp(float & best, int & idx) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        const float ov = __shfl_xor_sync(0xffffffffu, best, o);
        const int oi = __shfl_xor_sync(0xffffffffu, idx, o);
        if (ov > best || (ov == best && oi < idx)) { best = ov; idx = oi; }
    }
}

}  // namespace gb::cuda
