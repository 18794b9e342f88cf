// Decode-path matrix-vector products for every weight type. Fast path
// (Q4_K, Q6_K, Q8_0, F16): a warp computes R rows; each lane takes "units" of
// a row (16-byte weight loads: a quarter/eighth of a superblock, a 32-block,
// 16 halves) with stride 32 units, the R rows' loads issued together; the
// q8 activations (dp4a; with the second int8 plane Q8Act::lo, two dp4a
// per 4 values: 256 (w . q) + w . lo) or f32 activations come through L1. Jobs of
// different fast types mix in one launch (q/k/v with a Q6_K v). The gate/up
// pair mode computes act(gate) * up for 32 consecutive rows per block and
// quantizes them to q8 in the epilogue (no separate activation kernel).
// Other types: the generic chunk kernel below (decode_chunk, 2 rows a warp).
#include "kernels.h"
#include "pdl.cuh"
#include "quant_decode.cuh"

#include <algorithm>
#include <cstdlib>
#include <utility>

namespace gb::cuda {
namespace {

constexpr int kWarps = 4;        // warps per block
constexpr int kRows  = 2;        // rows per warp
constexpr int kMaxJobs = 8;

struct JobsArg {
    DevMat        w[kMaxJobs];
    float *       y[kMaxJobs];
    const float * bias[kMaxJobs];
    int           group_end[kMaxJobs];  // cumulative row groups (kRows rows each)
    int           n;
};

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

// Finds the job and first row of this warp's group; false when out of range.
__device__ __forceinline__ bool locate(const JobsArg & jobs, int group, int & j, int & row0) {
    j = 0;
    while (j < jobs.n && group >= jobs.group_end[j]) ++j;
    if (j >= jobs.n) return false;
    row0 = (group - (j ? jobs.group_end[j - 1] : 0)) * kRows;
    return true;
}

// (xl: the second activation plane or null; a uniform branch, this is the
// slow path of the less common types)
template <TensorType T>
__global__ void __launch_bounds__(kWarps * 32) matvec_q_kernel(const JobsArg jobs, const int8_t * __restrict__ xq,
                                                              const float * __restrict__ xd, const float * __restrict__ xs,
                                                              const int8_t * __restrict__ xl, int n_cols) {
    pdl_trigger();
    pdl_wait();
    const int lane = threadIdx.x & 31;
    const int group = blockIdx.x * kWarps + (threadIdx.x >> 5);
    int j, row0;
    if (!locate(jobs, group, j, row0)) return;
    const DevMat & w = jobs.w[j];
    const int tok = blockIdx.y;
    const int n_chunks = n_cols / 32;
    xq += size_t(tok) * n_cols;
    if (xl) xl += size_t(tok) * n_cols;
    xd += size_t(tok) * n_chunks;
    xs += size_t(tok) * n_chunks * 2;
    const uint8_t * rows[kRows];
#pragma unroll
    for (int r = 0; r < kRows; ++r) rows[r] = w.data + size_t(min(row0 + r, int(w.n_rows) - 1)) * w.stride;

    float acc[kRows] = {};
    for (int c = lane; c < n_chunks; c += 32) {
        uint32_t xv[8];
        ld256(reinterpret_cast<const uint8_t *>(xq) + 32 * size_t(c), xv);
        uint32_t lv[8] = {};
        if (xl) ld256(reinterpret_cast<const uint8_t *>(xl) + 32 * size_t(c), lv);
        const float d = xl ? __ldg(xd + c) * (1.0f / 256.0f) : __ldg(xd + c);
        const float2 s = __ldg(reinterpret_cast<const float2 *>(xs) + c);
#pragma unroll
        for (int r = 0; r < kRows; ++r) {
            Chunk ch;
            decode_chunk<T>(rows[r], w.d_off, c, ch);
            int s0 = 0, s1 = 0;
#pragma unroll
            for (int i = 0; i < 4; ++i) {
                s0 = __dp4a(ch.q[i], int(xv[i]), s0);
                s1 = __dp4a(ch.q[4 + i], int(xv[4 + i]), s1);
            }
            if (xl) {
                s0 <<= 8; s1 <<= 8;
#pragma unroll
                for (int i = 0; i < 4; ++i) {
                    s0 = __dp4a(ch.q[i], int(lv[i]), s0);
                    s1 = __dp4a(ch.q[4 + i], int(lv[4 + i]), s1);
                }
            }
            acc[r] += d * (ch.sc[0] * float(s0) + ch.sc[1] * float(s1)) + ch.mn[0] * s.x + ch.mn[1] * s.y;
        }
    }
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
        const float v = warp_sum(acc[r]);
        const int row = row0 + r;
        if (lane == r && row < w.n_rows) {
            jobs.y[j][size_t(tok) * w.n_rows + row] = v + (jobs.bias[j] ? jobs.bias[j][row] : 0.0f);
        }
    }
}

template <TensorType T>
__global__ void __launch_bounds__(kWarps * 32) matvec_f_kernel(const JobsArg jobs, const float * __restrict__ xf, int n_cols) {
    pdl_trigger();
    pdl_wait();
    const int lane = threadIdx.x & 31;
    const int group = blockIdx.x * kWarps + (threadIdx.x >> 5);
    int j, row0;
    if (!locate(jobs, group, j, row0)) return;
    const DevMat & w = jobs.w[j];
    const int tok = blockIdx.y;
    const int n_chunks = n_cols / 32;
    xf += size_t(tok) * n_cols;
    const uint8_t * rows[kRows];
#pragma unroll
    for (int r = 0; r < kRows; ++r) rows[r] = w.data + size_t(min(row0 + r, int(w.n_rows) - 1)) * w.stride;
    float acc[kRows] = {};
    for (int c = lane; c < n_chunks; c += 32) {
        float x[32];
        const float4 * xp = reinterpret_cast<const float4 *>(xf + 32 * size_t(c));
#pragma unroll
        for (int i = 0; i < 8; ++i) {
            const float4 f = __ldg(xp + i);
            x[4 * i] = f.x; x[4 * i + 1] = f.y; x[4 * i + 2] = f.z; x[4 * i + 3] = f.w;
        }
#pragma unroll
        for (int r = 0; r < kRows; ++r) {
            float v[32];
            load_float_chunk<T>(rows[r], c, v);
            float a = 0.0f;
#pragma unroll
            for (int i = 0; i < 32; ++i) a = fmaf(v[i], x[i], a);
            acc[r] += a;
        }
    }
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
        const float v = warp_sum(acc[r]);
        const int row = row0 + r;
        if (lane == r && row < w.n_rows) {
            jobs.y[j][size_t(tok) * w.n_rows + row] = v + (jobs.bias[j] ? jobs.bias[j][row] : 0.0f);
        }
    }
}

// ---- fast path -------------------------------------------------------------------
// Activations of one token: q8 (q, d per 32, s per 16, lo: the second plane
// or null; Q8Act) and f32. The units' load_x<LO> / dot<LO>: LO = the two-plane
// form (lo loaded beside q, the q dot shifted by 8 bits plus the lo dot, d / 256).
struct XView {
    const int8_t * q;
    const float *  d;
    const float *  s;
    const float *  f;
    const int8_t * l;
};

__device__ __forceinline__ int dot4(uint4 w, uint4 x, int acc) {
    acc = __dp4a(int(w.x), int(x.x), acc);
    acc = __dp4a(int(w.y), int(x.y), acc);
    acc = __dp4a(int(w.z), int(x.z), acc);
    return __dp4a(int(w.w), int(x.w), acc);
}
__device__ __forceinline__ uint4 and4(uint4 a, uint32_t m) { return {a.x & m, a.y & m, a.z & m, a.w & m}; }
__device__ __forceinline__ uint4 shr4(uint4 a, int n) { return {a.x >> n, a.y >> n, a.z >> n, a.w >> n}; }
__device__ __forceinline__ void prefetch_l2(const void * p) { asm volatile("prefetch.global.L2 [%0];" ::"l"(p)); }

template <TensorType T> struct Fast;

