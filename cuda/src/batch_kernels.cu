// Kernels of the batched forward over the paged KV cache (see batch_kernels.h).
// The attention follows attention.cu's flash-decoding scheme (4 warps per block,
// each warp walks every 4th key of its split part, lanes hold head dims; the
// parts are merged by a second kernel), with each key's address looked up in
// the row's page table; F16 or Q8_0 slots (quantized when written, dequantized
// when read). The forward's kernels are launched with PDL (pdl.cuh): each
// waits for the previous kernel before touching memory.
#include "batch_kernels.h"
#include "pdl.cuh"
#include "quant_decode.cuh"

namespace gb::cuda {
namespace {

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ float block_sum(float v, float * red) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_sum(v);
    __syncthreads();
    if (lane == 0) red[warp] = v;
    __syncthreads();
    const float t = lane < nw ? red[lane] : 0.0f;
    return warp_sum(t);
}

// grid (n_tok, n_head + 2 * n_head_kv), block 128, smem hd floats.
__global__ void paged_qkv_kernel(const PagedQkv a) {
    extern __shared__ float buf[];
    __shared__ float red[32];
    pdl_trigger();
    pdl_wait();
    const int t = blockIdx.x, h = blockIdx.y, hd = a.hd;
    const int n_q = a.n_head * hd, n_k = a.n_head_kv * hd;
    const int pos = a.pos[t];
    const size_t slot = size_t(a.slot[t]);
    const size_t sb = a.slot_bytes > 0 ? size_t(a.slot_bytes) : size_t(n_k) * 2;
    int kind, hh;  // 0 q, 1 k, 2 v
    if (h < a.n_head) { kind = 0; hh = h; }
    else if (h < a.n_head + a.n_head_kv) { kind = 1; hh = h - a.n_head; }
    else { kind = 2; hh = h - a.n_head - a.n_head_kv; }
    const float * src = (kind == 0 ? a.q + size_t(t) * n_q : (kind == 1 ? a.k : a.v) + size_t(t) * n_k) + hh * hd;
    const float * bias = kind == 0 ? a.bq : (kind == 1 ? a.bk : a.bv);
    for (int i = threadIdx.x; i < hd; i += blockDim.x) buf[i] = src[i] + (bias ? bias[hh * hd + i] : 0.0f);
    __syncthreads();
    if (kind == 2 && !a.q8) {
        __half * dst = reinterpret_cast<__half *>(a.v_layer + slot * sb) + hh * hd;
        for (int i = threadIdx.x; i < hd; i += blockDim.x) dst[i] = __float2half_rn(buf[i]);
        return;
    }
    if (kind != 2) {
        const float * nw = kind == 0 ? a.q_norm : a.k_norm;
        float nscale = 1.0f;
        if (nw) {
            float ss = 0.0f;
            for (int i = threadIdx.x; i < hd; i += blockDim.x) ss += buf[i] * buf[i];
            ss = block_sum(ss, red);
            nscale = rsqrtf(ss / float(hd) + a.eps);
        }
        __syncthreads();
        const float out_scale = kind == 0 ? a.q_scale : 1.0f;
        const int half = hd / 2;
        for (int i = threadIdx.x; i < half; i += blockDim.x) {  // each pair (ia, ib) read and written by one thread
            const int ia = a.neox ? i : 2 * i, ib = a.neox ? i + half : 2 * i + 1;
            float x0 = buf[ia], x1 = buf[ib];
            if (nw) { x0 = x0 * nscale * nw[ia]; x1 = x1 * nscale * nw[ib]; }
            float sn, cs;
            sincosf(float(pos) * a.inv_freq[i], &sn, &cs);
            const float y0 = (x0 * cs - x1 * sn) * out_scale, y1 = (x0 * sn + x1 * cs) * out_scale;
            if (kind == 0) {
                float * dst = a.q + size_t(t) * n_q + hh * hd;
                dst[ia] = y0; dst[ib] = y1;
            } else if (a.q8) {
                buf[ia] = y0; buf[ib] = y1;
            } else {
                __half * dst = reinterpret_cast<__half *>(a.k_layer + slot * sb) + hh * hd;
                dst[ia] = __float2half_rn(y0); dst[ib] = __float2half_rn(y1);
            }
        }
        if (kind == 0 || !a.q8) return;  // block-uniform
        __syncthreads();
    }
    // Q8_0 K or V: hd % 32 == 0, so each warp's 32 consecutive values are one block.
    uint8_t * base = (kind == 1 ? a.k_layer : a.v_layer) + slot * sb;
    int8_t * qd = reinterpret_cast<int8_t *>(base) + hh * hd;
    __half * dd = reinterpret_cast<__half *>(base + n_k) + hh * (hd / 32);
    for (int i = threadIdx.x; i < hd; i += blockDim.x) {
        const float x = buf[i];
        float amax = fabsf(x);
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, o));
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        qd[i] = int8_t(roundf(x * id));
        if ((threadIdx.x & 31) == 0) dd[i / 32] = __float2half_rn(d);
    }
}

