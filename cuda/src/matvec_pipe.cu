// Decode matvecs of Q4_K (and long Q6_K) weights that stream the weights through shared
// memory (Hopper): per block one producer thread issues bulk copies
// (cp.async.bulk, completing on an mbarrier) of whole row tiles into a ring of
// stages, starting before pdl_wait, while the consumer warps, their x held in
// registers, dot the previous tiles. A persistent grid (one wave) takes
// contiguous ranges of tiles. Three forms: gate/up fused (y = act(g) * u, f32),
// rows of 2048 / 4096 values (a warp per 4 rows of a 16-row tile), and rows of
// 8192-16384 values, Q4_K or Q6_K (every warp takes its 64-value units of each
// of 4 rows, partial sums added in shared memory). Each row's sum runs in one fixed order
// whatever the grid or the token count, so tokens batched in a launch (grid.y)
// get the one-token bits. See bench/NOTES.md (eighth session) for the numbers.
#include "kernels.h"
#include "pdl.cuh"
#include "quant_decode.cuh"

#include <algorithm>
#include <cstdlib>
#include <map>
#include <mutex>
#include <utility>

namespace gb::cuda {
namespace {

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
#define GB_PIPE_DEVICE 1
#endif

__device__ __forceinline__ uint32_t smem_addr(const void * p) { return uint32_t(__cvta_generic_to_shared(p)); }

__device__ __forceinline__ void mbar_init(uint64_t * b, uint32_t n) {
#ifdef GB_PIPE_DEVICE
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(smem_addr(b)), "r"(n));
#endif
}
__device__ __forceinline__ void mbar_expect_tx(uint64_t * b, uint32_t bytes) {
#ifdef GB_PIPE_DEVICE
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(smem_addr(b)), "r"(bytes) : "memory");
#endif
}
__device__ __forceinline__ void mbar_arrive(uint64_t * b) {
#ifdef GB_PIPE_DEVICE
    asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"(smem_addr(b)) : "memory");
#endif
}
__device__ __forceinline__ void mbar_wait(uint64_t * b, uint32_t parity) {
#ifdef GB_PIPE_DEVICE
    uint32_t ok = 0;
    do {
        asm volatile("{\n\t.reg .pred p;\n\tmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n\tselp.u32 %0, 1, 0, p;\n\t}"
                     : "=r"(ok) : "r"(smem_addr(b)), "r"(parity) : "memory");
    } while (!ok);
#endif
}
// bytes (a multiple of 16) from global src to shared dst (both 16-byte aligned), completing on bar;
// weights are read once a step: evict first from L2.
__device__ __forceinline__ void bulk_copy(void * dst, const void * src, uint32_t bytes, uint64_t * bar, uint64_t policy) {
#ifdef GB_PIPE_DEVICE
    asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes.L2::cache_hint [%0], [%1], %2, [%3], %4;"
                 ::"r"(smem_addr(dst)), "l"(src), "r"(bytes), "r"(smem_addr(bar)), "l"(policy) : "memory");
