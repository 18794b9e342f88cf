// The optimized CPU forward pass for one sequence: the layers of layer_cpu.h
// (matmuls on all chunk tokens at once) with attention over the sequence's
// contiguous KV cache parallelized over heads, final norm and logits. Buffers
// are allocated once in create(); decode() allocates nothing unless all_logits needs more room.
#include "arch/arch.h"
#include "context_hidden.h"  // [cuda]
#include "cpu/matmul.h"
#include "cpu/thread_pool.h"
#include "forward_ops.h"
#include "kv/paged_attention.h"  // [kv]
#include "layer_cpu.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <numeric>
#include <new>
#include <thread>

namespace gb {
namespace {

class ContextImpl final : public Context, private layer::KvAttention {
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

    // [quantlab] calibration hook (ContextParams::matmul_observer)
    void set_observer(decltype(ContextParams::matmul_observer) observer) { m_layers.observer = std::move(observer); }

  private:
    // Runs n tokens at positions [m_n_past, m_n_past + n); writes logits of
    // the last n_out tokens (0, 1 or n) to logits_out ([n_out, n_vocab]).
    Status run_chunk(const Token * tokens, int32_t n, int32_t n_out, float * logits_out, const std::atomic<bool> * cancel);
    // layer::KvAttention: row t's K/V at cache row m_n_past + t (pages in order)
    layer::KvSlot kv_slot(int32_t t) const override { return {m_kv_pages.data(), m_n_past + t}; }
    void attend(int il, std::span<const int32_t> rows, const float * q, float * attn) override;

    // [spec] The pending token tree (m_tree_n > 0 after decode_tree()): node t
    // is at position m_tree_pos[t]; the cache rows of positions m_n_past ..
    // m_tree_pos[t] on its root path are m_tree_rows[t * m_tree_stride + ...].
    // The layers' x keeps the nodes' last hidden states until tree_logits().
    bool    m_tree_active = false;  // run_chunk() is running a tree
    int32_t m_chunk_n = 0;          // rows of the chunk run_chunk() is running
    const float * m_hidden_in = nullptr;  // [cuda] run_chunk() starts from these rows, not embeddings
    int32_t m_tree_n = 0, m_tree_stride = 0;
    std::vector<int32_t> m_tree_parent, m_tree_pos, m_tree_rows;
    std::vector<bool>    m_skip;           // [n_layer] layers not run (ContextParams::skip_layers)
    int                  m_last_layer = 0; // last layer that runs

    std::shared_ptr<const Model> m_model;
    const HParams &              m_hp;
    int32_t m_n_ctx, m_n_batch, m_n_past = 0;
    std::unique_ptr<cpu::ThreadPool> m_pool;
    layer::CpuLayers             m_layers;
    std::vector<int32_t>         m_all_rows;  // 0, 1, ..., n_batch - 1
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
    : m_model(std::move(model)), m_hp(m_model->hparams()), m_n_ctx(n_ctx),
      m_n_batch(n_batch), m_pool(std::make_unique<cpu::ThreadPool>(n_threads)), m_layers(*m_model, *m_pool) {
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
        m_layers.allocate(m_n_batch);
        m_all_rows.resize(size_t(m_n_batch));
        std::iota(m_all_rows.begin(), m_all_rows.end(), 0);
        m_scores.resize(size_t(m_pool->size()) * size_t(ops::attend_scratch_floats(m_n_ctx, m_hp.head_dim_k, m_hp.head_dim_v)));
        m_logits.resize(size_t(m_hp.n_vocab));
    } catch (const std::bad_alloc &) {
        return make_error(ErrorCode::OutOfMemory, "cannot allocate a context of " + std::to_string(m_n_ctx) + " tokens");
    }
    return {};
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
    auto cancelled = [&] { return cancel && cancel->load(std::memory_order_relaxed); };
    if (cancelled()) return make_error(ErrorCode::Cancelled, "decode cancelled");

    m_chunk_n = n;
    m_layers.embed(tokens, m_hidden_in, n);
    // RoPE tables for this chunk's positions; a tree's rows have their own positions (depth).
    if (m_tree_active) {
        for (int32_t t = 0; t < n; ++t) m_layers.rope_rows(t, m_tree_pos[size_t(t)], 1);
    } else {
        m_layers.rope_rows(0, m_n_past, n);
    }