// Q4_K (gate/up kernel): unit u = 16 bytes of qs of superblock u/8: t = u%8 covers values
// 16*(t%2) .. +16 of sub-blocks j = t&~1 (low nibbles) and j+1 (high).
template <> struct Fast<TensorType::Q4_K> {
    struct W { uint4 h, q; };
    struct X { uint4 a, b, la, lb; float da, db, sa, sb; };
    static __device__ __forceinline__ int units(int64_t n_cols) { return int(n_cols / 256) * 8; }
    static __device__ __forceinline__ const uint8_t * addr(const uint8_t * row, size_t, int u) { return row + 144 * (u >> 3); }
    static __device__ __forceinline__ W load_w(const uint8_t * row, size_t, int u) {
        const uint8_t * b = row + 144 * (u >> 3);
        return {ld128(b), ld128(b + 16 + 16 * (u & 7))};
    }
    template <bool LO> static __device__ __forceinline__ X load_x(const XView & x, int u) {
        const int t = u & 7, hf = t & 1;
        const int qa = 8 * (u >> 3) + (t & ~1);  // q8 block of sub-block j
        X o;
        o.a = ld128(reinterpret_cast<const uint8_t *>(x.q) + 32 * qa + 16 * hf);
        o.b = ld128(reinterpret_cast<const uint8_t *>(x.q) + 32 * (qa + 1) + 16 * hf);
        o.da = __ldg(x.d + qa); o.db = __ldg(x.d + qa + 1);
        if constexpr (LO) {
            o.la = ld128(reinterpret_cast<const uint8_t *>(x.l) + 32 * qa + 16 * hf);
            o.lb = ld128(reinterpret_cast<const uint8_t *>(x.l) + 32 * (qa + 1) + 16 * hf);
            o.da *= 1.0f / 256.0f; o.db *= 1.0f / 256.0f;
        }
        o.sa = __ldg(x.s + 2 * qa + hf); o.sb = __ldg(x.s + 2 * qa + 2 + hf);
        return o;
    }
    template <bool LO> static __device__ __forceinline__ float dot(const W & w, const X & x, int u) {
        const int j = (u & 7) & ~1;
        int sa, ma, sb, mb;
        k4_scale_min_w(w.h.y, w.h.z, w.h.w, j, &sa, &ma);
        k4_scale_min_w(w.h.y, w.h.z, w.h.w, j + 1, &sb, &mb);
        int ia, ib;
        if constexpr (LO) {
            const uint4 na = and4(w.q, 0x0F0F0F0Fu), nb = and4(shr4(w.q, 4), 0x0F0F0F0Fu);
            ia = dot4(na, x.la, dot4(na, x.a, 0) << 8);
            ib = dot4(nb, x.lb, dot4(nb, x.b, 0) << 8);
        } else {
            ia = dot4(and4(w.q, 0x0F0F0F0Fu), x.a, 0);
            ib = dot4(and4(shr4(w.q, 4), 0x0F0F0F0Fu), x.b, 0);
        }
        const float d = h2f(uint16_t(w.h.x & 0xffff)), dmin = h2f(uint16_t(w.h.x >> 16));
        return d * (float(sa) * x.da * float(ia) + float(sb) * x.db * float(ib)) - dmin * (float(ma) * x.sa + float(mb) * x.sb);
    }
};

// Q4_K, matvec variant: unit u = all 32 qs bytes of pair g = u%4 of
// superblock u/4 (sub-blocks 2g and 2g+1, 64 values): the header (d, dmin,
// 12 scale bytes) is loaded and decoded once per 32 weight bytes instead of
// per 16, and x's two q8 blocks are read whole.
struct Q4K32 {
    static constexpr int U = 2;
    struct W { uint4 h, q0, q1; };
    struct X { uint4 a0, a1, b0, b1, la0, la1, lb0, lb1; float da, db, sa, sb; };
    static __device__ __forceinline__ int units(int64_t n_cols) { return int(n_cols / 256) * 4; }
    static __device__ __forceinline__ const uint8_t * addr(const uint8_t * row, size_t, int u) { return row + 144 * (u >> 2); }
    static __device__ __forceinline__ W load_w(const uint8_t * row, size_t, int u) {
        const uint8_t * b = row + 144 * (u >> 2);
        const uint8_t * q = b + 16 + 32 * (u & 3);
        return {ld128(b), ld128(q), ld128(q + 16)};
    }
    template <bool LO> static __device__ __forceinline__ X load_x(const XView & x, int u) {
        const int qa = 8 * (u >> 2) + 2 * (u & 3);  // q8 block of sub-block 2g
        const uint8_t * p = reinterpret_cast<const uint8_t *>(x.q) + 32 * qa;
        X o;
        o.a0 = ld128(p); o.a1 = ld128(p + 16); o.b0 = ld128(p + 32); o.b1 = ld128(p + 48);
        o.da = __ldg(x.d + qa); o.db = __ldg(x.d + qa + 1);
        if constexpr (LO) {
            const uint8_t * pl = reinterpret_cast<const uint8_t *>(x.l) + 32 * qa;
            o.la0 = ld128(pl); o.la1 = ld128(pl + 16); o.lb0 = ld128(pl + 32); o.lb1 = ld128(pl + 48);
            o.da *= 1.0f / 256.0f; o.db *= 1.0f / 256.0f;
        }
        const float4 s4 = __ldg(reinterpret_cast<const float4 *>(x.s + 2 * qa));  // 2 halves of each block
        o.sa = s4.x + s4.y; o.sb = s4.z + s4.w;
        return o;
    }
    template <bool LO> static __device__ __forceinline__ float dot(const W & w, const X & x, int u) {
        const int j = 2 * (u & 3);
        int sa, ma, sb, mb;
        k4_scale_min_w(w.h.y, w.h.z, w.h.w, j, &sa, &ma);
        k4_scale_min_w(w.h.y, w.h.z, w.h.w, j + 1, &sb, &mb);
        int ia, ib;
        if constexpr (LO) {
            const uint4 na0 = and4(w.q0, 0x0F0F0F0Fu), na1 = and4(w.q1, 0x0F0F0F0Fu);
            const uint4 nb0 = and4(shr4(w.q0, 4), 0x0F0F0F0Fu), nb1 = and4(shr4(w.q1, 4), 0x0F0F0F0Fu);
            ia = dot4(na1, x.la1, dot4(na0, x.la0, dot4(na1, x.a1, dot4(na0, x.a0, 0)) << 8));
            ib = dot4(nb1, x.lb1, dot4(nb0, x.lb0, dot4(nb1, x.b1, dot4(nb0, x.b0, 0)) << 8));
        } else {
            ia = dot4(and4(w.q1, 0x0F0F0F0Fu), x.a1, dot4(and4(w.q0, 0x0F0F0F0Fu), x.a0, 0));
            ib = dot4(and4(shr4(w.q1, 4), 0x0F0F0F0Fu), x.b1, dot4(and4(shr4(w.q0, 4), 0x0F0F0F0Fu), x.b0, 0));
        }
        const float d = h2f(uint16_t(w.h.x & 0xffff)), dmin = h2f(uint16_t(w.h.x >> 16));
        return d * (float(sa) * x.da * float(ia) + float(sb) * x.db * float(ib)) - dmin * (float(ma) * x.sa + float(mb) * x.sb);
    }
};

