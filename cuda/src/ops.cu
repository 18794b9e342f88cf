// Element-wise and per-row kernels of the forward pass: embedding lookup,
// residual add + RMSNorm (+ q8 quantization of the result), gated activation
// + quantization, Q/K/V post-processing (bias, per-head norm, RoPE, KV-cache
// write), logit soft-capping and argmax.
#include "argmax.cuh"
#include "kernels.h"
#include "pdl.cuh"
#include "quant_decode.cuh"

namespace gb::cuda {
namespace {

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
// Sum over the block (blockDim.x a multiple of 32, <= 1024); all threads get it.
__device__ float block_sum(float v, float * red) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_sum(v);
    __syncthreads();  // red may be in use by a previous call
    if (lane == 0) red[warp] = v;
    __syncthreads();
    float t = lane < nw ? red[lane] : 0.0f;
    return warp_sum(t);
}

template <TensorType T>
__global__ void embed_kernel(const DevMat w, const int * __restrict__ tokens, int n_tok, float scale, float * __restrict__ out) {
    pdl_trigger();
    pdl_wait();
    const int n_chunks = int(w.n_cols / 32);
    const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i >= int64_t(n_tok) * n_chunks) return;
    const int t = int(i / n_chunks), c = int(i % n_chunks);
    const uint8_t * row = w.data + size_t(tokens[t]) * w.stride;
    float v[32];
    row_chunk_floats<T>(row, w.d_off, c, v);
    float * o = out + size_t(t) * w.n_cols + 32 * c;
#pragma unroll
    for (int e = 0; e < 32; ++e) o[e] = v[e] * scale;
}

constexpr int kNormThreads = 1024;

template <bool LO>
__global__ void __launch_bounds__(kNormThreads) add_norm_kernel(float * __restrict__ x, const float * __restrict__ p,
                                                                const float * __restrict__ post_w, const float * __restrict__ w,
                                                                float eps, int n, float * __restrict__ y, Q8Act q) {
    __shared__ float red[32];
    pdl_trigger();
    pdl_wait();
    const int t = blockIdx.x;
    float * xr = x + size_t(t) * n;
    if (p) {
        const float * pr = p + size_t(t) * n;
        float pscale = 1.0f;
        if (post_w) {
            float ss = 0.0f;
            for (int i = threadIdx.x; i < n; i += blockDim.x) ss += pr[i] * pr[i];
            ss = block_sum(ss, red);
            pscale = rsqrtf(ss / float(n) + eps);
        }
        for (int i = threadIdx.x; i < n; i += blockDim.x) xr[i] += post_w ? pr[i] * pscale * post_w[i] : pr[i];
    }
    float ss = 0.0f;
    for (int i = threadIdx.x; i < n; i += blockDim.x) ss += xr[i] * xr[i];
    ss = block_sum(ss, red);
    const float scale = rsqrtf(ss / float(n) + eps);
    if (!y) return;
    float * yr = y + size_t(t) * n;
    // Each warp handles whole 32-value blocks so it can quantize them.
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    for (int b = warp; b < n / 32; b += nw) {
        const int i = b * 32 + lane;
        const float v = xr[i] * scale * w[i];
        yr[i] = v;
        if (q.q) q8_quant_warp_t<LO>(v, int64_t(t) * (n / 32) + b, q);
    }
}

