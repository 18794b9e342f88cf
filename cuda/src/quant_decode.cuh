// Device-side decoding of every quantized weight type, one 32-value chunk at a
// time, into a common form: 32 small integers packed 4 per int (int8 lanes)
// and per 16-value half a scale and an offset, value = sc[h] * q + mn[h].
// The matvec (dp4a against q8 activations) and the dequantizers share it.
#pragma once

#include "cu_common.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

namespace gb::cuda {

struct Chunk {
    int   q[8];   // element 4i+b in byte b of q[i] (int8, value range per type)
    float sc[2];  // halves: elements 0..15, 16..31
    float mn[2];
};

__device__ __forceinline__ float h2f(uint16_t bits) { return __half2float(__ushort_as_half(bits)); }
__device__ __forceinline__ uint32_t ld32(const uint8_t * p) { return __ldg(reinterpret_cast<const unsigned int *>(p)); }
__device__ __forceinline__ uint16_t ld16(const uint8_t * p) { return __ldg(reinterpret_cast<const unsigned short *>(p)); }
__device__ __forceinline__ uint4 ld128(const uint8_t * p) { return __ldg(reinterpret_cast<const uint4 *>(p)); }
__device__ __forceinline__ void ld256(const uint8_t * p, uint32_t w[8]) {
    const uint4 a = ld128(p), b = ld128(p + 16);
    w[0] = a.x; w[1] = a.y; w[2] = a.z; w[3] = a.w;
    w[4] = b.x; w[5] = b.y; w[6] = b.z; w[7] = b.w;
}
// Bits 0..3 of n to bit 4 of bytes 0..3.
__device__ __forceinline__ uint32_t spread4(uint32_t n) {
    return ((n & 1u) << 4) | ((n & 2u) << 11) | ((n & 4u) << 18) | ((n & 8u) << 25);
}
__device__ __forceinline__ void k4_scale_min(const uint8_t * s, int j, int * sc, int * m) {
    if (j < 4) {
        *sc = s[j] & 63;
        *m  = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 0x0f) | ((s[j - 4] >> 6) << 4);
        *m  = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}

// As k4_scale_min from the 12 scale bytes held in three words (selects, no
// run-time indexing of a register array, which would go to local memory).
__device__ __forceinline__ void k4_scale_min_w(uint32_t w0, uint32_t w1, uint32_t w2, int j, int * sc, int * m) {
    auto byte = [&](int k) -> int { const uint32_t w = k < 4 ? w0 : (k < 8 ? w1 : w2); return int((w >> (8 * (k & 3))) & 0xff); };
    if (j < 4) {
        *sc = byte(j) & 63;
        *m  = byte(j + 4) & 63;
    } else {
        *sc = (byte(j + 4) & 0x0f) | ((byte(j - 4) >> 6) << 4);
        *m  = (byte(j + 4) >> 4) | ((byte(j) >> 6) << 4);
    }
}

// Decodes chunk c (values 32c .. 32c+31) of a row in the device layout.
template <TensorType T> __device__ __forceinline__ void decode_chunk(const uint8_t * row, size_t d_off, int c, Chunk & o);

template <> __device__ __forceinline__ void decode_chunk<TensorType::Q4_0>(const uint8_t * row, size_t d_off, int c, Chunk & o) {
    const uint4 w = ld128(row + 16 * c);
    const uint32_t ws[4] = {w.x, w.y, w.z, w.w};
    const float d = h2f(ld16(row + d_off + 2 * c));
#pragma unroll
    for (int i = 0; i < 4; ++i) { o.q[i] = ws[i] & 0x0F0F0F0F; o.q[4 + i] = (ws[i] >> 4) & 0x0F0F0F0F; }
    o.sc[0] = o.sc[1] = d;
    o.mn[0] = o.mn[1] = -8.0f * d;
}

template <> __device__ __forceinline__ void decode_chunk<TensorType::Q4_1>(const uint8_t * row, size_t, int c, Chunk & o) {
    const uint8_t * b = row + 20 * c;
    const uint32_t dm = ld32(b);
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        const uint32_t w = ld32(b + 4 + 4 * i);
        o.q[i] = w & 0x0F0F0F0F; o.q[4 + i] = (w >> 4) & 0x0F0F0F0F;
    }
    o.sc[0] = o.sc[1] = h2f(uint16_t(dm & 0xffff));
    o.mn[0] = o.mn[1] = h2f(uint16_t(dm >> 16));
}

