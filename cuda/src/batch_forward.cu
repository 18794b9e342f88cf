// The GPU BatchForward: K/V pages in device memory (F16 or Q8_0, the CPU
// storage's page ids; per layer [n_pages, page_size] slots, batch_kernels.h),
// and one forward pass over a batch of sequences (decode tokens and prefill
// chunks, each at its own positions through its own page table), mirroring
// cuda_context.cu's layer code. Rows are reordered internally: the rows of
// one-token sequences (decodes) come first and run through the matvec kernels
// (up to GB_CUDA_BATCH_MV rows, default 16; their logits up to
// GB_CUDA_BATCH_MV_OUT rows, default 16), the rest through the tensor-core
// GEMM; attention splits each row's keys by the row's own length. So a
// sequence's numbers depend only on its own tokens and on that path choice,
// not on the rest of the batch. A batch of decode rows only (every row on the
// matvec path) is captured once per shape (rows, logit rows) in a CUDA graph
// and replayed: the tokens, positions, slots and page tables travel through
// a device metadata buffer, so a new page table needs no new capture.
#include "batch_kernels.h"
#include "batch_test_api.h"
#include "glassbox/cuda_backend.h"
#include "kernels.h"
#include "upload.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <vector>

namespace gb::cuda {
namespace {

using kv::BatchSeq;
using kv::PageCopy;
using kv::PageId;

constexpr size_t kGemmW16Elems = size_t(32) << 20;  // 64 MiB f16 weight slab
constexpr int    kAttnRowChunk = 256;                // rows per paged-attention launch (bounds the split scratch)

int env_int(const char * name, int def) {
    const char * e = std::getenv(name);
    return e && *e ? std::atoi(e) : def;
}

std::string lname(int il, const char * what) { return "blk." + std::to_string(il) + "." + what; }

class CudaKvStorage final : public kv::KvStorage {
  public:
    explicit CudaKvStorage(const kv::KvShape & s) : kv::KvStorage(s) {}
    void copy(const PageCopy & c) override {
        if (!m_status.ok()) return;
        Status st = page_copy(m_k, m_v, m_shape.n_layer, layer_bytes(), int(slot_bytes()), m_shape.page_size, c.src, c.dst,
                              c.n_tokens, m_stream);
        if (!st.ok()) m_status = st;
    }
    bool q8() const { return m_shape.type == kv::KvType::Q8_0; }
    size_t row_elems() const { return size_t(m_shape.n_head_kv) * size_t(m_shape.head_dim_k); }
    size_t slot_bytes() const { return kv_slot_bytes(q8(), int64_t(row_elems())); }
    size_t layer_bytes() const { return size_t(m_shape.n_pages) * size_t(m_shape.page_size) * slot_bytes(); }
    uint8_t * k_layer(int il) const { return m_k + size_t(il) * layer_bytes(); }
    uint8_t * v_layer(int il) const { return m_v + size_t(il) * layer_bytes(); }

    uint8_t * m_k = nullptr;
    uint8_t * m_v = nullptr;
    cudaStream_t m_stream = nullptr;
    Status m_status;  // first failed copy (reported by the next run())
};

struct Flags {
    bool qkv_bias = false, qk_norm = false, post_norms = false, scale_q = false;
    int  act = 0;  // 0 SiLU, 1 GELU-tanh
};

class CudaBatchForward final : public kv::BatchForward {
  public:
    CudaBatchForward(std::shared_ptr<const Model> model, const kv::BatchForwardParams & p, int device)
        : m_model(std::move(model)), m_hp(m_model->hparams()), m_device(device), m_nb(p.max_batch_tokens),
          m_kv(kv::kv_shape_for(*m_model, p.n_pages, p.page_size, p.kv_type)) {
        m_max_pos = int32_t(std::min<int64_t>(int64_t(p.n_pages) * p.page_size, m_hp.n_ctx_train));
        if (m_hp.arch == Arch::Qwen2) m_flags.qkv_bias = true;
        if (m_hp.arch == Arch::Gemma3) { m_flags.qk_norm = m_flags.post_norms = m_flags.scale_q = true; m_flags.act = 1; }
        m_E = m_hp.n_embd; m_hd = m_hp.head_dim_k; m_F = m_hp.n_ff; m_V = m_hp.n_vocab;
        m_nq = int64_t(m_hp.n_head) * m_hd; m_nkv = int64_t(m_hp.n_head_kv) * m_hd;
        m_mv_max = std::clamp(env_int("GB_CUDA_BATCH_MV", 16), 0, 64);
        m_mv_out_max = std::clamp(env_int("GB_CUDA_BATCH_MV_OUT", 16), 0, 64);
    }
    ~CudaBatchForward() override;
    Status init();

    Status run(std::span<const BatchSeq> seqs, std::span<const PageCopy> copies) override;
    Status run_impl(std::span<const BatchSeq> seqs, std::span<const PageCopy> copies);
    std::span<const float> logits(size_t i) const override {
        if (i >= m_out_first.size() || m_out_first[i] < 0) return {};
        if (!m_logits_on_host) {  // copied on first use: greedy callers never need them
            m_logits_on_host = true;
            cudaSetDevice(m_device);
            if (cudaMemcpy(m_logits_h, m_logits_d, size_t(m_n_out) * size_t(m_V) * sizeof(float), cudaMemcpyDeviceToHost) != cudaSuccess)
                std::fill(m_logits_h, m_logits_h + size_t(m_n_out) * size_t(m_V), NAN);
        }
        return {m_logits_h + size_t(m_out_first[i]) * size_t(m_V), size_t(m_out_count[i]) * size_t(m_V)};
    }
    Token greedy_token(size_t i) const override {
        if (i >= m_out_first.size() || m_out_first[i] < 0) return -1;
        return m_argmax_h[m_out_first[i] + m_out_count[i] - 1];
    }
    const Model & model() const override { return *m_model; }
    kv::KvStorage & storage() override { return m_kv; }
    int32_t max_batch_tokens() const override { return m_nb; }
    int32_t max_positions() const override { return m_max_pos; }

