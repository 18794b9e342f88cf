// Device layout of uploaded weights (see DevMat): row padding and the split
// "bodies then d" order for the 2-byte-aligned block types.
#include "cu_common.h"

#include <cstring>

namespace gb::cuda {
namespace {

size_t round16(size_t n) { return (n + 15) & ~size_t(15); }

// Split types: block size in bytes without d, and where d sits in the block.
struct SplitInfo {
    size_t body;
    size_t d_pos;  // byte offset of d within the GGUF block
};
SplitInfo split_info(TensorType t) {
    switch (t) {
        case TensorType::Q4_0: return {16, 0};
        case TensorType::Q5_0: return {20, 0};
        case TensorType::Q8_0: return {32, 0};
        case TensorType::Q3_K: return {108, 108};
        case TensorType::Q6_K: return {208, 208};
        default: return {0, 0};
    }
}

}  // namespace

bool device_supported(TensorType t) {
    switch (t) {
        case TensorType::F32: case TensorType::F16: case TensorType::BF16:
        case TensorType::Q4_0: case TensorType::Q4_1: case TensorType::Q5_0: case TensorType::Q5_1:
        case TensorType::Q8_0: case TensorType::Q2_K: case TensorType::Q3_K: case TensorType::Q4_K:
        case TensorType::Q5_K: case TensorType::Q6_K:
            return true;
        default: return false;
    }
}

DevMat dev_layout(TensorType t, int64_t n_cols, int64_t n_rows) {
    DevMat m;
    m.type   = t;
    m.n_cols = n_cols;
    m.n_rows = n_rows;
    const TypeTraits & tr = type_traits(t);
    const size_t nb       = size_t(n_cols / tr.block_size);
    if (split_layout(t)) {
        const SplitInfo si = split_info(t);
        m.d_off  = nb * si.body;
        m.stride = round16(m.d_off + 2 * nb);
    } else {
        m.stride = round16(nb * tr.type_size);
    }
    return m;
}

void pack_row(TensorType t, int64_t n_cols, const uint8_t * src, uint8_t * dst, const DevMat & layout) {
    const TypeTraits & tr = type_traits(t);
    const size_t nb       = size_t(n_cols / tr.block_size);
    std::memset(dst, 0, layout.stride);
    if (!split_layout(t)) {
        std::memcpy(dst, src, nb * tr.type_size);
        return;
    }
    const SplitInfo si = split_info(t);
    for (size_t b = 0; b < nb; ++b) {
        const uint8_t * blk = src + b * tr.type_size;
        uint8_t * body      = dst + b * si.body;
        if (si.d_pos == 0) {
            std::memcpy(body, blk + 2, si.body);
        } else {
            std::memcpy(body, blk, si.body);
        }
        std::memcpy(dst + layout.d_off + 2 * b, blk + si.d_pos, 2);
    }
}

}  // namespace gb::cuda