constexpr int kWarps = 4;

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

// DPL int8 values (one Q8_0 block's share: DPL divides 32) times d.
template <int DPL>
__device__ __forceinline__ void load_q8(const int8_t * p, float d, float * v) {
    if constexpr (DPL == 1) {
        v[0] = float(p[0]) * d;
    } else if constexpr (DPL == 2) {
        const char2 c = *reinterpret_cast<const char2 *>(p);
        v[0] = float(c.x) * d; v[1] = float(c.y) * d;
    } else if constexpr (DPL == 4) {
        const char4 c = *reinterpret_cast<const char4 *>(p);
        v[0] = float(c.x) * d; v[1] = float(c.y) * d; v[2] = float(c.z) * d; v[3] = float(c.w) * d;
    } else {
        const int2 u = *reinterpret_cast<const int2 *>(p);
        const char4 a = *reinterpret_cast<const char4 *>(&u.x), b = *reinterpret_cast<const char4 *>(&u.y);
        v[0] = float(a.x) * d; v[1] = float(a.y) * d; v[2] = float(a.z) * d; v[3] = float(a.w) * d;
        v[4] = float(b.x) * d; v[5] = float(b.y) * d; v[6] = float(b.z) * d; v[7] = float(b.w) * d;
    }
}

// Head dims [d0, d0 + DPL) of slot row `row` (F16 or Q8_0, see batch_kernels.h),
// head offset off = g * hd within the row of n_kv values.
template <int DPL, bool Q8>
__device__ __forceinline__ void load_kv(const uint8_t * base, size_t row, size_t sb, int n_kv, int off, int d0, float * v) {
    const uint8_t * r = base + row * sb;
    if constexpr (Q8) {
        const float d = __half2float(reinterpret_cast<const __half *>(r + n_kv)[(off + d0) / 32]);
        load_q8<DPL>(reinterpret_cast<const int8_t *>(r) + off + d0, d, v);
    } else {
        load_h<DPL>(reinterpret_cast<const __half *>(r) + off + d0, v);
    }
}

// Key range [lo, pos] of a row and its split count.
struct RowRange { int lo, len, n_split, chunk; };
__device__ __forceinline__ RowRange row_range(int pos, int window, bool decode) {
    const int keys = decode ? kPagedSplitKeysDecode : kPagedSplitKeys;
    RowRange r;
    r.lo = window > 0 ? max(0, pos - window + 1) : 0;
    r.len = pos + 1 - r.lo;
    r.n_split = min(kPagedMaxSplit, (r.len + keys - 1) / keys);
    r.chunk = (r.len + r.n_split - 1) / r.n_split;
    return r;
}