    CudaKvStorage & kv_storage() { return m_kv; }
    cudaStream_t stream() const { return m_stream; }
    int device() const { return m_device; }
    void set_use_graph(bool on) { m_use_graph = on; }
    int graphs_captured() const { return m_graphs_captured; }
    int64_t graph_replays() const { return m_graph_replays; }

  private:
    struct Layer {
        DevMat wq, wk, wv, wo, gate, up, down;
        const float *attn_norm = nullptr, *ffn_norm = nullptr, *bq = nullptr, *bk = nullptr, *bv = nullptr;
        const float *q_norm = nullptr, *k_norm = nullptr, *post_attn = nullptr, *post_ffn = nullptr;
    };
    template <typename T> Result<T *> alloc(size_t n) {
        void * p = nullptr;
        GB_CU(cudaMalloc(&p, std::max<size_t>(n, 1) * sizeof(T)));
        m_allocs.push_back(p);
        return static_cast<T *>(p);
    }
    DeviceAlloc device_alloc() {
        return [this](size_t bytes) -> Result<void *> {
            auto r = alloc<uint8_t>(bytes);
            if (!r) return r.error();
            return static_cast<void *>(*r);
        };
    }
    Result<DevMat> upload_matrix(const std::string & name, int64_t ne0, int64_t ne1, bool required = true);
    Result<const float *> upload_vector(const std::string & name, int64_t n, bool required = true);
    Status upload_rope();
    Status linear(const MatvecJob * jobs, int n_jobs, const float * x, const Q8Act & xq, int n, int mv);
    Status forward(int n, int mv, int n_out, int mv_out);
    int m_n_dec = 0;  // one-token rows of this run (the first rows)
    Status forward_and_argmax(int n, int mv, int n_out, int mv_out);
    Status run_graph(int n, int n_out, int mv_out);
    void drop_graphs();

    std::shared_ptr<const Model> m_model;
    const HParams & m_hp;
    Flags m_flags;
    int m_device;
    int32_t m_nb, m_max_pos = 0;
    int64_t m_E, m_hd, m_F, m_V, m_nq, m_nkv;
    int m_mv_max, m_mv_out_max;
    bool m_fuse_glu = env_int("GB_CUDA_GLU", 1) != 0;
    bool m_use_graph = env_int("GB_CUDA_BATCH_GRAPH", 1) != 0;
    CudaKvStorage m_kv;
    // Captured decode-only steps, key (rows, logit rows, matvec logit rows).
    struct GraphKey {
        int n, n_out, mv_out;
        bool operator<(const GraphKey & o) const {
            return n != o.n ? n < o.n : (n_out != o.n_out ? n_out < o.n_out : mv_out < o.mv_out);
        }
    };
    std::map<GraphKey, cudaGraphExec_t> m_graphs;
    int m_graphs_captured = 0;
    int64_t m_graph_replays = 0;

    std::vector<void *> m_allocs;
    cudaStream_t m_stream = nullptr;
    DevMat m_tok_embd, m_output;
    const float * m_output_norm = nullptr;
    const float * m_inv_freq[2] = {nullptr, nullptr};
    std::vector<Layer> m_layers;