    const std::span<const int32_t> all_rows = std::span<const int32_t>(m_all_rows).first(size_t(n));
    for (int il = 0; il < m_hp.n_layer; ++il) {
        if (cancelled()) return make_error(ErrorCode::Cancelled, "decode cancelled");
        if (m_skip[size_t(il)]) continue;  // [spec] self-draft: the residual passes through
        // The last layer only needs the rows whose logits are wanted (the last n_out).
        m_layers.block(il, n, il == m_last_layer ? all_rows.last(size_t(n_out)) : all_rows, *m_kv, *this);
    }
    if (n_out == 0 || m_tree_active) return {};
    m_layers.output(n_out, nullptr, logits_out);
    return {};
}

void ContextImpl::attend(int il, std::span<const int32_t> rows, const float * q, float * attn) {
    const layer::LayerAttn a = m_layers.attn_of(il);
    const int32_t n_head = a.n_head, hd_k = a.hd_k, hd_v = a.hd_v;
    const int64_t n_q = m_layers.n_q(), n_o = m_layers.n_o();
    const int64_t n_k = int64_t(a.n_head_kv) * hd_k, n_v = int64_t(a.n_head_kv) * hd_v;
    const uint16_t * k_layer = reinterpret_cast<const uint16_t *>(m_kv->k_layer(il));
    const uint16_t * v_layer = reinterpret_cast<const uint16_t *>(m_kv->v_layer(il));
    const bool q8 = m_kv->shape().type == kv::KvType::Q8_0;
    const int32_t n = m_chunk_n;

    // One item = (query row, head). out[r, h] = softmax(q k^T * scale) v
    // over keys [lo, pos]; lo = pos - window + 1 for sliding-window layers.
    // A decode step sums attention's F16 products in llama.cpp's one-token
    // order only in its numerics mode; otherwise in the batch order, so that
    // results do not depend on how tokens are batched.
    const bool one_query = n == 1 && cpu::llamacpp_order();
    const int64_t n_items = int64_t(rows.size()) * n_head;
    auto run_item = [&](int64_t item, float * scores) {
        const int32_t r   = int32_t(item / n_head);
        const int32_t t   = rows[size_t(r)];
        const int32_t h   = int32_t(item % n_head);
        const int32_t g   = h / a.group;
        const int32_t pos = m_tree_active ? m_tree_pos[size_t(t)] : m_n_past + t;
        const int32_t lo  = a.first_key(pos);
        float * out       = attn + int64_t(r) * n_o + int64_t(h) * hd_v;
        const float * qh  = q + int64_t(t) * n_q + int64_t(h) * hd_k;
        if (q8) {  // [kv] through the identity page table
            kv::attend_paged(out, qh, kv::paged_head(*m_kv, il, g, m_kv_pages.data()), lo, pos + 1, hd_k, hd_v, a.scale, scores);
            return;
        }
        if (m_tree_active) {  // committed rows, then the node's root path (scattered rows)
            ops::attend_mapped(out, qh, k_layer + int64_t(g) * hd_k, n_k, v_layer + int64_t(g) * hd_v, n_v, lo, pos + 1, m_n_past,
                               m_tree_rows.data() + size_t(t) * size_t(m_tree_stride), hd_k, hd_v, a.scale, false, scores);
            return;
        }
        ops::attend(out, qh, k_layer + int64_t(g) * hd_k, n_k, v_layer + int64_t(g) * hd_v, n_v, lo, pos + 1, hd_k, hd_v, a.scale,
                    one_query, scores);
    };
    m_layers.for_items(n_items, n_items * int64_t(m_n_past + n) * (hd_k + hd_v), m_scores.data(),
                       size_t(ops::attend_scratch_floats(m_n_ctx, m_hp.head_dim_k, m_hp.head_dim_v)), run_item);
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
    m_layers.output(n_out, nodes.data(), m_logits.data());  // rows of x: the nodes' last hidden states
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
    ctx->set_observer(params.matmul_observer);  // [quantlab]
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
