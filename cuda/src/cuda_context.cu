// The GPU Context: weights uploaded once in their quantized formats (device
// layout, see DevMat), an f16 KV cache, and the forward pass of llama / qwen2
// / gemma3 mirroring engine/src/context.cpp. Up to kMatvecMaxTok tokens run
// through the matvec kernels (decode), more through the tensor-core GEMM
// (prefill). The single-token step is captured once in a CUDA graph; token
// ids and the position travel through pinned host buffers, so the graph is
// replayed unchanged at every position.
// Partial offload (n_gpu_layers < n_layer): the embedding and the first
// layers run here; the hidden state goes through a pinned host buffer to a
// CPU Context (host KV cache) that runs the other layers and the head.
// [spec] Token trees (decode_tree): every node in one pass, rotated at its
// depth, attending to the committed K/V plus its ancestors (ancestor row
// lists, attention.cu); commit_tree compacts the accepted path's K/V. Up to
// kMatvecMaxTok (32) tokens go through the decode step's own matvec kernels
// (one token per grid row), so each node gets the bits of a one-token step
// and verifying a tree gives plain decoding's greedy tokens. (A matvec that
// reads the weights once for up to 8 tokens measured slower on an H200 than
// these kernels at every n >= 2: bench/NOTES.md.) A tree's forward graph and
// its head graph run back to back with one synchronisation; every such graph is
// captured when the context is made (precapture()), not inside a reply.
// ContextParams::skip_layers (self-draft) skips layers in the forward pass.
#include "glassbox/cuda_backend.h"
#include "context_hidden.h"  // engine/src: the CPU Context fed hidden states
#include "kernels.h"
#include "upload.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace gb::cuda {
namespace {

constexpr int kMatvecMaxTok = 32;  // verification trees up to 32 nodes: bit-identical to decode steps (more: GEMM)
constexpr size_t kGemmW16Elems = size_t(32) << 20;  // 64 MiB of f16 weight slab
constexpr uint64_t kMargin = uint64_t(512) << 20;   // kept free for the runtime, graphs, fragmentation

struct Flags {
    bool qkv_bias = false, qk_norm = false, post_norms = false, scale_q = false;
    int  act = 0;  // 0 SiLU, 1 GELU-tanh
};
Flags flags_of(Arch a) {
    Flags f;
    if (a == Arch::Qwen2) f.qkv_bias = true;
    if (a == Arch::Gemma3) { f.qk_norm = f.post_norms = f.scale_q = true; f.act = 1; }
    return f;
}

std::string layer_name(int il, const char * what) { return "blk." + std::to_string(il) + "." + what; }

// Sizes of one context's device buffers.
struct Dims {
    int64_t E, n_q, n_kv, F, V, hd, nb, n_ctx, n_layer, n_head, n_head_kv;
    int     dec_split;
    int64_t max_in() const { return std::max({E, F, n_q}); }
};
Dims dims_of(const HParams & hp, int32_t n_ctx, int32_t n_batch) {
    Dims d{};
    d.E = hp.n_embd; d.hd = hp.head_dim_k; d.n_head = hp.n_head; d.n_head_kv = hp.n_head_kv;
    d.n_q = int64_t(hp.n_head) * hp.head_dim_k; d.n_kv = int64_t(hp.n_head_kv) * hp.head_dim_k;
    d.F = hp.n_ff; d.V = hp.n_vocab; d.nb = n_batch; d.n_ctx = n_ctx; d.n_layer = hp.n_layer;
    d.dec_split = int(std::clamp<int64_t>(n_ctx / 128, 1, 32));
    return d;
}
uint64_t scratch_bytes(const Dims & d, bool head_on_gpu = true) {
    const uint64_t f = 4;
    uint64_t b = 0;
    b += f * d.nb * (3 * d.E + 2 * d.n_q + 2 * d.n_kv + 2 * d.F);  // x xn proj q attn k v gate up
    if (head_on_gpu) b += f * d.nb * d.V;                           // logits
    b += uint64_t(d.nb) * d.max_in() * (2 + 4 / 32.0 + 4 / 16.0) + 64;  // q8 (two planes)
    b += uint64_t(kMatvecMaxTok) * std::max(d.F, d.E) * (2 + 4 / 32.0 + 4 / 16.0) + 64;  // second q8 (decode gate/up output; tree head rows)
    const int64_t parts = std::max<int64_t>(d.nb * d.n_head, int64_t(kMatvecMaxTok) * d.n_head * d.dec_split);
    b += f * parts * (d.hd + 2);
    b += 2 * uint64_t(d.nb) * d.max_in() + 2 * kGemmW16Elems;
    return b;
}

const char * kLayerMatrices[] = {"attn_q.weight", "attn_k.weight", "attn_v.weight", "attn_output.weight",
                                 "ffn_gate.weight", "ffn_up.weight", "ffn_down.weight"};

uint64_t matrix_bytes(const gguf::TensorInfo * t) {
    if (!t) return 0;
    const DevMat m = dev_layout(t->type, t->ne[0], t->ne[1]);
    return uint64_t(m.stride) * uint64_t(m.n_rows);
}

class CudaContextImpl final : public Context {
  public:
    CudaContextImpl(std::shared_ptr<const Model> model, int32_t n_ctx, int32_t n_batch, const CudaContextParams & p)
        : m_model(std::move(model)), m_hp(m_model->hparams()), m_flags(flags_of(m_hp.arch)),
          m_d(dims_of(m_hp, n_ctx, n_batch)), m_device(p.device), m_use_graph(p.use_graph),
          m_gpu_layers(p.n_gpu_layers < 0 ? m_hp.n_layer : std::min(p.n_gpu_layers, m_hp.n_layer)),
          m_cpu_params(p.context) {
        m_skip.assign(size_t(m_hp.n_layer), false);
        for (int32_t l : p.context.skip_layers) m_skip[size_t(l)] = true;
        const char * e = std::getenv("GB_CUDA_ACT16");
        m_act16 = e && *e ? e[0] != '0' : p.precise_decode;
    }
    ~CudaContextImpl() override;

    Status init();

    Status decode(std::span<const Token> tokens, bool all_logits, const std::atomic<bool> * cancel) override;
    std::span<const float> logits() const override;
    int32_t n_past() const override { return m_n_past; }
    int32_t n_ctx() const override { return int32_t(m_d.n_ctx); }
    void    truncate(int32_t n_past) override {
        m_tree_n = 0;
        m_n_past = std::clamp(n_past, 0, m_n_past);
        if (m_cpu) m_cpu->truncate(m_n_past);
    }
    const Model & model() const override { return *m_model; }
    size_t  kv_bytes() const override { return size_t(2 * m_d.n_layer * m_d.n_ctx * m_d.n_kv * 2); }

    // [spec] token trees (every layer on the GPU only)
    bool   supports_tree() const override { return !partial(); }
    int32_t max_tree_nodes() const override { return kMatvecMaxTok; }  // more nodes run the GEMM path: close, not plain-step bits
    Status decode_tree(std::span<const Token> tokens, std::span<const int32_t> parents, std::span<const int32_t> out_nodes,
                       const std::atomic<bool> * cancel) override;
    Status tree_logits(std::span<const int32_t> nodes) override;
    Status commit_tree(std::span<const int32_t> path) override;
    std::span<const RowSummary> row_summaries() const override;

    Result<Token> greedy() const;
    bool partial() const { return m_gpu_layers < m_d.n_layer; }

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

    Status run_chunk(const Token * tokens, int32_t n, int32_t n_out, bool sync = true);
    // Captures enqueue_forward(n, n_out) on first use (with summary: then also the
    // summary of logits row 0 and its copy to m_row_sum_h[0]; a fused tree: first
    // its positions and ancestor rows from m_tree_h) and replays it (capture_only: not).
    Status launch_graph(cudaGraphExec_t & g, int32_t n, int32_t n_out, bool summary = false, bool capture_only = false);
    // end_capture(g, st): the work enqueued on m_stream since cudaStreamBeginCapture
    // instantiated into g (st: how enqueuing it went; not ok: nothing kept).
    Status end_capture(cudaGraphExec_t & g, Status st);
    Status capture_tree_head(int32_t n_out);  // m_head_graph[n_out], unless it exists
    // [spec] fused verification: the tree head for n_out rows (node ids in
    // m_tree_h's out part): gather, head, softcap, the rows' summaries and their
    // copy to m_row_sum_h; what m_head_graph[n_out] replays.
    Status enqueue_tree_head(int32_t n_out);
    // [spec] The verification graphs of every size (forward 1..32 nodes, head
    // 1..32 rows) and the decode step's, captured now rather than on first use.
    Status precapture();
    bool tree_fused() const { return m_use_graph && m_tree_graph_on && m_tree_fuse && !partial(); }
    Status enqueue_forward(int32_t n, int32_t n_out);
    Status linear(const MatvecJob * jobs, int n_jobs, const float * x, const Q8Act & xq, int n);

