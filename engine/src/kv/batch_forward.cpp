// The batched CPU forward pass over the paged KV cache: the blocks of Context
// (context.cpp) with per-row positions and page tables. Matmuls run on all
// batch rows at once; attention runs per (row, head) through the row's page
// table, so a row never sees another sequence's pages unless the tables share them.
#include "glassbox/kv/batch_forward.h"

#include "arch/arch.h"
#include "cpu/matmul.h"
#include "cpu/thread_pool.h"
#include "forward_ops.h"
#include "kv/paged_attention.h"
#include "quants.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <new>
#include <thread>

namespace gb::kv {

KvShape kv_shape_for(const Model & model, int32_t n_pages, int32_t page_size, KvType type) {
    const HParams & hp = model.hparams();
    KvShape s;
    s.n_layer = hp.n_layer;
    s.n_head_kv = hp.n_head_kv;
    s.head_dim_k = hp.head_dim_k;
    s.head_dim_v = hp.head_dim_v;
    s.n_pages = n_pages;
    s.page_size = page_size;
    s.type = type;
    return s;
}

namespace {

using arch::LayerWeights;

class BatchForwardImpl final : public BatchForward {
  public:
    BatchForwardImpl(std::shared_ptr<const Model> model, const BatchForwardParams & p, int32_t n_threads,
                     std::unique_ptr<CpuKvStorage> storage);
    Status allocate();

    Status run(std::span<const BatchSeq> seqs, std::span<const PageCopy> copies) override;
    std::span<const float> logits(size_t i) const override {
        if (i >= m_logit_row.size() || m_logit_row[i] < 0) return {};
        return {m_logits.data() + size_t(m_logit_row[i]) * size_t(m_hp.n_vocab), size_t(m_logit_n[i]) * size_t(m_hp.n_vocab)};
    }
    const Model & model() const override { return *m_model; }
    KvStorage & storage() override { return *m_kv; }
    int32_t max_batch_tokens() const override { return m_n_batch; }
    int32_t max_positions() const override { return m_max_pos; }

  private:
    void block(int il, int32_t n, int32_t & n_rows);
    void qkv_post(int il, int32_t n);
    void attention(int il, int32_t n_rows);
    void ffn(const LayerWeights & l, int32_t n_rows);
    template <typename F> void for_rows(int64_t n, int64_t cost_per_row, F && fn);
    void matmul(const arch::Matrix & w, const float * x, int64_t n, float * y) { cpu::matmul(w.view(), x, n, y, *m_pool); }

    std::shared_ptr<const Model> m_model;
    const HParams &              m_hp;
    const arch::Weights &        m_w;
    const arch::Traits &         m_traits;
    int32_t m_n_batch, m_max_pos;
    std::unique_ptr<cpu::ThreadPool> m_pool;
    std::unique_ptr<CpuKvStorage>    m_kv;