// Q6_K (device layout: 208-byte bodies, then the d array): unit u = quarter
// t = u%4 of superblock u/4: half g = t/2, l in 16*(t%2) .. +16, values
// 128g + 32i + l for i = 0..3 (ql low/high nibbles of two 16-byte runs, qh
// 2-bit fields of one run).
template <> struct Fast<TensorType::Q6_K> {
    static constexpr int U = 2;
    struct W { uint4 l0, l1, h; uint2 sc; uint32_t d; };
    struct X { uint4 q[4], l[4]; float d[4], s[4]; };
    static __device__ __forceinline__ int units(int64_t n_cols) { return int(n_cols / 256) * 4; }
    static __device__ __forceinline__ const uint8_t * addr(const uint8_t * row, size_t, int u) { return row + 208 * (u >> 2); }
    static __device__ __forceinline__ W load_w(const uint8_t * row, size_t d_off, int u) {
        const int b = u >> 2, t = u & 3, g = t >> 1, lh = t & 1;
        const uint8_t * body = row + 208 * b;
        W o;
        o.l0 = ld128(body + 64 * g + 16 * lh);
        o.l1 = ld128(body + 64 * g + 32 + 16 * lh);
        o.h  = ld128(body + 128 + 32 * g + 16 * lh);
        o.sc = __ldg(reinterpret_cast<const uint2 *>(body + 192 + 8 * g));
        o.d  = ld16(row + d_off + 2 * b);
        return o;
    }
    template <bool LO> static __device__ __forceinline__ X load_x(const XView & x, int u) {
        X o;
        q6k_unit_x<LO>(x, u, o);
        return o;
    }
    // The dot of one 16-value run: 8 bits (q), or 16 (q shifted, plus lo).
    template <bool LO> static __device__ __forceinline__ int dq(uint4 v, const X & x, int i) {
        const int a = dot4(v, x.q[i], 0);
        if constexpr (LO) return dot4(v, x.l[i], a << 8);
        return a;
    }
    template <bool LO> static __device__ __forceinline__ float dot(const W & w, const X & x, int u) {
        return q6k_unit_dot(w.l0, w.l1, w.h, w.sc, uint16_t(w.d), u & 1, x.d, x.s, [&](uint4 v, int i) { return dq<LO>(v, x, i); });
    }
};

// Q8_0 (device layout: 32-byte bodies, then the d array): unit = one block.
template <> struct Fast<TensorType::Q8_0> {
    static constexpr int U = 4;
    struct W { uint4 a, b; uint32_t d; };
    struct X { uint4 a, b, la, lb; float d; };
    static __device__ __forceinline__ int units(int64_t n_cols) { return int(n_cols / 32); }
    static __device__ __forceinline__ const uint8_t * addr(const uint8_t * row, size_t, int u) { return row + 32 * u; }
    static __device__ __forceinline__ W load_w(const uint8_t * row, size_t d_off, int u) {
        return {ld128(row + 32 * u), ld128(row + 32 * u + 16), ld16(row + d_off + 2 * u)};
    }
    template <bool LO> static __device__ __forceinline__ X load_x(const XView & x, int u) {
        const uint8_t * q = reinterpret_cast<const uint8_t *>(x.q) + 32 * u;
        if constexpr (LO) {
            const uint8_t * l = reinterpret_cast<const uint8_t *>(x.l) + 32 * u;
            return {ld128(q), ld128(q + 16), ld128(l), ld128(l + 16), __ldg(x.d + u) * (1.0f / 256.0f)};
        }
        return {ld128(q), ld128(q + 16), {}, {}, __ldg(x.d + u)};
    }
    template <bool LO> static __device__ __forceinline__ float dot(const W & w, const X & x, int) {
        if constexpr (LO) return h2f(uint16_t(w.d)) * x.d * float(dot4(w.b, x.lb, dot4(w.a, x.la, dot4(w.b, x.b, dot4(w.a, x.a, 0)) << 8)));
        return h2f(uint16_t(w.d)) * x.d * float(dot4(w.b, x.b, dot4(w.a, x.a, 0)));
    }
};

// F16: unit = 16 values (two 16-byte loads), f32 activations.
template <> struct Fast<TensorType::F16> {
    static constexpr int U = 4;
    struct W { uint4 a, b; };
    struct X { float4 f[4]; };
    static __device__ __forceinline__ int units(int64_t n_cols) { return int(n_cols / 16); }
    static __device__ __forceinline__ const uint8_t * addr(const uint8_t * row, size_t, int u) { return row + 32 * u; }
    static __device__ __forceinline__ W load_w(const uint8_t * row, size_t, int u) { return {ld128(row + 32 * u), ld128(row + 32 * u + 16)}; }
    template <bool> static __device__ __forceinline__ X load_x(const XView & x, int u) {
        const float4 * p = reinterpret_cast<const float4 *>(x.f + 16 * u);
        return {{__ldg(p), __ldg(p + 1), __ldg(p + 2), __ldg(p + 3)}};
    }
    template <bool> static __device__ __forceinline__ float dot(const W & w, const X & x, int) {
        const uint32_t ws[8] = {w.a.x, w.a.y, w.a.z, w.a.w, w.b.x, w.b.y, w.b.z, w.b.w};
        float r0 = 0.0f, r1 = 0.0f;
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            const float2 f0 = __half22float2(*reinterpret_cast<const __half2 *>(&ws[2 * i]));
            const float2 f1 = __half22float2(*reinterpret_cast<const __half2 *>(&ws[2 * i + 1]));
            r0 = fmaf(f0.x, x.f[i].x, r0);
            r1 = fmaf(f0.y, x.f[i].y, r1);
            r0 = fmaf(f1.x, x.f[i].z, r0);
            r1 = fmaf(f1.y, x.f[i].w, r1);
        }
        return r0 + r1;
    }
};

__host__ __device__ constexpr bool fast_type(TensorType t) {
    return t == TensorType::Q4_K || t == TensorType::Q6_K || t == TensorType::Q8_0 || t == TensorType::F16;
}

// L2 prefetch of the first pass of R rows (weights only: allowed before pdl_wait).
template <class F, int R>
__device__ __forceinline__ void prefetch_rows(const DevMat & w, int row0) {
    const int lane = threadIdx.x & 31;
    if (lane >= F::units(w.n_cols)) return;
#pragma unroll
    for (int r = 0; r < R; ++r) {
        const uint8_t * row = w.data + size_t(min(row0 + r, int(w.n_rows) - 1)) * w.stride;
        prefetch_l2(F::addr(row, w.d_off, lane));
    }
}

// Bulk L2 prefetch (Hopper: one instruction, the copy engine streams it) of
// the 16-byte-aligned part of [p, p + n); a hint, weights only.
__device__ __forceinline__ void prefetch_bulk_l2(const uint8_t * p, size_t n) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    const uintptr_t a = (reinterpret_cast<uintptr_t>(p) + 15) & ~uintptr_t(15);
    const uintptr_t e = (reinterpret_cast<uintptr_t>(p) + n) & ~uintptr_t(15);
    if (e > a) {
        asm volatile("{\n\t.reg .u64 g;\n\tcvta.to.global.u64 g, %0;\n\tcp.async.bulk.prefetch.L2.global [g], %1;\n\t}"
                     ::"l"(uint64_t(a)), "r"(uint32_t(e - a)) : "memory");
    }
#endif
}

// Before pdl_wait, a warp's weights: pf > 0: the first pf bytes of rows
// [row0, row0 + R) (contiguous) in one bulk prefetch by lane 0, so the rows
// stream into L2 while the previous kernel finishes and the warp's own
// latency-bound loop then reads them from L2; pf == 0: the first pass only,
// one line per lane (the earlier form).
template <class F, int R>
__device__ __forceinline__ void prefetch_warp(const DevMat & w, int row0, int pf) {
    if (pf > 0) {
        if ((threadIdx.x & 31) != 0 || row0 >= w.n_rows) return;
        const int nr = min(R, int(w.n_rows) - row0);
        prefetch_bulk_l2(w.data + size_t(row0) * w.stride, min(size_t(nr) * w.stride, size_t(pf)));
        return;
    }
    prefetch_rows<F, R>(w, row0);
}

