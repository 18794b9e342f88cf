// [spec] Token-tree helpers of the CUDA Context: gathering the rows of chosen
// tree nodes (hidden states and their q8 form) for the output head, and
// compacting the accepted root path's K/V into consecutive cache rows.
#include "kernels.h"

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

}  // namespace

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