    int64_t m_n_q, m_n_k, m_n_v, m_n_o;
    // per batch row
    std::vector<int32_t> m_pos, m_row_seq;
    std::vector<int32_t> m_rows;        // rows whose attention/FFN run in the current layer (all, then the logit rows)
    std::vector<std::span<const PageId>> m_seq_pages;
    std::vector<int32_t> m_logit_row;  // per seq: first row of m_logits, or -1
    std::vector<int32_t> m_logit_n;    // per seq: logit rows (1, or n_tokens with all_logits)
    // activations, [n_batch, *]
    std::vector<float> m_x, m_xn, m_q, m_k, m_v, m_attn, m_proj, m_gate, m_up;
    std::vector<float> m_rope_cs[2];
    std::vector<float> m_scores;
    int64_t            m_scratch_per_thread = 0;
    std::vector<float> m_logits;
};

BatchForwardImpl::BatchForwardImpl(std::shared_ptr<const Model> model, const BatchForwardParams & p, int32_t n_threads,
                                   std::unique_ptr<CpuKvStorage> storage)
    : m_model(std::move(model)), m_hp(m_model->hparams()), m_w(arch::weights_of(*m_model)), m_traits(arch::traits_of(*m_model)),
      m_n_batch(p.max_batch_tokens), m_pool(std::make_unique<cpu::ThreadPool>(n_threads)), m_kv(std::move(storage)) {
    m_max_pos = int32_t(std::min<int64_t>(int64_t(p.n_pages) * p.page_size, m_hp.n_ctx_train));
    m_n_q = int64_t(m_hp.n_head) * m_hp.head_dim_k;
    m_n_k = int64_t(m_hp.n_head_kv) * m_hp.head_dim_k;
    m_n_v = int64_t(m_hp.n_head_kv) * m_hp.head_dim_v;
    m_n_o = int64_t(m_hp.n_head) * m_hp.head_dim_v;
}

Status BatchForwardImpl::allocate() {
    try {
        const size_t nb = size_t(m_n_batch);
        m_pos.resize(nb);
        m_row_seq.resize(nb);
        m_rows.resize(nb);
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
        // room for a whole GQA group of query heads (attend_paged_group)
        m_scratch_per_thread = int64_t(m_hp.n_head / m_hp.n_head_kv) * ops::attend_scratch_floats(m_max_pos, m_hp.head_dim_k, m_hp.head_dim_v);
        m_scores.resize(size_t(m_pool->size()) * size_t(m_scratch_per_thread));
    } catch (const std::bad_alloc &) {
        return make_error(ErrorCode::OutOfMemory, "cannot allocate a batch of " + std::to_string(m_n_batch) + " tokens");
    }
    return {};
}

template <typename F>
void BatchForwardImpl::for_rows(int64_t n, int64_t cost_per_row, F && fn) {
    constexpr int64_t kMinWork = 1 << 14;
    if (n <= 1 || m_pool->size() == 1 || n * cost_per_row < kMinWork) {
        fn(int64_t(0), n);
        return;
    }
    m_pool->parallel_for(n, 1, fn);
}

Status BatchForwardImpl::run(std::span<const BatchSeq> seqs, std::span<const PageCopy> copies) {
    const int32_t ps = m_kv->shape().page_size;
    const int32_t n_pages = m_kv->shape().n_pages;
    // Validate everything before touching the cache.
    int64_t n = 0, n_out = 0;
    for (size_t s = 0; s < seqs.size(); ++s) {
        const BatchSeq & q = seqs[s];
        const std::string where = "batch sequence " + std::to_string(s) + ": ";
        if (q.tokens.empty()) return make_error(ErrorCode::InvalidArgument, where + "no tokens");
        const int64_t end = int64_t(q.first_pos) + int64_t(q.tokens.size());
        if (q.first_pos < 0 || end > m_max_pos)
            return make_error(ErrorCode::OutOfRange, where + "positions " + std::to_string(q.first_pos) + ".." + std::to_string(end - 1) +
                                                         " outside [0, " + std::to_string(m_max_pos) + ")");
        if (int64_t(q.pages.size()) * ps < end)
            return make_error(ErrorCode::InvalidArgument, where + std::to_string(q.pages.size()) + " pages do not hold " +
                                                              std::to_string(end) + " positions");
        for (int64_t p = 0, e = (end + ps - 1) / ps; p < e; ++p) {
            if (q.pages[p] < 0 || q.pages[p] >= n_pages)
                return make_error(ErrorCode::InvalidArgument, where + "page id " + std::to_string(q.pages[p]) + " out of range");
        }
        for (size_t i = 0; i < q.tokens.size(); ++i) {
            if (q.tokens[i] < 0 || q.tokens[i] >= m_hp.n_vocab)
                return make_error(ErrorCode::InvalidArgument, where + "token " + std::to_string(q.tokens[i]) + " outside the vocabulary");
        }
        n += int64_t(q.tokens.size());
        if (q.logits && !q.tokens.empty()) n_out += q.all_logits ? int64_t(q.tokens.size()) : 1;
    }
    if (n > m_n_batch)
        return make_error(ErrorCode::OutOfRange, "batch of " + std::to_string(n) + " tokens exceeds max_batch_tokens " + std::to_string(m_n_batch));
    for (const PageCopy & c : copies) {
        if (c.src < 0 || c.src >= n_pages || c.dst < 0 || c.dst >= n_pages)
            return make_error(ErrorCode::InvalidArgument, "page copy " + std::to_string(c.src) + " -> " + std::to_string(c.dst) + " out of range");
    }
    for (const PageCopy & c : copies) m_kv->copy(c);

    m_logit_row.assign(seqs.size(), -1);
    m_logit_n.assign(seqs.size(), 0);
    if (n == 0) return {};
    try {
        m_logits.resize(size_t(n_out) * size_t(m_hp.n_vocab));
    } catch (const std::bad_alloc &) {
        return make_error(ErrorCode::OutOfMemory, "cannot allocate logits");
    }
    m_seq_pages.clear();
    std::vector<Token> tokens(static_cast<size_t>(n));
    int32_t row = 0, out = 0;
    for (size_t s = 0; s < seqs.size(); ++s) {
        m_seq_pages.push_back(seqs[s].pages);
        for (size_t i = 0; i < seqs[s].tokens.size(); ++i, ++row) {
            tokens[row] = seqs[s].tokens[i];
            m_pos[row] = seqs[s].first_pos + int32_t(i);
            m_row_seq[row] = int32_t(s);
            m_rows[row] = row;
        }
        if (seqs[s].logits && !seqs[s].tokens.empty()) {
            m_logit_row[s] = out;
            m_logit_n[s] = seqs[s].all_logits ? int32_t(seqs[s].tokens.size()) : 1;
            out += m_logit_n[s];
        }
    }

    const int64_t n_embd = m_hp.n_embd;
    // x = embd_scale * token_embd[tokens]   [n, n_embd]
    for_rows(n, n_embd * 4, [&](int64_t b, int64_t e) {
        for (int64_t t = b; t < e; ++t) {
            float * x = m_x.data() + t * n_embd;
            dequantize_row(m_w.tok_embd.t->type, m_w.tok_embd.row(tokens[t]), x, n_embd);
            if (m_hp.embd_scale != 1.0f) {
                for (int64_t i = 0; i < n_embd; ++i) x[i] *= m_hp.embd_scale;
            }
        }
    });
    // RoPE rows at each row's own position (same values as a table built from pos0).
    const float * ff = m_w.rope_freqs ? m_w.rope_freqs.data : nullptr;
    const bool any_swa = std::find(m_hp.layer_is_swa.begin(), m_hp.layer_is_swa.end(), true) != m_hp.layer_is_swa.end();
    const int32_t hd_k = m_hp.head_dim_k;
    for (int64_t t = 0; t < n; ++t) {
        ops::rope_table(m_rope_cs[0].data() + t * hd_k, m_pos[t], 1, hd_k, m_hp.rope_freq_base, m_hp.rope_freq_scale, ff);
        if (any_swa)
            ops::rope_table(m_rope_cs[1].data() + t * hd_k, m_pos[t], 1, hd_k, m_hp.rope_freq_base_swa, m_hp.rope_freq_scale_swa, ff);
    }

    int32_t n_rows = int32_t(n);
    for (int il = 0; il < m_hp.n_layer; ++il) {
        block(il, int32_t(n), n_rows);
        if (n_rows == 0) break;
    }
    if (n_out == 0) return {};

    // logits = output(rmsnorm(x))   [n_out, n_vocab]; x rows are the logit rows in order
    for_rows(n_out, n_embd, [&](int64_t b, int64_t e) {
        for (int64_t t = b; t < e; ++t) {
            ops::rmsnorm(m_xn.data() + t * n_embd, m_x.data() + t * n_embd, m_w.output_norm.data, n_embd, m_hp.rms_eps);
        }
    });
    matmul(m_w.output, m_xn.data(), n_out, m_logits.data());
    if (m_hp.final_logit_softcap > 0.0f) {
        const float cap = m_hp.final_logit_softcap;
        for (size_t i = 0; i < m_logits.size(); ++i) m_logits[i] = cap * std::tanh(m_logits[i] / cap);
    }
    return {};
}

void BatchForwardImpl::block(int il, int32_t n, int32_t & n_rows) {
    const LayerWeights & l = m_w.layers[il];
    const int64_t n_embd   = m_hp.n_embd;

    for_rows(n, n_embd, [&](int64_t b, int64_t e) {
        for (int64_t t = b; t < e; ++t) {
            ops::rmsnorm(m_xn.data() + t * n_embd, m_x.data() + t * n_embd, l.attn_norm.data, n_embd, m_hp.rms_eps);
        }
    });
    // q, k, v   [n, n_q] [n, n_k] [n, n_v]
    matmul(l.wq, m_xn.data(), n, m_q.data());
    matmul(l.wk, m_xn.data(), n, m_k.data());
    matmul(l.wv, m_xn.data(), n, m_v.data());
    qkv_post(il, n);  // K/V of every row go to the cache, also in the last layer

    if (il == m_hp.n_layer - 1) {
        // Only the rows whose logits are wanted go on: compact them to the front of x (rows ascend).
        int32_t k = 0;
        for (int32_t t = 0; t < n; ++t) {
            const int32_t s = m_row_seq[t];
            const bool last_of_seq = t + 1 == n || m_row_seq[t + 1] != s;
            if (m_logit_row[s] < 0 || (!last_of_seq && m_logit_n[s] == 1)) continue;
            if (k != t) std::memcpy(m_x.data() + int64_t(k) * n_embd, m_x.data() + int64_t(t) * n_embd, sizeof(float) * size_t(n_embd));
            m_rows[k++] = t;
        }
        n_rows = k;
        if (n_rows == 0) return;
    }
    attention(il, n_rows);

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

void BatchForwardImpl::qkv_post(int il, int32_t n) {
    const LayerWeights & l = m_w.layers[il];
    const int32_t hd_k = m_hp.head_dim_k;
    const float * cs   = m_rope_cs[m_hp.layer_is_swa[il] ? 1 : 0].data();
    const float q_scale = arch::attn_scale(m_hp);
    const int32_t ps = m_kv->shape().page_size;
    const bool q8 = m_kv->shape().type == KvType::Q8_0;
    uint8_t * k_layer = m_kv->k_layer(il);
    uint8_t * v_layer = m_kv->v_layer(il);
    const size_t kpb = m_kv->page_bytes_k(), ksb = m_kv->slot_bytes_k();
    const size_t vpb = m_kv->page_bytes_v(), vsb = m_kv->slot_bytes_v();
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
            if (m_traits.scale_q) {
                for (int64_t i = 0; i < m_n_q; ++i) q[i] *= q_scale;
            }
            for (int h = 0; h < m_hp.n_head_kv; ++h) {
                float * kh = k + int64_t(h) * hd_k;
                if (m_traits.qk_norm) ops::rmsnorm(kh, kh, l.k_norm.data, hd_k, m_hp.rms_eps);
                ops::rope_apply(kh, cs_t, hd_k, m_hp.rope_style);
            }
            // slot of position p: page pages[p / ps], slot p % ps
            const int32_t pos = m_pos[t];
            const PageId page = m_seq_pages[size_t(m_row_seq[t])][size_t(pos / ps)];
            uint8_t * kd = k_layer + size_t(page) * kpb + size_t(pos % ps) * ksb;
            uint8_t * vd = v_layer + size_t(page) * vpb + size_t(pos % ps) * vsb;
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

void BatchForwardImpl::attention(int il, int32_t n_rows) {
    const int32_t n_head = m_hp.n_head, hd_k = m_hp.head_dim_k, hd_v = m_hp.head_dim_v;
    const int32_t group  = m_hp.n_head / m_hp.n_head_kv;
    const bool    swa    = m_hp.layer_is_swa[il] && m_hp.sliding_window > 0;
    const float   scale  = m_traits.scale_q ? 1.0f : arch::attn_scale(m_hp);
    const bool    q8     = m_kv->shape().type == KvType::Q8_0;
    // byte offset of KV head g inside a slot
    const size_t k_head_bytes = q8 ? size_t(hd_k / 32) * sizeof(block_q8_0) : size_t(hd_k) * 2;
    const size_t v_head_bytes = q8 ? size_t(hd_v / 32) * sizeof(block_q8_0) : size_t(hd_v) * 2;

    // One item = (row r, KV head g, a chunk of hp of its query heads): out[r, h] =
    // softmax(q_h k^T * scale) v over keys [lo, pos] of the row's sequence for
    // each h in the chunk, every K/V slot read once per item. Whole GQA groups
    // unless that leaves fewer than 2 items per thread (then smaller chunks;
    // the results are the same bits either way).
    const int32_t n_head_kv = m_hp.n_head_kv;
    const int64_t want_items = m_pool->size() == 1 ? 1 : 2 * int64_t(m_pool->size());
    int32_t hp = group;
    while (hp > 1 && int64_t(n_rows) * n_head_kv * ((group + hp - 1) / hp) < want_items) hp = (hp + 1) / 2;
    const int32_t n_chunks = (group + hp - 1) / hp;
    const int64_t n_items = int64_t(n_rows) * n_head_kv * n_chunks;
    int64_t n_keys = 0;
    for (int32_t r = 0; r < n_rows; ++r) n_keys += m_pos[m_rows[r]] + 1;
    auto run_item = [&](int64_t item, float * scores) {
        const int32_t r   = int32_t(item / (int64_t(n_head_kv) * n_chunks));
        const int32_t rem = int32_t(item % (int64_t(n_head_kv) * n_chunks));
        const int32_t g   = rem / n_chunks;
        const int32_t c   = rem % n_chunks;
        const int32_t h   = g * group + c * hp;  // first query head of the chunk
        const int32_t nh  = std::min(hp, group - c * hp);
        const int32_t t   = m_rows[r];
        const int32_t pos = m_pos[t];
        const int32_t lo  = swa ? std::max(0, pos - m_hp.sliding_window + 1) : 0;
        PagedHead kv;
        kv.type = m_kv->shape().type;
        kv.pages = m_seq_pages[size_t(m_row_seq[t])].data();
        kv.page_size = m_kv->shape().page_size;
        kv.k = m_kv->k_layer(il) + size_t(g) * k_head_bytes;
        kv.v = m_kv->v_layer(il) + size_t(g) * v_head_bytes;
        kv.k_page_bytes = m_kv->page_bytes_k();
        kv.k_slot_bytes = m_kv->slot_bytes_k();
        kv.v_page_bytes = m_kv->page_bytes_v();
        kv.v_slot_bytes = m_kv->slot_bytes_v();
        attend_paged_group(m_attn.data() + int64_t(r) * m_n_o + int64_t(h) * hd_v, hd_v, m_q.data() + int64_t(t) * m_n_q + int64_t(h) * hd_k,
                           hd_k, nh, kv, lo, pos + 1, hd_k, hd_v, scale, scores);
    };
    const int64_t work = n_keys * n_head * (hd_k + hd_v);
    if (n_items == 1 || m_pool->size() == 1 || work < (1 << 15)) {
        for (int64_t i = 0; i < n_items; ++i) run_item(i, m_scores.data());
        return;
    }
    std::atomic<int64_t> next{0};
    m_pool->run([&](int ith, int) {
        float * scores = m_scores.data() + size_t(ith) * size_t(m_scratch_per_thread);
        for (int64_t i = next.fetch_add(1, std::memory_order_relaxed); i < n_items; i = next.fetch_add(1, std::memory_order_relaxed)) {
            run_item(i, scores);
        }
    });
}

void BatchForwardImpl::ffn(const LayerWeights & l, int32_t n_rows) {
    const int64_t n_embd = m_hp.n_embd, n_ff = m_hp.n_ff;
    matmul(l.ffn_gate, m_xn.data(), n_rows, m_gate.data());
    matmul(l.ffn_up, m_xn.data(), n_rows, m_up.data());
    const bool gelu = m_traits.act == arch::FfnAct::GeluTanh;
    for_rows(n_rows, n_ff * 4, [&](int64_t b, int64_t e) {
        float * g       = m_gate.data() + b * n_ff;
        const float * u = m_up.data() + b * n_ff;
        if (gelu) ops::geglu(g, g, u, (e - b) * n_ff);
        else ops::swiglu(g, g, u, (e - b) * n_ff);
    });
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

Token BatchForward::greedy_token(size_t seq_index) const {
    const auto l = logits(seq_index);
    const size_t n = size_t(model().hparams().n_vocab);
    if (l.size() < n || n == 0) return -1;
    const float * row = l.data() + (l.size() - n);
    return Token(std::max_element(row, row + n) - row);
}

Result<std::unique_ptr<BatchForward>> BatchForward::create(std::shared_ptr<const Model> model, const BatchForwardParams & params) {
    if (!model) return make_error(ErrorCode::InvalidArgument, "BatchForward::create: no model");
    if (params.max_batch_tokens < 1) return make_error(ErrorCode::InvalidArgument, "max_batch_tokens must be positive");
    if (params.n_threads < 0) return make_error(ErrorCode::InvalidArgument, "n_threads must not be negative");
    auto storage = CpuKvStorage::create(kv_shape_for(*model, params.n_pages, params.page_size, params.kv_type));
    if (!storage) return storage.error();
    int32_t n_threads = params.n_threads;
    if (n_threads == 0) n_threads = int32_t(std::max(1u, std::thread::hardware_concurrency()));
    auto f = std::make_unique<BatchForwardImpl>(std::move(model), params, n_threads, std::move(*storage));
    GB_TRY_STATUS(f->allocate());
    return std::unique_ptr<BatchForward>(std::move(f));
}

}  // namespace gb::kv