template <> __device__ __forceinline__ void decode_chunk<TensorType::Q5_0>(const uint8_t * row, size_t d_off, int c, Chunk & o) {
    const uint8_t * b = row + 20 * c;
    const uint32_t qh = ld32(b);
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        const uint32_t w = ld32(b + 4 + 4 * i);
        o.q[i]     = (w & 0x0F0F0F0F) | spread4(qh >> (4 * i));
        o.q[4 + i] = ((w >> 4) & 0x0F0F0F0F) | spread4(qh >> (16 + 4 * i));
    }
    const float d = h2f(ld16(row + d_off + 2 * c));
    o.sc[0] = o.sc[1] = d;
    o.mn[0] = o.mn[1] = -16.0f * d;
}

template <> __device__ __forceinline__ void decode_chunk<TensorType::Q5_1>(const uint8_t * row, size_t, int c, Chunk & o) {
    const uint8_t * b = row + 24 * c;
    const uint32_t dm = ld32(b), qh = ld32(b + 4);
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        const uint32_t w = ld32(b + 8 + 4 * i);
        o.q[i]     = (w & 0x0F0F0F0F) | spread4(qh >> (4 * i));
        o.q[4 + i] = ((w >> 4) & 0x0F0F0F0F) | spread4(qh >> (16 + 4 * i));
    }
    o.sc[0] = o.sc[1] = h2f(uint16_t(dm & 0xffff));
    o.mn[0] = o.mn[1] = h2f(uint16_t(dm >> 16));
}

template <> __device__ __forceinline__ void decode_chunk<TensorType::Q8_0>(const uint8_t * row, size_t d_off, int c, Chunk & o) {
    uint32_t w[8];
    ld256(row + 32 * c, w);
#pragma unroll
    for (int i = 0; i < 8; ++i) o.q[i] = int(w[i]);
    o.sc[0] = o.sc[1] = h2f(ld16(row + d_off + 2 * c));
    o.mn[0] = o.mn[1] = 0.0f;
}

template <> __device__ __forceinline__ void decode_chunk<TensorType::Q2_K>(const uint8_t * row, size_t, int c, Chunk & o) {
    const uint8_t * b = row + 84 * (c >> 3);
    const int k8 = c & 7, g = k8 >> 2, k = k8 & 3;
#pragma unroll
    for (int i = 0; i < 8; ++i) o.q[i] = (ld32(b + 16 + 32 * g + 4 * i) >> (2 * k)) & 0x03030303;
    const uint16_t s2 = ld16(b + 2 * k8);
    const uint32_t dd = ld32(b + 80);
    const float d = h2f(uint16_t(dd & 0xffff)), dmin = h2f(uint16_t(dd >> 16));
#pragma unroll
    for (int h = 0; h < 2; ++h) {
        const int s = (s2 >> (8 * h)) & 0xff;
        o.sc[h] = d * float(s & 15);
        o.mn[h] = -dmin * float(s >> 4);
    }
}

template <> __device__ __forceinline__ void decode_chunk<TensorType::Q3_K>(const uint8_t * row, size_t d_off, int c, Chunk & o) {
    const int blk = c >> 3;
    const uint8_t * b = row + 108 * blk;
    const int k8 = c & 7, g = k8 >> 2, k = k8 & 3;
#pragma unroll
    for (int i = 0; i < 8; ++i) {
        const uint32_t lo = (ld32(b + 32 + 32 * g + 4 * i) >> (2 * k)) & 0x03030303;
        const uint32_t hb = (ld32(b + 4 * i) >> k8) & 0x01010101;
        o.q[i] = int(lo | (hb << 2));
    }
    const float d = h2f(ld16(row + d_off + 2 * blk));
    const uint8_t * s = b + 96;
#pragma unroll
    for (int h = 0; h < 2; ++h) {
        const int j  = 2 * k8 + h;
        const int lo = j < 8 ? (__ldg(s + j) & 0x0f) : (__ldg(s + j - 8) >> 4);
        const int hi = (__ldg(s + 8 + j % 4) >> (2 * (j / 4))) & 3;
        o.sc[h] = d * float((lo | (hi << 4)) - 32);
        o.mn[h] = -4.0f * o.sc[h];
    }
}