    std::shared_ptr<const Model> m_model;
    const HParams & m_hp;
    Flags m_flags;
    Dims  m_d;
    int   m_device;
    bool  m_use_graph;
    // Decode gate/up through the fused kernel (GB_CUDA_GLU=0: two matvecs +
    // the activation kernel, for comparison).
    bool  m_fuse_glu = [] { const char * e = std::getenv("GB_CUDA_GLU"); return !(e && e[0] == '0'); }();
    // Decode q/k/v of llama-style models with RoPE and the KV-cache write in
    // the matvec epilogue (GB_CUDA_ROPE=0: matvec + qkv_post, for comparison).
    bool  m_fuse_rope = [] { const char * e = std::getenv("GB_CUDA_ROPE"); return !(e && e[0] == '0'); }();
    // Decode attention: combine the split partials in the partial kernel's
    // last block per head (GB_CUDA_ATTN_FUSE=0: the separate combine kernel).
    bool  m_fuse_attn = [] { const char * e = std::getenv("GB_CUDA_ATTN_FUSE"); return !(e && e[0] == '0'); }();
    // Decode activations in two int8 planes (Q8Act::lo: ~16 bits per value;
    // CudaContextParams::precise_decode, GB_CUDA_ACT16=1/0 overrides). Read
    // once, at buffer allocation.
    bool  m_act16 = false;
    // Classes of matmul inputs kept at one plane (GB_CUDA_ACT8, letters, for
    // measurements): a attention input (q/k/v), o attention output, g gate/up
    // input, d ffn_down input, h output head.
    std::string m_act8 = [] { const char * e = std::getenv("GB_CUDA_ACT8"); return std::string(e ? e : ""); }();
    // q as used for input class c: without its second plane where c is in m_act8.
    Q8Act plane(Q8Act q, char c) const {
        if (m_act8.find(c) != std::string::npos) q.lo = nullptr;
        return q;
    }
    int32_t m_n_past = 0;
    std::vector<bool> m_skip;  // [n_layer] layers not run (ContextParams::skip_layers)
    // [spec] The pending token tree (m_tree_n > 0 after decode_tree()): node i
    // in cache row m_n_past + i; m_xn / m_q8 keep the nodes' normed last
    // hidden states until tree_logits(). m_tree_rows_d [n, stride]: each
    // node's ancestor rows by depth; m_tree_pos_d [n]: positions.
    bool    m_tree_active = false;  // enqueue_forward() is running a tree
    int32_t m_tree_n = 0, m_tree_stride = 0;
    std::vector<int32_t> m_tree_parent;
    int *   m_tree_rows_d = nullptr;  // own allocation (grows)
    size_t  m_tree_rows_cap = 0;
    // Trees of up to kMatvecMaxTok nodes replay a CUDA graph per node count
    // (GB_CUDA_TREE_GRAPH=0: launched one kernel at a time, for comparison);
    // their ancestor rows use this fixed buffer with stride kMatvecMaxTok.
    bool    m_tree_graph_on = [] { const char * e = std::getenv("GB_CUDA_TREE_GRAPH"); return !(e && e[0] == '0'); }();
    int *   m_tree_rows_g = nullptr;  // [kMatvecMaxTok * kMatvecMaxTok]
    const int * m_tree_rows_cur = nullptr;  // what enqueue_forward() passes to attention
    cudaGraphExec_t m_tree_graph[kMatvecMaxTok + 1] = {};
    // [spec] Fused verification (tree_fused()): a tree's forward graph also
    // copies its positions and ancestor rows from pinned m_tree_h, its head,
    // summaries and their copy replay m_head_graph[n_out] right behind it, and
    // one synchronisation ends decode_tree (before: one after the forward, one
    // after the head, one for the summaries); commit_tree of a path that is
    // already in place (a chain's accepted prefix) launches nothing, any other
    // compacts without synchronising. GB_CUDA_TREE_FUSE=0: the unfused path.
    bool    m_tree_fuse = [] { const char * e = std::getenv("GB_CUDA_TREE_FUSE"); return !(e && e[0] == '0'); }();
    // Every verification graph captured (and uploaded) when the context is made
    // (~130-200 ms there for gemma-3-270m on an H200) instead of on a tree
    // size's first use inside a reply (~1.7 ms each, read by the speculation
    // controller as that size's cost); GB_CUDA_TREE_PRECAPTURE=0: on first use.
    bool    m_tree_precapture = [] { const char * e = std::getenv("GB_CUDA_TREE_PRECAPTURE"); return !(e && e[0] == '0'); }();
    cudaGraphExec_t m_head_graph[kMatvecMaxTok + 1] = {};
    static constexpr int32_t kTreeHPos = 0, kTreeHRows = kMatvecMaxTok, kTreeHOut = kMatvecMaxTok + kMatvecMaxTok * kMatvecMaxTok;
    int *   m_tree_h = nullptr;  // pinned [kMatvecMaxTok pos | kMatvecMaxTok^2 ancestor rows | kMatvecMaxTok out nodes]
    int *   m_tree_pos_d = nullptr;   // [nb]
    int *   m_tree_idx_d = nullptr;   // [nb] out nodes / path
    float * m_logits_pin = nullptr;   // pinned [kMatvecMaxTok + 1, V]: tree logits
    bool    m_logits_in_pin = false;  // logits() reads m_logits_pin
    mutable bool m_tree_rows_pending = false;  // tree_logits() rows still only on the device (copied by logits())
    // [spec] Rows of logits() that are on the device: m_dev_rows rows from
    // m_logits_d + m_dev_row0 * V (0: none, e.g. all_logits chunks, partial
    // offload). Their summaries (row_summaries()) are computed on first use.
    int32_t m_dev_row0 = 0, m_dev_rows = 0;
    mutable bool m_summ_valid = false;
    mutable std::vector<RowSummary> m_summ;
    RowPart * m_row_parts_d = nullptr;  // [nb * kRowPartsMax]
    RowSum *  m_row_sum_d = nullptr;    // [nb]
    RowSum *  m_row_sum_h = nullptr;    // pinned [nb]
    // The one-token decode graph also summarises its logits row and copies the
    // 16 bytes to m_row_sum_h[0] (no second launch or sync for greedy steps);
    // GB_CUDA_GRAPH_SUMMARY=0: summaries on demand only, for comparison.
    bool  m_graph_summary = [] { const char * e = std::getenv("GB_CUDA_GRAPH_SUMMARY"); return !(e && e[0] == '0'); }();
    bool  m_step_summarised = false;  // the last run_chunk() left its row summary in m_row_sum_h[0]
    // GB_CUDA_HEAD_MULTI=0: the tree head runs the one-token matvec per node (for comparison).
    bool  m_head_multi = [] { const char * e = std::getenv("GB_CUDA_HEAD_MULTI"); return !(e && e[0] == '0'); }();
    // Partial offload: layers [0, m_gpu_layers) here, the rest and the head in
    // m_cpu (a CPU Context skipping the GPU's layers; its KV cache is on the
    // host), fed m_hidden_h (pinned, [nb, E]).
    int32_t m_gpu_layers;
    ContextParams m_cpu_params;
    std::unique_ptr<Context> m_cpu;
    float * m_hidden_h = nullptr;

    std::vector<void *> m_allocs;
    cudaStream_t m_stream = nullptr;
    cudaGraphExec_t m_graph = nullptr;

    DevMat m_tok_embd, m_output;
    const float * m_output_norm = nullptr;
    const float * m_inv_freq[2] = {nullptr, nullptr};
    std::vector<Layer> m_layers;
    __half * m_k_cache = nullptr;
    __half * m_v_cache = nullptr;

    float *m_x, *m_xn, *m_proj, *m_q, *m_attn, *m_k, *m_v, *m_gate, *m_up, *m_logits_d;
    float *m_part_acc, *m_part_ml;
    Q8Act m_q8;
    Q8Act m_q8b;  // decode: q8 of the gate/up output (read by down while m_q8 is the kernel's input)
    GemmScratch m_gemm;
    int * m_tokens_d = nullptr;
    int * m_pos_d = nullptr;
    int * m_argmax_d = nullptr;
    int * m_attn_counters = nullptr;  // [kMatvecMaxTok * n_head], see AttnArgs::counters
    int * m_tokens_h = nullptr;  // pinned
    int * m_pos_h = nullptr;     // pinned

