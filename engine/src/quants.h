// Private: ggml/GGUF block layouts shared by the row converters (quants.cpp)
// and the CPU kernels. Byte-exact with ggml-common.h; fp16 fields are raw bits.
#pragma once

#include <bit>
#include <cstdint>

namespace gb {

constexpr int QK4_0 = 32;
constexpr int QK4_1 = 32;
constexpr int QK5_0 = 32;
constexpr int QK5_1 = 32;
constexpr int QK8_0 = 32;
constexpr int QK8_1 = 32;
constexpr int QK_K = 256;
constexpr int K_SCALE_SIZE = 12;  // 8 scales + 8 mins, 6 bits each (Q4_K/Q5_K)

// ---- 32-element blocks ----------------------------------------------------
// x[i] = d * (q[i] - 8); qs[j] low nibble = element j, high nibble = j + 16.
struct block_q4_0 {
    uint16_t d;
    uint8_t  qs[QK4_0 / 2];
};
// x[i] = d * q[i] + m
struct block_q4_1 {
    uint16_t d;
    uint16_t m;
    uint8_t  qs[QK4_1 / 2];
};
// x[i] = d * (q[i] - 16); 5th bit of element i in bit i of qh (little endian).
struct block_q5_0 {
    uint16_t d;
    uint8_t  qh[4];
    uint8_t  qs[QK5_0 / 2];
};
// x[i] = d * q[i] + m
struct block_q5_1 {
    uint16_t d;
    uint16_t m;
    uint8_t  qh[4];
    uint8_t  qs[QK5_1 / 2];
};
// x[i] = d * q[i]
struct block_q8_0 {
    uint16_t d;
    int8_t   qs[QK8_0];
};
// activation format: s = d * sum(qs)
struct block_q8_1 {
    uint16_t d;
    uint16_t s;
    int8_t   qs[QK8_1];
};

// ---- 256-element super-blocks (k-quants) ----------------------------------
// 16 sub-blocks of 16; scales[j]: low nibble scale, high nibble min.
// x = d * sc * q - dmin * m, q in 0..3
struct block_q2_K {
    uint8_t  scales[QK_K / 16];
    uint8_t  qs[QK_K / 4];
    uint16_t d;
    uint16_t dmin;
};
// 16 sub-blocks of 16; 6-bit signed scales (biased by 32) packed in 12 bytes;
// q = low 2 bits from qs, minus 4 unless the hmask bit is set. x = d * (sc-32) * q
struct block_q3_K {
    uint8_t  hmask[QK_K / 8];
    uint8_t  qs[QK_K / 4];
    uint8_t  scales[12];
    uint16_t d;
};
// 8 sub-blocks of 32; 6-bit scales and mins packed in 12 bytes.
// x = d * sc * q - dmin * m, q in 0..15
struct block_q4_K {
    uint16_t d;
    uint16_t dmin;
    uint8_t  scales[K_SCALE_SIZE];
    uint8_t  qs[QK_K / 2];
};
// as Q4_K plus a 5th bit per element in qh. q in 0..31
struct block_q5_K {
    uint16_t d;
    uint16_t dmin;
    uint8_t  scales[K_SCALE_SIZE];
    uint8_t  qh[QK_K / 8];
    uint8_t  qs[QK_K / 2];
};
// 16 sub-blocks of 16; q = (low 4 bits | high 2 bits << 4) - 32, x = d * sc * q
struct block_q6_K {
    uint8_t  ql[QK_K / 2];
    uint8_t  qh[QK_K / 4];
    int8_t   scales[QK_K / 16];
    uint16_t d;
};
// activation format for k-quant dot products (float scale, not fp16).
// bsums[j] = sum of qs[16*j .. 16*j+15]
struct block_q8_K {
    float   d;
    int8_t  qs[QK_K];
    int16_t bsums[QK_K / 16];
};

static_assert(sizeof(block_q4_0) == 18);
static_assert(sizeof(block_q4_1) == 20);
static_assert(sizeof(block_q5_0) == 22);
static_assert(sizeof(block_q5_1) == 24);
static_assert(sizeof(block_q8_0) == 34);
static_assert(sizeof(block_q8_1) == 36);
static_assert(sizeof(block_q2_K) == 84);
static_assert(sizeof(block_q3_K) == 110);
static_assert(sizeof(block_q4_K) == 144);
static_assert(sizeof(block_q5_K) == 176);
static_assert(sizeof(block_q6_K) == 210);
static_assert(sizeof(block_q8_K) == 292);

// Unpack sub-block j (0..7) scale and min of a Q4_K/Q5_K 12-byte scale array.
inline void get_scale_min_k4(int j, const uint8_t * q, uint8_t * sc, uint8_t * m) {
    if (j < 4) {
        *sc = q[j] & 63;
        *m  = q[j + 4] & 63;
    } else {
        *sc = static_cast<uint8_t>((q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4));
        *m  = static_cast<uint8_t>((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

// Per-type row converters (n a multiple of the block size). The quantizers
// are the round-to-nearest reference ones and produce llama.cpp's bytes.
void dequantize_row_q4_0(const block_q4_0 * x, float * y, int64_t n);
void dequantize_row_q4_1(const block_q4_1 * x, float * y, int64_t n);
void dequantize_row_q5_0(const block_q5_0 * x, float * y, int64_t n);
void dequantize_row_q5_1(const block_q5_1 * x, float * y, int64_t n);
void dequantize_row_q8_0(const block_q8_0 * x, float * y, int64_t n);
void dequantize_row_q2_K(const block_q2_K * x, float * y, int64_t n);
void dequantize_row_q3_K(const block_q3_K * x, float * y, int64_t n);
void dequantize_row_q4_K(const block_q4_K * x, float * y, int64_t n);
void dequantize_row_q5_K(const block_q5_K * x, float * y, int64_t n);
void dequantize_row_q6_K(const block_q6_K * x, float * y, int64_t n);
void dequantize_row_q8_K(const block_q8_K * x, float * y, int64_t n);

void quantize_row_q4_0_ref(const float * x, block_q4_0 * y, int64_t n);
void quantize_row_q4_1_ref(const float * x, block_q4_1 * y, int64_t n);
void quantize_row_q5_0_ref(const float * x, block_q5_0 * y, int64_t n);
void quantize_row_q5_1_ref(const float * x, block_q5_1 * y, int64_t n);
void quantize_row_q8_0_ref(const float * x, block_q8_0 * y, int64_t n);
void quantize_row_q2_K_ref(const float * x, block_q2_K * y, int64_t n);
void quantize_row_q3_K_ref(const float * x, block_q3_K * y, int64_t n);
void quantize_row_q4_K_ref(const float * x, block_q4_K * y, int64_t n);
void quantize_row_q5_K_ref(const float * x, block_q5_K * y, int64_t n);
void quantize_row_q6_K_ref(const float * x, block_q6_K * y, int64_t n);

// Activation formats for the CPU kernels (same bytes as ggml's *_ref).
void quantize_row_q8_1_ref(const float * x, block_q8_1 * y, int64_t n);
void quantize_row_q8_K_ref(const float * x, block_q8_K * y, int64_t n);

// Round to nearest, ties to even (|v| < 2^22), as ggml's nearest_int.
inline int nearest_int(float v) {
    float t = v + 12582912.f;  // 1.5 * 2^23: the fraction bits now hold round(v)
    return (std::bit_cast<int32_t>(t) & 0x007fffff) - 0x00400000;
}

}  // namespace gb