#endif
}
__device__ __forceinline__ uint64_t evict_first() {
    uint64_t p = 0;
#ifdef GB_PIPE_DEVICE
    asm volatile("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;" : "=l"(p));
#endif
    return p;
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ int dp4a_us(uint32_t a, uint32_t b, int c) {  // unsigned bytes of a . signed bytes of b
    int d;
    asm("dp4a.u32.s32 %0, %1, %2, %3;" : "=r"(d) : "r"(a), "r"(b), "r"(c));
    return d;
}
__device__ __forceinline__ int dot4us(uint4 w, uint4 x, int acc) {
    acc = dp4a_us(w.x, x.x, acc); acc = dp4a_us(w.y, x.y, acc);
    acc = dp4a_us(w.z, x.z, acc); return dp4a_us(w.w, x.w, acc);
}
__device__ __forceinline__ uint4 and4(uint4 a, uint32_t m) { return {a.x & m, a.y & m, a.z & m, a.w & m}; }
__device__ __forceinline__ uint4 lds128(const uint8_t * p) { return *reinterpret_cast<const uint4 *>(p); }
__device__ __forceinline__ uint4 shr4(uint4 a, int n) { return {a.x >> n, a.y >> n, a.z >> n, a.w >> n}; }

// Token tok's q8 activations (Q8Act's planes; l null: one plane).
struct XPlanes {
    const int8_t * q; const float * d; const float * s; const int8_t * l;
    __device__ __forceinline__ XPlanes at(int tok, int n_cols) const {
        return {q + size_t(tok) * n_cols, d + size_t(tok) * (n_cols / 32), s + size_t(tok) * (n_cols / 16), l ? l + size_t(tok) * n_cols : nullptr};
    }
};

// x of one Q4_K unit u (the 64 values of sub-blocks 2g, 2g + 1 of superblock
// u / 4, g = u % 4): q8 values and scales, held in registers. One plane: db16
// = db / 16 (exact), the high nibbles dotted in place (16 q). Two planes (LO:
// x ~= d (q + lo / 256)): the second plane too, da / db scaled by 1 / 256.
struct XUnit { uint4 a0, a1, b0, b1, la0, la1, lb0, lb1; float da, db16, sa, sb; };
template <bool LO> __device__ __forceinline__ XUnit load_unit_x(const XPlanes & x, int u) {
    const int qa = 8 * (u >> 2) + 2 * (u & 3);
    const uint8_t * p = reinterpret_cast<const uint8_t *>(x.q) + 32 * qa;
    XUnit o;
    o.a0 = ld128(p); o.a1 = ld128(p + 16); o.b0 = ld128(p + 32); o.b1 = ld128(p + 48);
    o.da = __ldg(x.d + qa);
    o.db16 = __ldg(x.d + qa + 1) * 0.0625f;
    if constexpr (LO) {
        const uint8_t * pl = reinterpret_cast<const uint8_t *>(x.l) + 32 * qa;
        o.la0 = ld128(pl); o.la1 = ld128(pl + 16); o.lb0 = ld128(pl + 32); o.lb1 = ld128(pl + 48);
        o.da *= 1.0f / 256.0f;
        o.db16 = __ldg(x.d + qa + 1) * (1.0f / 256.0f);  // (LO: high nibbles shifted down, not dotted in place)
    }
    const float4 s4 = __ldg(reinterpret_cast<const float4 *>(x.s + 2 * qa));
    o.sa = s4.x + s4.y; o.sb = s4.z + s4.w;
    return o;
}
// The unit's dot with the Q4_K superblock at b (shared memory). Per-lane
// constants: g = u % 4, hi = g >= 2, sh = 16 (g & 1).
template <bool LO> __device__ __forceinline__ float unit_dot(const uint8_t * b, int g, bool hi, int sh, const XUnit & x) {
    const uint4 h = lds128(b), q0 = lds128(b + 16 + 32 * g), q1 = lds128(b + 32 + 32 * g);
    // 6-bit scales / mins of sub-blocks 2g (low byte) and 2g + 1 (high byte)
    const uint32_t w0 = h.y >> sh, w1 = h.z >> sh, w2 = h.w >> sh;
    const uint32_t sc = hi ? ((w2 & 0x0F0Fu) | ((w0 >> 2) & 0x3030u)) : (w0 & 0x3F3Fu);
    const uint32_t mn = hi ? (((w2 >> 4) & 0x0F0Fu) | ((w1 >> 2) & 0x3030u)) : (w1 & 0x3F3Fu);
    int ia, ib;
    if constexpr (LO) {  // 256 (w . q) + w . lo, exact in int32 and in the float conversion (< 2^24)
        const uint4 na0 = and4(q0, 0x0F0F0F0Fu), na1 = and4(q1, 0x0F0F0F0Fu);
        const uint4 nb0 = and4(shr4(q0, 4), 0x0F0F0F0Fu), nb1 = and4(shr4(q1, 4), 0x0F0F0F0Fu);
        ia = dot4us(na1, x.la1, dot4us(na0, x.la0, dot4us(na1, x.a1, dot4us(na0, x.a0, 0)) << 8));
        ib = dot4us(nb1, x.lb1, dot4us(nb0, x.lb0, dot4us(nb1, x.b1, dot4us(nb0, x.b0, 0)) << 8));
    } else {
        ia = dot4us(and4(q1, 0x0F0F0F0Fu), x.a1, dot4us(and4(q0, 0x0F0F0F0Fu), x.a0, 0));
        ib = dot4us(and4(q1, 0xF0F0F0F0u), x.b1, dot4us(and4(q0, 0xF0F0F0F0u), x.b0, 0));
    }
    const float d = h2f(uint16_t(h.x & 0xffff)), dmin = h2f(uint16_t(h.x >> 16));
    return d * (float(sc & 0xff) * x.da * float(ia) + float((sc >> 8) & 0xff) * x.db16 * float(ib)) -
           dmin * (float(mn & 0xff) * x.sa + float((mn >> 8) & 0xff) * x.sb);
}

// The stage ring: full[s] completes when stage s has landed, empty[s] when
// all consumer warps are done with it. Shared memory: 128 bytes of barriers,
// then the stages.
struct Ring {
    uint64_t * full;
    uint64_t * empty;
    uint8_t *  stage0;
};
template <int NS>
__device__ __forceinline__ Ring ring_init(uint8_t * smem, int consumers) {
    Ring r{reinterpret_cast<uint64_t *>(smem), reinterpret_cast<uint64_t *>(smem) + NS, smem + 128};
    if (threadIdx.x == 0) {
        for (int s = 0; s < NS; ++s) { mbar_init(r.full + s, 1); mbar_init(r.empty + s, uint32_t(consumers)); }
#ifdef GB_PIPE_DEVICE
        asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
#endif
    }
    __syncthreads();
    return r;
}
// The producer (one thread): tiles [t0, t1), each `parts` copies of `bytes`
// from src[p] + t * bytes into consecutive parts of the stage.
template <int NS, int PARTS>
__device__ __forceinline__ void produce(const Ring & r, const uint8_t * const (&src)[PARTS], uint32_t bytes, int t0, int t1) {
    const uint64_t pol = evict_first();
    for (int t = t0, k = 0; t < t1; ++t, ++k) {
        const int s = k % NS;
        if (k >= NS) mbar_wait(r.empty + s, uint32_t((k / NS) - 1) & 1u);
        mbar_expect_tx(r.full + s, PARTS * bytes);
        uint8_t * dst = r.stage0 + size_t(s) * PARTS * bytes;
#pragma unroll
        for (int p = 0; p < PARTS; ++p) bulk_copy(dst + size_t(p) * bytes, src[p] + size_t(t) * bytes, bytes, r.full + s, pol);
    }
}

// This block's contiguous range [t0, t1) of n_tiles tiles (grid.x blocks: equal shares to one tile).
__device__ __forceinline__ void tile_range(int n_tiles, int & t0, int & t1) {
    const int G = int(gridDim.x), b = int(blockIdx.x);
    t0 = int(int64_t(b) * n_tiles / G);
    t1 = int(int64_t(b + 1) * n_tiles / G);
}

// (The three kernels below repeat their prologue (ring, tile range, producer
// branch, x units) and the stage wait / release. Folded into shared inline
// helpers, the row kernel measured 6-9% slower (4096 x 4096: 4.08 vs 3.83 us;
// 4096 x 6144: 5.49 vs 5.19) while the gate/up kept its time and the long-row
// kernel gained ~2%; H200, bench_cuda_kernels, both binaries in one call,
// eighth session. So they stay written out.)
constexpr int kStages = 3;
constexpr int kGluW = 8, kGluRpw = 2;   // gate/up: 8 consumer warps x 2 rows = 16-row tiles (of gate and of up)
constexpr int kRowW = 4, kRowRpw = 4;   // rows of 2048/4096: 4 warps x 4 rows
constexpr int kLongRows = 4, kLongStages = 4;  // long rows: 4-row tiles, every warp on every row

// y[tok][row] = act(gate . x) * (up . x) for Q4_K rows of XN * 2048 values.
template <int XN, bool LO>
__global__ void __launch_bounds__((kGluW + 1) * 32) glu_pipe_kernel(const DevMat gate, const DevMat up, int act, const XPlanes xp,
                                                                    float * __restrict__ y) {
    constexpr int RT = kGluW * kGluRpw;
    constexpr int stride = XN * 8 * 144;
    constexpr uint32_t bytes = RT * stride;
    extern __shared__ __align__(128) uint8_t smem[];
    const Ring r = ring_init<kStages>(smem, kGluW);
    pdl_trigger();
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int n_rows = int(gate.n_rows);
    int t0, t1;
    tile_range(n_rows / RT, t0, t1);
    if (warp == kGluW) {
        const uint8_t * const src[2] = {gate.data, up.data};
        if (lane == 0) produce<kStages, 2>(r, src, bytes, t0, t1);
        return;
    }
    pdl_wait();
    const int tok = int(blockIdx.y);
    const int n_cols = XN * 2048;
    const int g = lane & 3, sh = 16 * (g & 1);
    const bool hi = g >= 2;
    XUnit xr[XN];
#pragma unroll
    for (int i = 0; i < XN; ++i) xr[i] = load_unit_x<LO>(xp.at(tok, n_cols), lane + 32 * i);
    for (int t = t0, k = 0; t < t1; ++t, ++k) {
        const int s = k % kStages;
        mbar_wait(r.full + s, uint32_t(k / kStages) & 1u);
        const uint8_t * tile = r.stage0 + size_t(s) * 2 * bytes;
        float ga[kGluRpw] = {}, ua[kGluRpw] = {};
#pragma unroll
        for (int rr = 0; rr < kGluRpw; ++rr) {
            const uint8_t * rg = tile + (warp * kGluRpw + rr) * stride;
#pragma unroll
            for (int i = 0; i < XN; ++i) {
                const int sb = (lane >> 2) + 8 * i;
                ga[rr] += unit_dot<LO>(rg + 144 * sb, g, hi, sh, xr[i]);
                ua[rr] += unit_dot<LO>(rg + bytes + 144 * sb, g, hi, sh, xr[i]);
            }
        }
        __syncwarp();
        if (lane == 0) mbar_arrive(r.empty + s);
        float mine = 0.0f;
#pragma unroll
        for (int rr = 0; rr < kGluRpw; ++rr) {
            const float gv = warp_sum(ga[rr]), uv = warp_sum(ua[rr]);
            if (lane == rr) mine = glu_act(act, gv) * uv;
        }
        if (lane < kGluRpw) y[size_t(tok) * n_rows + t * RT + warp * kGluRpw + lane] = mine;
    }
}

// y[tok][row] = w . x (+ bias) for Q4_K rows of XN * 2048 values.
template <int XN, bool LO>
__global__ void __launch_bounds__((kRowW + 1) * 32) mv_row_pipe_kernel(const DevMat w, const XPlanes xp, float * __restrict__ y,
                                                                       const float * __restrict__ bias) {
    constexpr int RT = kRowW * kRowRpw;
    constexpr int stride = XN * 8 * 144;
    constexpr uint32_t bytes = RT * stride;
    extern __shared__ __align__(128) uint8_t smem[];
    const Ring r = ring_init<kStages>(smem, kRowW);
    pdl_trigger();
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int n_rows = int(w.n_rows);
    int t0, t1;
    tile_range(n_rows / RT, t0, t1);
    if (warp == kRowW) {
        const uint8_t * const src[1] = {w.data};
        if (lane == 0) produce<kStages, 1>(r, src, bytes, t0, t1);
        return;
    }
    pdl_wait();
    const int tok = int(blockIdx.y);
    const int n_cols = XN * 2048;
    const int g = lane & 3, sh = 16 * (g & 1);
    const bool hi = g >= 2;
    XUnit xr[XN];
#pragma unroll
    for (int i = 0; i < XN; ++i) xr[i] = load_unit_x<LO>(xp.at(tok, n_cols), lane + 32 * i);
    for (int t = t0, k = 0; t < t1; ++t, ++k) {
        const int s = k % kStages;
        mbar_wait(r.full + s, uint32_t(k / kStages) & 1u);
        const uint8_t * tile = r.stage0 + size_t(s) * bytes;
        float acc[kRowRpw] = {};
#pragma unroll
        for (int rr = 0; rr < kRowRpw; ++rr) {
#pragma unroll
            for (int i = 0; i < XN; ++i) acc[rr] += unit_dot<LO>(tile + (warp * kRowRpw + rr) * stride + 144 * ((lane >> 2) + 8 * i), g, hi, sh, xr[i]);
        }
        __syncwarp();
        if (lane == 0) mbar_arrive(r.empty + s);
        float mine = 0.0f;
#pragma unroll
        for (int rr = 0; rr < kRowRpw; ++rr) {
            const float v = warp_sum(acc[rr]);
            if (lane == rr) mine = v;
        }
        const int row = t * RT + warp * kRowRpw + lane;
        if (lane < kRowRpw) y[size_t(tok) * n_rows + row] = mine + (bias ? bias[row] : 0.0f);
    }
}

// Units of the long-row kernel: 64 values of a row, one per lane; X is the
// unit's x in registers, dot reads the unit's weights from a row in shared
// memory (stride and d_off as the DevMat's).
template <bool LO> struct UnitQ4K {  // pair g = u % 4 of superblock u / 4 (unit_dot)
    using X = XUnit;
    static __device__ __forceinline__ X load_x(const XPlanes & x, int u) { return load_unit_x<LO>(x, u); }
    static __device__ __forceinline__ float dot(const uint8_t * row, size_t, int u, const X & x) {
        const int g = u & 3;
        return unit_dot<LO>(row + 144 * (u >> 2), g, g >= 2, 16 * (g & 1), x);
    }
};
template <bool LO> struct UnitQ6K {  // quarter t = u % 4 of superblock u / 4: values 128 (t / 2) + 32 i + 16 (t % 2) + 0..15, i = 0..3
    struct X { uint4 q[4], l[4]; float d[4], s[4]; };
    static __device__ __forceinline__ X load_x(const XPlanes & x, int u) {
        X o;
        q6k_unit_x<LO>(x, u, o);
        return o;
    }
    static __device__ __forceinline__ int dot4s(uint4 w, uint4 x, int a = 0) {  // w bytes 0..63
        a = __dp4a(int(w.x), int(x.x), a);
        a = __dp4a(int(w.y), int(x.y), a);
        a = __dp4a(int(w.z), int(x.z), a);
        return __dp4a(int(w.w), int(x.w), a);
    }
    // one 16-value run: w . q, or 256 (w . q) + w . lo
    static __device__ __forceinline__ int dq(uint4 v, const X & x, int i) {
        if constexpr (LO) return dot4s(v, x.l[i], dot4s(v, x.q[i]) << 8);
        return dot4s(v, x.q[i]);
    }
    static __device__ __forceinline__ float dot(const uint8_t * row, size_t d_off, int u, const X & x) {
        const int b = u >> 2, g = (u & 3) >> 1, lh = u & 1;
        const uint8_t * body = row + 208 * b;
        const uint4 l0 = lds128(body + 64 * g + 16 * lh), l1 = lds128(body + 64 * g + 32 + 16 * lh), h = lds128(body + 128 + 32 * g + 16 * lh);
        const uint2 sc = *reinterpret_cast<const uint2 *>(body + 192 + 8 * g);
        const uint16_t dh = *reinterpret_cast<const uint16_t *>(row + d_off + 2 * b);
        return q6k_unit_dot(l0, l1, h, sc, dh, lh, x.d, x.s, [&](uint4 v, int i) { return dq(v, x, i); });
    }
};

// y[tok][row] = w . x (+ bias) for rows of 64 * units values (Q4_K, Q6_K), units in (32 (NW - 1), 32 NW]:
// lane l of warp v takes unit 32 v + l of every row of a 4-row tile.
template <class U, int NW>
__global__ void __launch_bounds__((NW + 1) * 32) mv_long_pipe_kernel(const DevMat w, const XPlanes xp, float * __restrict__ y,
                                                                     const float * __restrict__ bias) {
    constexpr int RT = kLongRows;
    extern __shared__ __align__(128) uint8_t smem[];
    __shared__ float part[2][NW][RT];
    const int n_cols = int(w.n_cols), n_rows = int(w.n_rows);
    const int stride = int(w.stride);
    const uint32_t bytes = uint32_t(RT * stride);
    const Ring r = ring_init<kLongStages>(smem, NW);
    pdl_trigger();
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    int t0, t1;
    tile_range(n_rows / RT, t0, t1);
    if (warp == NW) {
        const uint8_t * const src[1] = {w.data};
        if (lane == 0) produce<kLongStages, 1>(r, src, bytes, t0, t1);
        return;
    }
    pdl_wait();
    const int tok = int(blockIdx.y);
    const int units = n_cols / 64;
    const int u = warp * 32 + lane;
    const bool on = u < units;
    const typename U::X xr = U::load_x(xp.at(tok, n_cols), on ? u : 0);
    for (int t = t0, k = 0; t < t1; ++t, ++k) {
        const int s = k % kLongStages;
        mbar_wait(r.full + s, uint32_t(k / kLongStages) & 1u);
        const uint8_t * tile = r.stage0 + size_t(s) * bytes;
        float acc[RT];
#pragma unroll
        for (int rr = 0; rr < RT; ++rr) acc[rr] = on ? U::dot(tile + rr * stride, w.d_off, u, xr) : 0.0f;
        __syncwarp();
        if (lane == 0) mbar_arrive(r.empty + s);
        float mine = 0.0f;
#pragma unroll
        for (int rr = 0; rr < RT; ++rr) {
            const float v = warp_sum(acc[rr]);
            if (lane == rr) mine = v;
        }
        if (lane < RT) part[k & 1][warp][lane] = mine;
        asm volatile("bar.sync 1, %0;" ::"r"(NW * 32) : "memory");  // the consumer warps only
        if (warp == 0 && lane < RT) {
            float v = 0.0f;
#pragma unroll
            for (int q = 0; q < NW; ++q) v += part[k & 1][q][lane];
            const int row = t * RT + lane;
            y[size_t(tok) * n_rows + row] = v + (bias ? bias[row] : 0.0f);
        }
    }
}

}  // namespace