// acc[r] += row (row0 + r) . x over this lane's units (rows past the end
// clamp to the last row; their results are not stored). The loads of F::U
// passes x R rows are issued before any of them is used (U = 1 for short
// rows, where the extra passes would only be clamped duplicates).
// (ks > 1: this warp is part `part` of ks warps sharing the rows, taking every
// ks-th stretch of 32 U units.)
template <class F, int R, bool BIG, bool LO>
__device__ __forceinline__ void rows_dot(const DevMat & w, int row0, const XView & x, float (&acc)[R], int part = 0, int ks = 1) {
    constexpr int U = BIG ? F::U : 1;
    const int lane = threadIdx.x & 31;
    const uint8_t * rows[R];
#pragma unroll
    for (int r = 0; r < R; ++r) rows[r] = w.data + size_t(min(row0 + r, int(w.n_rows) - 1)) * w.stride;
    const int n_units = F::units(w.n_cols);
    for (int u0 = lane + 32 * U * part; u0 < n_units; u0 += 32 * U * ks) {
        typename F::W wv[U][R];
#pragma unroll
        for (int k = 0; k < U; ++k) {
            const int u = min(u0 + 32 * k, n_units - 1);  // clamped: loads stay in the row, results dropped
#pragma unroll
            for (int r = 0; r < R; ++r) wv[k][r] = F::load_w(rows[r], w.d_off, u);
        }
#pragma unroll
        for (int k = 0; k < U; ++k) {
            const int u = u0 + 32 * k;
            if (u < n_units) {
                const typename F::X xv = F::template load_x<LO>(x, u);
#pragma unroll
                for (int r = 0; r < R; ++r) acc[r] += F::template dot<LO>(wv[k][r], xv, u);
            }
        }
    }
}

// Gate and up rows of one type in one loop: 2R rows' loads in flight, x loaded once.
template <class F, int R, bool LO>
__device__ __forceinline__ void rows_dot2(const DevMat & wg, const DevMat & wu, int row0, const XView & x, float (&g)[R],
                                          float (&up)[R]) {
    const int lane = threadIdx.x & 31;
    const uint8_t * rg[R];
    const uint8_t * ru[R];
#pragma unroll
    for (int r = 0; r < R; ++r) {
        rg[r] = wg.data + size_t(min(row0 + r, int(wg.n_rows) - 1)) * wg.stride;
        ru[r] = wu.data + size_t(min(row0 + r, int(wu.n_rows) - 1)) * wu.stride;
    }
    const int n_units = F::units(wg.n_cols);
    for (int u = lane; u < n_units; u += 32) {
        typename F::W a[R], b[R];
#pragma unroll
        for (int r = 0; r < R; ++r) {
            a[r] = F::load_w(rg[r], wg.d_off, u);
            b[r] = F::load_w(ru[r], wu.d_off, u);
        }
        const typename F::X xv = F::template load_x<LO>(x, u);
#pragma unroll
        for (int r = 0; r < R; ++r) {
            g[r] += F::template dot<LO>(a[r], xv, u);
            up[r] += F::template dot<LO>(b[r], xv, u);
        }
    }
}

template <int R, bool MV> __device__ __forceinline__ void prefetch_any(const DevMat & w, int row0, int pf = 0) {
    switch (w.type) {
        case TensorType::Q4_K:
            if constexpr (MV) prefetch_warp<Q4K32, R>(w, row0, pf);
            else prefetch_warp<Fast<TensorType::Q4_K>, R>(w, row0, pf);
            break;
        case TensorType::Q6_K: prefetch_warp<Fast<TensorType::Q6_K>, R>(w, row0, pf); break;
        case TensorType::Q8_0: prefetch_warp<Fast<TensorType::Q8_0>, R>(w, row0, pf); break;
        case TensorType::F16:  prefetch_warp<Fast<TensorType::F16>, R>(w, row0, pf); break;
        default: break;
    }
}
// TI >= 0: every job has type TensorType(TI) (code for that type only);
// TI < 0: mixed fast types, switched per warp.
// The matvec's unit types (Q4_K: the 32-byte unit).
template <TensorType T> struct MvOf { using type = Fast<T>; };
template <> struct MvOf<TensorType::Q4_K> { using type = Q4K32; };

template <int TI, int R, bool BIG, bool LO>
__device__ __forceinline__ void dot_any(const DevMat & w, int row0, const XView & x, float (&acc)[R], int part = 0, int ks = 1) {
    if constexpr (TI >= 0) {
        rows_dot<typename MvOf<TensorType(TI)>::type, R, BIG, LO>(w, row0, x, acc, part, ks);
    } else {
        switch (w.type) {
            case TensorType::Q4_K: rows_dot<Q4K32, R, BIG, LO>(w, row0, x, acc, part, ks); break;
            case TensorType::Q6_K: rows_dot<Fast<TensorType::Q6_K>, R, BIG, LO>(w, row0, x, acc, part, ks); break;
            case TensorType::Q8_0: rows_dot<Fast<TensorType::Q8_0>, R, BIG, LO>(w, row0, x, acc, part, ks); break;
            case TensorType::F16:  rows_dot<Fast<TensorType::F16>, R, BIG, LO>(w, row0, x, acc, part, ks); break;
            default: break;
        }
    }
}

__device__ __forceinline__ XView x_of(const int8_t * xq, const float * xd, const float * xs, const int8_t * xl, const float * xf,
                                      int64_t n_cols, int tok) {
    const int64_t nc = n_cols / 32;
    return {xq ? xq + tok * n_cols : nullptr, xd ? xd + tok * nc : nullptr, xs ? xs + tok * nc * 2 : nullptr,
            xf ? xf + tok * n_cols : nullptr, xl ? xl + tok * n_cols : nullptr};
}

constexpr int kFastWarps = 4;
constexpr int kFastRows  = 2;  // rows per warp

struct FastJobs {
    DevMat        w[kMaxJobs];
    float *       y[kMaxJobs];
    const float * bias[kMaxJobs];
    int           block_end[kMaxJobs];  // cumulative blocks (kFastWarps * kFastRows rows each)
    int           n;
    int           rope;  // 1: jobs are q, k, v with the RoPE epilogue ep (matvec_qkv_rope)
    int           pf;    // bytes of its rows a warp prefetches before pdl_wait (prefetch_warp)
    RopeEpilogue  ep;
};

// The q/k/v epilogue of one warp's row pair (row0, row0 + 1) = (2i, 2i + 1)
// of a head (row0 is even): q rotated and scaled to y, k rotated and v as is
// to the f16 cache row *pos + tok. Same arithmetic as qkv_post's.
__device__ __forceinline__ void rope_store(const FastJobs & jobs, int j, int row0, int tok, float v0, float v1) {
    const RopeEpilogue & e = jobs.ep;
    const int n_rows = int(jobs.w[j].n_rows);
    const int row = *e.pos + tok;                        // cache row
    const int pos = e.rope_pos ? e.rope_pos[tok] : row;  // rotary position ([spec] tree nodes: their depth)
    if (jobs.bias[j]) { v0 += jobs.bias[j][row0]; v1 += jobs.bias[j][row0 + 1]; }
    if (j == 2) {
        *reinterpret_cast<__half2 *>(e.v_cache + size_t(row) * n_rows + row0) = __floats2half2_rn(v0, v1);
        return;
    }
    float sn, cs;
    sincosf(float(pos) * e.inv_freq[(row0 % e.hd) / 2], &sn, &cs);
    const float y0 = v0 * cs - v1 * sn, y1 = v0 * sn + v1 * cs;
    if (j == 0) {
        *reinterpret_cast<float2 *>(jobs.y[0] + size_t(tok) * n_rows + row0) = make_float2(y0 * e.q_scale, y1 * e.q_scale);
    } else {
        *reinterpret_cast<__half2 *>(e.k_cache + size_t(row) * n_rows + row0) = __floats2half2_rn(y0, y1);
    }
}

// grid (blocks over all jobs, n_tok), block kFastWarps warps.
template <int TI, bool BIG, bool LO>
__global__ void __launch_bounds__(kFastWarps * 32) matvec_fast_kernel(const FastJobs jobs, const int8_t * __restrict__ xq,
                                                                     const float * __restrict__ xd, const float * __restrict__ xs,
                                                                     const int8_t * __restrict__ xl, const float * __restrict__ xf,
                                                                     int n_cols) {
    pdl_trigger();
    int j = 0;
    while (j < jobs.n && int(blockIdx.x) >= jobs.block_end[j]) ++j;
    if (j >= jobs.n) { pdl_wait(); return; }
    const DevMat & w = jobs.w[j];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int row0 = (int(blockIdx.x) - (j ? jobs.block_end[j - 1] : 0)) * (kFastWarps * kFastRows) + warp * kFastRows;
    if (blockIdx.y == 0) prefetch_any<kFastRows, true>(w, row0, jobs.pf);
    pdl_wait();
    const XView x = x_of(xq, xd, xs, xl, xf, n_cols, blockIdx.y);
    float acc[kFastRows] = {};
    dot_any<TI, kFastRows, BIG, LO>(w, row0, x, acc);
    if (jobs.rope) {  // uniform over the launch
        static_assert(kFastRows == 2, "the RoPE epilogue rotates the warp's row pair");
        const float v0 = warp_sum(acc[0]), v1 = warp_sum(acc[1]);
        if (lane == 0 && row0 < w.n_rows) rope_store(jobs, j, row0, int(blockIdx.y), v0, v1);
        return;
    }
#pragma unroll
    for (int r = 0; r < kFastRows; ++r) {
        const float v = warp_sum(acc[r]);
        const int row = row0 + r;
        if (lane == r && row < w.n_rows) jobs.y[j][size_t(blockIdx.y) * w.n_rows + row] = v + (jobs.bias[j] ? jobs.bias[j][row] : 0.0f);
    }
}

