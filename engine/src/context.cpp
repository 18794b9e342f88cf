// The optimized CPU forward pass for one sequence: embeddings, transformer
// blocks (matmuls on all chunk tokens at once, attention over an F16 KV cache
// parallelized over heads), final norm and logits. Buffers are allocated once
// in create(); decode() allocates nothing unless all_logits needs more room.
#include "arch/arch.h"
#include "context_hidden.h"  // [cuda]
#include "cpu/matmul.h"
#include "cpu/thread_pool.h"
#include "forward_ops.h"
#include "kv/paged_attention.h"  // [kv]
#include "quants.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <initializer_list>
#include <utility>
#include <new>
#include <thread>

namespace gb {
namespace {

using arch::LayerWeights;

class ContextImpl final : public Context {
  public:
    ContextImpl(std::shared_ptr<const Model> model, int32_t n_ctx, int32_t n_batch, int32_t n_threads);
    Status allocate(kv::KvType kv_type, int32_t page_size);

    Status decode(std::span<const Token> tokens, bool all_logits, const std::atomic<bool> * cancel) override;
    std::span<const float> logits() const override { return {m_logits.data(), m_n_logits}; }
    int32_t n_past() const override { return m_n_past; }
    int32_t n_ctx() const override { return m_n_ctx; }
    void    truncate(int32_t n_past) override {
        m_n_past = std::clamp(n_past, 0, m_n_past);
        m_tree_n = 0;
    }
    const Model & model() const override { return *m_model; }
    size_t  kv_bytes() const override { return m_kv->bytes(); }
    // [spec] token trees
    bool   supports_tree() const override { return m_kv->shape().type == kv::KvType::F16; }  // tree rows: F16 KV only
    Status decode_tree(std::span<const Token> tokens, std::span<const int32_t> parents, std::span<const int32_t> out_nodes,
                       const std::atomic<bool> * cancel) override;
    Status tree_logits(std::span<const int32_t> nodes) override;
    Status commit_tree(std::span<const int32_t> path) override;
    void   set_skip_layers(const std::vector<int32_t> & skip);  // [spec]
    // [cuda] partial offload: hidden states in place of the embeddings (context_hidden.h)
    Status decode_hidden(const float * x, int32_t n, int32_t n_out, float * logits_out, const std::atomic<bool> * cancel);

  private:
    // Runs n tokens at positions [m_n_past, m_n_past + n); writes logits of
    // the last n_out tokens (0, 1 or n) to logits_out ([n_out, n_vocab]).
    Status run_chunk(const Token * tokens, int32_t n, int32_t n_out, float * logits_out, const std::atomic<bool> * cancel);
    // One block; n_rows shrinks to n_out in the last layer.
    void block(int il, int32_t n, int32_t n_out, int32_t & n_rows);
    void qkv_post(int il, int32_t n);               // biases, q/k norms, RoPE, K/V -> cache
    void attention(int il, int32_t n, int32_t t0);  // rows t0..n-1 -> m_attn rows 0..
    void ffn(const LayerWeights & l, int32_t n_rows);

    // Runs fn(begin, end) over [0, n) rows; inline when the work is small.
    template <typename F> void for_rows(int64_t n, int64_t cost_per_row, F && fn);
    void matmul(const arch::Matrix & w, const float * x, int64_t n, float * y) {
        if (m_observer) m_observer(m_cur_layer, w.t->name.c_str(), x, n, w.t->ne[0]);  // [quantlab]
        cpu::matmul(w.view(), x, n, y, *m_pool);
    }
    // Several weights applied to the same input x (q/k/v, gate/up).
    void matmul_shared(std::initializer_list<std::pair<const arch::Matrix *, float *>> items, const float * x, int64_t n) {
        cpu::WeightView ws[4];
        float * ys[4];
        int n_w = 0;
        for (const auto & [w, y] : items) {
            if (m_observer) m_observer(m_cur_layer, w->t->name.c_str(), x, n, w->t->ne[0]);  // [quantlab]
            ws[n_w] = w->view();
            ys[n_w++] = y;
        }
        cpu::matmul_group(ws, ys, n_w, x, n, *m_pool);
    }

    // [spec] The pending token tree (m_tree_n > 0 after decode_tree()): node t
    // is at position m_tree_pos[t]; the cache rows of positions m_n_past ..
    // m_tree_pos[t] on its root path are m_tree_rows[t * m_tree_stride + ...].
    // m_x keeps the nodes' last hidden states until tree_logits().
    bool    m_tree_active = false;  // run_chunk() is running a tree
    const float * m_hidden_in = nullptr;  // [cuda] run_chunk() starts from these rows, not embeddings
    int32_t m_tree_n = 0, m_tree_stride = 0;
    std::vector<int32_t> m_tree_parent, m_tree_pos, m_tree_rows;
    std::vector<bool>    m_skip;           // [n_layer] layers not run (ContextParams::skip_layers)
    int                  m_last_layer = 0; // last layer that runs

