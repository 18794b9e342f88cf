// [spec] Token-tree helpers of the CUDA Context: gathering the rows of chosen
// tree nodes (hidden states and their q8 form) for the output head,
// compacting the accepted root path's K/V into consecutive cache rows, and
// summarising logits rows on the device (argmax, max, log-sum-exp) so greedy
// verification copies a few bytes per row instead of the whole vocabulary.
#include "argmax.cuh"
#include "kernels.h"

#include <algorithm>

namespace gb::cuda {
namespace {

// grid (n_out), block 256: dst row r = src row nodes[r] (f32, n floats; q8 rows
// too when q_src.q is set: n bytes, n/32 scales, n/16 half sums).
__global__ void gather_rows_kernel(const float * __restrict__ src, const int * __restrict__ nodes, int n, float * __restrict__ dst,
                                   Q8Act q_src, Q8Act q_dst) {
    const int r = blockIdx.x, node = nodes[r];
    const float * s = src + size_t(node) * n;
    float * d = dst + size_t(r) * n;
    for (int i = threadIdx.x; i < n; i += blockDim.x) d[i] = s[i];
    if (!q_src.q) return;
    for (int i = threadIdx.x; i < n; i += blockDim.x) q_dst.q[size_t(r) * n + i] = q_src.q[size_t(node) * n + i];
    if (q_src.lo)
        for (int i = threadIdx.x; i < n; i += blockDim.x) q_dst.lo[size_t(r) * n + i] = q_src.lo[size_t(node) * n + i];
    for (int i = threadIdx.x; i < n / 32; i += blockDim.x) q_dst.d[size_t(r) * (n / 32) + i] = q_src.d[size_t(node) * (n / 32) + i];
    for (int i = threadIdx.x; i < n / 16; i += blockDim.x) q_dst.s[size_t(r) * (n / 16) + i] = q_src.s[size_t(node) * (n / 16) + i];
}

// grid (ceil(row_u32 / 256), n_layer), block 256: each thread owns one 4-byte
// column of one layer's K and V rows and moves row base + path[d] to base + d
// for d = 0, 1, ... in order. Sequential per column: a row is never
// overwritten before it is read (path[d] >= d, targets below later sources).
__global__ void kv_compact_kernel(uint32_t * __restrict__ k, uint32_t * __restrict__ v, size_t layer_u32, int row_u32, int base,
                                  const int * __restrict__ path, int n) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= row_u32) return;
    uint32_t * kl = k + size_t(blockIdx.y) * layer_u32 + c;
    uint32_t * vl = v + size_t(blockIdx.y) * layer_u32 + c;
    for (int d = 0; d < n; ++d) {
        const int src = base + path[d], dst = base + d;
        if (src == dst) continue;
        kl[size_t(dst) * row_u32] = kl[size_t(src) * row_u32];
        vl[size_t(dst) * row_u32] = vl[size_t(src) * row_u32];
    }
}