    float *m_x, *m_xn, *m_proj, *m_q, *m_attn, *m_k, *m_v, *m_gate, *m_up, *m_xo;
    float *m_part_acc, *m_part_ml;
    float * m_logits_d = nullptr;   // [m_logits_rows, V], grown on demand
    int64_t m_logits_rows = 0;
    float * m_logits_h = nullptr;   // pinned, same size
    int * m_argmax_d = nullptr;     // [nb] argmax of each logit row
    int * m_argmax_h = nullptr;     // pinned
    int32_t m_n_out = 0;
    bool m_out_identity = false;    // logit row i is batch row i for every i (set by run_impl)
    mutable bool m_logits_on_host = false;
    Q8Act m_q8, m_q8b;
    GemmScratch m_gemm;
    // Per-run metadata: tokens, pos, slot, tab [nb each], out rows [nb], pages.
    int * m_meta_d = nullptr;
    int * m_meta_h = nullptr;       // pinned
    size_t m_meta_cap = 0;
    int *m_tokens_d, *m_pos_d, *m_slot_d, *m_tab_d, *m_outrow_d, *m_pages_d;
    std::vector<int32_t> m_out_first, m_out_count;
    // GB_CUDA_BATCH_PROFILE=1: wall time inside run() (upload, forward, logits copy), printed at destruction
    bool m_profile = env_int("GB_CUDA_BATCH_PROFILE", 0) != 0;
    int64_t m_prof_runs = 0, m_prof_rows = 0, m_prof_out = 0;
    double m_prof_ms = 0.0;
    double m_prof_host_ms = 0.0;  // of which on the host before the final wait (checks, metadata, launches)
    std::chrono::steady_clock::time_point m_prof_wait;
};

CudaBatchForward::~CudaBatchForward() {
    if (m_profile && m_prof_runs > 0)
        std::fprintf(stderr, "cuda batch forward: %lld runs, %lld rows, %lld logit rows, %.1f ms in run() (%.3f ms per run, %.3f before the wait)\n",
                     (long long)m_prof_runs, (long long)m_prof_rows, (long long)m_prof_out, m_prof_ms, m_prof_ms / double(m_prof_runs),
                     m_prof_host_ms / double(m_prof_runs));
    cudaSetDevice(m_device);
    if (m_stream) cudaStreamSynchronize(m_stream);
    drop_graphs();
    if (m_stream) cudaStreamDestroy(m_stream);
    for (void * p : m_allocs) cudaFree(p);
    if (m_logits_d) cudaFree(m_logits_d);
    if (m_logits_h) cudaFreeHost(m_logits_h);
    if (m_meta_h) cudaFreeHost(m_meta_h);
    if (m_argmax_h) cudaFreeHost(m_argmax_h);
}

Result<DevMat> CudaBatchForward::upload_matrix(const std::string & name, int64_t ne0, int64_t ne1, bool required) {
    return gb::cuda::upload_matrix(*m_model, name, ne0, ne1, required, device_alloc());
}

Result<const float *> CudaBatchForward::upload_vector(const std::string & name, int64_t n, bool required) {
    return gb::cuda::upload_vector(*m_model, name, n, required, device_alloc());
}

Status CudaBatchForward::upload_rope() { return gb::cuda::upload_rope(*m_model, m_hd, device_alloc(), m_inv_freq); }

#define GB_ASSIGN(lhs, expr)                   \
    do {                                       \
        auto gb_r_ = (expr);                   \
        if (!gb_r_.ok()) return gb_r_.error(); \
        lhs = *gb_r_;                          \
    } while (0)

Status CudaBatchForward::init() {
    GB_CU(cudaSetDevice(m_device));
    GB_CU(cudaStreamCreateWithFlags(&m_stream, cudaStreamNonBlocking));
    m_kv.m_stream = m_stream;
    GB_ASSIGN(m_tok_embd, upload_matrix("token_embd.weight", m_E, m_V));
    GB_ASSIGN(m_output, upload_matrix("output.weight", m_E, m_V, false));
    if (!m_output.data) m_output = m_tok_embd;
    GB_ASSIGN(m_output_norm, upload_vector("output_norm.weight", m_E));
    GB_TRY_STATUS(upload_rope());
    m_layers.resize(size_t(m_hp.n_layer));
    for (int il = 0; il < m_hp.n_layer; ++il) {
        Layer & l = m_layers[size_t(il)];
        GB_ASSIGN(l.attn_norm, upload_vector(lname(il, "attn_norm.weight"), m_E));
        GB_ASSIGN(l.wq, upload_matrix(lname(il, "attn_q.weight"), m_E, m_nq));
        GB_ASSIGN(l.wk, upload_matrix(lname(il, "attn_k.weight"), m_E, m_nkv));
        GB_ASSIGN(l.wv, upload_matrix(lname(il, "attn_v.weight"), m_E, m_nkv));
        GB_ASSIGN(l.wo, upload_matrix(lname(il, "attn_output.weight"), m_nq, m_E));
        GB_ASSIGN(l.ffn_norm, upload_vector(lname(il, "ffn_norm.weight"), m_E));
        GB_ASSIGN(l.gate, upload_matrix(lname(il, "ffn_gate.weight"), m_E, m_F));
        GB_ASSIGN(l.up, upload_matrix(lname(il, "ffn_up.weight"), m_E, m_F));
        GB_ASSIGN(l.down, upload_matrix(lname(il, "ffn_down.weight"), m_F, m_E));
        if (m_flags.qkv_bias) {
            GB_ASSIGN(l.bq, upload_vector(lname(il, "attn_q.bias"), m_nq));
            GB_ASSIGN(l.bk, upload_vector(lname(il, "attn_k.bias"), m_nkv));
            GB_ASSIGN(l.bv, upload_vector(lname(il, "attn_v.bias"), m_nkv));
        }
        if (m_flags.qk_norm) {
            GB_ASSIGN(l.q_norm, upload_vector(lname(il, "attn_q_norm.weight"), m_hd));
            GB_ASSIGN(l.k_norm, upload_vector(lname(il, "attn_k_norm.weight"), m_hd));
        }
        if (m_flags.post_norms) {
            GB_ASSIGN(l.post_attn, upload_vector(lname(il, "post_attention_norm.weight"), m_E));
            GB_ASSIGN(l.post_ffn, upload_vector(lname(il, "post_ffw_norm.weight"), m_E));
        }
    }
    const size_t kv_bytes = size_t(m_hp.n_layer) * m_kv.layer_bytes();
    GB_ASSIGN(m_kv.m_k, alloc<uint8_t>(kv_bytes));
    GB_ASSIGN(m_kv.m_v, alloc<uint8_t>(kv_bytes));
    const size_t nb = size_t(m_nb);
    GB_ASSIGN(m_x, alloc<float>(nb * m_E));
    GB_ASSIGN(m_xn, alloc<float>(nb * m_E));
    GB_ASSIGN(m_xo, alloc<float>(nb * m_E));
    GB_ASSIGN(m_proj, alloc<float>(nb * m_E));
    GB_ASSIGN(m_q, alloc<float>(nb * m_nq));
    GB_ASSIGN(m_attn, alloc<float>(nb * m_nq));
    GB_ASSIGN(m_k, alloc<float>(nb * m_nkv));
    GB_ASSIGN(m_v, alloc<float>(nb * m_nkv));
    GB_ASSIGN(m_gate, alloc<float>(nb * m_F));
    GB_ASSIGN(m_up, alloc<float>(nb * m_F));
    const size_t mi = nb * size_t(std::max({m_E, m_F, m_nq}));
    GB_ASSIGN(m_q8.q, alloc<int8_t>(mi));
    GB_ASSIGN(m_q8.d, alloc<float>(mi / 32 + 1));
    GB_ASSIGN(m_q8.s, alloc<float>(mi / 16 + 1));
    const size_t mib = size_t(std::max(1, std::min<int>(m_nb, 64))) * size_t(m_F);
    GB_ASSIGN(m_q8b.q, alloc<int8_t>(mib));
    GB_ASSIGN(m_q8b.d, alloc<float>(mib / 32 + 1));
    GB_ASSIGN(m_q8b.s, alloc<float>(mib / 16 + 1));
    const size_t parts = size_t(std::min(m_nb, kAttnRowChunk)) * size_t(m_hp.n_head) * kPagedMaxSplit;
    GB_ASSIGN(m_part_acc, alloc<float>(parts * size_t(m_hd)));
    GB_ASSIGN(m_part_ml, alloc<float>(parts * 2));
    GB_ASSIGN(m_gemm.x16, alloc<__half>(mi));
    m_gemm.w16_elems = kGemmW16Elems;
    GB_ASSIGN(m_gemm.w16, alloc<__half>(kGemmW16Elems));
    // metadata: 5 per-row arrays + the page tables (at most one page per position per row's sequence)
    const int64_t max_pages = (int64_t(m_max_pos) + m_kv.shape().page_size - 1) / m_kv.shape().page_size;
    m_meta_cap = size_t(5) * nb + size_t(std::min<int64_t>(int64_t(nb) * max_pages, int64_t(16) << 20));
    GB_ASSIGN(m_meta_d, alloc<int>(m_meta_cap));
    GB_CU(cudaMallocHost(&m_meta_h, m_meta_cap * sizeof(int)));
    GB_ASSIGN(m_argmax_d, alloc<int>(nb));
    GB_CU(cudaMallocHost(&m_argmax_h, nb * sizeof(int)));
    GB_CU(cudaDeviceSynchronize());
    return {};
}

Status CudaBatchForward::linear(const MatvecJob * jobs, int n_jobs, const float * x, const Q8Act & xq, int n, int mv) {
    if (mv > 0) GB_TRY_STATUS(matvec(jobs, n_jobs, xq, x, mv, m_stream));
    if (n > mv) {
        for (int i = 0; i < n_jobs; ++i) {
            const DevMat & w = jobs[i].w;
            GB_TRY_STATUS(gemm(w, x + int64_t(mv) * w.n_cols, n - mv, jobs[i].y + int64_t(mv) * w.n_rows, jobs[i].bias, m_gemm, m_stream));
        }
    }
    return {};
}

// Rows [0, mv) go through the matvec kernels, [mv, n) through the GEMM; the
// first mv_out of the n_out logit rows through matvec, the others the GEMM.
Status CudaBatchForward::forward(int n, int mv, int n_out, int mv_out) {
    const cudaStream_t s = m_stream;
    const Q8Act q8 = mv > 0 ? m_q8 : Q8Act{};
    const float attn_scale = m_hp.attn_scale > 0.0f ? m_hp.attn_scale : 1.0f / std::sqrt(float(m_hd));
    GB_TRY_STATUS(embed(m_tok_embd, m_tokens_d, n, m_hp.embd_scale, m_x, s));
    const float * pend = nullptr;
    const float * pend_post = nullptr;
    for (int il = 0; il < m_hp.n_layer; ++il) {
        const Layer & l = m_layers[size_t(il)];
        const bool swa = m_hp.layer_is_swa[size_t(il)] && m_hp.sliding_window > 0;
        GB_TRY_STATUS(add_norm(m_x, pend, pend_post, l.attn_norm, m_hp.rms_eps, int(m_E), n, m_xn, q8, s));
        const MatvecJob qkv[3] = {{l.wq, m_q, nullptr}, {l.wk, m_k, nullptr}, {l.wv, m_v, nullptr}};
        GB_TRY_STATUS(linear(qkv, 3, m_xn, q8, n, mv));
        PagedQkv qp{m_q, m_k, m_v, l.bq, l.bk, l.bv, l.q_norm, l.k_norm, m_inv_freq[m_hp.layer_is_swa[size_t(il)] ? 1 : 0],
                    m_hp.rope_style == RopeStyle::Neox, m_flags.scale_q ? attn_scale : 1.0f, m_hp.rms_eps,
                    int(m_hp.n_head), int(m_hp.n_head_kv), int(m_hd), m_kv.k_layer(il), m_kv.v_layer(il), m_pos_d, m_slot_d,
                    int(m_kv.slot_bytes()), m_kv.q8()};
        GB_TRY_STATUS(paged_qkv_post(qp, n, s));
        const bool fuse_q = mv > 0 && m_hd % 32 == 0;
        for (int r0 = 0; r0 < n; r0 += kAttnRowChunk) {
            const int nr = std::min(kAttnRowChunk, n - r0);
            PagedAttn aa{m_q + int64_t(r0) * m_nq, m_kv.k_layer(il), m_kv.v_layer(il), m_pos_d + r0, m_tab_d + r0, m_pages_d,
                         m_kv.shape().page_size, int(m_hp.n_head), int(m_hp.n_head_kv), int(m_hd), swa ? m_hp.sliding_window : 0,
                         m_flags.scale_q ? 1.0f : attn_scale, m_attn + int64_t(r0) * m_nq, m_part_acc, m_part_ml};
            aa.slot_bytes = int(m_kv.slot_bytes());
            aa.kv_q8 = m_kv.q8();
            aa.n_decode_rows = std::max(0, m_n_dec - r0);
            if (fuse_q && r0 < mv) {
                aa.q8 = Q8Act{m_q8.q + int64_t(r0) * m_nq, m_q8.d + int64_t(r0) * m_nq / 32, m_q8.s + int64_t(r0) * m_nq / 16};
                aa.n_q8_rows = mv - r0;
            }
            GB_TRY_STATUS(paged_attention(aa, nr, s));
        }
        if (mv > 0 && !fuse_q) GB_TRY_STATUS(act_quant(m_attn, nullptr, 0, int64_t(mv) * m_nq, q8, s));
        const MatvecJob wo{l.wo, m_proj, nullptr};
        GB_TRY_STATUS(linear(&wo, 1, m_attn, q8, n, mv));
        GB_TRY_STATUS(add_norm(m_x, m_proj, l.post_attn, l.ffn_norm, m_hp.rms_eps, int(m_E), n, m_xn, q8, s));
        const MatvecJob dn{l.down, m_proj, nullptr};
        if (mv > 0) {
            if (m_fuse_glu && matvec_glu_supported(l.gate, l.up)) {
                GB_TRY_STATUS(matvec_glu(l.gate, l.up, m_flags.act, q8, m_xn, mv, m_gate, m_q8b, s));
                GB_TRY_STATUS(matvec(&dn, 1, m_q8b, m_gate, mv, s));
            } else {
                const MatvecJob gu[2] = {{l.gate, m_gate, nullptr}, {l.up, m_up, nullptr}};
                GB_TRY_STATUS(matvec(gu, 2, q8, m_xn, mv, s));
                GB_TRY_STATUS(act_quant(m_gate, m_up, m_flags.act, int64_t(mv) * m_F, q8, s));
                GB_TRY_STATUS(matvec(&dn, 1, q8, m_gate, mv, s));
            }
        }
        if (n > mv) {
            const int64_t o = int64_t(mv);
            GB_TRY_STATUS(gemm(l.gate, m_xn + o * m_E, n - mv, m_gate + o * m_F, nullptr, m_gemm, s));
            GB_TRY_STATUS(gemm(l.up, m_xn + o * m_E, n - mv, m_up + o * m_F, nullptr, m_gemm, s));
            GB_TRY_STATUS(act_quant(m_gate + o * m_F, m_up + o * m_F, m_flags.act, int64_t(n - mv) * m_F, Q8Act{}, s));
            GB_TRY_STATUS(gemm(l.down, m_gate + o * m_F, n - mv, m_proj + o * m_E, nullptr, m_gemm, s));
        }
        pend = m_proj;
        pend_post = l.post_ffn;
    }
    // Every row's logits, in row order, all through the matvec (decode steps):
    // the final norm quantizes for the output matvec itself, no row gather.
    const bool direct = n_out == n && mv_out == n_out && m_out_identity;
    GB_TRY_STATUS(add_norm(m_x, pend, pend_post, m_output_norm, m_hp.rms_eps, int(m_E), n, m_xn, direct ? m_q8 : Q8Act{}, s));
    if (n_out == 0) return {};
    const MatvecJob out{m_output, m_logits_d, nullptr};
    if (direct) {
        GB_TRY_STATUS(matvec(&out, 1, m_q8, m_xn, n_out, s));
        if (m_hp.final_logit_softcap > 0.0f) GB_TRY_STATUS(softcap(m_logits_d, int64_t(n_out) * m_V, m_hp.final_logit_softcap, s));
        return {};
    }
    GB_TRY_STATUS(gather_rows(m_xn, m_outrow_d, n_out, int(m_E), m_xo, s));
    if (mv_out > 0) {
        GB_TRY_STATUS(act_quant(m_xo, nullptr, 0, int64_t(mv_out) * m_E, m_q8, s));
        GB_TRY_STATUS(matvec(&out, 1, m_q8, m_xo, mv_out, s));
    }
    if (n_out > mv_out)
        GB_TRY_STATUS(gemm(m_output, m_xo + int64_t(mv_out) * m_E, n_out - mv_out, m_logits_d + int64_t(mv_out) * m_V, nullptr, m_gemm, s));
    if (m_hp.final_logit_softcap > 0.0f) GB_TRY_STATUS(softcap(m_logits_d, int64_t(n_out) * m_V, m_hp.final_logit_softcap, s));
    return {};
}

Status CudaBatchForward::run(std::span<const BatchSeq> seqs, std::span<const PageCopy> copies) {
    if (!m_profile) return run_impl(seqs, copies);
    const auto t0 = std::chrono::steady_clock::now();
    m_prof_wait = t0;
    Status st = run_impl(seqs, copies);
    m_prof_ms += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    m_prof_host_ms += std::chrono::duration<double, std::milli>(m_prof_wait - t0).count();
    ++m_prof_runs;
    for (const BatchSeq & q : seqs) {
        m_prof_rows += int64_t(q.tokens.size());
        m_prof_out += q.all_logits ? int64_t(q.tokens.size()) : (q.logits ? 1 : 0);
    }
    return st;
}

Status CudaBatchForward::run_impl(std::span<const BatchSeq> seqs, std::span<const PageCopy> copies) {
    const int32_t ps = m_kv.shape().page_size;
    const int32_t n_pages = m_kv.shape().n_pages;
    GB_TRY_STATUS(m_kv.m_status);
    // Validate everything before touching the cache (as the CPU BatchForward).
    int64_t n = 0, n_out = 0, n_tab = 0;
    for (size_t s = 0; s < seqs.size(); ++s) {
        const BatchSeq & q = seqs[s];
        const auto where = [s] { return "batch sequence " + std::to_string(s) + ": "; };  // built only on error
        if (q.tokens.empty()) return make_error(ErrorCode::InvalidArgument, where() + "no tokens");
        const int64_t end = int64_t(q.first_pos) + int64_t(q.tokens.size());
        if (q.first_pos < 0 || end > m_max_pos)
            return make_error(ErrorCode::OutOfRange, where() + "positions " + std::to_string(q.first_pos) + ".." + std::to_string(end - 1) +
                                                         " outside [0, " + std::to_string(m_max_pos) + ")");
        if (int64_t(q.pages.size()) * ps < end)
            return make_error(ErrorCode::InvalidArgument, where() + std::to_string(q.pages.size()) + " pages do not hold " +
                                                              std::to_string(end) + " positions");
        const int64_t np = (end + ps - 1) / ps;
        for (int64_t p = 0; p < np; ++p) {
            if (q.pages[p] < 0 || q.pages[p] >= n_pages)
                return make_error(ErrorCode::InvalidArgument, where() + "page id " + std::to_string(q.pages[p]) + " out of range");
        }
        for (size_t i = 0; i < q.tokens.size(); ++i) {
            if (q.tokens[i] < 0 || q.tokens[i] >= m_hp.n_vocab)
                return make_error(ErrorCode::InvalidArgument, where() + "token " + std::to_string(q.tokens[i]) + " outside the vocabulary");
        }
        n += int64_t(q.tokens.size());
        n_out += q.all_logits ? int64_t(q.tokens.size()) : (q.logits ? 1 : 0);
        n_tab += np;
    }
    if (n > m_nb)
        return make_error(ErrorCode::OutOfRange, "batch of " + std::to_string(n) + " tokens exceeds max_batch_tokens " + std::to_string(m_nb));
    if (size_t(5 * m_nb + n_tab) > m_meta_cap)
        return make_error(ErrorCode::OutOfRange, "CUDA batch: page tables of " + std::to_string(n_tab) + " pages exceed the metadata buffer");
    for (const PageCopy & c : copies) {
        if (c.src < 0 || c.src >= n_pages || c.dst < 0 || c.dst >= n_pages || c.n_tokens < 0 || c.n_tokens > ps)
            return make_error(ErrorCode::InvalidArgument, "page copy " + std::to_string(c.src) + " -> " + std::to_string(c.dst) + " out of range");
    }
    GB_CU(cudaSetDevice(m_device));
    for (const PageCopy & c : copies) m_kv.copy(c);
    GB_TRY_STATUS(m_kv.m_status);
    m_out_first.assign(seqs.size(), -1);
    m_out_count.assign(seqs.size(), 0);
    m_n_out = 0;
    if (n == 0) {
        GB_CU(cudaStreamSynchronize(m_stream));
        return {};
    }
    if (n_out > m_logits_rows) {
        GB_CU(cudaStreamSynchronize(m_stream));
        drop_graphs();  // they hold the old logits buffer
        if (m_logits_d) { GB_CU(cudaFree(m_logits_d)); m_logits_d = nullptr; }
        if (m_logits_h) { GB_CU(cudaFreeHost(m_logits_h)); m_logits_h = nullptr; }
        m_logits_rows = 0;
        GB_CU(cudaMalloc(&m_logits_d, size_t(n_out) * size_t(m_V) * sizeof(float)));
        GB_CU(cudaMallocHost(&m_logits_h, size_t(n_out) * size_t(m_V) * sizeof(float)));
        m_logits_rows = n_out;
    }

    // Row order: one-token sequences first (in batch order), then the others.
    std::vector<int32_t> order;
    order.reserve(seqs.size());
    for (size_t s = 0; s < seqs.size(); ++s) if (seqs[s].tokens.size() == 1) order.push_back(int32_t(s));
    const int n_dec = int(order.size());
    m_n_dec = n_dec;
    for (size_t s = 0; s < seqs.size(); ++s) if (seqs[s].tokens.size() != 1) order.push_back(int32_t(s));
    const int mv = n_dec <= m_mv_max ? n_dec : 0;

    const size_t nb = size_t(m_nb);
    int * tokens = m_meta_h;
    int * pos = m_meta_h + nb;
    int * slot = m_meta_h + 2 * nb;
    int * tab = m_meta_h + 3 * nb;
    int * outrow = m_meta_h + 4 * nb;
    int * pages = m_meta_h + 5 * nb;
    int row = 0, n_o = 0, mv_out = 0, tab_n = 0;
    for (int32_t s : order) {
        const BatchSeq & q = seqs[size_t(s)];
        const int32_t nt = int32_t(q.tokens.size());
        const int32_t np = (q.first_pos + nt + ps - 1) / ps;
        for (int32_t p = 0; p < np; ++p) pages[tab_n + p] = q.pages[size_t(p)];
        if (q.all_logits || q.logits) {
            m_out_first[size_t(s)] = n_o;
            m_out_count[size_t(s)] = q.all_logits ? nt : 1;
        }
        for (int32_t i = 0; i < nt; ++i, ++row) {
            const int32_t p = q.first_pos + i;
            tokens[row] = q.tokens[size_t(i)];
            pos[row] = p;
            slot[row] = q.pages[size_t(p / ps)] * ps + p % ps;
            tab[row] = tab_n;
            if (q.all_logits || (q.logits && i == nt - 1)) {
                outrow[n_o++] = row;
                if (row < mv) ++mv_out;
            }
        }
        tab_n += np;
    }
    if (mv_out > m_mv_out_max) mv_out = 0;
    m_out_identity = n_o == int(n);
    for (int i = 0; m_out_identity && i < n_o; ++i) m_out_identity = outrow[i] == i;
    m_tokens_d = m_meta_d;
    m_pos_d = m_meta_d + nb;
    m_slot_d = m_meta_d + 2 * nb;
    m_tab_d = m_meta_d + 3 * nb;
    m_outrow_d = m_meta_d + 4 * nb;
    m_pages_d = m_meta_d + 5 * nb;
    GB_CU(cudaMemcpyAsync(m_meta_d, m_meta_h, (5 * nb + size_t(tab_n)) * sizeof(int), cudaMemcpyHostToDevice, m_stream));
    m_n_out = n_o;
    m_logits_on_host = false;
    if (m_use_graph && mv == int(n))  // decode rows only, all on the matvec path
        GB_TRY_STATUS(run_graph(int(n), n_o, mv_out));
    else
        GB_TRY_STATUS(forward_and_argmax(int(n), mv, n_o, mv_out));
    if (m_profile) m_prof_wait = std::chrono::steady_clock::now();
    GB_CU(cudaStreamSynchronize(m_stream));
    return {};
}

Status CudaBatchForward::forward_and_argmax(int n, int mv, int n_out, int mv_out) {
    GB_TRY_STATUS(forward(n, mv, n_out, mv_out));
    if (n_out > 0) {
        GB_TRY_STATUS(argmax_rows(m_logits_d, int(m_V), n_out, m_argmax_d, m_stream));
        GB_CU(cudaMemcpyAsync(m_argmax_h, m_argmax_d, size_t(n_out) * sizeof(int), cudaMemcpyDeviceToHost, m_stream));
    }
    return {};
}

// The forward pass of n decode rows as a graph: every launch reads its
// per-step data (tokens, positions, slots, page tables) from m_meta_d, which
// run_impl refreshed on the stream just before, so one capture per shape serves
// every later step of that shape. A failed capture falls back to the eager path.
Status CudaBatchForward::run_graph(int n, int n_out, int mv_out) {
    const GraphKey key{n, n_out, mv_out};
    auto it = m_graphs.find(key);
    if (it == m_graphs.end()) {
        GB_CU(cudaStreamBeginCapture(m_stream, cudaStreamCaptureModeThreadLocal));
        Status st = forward_and_argmax(n, n, n_out, mv_out);
        cudaGraph_t g = nullptr;
        const cudaError_t e = cudaStreamEndCapture(m_stream, &g);
        if (!st.ok() || e != cudaSuccess) {
            if (g) cudaGraphDestroy(g);
            (void)cudaGetLastError();
            if (!st.ok()) return st;
            GB_CU(e);
        }
        cudaGraphExec_t exec = nullptr;
        const cudaError_t ie = cudaGraphInstantiate(&exec, g, 0);
        cudaGraphDestroy(g);
        GB_CU(ie);
        it = m_graphs.emplace(key, exec).first;
        ++m_graphs_captured;
    }
    GB_CU(cudaGraphLaunch(it->second, m_stream));
    ++m_graph_replays;
    return {};
}

void CudaBatchForward::drop_graphs() {
    for (auto & [k, g] : m_graphs) cudaGraphExecDestroy(g);
    m_graphs.clear();
}

}  // namespace

Result<std::unique_ptr<kv::BatchForward>> create_batch_forward(std::shared_ptr<const Model> model, const kv::BatchForwardParams & params,
                                                               int32_t device) {
    if (!model) return make_error(ErrorCode::InvalidArgument, "CUDA create_batch_forward: no model");
    if (params.max_batch_tokens < 1) return make_error(ErrorCode::InvalidArgument, "max_batch_tokens must be positive");
    if (params.n_pages < 1 || params.page_size < 1) return make_error(ErrorCode::InvalidArgument, "n_pages and page_size must be positive");
    const DeviceReport rep = probe();
    if (!rep.available) return make_error(ErrorCode::Unsupported, rep.message);
    const HParams & hp = model->hparams();
    if (hp.head_dim_k != hp.head_dim_v || hp.head_dim_k > 256 || hp.n_embd % 32 != 0 || hp.n_ff % 32 != 0 ||
        (int64_t(hp.n_head) * hp.head_dim_k) % 32 != 0 || hp.n_head % hp.n_head_kv != 0)
        return make_error(ErrorCode::Unsupported, "CUDA: this model's shapes are not supported (head size over 256, K/V head sizes differ, or widths not multiples of 32)");
    if (params.kv_type == kv::KvType::Q8_0 && hp.head_dim_k % 32 != 0)
        return make_error(ErrorCode::Unsupported, "CUDA: a Q8_0 KV cache needs a head size that is a multiple of 32 (this model's is " +
                                                      std::to_string(hp.head_dim_k) + "); use F16");
    auto f = std::make_unique<CudaBatchForward>(std::move(model), params, device);
    GB_TRY_STATUS(f->init());
    return std::unique_ptr<kv::BatchForward>(std::move(f));
}

// ---- test hooks ------------------------------------------------------------------
namespace testing {

namespace {
template <typename T> struct DevBuf {
    T * p = nullptr;
    ~DevBuf() { if (p) cudaFree(p); }
    Status alloc(size_t n) { GB_CU(cudaMalloc(&p, std::max<size_t>(n, 1) * sizeof(T))); return {}; }
};

// x [n] (n % 32 == 0) -> Q8_0 by quantize_row_q8_0_ref's rule: q [n], d [n / 32].
void quantize_q8_host(const float * x, int64_t n, int8_t * q, __half * d) {
    for (int64_t b = 0; b < n / 32; ++b) {
        float amax = 0.0f;
        for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[b * 32 + j]));
        const float dd = amax / 127;
        const float id = dd != 0.0f ? 1.0f / dd : 0.0f;
        d[b] = __float2half_rn(dd);
        for (int j = 0; j < 32; ++j) q[b * 32 + j] = static_cast<int8_t>(std::round(x[b * 32 + j] * id));
    }
}

// f32 rows of n_kv values -> device slots (F16 or Q8_0) of slot_bytes.
std::vector<uint8_t> pack_slots(const std::vector<float> & x, int64_t n_kv, bool q8) {
    const size_t sb = kv_slot_bytes(q8, n_kv);
    const size_t n_slots = x.size() / size_t(n_kv);
    std::vector<uint8_t> out(n_slots * sb, 0);
    for (size_t r = 0; r < n_slots; ++r) {
        uint8_t * dst = out.data() + r * sb;
        const float * src = x.data() + r * size_t(n_kv);
        if (q8) {
            quantize_q8_host(src, n_kv, reinterpret_cast<int8_t *>(dst), reinterpret_cast<__half *>(dst + n_kv));
        } else {
            for (int64_t i = 0; i < n_kv; ++i) reinterpret_cast<__half *>(dst)[i] = __float2half_rn(src[i]);
        }
    }
    return out;
}

std::vector<float> unpack_slots(const std::vector<uint8_t> & b, int64_t n_kv, bool q8) {
    const size_t sb = kv_slot_bytes(q8, n_kv);
    const size_t n_slots = b.size() / sb;
    std::vector<float> out(n_slots * size_t(n_kv));
    for (size_t r = 0; r < n_slots; ++r) {
        const uint8_t * src = b.data() + r * sb;
        for (int64_t i = 0; i < n_kv; ++i) {
            out[r * size_t(n_kv) + size_t(i)] =
                q8 ? float(reinterpret_cast<const int8_t *>(src)[i]) * __half2float(reinterpret_cast<const __half *>(src + n_kv)[i / 32])
                   : __half2float(reinterpret_cast<const __half *>(src)[i]);
        }
    }
    return out;
}

}  // namespace

