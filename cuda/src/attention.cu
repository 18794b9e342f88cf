// Attention over the f16 KV cache, flash style (online softmax, no score
// matrix): block (split, head, query) = 4 warps, each warp walks every 4th key
// of the split's range, two keys a step; lane l holds head dims [l*DPL,
// l*DPL+DPL). Partial (max, sum, acc) per split are merged by a second kernel,
// or (AttnArgs::counters) by the last of the head's split blocks to finish,
// so decode spreads one query over many blocks (split-K flash-decoding). GQA: head h reads KV
// head h / (n_head / n_head_kv). Sliding windows bound the key range.
// [spec] Token trees: a query's keys at positions past the committed ones are
// read from its ancestors' cache rows (AttnArgs::tree_rows).
#include "kernels.h"
#include "pdl.cuh"
#include "quant_decode.cuh"

#include <cuda_fp16.h>

namespace gb::cuda {
namespace {

constexpr int kAttnWarps = 4;

template <int DPL>
__device__ __forceinline__ void load_h(const __half * p, float * v) {
    if constexpr (DPL == 1) {
        v[0] = __half2float(*p);
    } else if constexpr (DPL == 2) {
        const float2 f = __half22float2(*reinterpret_cast<const __half2 *>(p));
        v[0] = f.x; v[1] = f.y;
    } else if constexpr (DPL == 4) {
        const uint2 u = *reinterpret_cast<const uint2 *>(p);
        const float2 a = __half22float2(*reinterpret_cast<const __half2 *>(&u.x));
        const float2 b = __half22float2(*reinterpret_cast<const __half2 *>(&u.y));
        v[0] = a.x; v[1] = a.y; v[2] = b.x; v[3] = b.y;
    } else {
        const uint4 u = *reinterpret_cast<const uint4 *>(p);
        const uint32_t w[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            const float2 f = __half22float2(*reinterpret_cast<const __half2 *>(&w[i]));
            v[2 * i] = f.x; v[2 * i + 1] = f.y;
        }
    }
}

// Merges the n_split partials of (head h, token t) into out (and its q8);
// any block size. The partials come through L2 (__ldcg): in the fused path
// other blocks of the same launch wrote them.
__device__ __forceinline__ void combine_head(const AttnArgs & a, int n_split, int h, int t) {
    const int hd = a.hd;
    const size_t base = (size_t(t) * a.n_head + h) * n_split;
    float M = -INFINITY;
    for (int s = 0; s < n_split; ++s) M = fmaxf(M, __ldcg(a.part_ml + 2 * (base + s)));
    float L = 0.0f;
    for (int s = 0; s < n_split; ++s) {
        const float ms = __ldcg(a.part_ml + 2 * (base + s));
        if (ms != -INFINITY) L += expf(ms - M) * __ldcg(a.part_ml + 2 * (base + s) + 1);
    }
    const float inv = L > 0.0f ? 1.0f / L : 0.0f;
    // With q8 output (hd % 32 == 0): each warp's 32 consecutive d values form
    // one q8 block; warps past hd skip whole.
    for (int d = threadIdx.x; d < hd; d += blockDim.x) {
        float v = 0.0f;
        for (int s = 0; s < n_split; ++s) {
            const float ms = __ldcg(a.part_ml + 2 * (base + s));
            if (ms != -INFINITY) v += expf(ms - M) * __ldcg(a.part_acc + (base + s) * hd + d);
        }
        const size_t o = size_t(t) * a.n_head * hd + size_t(h) * hd + d;
        a.out[o] = v * inv;
        if (a.q8.q) q8_quant_warp(v * inv, int64_t(o / 32), a.q8);
    }
}

template <int DPL>
__global__ void __launch_bounds__(kAttnWarps * 32) attn_partial_kernel(const AttnArgs a, const int * __restrict__ pos0, int n_split) {
    __shared__ float s_m[kAttnWarps], s_l[kAttnWarps];
    __shared__ float s_acc[kAttnWarps][DPL * 32];
    pdl_trigger();
    pdl_wait();
    const int split = blockIdx.x, h = blockIdx.y, t = blockIdx.z;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int hd = a.hd, group = a.n_head / a.n_head_kv, g = h / group;
    const int n_kv_row = a.n_head_kv * hd;
    const int n_past = *pos0;
    const int pos = a.tree_rows ? a.tree_pos[t] : n_past + t;
    const int * anc = a.tree_rows ? a.tree_rows + size_t(t) * a.tree_stride - n_past : nullptr;  // anc[p]: row of position p >= n_past
    const int lo = a.window > 0 ? max(0, pos - a.window + 1) : 0;
    const int len = pos + 1 - lo;
    const int chunk = (len + n_split - 1) / n_split;
    const int s0 = lo + split * chunk, s1 = min(pos + 1, s0 + chunk);
    const int d0 = lane * DPL;
    const bool active = d0 < hd;

    float q[DPL], acc[DPL];
    const float * qp = a.q + size_t(t) * a.n_head * hd + size_t(h) * hd;
#pragma unroll
    for (int i = 0; i < DPL; ++i) {
        q[i] = active ? qp[d0 + i] * a.scale : 0.0f;
        acc[i] = 0.0f;
    }
    float m = -INFINITY, l = 0.0f;
    const __half * kb = a.k + size_t(g) * hd + d0;
    const __half * vb = a.v + size_t(g) * hd + d0;
    // Two keys (j, j + kAttnWarps) a step: both keys' K and V loads are in
    // flight before the first score is reduced; an odd last key goes alone.
    int j = s0 + warp;
    for (; j + kAttnWarps < s1; j += 2 * kAttnWarps) {
        float k0[DPL], v0[DPL], k1[DPL], v1[DPL];
        float sa = 0.0f, sb = 0.0f;
        if (active) {
            const int ra = anc && j >= n_past ? anc[j] : j;  // cache rows ([spec] tree ancestors past n_past)
            const int rb = anc && j + kAttnWarps >= n_past ? anc[j + kAttnWarps] : j + kAttnWarps;
            load_h<DPL>(kb + size_t(ra) * n_kv_row, k0);
            load_h<DPL>(kb + size_t(rb) * n_kv_row, k1);
            load_h<DPL>(vb + size_t(ra) * n_kv_row, v0);
            load_h<DPL>(vb + size_t(rb) * n_kv_row, v1);
#pragma unroll
            for (int i = 0; i < DPL; ++i) {
                sa = fmaf(q[i], k0[i], sa);
                sb = fmaf(q[i], k1[i], sb);
            }
        }
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) {
            sa += __shfl_xor_sync(0xffffffffu, sa, o);
            sb += __shfl_xor_sync(0xffffffffu, sb, o);
        }
        const float m_new = fmaxf(m, fmaxf(sa, sb));
        const float corr = expf(m - m_new);
        const float pa = expf(sa - m_new), pb = expf(sb - m_new);
        l = l * corr + pa + pb;
        if (active) {
#pragma unroll
            for (int i = 0; i < DPL; ++i) acc[i] = acc[i] * corr + pa * v0[i] + pb * v1[i];
        }
        m = m_new;
    }
    if (j < s1) {
        float kv[DPL], vv[DPL];
        float s = 0.0f;
        const int row = anc && j >= n_past ? anc[j] : j;
        if (active) {
            load_h<DPL>(kb + size_t(row) * n_kv_row, kv);
            load_h<DPL>(vb + size_t(row) * n_kv_row, vv);
#pragma unroll
            for (int i = 0; i < DPL; ++i) s = fmaf(q[i], kv[i], s);
        }
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
        const float m_new = fmaxf(m, s);
        const float corr = expf(m - m_new);
        const float p = expf(s - m_new);
        l = l * corr + p;
        if (active) {
#pragma unroll
            for (int i = 0; i < DPL; ++i) acc[i] = acc[i] * corr + p * vv[i];
        }
        m = m_new;
    }
    if (lane == 0) { s_m[warp] = m; s_l[warp] = l; }
#pragma unroll
    for (int i = 0; i < DPL; ++i) s_acc[warp][d0 + i] = acc[i];
    __syncthreads();
    float M = -INFINITY;
#pragma unroll
    for (int w = 0; w < kAttnWarps; ++w) M = fmaxf(M, s_m[w]);
    float wgt[kAttnWarps], L = 0.0f;
#pragma unroll
    for (int w = 0; w < kAttnWarps; ++w) {
        wgt[w] = s_m[w] == -INFINITY ? 0.0f : expf(s_m[w] - M);
        L += wgt[w] * s_l[w];
    }
    const size_t part = (size_t(t) * a.n_head + h) * n_split + split;
    for (int d = threadIdx.x; d < hd; d += blockDim.x) {
        float v = 0.0f;
#pragma unroll
        for (int w = 0; w < kAttnWarps; ++w) v += wgt[w] * s_acc[w][d];
        a.part_acc[part * hd + d] = v;
    }
    if (threadIdx.x == 0) { a.part_ml[2 * part] = M; a.part_ml[2 * part + 1] = L; }
    if (!a.counters) return;
    // Fused combine: the last of the n_split blocks of (h, t) to finish merges
    // them (its partials and the others' are in L2 after the fences) and
    // resets the counter for the next launch.
    __shared__ int s_last;
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0) {
        int * c = a.counters + size_t(t) * a.n_head + h;
        s_last = atomicAdd(c, 1) == n_split - 1;
        if (s_last) atomicExch(c, 0);
    }
    __syncthreads();
    if (!s_last) return;
    __threadfence();
    combine_head(a, n_split, h, t);
}