// grid (n_rows, n_part), block kSumThreads: part p of row r (a contiguous
// slice) -> its maximum, the lowest index holding it, and sum exp(l - max)
// over the slice in double.
constexpr int kSumThreads = 256;
__global__ void row_part_kernel(const float * __restrict__ x, int n, int part_len, RowPart * __restrict__ parts) {
    __shared__ float sv[kSumThreads / 32];
    __shared__ int si[kSumThreads / 32];
    __shared__ double ss[kSumThreads / 32];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const float * r = x + size_t(blockIdx.x) * n;
    const int b = blockIdx.y * part_len, e = min(n, b + part_len);
    float best;
    int idx;
    argmax_scan(r, b, e, best, idx);
    argmax_warp(best, idx);
    if (lane == 0) { sv[warp] = best; si[warp] = idx; }
    __syncthreads();
    best = sv[0];
    idx = si[0];
    for (int w = 1; w < kSumThreads / 32; ++w) {
        if (sv[w] > best || (sv[w] == best && si[w] < idx)) { best = sv[w]; idx = si[w]; }
    }
    double sum = 0.0;
    if (best > -INFINITY) {
        for (int i = b + threadIdx.x; i < e; i += blockDim.x) sum += exp(double(r[i]) - double(best));
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
    if (lane == 0) ss[warp] = sum;
    __syncthreads();
    if (threadIdx.x == 0) {
        double t = 0.0;
        for (int w = 0; w < kSumThreads / 32; ++w) t += ss[w];
        parts[size_t(blockIdx.x) * gridDim.y + blockIdx.y] = RowPart{best, idx, t};
    }
}

// grid (n_rows), block 32: the parts of row r -> its summary (max over the
// parts, lowest index on ties; sum of each part's sum rescaled to the row max).
__global__ void row_combine_kernel(const RowPart * __restrict__ parts, int n_part, RowSum * __restrict__ out) {
    const RowPart * p = parts + size_t(blockIdx.x) * n_part;
    const int lane = threadIdx.x;
    float best = -INFINITY;
    int idx = 0x7fffffff;
    for (int i = lane; i < n_part; i += 32) {
        if (p[i].max > best || (p[i].max == best && p[i].idx < idx)) { best = p[i].max; idx = p[i].idx; }
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        const float ov = __shfl_xor_sync(0xffffffffu, best, o);
        const int oi = __shfl_xor_sync(0xffffffffu, idx, o);
        if (ov > best || (ov == best && oi < idx)) { best = ov; idx = oi; }
    }
    double sum = 0.0;
    for (int i = lane; i < n_part; i += 32) {
        if (p[i].max > -INFINITY) sum += p[i].sum * exp(double(p[i].max) - double(best));
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
    if (lane == 0) out[blockIdx.x] = RowSum{idx == 0x7fffffff ? 0 : idx, best, log(sum)};
}

}  // namespace

int row_summary_parts(int n_rows) { return std::clamp(512 / std::max(1, n_rows), 8, 64); }

Status summarize_rows(const float * x, int n, int n_rows, RowPart * parts, RowSum * out, cudaStream_t s) {
    if (n_rows == 0) return {};
    const int n_part = row_summary_parts(n_rows);
    const int part_len = (n + n_part - 1) / n_part;
    row_part_kernel<<<dim3(unsigned(n_rows), unsigned(n_part)), kSumThreads, 0, s>>>(x, n, part_len, parts);
    GB_CU_LAUNCH("row_part");
    row_combine_kernel<<<unsigned(n_rows), 32, 0, s>>>(parts, n_part, out);
    GB_CU_LAUNCH("row_combine");
    return {};
}

Status gather_rows(const float * src, const int * nodes, int n_out, int n, float * dst, const Q8Act & q_src, const Q8Act & q_dst,
                   cudaStream_t s) {
    if (n_out == 0) return {};
    if (q_src.q && n % 32 != 0) return make_error(ErrorCode::Unsupported, "CUDA gather_rows: q8 rows need a width multiple of 32");
    gather_rows_kernel<<<n_out, 256, 0, s>>>(src, nodes, n, dst, q_src, q_dst);
    GB_CU_LAUNCH("gather_rows");
    return {};
}

Status kv_compact(__half * k, __half * v, int n_layer, int64_t n_ctx, int64_t n_kv, int base, const int * path, int n, cudaStream_t s) {
    if (n == 0 || n_layer == 0) return {};
    if (n_kv % 2 != 0) return make_error(ErrorCode::Unsupported, "CUDA kv_compact: odd K/V row width");
    const int row_u32 = int(n_kv / 2);
    const dim3 grid(unsigned((row_u32 + 255) / 256), unsigned(n_layer));
    kv_compact_kernel<<<grid, 256, 0, s>>>(reinterpret_cast<uint32_t *>(k), reinterpret_cast<uint32_t *>(v), size_t(n_ctx) * row_u32,
                                           row_u32, base, path, n);
    GB_CU_LAUNCH("kv_compact");
    return {};
}

}  // namespace gb::cuda