// The output head (one job of > head_rows() rows; launch_fast): a grid of one
// wave of resident blocks whose warps walk the row pairs with a stride of all
// the grid's warps, instead of 16032 blocks of 8 rows (8B head) that each
// load one pass and exit. Before pdl_wait lane 0 bulk-prefetches the warp's
// first pair into L2; `ahead` > 0 also prefetches, before each pair, the pair
// `ahead` strides later (measured slower, see head_stream_ahead). Each pair's
// sum is matvec_fast_kernel's (same units, passes and reduction), so the rows
// have its bits (and matvec_multi's).
template <int TI, bool BIG, bool LO>
__global__ void __launch_bounds__(kFastWarps * 32) matvec_stream_kernel(const FastJobs jobs, const int8_t * __restrict__ xq,
                                                                       const float * __restrict__ xd, const float * __restrict__ xs,
                                                                       const int8_t * __restrict__ xl, const float * __restrict__ xf,
                                                                       int n_cols, int ahead) {
    pdl_trigger();
    const DevMat & w = jobs.w[0];
    const int lane = threadIdx.x & 31;
    const int n_pairs = int((w.n_rows + kFastRows - 1) / kFastRows);
    const int stride = int(gridDim.x) * kFastWarps;
    int p = int(blockIdx.x) * kFastWarps + (threadIdx.x >> 5);
    const size_t pair_bytes = size_t(kFastRows) * w.stride;
    // (prefetch_warp with pf > 0 does not use its unit type)
    if (blockIdx.y == 0) {  // weights only: before pdl_wait
        for (int k = 0; k <= ahead; ++k) {
            if (p + k * stride < n_pairs) prefetch_warp<Fast<TensorType::Q8_0>, kFastRows>(w, (p + k * stride) * kFastRows, int(pair_bytes));
        }
    }
    pdl_wait();
    const XView x = x_of(xq, xd, xs, xl, xf, n_cols, blockIdx.y);
    for (; p < n_pairs; p += stride) {
        const int row0 = p * kFastRows;
        if (blockIdx.y == 0 && ahead > 0 && p + (ahead + 1) * stride < n_pairs)
            prefetch_warp<Fast<TensorType::Q8_0>, kFastRows>(w, (p + (ahead + 1) * stride) * kFastRows, int(pair_bytes));
        float acc[kFastRows] = {};
        dot_any<TI, kFastRows, BIG, LO>(w, row0, x, acc);
#pragma unroll
        for (int r = 0; r < kFastRows; ++r) {
            const float v = warp_sum(acc[r]);
            const int row = row0 + r;
            if (lane == r && row < w.n_rows) jobs.y[0][size_t(blockIdx.y) * w.n_rows + row] = v + (jobs.bias[0] ? jobs.bias[0][row] : 0.0f);
        }
    }
}

// Split-K form of matvec_fast_kernel (KS = 2 or 4 warps share each row pair,
// every KS-th stretch of 32 U units each; partial sums added in shared memory):
// 8 / KS rows a block. For the 8B q/k/v: 6144 rows = 768 blocks of 8 rows on
// 4 x 132 resident slots (104 registers) = 1.45 waves; see mv_ksplit.
template <int TI, bool BIG, int KS, bool LO>
__global__ void __launch_bounds__(kFastWarps * 32) matvec_fast_ks_kernel(const FastJobs jobs, const int8_t * __restrict__ xq,
                                                                        const float * __restrict__ xd, const float * __restrict__ xs,
                                                                        const int8_t * __restrict__ xl, const float * __restrict__ xf,
                                                                        int n_cols) {
    static_assert(KS == 2 || KS == 4, "2 or 4 warps per row pair");
    constexpr int RB = kFastWarps / KS * kFastRows;
    __shared__ float part_sum[kFastWarps][kFastRows];
    pdl_trigger();
    int j = 0;
    while (j < jobs.n && int(blockIdx.x) >= jobs.block_end[j]) ++j;
    if (j >= jobs.n) { pdl_wait(); return; }
    const DevMat & w = jobs.w[j];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int grp = warp / KS, part = warp % KS;
    const int row0 = (int(blockIdx.x) - (j ? jobs.block_end[j - 1] : 0)) * RB + grp * kFastRows;
    if (blockIdx.y == 0 && part == 0) prefetch_any<kFastRows, true>(w, row0, jobs.pf);
    pdl_wait();
    const XView x = x_of(xq, xd, xs, xl, xf, n_cols, blockIdx.y);
    float acc[kFastRows] = {};
    dot_any<TI, kFastRows, BIG, LO>(w, row0, x, acc, part, KS);
#pragma unroll
    for (int r = 0; r < kFastRows; ++r) {
        const float v = warp_sum(acc[r]);
        if (lane == r) part_sum[warp][r] = v;
    }
    __syncthreads();
    const int t = threadIdx.x;
    if (jobs.rope) {  // thread t < RB / 2: row pair of group t
        if (t >= RB / kFastRows) return;
        float v0 = 0.0f, v1 = 0.0f;
#pragma unroll
        for (int k = 0; k < KS; ++k) { v0 += part_sum[t * KS + k][0]; v1 += part_sum[t * KS + k][1]; }
        const int r0 = row0 - grp * kFastRows + t * kFastRows;
        if (r0 < w.n_rows) rope_store(jobs, j, r0, int(blockIdx.y), v0, v1);
        return;
    }
    if (t >= RB) return;
    const int gi = t / kFastRows, r = t % kFastRows;
    float v = 0.0f;
#pragma unroll
    for (int k = 0; k < KS; ++k) v += part_sum[gi * KS + k][r];
    const int row = row0 - grp * kFastRows + t;
    if (row < w.n_rows) jobs.y[j][size_t(blockIdx.y) * w.n_rows + row] = v + (jobs.bias[j] ? jobs.bias[j][row] : 0.0f);
}

// Warps per row pair for a fast launch (read at each launch; decode steps
// replay a graph). Measured on an H200 (h5/cudaperf, bench_cuda_kernels):
// KS = 2 took the 8B q/k/v-sized Q4_K matvec (4096 x 6144) from 8.07 to 6.34
// us but the 14336-column ffn_down from 11.96 to 13.12 (Q4_K) and 16.6 to
// 21.6 us (Q6_K); KS = 4 lost on all. So by default KS = 2 only for rows of
// 4096-6144 values in launches of >= GB_CUDA_MV_KS_ROWS rows (default 4096:
// the 8B q/k/v and attn_output; h6/cudadec, H200: 8B tg128 +0.4% with the
// attn_output split, 398.5 / 399.1 vs 396.9 / 397.5 t/s); GB_CUDA_MV_KS=1/2/4
// forces one value for launches of at most 16384 rows (never the output head).
int64_t head_rows();

int mv_ksplit(int64_t n_cols, int64_t total_rows) {
    if (total_rows > head_rows()) return 1;
    if (const char * e = std::getenv("GB_CUDA_MV_KS"); e && *e) {
        const int v = std::atoi(e);
        return v == 2 || v == 4 ? v : 1;
    }
    const char * r = std::getenv("GB_CUDA_MV_KS_ROWS");
    const int64_t min_rows = r && *r ? std::atoll(r) : 4096;
    return n_cols >= 4096 && n_cols <= 6144 && total_rows >= min_rows ? 2 : 1;
}

