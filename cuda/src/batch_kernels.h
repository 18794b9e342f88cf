// Kernels of the batched forward over the paged KV cache (batch_kernels.cu):
// Q/K/V post-processing writing K/V to each row's page slot, attention read
// through per-sequence page tables (split-K, GQA, sliding windows), page
// copies (copy-on-write) and a row gather. All run on the given stream.
//
// K/V slot layout (one token's row of n_kv = n_head_kv * hd values, slot_bytes
// apart): F16: n_kv halves. Q8_0: n_kv int8 values, then n_kv / 32 fp16 scales
// (x = d[i / 32] * q[i], d = absmax / 127, q = round half away: the CPU's
// quantize_row_q8_0_ref), padded to 16 bytes (kv_slot_bytes).
#pragma once

#include "cu_common.h"

#include <cuda_fp16.h>

namespace gb::cuda {

// Bytes of one K (or V) slot of n_kv values.
inline size_t kv_slot_bytes(bool q8, int64_t n_kv) {
    return q8 ? (size_t(n_kv) + size_t(n_kv / 32) * 2 + 15) / 16 * 16 : size_t(n_kv) * 2;
}

// As QkvPost, but row t sits at position pos[t] and its K/V go to cache row
// slot[t] (= page * page_size + pos % page_size) of the layer's K/V arrays
// [n_pages * page_size] slots of slot_bytes (F16, or Q8_0 quantized here:
// q8 needs hd % 32 == 0).
struct PagedQkv {
    float * q; const float * k; const float * v;
    const float * bq; const float * bk; const float * bv;
    const float * q_norm; const float * k_norm;
    const float * inv_freq;
    bool neox; float q_scale; float eps;
    int n_head, n_head_kv, hd;
    uint8_t * k_layer; uint8_t * v_layer;
    const int * pos; const int * slot;
    int slot_bytes = 0;
    bool q8 = false;
};
Status paged_qkv_post(const PagedQkv & a, int n_tok, cudaStream_t s);

// Keys per split part of one query row: a row of len keys is cut into
// min(kPagedMaxSplit, ceil(len / keys)) parts, keys = kPagedSplitKeysDecode
// for the rows marked as decode rows (t < n_decode_rows: short serial chains
// per warp for the one-token steps), kPagedSplitKeys for the others; a
// function of the row alone (so a row's result does not depend on the rest of
// the batch, only on whether it is a decode row).
constexpr int kPagedSplitKeys = 64;
constexpr int kPagedSplitKeysDecode = 16;
constexpr int kPagedMaxSplit = 32;

// out [n_tok, n_head * hd] = softmax(scale * q k^T) v for row t over keys
// [lo, pos[t]] of its sequence, key j at cache slot pages[tab[t] + j / page_size]
// * page_size + j % page_size (slots of slot_bytes, F16 or Q8_0 as above,
// dequantized on read); lo = window ? pos - window + 1 : 0. part_acc
// [n_tok * n_head * kPagedMaxSplit * hd], part_ml [.. * 2] are scratch. Rows
// t < n_q8_rows also get their output quantized to q8 (hd % 32 == 0).
struct PagedAttn {
    const float * q; const uint8_t * k; const uint8_t * v;
    const int * pos; const int * tab; const int * pages;
    int page_size, n_head, n_head_kv, hd, window;
    float scale;
    float * out;
    float * part_acc; float * part_ml;
    Q8Act q8{};
    int n_q8_rows = 0;
    int slot_bytes = 0;   // 0: F16 rows of n_head_kv * hd halves
    bool kv_q8 = false;
    int n_decode_rows = 0;  // rows [0, n_decode_rows) split by kPagedSplitKeysDecode
};
Status paged_attention(const PagedAttn & a, int n_tok, cudaStream_t s);

// Slots [0, n_tokens) of page src -> page dst, in each of n_layer K and V
// arrays (layer l at base + l * layer_bytes; slot_bytes per slot, a multiple of 4).
Status page_copy(uint8_t * k, uint8_t * v, int n_layer, size_t layer_bytes, int slot_bytes, int page_size, int src, int dst,
                 int n_tokens, cudaStream_t s);

// out[i] = x[rows[i]] (rows of n floats), i < n_out.
Status gather_rows(const float * x, const int * rows, int n_out, int n, float * out, cudaStream_t s);

}  // namespace gb::cuda