template <> __device__ __forceinline__ void decode_chunk<TensorType::Q4_K>(const uint8_t * row, size_t, int c, Chunk & o) {
    const uint8_t * b = row + 144 * (c >> 3);
    const int j = c & 7;
    uint32_t w[8];
    ld256(b + 16 + 32 * (j >> 1), w);
    const int shift = 4 * (j & 1);
#pragma unroll
    for (int i = 0; i < 8; ++i) o.q[i] = (w[i] >> shift) & 0x0F0F0F0F;
    const uint32_t dd = ld32(b);
    int sc, m;
    k4_scale_min_w(ld32(b + 4), ld32(b + 8), ld32(b + 12), j, &sc, &m);
    o.sc[0] = o.sc[1] = h2f(uint16_t(dd & 0xffff)) * float(sc);
    o.mn[0] = o.mn[1] = -h2f(uint16_t(dd >> 16)) * float(m);
}

template <> __device__ __forceinline__ void decode_chunk<TensorType::Q5_K>(const uint8_t * row, size_t, int c, Chunk & o) {
    const uint8_t * b = row + 176 * (c >> 3);
    const int j = c & 7;
    uint32_t w[8], qh[8];
    ld256(b + 48 + 32 * (j >> 1), w);
    ld256(b + 16, qh);
    const int shift = 4 * (j & 1);
#pragma unroll
    for (int i = 0; i < 8; ++i) o.q[i] = ((w[i] >> shift) & 0x0F0F0F0F) | (((qh[i] >> j) & 0x01010101) << 4);
    const uint32_t dd = ld32(b);
    int sc, m;
    k4_scale_min_w(ld32(b + 4), ld32(b + 8), ld32(b + 12), j, &sc, &m);
    o.sc[0] = o.sc[1] = h2f(uint16_t(dd & 0xffff)) * float(sc);
    o.mn[0] = o.mn[1] = -h2f(uint16_t(dd >> 16)) * float(m);
}

template <> __device__ __forceinline__ void decode_chunk<TensorType::Q6_K>(const uint8_t * row, size_t d_off, int c, Chunk & o) {
    const int blk = c >> 3;
    const uint8_t * b = row + 208 * blk;
    const int k8 = c & 7, g = k8 >> 2, k = k8 & 3;
    uint32_t ql[8], qh[8];
    ld256(b + 64 * g + 32 * (k & 1), ql);
    ld256(b + 128 + 32 * g, qh);
    const int lshift = 4 * (k >> 1);
#pragma unroll
    for (int i = 0; i < 8; ++i) o.q[i] = int(((ql[i] >> lshift) & 0x0F0F0F0F) | (((qh[i] >> (2 * k)) & 0x03030303) << 4));
    const uint16_t s2 = ld16(b + 192 + 2 * k8);
    const float d = h2f(ld16(row + d_off + 2 * blk));
#pragma unroll
    for (int h = 0; h < 2; ++h) {
        o.sc[h] = d * float(int8_t((s2 >> (8 * h)) & 0xff));
        o.mn[h] = -32.0f * o.sc[h];
    }
}

// Quantizes 32 values (one per lane of a full warp) into q8 block b of q:
// r = v / d, d = amax / 127, q = round(r); one plane (q.lo null): s[2b + h] =
// d * sum(q over half h); two planes: lo = round(256 (r - q)) (r - q is
// exact), lo = 128 taken as q + 1, lo = -128 (|r - q - lo / 256| <= 1/512
// always), s[2b + h] = (d / 256) * sum(256 q + lo over half h).
// LO: the form, fixed at compile time (q8_quant_warp below picks it at run
// time); the one-plane branch is the sixth session's source: a run-time q.lo
// test inside the norm kernels cost their callers' decode 1-2% (8B / 1B
// Q4_K_M tg128, H200, seventh session).
template <bool LO>
__device__ __forceinline__ void q8_quant_warp_t(float v, int64_t b, const Q8Act & q) {
    const int lane = threadIdx.x & 31;
    float amax = fabsf(v);
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, o));
    const float d = amax / 127.0f;
    if constexpr (!LO) {
        const int qi = d > 0.0f ? __float2int_rn(v / d) : 0;
        float sum = float(qi);
#pragma unroll
        for (int o = 8; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);  // within halves of 16
        q.q[b * 32 + lane] = int8_t(qi);
        if (lane == 0) q.d[b] = d;
        if ((lane & 15) == 0) q.s[2 * b + (lane >> 4)] = d * sum;
    } else {
        const float r = d > 0.0f ? v / d : 0.0f;
        int qi = __float2int_rn(r);
        int li = __float2int_rn((r - float(qi)) * 256.0f);
        if (li == 128) { qi += 1; li = -128; }  // (q < 127 here: r <= 127)
        int sum = 256 * qi + li;
#pragma unroll
        for (int o = 8; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);  // within halves of 16
        q.q[b * 32 + lane] = int8_t(qi);
        q.lo[b * 32 + lane] = int8_t(li);
        if (lane == 0) q.d[b] = d;
        if ((lane & 15) == 0) q.s[2 * b + (lane >> 4)] = d * (1.0f / 256.0f) * float(sum);
    }
}