    // Logits: all_logits chunks are copied at once; otherwise the last row
    // stays on the device until logits() is called.
    mutable std::vector<float> m_logits;
    mutable bool   m_logits_pending = false;
    size_t         m_n_logits = 0;
    int32_t        m_last_n_out = 0;
};

CudaContextImpl::~CudaContextImpl() {
    cudaSetDevice(m_device);
    if (m_stream) cudaStreamSynchronize(m_stream);
    if (m_graph) cudaGraphExecDestroy(m_graph);
    for (cudaGraphExec_t g : m_tree_graph) if (g) cudaGraphExecDestroy(g);
    for (cudaGraphExec_t g : m_head_graph) if (g) cudaGraphExecDestroy(g);
    if (m_tree_h) cudaFreeHost(m_tree_h);
    if (m_stream) cudaStreamDestroy(m_stream);
    for (void * p : m_allocs) cudaFree(p);
    if (m_tokens_h) cudaFreeHost(m_tokens_h);
    if (m_pos_h) cudaFreeHost(m_pos_h);
    if (m_hidden_h) cudaFreeHost(m_hidden_h);
    if (m_logits_pin) cudaFreeHost(m_logits_pin);
    if (m_row_sum_h) cudaFreeHost(m_row_sum_h);
    if (m_tree_rows_d) cudaFree(m_tree_rows_d);
}

Result<DevMat> CudaContextImpl::upload_matrix(const std::string & name, int64_t ne0, int64_t ne1, bool required) {
    return gb::cuda::upload_matrix(*m_model, name, ne0, ne1, required, device_alloc());
}

Result<const float *> CudaContextImpl::upload_vector(const std::string & name, int64_t n, bool required) {
    return gb::cuda::upload_vector(*m_model, name, n, required, device_alloc());
}

Status CudaContextImpl::upload_rope() { return gb::cuda::upload_rope(*m_model, m_d.hd, device_alloc(), m_inv_freq); }

#define GB_ASSIGN(lhs, expr)                 \
    do {                                     \
        auto gb_r_ = (expr);                 \
        if (!gb_r_.ok()) return gb_r_.error(); \
        lhs = *gb_r_;                        \
    } while (0)

Status CudaContextImpl::init() {
    GB_CU(cudaSetDevice(m_device));
    GB_CU(cudaStreamCreateWithFlags(&m_stream, cudaStreamNonBlocking));
    const Dims & d = m_d;
    GB_ASSIGN(m_tok_embd, upload_matrix("token_embd.weight", d.E, d.V));
    if (!partial()) {
        GB_ASSIGN(m_output, upload_matrix("output.weight", d.E, d.V, false));
        if (!m_output.data) m_output = m_tok_embd;
        GB_ASSIGN(m_output_norm, upload_vector("output_norm.weight", d.E));
    } else {
        // The CPU part: every layer from m_gpu_layers on, and the head.
        ContextParams cp = m_cpu_params;
        cp.n_ctx = int32_t(d.n_ctx);
        cp.n_batch = int32_t(d.nb);
        cp.skip_layers.clear();
        for (int32_t il = 0; il < m_gpu_layers; ++il) cp.skip_layers.push_back(il);
        for (int32_t il = m_gpu_layers; il < m_hp.n_layer; ++il) {
            if (m_skip[size_t(il)]) cp.skip_layers.push_back(il);
        }
        auto c = Context::create(m_model, cp);
        if (!c) return make_error(c.error().code, "CUDA partial offload: the CPU part (layers " + std::to_string(m_gpu_layers) +
                                                      ".." + std::to_string(d.n_layer - 1) + "): " + c.error().message);
        m_cpu = std::move(*c);
        GB_CU(cudaMallocHost(&m_hidden_h, size_t(d.nb) * size_t(d.E) * sizeof(float)));
    }
    GB_TRY_STATUS(upload_rope());
    m_layers.resize(size_t(m_gpu_layers));
    for (int il = 0; il < m_gpu_layers; ++il) {
        Layer & l = m_layers[size_t(il)];
        GB_ASSIGN(l.attn_norm, upload_vector(layer_name(il, "attn_norm.weight"), d.E));
        GB_ASSIGN(l.wq, upload_matrix(layer_name(il, "attn_q.weight"), d.E, d.n_q));
        GB_ASSIGN(l.wk, upload_matrix(layer_name(il, "attn_k.weight"), d.E, d.n_kv));
        GB_ASSIGN(l.wv, upload_matrix(layer_name(il, "attn_v.weight"), d.E, d.n_kv));
        GB_ASSIGN(l.wo, upload_matrix(layer_name(il, "attn_output.weight"), d.n_q, d.E));
        GB_ASSIGN(l.ffn_norm, upload_vector(layer_name(il, "ffn_norm.weight"), d.E));
        GB_ASSIGN(l.gate, upload_matrix(layer_name(il, "ffn_gate.weight"), d.E, d.F));
        GB_ASSIGN(l.up, upload_matrix(layer_name(il, "ffn_up.weight"), d.E, d.F));
        GB_ASSIGN(l.down, upload_matrix(layer_name(il, "ffn_down.weight"), d.F, d.E));
        if (m_flags.qkv_bias) {
            GB_ASSIGN(l.bq, upload_vector(layer_name(il, "attn_q.bias"), d.n_q));
            GB_ASSIGN(l.bk, upload_vector(layer_name(il, "attn_k.bias"), d.n_kv));
            GB_ASSIGN(l.bv, upload_vector(layer_name(il, "attn_v.bias"), d.n_kv));
        }
        if (m_flags.qk_norm) {
            GB_ASSIGN(l.q_norm, upload_vector(layer_name(il, "attn_q_norm.weight"), d.hd));
            GB_ASSIGN(l.k_norm, upload_vector(layer_name(il, "attn_k_norm.weight"), d.hd));
        }
        if (m_flags.post_norms) {
            GB_ASSIGN(l.post_attn, upload_vector(layer_name(il, "post_attention_norm.weight"), d.E));
            GB_ASSIGN(l.post_ffn, upload_vector(layer_name(il, "post_ffw_norm.weight"), d.E));
        }
    }
    const size_t kv = size_t(int64_t(m_gpu_layers) * d.n_ctx * d.n_kv);
    GB_ASSIGN(m_k_cache, alloc<__half>(kv));
    GB_ASSIGN(m_v_cache, alloc<__half>(kv));
    const size_t nb = size_t(d.nb);
    GB_ASSIGN(m_x, alloc<float>(nb * d.E));
    GB_ASSIGN(m_xn, alloc<float>(nb * d.E));
    GB_ASSIGN(m_proj, alloc<float>(nb * d.E));
    GB_ASSIGN(m_q, alloc<float>(nb * d.n_q));
    GB_ASSIGN(m_attn, alloc<float>(nb * d.n_q));
    GB_ASSIGN(m_k, alloc<float>(nb * d.n_kv));
    GB_ASSIGN(m_v, alloc<float>(nb * d.n_kv));
    GB_ASSIGN(m_gate, alloc<float>(nb * d.F));
    GB_ASSIGN(m_up, alloc<float>(nb * d.F));
    GB_ASSIGN(m_logits_d, alloc<float>(partial() ? 1 : nb * d.V));
    const size_t mi = nb * size_t(d.max_in());
    GB_ASSIGN(m_q8.q, alloc<int8_t>(mi));
    GB_ASSIGN(m_q8.d, alloc<float>(mi / 32));
    GB_ASSIGN(m_q8.s, alloc<float>(mi / 16));
    if (m_act16) GB_ASSIGN(m_q8.lo, alloc<int8_t>(mi));
    const size_t mi_b = size_t(kMatvecMaxTok) * size_t(std::max(d.F, d.E));
    GB_ASSIGN(m_q8b.q, alloc<int8_t>(mi_b));
    GB_ASSIGN(m_q8b.d, alloc<float>(mi_b / 32));
    GB_ASSIGN(m_q8b.s, alloc<float>(mi_b / 16));
    if (m_act16) GB_ASSIGN(m_q8b.lo, alloc<int8_t>(mi_b));
    const size_t parts = size_t(std::max<int64_t>(d.nb * d.n_head, int64_t(kMatvecMaxTok) * d.n_head * d.dec_split));
    GB_ASSIGN(m_part_acc, alloc<float>(parts * d.hd));
    GB_ASSIGN(m_part_ml, alloc<float>(parts * 2));
    GB_ASSIGN(m_gemm.x16, alloc<__half>(mi));
    m_gemm.w16_elems = kGemmW16Elems;
    GB_ASSIGN(m_gemm.w16, alloc<__half>(kGemmW16Elems));
    GB_ASSIGN(m_tokens_d, alloc<int>(nb));
    GB_ASSIGN(m_pos_d, alloc<int>(1));
    GB_ASSIGN(m_argmax_d, alloc<int>(1));
    GB_ASSIGN(m_attn_counters, alloc<int>(size_t(kMatvecMaxTok) * size_t(d.n_head)));
    GB_CU(cudaMemset(m_attn_counters, 0, size_t(kMatvecMaxTok) * size_t(d.n_head) * sizeof(int)));
    GB_CU(cudaMallocHost(&m_tokens_h, nb * sizeof(int)));
    GB_CU(cudaMallocHost(&m_pos_h, sizeof(int)));
    GB_ASSIGN(m_tree_pos_d, alloc<int>(nb));
    GB_ASSIGN(m_tree_rows_g, alloc<int>(size_t(kMatvecMaxTok) * kMatvecMaxTok));
    GB_ASSIGN(m_tree_idx_d, alloc<int>(nb));
    if (!partial()) GB_CU(cudaMallocHost(&m_logits_pin, size_t(kMatvecMaxTok + 1) * size_t(d.V) * sizeof(float)));
    GB_ASSIGN(m_row_parts_d, alloc<RowPart>(nb * kRowPartsMax));
    GB_ASSIGN(m_row_sum_d, alloc<RowSum>(nb));
    GB_CU(cudaMallocHost(&m_row_sum_h, nb * sizeof(RowSum)));
    GB_CU(cudaMallocHost(&m_tree_h, size_t(kTreeHOut + kMatvecMaxTok) * sizeof(int)));
    GB_CU(cudaDeviceSynchronize());
    if (m_tree_precapture && m_use_graph && !partial()) GB_TRY_STATUS(precapture());
    return {};
}

Status CudaContextImpl::end_capture(cudaGraphExec_t & graph, Status st) {
    cudaGraph_t g = nullptr;
    const cudaError_t e = cudaStreamEndCapture(m_stream, &g);
    if (!st.ok()) {
        if (g) cudaGraphDestroy(g);
        return st;
    }
    GB_CU(e);
    const cudaError_t ie = cudaGraphInstantiate(&graph, g, 0);
    cudaGraphDestroy(g);
    GB_CU(ie);
    return {};
}

Status CudaContextImpl::precapture() {
    const int32_t n_max = int32_t(std::min<int64_t>(kMatvecMaxTok, m_d.nb));
    GB_TRY_STATUS(launch_graph(m_graph, 1, 1, m_graph_summary, /*capture only*/ true));
    if (m_tree_graph_on) {
        m_tree_active = true;
        m_tree_rows_cur = m_tree_rows_g;
        m_tree_stride = kMatvecMaxTok;
        Status st;
        for (int32_t n = 1; n <= n_max && st.ok(); ++n) st = launch_graph(m_tree_graph[n], n, 0, false, true);
        m_tree_active = false;
        GB_TRY_STATUS(st);
    }
    if (m_tree_graph_on && m_tree_fuse) {
        for (int32_t n = 1; n <= n_max; ++n) GB_TRY_STATUS(capture_tree_head(n));
    }
    // Each graph uploaded to the device now: a graph's first launch pays for
    // that otherwise (~0.2 ms on an H200, gemma-3-270m), which the speculation
    // controller would read as part of that tree size's verification cost.
    GB_CU(cudaGraphUpload(m_graph, m_stream));
    for (cudaGraphExec_t g : m_tree_graph) if (g) GB_CU(cudaGraphUpload(g, m_stream));
    for (cudaGraphExec_t g : m_head_graph) if (g) GB_CU(cudaGraphUpload(g, m_stream));
    GB_CU(cudaStreamSynchronize(m_stream));
    return {};
}

Status CudaContextImpl::capture_tree_head(int32_t n_out) {
    if (m_head_graph[n_out]) return {};
    GB_CU(cudaStreamBeginCapture(m_stream, cudaStreamCaptureModeThreadLocal));
    return end_capture(m_head_graph[n_out], enqueue_tree_head(n_out));
}

Status CudaContextImpl::linear(const MatvecJob * jobs, int n_jobs, const float * x, const Q8Act & xq, int n) {
    if (n <= kMatvecMaxTok) return matvec(jobs, n_jobs, xq, x, n, m_stream);
    for (int i = 0; i < n_jobs; ++i) GB_TRY_STATUS(gemm(jobs[i].w, x, n, jobs[i].y, jobs[i].bias, m_gemm, m_stream));
    return {};
}

Status CudaContextImpl::enqueue_forward(int32_t n, int32_t n_out) {
    const Dims & d = m_d;
    const cudaStream_t s = m_stream;
    const bool mv = n <= kMatvecMaxTok;
    const Q8Act q8 = mv ? plane(m_q8, 'a') : Q8Act{};  // q/k/v input
    const Q8Act q8o = mv ? plane(m_q8, 'o') : Q8Act{};  // attention output
    const Q8Act q8g = mv ? plane(m_q8, 'g') : Q8Act{};  // gate/up input
    const Q8Act q8d = mv ? plane(m_q8, 'd') : Q8Act{};  // ffn_down input (unfused)
    GB_CU(cudaMemcpyAsync(m_tokens_d, m_tokens_h, size_t(n) * sizeof(int), cudaMemcpyHostToDevice, s));
    GB_CU(cudaMemcpyAsync(m_pos_d, m_pos_h, sizeof(int), cudaMemcpyHostToDevice, s));
    GB_TRY_STATUS(embed(m_tok_embd, m_tokens_d, n, m_hp.embd_scale, m_x, s));
    const float * pend = nullptr;
    const float * pend_post = nullptr;
    const float attn_scale = m_hp.attn_scale > 0.0f ? m_hp.attn_scale : 1.0f / std::sqrt(float(m_hp.head_dim_k));
    for (int il = 0; il < m_gpu_layers; ++il) {
        if (m_skip[size_t(il)]) continue;  // residual passes through (pending output carried to the next layer)
        const Layer & l = m_layers[size_t(il)];
        const bool swa = m_hp.layer_is_swa[size_t(il)] && m_hp.sliding_window > 0;
        // xn = rmsnorm(x += pending) * attn_norm
        GB_TRY_STATUS(add_norm(m_x, pend, pend_post, l.attn_norm, m_hp.rms_eps, int(d.E), n, m_xn, q8, s));
        const MatvecJob qkv[3] = {{l.wq, m_q, l.bq}, {l.wk, m_k, l.bk}, {l.wv, m_v, l.bv}};
        __half * kc = m_k_cache + size_t(il) * d.n_ctx * d.n_kv;
        __half * vc = m_v_cache + size_t(il) * d.n_ctx * d.n_kv;
        const float * inv_freq = m_inv_freq[m_hp.layer_is_swa[size_t(il)] ? 1 : 0];
        const float q_scale = m_flags.scale_q ? attn_scale : 1.0f;
        const int * rope_pos = m_tree_active ? m_tree_pos_d : nullptr;  // [spec] tree nodes rotate at their depth
        if (mv && m_fuse_rope && !m_flags.qk_norm && m_hp.rope_style != RopeStyle::Neox &&
            matvec_qkv_rope_supported(qkv, int(d.hd), q8, m_xn)) {
            // decode, llama-style RoPE: rotation, q scale and the KV-cache write in the matvec's epilogue
            RopeEpilogue ep{m_pos_d, inv_freq, int(d.hd), q_scale, kc, vc};
            ep.rope_pos = rope_pos;
            GB_TRY_STATUS(matvec_qkv_rope(qkv, ep, q8, m_xn, n, s));
        } else {
            const MatvecJob nb_qkv[3] = {{l.wq, m_q, nullptr}, {l.wk, m_k, nullptr}, {l.wv, m_v, nullptr}};
            GB_TRY_STATUS(linear(nb_qkv, 3, m_xn, q8, n));
            QkvPost qp{m_q, m_k, m_v, l.bq, l.bk, l.bv, l.q_norm, l.k_norm, inv_freq, m_hp.rope_style == RopeStyle::Neox,
                       q_scale, m_hp.rms_eps, int(d.n_head), int(d.n_head_kv), int(d.hd), kc, vc};
            qp.rope_pos = rope_pos;
            GB_TRY_STATUS(qkv_post(qp, m_pos_d, n, s));
        }
        AttnArgs aa{m_q, kc, vc, int(d.n_head), int(d.n_head_kv), int(d.hd), swa ? m_hp.sliding_window : 0,
                    m_flags.scale_q ? 1.0f : attn_scale, m_attn, m_part_acc, m_part_ml};
        const bool fuse_q = mv && d.hd % 32 == 0;  // attention output quantized in its combine kernel
        if (fuse_q) aa.q8 = q8o;
        if (mv && m_fuse_attn) aa.counters = m_attn_counters;
        if (m_tree_active) {
            aa.tree_rows = m_tree_rows_cur;
            aa.tree_pos = m_tree_pos_d;
            aa.tree_stride = m_tree_stride;
        }
        GB_TRY_STATUS(attention(aa, m_pos_d, n, mv ? d.dec_split : 1, s));
        if (mv && !fuse_q) GB_TRY_STATUS(act_quant(m_attn, nullptr, 0, int64_t(n) * d.n_q, q8o, s));
        const MatvecJob wo{l.wo, m_proj, nullptr};
        GB_TRY_STATUS(linear(&wo, 1, m_attn, q8o, n));
        // xn = rmsnorm(x += [post_norm](proj)) * ffn_norm
        GB_TRY_STATUS(add_norm(m_x, m_proj, l.post_attn, l.ffn_norm, m_hp.rms_eps, int(d.E), n, m_xn, q8g, s));
        if (mv && m_fuse_glu && matvec_glu_supported(l.gate, l.up)) {
            // gate/up + activation + q8 in one kernel; its q8 goes to a second
            // buffer (the kernel still reads the first).
            const Q8Act q8b = plane(m_q8b, 'd');
            GB_TRY_STATUS(matvec_glu(l.gate, l.up, m_flags.act, q8g, m_xn, n, m_gate, q8b, s));
            const MatvecJob dn{l.down, m_proj, nullptr};
            GB_TRY_STATUS(linear(&dn, 1, m_gate, q8b, n));
        } else {
            const MatvecJob gu[2] = {{l.gate, m_gate, nullptr}, {l.up, m_up, nullptr}};
            GB_TRY_STATUS(linear(gu, 2, m_xn, q8g, n));
            GB_TRY_STATUS(act_quant(m_gate, m_up, m_flags.act, int64_t(n) * d.F, q8d, s));
            const MatvecJob dn{l.down, m_proj, nullptr};
            GB_TRY_STATUS(linear(&dn, 1, m_gate, q8d, n));
        }
        pend = m_proj;
        pend_post = l.post_ffn;
    }
    if (partial()) {
        // x += the last layer's pending output; x -> the CPU part (pinned)
        GB_TRY_STATUS(add_norm(m_x, pend, pend_post, nullptr, m_hp.rms_eps, int(d.E), n, nullptr, Q8Act{}, s));
        GB_CU(cudaMemcpyAsync(m_hidden_h, m_x, size_t(n) * size_t(d.E) * sizeof(float), cudaMemcpyDeviceToHost, s));
        return {};
    }
    const Q8Act q8h = plane(m_q8, 'h');
    GB_TRY_STATUS(add_norm(m_x, pend, pend_post, m_output_norm, m_hp.rms_eps, int(d.E), n, m_xn, q8h, s));
    if (n_out > 0) {
        const int64_t t0 = n - n_out;
        const MatvecJob out{m_output, m_logits_d, nullptr};
        GB_TRY_STATUS(linear(&out, 1, m_xn + t0 * d.E, q8h.at(t0 * d.E), n_out));
        if (m_hp.final_logit_softcap > 0.0f) GB_TRY_STATUS(softcap(m_logits_d, int64_t(n_out) * d.V, m_hp.final_logit_softcap, s));
    }
    return {};
}

Status CudaContextImpl::launch_graph(cudaGraphExec_t & graph, int32_t n, int32_t n_out, bool summary, bool capture_only) {
    if (!graph) {
        const cudaStream_t s = m_stream;
        GB_CU(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
        Status st;
        if (m_tree_active && tree_fused()) {
            // [spec] the tree's positions and ancestor rows (stride kMatvecMaxTok) from pinned m_tree_h
            cudaError_t ce = cudaMemcpyAsync(m_tree_pos_d, m_tree_h + kTreeHPos, size_t(n) * sizeof(int), cudaMemcpyHostToDevice, s);
            if (ce == cudaSuccess) ce = cudaMemcpyAsync(m_tree_rows_g, m_tree_h + kTreeHRows, size_t(n) * kMatvecMaxTok * sizeof(int), cudaMemcpyHostToDevice, s);
            if (ce != cudaSuccess) st = make_error(ErrorCode::Internal, std::string("CUDA tree graph copies: ") + cudaGetErrorString(ce));
        }
        if (st.ok()) st = enqueue_forward(n, n_out);
        if (st.ok() && summary) {
            st = summarize_rows(m_logits_d, int(m_d.V), 1, m_row_parts_d, m_row_sum_d, s);
            if (st.ok()) {
                const cudaError_t ce = cudaMemcpyAsync(m_row_sum_h, m_row_sum_d, sizeof(RowSum), cudaMemcpyDeviceToHost, s);
                if (ce != cudaSuccess) st = make_error(ErrorCode::Internal, std::string("CUDA graph summary copy: ") + cudaGetErrorString(ce));
            }
        }
        GB_TRY_STATUS(end_capture(graph, st));
    }
    if (!capture_only) GB_CU(cudaGraphLaunch(graph, m_stream));
    return {};
}

Status CudaContextImpl::enqueue_tree_head(int32_t n_out) {
    const Dims & d = m_d;
    const cudaStream_t s = m_stream;
    GB_CU(cudaMemcpyAsync(m_tree_idx_d, m_tree_h + kTreeHOut, size_t(n_out) * sizeof(int), cudaMemcpyHostToDevice, s));
    const Q8Act q8hb = plane(m_q8b, 'h');  // (the final norm wrote plane(m_q8, 'h'))
    GB_TRY_STATUS(gather_rows(m_xn, m_tree_idx_d, n_out, int(d.E), m_proj, plane(m_q8, 'h'), q8hb, s));
    const MatvecJob out{m_output, m_logits_d, nullptr};
    if (m_head_multi) GB_TRY_STATUS(matvec_multi(out, q8hb, m_proj, n_out, s));
    else GB_TRY_STATUS(linear(&out, 1, m_proj, q8hb, n_out));
    if (m_hp.final_logit_softcap > 0.0f) GB_TRY_STATUS(softcap(m_logits_d, int64_t(n_out) * d.V, m_hp.final_logit_softcap, s));
    GB_TRY_STATUS(summarize_rows(m_logits_d, int(d.V), n_out, m_row_parts_d, m_row_sum_d, s));
    GB_CU(cudaMemcpyAsync(m_row_sum_h, m_row_sum_d, size_t(n_out) * sizeof(RowSum), cudaMemcpyDeviceToHost, s));
    return {};
}

Status CudaContextImpl::run_chunk(const Token * tokens, int32_t n, int32_t n_out, bool sync) {
    bool step_summary = false;
    m_step_summarised = false;
    std::memcpy(m_tokens_h, tokens, size_t(n) * sizeof(int));
    *m_pos_h = m_n_past;
    if (m_tree_active && m_use_graph && m_tree_graph_on && n <= kMatvecMaxTok && n_out == 0) {
        // [spec] a tree of n nodes: the same kernels every time (positions, ancestor rows in device buffers)
        GB_TRY_STATUS(launch_graph(m_tree_graph[n], n, 0));
    } else if (m_use_graph && n == 1 && n_out == 1) {
        GB_TRY_STATUS(launch_graph(m_graph, 1, 1, m_graph_summary && !partial()));
        step_summary = m_graph_summary && !partial();
    } else {
        GB_TRY_STATUS(enqueue_forward(n, n_out));
    }
    if (sync) GB_CU(cudaStreamSynchronize(m_stream));
    m_step_summarised = step_summary;
    return {};
}

Status CudaContextImpl::decode(std::span<const Token> tokens, bool all_logits, const std::atomic<bool> * cancel) {
    const int64_t n = int64_t(tokens.size());
    if (n == 0) return {};
    if (m_n_past + n > m_d.n_ctx) {
        return make_error(ErrorCode::OutOfRange, std::to_string(n) + " tokens at position " + std::to_string(m_n_past) +
                                                     " do not fit the context of " + std::to_string(m_d.n_ctx));
    }
    for (int64_t i = 0; i < n; ++i) {
        if (tokens[i] < 0 || tokens[i] >= m_hp.n_vocab) {
            return make_error(ErrorCode::InvalidArgument, "token " + std::to_string(tokens[i]) + " at index " + std::to_string(i) +
                                                              " is outside the vocabulary (" + std::to_string(m_hp.n_vocab) + ")");
        }
    }
    GB_CU(cudaSetDevice(m_device));
    m_tree_n = 0;
    const size_t V = size_t(m_d.V);
    m_n_logits = (all_logits ? size_t(n) : 1) * V;
    m_logits_pending = false;
    m_logits_in_pin = false;
    m_tree_rows_pending = false;
    if (all_logits && m_logits.size() < m_n_logits) m_logits.resize(m_n_logits);
    for (int64_t start = 0; start < n; start += m_d.nb) {
        if (cancel && cancel->load(std::memory_order_relaxed)) return make_error(ErrorCode::Cancelled, "decode cancelled");
        const int32_t cn = int32_t(std::min<int64_t>(m_d.nb, n - start));
        const bool last = start + cn == n;
        const int32_t n_out = all_logits ? cn : (last ? 1 : 0);
        GB_TRY_STATUS(run_chunk(tokens.data() + start, cn, n_out));
        if (partial()) {
            if (m_logits.size() < V) m_logits.resize(V);
            float * out = m_logits.data() + (all_logits ? size_t(start) * V : 0);
            const Status st = detail::decode_hidden(*m_cpu, m_hidden_h, cn, n_out, out, cancel);
            if (!st.ok()) {
                m_cpu->truncate(m_n_past);  // keep both parts at the same position
                return st;
            }
        }
        m_n_past += cn;
        m_last_n_out = n_out;
        if (all_logits && !partial()) {
            GB_CU(cudaMemcpy(m_logits.data() + size_t(start) * V, m_logits_d, size_t(cn) * V * sizeof(float), cudaMemcpyDeviceToHost));
        }
    }
    m_logits_pending = !all_logits && !partial();
    m_summ_valid = false;
    m_dev_row0 = m_logits_pending ? m_last_n_out - 1 : 0;
    m_dev_rows = m_logits_pending ? 1 : 0;
    if (m_logits_pending && m_step_summarised && m_dev_row0 == 0) {  // the decode graph summarised the row already
        static_assert(sizeof(RowSum) == sizeof(RowSummary), "RowSum mirrors gb::RowSummary");
        m_summ.resize(1);
        std::memcpy(m_summ.data(), m_row_sum_h, sizeof(RowSum));
        m_summ_valid = true;
    }
    return {};
}

std::span<const float> CudaContextImpl::logits() const {
    if (m_logits_pending) {
        const size_t V = size_t(m_d.V);
        if (m_logits.size() < V) m_logits.resize(V);
        cudaSetDevice(m_device);
        const cudaError_t e = cudaMemcpy(m_logits.data(), m_logits_d + size_t(m_last_n_out - 1) * V, V * sizeof(float),
                                         cudaMemcpyDeviceToHost);
        if (e != cudaSuccess) std::fill(m_logits.begin(), m_logits.begin() + V, NAN);
        m_logits_pending = false;
    }
    if (m_tree_rows_pending) {  // [spec] tree rows: copied on first use
        m_tree_rows_pending = false;
        cudaSetDevice(m_device);
        const cudaError_t e = cudaMemcpy(m_logits_pin, m_logits_d, m_n_logits * sizeof(float), cudaMemcpyDeviceToHost);
        if (e != cudaSuccess) std::fill(m_logits_pin, m_logits_pin + m_n_logits, NAN);
    }
    if (m_logits_in_pin) return {m_logits_pin, m_n_logits};
    return {m_logits.data(), m_n_logits};
}

std::span<const RowSummary> CudaContextImpl::row_summaries() const {
    static_assert(sizeof(RowSum) == sizeof(RowSummary) && offsetof(RowSummary, lse) == 8, "RowSum mirrors gb::RowSummary");
    if (m_dev_rows <= 0 || m_n_logits == 0) return {};
    if (!m_summ_valid) {
        cudaSetDevice(m_device);
        const size_t V = size_t(m_d.V);
        const Status st = summarize_rows(m_logits_d + size_t(m_dev_row0) * V, int(V), m_dev_rows, m_row_parts_d, m_row_sum_d, m_stream);
        cudaError_t e = st.ok() ? cudaMemcpyAsync(m_row_sum_h, m_row_sum_d, size_t(m_dev_rows) * sizeof(RowSum), cudaMemcpyDeviceToHost, m_stream)
                                : cudaErrorUnknown;
        if (e == cudaSuccess) e = cudaStreamSynchronize(m_stream);
        if (e != cudaSuccess) return {};  // callers fall back to logits()
        m_summ.resize(size_t(m_dev_rows));
        std::memcpy(m_summ.data(), m_row_sum_h, size_t(m_dev_rows) * sizeof(RowSum));
        m_summ_valid = true;
    }
    return {m_summ.data(), m_summ.size()};
}

// ---- [spec] token trees ---------------------------------------------------------

Status CudaContextImpl::decode_tree(std::span<const Token> tokens, std::span<const int32_t> parents,
                                    std::span<const int32_t> out_nodes, const std::atomic<bool> * cancel) {
    m_tree_n = 0;
    const int32_t n = int32_t(tokens.size());
    if (n == 0) return make_error(ErrorCode::InvalidArgument, "decode_tree: empty tree");
    if (!supports_tree()) {
        return make_error(ErrorCode::Unsupported, "CUDA decode_tree: token trees need every layer on the GPU (partial offload verifies chains)");
    }
    if (parents.size() != tokens.size()) {
        return make_error(ErrorCode::InvalidArgument, "decode_tree: " + std::to_string(tokens.size()) + " tokens but " +
                                                          std::to_string(parents.size()) + " parents");
    }
    if (n > m_d.nb) {
        return make_error(ErrorCode::InvalidArgument, "decode_tree: " + std::to_string(n) + " nodes exceed n_batch " + std::to_string(m_d.nb));
    }
    if (m_n_past + n > m_d.n_ctx) {
        return make_error(ErrorCode::OutOfRange, "decode_tree: " + std::to_string(n) + " nodes at position " + std::to_string(m_n_past) +
                                                     " do not fit the context of " + std::to_string(m_d.n_ctx));
    }
    if (cancel && cancel->load(std::memory_order_relaxed)) return make_error(ErrorCode::Cancelled, "decode cancelled");
    // position per node (parents first), then each node's ancestor rows by depth
    std::vector<int32_t> pos(static_cast<size_t>(n));
    int32_t max_depth = 0;
    for (int32_t i = 0; i < n; ++i) {
        const int32_t p = parents[size_t(i)];
        if (p < -1 || p >= i) {
            return make_error(ErrorCode::InvalidArgument, "decode_tree: node " + std::to_string(i) + " has parent " + std::to_string(p) +
                                                              " (must be -1 or an earlier node)");
        }
        if (tokens[size_t(i)] < 0 || tokens[size_t(i)] >= m_hp.n_vocab) {
            return make_error(ErrorCode::InvalidArgument, "decode_tree: token " + std::to_string(tokens[size_t(i)]) + " is outside the vocabulary");
        }
        pos[size_t(i)] = p < 0 ? m_n_past : pos[size_t(p)] + 1;
        max_depth = std::max(max_depth, pos[size_t(i)] - m_n_past);
    }
    const bool graph = m_use_graph && m_tree_graph_on && n <= kMatvecMaxTok;
    const int32_t stride = graph ? kMatvecMaxTok : max_depth + 1;  // a graph's kernels take the stride by value
    std::vector<int32_t> rows(size_t(n) * size_t(stride), -1);
    for (int32_t i = 0; i < n; ++i) {
        int32_t * r = rows.data() + size_t(i) * size_t(stride);
        for (int32_t a = i; a >= 0; a = parents[size_t(a)]) r[pos[size_t(a)] - m_n_past] = m_n_past + a;
    }
    GB_CU(cudaSetDevice(m_device));
    if (graph && tree_fused()) {
        // Fused: positions, ancestor rows and out nodes through pinned m_tree_h
        // (copied inside the graphs), the forward graph and the head graph
        // back to back, one synchronisation (in tree_logits; here if no rows).
        std::memcpy(m_tree_h + kTreeHPos, pos.data(), pos.size() * sizeof(int));
        std::memcpy(m_tree_h + kTreeHRows, rows.data(), rows.size() * sizeof(int));
        m_tree_parent.assign(parents.begin(), parents.end());
        m_tree_rows_cur = m_tree_rows_g;
        m_tree_stride = stride;
        m_tree_active = true;
        const Status st = run_chunk(tokens.data(), n, 0, /*sync*/ out_nodes.empty());
        m_tree_active = false;
        GB_TRY_STATUS(st);
        m_tree_n = n;
        return tree_logits(out_nodes);
    }
    if (!graph && rows.size() > m_tree_rows_cap) {
        if (m_tree_rows_d) GB_CU(cudaFree(m_tree_rows_d));
        m_tree_rows_d = nullptr;
        m_tree_rows_cap = 0;
        GB_CU(cudaMalloc(&m_tree_rows_d, rows.size() * sizeof(int)));
        m_tree_rows_cap = rows.size();
    }
    m_tree_rows_cur = graph ? m_tree_rows_g : m_tree_rows_d;
    GB_CU(cudaMemcpyAsync(const_cast<int *>(m_tree_rows_cur), rows.data(), rows.size() * sizeof(int), cudaMemcpyHostToDevice, m_stream));
    GB_CU(cudaMemcpyAsync(m_tree_pos_d, pos.data(), pos.size() * sizeof(int), cudaMemcpyHostToDevice, m_stream));
    m_tree_parent.assign(parents.begin(), parents.end());
    m_tree_stride = stride;
    // every layer for every node, no head (tree_logits() computes the rows asked for)
    m_tree_active = true;
    const Status st = run_chunk(tokens.data(), n, 0);
    m_tree_active = false;
    GB_TRY_STATUS(st);
    m_tree_n = n;
    return tree_logits(out_nodes);
}

Status CudaContextImpl::tree_logits(std::span<const int32_t> nodes) {
    const int32_t n_out = int32_t(nodes.size());
    if (n_out > m_d.nb) {
        return make_error(ErrorCode::InvalidArgument, "tree_logits: " + std::to_string(n_out) + " rows exceed n_batch " + std::to_string(m_d.nb));
    }
    for (int32_t node : nodes) {
        if (node < 0 || node >= m_tree_n) {
            return make_error(ErrorCode::InvalidArgument, "tree_logits: node " + std::to_string(node) + " is not in the pending tree of " +
                                                              std::to_string(m_tree_n) + " nodes");
        }
    }
    const Dims & d = m_d;
    const size_t V = size_t(d.V);
    m_logits_pending = false;
    m_logits_in_pin = false;
    m_tree_rows_pending = false;
    m_summ_valid = false;
    m_dev_rows = 0;
    m_n_logits = size_t(n_out) * V;
    m_last_n_out = n_out;
    if (n_out == 0) return {};
    GB_CU(cudaSetDevice(m_device));
    const cudaStream_t s = m_stream;
    if (tree_fused() && n_out <= kMatvecMaxTok) {
        // Fused: the head graph for n_out rows (gather, head, softcap,
        // summaries and their copy), then the one synchronisation.
        std::memcpy(m_tree_h + kTreeHOut, nodes.data(), size_t(n_out) * sizeof(int));
        GB_TRY_STATUS(capture_tree_head(n_out));
        GB_CU(cudaGraphLaunch(m_head_graph[n_out], s));
        GB_CU(cudaStreamSynchronize(s));
        static_assert(sizeof(RowSum) == sizeof(RowSummary), "RowSum mirrors gb::RowSummary");
        m_summ.resize(size_t(n_out));
        std::memcpy(m_summ.data(), m_row_sum_h, size_t(n_out) * sizeof(RowSum));
        m_summ_valid = true;
        m_logits_in_pin = m_logits_pin != nullptr;  // rows stay on the device: logits() copies them on first use
        m_tree_rows_pending = m_logits_in_pin;
        m_dev_row0 = 0;
        m_dev_rows = n_out;
        if (!m_logits_in_pin) {
            if (m_logits.size() < m_n_logits) m_logits.resize(m_n_logits);
            GB_CU(cudaMemcpy(m_logits.data(), m_logits_d, m_n_logits * sizeof(float), cudaMemcpyDeviceToHost));
        }
        return {};
    }
    // rows of the nodes' normed hidden states (and their q8, as the plain head reads) -> head
    GB_CU(cudaMemcpyAsync(m_tree_idx_d, nodes.data(), size_t(n_out) * sizeof(int), cudaMemcpyHostToDevice, s));
    const bool mv = n_out <= kMatvecMaxTok;
    const Q8Act q8hb = plane(m_q8b, 'h');  // (the final norm wrote plane(m_q8, 'h'))
    GB_TRY_STATUS(gather_rows(m_xn, m_tree_idx_d, n_out, int(d.E), m_proj, mv ? plane(m_q8, 'h') : Q8Act{}, mv ? q8hb : Q8Act{}, s));
    const MatvecJob out{m_output, m_logits_d, nullptr};
    // the head once for all rows (each head row read once per 16 nodes; bits of a one-token step)
    if (mv && m_head_multi) GB_TRY_STATUS(matvec_multi(out, q8hb, m_proj, n_out, s));
    else GB_TRY_STATUS(linear(&out, 1, m_proj, q8hb, n_out));
    if (m_hp.final_logit_softcap > 0.0f) GB_TRY_STATUS(softcap(m_logits_d, int64_t(n_out) * d.V, m_hp.final_logit_softcap, s));
    if (n_out <= kMatvecMaxTok + 1 && m_logits_pin) {
        // rows stay on the device: row_summaries() or logits() (which copies them) next
        m_logits_in_pin = true;
        m_tree_rows_pending = true;
        m_dev_row0 = 0;
        m_dev_rows = n_out;
    } else {
        if (m_logits.size() < m_n_logits) m_logits.resize(m_n_logits);
        GB_CU(cudaMemcpyAsync(m_logits.data(), m_logits_d, m_n_logits * sizeof(float), cudaMemcpyDeviceToHost, s));
        m_dev_row0 = 0;  // the rows stay on the device too (summaries)
        m_dev_rows = n_out;
    }
    GB_CU(cudaStreamSynchronize(s));
    return {};
}

Status CudaContextImpl::commit_tree(std::span<const int32_t> path) {
    const int32_t n = int32_t(path.size());
    if (n == 0) {
        m_tree_n = 0;
        return {};
    }
    for (int32_t k = 0; k < n; ++k) {
        const int32_t node = path[size_t(k)];
        const int32_t want_parent = k == 0 ? -1 : path[size_t(k) - 1];
        if (node < 0 || node >= m_tree_n || m_tree_parent[size_t(node)] != want_parent) {
            m_tree_n = 0;
            return make_error(ErrorCode::InvalidArgument, "commit_tree: entry " + std::to_string(k) + " (node " + std::to_string(node) +
                                                              ") does not continue a root path of the pending tree");
        }
    }
    m_tree_n = 0;
    GB_CU(cudaSetDevice(m_device));
    bool in_place = true;  // path[k] == k: the accepted nodes' K/V rows are where they belong (a chain's prefix)
    for (int32_t k = 0; k < n; ++k) in_place = in_place && path[size_t(k)] == k;
    if (!(tree_fused() && in_place)) {
        // (pageable source: staged by the copy call, so no synchronisation is needed for it; the
        // stream orders the compaction before the next forward)
        GB_CU(cudaMemcpyAsync(m_tree_idx_d, path.data(), size_t(n) * sizeof(int), cudaMemcpyHostToDevice, m_stream));
        GB_TRY_STATUS(kv_compact(m_k_cache, m_v_cache, m_gpu_layers, m_d.n_ctx, m_d.n_kv, m_n_past, m_tree_idx_d, n, m_stream));
        if (!tree_fused()) GB_CU(cudaStreamSynchronize(m_stream));
    }
    m_n_past += n;
    return {};
}

Result<Token> CudaContextImpl::greedy() const {
    if (m_n_logits == 0) return make_error(ErrorCode::InvalidArgument, "greedy_token: no logits yet");
    if (partial()) {  // the head ran on the CPU: logits are on the host
        const float * row = m_logits.data() + (m_n_logits - size_t(m_d.V));
        return Token(std::max_element(row, row + m_d.V) - row);
    }
    GB_CU(cudaSetDevice(m_device));
    const size_t V = size_t(m_d.V);
    const int32_t rows = int32_t(m_n_logits / V);
    const float * last = m_logits_d + size_t(std::max(0, (m_logits_pending ? m_last_n_out : m_last_n_out) - 1)) * V;
    (void)rows;
    GB_TRY_STATUS(argmax_rows(last, int(V), 1, m_argmax_d, m_stream));
    int tok = 0;
    GB_CU(cudaMemcpyAsync(&tok, m_argmax_d, sizeof(int), cudaMemcpyDeviceToHost, m_stream));
    GB_CU(cudaStreamSynchronize(m_stream));
    return Token(tok);
}

std::string gib(uint64_t b) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.2f GiB", double(b) / double(1ull << 30));
    return buf;
}

}  // namespace