// As add_norm_kernel for n <= 32 * K * kNormThreads / 32 with every value
// held in registers: one read of p and x, one write of x, y and q8 (the decode
// path: one block per token is all there is, so latency is what counts).
// Value i = 32 b + lane of block b = warp + k * n_warps. (LO: q8 with the
// second plane, q.lo set; a template so the one-plane code has no test of it.)
template <int K, bool LO>
__global__ void __launch_bounds__(kNormThreads) add_norm_reg_kernel(float * __restrict__ x, const float * __restrict__ p,
                                                                    const float * __restrict__ post_w, const float * __restrict__ w,
                                                                    float eps, int n, float * __restrict__ y, Q8Act q) {
    __shared__ float red[32];
    pdl_trigger();
    pdl_wait();
    const int t = blockIdx.x, lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5, nb = n / 32;
    float * xr = x + size_t(t) * n;
    const float * pr = p ? p + size_t(t) * n : nullptr;
    float xv[K], pv[K];
#pragma unroll
    for (int k = 0; k < K; ++k) {
        const int b = warp + k * nw, i = 32 * b + lane;
        xv[k] = b < nb ? xr[i] : 0.0f;
        pv[k] = (pr && b < nb) ? pr[i] : 0.0f;
    }
    if (pr) {
        if (post_w) {
            float ss = 0.0f;
#pragma unroll
            for (int k = 0; k < K; ++k) ss += pv[k] * pv[k];
            ss = block_sum(ss, red);
            const float pscale = rsqrtf(ss / float(n) + eps);
#pragma unroll
            for (int k = 0; k < K; ++k) {
                const int b = warp + k * nw;
                if (b < nb) xv[k] += pv[k] * pscale * post_w[32 * b + lane];
            }
        } else {
#pragma unroll
            for (int k = 0; k < K; ++k) xv[k] += pv[k];
        }
#pragma unroll
        for (int k = 0; k < K; ++k) {
            const int b = warp + k * nw;
            if (b < nb) xr[32 * b + lane] = xv[k];
        }
    }
    float ss = 0.0f;
#pragma unroll
    for (int k = 0; k < K; ++k) ss += xv[k] * xv[k];
    ss = block_sum(ss, red);
    const float scale = rsqrtf(ss / float(n) + eps);
    if (!y) return;
    float * yr = y + size_t(t) * n;
#pragma unroll
    for (int k = 0; k < K; ++k) {
        const int b = warp + k * nw;
        if (b < nb) {  // warp-uniform
            const int i = 32 * b + lane;
            const float v = xv[k] * scale * w[i];
            yr[i] = v;
            if (q.q) q8_quant_warp_t<LO>(v, int64_t(t) * nb + b, q);
        }
    }
}

__global__ void act_quant_kernel(float * __restrict__ g, const float * __restrict__ up, int act, int64_t n_blocks, Q8Act q) {
    pdl_trigger();
    pdl_wait();
    const int64_t b = int64_t(blockIdx.x) * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (b >= n_blocks) return;
    const int64_t i = b * 32 + (threadIdx.x & 31);
    float v = g[i];
    if (up) {
        v = glu_act(act, v) * up[i];
        g[i] = v;
    }
    if (q.q) q8_quant_warp(v, b, q);
}

// grid (n_tok, n_head + 2 * n_head_kv), block 128; smem hd floats.
__global__ void qkv_post_kernel(const QkvPost a, const int * __restrict__ pos0) {
    extern __shared__ float buf[];
    __shared__ float red[32];
    pdl_trigger();
    pdl_wait();
    const int t = blockIdx.x, h = blockIdx.y, hd = a.hd;
    const int n_q = a.n_head * hd, n_k = a.n_head_kv * hd;
    const int row = *pos0 + t;                           // cache row
    const int pos = a.rope_pos ? a.rope_pos[t] : row;    // rotary position
    int kind, hh;  // 0 q, 1 k, 2 v
    if (h < a.n_head) { kind = 0; hh = h; }
    else if (h < a.n_head + a.n_head_kv) { kind = 1; hh = h - a.n_head; }
    else { kind = 2; hh = h - a.n_head - a.n_head_kv; }
    const float * src = kind == 0 ? a.q + size_t(t) * n_q : (kind == 1 ? a.k : a.v) + size_t(t) * n_k;
    src += hh * hd;
    const float * bias = kind == 0 ? a.bq : (kind == 1 ? a.bk : a.bv);
    for (int i = threadIdx.x; i < hd; i += blockDim.x) buf[i] = src[i] + (bias ? bias[hh * hd + i] : 0.0f);
    __syncthreads();
    if (kind == 2) {
        __half * dst = a.v_cache + size_t(row) * n_k + hh * hd;
        for (int i = threadIdx.x; i < hd; i += blockDim.x) dst[i] = __float2half_rn(buf[i]);
        return;
    }
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
    for (int i = threadIdx.x; i < half; i += blockDim.x) {
        const int ia = a.neox ? i : 2 * i, ib = a.neox ? i + half : 2 * i + 1;
        float x0 = buf[ia], x1 = buf[ib];
        if (nw) { x0 = x0 * nscale * nw[ia]; x1 = x1 * nscale * nw[ib]; }
        float sn, cs;
        sincosf(float(pos) * a.inv_freq[i], &sn, &cs);
        const float y0 = (x0 * cs - x1 * sn) * out_scale, y1 = (x0 * sn + x1 * cs) * out_scale;
        if (kind == 0) {
            float * dst = a.q + size_t(t) * n_q + hh * hd;
            dst[ia] = y0; dst[ib] = y1;
        } else {
            __half * dst = a.k_cache + size_t(row) * n_k + hh * hd;
            dst[ia] = __float2half_rn(y0); dst[ib] = __float2half_rn(y1);
        }
    }
}