// Launches of more rows than this are "the head" (GB_CUDA_HEAD_ROWS, default
// 16384; tests lower it to reach the head's kernel with small matrices).
int64_t head_rows() {
    const char * e = std::getenv("GB_CUDA_HEAD_ROWS");
    return e && *e ? std::atoll(e) : 16384;
}

// Bytes of its rows each warp of a fast matvec / gate-up launch prefetches
// into L2 before pdl_wait (prefetch_warp; read at each launch: decode steps
// replay a graph); 0 = the first pass only, one line per lane (as before).
// KiB a warp per class: GB_CUDA_PF_HEAD_KB (> head_rows() rows, default 64;
// only where the stream kernel is off), GB_CUDA_PF_GLU_KB (gate/up),
// GB_CUDA_PF_LONG_KB (rows of > 8192 values: ffn_down), GB_CUDA_PF_KB (the
// others, and the default of the glu and long classes; default 0). Measured on
// an H200 (h6/cudadec, bench_cuda_kernels, whole rows): the output head 136.3
// -> 127.2 us, but the gate/up 26.6 -> 32.4 and ffn_down Q6_K 16.6 -> 19.7
// (tens of MB of prefetches in flight at once; 2-4 KiB a warp: gate/up 27.7 /
// 29.3 us), and 8B tg128 lost with every class on but the head.
// (A next-pass hint, each lane prefetching its next pass's weight lines into
// L1 or L2 while the current loads are in flight, measured slower on the 8B
// Q4_K_M: tg128 378.0 (L1) / 375.3 (L2) vs 406.4 t/s, two activation planes
// 335.9 / 335.6 vs 356.0; H200, h7/agree2.)
int prefetch_bytes(int64_t total_rows, int64_t n_cols, bool glu) {
    auto env_kb = [](const char * name, int dflt) {
        const char * e = std::getenv(name);
        return e && *e ? std::atoi(e) : dflt;
    };
    const int base = env_kb("GB_CUDA_PF_KB", 0);
    int kb = base;
    if (glu) kb = env_kb("GB_CUDA_PF_GLU_KB", base);
    else if (total_rows > head_rows()) kb = env_kb("GB_CUDA_PF_HEAD_KB", 64);
    else if (n_cols > 8192) kb = env_kb("GB_CUDA_PF_LONG_KB", base);
    return kb > 0 ? kb * 1024 : 0;
}

// The head's stream kernel (matvec_stream_kernel): GB_CUDA_HEAD_STREAM=0 turns
// it off; GB_CUDA_HEAD_AHEAD strides of look-ahead prefetch in the loop
// (default 0: the first pair only; H200, 8B head Q6_K: 0 -> 111.7 us, 1 ->
// 180.1, 2 -> 180.5, the fast kernel 136.0, the fast kernel + prefetch 127.0).
int head_stream_ahead() {
    const char * e = std::getenv("GB_CUDA_HEAD_STREAM");
    if (e && e[0] == '0') return -1;
    const char * a = std::getenv("GB_CUDA_HEAD_AHEAD");
    return a && *a ? std::max(0, std::atoi(a)) : 0;
}

constexpr int kGluWarps = 8;
constexpr int kGluRows  = 4;  // rows of gate and of up per warp; 32 rows a block

// y = act(gate x) * (up x) for rows [32 blockIdx.x, +32) and token blockIdx.y;
// y also quantized to q8 (one block of 32) when q.q is set. TI >= 0: gate and
// up both of that type (one interleaved loop); else mixed, one after the other.
template <int TI, bool LO>
__global__ void __launch_bounds__(kGluWarps * 32) matvec_glu_kernel(const DevMat gate, const DevMat up, int act,
                                                                   const int8_t * __restrict__ xq, const float * __restrict__ xd,
                                                                   const float * __restrict__ xs, const int8_t * __restrict__ xl,
                                                                   const float * __restrict__ xf, float * __restrict__ y, Q8Act q,
                                                                   int pf) {
    __shared__ float vals[kGluWarps * kGluRows];
    pdl_trigger();
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int row0 = blockIdx.x * (kGluWarps * kGluRows) + warp * kGluRows;
    if (blockIdx.y == 0) {
        prefetch_any<kGluRows, false>(gate, row0, pf);
        prefetch_any<kGluRows, false>(up, row0, pf);
    }
    pdl_wait();
    const XView x = x_of(xq, xd, xs, xl, xf, gate.n_cols, blockIdx.y);
    float g[kGluRows] = {}, u[kGluRows] = {};
    if constexpr (TI >= 0) {
        rows_dot2<Fast<TensorType(TI)>, kGluRows, LO>(gate, up, row0, x, g, u);
    } else {
        dot_any<-1, kGluRows, false, LO>(gate, row0, x, g);
        dot_any<-1, kGluRows, false, LO>(up, row0, x, u);
    }
#pragma unroll
    for (int r = 0; r < kGluRows; ++r) {
        const float gv = warp_sum(g[r]), uv = warp_sum(u[r]);
        if (lane == r) vals[warp * kGluRows + r] = glu_act(act, gv) * uv;
    }
    __syncthreads();
    if (warp == 0) {
        const float v = vals[lane];
        const size_t o = size_t(blockIdx.y) * gate.n_rows + size_t(blockIdx.x) * 32 + lane;
        y[o] = v;
        if (q.q) q8_quant_warp_t<LO>(v, int64_t(o / 32), q);
    }
}

Status launch_fast(const MatvecJob * jobs, int n, const Q8Act & xq, const float * xf, int n_tok, cudaStream_t s,
                   const RopeEpilogue * ep = nullptr) {
    FastJobs a{};
    if (ep) { a.rope = 1; a.ep = *ep; }
    int64_t total_rows = 0;
    for (int i = 0; i < n; ++i) total_rows += jobs[i].w.n_rows;
    // one Q4_K / Q6_K matrix (not the head): weights streamed through shared memory (matvec_pipe.cu)
    if (n == 1 && !ep && total_rows <= head_rows() && mv_pipe_supported(jobs[0].w, xq))
        return mv_pipe(jobs[0].w, xq, n_tok, jobs[0].y, jobs[0].bias, s);
    a.pf = prefetch_bytes(total_rows, jobs[0].w.n_cols, false);
    const int ks = mv_ksplit(jobs[0].w.n_cols, total_rows);
    int blocks = 0;
    const int rows_per_block = kFastWarps * kFastRows / ks;
    for (int i = 0; i < n; ++i) {
        a.w[i]    = jobs[i].w;
        a.y[i]    = jobs[i].y;
        a.bias[i] = jobs[i].bias;
        blocks += int((jobs[i].w.n_rows + rows_per_block - 1) / rows_per_block);
        a.block_end[i] = blocks;
    }
    a.n = n;
    bool same = true;
    for (int i = 1; i < n; ++i) same = same && jobs[i].w.type == jobs[0].w.type;
    // Several passes in flight only where every lane has U units of a row
    // (K-quants, Q8_0: 4096 values; F16: 2048); shorter rows run one pass at a time.
    const bool big = jobs[0].w.n_cols >= (same && jobs[0].w.type == TensorType::F16 ? 2048 : 4096);
    const bool lo = xq.lo != nullptr;
    const int ti = same && fast_type(jobs[0].w.type) ? int(jobs[0].w.type) : -1;
    const int n_cols = int(jobs[0].w.n_cols);
    // f.template operator()<TI, BIG, LO>() for the run-time (ti, big, lo)
    auto pick = [&](auto f) {
        auto by_lo = [&]<int TI>() {
            if (big) return lo ? f.template operator()<TI, true, true>() : f.template operator()<TI, true, false>();
            return lo ? f.template operator()<TI, false, true>() : f.template operator()<TI, false, false>();
        };
        switch (ti) {
            case int(TensorType::Q4_K): return by_lo.template operator()<int(TensorType::Q4_K)>();
            case int(TensorType::Q6_K): return by_lo.template operator()<int(TensorType::Q6_K)>();
            case int(TensorType::Q8_0): return by_lo.template operator()<int(TensorType::Q8_0)>();
            case int(TensorType::F16):  return by_lo.template operator()<int(TensorType::F16)>();
            default: return by_lo.template operator()<-1>();
        }
    };
    if (n == 1 && !ep && total_rows > head_rows() && fast_type(jobs[0].w.type)) {
        if (const int ahead = head_stream_ahead(); ahead >= 0) {
            const void * sk = pick([&]<int TI, bool BIG, bool LO>() { return reinterpret_cast<const void *>(matvec_stream_kernel<TI, BIG, LO>); });
            const int res = resident_blocks(sk, kFastWarps * 32);
            if (res > 0) {
                int grid = std::min(blocks, res);
                if (const char * e = std::getenv("GB_CUDA_HEAD_GRID"); e && *e) grid = std::max(1, std::min(grid, std::atoi(e)));  // tests: many pairs a warp
                const cudaError_t e = pick([&]<int TI, bool BIG, bool LO>() {
                    return launch_pdl(matvec_stream_kernel<TI, BIG, LO>, dim3(grid, n_tok), dim3(kFastWarps * 32), 0, s, a, xq.q, xq.d,
                                      xq.s, xq.lo, xf, n_cols, ahead);
                });
                GB_CU(e);
                return {};
            }
        }
    }
    if (ks > 1) {  // U = 1 here: the KS warps split the passes (BIG does not matter)
        const cudaError_t e = pick([&]<int TI, bool, bool LO>() {
            if (ks == 2)
                return launch_pdl(matvec_fast_ks_kernel<TI, false, 2, LO>, dim3(blocks, n_tok), dim3(kFastWarps * 32), 0, s, a, xq.q, xq.d,
                                  xq.s, xq.lo, xf, n_cols);
            return launch_pdl(matvec_fast_ks_kernel<TI, false, 4, LO>, dim3(blocks, n_tok), dim3(kFastWarps * 32), 0, s, a, xq.q, xq.d,
                              xq.s, xq.lo, xf, n_cols);
        });
        GB_CU(e);
        return {};
    }
    const cudaError_t e = pick([&]<int TI, bool BIG, bool LO>() {
        return launch_pdl(matvec_fast_kernel<TI, BIG, LO>, dim3(blocks, n_tok), dim3(kFastWarps * 32), 0, s, a, xq.q, xq.d, xq.s, xq.lo,
                          xf, n_cols);
    });
    GB_CU(e);
    return {};
}