__device__ __forceinline__ void q8_quant_warp(float v, int64_t b, const Q8Act & q) {
    if (q.lo) q8_quant_warp_t<true>(v, b, q);
    else q8_quant_warp_t<false>(v, b, q);
}

// Q6_K, one 64-value unit of a superblock: quarter lh of half g, values
// 128 g + 32 i + 16 lh + 0..15 (i = 0..3), from its weight words (ql runs l0 =
// ql[64 g + 16 lh ..], l1 = ql[64 g + 32 + 16 lh ..], qh run h = qh[32 g + 16 lh
// ..], the half's 8 scales sc, d's bits) and x's runs: dq(v, i) is the integer
// dot of run i's 6-bit values v (0..63) with x (one or two planes), xd / xs the
// runs' d and half-block sums (x's -32 offset). The decode matvecs' shared
// arithmetic (matvec.cu, matvec_pipe.cu).
template <class DQ>
__device__ __forceinline__ float q6k_unit_dot(uint4 l0, uint4 l1, uint4 h, uint2 sc, uint16_t d, int lh, const float (&xd)[4],
                                              const float (&xs)[4], DQ dq) {
    auto pack = [](uint32_t l, uint32_t hb) { return (l & 0x0F0F0F0Fu) | (hb & 0x30303030u); };
    const uint4 v0 = {pack(l0.x, h.x << 4), pack(l0.y, h.y << 4), pack(l0.z, h.z << 4), pack(l0.w, h.w << 4)};
    const uint4 v1 = {pack(l1.x, h.x << 2), pack(l1.y, h.y << 2), pack(l1.z, h.z << 2), pack(l1.w, h.w << 2)};
    const uint4 v2 = {pack(l0.x >> 4, h.x), pack(l0.y >> 4, h.y), pack(l0.z >> 4, h.z), pack(l0.w >> 4, h.w)};
    const uint4 v3 = {pack(l1.x >> 4, h.x >> 2), pack(l1.y >> 4, h.y >> 2), pack(l1.z >> 4, h.z >> 2), pack(l1.w >> 4, h.w >> 2)};
    const int sh = 8 * lh;
    const float s0 = float(int8_t((sc.x >> sh) & 0xff)), s1 = float(int8_t((sc.x >> (sh + 16)) & 0xff));
    const float s2 = float(int8_t((sc.y >> sh) & 0xff)), s3 = float(int8_t((sc.y >> (sh + 16)) & 0xff));
    float r = s0 * (xd[0] * float(dq(v0, 0)) - 32.0f * xs[0]);
    r = fmaf(s1, xd[1] * float(dq(v1, 1)) - 32.0f * xs[1], r);
    r = fmaf(s2, xd[2] * float(dq(v2, 2)) - 32.0f * xs[2], r);
    r = fmaf(s3, xd[3] * float(dq(v3, 3)) - 32.0f * xs[3], r);
    return h2f(d) * r;
}

// x's four 16-value runs of Q6_K unit u (quarter lh = u % 2 of half (u % 4) / 2
// of superblock u / 4) into o.q / o.l (planes), o.d (d, / 256 with two planes)
// and o.s (half-block sums); x: q8 planes q, d, s, l (XView or XPlanes).
template <bool LO, class XV, class XO> __device__ __forceinline__ void q6k_unit_x(const XV & x, int u, XO & o) {
    const int b = u >> 2, g = (u & 3) >> 1, lh = u & 1;
    const int q0 = 8 * b + 4 * g;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        o.q[i] = ld128(reinterpret_cast<const uint8_t *>(x.q) + 32 * (q0 + i) + 16 * lh);
        o.d[i] = __ldg(x.d + q0 + i);
        o.s[i] = __ldg(x.s + 2 * (q0 + i) + lh);
        if constexpr (LO) {
            o.l[i] = ld128(reinterpret_cast<const uint8_t *>(x.l) + 32 * (q0 + i) + 16 * lh);
            o.d[i] *= 1.0f / 256.0f;
        }
    }
}