// grid (kPagedMaxSplit, n_head, n_tok), block kWarps * 32.
template <int DPL, bool Q8>
__global__ void __launch_bounds__(kWarps * 32) paged_attn_partial(const PagedAttn a) {
    __shared__ float s_m[kWarps], s_l[kWarps];
    __shared__ float s_acc[kWarps][DPL * 32];
    pdl_trigger();
    pdl_wait();
    const int split = blockIdx.x, h = blockIdx.y, t = blockIdx.z;
    const int pos = a.pos[t];
    const RowRange rr = row_range(pos, a.window, t < a.n_decode_rows);
    if (split >= rr.n_split) return;  // block-uniform
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int hd = a.hd, g = h / (a.n_head / a.n_head_kv);
    const int n_kv_row = a.n_head_kv * hd;
    const int s0 = rr.lo + split * rr.chunk, s1 = min(pos + 1, s0 + rr.chunk);
    const int d0 = lane * DPL;
    const bool active = d0 < hd;
    const int * tab = a.pages + a.tab[t];
    const int ps = a.page_size;

    float q[DPL], acc[DPL];
    const float * qp = a.q + size_t(t) * a.n_head * hd + size_t(h) * hd;
#pragma unroll
    for (int i = 0; i < DPL; ++i) {
        q[i] = active ? qp[d0 + i] * a.scale : 0.0f;
        acc[i] = 0.0f;
    }
    float m = -INFINITY, l = 0.0f;
    const size_t sb = a.slot_bytes > 0 ? size_t(a.slot_bytes) : size_t(n_kv_row) * 2;
    const int off = g * hd;
    for (int j = s0 + warp; j < s1; j += kWarps) {
        const size_t row = size_t(tab[j / ps]) * ps + size_t(j % ps);
        float kv[DPL];
        float s = 0.0f;
        if (active) {
            load_kv<DPL, Q8>(a.k, row, sb, n_kv_row, off, d0, kv);
#pragma unroll
            for (int i = 0; i < DPL; ++i) s = fmaf(q[i], kv[i], s);
        }
        s = warp_sum(s);
        const float m_new = fmaxf(m, s);
        const float corr = expf(m - m_new);
        const float p = expf(s - m_new);
        l = l * corr + p;
        if (active) {
            load_kv<DPL, Q8>(a.v, row, sb, n_kv_row, off, d0, kv);
#pragma unroll
            for (int i = 0; i < DPL; ++i) acc[i] = acc[i] * corr + p * kv[i];
        }
        m = m_new;
    }
    if (lane == 0) { s_m[warp] = m; s_l[warp] = l; }
#pragma unroll
    for (int i = 0; i < DPL; ++i) s_acc[warp][d0 + i] = acc[i];
    __syncthreads();
    float M = -INFINITY;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) M = fmaxf(M, s_m[w]);
    float wgt[kWarps], L = 0.0f;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) {
        wgt[w] = s_m[w] == -INFINITY ? 0.0f : expf(s_m[w] - M);
        L += wgt[w] * s_l[w];
    }
    const size_t part = (size_t(t) * a.n_head + h) * kPagedMaxSplit + split;
    for (int d = threadIdx.x; d < hd; d += blockDim.x) {
        float v = 0.0f;
#pragma unroll
        for (int w = 0; w < kWarps; ++w) v += wgt[w] * s_acc[w][d];
        a.part_acc[part * hd + d] = v;
    }
    if (threadIdx.x == 0) { a.part_ml[2 * part] = M; a.part_ml[2 * part + 1] = L; }
}

// grid (n_head, n_tok), block 128
__global__ void paged_attn_combine(const PagedAttn a) {
    pdl_trigger();
    pdl_wait();
    const int h = blockIdx.x, t = blockIdx.y, hd = a.hd;
    const int n_split = row_range(a.pos[t], a.window, t < a.n_decode_rows).n_split;
    const size_t base = (size_t(t) * a.n_head + h) * kPagedMaxSplit;
    float M = -INFINITY;
    for (int s = 0; s < n_split; ++s) M = fmaxf(M, a.part_ml[2 * (base + s)]);
    float L = 0.0f;
    for (int s = 0; s < n_split; ++s) {
        const float ms = a.part_ml[2 * (base + s)];
        if (ms != -INFINITY) L += expf(ms - M) * a.part_ml[2 * (base + s) + 1];
    }
    const float inv = L > 0.0f ? 1.0f / L : 0.0f;
    const bool q8 = a.q8.q && t < a.n_q8_rows;  // block-uniform; hd % 32 == 0 then
    for (int d = threadIdx.x; d < hd; d += blockDim.x) {
        float v = 0.0f;
        for (int s = 0; s < n_split; ++s) {
            const float ms = a.part_ml[2 * (base + s)];
            if (ms != -INFINITY) v += expf(ms - M) * a.part_acc[(base + s) * hd + d];
        }
        const size_t o = size_t(t) * a.n_head * hd + size_t(h) * hd + d;
        a.out[o] = v * inv;
        if (q8) q8_quant_warp(v * inv, int64_t(o / 32), a.q8);
    }
}

// grid (n_tokens, n_layer, 2), block 128; slot_bytes % 4 == 0
__global__ void page_copy_kernel(uint8_t * k, uint8_t * v, size_t layer_bytes, int slot_bytes, int page_size, int src, int dst) {
    const int slot = blockIdx.x, layer = blockIdx.y;
    uint8_t * base = (blockIdx.z == 0 ? k : v) + size_t(layer) * layer_bytes;
    const uint32_t * from = reinterpret_cast<const uint32_t *>(base + (size_t(src) * page_size + slot) * slot_bytes);
    uint32_t * to = reinterpret_cast<uint32_t *>(base + (size_t(dst) * page_size + slot) * slot_bytes);
    for (int i = threadIdx.x; i < slot_bytes / 4; i += blockDim.x) to[i] = from[i];
}