namespace {

// Weight bytes of each layer on the device (matrices in the device layout,
// norms and biases as f32; an upper bound for the vectors).
std::vector<uint64_t> layer_weight_bytes(const Model & model, const Dims & d) {
    std::vector<uint64_t> w(size_t(d.n_layer), 0);
    for (int il = 0; il < d.n_layer; ++il) {
        for (const char * m : kLayerMatrices) w[size_t(il)] += matrix_bytes(model.file().find_tensor(layer_name(il, m)));
        w[size_t(il)] += uint64_t(4) * (2 * d.E + 2 * d.hd + 2 * d.E + d.n_q + 2 * d.n_kv);
    }
    return w;
}

// Device bytes of a context with n_gpu layers on the GPU (n_gpu == n_layer:
// everything, else the embedding, those layers and buffers without logits).
struct Split { uint64_t weights, kv, scratch, total; };
Split split_bytes(const Model & model, const Dims & d, const std::vector<uint64_t> & lw, int32_t n_gpu) {
    const gguf::File & f = model.file();
    const bool full = n_gpu >= d.n_layer;
    Split s{};
    for (int il = 0; il < std::min<int64_t>(n_gpu, d.n_layer); ++il) s.weights += lw[size_t(il)];
    s.weights += matrix_bytes(f.find_tensor("token_embd.weight")) + uint64_t(8) * d.hd;
    if (full) s.weights += matrix_bytes(f.find_tensor("output.weight")) + uint64_t(4) * d.E;
    s.kv = uint64_t(2) * 2 * uint64_t(std::min<int64_t>(n_gpu, d.n_layer)) * d.n_ctx * d.n_kv;
    s.scratch = scratch_bytes(d, full);
    s.total = s.weights + s.kv + s.scratch;
    return s;
}

}  // namespace