// Gate activation: 0 SiLU, 1 GELU (tanh approximation).
__device__ __forceinline__ float glu_act(int act, float g) {
    if (act == 0) return g / (1.0f + expf(-g));
    const float c = 0.7978845608028654f;  // sqrt(2/pi)
    return 0.5f * g * (1.0f + tanhf(c * (g + 0.044715f * g * g * g)));
}

// Value e (0..31) of a decoded chunk.
__device__ __forceinline__ float chunk_value(const Chunk & o, int e) {
    const int8_t v = int8_t((o.q[e >> 2] >> (8 * (e & 3))) & 0xff);
    const int h = e >> 4;
    return o.sc[h] * float(v) + o.mn[h];
}

// Float types: 32 values of chunk c.
template <TensorType T> __device__ __forceinline__ void load_float_chunk(const uint8_t * row, int c, float v[32]);
template <> __device__ __forceinline__ void load_float_chunk<TensorType::F32>(const uint8_t * row, int c, float v[32]) {
    const float4 * p = reinterpret_cast<const float4 *>(row + 128 * size_t(c));
#pragma unroll
    for (int i = 0; i < 8; ++i) {
        const float4 f = __ldg(p + i);
        v[4 * i] = f.x; v[4 * i + 1] = f.y; v[4 * i + 2] = f.z; v[4 * i + 3] = f.w;
    }
}
template <> __device__ __forceinline__ void load_float_chunk<TensorType::F16>(const uint8_t * row, int c, float v[32]) {
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        const uint4 u = ld128(row + 64 * size_t(c) + 16 * i);
        const uint32_t ws[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
        for (int k = 0; k < 4; ++k) {
            const float2 f = __half22float2(*reinterpret_cast<const __half2 *>(&ws[k]));
            v[8 * i + 2 * k] = f.x; v[8 * i + 2 * k + 1] = f.y;
        }
    }
}
template <> __device__ __forceinline__ void load_float_chunk<TensorType::BF16>(const uint8_t * row, int c, float v[32]) {
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        const uint4 u = ld128(row + 64 * size_t(c) + 16 * i);
        const uint32_t ws[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
        for (int k = 0; k < 4; ++k) {
            v[8 * i + 2 * k]     = __uint_as_float(ws[k] << 16);
            v[8 * i + 2 * k + 1] = __uint_as_float(ws[k] & 0xffff0000u);
        }
    }
}

// Chunk c (32 values) of a row of any weight type, as floats.
template <TensorType T> __device__ __forceinline__ void row_chunk_floats(const uint8_t * row, size_t d_off, int c, float v[32]) {
    if constexpr (T == TensorType::F32 || T == TensorType::F16 || T == TensorType::BF16) {
        load_float_chunk<T>(row, c, v);
    } else {
        Chunk ch;
        decode_chunk<T>(row, d_off, c, ch);
#pragma unroll
        for (int e = 0; e < 32; ++e) v[e] = chunk_value(ch, e);
    }
}

// Calls f.template operator()<T>() for a runtime type (quantized or float).
template <typename F> inline bool dispatch_type(TensorType t, F && f) {
    switch (t) {
        case TensorType::F32:  f.template operator()<TensorType::F32>(); return true;
        case TensorType::F16:  f.template operator()<TensorType::F16>(); return true;
        case TensorType::BF16: f.template operator()<TensorType::BF16>(); return true;
        case TensorType::Q4_0: f.template operator()<TensorType::Q4_0>(); return true;
        case TensorType::Q4_1: f.template operator()<TensorType::Q4_1>(); return true;
        case TensorType::Q5_0: f.template operator()<TensorType::Q5_0>(); return true;
        case TensorType::Q5_1: f.template operator()<TensorType::Q5_1>(); return true;
        case TensorType::Q8_0: f.template operator()<TensorType::Q8_0>(); return true;
        case TensorType::Q2_K: f.template operator()<TensorType::Q2_K>(); return true;
        case TensorType::Q3_K: f.template operator()<TensorType::Q3_K>(); return true;
        case TensorType::Q4_K: f.template operator()<TensorType::Q4_K>(); return true;
        case TensorType::Q5_K: f.template operator()<TensorType::Q5_K>(); return true;
        case TensorType::Q6_K: f.template operator()<TensorType::Q6_K>(); return true;
        default: return false;
    }
}

}  // namespace gb::cuda