__global__ void softcap_kernel(float * x, int64_t n, float cap) {
    pdl_trigger();
    pdl_wait();
    const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i < n) x[i] = cap * tanhf(x[i] / cap);
}

__global__ void argmax_kernel(const float * __restrict__ x, int n, int * __restrict__ out) {
    __shared__ float bv[32];
    __shared__ int bi[32];
    pdl_trigger();
    pdl_wait();
    const float * r = x + size_t(blockIdx.x) * n;
    float best;
    int idx;
    argmax_scan(r, 0, n, best, idx);
    argmax_warp(best, idx);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) { bv[warp] = best; bi[warp] = idx; }
    __syncthreads();
    if (warp == 0) {
        const int nw = blockDim.x >> 5;
        best = lane < nw ? bv[lane] : -INFINITY;
        idx = lane < nw ? bi[lane] : 0x7fffffff;
        argmax_warp(best, idx);
        if (lane == 0) out[blockIdx.x] = idx;
    }
}

}  // namespace

Status embed(const DevMat & w, const int * tokens, int n_tok, float scale, float * out, cudaStream_t s) {
    const int64_t total = int64_t(n_tok) * (w.n_cols / 32);
    if (total == 0) return {};
    const unsigned blocks = unsigned((total + 127) / 128);
    const bool ok = dispatch_type(w.type, [&]<TensorType T>() { embed_kernel<T><<<blocks, 128, 0, s>>>(w, tokens, n_tok, scale, out); });
    if (!ok) return make_error(ErrorCode::Unsupported, std::string("CUDA embed: type ") + type_name(w.type) + " not supported");
    GB_CU_LAUNCH("embed");
    return {};
}

Status add_norm(float * x, const float * p, const float * post_w, const float * w, float eps, int n, int n_tok,
                float * y, const Q8Act & q, cudaStream_t s) {
    if (n % 32 != 0) return make_error(ErrorCode::Unsupported, "CUDA add_norm: length not a multiple of 32");
    if (n_tok == 0) return {};
    const bool lo = q.q && q.lo;
    if (n <= 8 * kNormThreads) {
        GB_CU(launch_pdl(lo ? add_norm_reg_kernel<8, true> : add_norm_reg_kernel<8, false>, dim3(n_tok), dim3(kNormThreads), 0, s,
                         x, p, post_w, w, eps, n, y, q));
    } else {
        GB_CU(launch_pdl(lo ? add_norm_kernel<true> : add_norm_kernel<false>, dim3(n_tok), dim3(kNormThreads), 0, s, x, p, post_w,
                         w, eps, n, y, q));
    }
    return {};
}

Status act_quant(float * g, const float * up, int act, int64_t n_total, const Q8Act & q, cudaStream_t s) {
    if (n_total % 32 != 0) return make_error(ErrorCode::Unsupported, "CUDA act_quant: length not a multiple of 32");
    const int64_t n_blocks = n_total / 32;
    if (n_blocks == 0) return {};
    GB_CU(launch_pdl(act_quant_kernel, dim3(unsigned((n_blocks + 7) / 8)), dim3(256), 0, s, g, up, act, n_blocks, q));
    return {};
}

Status qkv_post(const QkvPost & a, const int * pos, int n_tok, cudaStream_t s) {
    if (n_tok == 0) return {};
    if (a.hd % 2 != 0 || a.hd > 4096) return make_error(ErrorCode::Unsupported, "CUDA qkv_post: unsupported head size");
    const dim3 grid(n_tok, a.n_head + 2 * a.n_head_kv);
    GB_CU(launch_pdl(qkv_post_kernel, grid, dim3(128), size_t(a.hd) * sizeof(float), s, a, pos));
    return {};
}

Status softcap(float * x, int64_t n, float cap, cudaStream_t s) {
    if (n == 0) return {};
    GB_CU(launch_pdl(softcap_kernel, dim3(unsigned((n + 255) / 256)), dim3(256), 0, s, x, n, cap));
    return {};
}

Status argmax_rows(const float * x, int n, int n_tok, int * out, cudaStream_t s) {
    if (n_tok == 0) return {};
    argmax_kernel<<<n_tok, 1024, 0, s>>>(x, n, out);
    GB_CU_LAUNCH("argmax");
    return {};
}

}  // namespace gb::cuda