// Blocks of kernel k (threads, dynamic smem: the kernel's limit raised to it
// first) resident on the whole device at once; 0 when the query fails. Cached
// per (device, kernel).
int resident_blocks(const void * k, int threads, size_t smem) {
    static std::mutex mu;
    static std::map<std::pair<int, const void *>, int> cache;
    int dev = 0;
    if (cudaGetDevice(&dev) != cudaSuccess) return 0;
    std::lock_guard<std::mutex> lock(mu);
    const auto key = std::make_pair(dev, k);
    if (auto it = cache.find(key); it != cache.end()) return it->second;
    int sms = 0, optin = 0, per_sm = 0, res = 0;
    if (cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev) == cudaSuccess &&
        cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev) == cudaSuccess && size_t(optin) >= smem &&
        (smem <= 48 * 1024 || cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)) == cudaSuccess) &&
        cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, k, threads, smem) == cudaSuccess)
        res = per_sm * sms;
    cudaGetLastError();  // (a refused attribute is not an error of the next launch)
    return cache[key] = res;
}

namespace {

// resident_blocks on a Hopper (bulk copies, mbarrier transactions), else 0.
int pipe_resident(const void * k, int threads, size_t smem) {
    int dev = 0, major = 0;
    if (cudaGetDevice(&dev) != cudaSuccess || cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess ||
        major < 9)
        return 0;
    return resident_blocks(k, threads, smem);
}

// Rows as uploaded (dev_layout): Q4_K as in the file (stride = the row's
// bytes), Q6_K split (bodies, then d); 16-byte aligned for the bulk copies.
bool aligned16(const DevMat & w) {
    const DevMat l = dev_layout(w.type, w.n_cols, w.n_rows);
    return (reinterpret_cast<uintptr_t>(w.data) & 15) == 0 && w.stride == l.stride && w.d_off == l.d_off && w.stride % 16 == 0;
}

// A one-wave grid of (blocks, n_tok): about `res` blocks in all, at most the tiles.
dim3 pipe_grid(int res, int tiles, int n_tok) { return dim3(unsigned(std::max(1, std::min(tiles, res / std::max(1, n_tok)))), unsigned(n_tok)); }

size_t glu_smem(int xn) { return 128 + size_t(kStages) * 2 * kGluW * kGluRpw * xn * 8 * 144; }
size_t row_smem(int xn) { return 128 + size_t(kStages) * kRowW * kRowRpw * xn * 8 * 144; }
size_t long_smem(const DevMat & w) { return 128 + size_t(kLongStages) * kLongRows * w.stride; }

// f(mv_long_pipe_kernel<U, nw>, nw) for the unit type of t (Q4_K or Q6_K) and nw = 4..8
template <class U, class F> auto with_long_u(int nw, F f) {
    switch (nw) {
        case 4: return f(mv_long_pipe_kernel<U, 4>, 4);
        case 5: return f(mv_long_pipe_kernel<U, 5>, 5);
        case 6: return f(mv_long_pipe_kernel<U, 6>, 6);
        case 7: return f(mv_long_pipe_kernel<U, 7>, 7);
        default: return f(mv_long_pipe_kernel<U, 8>, 8);
    }
}
template <class F> auto with_long(TensorType t, bool lo, int nw, F f) {
    if (lo) return t == TensorType::Q6_K ? with_long_u<UnitQ6K<true>>(nw, f) : with_long_u<UnitQ4K<true>>(nw, f);
    return t == TensorType::Q6_K ? with_long_u<UnitQ6K<false>>(nw, f) : with_long_u<UnitQ4K<false>>(nw, f);
}
// The gate/up and row kernels for (xn, lo).
auto glu_kernel(int xn, bool lo) {
    if (lo) return xn == 1 ? glu_pipe_kernel<1, true> : glu_pipe_kernel<2, true>;
    return xn == 1 ? glu_pipe_kernel<1, false> : glu_pipe_kernel<2, false>;
}
auto row_kernel(int xn, bool lo) {
    if (lo) return xn == 1 ? mv_row_pipe_kernel<1, true> : mv_row_pipe_kernel<2, true>;
    return xn == 1 ? mv_row_pipe_kernel<1, false> : mv_row_pipe_kernel<2, false>;
}

}  // namespace