Result<std::vector<float>> paged_attention(const PagedAttnIn & in, std::vector<float> * q8_out) {
    const int n_tok = int(in.pos.size());
    const size_t n_q = size_t(in.n_head) * in.hd;
    const int64_t n_kv = int64_t(in.n_head_kv) * in.hd;
    if (in.kv_q8 && in.hd % 32 != 0) return make_error(ErrorCode::InvalidArgument, "paged_attention hook: Q8_0 needs hd % 32 == 0");
    const std::vector<uint8_t> kh = pack_slots(in.k, n_kv, in.kv_q8), vh = pack_slots(in.v, n_kv, in.kv_q8);
    DevBuf<float> q, out, acc, ml, q8d, q8s;
    DevBuf<uint8_t> k, v;
    DevBuf<int> pos, tab, pages;
    DevBuf<int8_t> q8q;
    const size_t parts = size_t(n_tok) * in.n_head * kPagedMaxSplit;
    GB_TRY_STATUS(q.alloc(in.q.size()));
    GB_TRY_STATUS(out.alloc(size_t(n_tok) * n_q));
    GB_TRY_STATUS(acc.alloc(parts * in.hd));
    GB_TRY_STATUS(ml.alloc(parts * 2));
    GB_TRY_STATUS(k.alloc(kh.size()));
    GB_TRY_STATUS(v.alloc(vh.size()));
    GB_TRY_STATUS(pos.alloc(in.pos.size()));
    GB_TRY_STATUS(tab.alloc(in.tab.size()));
    GB_TRY_STATUS(pages.alloc(in.pages.size()));
    GB_TRY_STATUS(q8q.alloc(size_t(n_tok) * n_q));
    GB_TRY_STATUS(q8d.alloc(size_t(n_tok) * n_q / 32 + 1));
    GB_TRY_STATUS(q8s.alloc(size_t(n_tok) * n_q / 16 + 1));
    GB_CU(cudaMemcpy(q.p, in.q.data(), in.q.size() * 4, cudaMemcpyHostToDevice));
    GB_CU(cudaMemcpy(k.p, kh.data(), kh.size(), cudaMemcpyHostToDevice));
    GB_CU(cudaMemcpy(v.p, vh.data(), vh.size(), cudaMemcpyHostToDevice));
    GB_CU(cudaMemcpy(pos.p, in.pos.data(), in.pos.size() * 4, cudaMemcpyHostToDevice));
    GB_CU(cudaMemcpy(tab.p, in.tab.data(), in.tab.size() * 4, cudaMemcpyHostToDevice));
    GB_CU(cudaMemcpy(pages.p, in.pages.data(), in.pages.size() * 4, cudaMemcpyHostToDevice));
    GB_CU(cudaMemset(out.p, 0xff, size_t(n_tok) * n_q * 4));  // NaN poison
    GB_CU(cudaMemset(acc.p, 0xff, parts * in.hd * 4));
    GB_CU(cudaMemset(ml.p, 0xff, parts * 2 * 4));
    GB_CU(cudaMemset(q8d.p, 0xff, (size_t(n_tok) * n_q / 32 + 1) * 4));
    PagedAttn a{q.p, k.p, v.p, pos.p, tab.p, pages.p, in.page_size, in.n_head, in.n_head_kv, in.hd, in.window, in.scale, out.p, acc.p, ml.p};
    a.slot_bytes = int(kv_slot_bytes(in.kv_q8, n_kv));
    a.kv_q8 = in.kv_q8;
    a.n_decode_rows = in.decode_rows;
    if (in.q8_rows > 0) {
        a.q8 = Q8Act{q8q.p, q8d.p, q8s.p};
        a.n_q8_rows = in.q8_rows;
    }
    GB_TRY_STATUS(gb::cuda::paged_attention(a, n_tok, nullptr));
    GB_CU(cudaDeviceSynchronize());
    std::vector<float> res(size_t(n_tok) * n_q);
    GB_CU(cudaMemcpy(res.data(), out.p, res.size() * 4, cudaMemcpyDeviceToHost));
    if (q8_out && in.q8_rows > 0) {
        const size_t nv = size_t(in.q8_rows) * n_q;
        std::vector<int8_t> qq(nv);
        std::vector<float> dd(nv / 32);
        GB_CU(cudaMemcpy(qq.data(), q8q.p, nv, cudaMemcpyDeviceToHost));
        GB_CU(cudaMemcpy(dd.data(), q8d.p, dd.size() * 4, cudaMemcpyDeviceToHost));
        q8_out->resize(nv);
        for (size_t i = 0; i < nv; ++i) (*q8_out)[i] = float(qq[i]) * dd[i / 32];
    }
    return res;
}

