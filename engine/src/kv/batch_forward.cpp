// The batched CPU forward pass over the paged KV cache: the layers of Context
// (layer_cpu.h) with per-row positions and page tables. Matmuls run on all
// batch rows at once; attention runs per (row, KV head) through the row's page
// table, so a row never sees another sequence's pages unless the tables share them.
#include "glassbox/kv/batch_forward.h"

#include "arch/arch.h"
#include "cpu/row_ops.h"
#include "cpu/thread_pool.h"
#include "forward_ops.h"
#include "kv/paged_attention.h"
#include "layer_cpu.h"

#include <algorithm>
#include <new>
#include <numeric>
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

class BatchForwardImpl final : public BatchForward, private layer::KvAttention {
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
    // layer::KvAttention: row t's K/V at its position in its sequence's pages
    layer::KvSlot kv_slot(int32_t t) const override { return {m_seq_pages[size_t(m_row_seq[t])].data(), m_pos[t]}; }
    void attend(int il, std::span<const int32_t> rows, const float * q, float * attn) override;

    std::shared_ptr<const Model> m_model;
    const HParams &              m_hp;
    int32_t m_n_batch, m_max_pos;
    std::unique_ptr<cpu::ThreadPool> m_pool;
    std::unique_ptr<CpuKvStorage>    m_kv;
    layer::CpuLayers                 m_layers;

    // per batch row
    std::vector<int32_t> m_pos, m_row_seq;
    std::vector<int32_t> m_all_rows;    // 0, 1, ..., n_batch - 1
    std::vector<int32_t> m_out_rows;    // the rows whose logits are wanted (the last layer's rows)
    std::vector<std::span<const PageId>> m_seq_pages;
    std::vector<int32_t> m_logit_row;  // per seq: first row of m_logits, or -1
    std::vector<int32_t> m_logit_n;    // per seq: logit rows (1, or n_tokens with all_logits)
    std::vector<float> m_scores;
    int64_t            m_scratch_per_thread = 0;
    std::vector<float> m_logits;
};

BatchForwardImpl::BatchForwardImpl(std::shared_ptr<const Model> model, const BatchForwardParams & p, int32_t n_threads,
                                   std::unique_ptr<CpuKvStorage> storage)
    : m_model(std::move(model)), m_hp(m_model->hparams()), m_n_batch(p.max_batch_tokens),
      m_pool(std::make_unique<cpu::ThreadPool>(n_threads)), m_kv(std::move(storage)), m_layers(*m_model, *m_pool) {
    m_max_pos = int32_t(std::min<int64_t>(int64_t(p.n_pages) * p.page_size, m_hp.n_ctx_train));
}

Status BatchForwardImpl::allocate() {
    try {
        const size_t nb = size_t(m_n_batch);
        m_pos.resize(nb);
        m_row_seq.resize(nb);
        m_all_rows.resize(nb);
        std::iota(m_all_rows.begin(), m_all_rows.end(), 0);
        m_out_rows.reserve(nb);
        m_layers.allocate(m_n_batch);
        // room for a whole GQA group of query heads (attend_paged_group)
        m_scratch_per_thread = int64_t(m_hp.n_head / m_hp.n_head_kv) * ops::attend_scratch_floats(m_max_pos, m_hp.head_dim_k, m_hp.head_dim_v);
        m_scores.resize(size_t(m_pool->size()) * size_t(m_scratch_per_thread));
    } catch (const std::bad_alloc &) {
        return make_error(ErrorCode::OutOfMemory, "cannot allocate a batch of " + std::to_string(m_n_batch) + " tokens");
    }
    return {};
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
    m_out_rows.clear();
    std::vector<Token> tokens(static_cast<size_t>(n));
    int32_t row = 0, out = 0;
    for (size_t s = 0; s < seqs.size(); ++s) {
        m_seq_pages.push_back(seqs[s].pages);
        const int32_t n_tok = int32_t(seqs[s].tokens.size());
        for (int32_t i = 0; i < n_tok; ++i, ++row) {
            tokens[row] = seqs[s].tokens[i];
            m_pos[row] = seqs[s].first_pos + i;
            m_row_seq[row] = int32_t(s);
        }
        if (seqs[s].logits && n_tok > 0) {
            m_logit_row[s] = out;
            m_logit_n[s] = seqs[s].all_logits ? n_tok : 1;
            out += m_logit_n[s];
            // the last layer runs on these rows only (ascending; x rows are then the logit rows in order)
            for (int32_t i = n_tok - m_logit_n[s]; i < n_tok; ++i) m_out_rows.push_back(row - n_tok + i);
        }
    }

    m_layers.embed(tokens.data(), nullptr, n);
    // RoPE rows at each row's own position (same values as a table built from pos0).
    for (int64_t t = 0; t < n; ++t) m_layers.rope_rows(t, m_pos[t], 1);
    for (int il = 0; il < m_hp.n_layer; ++il) {
        const bool last = il == m_hp.n_layer - 1;
        m_layers.block(il, int32_t(n), last ? std::span<const int32_t>(m_out_rows) : std::span<const int32_t>(m_all_rows).first(size_t(n)),
                       *m_kv, *this);
    }
    if (n_out == 0) return {};
    m_layers.output(int32_t(n_out), nullptr, m_logits.data());
    return {};
}