// GB_CUDA_PIPE=0 turns the streaming kernels off (read at each launch; decode steps replay a graph).
bool pipe_enabled() {
    const char * e = std::getenv("GB_CUDA_PIPE");
    return !(e && e[0] == '0');
}

// Matrices of fewer rows keep matvec.cu's kernels (GB_CUDA_PIPE_MIN_ROWS,
// default 2048; tests lower it): gemma-3-270m's ffn_down (2048 x 640 Q4_K, 40
// tiles on 132 SMs) took the step from 0.777 to 0.794-0.801 ms and plain
// decode from 1295 to 1254-1259 t/s (bench_spec_cuda, synthetic shape, H200).
int64_t pipe_min_rows() {
    const char * e = std::getenv("GB_CUDA_PIPE_MIN_ROWS");
    return e && *e ? std::atoll(e) : 2048;
}

bool glu_pipe_supported(const DevMat & gate, const DevMat & up, const Q8Act & xq) {
    if (!pipe_enabled() || gate.n_rows < pipe_min_rows() || gate.type != TensorType::Q4_K || up.type != TensorType::Q4_K || !xq.q) return false;
    if (gate.n_cols != up.n_cols || gate.n_rows != up.n_rows || (gate.n_cols != 2048 && gate.n_cols != 4096)) return false;
    if (gate.n_rows % (kGluW * kGluRpw) != 0 || !aligned16(gate) || !aligned16(up)) return false;
    const int xn = int(gate.n_cols / 2048);
    return pipe_resident(reinterpret_cast<const void *>(glu_kernel(xn, xq.lo != nullptr)), (kGluW + 1) * 32, glu_smem(xn)) > 0;
}