namespace {
Result<uint8_t *> page_ptr(kv::BatchForward & f, int il, bool v, kv::PageId page, size_t * bytes, CudaBatchForward ** out) {
    auto * c = dynamic_cast<CudaBatchForward *>(&f);
    if (!c) return make_error(ErrorCode::InvalidArgument, "kv_page: not a CUDA BatchForward");
    const kv::KvShape & sh = c->kv_storage().shape();
    if (il < 0 || il >= sh.n_layer || page < 0 || page >= sh.n_pages) return make_error(ErrorCode::OutOfRange, "kv_page: layer or page out of range");
    *bytes = size_t(sh.page_size) * c->kv_storage().slot_bytes();
    *out = c;
    uint8_t * base = v ? c->kv_storage().v_layer(il) : c->kv_storage().k_layer(il);
    return base + size_t(page) * *bytes;
}
}  // namespace

Result<std::vector<float>> kv_page(kv::BatchForward & f, int il, bool v, kv::PageId page) {
    size_t n = 0;
    CudaBatchForward * c = nullptr;
    auto p = page_ptr(f, il, v, page, &n, &c);
    if (!p) return p.error();
    GB_CU(cudaSetDevice(c->device()));
    GB_CU(cudaStreamSynchronize(c->stream()));
    std::vector<uint8_t> h(n);
    GB_CU(cudaMemcpy(h.data(), *p, n, cudaMemcpyDeviceToHost));
    return unpack_slots(h, int64_t(c->kv_storage().row_elems()), c->kv_storage().q8());
}

