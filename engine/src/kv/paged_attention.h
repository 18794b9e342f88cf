// One query head's attention over keys/values read through a page table
// (the paged KV cache), F16 or Q8_0 slots. Same arithmetic as ops::attend's
// batch order for F16, so paged and contiguous caches give identical results.
#pragma once

#include "glassbox/kv/kv_storage.h"

#include <cstdint>

namespace gb::kv {

// Where one layer's K and V of one KV head live.
struct PagedHead {
    KvType          type = KvType::F16;
    const PageId *  pages = nullptr;  // the sequence's page table
    int32_t         page_size = 16;
    const uint8_t * k = nullptr;      // layer base + head offset
    const uint8_t * v = nullptr;
    size_t k_page_bytes = 0, k_slot_bytes = 0;
    size_t v_page_bytes = 0, v_slot_bytes = 0;
    const uint8_t * k_at(int32_t j) const {
        return k + size_t(pages[j / page_size]) * k_page_bytes + size_t(j % page_size) * k_slot_bytes;
    }
    const uint8_t * v_at(int32_t j) const {
        return v + size_t(pages[j / page_size]) * v_page_bytes + size_t(j % page_size) * v_slot_bytes;
    }
};

// KV head g of layer il in kv, read through the page table pages.
PagedHead paged_head(const CpuKvStorage & kv, int il, int32_t g, const PageId * pages);

// out[head_dim_v] = softmax(scale * q . k_j) v over key positions [lo, hi).
// scratch: ops::attend_scratch_floats(hi, head_dim_k, head_dim_v) floats.
void attend_paged(float * out, const float * q, const PagedHead & kv, int32_t lo, int32_t hi, int32_t head_dim_k,
                  int32_t head_dim_v, float scale, float * scratch);

// attend_paged for n_q query heads sharing the KV head (GQA), each K/V slot
// read once for all of them: head h's query at q + h * q_stride, its output at
// out + h * out_stride. Per head, bit-identical to attend_paged. n_q <= 64.
// scratch: n_q * ops::attend_scratch_floats(hi, head_dim_k, head_dim_v) floats.
void attend_paged_group(float * out, int64_t out_stride, const float * q, int64_t q_stride, int32_t n_q, const PagedHead & kv,
                        int32_t lo, int32_t hi, int32_t head_dim_k, int32_t head_dim_v, float scale, float * scratch);

// The Q8_0 row kernels: the scalar ones and the run-time chosen ones (AVX2
// when available), which must give the same bits. For tests.
float q8_dot_scalar(const float * q, const uint8_t * row, int32_t n);
float q8_dot(const float * q, const uint8_t * row, int32_t n);
void  q8_axpy_scalar(float * y, float a, const uint8_t * row, int32_t n);
void  q8_axpy(float * y, float a, const uint8_t * row, int32_t n);

}  // namespace gb::kv