// ---- [spec] several tokens per weight read, for the output head ----------------
// As matvec_fast_kernel, but a block computes its rows for up to NT tokens:
// each weight load is dotted with every token's activations in turn, so a
// matrix that does not fit L2 (the head: gemma-3-270m 262144 x 640 Q8_0,
// 178 MB) is read once per NT tokens instead of once per token. Each token's
// sum runs in the one-token kernel's order (same units, same passes, same
// warp reduction), so every row has the one-token kernel's bits. (For the
// small layer matrices this measured slower than per-token grids: h4/cudaspec.)
struct XBase {
    const int8_t * q; const float * d; const float * s; const float * f;
    int64_t n_cols;
    const int8_t * l;
    __device__ __forceinline__ XView at(int tok) const { return x_of(q, d, s, l, f, n_cols, tok); }
};

template <class F, int R, bool BIG, int NT, bool LO>
__device__ __forceinline__ void rows_dot_multi(const DevMat & w, int row0, const XBase & xb, int t0, int nt, float (&acc)[NT][R]) {
    constexpr int U = BIG ? F::U : 1;
    const int lane = threadIdx.x & 31;
    const uint8_t * rows[R];
#pragma unroll
    for (int r = 0; r < R; ++r) rows[r] = w.data + size_t(min(row0 + r, int(w.n_rows) - 1)) * w.stride;
    const int n_units = F::units(w.n_cols);
    for (int u0 = lane; u0 < n_units; u0 += 32 * U) {
        typename F::W wv[U][R];
#pragma unroll
        for (int k = 0; k < U; ++k) {
            const int u = min(u0 + 32 * k, n_units - 1);
#pragma unroll
            for (int r = 0; r < R; ++r) wv[k][r] = F::load_w(rows[r], w.d_off, u);
        }
#pragma unroll
        for (int k = 0; k < U; ++k) {
            const int u = u0 + 32 * k;
            if (u < n_units) {
#pragma unroll
                for (int tt = 0; tt < NT; ++tt) {
                    if (tt < nt) {
                        const typename F::X xv = F::template load_x<LO>(xb.at(t0 + tt), u);
#pragma unroll
                        for (int r = 0; r < R; ++r) acc[tt][r] += F::template dot<LO>(wv[k][r], xv, u);
                    }
                }
            }
        }
    }
}

// grid (row blocks, ceil(n_tok / NT)), block kFastWarps warps; one job of type T.
template <TensorType T, bool BIG, int NT, bool LO>
__global__ void __launch_bounds__(kFastWarps * 32) matvec_multi_kernel(const DevMat w, float * __restrict__ y, const XBase xb, int n_tok) {
    using F = typename MvOf<T>::type;
    pdl_trigger();
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int row0 = int(blockIdx.x) * (kFastWarps * kFastRows) + warp * kFastRows;
    if (blockIdx.y == 0) prefetch_rows<F, kFastRows>(w, row0);
    pdl_wait();
    const int t0 = int(blockIdx.y) * NT, nt = min(NT, n_tok - t0);
    float acc[NT][kFastRows] = {};
    rows_dot_multi<F, kFastRows, BIG, NT, LO>(w, row0, xb, t0, nt, acc);
#pragma unroll
    for (int tt = 0; tt < NT; ++tt) {
        if (tt < nt) {
#pragma unroll
            for (int r = 0; r < kFastRows; ++r) {
                const float v = warp_sum(acc[tt][r]);
                const int row = row0 + r;
                if (lane == r && row < w.n_rows) y[size_t(t0 + tt) * w.n_rows + row] = v + 0.0f;
            }
        }
    }
}

template <TensorType T, int NT> Status launch_multi_nt(const DevMat & w, float * y, const XBase & xb, int n_tok, cudaStream_t s) {
    constexpr int rows_per_block = kFastWarps * kFastRows;
    const dim3 grid(unsigned((w.n_rows + rows_per_block - 1) / rows_per_block), unsigned((n_tok + NT - 1) / NT));
    const bool big = w.n_cols >= (T == TensorType::F16 ? 2048 : 4096);  // as launch_fast
    auto * k = big ? matvec_multi_kernel<T, true, NT, false> : matvec_multi_kernel<T, false, NT, false>;
    if (xb.l) k = big ? matvec_multi_kernel<T, true, NT, true> : matvec_multi_kernel<T, false, NT, true>;
    GB_CU(launch_pdl(k, grid, dim3(kFastWarps * 32), 0, s, w, y, xb, n_tok));
    return {};
}

template <TensorType T> Status launch_multi(const DevMat & w, float * y, const XBase & xb, int n_tok, cudaStream_t s) {
    if (n_tok <= 4) return launch_multi_nt<T, 4>(w, y, xb, n_tok, s);
    if (n_tok <= 8) return launch_multi_nt<T, 8>(w, y, xb, n_tok, s);
    return launch_multi_nt<T, 16>(w, y, xb, n_tok, s);
}

Status launch_group(const MatvecJob * jobs, int n, const Q8Act & xq, const float * xf, int n_tok, cudaStream_t s) {
    JobsArg a{};
    int groups = 0;
    for (int i = 0; i < n; ++i) {
        a.w[i]    = jobs[i].w;
        a.y[i]    = jobs[i].y;
        a.bias[i] = jobs[i].bias;
        groups += int((jobs[i].w.n_rows + kRows - 1) / kRows);
        a.group_end[i] = groups;
    }
    a.n = n;
    const TensorType t = jobs[0].w.type;
    const int n_cols   = int(jobs[0].w.n_cols);
    const dim3 grid((groups + kWarps - 1) / kWarps, n_tok);
    cudaError_t e = cudaSuccess;
    bool ok = dispatch_type(t, [&]<TensorType T>() {
        if constexpr (T == TensorType::F32 || T == TensorType::F16 || T == TensorType::BF16) {
            e = launch_pdl(matvec_f_kernel<T>, grid, dim3(kWarps * 32), 0, s, a, xf, n_cols);
        } else {
            e = launch_pdl(matvec_q_kernel<T>, grid, dim3(kWarps * 32), 0, s, a, xq.q, xq.d, xq.s, xq.lo, n_cols);
        }
    });
    if (!ok) return make_error(ErrorCode::Unsupported, std::string("CUDA matvec: type ") + type_name(t) + " not supported");
    GB_CU(e);
    return {};
}

}  // namespace