Result<MemoryEstimate> estimate_memory(const Model & model, const CudaContextParams & params) {
    const HParams & hp = model.hparams();
    const int32_t n_ctx = std::min(params.context.n_ctx, hp.n_ctx_train);
    const int32_t n_batch = std::min(params.context.n_batch, n_ctx);
    const Dims d = dims_of(hp, n_ctx, n_batch);
    const std::vector<uint64_t> lw = layer_weight_bytes(model, d);
    const int32_t n_gpu = params.n_gpu_layers < 0 ? hp.n_layer : std::min(params.n_gpu_layers, hp.n_layer);
    const Split sp = split_bytes(model, d, lw, n_gpu);
    MemoryEstimate e;
    e.weights = sp.weights;
    e.kv_cache = sp.kv;
    e.scratch = sp.scratch;
    e.total = sp.total;
    uint64_t layers_total = 0;
    for (uint64_t b : lw) layers_total += b;
    e.per_layer = hp.n_layer > 0 ? (layers_total + uint64_t(2) * 2 * d.n_layer * d.n_ctx * d.n_kv) / uint64_t(hp.n_layer) : 0;
    if (params.memory_budget > 0) {
        e.available = params.memory_budget;
    } else {
        int count = 0;
        cudaError_t ce = cudaGetDeviceCount(&count);
        if (ce != cudaSuccess) return make_error(ErrorCode::Unsupported, std::string("CUDA unavailable: ") + cudaGetErrorString(ce));
        if (params.device < 0 || params.device >= count) return make_error(ErrorCode::InvalidArgument, "CUDA: no device " + std::to_string(params.device));
        GB_CU(cudaSetDevice(params.device));
        size_t free_b = 0, total_b = 0;
        GB_CU(cudaMemGetInfo(&free_b, &total_b));
        e.available = free_b > kMargin ? free_b - kMargin : 0;
    }
    // The most layers that fit: all, else the largest partial split.
    e.layers_that_fit = 0;
    if (split_bytes(model, d, lw, hp.n_layer).total <= e.available) {
        e.layers_that_fit = hp.n_layer;
    } else {
        for (int32_t n = hp.n_layer - 1; n >= 1; --n) {
            if (split_bytes(model, d, lw, n).total <= e.available) {
                e.layers_that_fit = n;
                break;
            }
        }
    }
    return e;
}