Status glu_pipe(const DevMat & gate, const DevMat & up, int act, const Q8Act & xq, int n_tok, float * y, cudaStream_t s) {
    if (!glu_pipe_supported(gate, up, xq)) return make_error(ErrorCode::Unsupported, "CUDA glu_pipe: unsupported weights or activations");
    if (n_tok == 0) return {};
    const int xn = int(gate.n_cols / 2048);
    const size_t smem = glu_smem(xn);
    auto * k = glu_kernel(xn, xq.lo != nullptr);
    const dim3 grid = pipe_grid(pipe_resident(reinterpret_cast<const void *>(k), (kGluW + 1) * 32, smem), int(gate.n_rows / (kGluW * kGluRpw)), n_tok);
    GB_CU(launch_pdl(k, grid, dim3((kGluW + 1) * 32), smem, s, gate, up, act, XPlanes{xq.q, xq.d, xq.s, xq.lo}, y));
    return {};
}

bool mv_pipe_supported(const DevMat & w, const Q8Act & xq) {
    if (!pipe_enabled() || w.n_rows < pipe_min_rows() || (w.type != TensorType::Q4_K && w.type != TensorType::Q6_K) || !xq.q ||
        !aligned16(w))
        return false;
    if (w.type == TensorType::Q4_K && (w.n_cols == 2048 || w.n_cols == 4096)) {
        const int xn = int(w.n_cols / 2048);
        return w.n_rows % (kRowW * kRowRpw) == 0 &&
               pipe_resident(reinterpret_cast<const void *>(row_kernel(xn, xq.lo != nullptr)), (kRowW + 1) * 32, row_smem(xn)) > 0;
    }
    const int64_t units = w.n_cols / 64;
    if (w.n_cols % 256 != 0 || units <= 96 || units > 256 || w.n_rows % kLongRows != 0) return false;
    const int nw = int((units + 31) / 32);
    return with_long(w.type, xq.lo != nullptr, nw, [&](auto * k, int n) { return pipe_resident(reinterpret_cast<const void *>(k), (n + 1) * 32, long_smem(w)) > 0; });
}