Status matvec(const MatvecJob * jobs, int n_jobs, const Q8Act & xq, const float * xf, int n_tok, cudaStream_t s) {
    int i = 0;
    while (i < n_jobs) {
        if (jobs[i].w.n_cols % 32 != 0) return make_error(ErrorCode::Unsupported, "CUDA matvec: row length not a multiple of 32");
        const bool fast = fast_type(jobs[i].w.type) && !(jobs[i].w.type != TensorType::F16 && !xq.q) &&
                          !(jobs[i].w.type == TensorType::F16 && !xf);
        int e = i + 1;
        if (fast) {
            while (e < n_jobs && e - i < kMaxJobs && fast_type(jobs[e].w.type) && jobs[e].w.n_cols == jobs[i].w.n_cols &&
                   (jobs[e].w.type == TensorType::F16 ? xf != nullptr : xq.q != nullptr))
                ++e;
            GB_TRY_STATUS(launch_fast(jobs + i, e - i, xq, xf, n_tok, s));
        } else {
            while (e < n_jobs && e - i < kMaxJobs && jobs[e].w.type == jobs[i].w.type) ++e;
            GB_TRY_STATUS(launch_group(jobs + i, e - i, xq, xf, n_tok, s));
        }
        i = e;
    }
    return {};
}

Status matvec_multi(const MatvecJob & job, const Q8Act & xq, const float * xf, int n_tok, cudaStream_t s) {
    const DevMat & w = job.w;
    const bool fast = fast_type(w.type) && (w.type == TensorType::F16 ? xf != nullptr : xq.q != nullptr) && !job.bias;
    // (a matrix the one-token matvec splits over warps (mv_ksplit) or streams
    // (matvec_pipe.cu) sums in another order than this kernel: matvec() itself,
    // so the bits stay the one-token ones)
    if (!fast || w.n_cols % 32 != 0 || n_tok <= 1 || mv_ksplit(w.n_cols, w.n_rows) > 1 || (w.n_rows <= head_rows() && mv_pipe_supported(w, xq)))
        return matvec(&job, 1, xq, xf, n_tok, s);
    if (n_tok == 0) return {};
    const XBase xb{xq.q, xq.d, xq.s, xf, w.n_cols, xq.lo};
    switch (w.type) {
        case TensorType::Q4_K: return launch_multi<TensorType::Q4_K>(w, job.y, xb, n_tok, s);
        case TensorType::Q6_K: return launch_multi<TensorType::Q6_K>(w, job.y, xb, n_tok, s);
        case TensorType::Q8_0: return launch_multi<TensorType::Q8_0>(w, job.y, xb, n_tok, s);
        case TensorType::F16:  return launch_multi<TensorType::F16>(w, job.y, xb, n_tok, s);
        default: return matvec(&job, 1, xq, xf, n_tok, s);
    }
}

bool matvec_qkv_rope_supported(const MatvecJob * qkv, int hd, const Q8Act & xq, const float * xf) {
    for (int i = 0; i < 3; ++i) {
        const TensorType t = qkv[i].w.type;
        if (!fast_type(t) || qkv[i].w.n_cols != qkv[0].w.n_cols || qkv[i].w.n_rows % hd != 0) return false;
        if (t == TensorType::F16 ? !xf : !xq.q) return false;
    }
    return hd % 2 == 0 && qkv[0].w.n_cols % 32 == 0;
}

Status matvec_qkv_rope(const MatvecJob * qkv, const RopeEpilogue & ep, const Q8Act & xq, const float * xf, int n_tok, cudaStream_t s) {
    if (!matvec_qkv_rope_supported(qkv, ep.hd, xq, xf)) return make_error(ErrorCode::Unsupported, "CUDA matvec_qkv_rope: unsupported types or shapes");
    if (n_tok == 0) return {};
    return launch_fast(qkv, 3, xq, xf, n_tok, s, &ep);
}

bool matvec_glu_supported(const DevMat & gate, const DevMat & up) {
    return fast_type(gate.type) && fast_type(up.type) && gate.n_rows == up.n_rows && gate.n_cols == up.n_cols &&
           gate.n_rows % 32 == 0;
}

Status matvec_glu(const DevMat & gate, const DevMat & up, int act, const Q8Act & xq, const float * xf, int n_tok, float * y,
                  const Q8Act & q_out, cudaStream_t s) {
    if (!matvec_glu_supported(gate, up)) return make_error(ErrorCode::Unsupported, "CUDA matvec_glu: unsupported types or shapes");
    const bool need_q = gate.type != TensorType::F16 || up.type != TensorType::F16;
    const bool need_f = gate.type == TensorType::F16 || up.type == TensorType::F16;
    if ((need_q && !xq.q) || (need_f && !xf)) return make_error(ErrorCode::InvalidArgument, "CUDA matvec_glu: missing activations");
    if (n_tok == 0) return {};
    // (Split-K forms of this kernel, 2 or 4 warps per 4-row group, 16 or 8 rows a
    // block, the q8 written by the last block of each 32-row group, measured
    // slower on the 8B gate/up despite 3.4 / 6.8 waves instead of 1.7: 30.5 /
    // 35.0 vs 26.5 us, H200, h5/cudaperf.)
    // (A row-task form, one gate/up row pair per warp task on a one-wave grid,
    // 6.8 rounds of tasks instead of 1.7 waves of 32-row blocks, the q8 blocks
    // finished by the last of their 32 rows through counters, measured 38.3-38.7
    // vs 26.5 us on the 8B gate/up (1B: 16.8 vs 8.9), H200, h6/cudadec; likely
    // cause, not measured: each x load serves 2 rows instead of 8.)
    // (Q4_K keeps the 16-byte unit here: the matvec's 32-byte unit needs 159
    // registers with 8 rows in flight, one block per SM, and measured 21% slower
    // on the 8B gate/up: 33.5 vs 26.4 us, H200, h4/cudadec.)
    // Q4_K gate/up of 2048 / 4096 columns: the streaming kernel (f32 out), then
    // the q8 in its own launch (in the kernel's epilogue, through 32-row group
    // counters, it cost 9 of its 25 us on the 8B shape: H200, eighth session)
    if (glu_pipe_supported(gate, up, xq)) {
        GB_TRY_STATUS(glu_pipe(gate, up, act, xq, n_tok, y, s));
        if (q_out.q) GB_TRY_STATUS(act_quant(y, nullptr, act, int64_t(n_tok) * gate.n_rows, q_out, s));
        return {};
    }
    const bool lo = xq.lo != nullptr;
    auto pick = [&]<int TI>() { return lo ? matvec_glu_kernel<TI, true> : matvec_glu_kernel<TI, false>; };
    auto * k = pick.template operator()<-1>();
    if (gate.type == up.type) {
        switch (gate.type) {
            case TensorType::Q4_K: k = pick.template operator()<int(TensorType::Q4_K)>(); break;
            case TensorType::Q6_K: k = pick.template operator()<int(TensorType::Q6_K)>(); break;
            case TensorType::Q8_0: k = pick.template operator()<int(TensorType::Q8_0)>(); break;
            case TensorType::F16:  k = pick.template operator()<int(TensorType::F16)>(); break;
            default: break;
        }
    }
    GB_CU(launch_pdl(k, dim3(unsigned(gate.n_rows / 32), n_tok), dim3(kGluWarps * 32), 0, s, gate, up, act, xq.q, xq.d, xq.s,
                     xq.lo, xf, y, q_out, prefetch_bytes(gate.n_rows, gate.n_cols, true)));
    return {};
}

}  // namespace gb::cuda