Result<std::unique_ptr<Context>> create_context(std::shared_ptr<const Model> model, const CudaContextParams & params) {
    if (!model) return make_error(ErrorCode::InvalidArgument, "CUDA create_context: no model");
    const DeviceReport rep = probe();
    if (!rep.available) return make_error(ErrorCode::Unsupported, rep.message);
    const HParams & hp = model->hparams();
    if (params.context.n_ctx <= 0 || params.context.n_batch <= 0) return make_error(ErrorCode::InvalidArgument, "n_ctx and n_batch must be positive");
    if (params.context.kv_type != kv::KvType::F16) {
        return make_error(ErrorCode::Unsupported, "CUDA: the KV cache is F16 only on the GPU so far (Q8_0 KV runs on the CPU backend)");
    }
    {  // [spec] skip_layers: the same checks as the CPU Context
        std::vector<int32_t> uniq(params.context.skip_layers);
        for (int32_t l : uniq) {
            if (l < 0 || l >= hp.n_layer) {
                return make_error(ErrorCode::InvalidArgument, "skip layer " + std::to_string(l) + " outside 0.." + std::to_string(hp.n_layer - 1));
            }
        }
        std::sort(uniq.begin(), uniq.end());
        if (std::unique(uniq.begin(), uniq.end()) - uniq.begin() >= hp.n_layer) return make_error(ErrorCode::InvalidArgument, "cannot skip every layer");
    }
    if (hp.head_dim_k != hp.head_dim_v || hp.head_dim_k > 256 || hp.n_embd % 32 != 0 || hp.n_ff % 32 != 0 ||
        (int64_t(hp.n_head) * hp.head_dim_k) % 32 != 0) {
        return make_error(ErrorCode::Unsupported, "CUDA: this model's shapes are not supported (head size over 256, K/V head sizes differ, or widths not multiples of 32)");
    }
    const int32_t n_gpu = params.n_gpu_layers < 0 ? hp.n_layer : std::min(params.n_gpu_layers, hp.n_layer);
    auto est = estimate_memory(*model, params);
    if (!est) return est.error();
    if (est->total > est->available) {
        const std::string what = n_gpu >= hp.n_layer ? "the model needs" : std::to_string(n_gpu) + " of " + std::to_string(hp.n_layer) + " layers need";
        std::string msg = "CUDA: " + what + " about " + gib(est->total) + " on the GPU (weights " + gib(est->weights) +
                          ", KV cache " + gib(est->kv_cache) + ", buffers " + gib(est->scratch) + ") but " + gib(est->available) +
                          " is available; ";
        if (est->layers_that_fit > 0) {
            msg += std::to_string(est->layers_that_fit) + " of " + std::to_string(hp.n_layer) + " layers would fit (GPU layers " +
                   std::to_string(est->layers_that_fit) + ", -ngl " + std::to_string(est->layers_that_fit) +
                   "; the other layers then run on the CPU)";
        } else {
            msg += "not even one layer fits (use the CPU backend)";
        }
        msg += "; a smaller context (-c) also reduces the KV cache";
        return make_error(ErrorCode::OutOfMemory, msg);
    }
    const int32_t n_ctx = std::min(params.context.n_ctx, hp.n_ctx_train);
    const int32_t n_batch = std::min(params.context.n_batch, n_ctx);
    auto ctx = std::make_unique<CudaContextImpl>(std::move(model), n_ctx, n_batch, params);
    GB_TRY_STATUS(ctx->init());
    return std::unique_ptr<Context>(std::move(ctx));
}

Result<Token> greedy_token(const Context & ctx) {
    if (const auto * c = dynamic_cast<const CudaContextImpl *>(&ctx)) return c->greedy();
    const auto l = ctx.logits();
    const int64_t n = ctx.model().hparams().n_vocab;
    if (l.size() < size_t(n) || n <= 0) return make_error(ErrorCode::InvalidArgument, "greedy_token: no logits");
    const float * row = l.data() + (l.size() - size_t(n));
    return Token(std::max_element(row, row + n) - row);
}

}  // namespace gb::cuda