Status set_kv_page(kv::BatchForward & f, int il, bool v, kv::PageId page, const std::vector<float> & values) {
    size_t n = 0;
    CudaBatchForward * c = nullptr;
    auto p = page_ptr(f, il, v, page, &n, &c);
    if (!p) return p.error();
    const size_t n_kv = c->kv_storage().row_elems();
    if (values.size() != size_t(c->kv_storage().shape().page_size) * n_kv) return make_error(ErrorCode::InvalidArgument, "set_kv_page: wrong size");
    const std::vector<uint8_t> h = pack_slots(values, int64_t(n_kv), c->kv_storage().q8());
    GB_CU(cudaSetDevice(c->device()));
    GB_CU(cudaStreamSynchronize(c->stream()));
    GB_CU(cudaMemcpy(*p, h.data(), n, cudaMemcpyHostToDevice));
    return {};
}

Status set_use_graph(kv::BatchForward & f, bool on) {
    auto * c = dynamic_cast<CudaBatchForward *>(&f);
    if (!c) return make_error(ErrorCode::InvalidArgument, "set_use_graph: not a CUDA BatchForward");
    c->set_use_graph(on);
    return {};
}

Result<GraphStats> graph_stats(const kv::BatchForward & f) {
    auto * c = dynamic_cast<const CudaBatchForward *>(&f);
    if (!c) return make_error(ErrorCode::InvalidArgument, "graph_stats: not a CUDA BatchForward");
    return GraphStats{c->graphs_captured(), c->graph_replays()};
}

}  // namespace testing
}  // namespace gb::cuda
