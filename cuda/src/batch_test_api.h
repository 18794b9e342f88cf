// Test hooks of the GPU batched forward (batch_forward.cu): the paged
// attention kernel on host data, and reading back a page of a CUDA
// BatchForward's K/V storage. For tests/cuda only.
#pragma once

#include "glassbox/kv/batch_forward.h"
#include "glassbox/result.h"

#include <vector>

namespace gb::cuda::testing {

// Paged attention of n_tok query rows (q [n_tok, n_head * hd]) over K/V slots
// k, v [n_pages * page_size, n_head_kv * hd] (f32 here, F16 or Q8_0 on the device):
// row t at position pos[t] reads key j from slot pages[tab[t] + j / page_size]
// * page_size + j % page_size. Outputs are poisoned (NaN) before the run. With
// q8_rows > 0 the first q8_rows rows are also quantized; q8_out gets their q8
// values dequantized.
struct PagedAttnIn {
    std::vector<float> q, k, v;
    std::vector<int> pos, tab, pages;
    int page_size = 16, n_head = 0, n_head_kv = 0, hd = 0, window = 0, n_pages = 0;
    float scale = 1.0f;
    int q8_rows = 0;
    bool kv_q8 = false;  // slots in Q8_0 (k, v quantized by quantize_row_q8_0_ref's rule), else F16
    int decode_rows = 0; // rows [0, decode_rows) split as decode rows (kPagedSplitKeysDecode keys per part)
};
Result<std::vector<float>> paged_attention(const PagedAttnIn & in, std::vector<float> * q8_out = nullptr);

// Slots [0, page_size) of page `page`, layer il, K (v = false) or V of a
// BatchForward made by create_batch_forward, as f32 [page_size, n_head_kv * hd]
// (Q8_0 pages dequantized).
Result<std::vector<float>> kv_page(kv::BatchForward & f, int il, bool v, kv::PageId page);
// Writes the same (f32 values rounded to f16, or quantized to Q8_0).
Status set_kv_page(kv::BatchForward & f, int il, bool v, kv::PageId page, const std::vector<float> & values);

// The CUDA-graph path of decode-only batches (on by default; GB_CUDA_BATCH_GRAPH=0
// turns it off for new forwards), and how often it captured and replayed.
Status set_use_graph(kv::BatchForward & f, bool on);
struct GraphStats {
    int captured = 0;
    int64_t replays = 0;
};
Result<GraphStats> graph_stats(const kv::BatchForward & f);

}  // namespace gb::cuda::testing