Status mv_pipe(const DevMat & w, const Q8Act & xq, int n_tok, float * y, const float * bias, cudaStream_t s) {
    if (!mv_pipe_supported(w, xq)) return make_error(ErrorCode::Unsupported, "CUDA mv_pipe: unsupported weights or activations");
    if (n_tok == 0) return {};
    if (w.type == TensorType::Q4_K && (w.n_cols == 2048 || w.n_cols == 4096)) {
        const int xn = int(w.n_cols / 2048);
        const size_t smem = row_smem(xn);
        auto * k = row_kernel(xn, xq.lo != nullptr);
        const dim3 grid = pipe_grid(pipe_resident(reinterpret_cast<const void *>(k), (kRowW + 1) * 32, smem), int(w.n_rows / (kRowW * kRowRpw)), n_tok);
        GB_CU(launch_pdl(k, grid, dim3((kRowW + 1) * 32), smem, s, w, XPlanes{xq.q, xq.d, xq.s, xq.lo}, y, bias));
        return {};
    }
    const int nw = int((w.n_cols / 64 + 31) / 32);
    const size_t smem = long_smem(w);
    const cudaError_t e = with_long(w.type, xq.lo != nullptr, nw, [&](auto * k, int n) {
        const dim3 grid = pipe_grid(pipe_resident(reinterpret_cast<const void *>(k), (n + 1) * 32, smem), int(w.n_rows / kLongRows), n_tok);
        return launch_pdl(k, grid, dim3((n + 1) * 32), smem, s, w, XPlanes{xq.q, xq.d, xq.s, xq.lo}, y, bias);
    });
    GB_CU(e);
    return {};
}

}  // namespace gb::cuda
