// GGML/GGUF tensor element types: ids as stored in GGUF files, block layouts,
// and row conversion (dequantize / round-to-nearest reference quantize).
#pragma once

#include <cstddef>
#include <cstdint>

namespace gb {

// Numeric ids are the on-disk GGUF/ggml type ids.
enum class TensorType : uint32_t {
    F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3,
    Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9,
    Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, Q8_K = 15,
    IQ2_XXS = 16, IQ2_XS = 17, IQ3_XXS = 18, IQ1_S = 19, IQ4_NL = 20,
    IQ3_S = 21, IQ2_S = 22, IQ4_XS = 23,
    I8 = 24, I16 = 25, I32 = 26, I64 = 27, F64 = 28,
    IQ1_M = 29, BF16 = 30, TQ1_0 = 34, TQ2_0 = 35, MXFP4 = 39,
};

struct TypeTraits {
    const char * name;          // "Q4_K"
    int64_t      block_size;    // elements per block
    size_t       type_size;     // bytes per block
    bool         computable;    // the engine can dequantize / compute with it
};

// Traits for a raw on-disk id; nullptr when the id is unknown.
const TypeTraits * type_traits(uint32_t raw_id);
inline const TypeTraits & type_traits(TensorType t) { return *type_traits(static_cast<uint32_t>(t)); }
inline const char * type_name(TensorType t) { return type_traits(t).name; }
// Parse "Q4_K" / "q4_k" / "f16"; returns false if unknown.
bool type_from_name(const char * name, TensorType * out);

// Bytes of a row of n elements. NOTE: n must be a multiple of the block size.
inline size_t row_size(TensorType t, int64_t n) {
    const TypeTraits & tr = type_traits(t);
    return static_cast<size_t>(n / tr.block_size) * tr.type_size;
}

// Convert n elements (n a multiple of the block size). Return false for
// types that are not computable. Reference (scalar) implementations.
bool dequantize_row(TensorType t, const void * src, float * dst, int64_t n);
bool quantize_row_ref(TensorType t, const float * src, void * dst, int64_t n);

// fp16 / bf16 scalar conversions (IEEE half, round-to-nearest-even).
float    fp16_to_fp32(uint16_t h);
uint16_t fp32_to_fp16(float f);
float    bf16_to_fp32(uint16_t h);
uint16_t fp32_to_bf16(float f);

}  // namespace gb