void BatchForwardImpl::attend(int il, std::span<const int32_t> rows, const float * q, float * attn) {
    const layer::LayerAttn a = m_layers.attn_of(il);
    const int32_t hd_k = a.hd_k, hd_v = a.hd_v, group = a.group, n_head_kv = a.n_head_kv;
    const int64_t n_q = m_layers.n_q(), n_o = m_layers.n_o();
    const int32_t n_rows = int32_t(rows.size());

    // One item = (row r, KV head g, a chunk of hp of its query heads): out[r, h] =
    // softmax(q_h k^T * scale) v over keys [lo, pos] of the row's sequence for
    // each h in the chunk, every K/V slot read once per item. Whole GQA groups
    // unless that leaves fewer than 2 items per thread (then smaller chunks;
    // the results are the same bits either way).
    const int64_t want_items = m_pool->size() == 1 ? 1 : 2 * int64_t(m_pool->size());
    int32_t hp = group;
    while (hp > 1 && int64_t(n_rows) * n_head_kv * ((group + hp - 1) / hp) < want_items) hp = (hp + 1) / 2;
    const int32_t n_chunks = (group + hp - 1) / hp;
    const int64_t n_items = int64_t(n_rows) * n_head_kv * n_chunks;
    int64_t n_keys = 0;
    for (int32_t r = 0; r < n_rows; ++r) n_keys += m_pos[rows[r]] + 1;
    auto run_item = [&](int64_t item, float * scores) {
        const int32_t r   = int32_t(item / (int64_t(n_head_kv) * n_chunks));
        const int32_t rem = int32_t(item % (int64_t(n_head_kv) * n_chunks));
        const int32_t g   = rem / n_chunks;
        const int32_t c   = rem % n_chunks;
        const int32_t h   = g * group + c * hp;  // first query head of the chunk
        const int32_t nh  = std::min(hp, group - c * hp);
        const int32_t t   = rows[r];
        const int32_t pos = m_pos[t];
        const int32_t lo  = a.first_key(pos);
        const PagedHead kv = paged_head(*m_kv, il, g, m_seq_pages[size_t(m_row_seq[t])].data());
        attend_paged_group(attn + int64_t(r) * n_o + int64_t(h) * hd_v, hd_v, q + int64_t(t) * n_q + int64_t(h) * hd_k, hd_k, nh, kv, lo,
                           pos + 1, hd_k, hd_v, a.scale, scores);
    };
    m_layers.for_items(n_items, n_keys * a.n_head * (hd_k + hd_v), m_scores.data(), size_t(m_scratch_per_thread), run_item);
}

}  // namespace

Token BatchForward::greedy_token(size_t seq_index) const {
    const auto l = logits(seq_index);
    const size_t n = size_t(model().hparams().n_vocab);
    if (l.size() < n || n == 0) return -1;
    const float * row = l.data() + (l.size() - n);
    return Token(cpu::row_argmax(row, int64_t(n)));
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