// grid (n_head, n_tok), block 128
__global__ void attn_combine_kernel(const AttnArgs a, int n_split) {
    pdl_trigger();
    pdl_wait();
    combine_head(a, n_split, blockIdx.x, blockIdx.y);
}

}  // namespace

Status attention(const AttnArgs & a, const int * pos0, int n_tok, int n_split, cudaStream_t s) {
    if (n_tok == 0) return {};
    if (a.hd > 256 || a.n_head % a.n_head_kv != 0) return make_error(ErrorCode::Unsupported, "CUDA attention: head size over 256 or uneven GQA");
    if (n_split == 1 && !a.q8.q && !a.tree_rows && n_tok >= kFlashMinTok) {
        const int mode = attention_flash_mode(a.hd);
        if (mode == 1 || (mode == 0 && (n_tok + 63) / 64 * a.n_head >= kFlashMinBlocks)) return attention_flash(a, pos0, n_tok, s);
    }
    const dim3 grid(n_split, a.n_head, n_tok);
    const int threads = kAttnWarps * 32;
    if (a.q8.q && a.hd % 32 != 0) return make_error(ErrorCode::Unsupported, "CUDA attention: q8 output needs a head size multiple of 32");
    if (a.hd <= 32) GB_CU(launch_pdl(attn_partial_kernel<1>, grid, dim3(threads), 0, s, a, pos0, n_split));
    else if (a.hd <= 64) GB_CU(launch_pdl(attn_partial_kernel<2>, grid, dim3(threads), 0, s, a, pos0, n_split));
    else if (a.hd <= 128) GB_CU(launch_pdl(attn_partial_kernel<4>, grid, dim3(threads), 0, s, a, pos0, n_split));
    else GB_CU(launch_pdl(attn_partial_kernel<8>, grid, dim3(threads), 0, s, a, pos0, n_split));
    if (!a.counters) GB_CU(launch_pdl(attn_combine_kernel, dim3(a.n_head, n_tok), dim3(128), 0, s, a, n_split));
    return {};
}

}  // namespace gb::cuda