__global__ void gather_rows_kernel(const float * __restrict__ x, const int * __restrict__ rows, int n, float * __restrict__ out) {
    pdl_trigger();
    pdl_wait();
    const float * src = x + size_t(rows[blockIdx.x]) * n;
    float * dst = out + size_t(blockIdx.x) * n;
    for (int i = threadIdx.x; i < n; i += blockDim.x) dst[i] = src[i];
}

}  // namespace

Status paged_qkv_post(const PagedQkv & a, int n_tok, cudaStream_t s) {
    if (n_tok == 0) return {};
    if (a.hd % 2 != 0 || a.hd > 4096) return make_error(ErrorCode::Unsupported, "CUDA paged_qkv_post: unsupported head size");
    if (a.q8 && a.hd % 32 != 0) return make_error(ErrorCode::Unsupported, "CUDA paged_qkv_post: Q8_0 K/V need a head size multiple of 32");
    const dim3 grid(n_tok, a.n_head + 2 * a.n_head_kv);
    GB_CU(launch_pdl(paged_qkv_kernel, grid, dim3(128), size_t(a.hd) * sizeof(float), s, a));
    return {};
}

Status paged_attention(const PagedAttn & a, int n_tok, cudaStream_t s) {
    if (n_tok == 0) return {};
    if (a.hd > 256 || a.n_head % a.n_head_kv != 0) return make_error(ErrorCode::Unsupported, "CUDA paged attention: head size over 256 or uneven GQA");
    if (a.q8.q && a.hd % 32 != 0) return make_error(ErrorCode::Unsupported, "CUDA paged attention: q8 output needs a head size multiple of 32");
    if (a.kv_q8 && a.hd % 32 != 0) return make_error(ErrorCode::Unsupported, "CUDA paged attention: Q8_0 K/V need a head size multiple of 32");
    const dim3 grid(kPagedMaxSplit, a.n_head, n_tok);
    const int threads = kWarps * 32;
    cudaError_t e;
    if (a.kv_q8) {
        if (a.hd <= 32) e = launch_pdl(paged_attn_partial<1, true>, grid, dim3(threads), 0, s, a);
        else if (a.hd <= 64) e = launch_pdl(paged_attn_partial<2, true>, grid, dim3(threads), 0, s, a);
        else if (a.hd <= 128) e = launch_pdl(paged_attn_partial<4, true>, grid, dim3(threads), 0, s, a);
        else e = launch_pdl(paged_attn_partial<8, true>, grid, dim3(threads), 0, s, a);
    } else {
        if (a.hd <= 32) e = launch_pdl(paged_attn_partial<1, false>, grid, dim3(threads), 0, s, a);
        else if (a.hd <= 64) e = launch_pdl(paged_attn_partial<2, false>, grid, dim3(threads), 0, s, a);
        else if (a.hd <= 128) e = launch_pdl(paged_attn_partial<4, false>, grid, dim3(threads), 0, s, a);
        else e = launch_pdl(paged_attn_partial<8, false>, grid, dim3(threads), 0, s, a);
    }
    GB_CU(e);
    GB_CU(launch_pdl(paged_attn_combine, dim3(a.n_head, n_tok), dim3(128), 0, s, a));
    return {};
}

Status page_copy(uint8_t * k, uint8_t * v, int n_layer, size_t layer_bytes, int slot_bytes, int page_size, int src, int dst,
                 int n_tokens, cudaStream_t s) {
    if (n_tokens <= 0 || n_layer <= 0) return {};
    if (slot_bytes % 4 != 0) return make_error(ErrorCode::Unsupported, "CUDA page_copy: slot size not a multiple of 4 bytes");
    page_copy_kernel<<<dim3(n_tokens, n_layer, 2), 128, 0, s>>>(k, v, layer_bytes, slot_bytes, page_size, src, dst);
    GB_CU_LAUNCH("page_copy");
    return {};
}

Status gather_rows(const float * x, const int * rows, int n_out, int n, float * out, cudaStream_t s) {
    if (n_out == 0) return {};
    GB_CU(launch_pdl(gather_rows_kernel, dim3(n_out), dim3(256), 0, s, x, rows, n, out));
    return {};
}

}  // namespace gb::cuda