  public:  // [quantlab] calibration hook (ContextParams::matmul_observer) and the layer being run
    decltype(ContextParams::matmul_observer) m_observer;
    int m_cur_layer = -1;

  private:

    std::shared_ptr<const Model> m_model;
    const HParams &              m_hp;
    const arch::Weights &        m_w;
    const arch::Traits &         m_traits;
    int32_t m_n_ctx, m_n_batch, m_n_past = 0;
    std::unique_ptr<cpu::ThreadPool> m_pool;

    // sizes
    int64_t m_n_q, m_n_k, m_n_v, m_n_o;
    // activations, [n_batch, *]
    std::vector<float> m_x, m_xn, m_q, m_k, m_v, m_attn, m_proj, m_gate, m_up;
    std::vector<float> m_rope_cs[2];  // [n_batch, head_dim_k/2, 2] for global (0) and local (1) layers
    std::vector<float> m_scores;      // [n_threads, attend_scratch_floats]
    std::vector<float> m_logits;
    size_t             m_n_logits = 0;
    // [kv] KV cache: the paged storage with one sequence on pages 0, 1, 2, ... in
    // order, so F16 K of layer il, position t is k_layer(il) + t * slot_bytes_k()
    // (contiguous [n_ctx, n_head_kv * head_dim], as before); Q8_0 is read through
    // the identity page table.
    std::unique_ptr<kv::CpuKvStorage> m_kv;
    std::vector<kv::PageId> m_kv_pages;
};

ContextImpl::ContextImpl(std::shared_ptr<const Model> model, int32_t n_ctx, int32_t n_batch, int32_t n_threads)
    : m_model(std::move(model)), m_hp(m_model->hparams()), m_w(arch::weights_of(*m_model)),
      m_traits(arch::traits_of(*m_model)), m_n_ctx(n_ctx), m_n_batch(n_batch),
      m_pool(std::make_unique<cpu::ThreadPool>(n_threads)) {
    m_n_q = int64_t(m_hp.n_head) * m_hp.head_dim_k;
    m_n_k = int64_t(m_hp.n_head_kv) * m_hp.head_dim_k;
    m_n_v = int64_t(m_hp.n_head_kv) * m_hp.head_dim_v;
    m_n_o = int64_t(m_hp.n_head) * m_hp.head_dim_v;
    set_skip_layers({});
}

void ContextImpl::set_skip_layers(const std::vector<int32_t> & skip) {
    m_skip.assign(size_t(m_hp.n_layer), false);
    for (int32_t l : skip) m_skip[size_t(l)] = true;
    m_last_layer = m_hp.n_layer - 1;
    while (m_last_layer > 0 && m_skip[size_t(m_last_layer)]) --m_last_layer;
}

Status ContextImpl::allocate(kv::KvType kv_type, int32_t page_size) {
    const int32_t n_pages = (m_n_ctx + page_size - 1) / page_size;
    auto kv = kv::CpuKvStorage::create(kv::kv_shape_for(*m_model, n_pages, page_size, kv_type));
    if (!kv) return kv.error();
    m_kv = std::move(*kv);
    m_kv_pages.resize(size_t(n_pages));
    for (int32_t i = 0; i < n_pages; ++i) m_kv_pages[size_t(i)] = i;
    try {
        const size_t nb = size_t(m_n_batch);
        m_x.resize(nb * m_hp.n_embd);
        m_xn.resize(nb * m_hp.n_embd);
        m_proj.resize(nb * m_hp.n_embd);
        m_q.resize(nb * m_n_q);
        m_k.resize(nb * m_n_k);
        m_v.resize(nb * m_n_v);
        m_attn.resize(nb * m_n_o);
        m_gate.resize(nb * m_hp.n_ff);
        m_up.resize(nb * m_hp.n_ff);
        for (auto & cs : m_rope_cs) cs.resize(nb * m_hp.head_dim_k);
        m_scores.resize(size_t(m_pool->size()) * size_t(ops::attend_scratch_floats(m_n_ctx, m_hp.head_dim_k, m_hp.head_dim_v)));
        m_logits.resize(size_t(m_hp.n_vocab));
    } catch (const std::bad_alloc &) {
        return make_error(ErrorCode::OutOfMemory, "cannot allocate a context of " + std::to_string(m_n_ctx) + " tokens");
    }
    return {};
}

template <typename F>
void ContextImpl::for_rows(int64_t n, int64_t cost_per_row, F && fn) {
    constexpr int64_t kMinWork = 1 << 14;  // below this, waking threads costs more than it saves
    if (n <= 1 || m_pool->size() == 1 || n * cost_per_row < kMinWork) {
        fn(int64_t(0), n);
        return;
    }
    m_pool->parallel_for(n, 1, fn);
}

Status ContextImpl::decode(std::span<const Token> tokens, bool all_logits, const std::atomic<bool> * cancel) {
    const int64_t n = int64_t(tokens.size());
    m_tree_n = 0;
    if (n == 0) return {};
    if (m_n_past + n > m_n_ctx) {
        return make_error(ErrorCode::OutOfRange, std::to_string(n) + " tokens at position " + std::to_string(m_n_past) +
                                                     " do not fit the context of " + std::to_string(m_n_ctx));
    }
    for (int64_t i = 0; i < n; ++i) {
        if (tokens[i] < 0 || tokens[i] >= m_hp.n_vocab) {
            return make_error(ErrorCode::InvalidArgument, "token " + std::to_string(tokens[i]) + " at index " + std::to_string(i) +
                                                              " is outside the vocabulary (" + std::to_string(m_hp.n_vocab) + ")");
        }
    }
    const size_t n_vocab = size_t(m_hp.n_vocab);
    m_n_logits           = (all_logits ? size_t(n) : 1) * n_vocab;
    if (m_logits.size() < m_n_logits) {
        try {
            m_logits.resize(m_n_logits);
        } catch (const std::bad_alloc &) {
            m_n_logits = 0;
            return make_error(ErrorCode::OutOfMemory, "cannot allocate logits for " + std::to_string(n) + " tokens");
        }
    }
    for (int64_t start = 0; start < n; start += m_n_batch) {
        const int32_t cn   = int32_t(std::min<int64_t>(m_n_batch, n - start));
        const bool    last = start + cn == n;
        const int32_t n_out = all_logits ? cn : (last ? 1 : 0);
        float * out = m_logits.data() + (all_logits ? size_t(start) * n_vocab : 0);
        GB_TRY_STATUS(run_chunk(tokens.data() + start, cn, n_out, out, cancel));
        m_n_past += cn;
    }
    return {};
}

Status ContextImpl::run_chunk(const Token * tokens, int32_t n, int32_t n_out, float * logits_out,
                              const std::atomic<bool> * cancel) {
    const int64_t n_embd = m_hp.n_embd;
    auto cancelled = [&] { return cancel && cancel->load(std::memory_order_relaxed); };
    if (cancelled()) return make_error(ErrorCode::Cancelled, "decode cancelled");

    // x = embd_scale * token_embd[tokens]   [n, n_embd]
    for_rows(n, n_embd * 4, [&](int64_t b, int64_t e) {
        for (int64_t t = b; t < e; ++t) {
            float * x = m_x.data() + t * n_embd;
            if (m_hidden_in) {  // [cuda] partial offload: the hidden state after the GPU's layers
                std::memcpy(x, m_hidden_in + t * n_embd, sizeof(float) * size_t(n_embd));
                continue;
            }
            dequantize_row(m_w.tok_embd.t->type, m_w.tok_embd.row(tokens[t]), x, n_embd);
            if (m_hp.embd_scale != 1.0f) {
                for (int64_t i = 0; i < n_embd; ++i) x[i] *= m_hp.embd_scale;
            }
        }
    });

    // RoPE tables for this chunk's positions (global layers and, if any, local ones).
    // A tree's rows have their own positions (depth); a row of the table
    // depends only on its position, so one row at a time gives the same values.
    const float * ff = m_w.rope_freqs ? m_w.rope_freqs.data : nullptr;
    const bool any_swa = std::find(m_hp.layer_is_swa.begin(), m_hp.layer_is_swa.end(), true) != m_hp.layer_is_swa.end();
    for (int32_t t = 0; t < (m_tree_active ? n : 1); ++t) {
        const int32_t pos0 = m_tree_active ? m_tree_pos[size_t(t)] : m_n_past;
        const int32_t cnt  = m_tree_active ? 1 : n;
        const int64_t off  = int64_t(t) * m_hp.head_dim_k;
        ops::rope_table(m_rope_cs[0].data() + off, pos0, cnt, m_hp.head_dim_k, m_hp.rope_freq_base, m_hp.rope_freq_scale, ff);
        if (any_swa) {
            ops::rope_table(m_rope_cs[1].data() + off, pos0, cnt, m_hp.head_dim_k, m_hp.rope_freq_base_swa,
                            m_hp.rope_freq_scale_swa, ff);
        }
    }

    int32_t n_rows = n;
    for (int il = 0; il < m_hp.n_layer; ++il) {
        if (cancelled()) return make_error(ErrorCode::Cancelled, "decode cancelled");
        if (m_skip[size_t(il)]) continue;  // [spec] self-draft: the residual passes through
        block(il, n, n_out, n_rows);
    }
    if (n_out == 0 || m_tree_active) return {};

    // logits = output(rmsnorm(x))   [n_out, n_vocab]
    for_rows(n_out, n_embd, [&](int64_t b, int64_t e) {
        for (int64_t t = b; t < e; ++t) {
            ops::rmsnorm(m_xn.data() + t * n_embd, m_x.data() + t * n_embd, m_w.output_norm.data, n_embd, m_hp.rms_eps);
        }
    });
    m_cur_layer = -1;  // [quantlab]
    matmul(m_w.output, m_xn.data(), n_out, logits_out);
    if (m_hp.final_logit_softcap > 0.0f) {
        const float cap = m_hp.final_logit_softcap;
        for (int64_t i = 0, e = int64_t(n_out) * m_hp.n_vocab; i < e; ++i) logits_out[i] = cap * std::tanh(logits_out[i] / cap);
    }
    return {};
}

void ContextImpl::block(int il, int32_t n, int32_t n_out, int32_t & n_rows) {
    const LayerWeights & l = m_w.layers[il];
    const int64_t n_embd   = m_hp.n_embd;
    const bool last_layer  = il == m_last_layer;
    m_cur_layer = il;  // [quantlab]

    // xn = rmsnorm(x) * attn_norm   [n, n_embd]
    for_rows(n, n_embd, [&](int64_t b, int64_t e) {
        for (int64_t t = b; t < e; ++t) {
            ops::rmsnorm(m_xn.data() + t * n_embd, m_x.data() + t * n_embd, l.attn_norm.data, n_embd, m_hp.rms_eps);
        }
    });
    // q, k, v = xn Wq^T, xn Wk^T, xn Wv^T   [n, n_q] [n, n_k] [n, n_v]
    matmul_shared({{&l.wq, m_q.data()}, {&l.wk, m_k.data()}, {&l.wv, m_v.data()}}, m_xn.data(), n);
    qkv_post(il, n);

    // The last layer only needs the rows whose logits are wanted.
    const int32_t t0 = last_layer ? n - n_out : 0;
    if (last_layer) {
        n_rows = n_out;
        if (n_out == 0) return;
        if (t0 > 0) std::memmove(m_x.data(), m_x.data() + int64_t(t0) * n_embd, sizeof(float) * size_t(n_out) * n_embd);
    }
    attention(il, n, t0);

    // x += [post_norm](attn Wo^T)   [n_rows, n_embd]
    matmul(l.wo, m_attn.data(), n_rows, m_proj.data());
    for_rows(n_rows, n_embd * 2, [&](int64_t b, int64_t e) {
        for (int64_t t = b; t < e; ++t) {
            float * p = m_proj.data() + t * n_embd;
            float * x = m_x.data() + t * n_embd;
            if (m_traits.post_norms) ops::rmsnorm(p, p, l.attn_post_norm.data, n_embd, m_hp.rms_eps);
            ops::add(x, x, p, n_embd);
            ops::rmsnorm(m_xn.data() + t * n_embd, x, l.ffn_norm.data, n_embd, m_hp.rms_eps);
        }
    });
    ffn(l, n_rows);
}

void ContextImpl::qkv_post(int il, int32_t n) {
    const LayerWeights & l = m_w.layers[il];
    const int32_t hd_k = m_hp.head_dim_k;
    const float * cs   = m_rope_cs[m_hp.layer_is_swa[il] ? 1 : 0].data();
    const float q_scale = arch::attn_scale(m_hp);
    const bool q8 = m_kv->shape().type == kv::KvType::Q8_0;
    uint8_t * k_cache = m_kv->k_layer(il) + size_t(m_n_past) * m_kv->slot_bytes_k();
    uint8_t * v_cache = m_kv->v_layer(il) + size_t(m_n_past) * m_kv->slot_bytes_v();
    for_rows(n, (m_n_q + m_n_k) * 4, [&](int64_t b, int64_t e) {
        for (int64_t t = b; t < e; ++t) {
            float * q = m_q.data() + t * m_n_q;
            float * k = m_k.data() + t * m_n_k;
            float * v = m_v.data() + t * m_n_v;
            if (m_traits.qkv_bias) {
                ops::add(q, q, l.bq.data, m_n_q);
                ops::add(k, k, l.bk.data, m_n_k);
                ops::add(v, v, l.bv.data, m_n_v);
            }
            const float * cs_t = cs + t * hd_k;
            for (int h = 0; h < m_hp.n_head; ++h) {
                float * qh = q + int64_t(h) * hd_k;
                if (m_traits.qk_norm) ops::rmsnorm(qh, qh, l.q_norm.data, hd_k, m_hp.rms_eps);
                ops::rope_apply(qh, cs_t, hd_k, m_hp.rope_style);
            }
            if (m_traits.scale_q) {  // gemma3 scales Q itself (llama.cpp order)
                for (int64_t i = 0; i < m_n_q; ++i) q[i] *= q_scale;
            }
            for (int h = 0; h < m_hp.n_head_kv; ++h) {
                float * kh = k + int64_t(h) * hd_k;
                if (m_traits.qk_norm) ops::rmsnorm(kh, kh, l.k_norm.data, hd_k, m_hp.rms_eps);
                ops::rope_apply(kh, cs_t, hd_k, m_hp.rope_style);
            }
            uint8_t * kd = k_cache + size_t(t) * m_kv->slot_bytes_k();
            uint8_t * vd = v_cache + size_t(t) * m_kv->slot_bytes_v();
            if (q8) {
                quantize_row_q8_0_ref(k, reinterpret_cast<block_q8_0 *>(kd), m_n_k);
                quantize_row_q8_0_ref(v, reinterpret_cast<block_q8_0 *>(vd), m_n_v);
            } else {
                ops::f32_to_f16(reinterpret_cast<uint16_t *>(kd), k, m_n_k);
                ops::f32_to_f16(reinterpret_cast<uint16_t *>(vd), v, m_n_v);
            }
        }
    });
}

void ContextImpl::attention(int il, int32_t n, int32_t t0) {
    const int32_t n_head = m_hp.n_head, hd_k = m_hp.head_dim_k, hd_v = m_hp.head_dim_v;
    const int32_t group  = m_hp.n_head / m_hp.n_head_kv;
    const bool    swa    = m_hp.layer_is_swa[il] && m_hp.sliding_window > 0;
    const float   scale  = m_traits.scale_q ? 1.0f : arch::attn_scale(m_hp);  // gemma3: already in Q
    const uint16_t * k_layer = reinterpret_cast<const uint16_t *>(m_kv->k_layer(il));
    const uint16_t * v_layer = reinterpret_cast<const uint16_t *>(m_kv->v_layer(il));
    const bool q8 = m_kv->shape().type == kv::KvType::Q8_0;

    // One item = (query row, head). out[t - t0, h] = softmax(q k^T * scale) v
    // over keys [lo, pos]; lo = pos - window + 1 for sliding-window layers.
    // A decode step sums attention's F16 products in llama.cpp's one-token
    // order only in its numerics mode; otherwise in the batch order, so that
    // results do not depend on how tokens are batched.
    const bool one_query = n == 1 && cpu::llamacpp_order();
    const int64_t n_items = int64_t(n - t0) * n_head;
    auto run_item = [&](int64_t item, float * scores) {
        const int32_t t   = t0 + int32_t(item / n_head);
        const int32_t h   = int32_t(item % n_head);
        const int32_t g   = h / group;
        const int32_t pos = m_tree_active ? m_tree_pos[size_t(t)] : m_n_past + t;
        const int32_t lo  = swa ? std::max(0, pos - m_hp.sliding_window + 1) : 0;
        if (q8) {  // [kv] through the identity page table
            kv::PagedHead ph;
            ph.type = kv::KvType::Q8_0;
            ph.pages = m_kv_pages.data();
            ph.page_size = m_kv->shape().page_size;
            ph.k = m_kv->k_layer(il) + size_t(g) * size_t(hd_k / 32) * sizeof(block_q8_0);
            ph.v = m_kv->v_layer(il) + size_t(g) * size_t(hd_v / 32) * sizeof(block_q8_0);
            ph.k_page_bytes = m_kv->page_bytes_k();
            ph.k_slot_bytes = m_kv->slot_bytes_k();
            ph.v_page_bytes = m_kv->page_bytes_v();
            ph.v_slot_bytes = m_kv->slot_bytes_v();
            kv::attend_paged(m_attn.data() + int64_t(t - t0) * m_n_o + int64_t(h) * hd_v, m_q.data() + int64_t(t) * m_n_q + int64_t(h) * hd_k,
                             ph, lo, pos + 1, hd_k, hd_v, scale, scores);
            return;
        }
        if (m_tree_active) {  // committed rows, then the node's root path (scattered rows)
            ops::attend_mapped(m_attn.data() + int64_t(t - t0) * m_n_o + int64_t(h) * hd_v,
                               m_q.data() + int64_t(t) * m_n_q + int64_t(h) * hd_k, k_layer + int64_t(g) * hd_k, m_n_k,
                               v_layer + int64_t(g) * hd_v, m_n_v, lo, pos + 1, m_n_past,
                               m_tree_rows.data() + size_t(t) * size_t(m_tree_stride), hd_k, hd_v, scale, false, scores);
            return;
        }
        ops::attend(m_attn.data() + int64_t(t - t0) * m_n_o + int64_t(h) * hd_v, m_q.data() + int64_t(t) * m_n_q + int64_t(h) * hd_k,
                    k_layer + int64_t(g) * hd_k, m_n_k, v_layer + int64_t(g) * hd_v, m_n_v, lo, pos + 1, hd_k, hd_v, scale, one_query,
                    scores);
    };
    const int64_t work = n_items * int64_t(m_n_past + n) * (hd_k + hd_v);
    if (n_items == 1 || m_pool->size() == 1 || work < (1 << 15)) {
        for (int64_t i = 0; i < n_items; ++i) run_item(i, m_scores.data());
        return;
    }
    std::atomic<int64_t> next{0};
    m_pool->run([&](int ith, int) {
        float * scores = m_scores.data() + size_t(ith) * size_t(ops::attend_scratch_floats(m_n_ctx, m_hp.head_dim_k, m_hp.head_dim_v));
        for (int64_t i = next.fetch_add(1, std::memory_order_relaxed); i < n_items; i = next.fetch_add(1, std::memory_order_relaxed)) {
            run_item(i, scores);
        }
    });
}

// ---- [cuda] partial offload -----------------------------------------------------

Status ContextImpl::decode_hidden(const float * x, int32_t n, int32_t n_out, float * logits_out,
                                  const std::atomic<bool> * cancel) {
    m_tree_n = 0;
    if (n <= 0) return {};
    if (n > m_n_batch || n_out < 0 || n_out > n) {
        return make_error(ErrorCode::InvalidArgument, "decode_hidden: " + std::to_string(n) + " rows (" + std::to_string(n_out) +
                                                          " with logits) for n_batch " + std::to_string(m_n_batch));
    }
    if (m_n_past + n > m_n_ctx) {
        return make_error(ErrorCode::OutOfRange, std::to_string(n) + " tokens at position " + std::to_string(m_n_past) +
                                                     " do not fit the context of " + std::to_string(m_n_ctx));
    }
    m_hidden_in = x;
    const Status st = run_chunk(nullptr, n, n_out, logits_out, cancel);
    m_hidden_in = nullptr;
    GB_TRY_STATUS(st);
    m_n_past += n;
    return {};
}

// ---- [spec] token trees -------------------------------------------------------

Status ContextImpl::decode_tree(std::span<const Token> tokens, std::span<const int32_t> parents,
                                std::span<const int32_t> out_nodes, const std::atomic<bool> * cancel) {
    m_tree_n = 0;
    const int32_t n = int32_t(tokens.size());
    if (n == 0) return make_error(ErrorCode::InvalidArgument, "decode_tree: empty tree");
    if (!supports_tree()) return make_error(ErrorCode::Unsupported, "decode_tree: token trees need the F16 KV cache");
    if (parents.size() != tokens.size()) {
        return make_error(ErrorCode::InvalidArgument, "decode_tree: " + std::to_string(tokens.size()) + " tokens but " +
                                                          std::to_string(parents.size()) + " parents");
    }
    if (n > m_n_batch) {
        return make_error(ErrorCode::InvalidArgument, "decode_tree: " + std::to_string(n) + " nodes exceed n_batch " +
                                                          std::to_string(m_n_batch));
    }
    if (m_n_past + n > m_n_ctx) {
        return make_error(ErrorCode::OutOfRange, "decode_tree: " + std::to_string(n) + " nodes at position " +
                                                     std::to_string(m_n_past) + " do not fit the context of " +
                                                     std::to_string(m_n_ctx));
    }
    // depth per node (parents first), then each node's root path as cache rows
    m_tree_parent.assign(parents.begin(), parents.end());
    m_tree_pos.resize(size_t(n));
    int32_t max_depth = 0;
    for (int32_t i = 0; i < n; ++i) {
        const int32_t p = parents[size_t(i)];
        if (p < -1 || p >= i) {
            return make_error(ErrorCode::InvalidArgument, "decode_tree: node " + std::to_string(i) + " has parent " +
                                                              std::to_string(p) + " (must be -1 or an earlier node)");
        }
        if (tokens[size_t(i)] < 0 || tokens[size_t(i)] >= m_hp.n_vocab) {
            return make_error(ErrorCode::InvalidArgument, "decode_tree: token " + std::to_string(tokens[size_t(i)]) +
                                                              " is outside the vocabulary");
        }
        m_tree_pos[size_t(i)] = p < 0 ? m_n_past : m_tree_pos[size_t(p)] + 1;
        max_depth = std::max(max_depth, m_tree_pos[size_t(i)] - m_n_past);
    }
    m_tree_stride = max_depth + 1;
    m_tree_rows.assign(size_t(n) * size_t(m_tree_stride), -1);
    for (int32_t i = 0; i < n; ++i) {
        int32_t * rows = m_tree_rows.data() + size_t(i) * size_t(m_tree_stride);
        for (int32_t a = i; a >= 0; a = m_tree_parent[size_t(a)]) rows[m_tree_pos[size_t(a)] - m_n_past] = m_n_past + a;
    }
    // every layer for every node (no last-layer trimming); logits on request
    m_tree_active = true;
    const Status st = run_chunk(tokens.data(), n, n, nullptr, cancel);
    m_tree_active = false;
    GB_TRY_STATUS(st);
    m_tree_n = n;
    return tree_logits(out_nodes);
}

Status ContextImpl::tree_logits(std::span<const int32_t> nodes) {
    const int64_t n_embd = m_hp.n_embd;
    const size_t n_vocab = size_t(m_hp.n_vocab);
    const int32_t n_out  = int32_t(nodes.size());
    if (n_out > m_n_batch) {
        return make_error(ErrorCode::InvalidArgument, "tree_logits: " + std::to_string(n_out) + " rows exceed n_batch " +
                                                          std::to_string(m_n_batch));
    }
    for (int32_t node : nodes) {
        if (node < 0 || node >= m_tree_n) {
            return make_error(ErrorCode::InvalidArgument, "tree_logits: node " + std::to_string(node) + " is not in the pending tree of " +
                                                              std::to_string(m_tree_n) + " nodes");
        }
    }
    m_n_logits = size_t(n_out) * n_vocab;
    if (m_logits.size() < m_n_logits) {
        try {
            m_logits.resize(m_n_logits);
        } catch (const std::bad_alloc &) {
            m_n_logits = 0;
            return make_error(ErrorCode::OutOfMemory, "cannot allocate logits for " + std::to_string(n_out) + " tree nodes");
        }
    }
    if (n_out == 0) return {};
    // logits = output(rmsnorm(x[nodes]))   [n_out, n_vocab]
    for_rows(n_out, n_embd, [&](int64_t b, int64_t e) {
        for (int64_t t = b; t < e; ++t) {
            ops::rmsnorm(m_xn.data() + t * n_embd, m_x.data() + int64_t(nodes[size_t(t)]) * n_embd, m_w.output_norm.data, n_embd,
                         m_hp.rms_eps);
        }
    });
    m_cur_layer = -1;  // [quantlab]
    matmul(m_w.output, m_xn.data(), n_out, m_logits.data());
    if (m_hp.final_logit_softcap > 0.0f) {
        const float cap = m_hp.final_logit_softcap;
        for (size_t i = 0; i < m_n_logits; ++i) m_logits[i] = cap * std::tanh(m_logits[i] / cap);
    }
    return {};
}

Status ContextImpl::commit_tree(std::span<const int32_t> path) {
    const int32_t n = int32_t(path.size());
    if (n == 0) {
        m_tree_n = 0;
        return {};
    }
    for (int32_t d = 0; d < n; ++d) {
        const int32_t node = path[size_t(d)];
        const int32_t want_parent = d == 0 ? -1 : path[size_t(d) - 1];
        if (node < 0 || node >= m_tree_n || m_tree_parent[size_t(node)] != want_parent) {
            m_tree_n = 0;
            return make_error(ErrorCode::InvalidArgument, "commit_tree: entry " + std::to_string(d) + " (node " + std::to_string(node) +
                                                              ") does not continue a root path of the pending tree");
        }
    }
    // Node path[d] >= d sits in row n_past + path[d]; moving rows in order of d
    // never overwrites a row still to be read (targets n_past + d' < n_past + d <= source).
    for (int il = 0; il < m_hp.n_layer; ++il) {
        uint8_t * k_layer = m_kv->k_layer(il);  // [kv] pages in order: row t at t * slot bytes
        uint8_t * v_layer = m_kv->v_layer(il);
        const size_t kb = m_kv->slot_bytes_k(), vb = m_kv->slot_bytes_v();
        for (int32_t d = 0; d < n; ++d) {
            const size_t src = size_t(m_n_past + path[size_t(d)]), dst = size_t(m_n_past + d);
            if (src == dst) continue;
            std::memcpy(k_layer + dst * kb, k_layer + src * kb, kb);
            std::memcpy(v_layer + dst * vb, v_layer + src * vb, vb);
        }
    }
    m_n_past += n;
    m_tree_n = 0;
    return {};
}

void ContextImpl::ffn(const LayerWeights & l, int32_t n_rows) {
    const int64_t n_embd = m_hp.n_embd, n_ff = m_hp.n_ff;
    // gate, up = xn Wg^T, xn Wu^T   [n_rows, n_ff]
    matmul_shared({{&l.ffn_gate, m_gate.data()}, {&l.ffn_up, m_up.data()}}, m_xn.data(), n_rows);
    // gate = act(gate) * up
    const bool gelu = m_traits.act == arch::FfnAct::GeluTanh;
    for_rows(n_rows, n_ff * 4, [&](int64_t b, int64_t e) {
        float * g       = m_gate.data() + b * n_ff;
        const float * u = m_up.data() + b * n_ff;
        if (gelu) ops::geglu(g, g, u, (e - b) * n_ff);
        else ops::swiglu(g, g, u, (e - b) * n_ff);
    });
    // x += [post_norm](gate Wd^T)   [n_rows, n_embd]
    matmul(l.ffn_down, m_gate.data(), n_rows, m_proj.data());
    for_rows(n_rows, n_embd * 2, [&](int64_t b, int64_t e) {
        for (int64_t t = b; t < e; ++t) {
            float * p = m_proj.data() + t * n_embd;
            float * x = m_x.data() + t * n_embd;
            if (m_traits.post_norms) ops::rmsnorm(p, p, l.ffn_post_norm.data, n_embd, m_hp.rms_eps);
            ops::add(x, x, p, n_embd);
        }
    });
}

}  // namespace

Result<std::unique_ptr<Context>> Context::create(std::shared_ptr<const Model> model, const ContextParams & params) {
    if (!model) return make_error(ErrorCode::InvalidArgument, "Context::create: no model");
    const HParams & hp = model->hparams();
    if (params.n_ctx <= 0) return make_error(ErrorCode::InvalidArgument, "n_ctx must be positive");
    if (params.n_batch <= 0) return make_error(ErrorCode::InvalidArgument, "n_batch must be positive");
    if (params.n_threads < 0) return make_error(ErrorCode::InvalidArgument, "n_threads must not be negative");
    if (params.kv_page_size < 0) return make_error(ErrorCode::InvalidArgument, "kv_page_size must not be negative");
    const int32_t n_ctx   = std::min(params.n_ctx, hp.n_ctx_train);
    const int32_t n_batch = std::min(params.n_batch, n_ctx);
    int32_t n_threads     = params.n_threads;
    if (n_threads == 0) n_threads = int32_t(std::max(1u, std::thread::hardware_concurrency()));
    for (int32_t l : params.skip_layers) {
        if (l < 0 || l >= hp.n_layer) {
            return make_error(ErrorCode::InvalidArgument, "skip layer " + std::to_string(l) + " outside 0.." + std::to_string(hp.n_layer - 1));
        }
    }
    {
        std::vector<int32_t> uniq(params.skip_layers);
        std::sort(uniq.begin(), uniq.end());
        if (std::unique(uniq.begin(), uniq.end()) - uniq.begin() >= hp.n_layer) {
            return make_error(ErrorCode::InvalidArgument, "cannot skip every layer");
        }
    }
    auto ctx = std::make_unique<ContextImpl>(std::move(model), n_ctx, n_batch, n_threads);
    GB_TRY_STATUS(ctx->allocate(params.kv_type, params.kv_page_size > 0 ? params.kv_page_size : n_ctx));
    ctx->set_skip_layers(params.skip_layers);  // [spec]
    ctx->m_observer = params.matmul_observer;  // [quantlab]
    return std::unique_ptr<Context>(std::move(ctx));
}

// [cuda]
Status detail::decode_hidden(Context & ctx, const float * x, int32_t n, int32_t n_out, float * logits_out,
                             const std::atomic<bool> * cancel) {
    auto * c = dynamic_cast<ContextImpl *>(&ctx);
    if (!c) return make_error(ErrorCode::InvalidArgument, "decode_hidden: not a CPU context");
    return c->decode_hidden(x, n, n_out, logits_out, cancel);
}

// [spec] Backends without token trees (SpecDecoder then verifies chains only).
Status Context::decode_tree(std::span<const Token>, std::span<const int32_t>, std::span<const int32_t>, const std::atomic<bool> *) {
    return make_error(ErrorCode::Unsupported, "this backend has no token-tree decoding");
}
Status Context::tree_logits(std::span<const int32_t>) {
    return make_error(ErrorCode::Unsupported, "this backend has no token-tree decoding");
}
Status Context::commit_tree(std::span<const int32_t> path) {
    if (path.empty()) return {};
    return make_error(ErrorCode::Unsupported, "this backend has no token-tree decoding");
}

}  // namespace gb
