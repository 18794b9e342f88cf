// Type table for every GGUF tensor type id (so files with types we cannot
// compute still validate) and the fp16/bf16 scalar conversions.
#include "glassbox/tensor_type.h"

#include <cctype>
#include <cstring>

namespace gb {

namespace {

struct Entry {
    uint32_t   id;
    TypeTraits traits;
};

// Block sizes and bytes per block from ggml's block layouts.
constexpr Entry k_types[] = {
    {0,  {"F32", 1, 4, true}},
    {1,  {"F16", 1, 2, true}},
    {2,  {"Q4_0", 32, 18, true}},
    {3,  {"Q4_1", 32, 20, true}},
    {6,  {"Q5_0", 32, 22, true}},
    {7,  {"Q5_1", 32, 24, true}},
    {8,  {"Q8_0", 32, 34, true}},
    {9,  {"Q8_1", 32, 36, false}},
    {10, {"Q2_K", 256, 84, true}},
    {11, {"Q3_K", 256, 110, true}},
    {12, {"Q4_K", 256, 144, true}},
    {13, {"Q5_K", 256, 176, true}},
    {14, {"Q6_K", 256, 210, true}},
    {15, {"Q8_K", 256, 292, false}},
    {16, {"IQ2_XXS", 256, 66, false}},
    {17, {"IQ2_XS", 256, 74, false}},
    {18, {"IQ3_XXS", 256, 98, false}},
    {19, {"IQ1_S", 256, 50, false}},
    {20, {"IQ4_NL", 32, 18, false}},
    {21, {"IQ3_S", 256, 110, false}},
    {22, {"IQ2_S", 256, 82, false}},
    {23, {"IQ4_XS", 256, 136, false}},
    {24, {"I8", 1, 1, false}},
    {25, {"I16", 1, 2, false}},
    {26, {"I32", 1, 4, false}},
    {27, {"I64", 1, 8, false}},
    {28, {"F64", 1, 8, false}},
    {29, {"IQ1_M", 256, 56, false}},
    {30, {"BF16", 1, 2, true}},
    {34, {"TQ1_0", 256, 54, false}},
    {35, {"TQ2_0", 256, 66, false}},
    {39, {"MXFP4", 32, 17, false}},
};

}  // namespace

const TypeTraits * type_traits(uint32_t raw_id) {
    for (const Entry & e : k_types) {
        if (e.id == raw_id) return &e.traits;
    }
    return nullptr;
}

bool type_from_name(const char * name, TensorType * out) {
    for (const Entry & e : k_types) {
        const char * a = e.traits.name;
        const char * b = name;
        while (*a && *b && std::toupper(static_cast<unsigned char>(*b)) == *a) { ++a; ++b; }
        if (*a == 0 && *b == 0) {
            *out = static_cast<TensorType>(e.id);
            return true;
        }
    }
    return false;
}

float fp16_to_fp32(uint16_t h) {
    const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t mant = h & 0x3ffu;
    uint32_t bits;
    if (exp == 0) {
        if (mant == 0) {
            bits = sign;
        } else {  // subnormal: normalize
            exp = 127 - 15 + 1;
            while ((mant & 0x400u) == 0) { mant <<= 1; --exp; }
            mant &= 0x3ffu;
            bits = sign | (exp << 23) | (mant << 13);
        }
    } else if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (mant << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
    }
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
}

uint16_t fp32_to_fp16(float f) {
    uint32_t x;
    std::memcpy(&x, &f, 4);
    const uint32_t sign = (x >> 16) & 0x8000u;
    const uint32_t absx = x & 0x7fffffffu;
    if (absx >= 0x7f800000u) {  // inf or nan
        return static_cast<uint16_t>(sign | 0x7c00u | (absx > 0x7f800000u ? 0x200u : 0));
    }
    if (absx >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // overflow -> inf
    if (absx < 0x38800000u) {  // subnormal or zero in half
        if (absx < 0x33000000u) return static_cast<uint16_t>(sign);
        const uint32_t e = absx >> 23;                   // biased exponent, 102..112
        const uint32_t m = (absx & 0x7fffffu) | 0x800000u;  // 24-bit significand
        const uint32_t shift = 126 - e;                  // value / 2^-24 = m >> shift
        uint32_t half_m = m >> shift;
        const uint32_t rem = m & ((1u << shift) - 1);
        const uint32_t halfway = 1u << (shift - 1);
        if (rem > halfway || (rem == halfway && (half_m & 1u))) ++half_m;  // ties to even
        return static_cast<uint16_t>(sign | half_m);
    }
    uint32_t h = ((absx >> 13) - ((127u - 15u) << 10));
    const uint32_t rem = absx & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) ++h;
    return static_cast<uint16_t>(sign | h);
}

float bf16_to_fp32(uint16_t h) {
    const uint32_t bits = static_cast<uint32_t>(h) << 16;
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
}

uint16_t fp32_to_bf16(float f) {
    uint32_t x;
    std::memcpy(&x, &f, 4);
    if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((x >> 16) | 64);  // quiet nan
    return static_cast<uint16_t>((x + (0x7fffu + ((x >> 16) & 1u))) >> 16);
}

}  // namespace gb
