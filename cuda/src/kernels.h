// Launchers of the CUDA kernels (one family per .cu file). All run on the
// given stream, check the launch, and return a gb::Error with context.
#pragma once

#include "cu_common.h"

#include <cuda_fp16.h>

namespace gb::cuda {

// ---- matvec.cu: decode-path y = W x (quantized: dp4a against q8 x, one or
// two int8 planes: Q8Act) -------------------------------------------------------
struct MatvecJob {
    DevMat        w;
    float *       y    = nullptr;  // [n_tok, w.n_rows]
    const float * bias = nullptr;  // [w.n_rows] or null
};
// Runs up to 8 jobs that share the input x (n_cols = jobs' n_cols). xq: q8 of
// x (quantized types), xf: x in f32 (float types). n_tok rows of x.
Status matvec(const MatvecJob * jobs, int n_jobs, const Q8Act & xq, const float * xf, int n_tok, cudaStream_t s);
// [spec] One job (no bias) for n_tok tokens, each weight read once per up to 16
// tokens; every token's row has matvec()'s bits. For the output head of a
// verification tree (a matrix larger than L2). Other types: matvec().
Status matvec_multi(const MatvecJob & job, const Q8Act & xq, const float * xf, int n_tok, cudaStream_t s);
// Decode q/k/v with RoPE in the epilogue, for llama-style models (pairs
// (2i, 2i+1) rotated inside a head, no per-head norm): qkv[0] = q -> its y
// (f32, rotated, * q_scale), qkv[1] = k -> k_cache row *pos + t (f16,
// rotated), qkv[2] = v -> v_cache row *pos + t (f16); biases added first.
// One launch instead of matvec + qkv_post; same arithmetic as qkv_post.
struct RopeEpilogue {
    const int *   pos = nullptr;
    const float * inv_freq = nullptr;  // [hd / 2]
    int           hd = 0;
    float         q_scale = 1.0f;
    __half *      k_cache = nullptr;   // layer base, row stride = k rows
    __half *      v_cache = nullptr;
    // [spec] token trees: when set, row t is rotated at position rope_pos[t]
    // (its K/V still go to cache row *pos + t), as QkvPost::rope_pos.
    const int *   rope_pos = nullptr;
};
bool matvec_qkv_rope_supported(const MatvecJob * qkv, int hd, const Q8Act & xq, const float * xf);
Status matvec_qkv_rope(const MatvecJob * qkv, const RopeEpilogue & ep, const Q8Act & xq, const float * xf, int n_tok,
                       cudaStream_t s);
// y [n_tok, rows] = act(gate x) * (up x), and its q8 form in q_out when set
// (act: 0 SiLU, 1 GELU-tanh). Supported for Q4_K/Q6_K/Q8_0/F16 weights with
// rows % 32 == 0 (matvec_glu_supported).
bool matvec_glu_supported(const DevMat & gate, const DevMat & up);
Status matvec_glu(const DevMat & gate, const DevMat & up, int act, const Q8Act & xq, const float * xf, int n_tok, float * y,
                  const Q8Act & q_out, cudaStream_t s);

// ---- matvec_pipe.cu: Q4_K decode matvecs streaming the weights through shared
// memory with bulk copies (Hopper; one or two planes of q8 activations). matvec() and
// matvec_glu() take them where supported (GB_CUDA_PIPE=0: never). ------------
bool pipe_enabled();
// Blocks of kernel k (threads, dynamic smem) resident on the whole device at once (0: query failed).
int resident_blocks(const void * k, int threads, size_t smem = 0);
// gate/up Q4_K rows of 2048 or 4096 values, rows % 16 == 0
bool glu_pipe_supported(const DevMat & gate, const DevMat & up, const Q8Act & xq);
// y [n_tok, rows] = act(gate x) * (up x), f32 only
Status glu_pipe(const DevMat & gate, const DevMat & up, int act, const Q8Act & xq, int n_tok, float * y, cudaStream_t s);
// Q4_K rows of 2048 / 4096 values (rows % 16 == 0), Q4_K or Q6_K rows of 6208..16384
// values (rows % 4 == 0);
// at least GB_CUDA_PIPE_MIN_ROWS (2048) rows (gate/up too)
bool mv_pipe_supported(const DevMat & w, const Q8Act & xq);
Status mv_pipe(const DevMat & w, const Q8Act & xq, int n_tok, float * y, const float * bias, cudaStream_t s);

// ---- gemm.cu: prefill-path Y = X W^T on tensor cores (f16 in, f32 out) ------
struct GemmScratch {
    __half * x16 = nullptr;   // [n_tok_max * k_max]
    __half * w16 = nullptr;   // [w16_elems]
    size_t   w16_elems = 0;
};
// y [n_tok, w.n_rows] = x [n_tok, w.n_cols] . W^T (+ bias)
Status gemm(const DevMat & w, const float * x, int n_tok, float * y, const float * bias, const GemmScratch & s,
            cudaStream_t st);
// out [n_rows_out, n_cols] (f16) = rows [row0, row0 + n) of W dequantized
Status dequant_f16(const DevMat & w, int64_t row0, int64_t n, __half * out, cudaStream_t s);
Status f32_to_f16(const float * x, int64_t n, __half * y, cudaStream_t s);
// Whether gemm() of n_tok rows sends weights of type t through cuBLAS
// (cublas_dl.h; the rule is in gemm.cu).
bool gemm_uses_cublas(TensorType t, int n_tok);

// ---- ops.cu ------------------------------------------------------------------
// out[t] = scale * W[tokens[t]]  (f32 [n_tok, n_cols])
Status embed(const DevMat & w, const int * tokens, int n_tok, float scale, float * out, cudaStream_t s);
// Per row t of n_tok (length n): if p: x += (post_w ? rmsnorm(p) * post_w : p).
// Then y = rmsnorm(x) * w (y may be null), and its q8 form when q.q is set.
Status add_norm(float * x, const float * p, const float * post_w, const float * w, float eps, int n, int n_tok,
                float * y, const Q8Act & q, cudaStream_t s);
// Per 32 values: v = up ? act(g) * up : g (written back to g when up is set),
// quantized to q. act: 0 SiLU, 1 GELU-tanh.
Status act_quant(float * g, const float * up, int act, int64_t n_total, const Q8Act & q, cudaStream_t s);
// q/k/v post-processing for n_tok rows at positions *pos .. : biases, per-head
// RMSNorm (q_norm/k_norm), RoPE with inv_freq [hd/2], Q *= q_scale, K and V
// written as f16 to the cache rows (layer base, row stride n_kv * hd).
struct QkvPost {
    float * q; const float * k; const float * v;
    const float * bq; const float * bk; const float * bv;
    const float * q_norm; const float * k_norm;
    const float * inv_freq;
    bool neox; float q_scale; float eps;
    int n_head, n_head_kv, hd;
    __half * k_cache; __half * v_cache;
    // [spec] token trees: when set, row t is rotated at position rope_pos[t]
    // (its K/V still go to cache row *pos + t).
    const int * rope_pos = nullptr;
};
Status qkv_post(const QkvPost & a, const int * pos, int n_tok, cudaStream_t s);
// logits = cap * tanh(logits / cap)
Status softcap(float * x, int64_t n, float cap, cudaStream_t s);
// out[t] = argmax over row t of x [n_tok, n]
Status argmax_rows(const float * x, int n, int n_tok, int * out, cudaStream_t s);

// ---- attention.cu --------------------------------------------------------------
// out [n_tok, n_head * hd] = softmax(scale * q k^T) v over positions
// [lo, pos] for query t at pos = *pos0 + t, lo = window ? pos - window + 1 : 0.
// The key range of each query is cut into n_split parts (flash-decoding);
// part_acc [n_tok * n_head * n_split * hd] and part_ml [.. * 2] are scratch.
struct AttnArgs {
    const float * q; const __half * k; const __half * v;
    int n_head, n_head_kv, hd, window;
    float scale;
    float * out;
    float * part_acc; float * part_ml;
    Q8Act q8{};  // when set (decode), out is also quantized to q8 (hd % 32 == 0)
    // [spec] Token trees (tree_rows set): query t sits at position tree_pos[t]
    // and sees positions [lo, tree_pos[t]]: those below *pos0 (the committed
    // sequence) in their own cache rows, position *pos0 + i in cache row
    // tree_rows[t * tree_stride + i] (its ancestor at depth i). The split of
    // the key range is the same as for plain decoding at that position, so a
    // root path gives the bits of decoding it as a sequence.
    const int * tree_rows = nullptr;
    const int * tree_pos  = nullptr;
    int tree_stride = 0;
    // When set ([n_tok * n_head] ints, zero before the first launch; each
    // launch leaves them zero): the last split block of each head merges the
    // partials itself (no combine kernel).
    int * counters = nullptr;
};
Status attention(const AttnArgs & a, const int * pos0, int n_tok, int n_split, cudaStream_t s);
// ---- attention_tc.cu: the same on the tensor cores for prefill (n_split 1, no
// q8 output; f16 Q and P, f32 softmax and accumulation). attention() takes it
// for n_tok >= kFlashMinTok when the grid has at least kFlashMinBlocks blocks of
// 64 queries x 1 head (fewer leave most SMs idle: gemma-3-270m's 4 heads ran 3%
// slower than the old kernel). attention_flash_mode(hd): -1 unsupported head size
// or GB_CUDA_FLASH=0, 1 forced (GB_CUDA_FLASH=1, any grid size), 0 by size.
constexpr int kFlashMinTok = 16, kFlashMinBlocks = 48;
int attention_flash_mode(int hd);
Status attention_flash(const AttnArgs & a, const int * pos0, int n_tok, cudaStream_t s);

// ---- tree.cu: [spec] token trees on the Context --------------------------------
// dst row r [n] = src row nodes[r] (nodes on the device); the q8 rows too when
// q_src.q is set (n % 32 == 0).
Status gather_rows(const float * src, const int * nodes, int n_out, int n, float * dst, const Q8Act & q_src, const Q8Act & q_dst,
                   cudaStream_t s);
// Per layer of the [n_layer][n_ctx][n_kv] f16 K and V caches: row base + d =
// row base + path[d] for d = 0 .. n-1 in order (path on the device, path[d] >= d).
Status kv_compact(__half * k, __half * v, int n_layer, int64_t n_ctx, int64_t n_kv, int base, const int * path, int n, cudaStream_t s);
// Summaries of rows x [n_rows, n]: argmax (lowest index among the maxima),
// max, lse = log(sum exp(l - max)) (double). parts: [n_rows *
// row_summary_parts(n_rows)] scratch (kRowPartsMax per row at most).
struct RowPart { float max; int idx; double sum; };
struct RowSum  { int argmax; float max; double lse; };  // the layout of gb::RowSummary
constexpr int kRowPartsMax = 64;
int row_summary_parts(int n_rows);
Status summarize_rows(const float * x, int n, int n_rows, RowPart * parts, RowSum * out, cudaStream_t s);

}  // namespace gb::cuda
