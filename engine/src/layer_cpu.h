// The CPU transformer layers shared by the Context (context.cpp, one sequence)
// and the batched forward over the paged KV cache (kv/batch_forward.cpp):
// embeddings, RoPE tables, blocks and the output head. What differs between
// the two, where K/V rows go and how attention reads them, is a KvAttention.
#pragma once

#include "arch/arch.h"
#include "cpu/thread_pool.h"
#include "glassbox/kv/kv_storage.h"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <initializer_list>
#include <span>
#include <utility>
#include <vector>

namespace gb::layer {

// Where one batch row's K/V go: position pos of the sequence whose page table is pages.
struct KvSlot {
    const kv::PageId * pages = nullptr;
    int32_t            pos = 0;
};

// Attention settings of one layer, whatever the KV layout.
struct LayerAttn {
    int32_t n_head = 0, n_head_kv = 0, group = 1;  // group: query heads per KV head
    int32_t hd_k = 0, hd_v = 0;
    int32_t window = 0;   // sliding window of this layer; 0: none
    float   scale = 1.0f; // on q . k (1 where Q already carries it: gemma3)
    // first key position a query at pos attends to
    int32_t first_key(int32_t pos) const { return window > 0 ? std::max(0, pos - window + 1) : 0; }
};

// How a forward pass stores and attends K/V.
class KvAttention {
  public:
    virtual ~KvAttention() = default;
    // The slot batch row t's K and V are written to (every layer).
    virtual KvSlot kv_slot(int32_t t) const = 0;
    // attn[r] = attention of layer il for query row rows[r] over its sequence's
    // cache, r < rows.size(). q: [n, n_head * head_dim_k]; attn: [rows.size(), n_head * head_dim_v].
    virtual void attend(int il, std::span<const int32_t> rows, const float * q, float * attn) = 0;
};

class CpuLayers {
  public:
    CpuLayers(const Model & model, cpu::ThreadPool & pool);

    // Activations for up to n_batch rows; throws std::bad_alloc.
    void allocate(int32_t n_batch);

    // x[t] = embd_scale * token_embd[tokens[t]], or hidden[t] when hidden is given   [n, n_embd]
    void embed(const Token * tokens, const float * hidden, int64_t n);
    // RoPE table rows t .. t + cnt - 1 for positions pos0 .. pos0 + cnt - 1
    // (global layers and, if the model has them, sliding-window layers).
    void rope_rows(int64_t t, int32_t pos0, int32_t cnt);
    // Layer il on batch rows [0, n) of x. Every row's K/V go to kv at
    // att.kv_slot(t). Only `rows` (ascending, a subset of [0, n)) go on past
    // attention; fewer than n (the last layer) are first compacted to the front of x.
    void block(int il, int32_t n, std::span<const int32_t> rows, kv::CpuKvStorage & kv, KvAttention & att);
    // logits = softcap(output(rmsnorm(x[i])))   [n_out, n_vocab]; x rows src_rows[i] (nullptr: i)
    void output(int32_t n_out, const int32_t * src_rows, float * logits);

    // Runs fn(begin, end) over [0, n) rows; inline when the work is small.
    template <typename F> void for_rows(int64_t n, int64_t cost_per_row, F && fn);
    // Runs item(i, scratch) for i < n_items, on the pool's threads (each with
    // its own scratch_per_thread floats of scratch) unless work is small.
    template <typename F> void for_items(int64_t n_items, int64_t work, float * scratch, size_t scratch_per_thread, F && item);

    LayerAttn attn_of(int il) const;

    float *       x() { return m_x.data(); }
    const float * x() const { return m_x.data(); }
    cpu::ThreadPool & pool() { return m_pool; }
    int64_t n_q() const { return m_n_q; }
    int64_t n_o() const { return m_n_o; }

    // [quantlab] calibration hook (ContextParams::matmul_observer); layer -1 = output head
    decltype(ContextParams::matmul_observer) observer;

  private:
    void qkv_post(int il, int32_t n, kv::CpuKvStorage & kv, const KvAttention & att);  // biases, q/k norms, RoPE, K/V -> cache
    void ffn(const arch::LayerWeights & l, int32_t n_rows);
    // x += [post_norm](proj); then xn = rmsnorm(x) * next_norm when given   [n_rows, n_embd]
    void residual(int32_t n_rows, const arch::Vector & post_norm, const arch::Vector * next_norm);
    void matmul(const arch::Matrix & w, const float * x, int64_t n, float * y);
    // Several weights applied to the same input x (q/k/v, gate/up).
    void matmul_shared(std::initializer_list<std::pair<const arch::Matrix *, float *>> items, const float * x, int64_t n);

    const HParams &       m_hp;
    const arch::Weights & m_w;
    const arch::Traits &  m_traits;
    cpu::ThreadPool &     m_pool;
    bool                  m_any_swa = false;
    int                   m_cur_layer = -1;  // [quantlab] the layer being run
    int64_t m_n_q, m_n_k, m_n_v, m_n_o;
    // activations, [n_batch, *]
    std::vector<float> m_x, m_xn, m_q, m_k, m_v, m_attn, m_proj, m_gate, m_up;
    std::vector<float> m_rope_cs[2];  // [n_batch, head_dim_k/2, 2] for global (0) and local (1) layers
};

template <typename F>
void CpuLayers::for_rows(int64_t n, int64_t cost_per_row, F && fn) {
    constexpr int64_t kMinWork = 1 << 14;  // below this, waking threads costs more than it saves
    if (n <= 1 || m_pool.size() == 1 || n * cost_per_row < kMinWork) {
        fn(int64_t(0), n);
        return;
    }
    m_pool.parallel_for(n, 1, fn);
}

template <typename F>
void CpuLayers::for_items(int64_t n_items, int64_t work, float * scratch, size_t scratch_per_thread, F && item) {
    if (n_items == 1 || m_pool.size() == 1 || work < (1 << 15)) {
        for (int64_t i = 0; i < n_items; ++i) item(i, scratch);
        return;
    }
    std::atomic<int64_t> next{0};
    m_pool.run([&](int ith, int) {
        float * s = scratch + size_t(ith) * scratch_per_thread;
        for (int64_t i = next.fetch_add(1, std::memory_order_relaxed); i < n_items; i = next.fetch_add(1, std::memory_order_relaxed)) {
            item(i, s);
        }
    });
}

}  // namespace gb::layer
