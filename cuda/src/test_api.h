// Host-side harnesses around single kernels, for tests/cuda: upload inputs,
// poison the outputs (NaN bytes), run one kernel family, copy the result back.
#pragma once

#include "glassbox/result.h"
#include "glassbox/tensor_type.h"

#include <cstdint>
#include <string>
#include <vector>

namespace gb::cuda::testing {

// y [n_tok, n_rows] = x [n_tok, n_cols] . W^T (+ bias [n_rows] when not
// empty), W in GGUF bytes. gemm = true runs the prefill (tensor-core) path,
// else the decode (matvec) path.
Result<std::vector<float>> linear(TensorType t, const std::vector<uint8_t> & w, int64_t n_cols, int64_t n_rows,
                                  const std::vector<float> & x, int n_tok, bool gemm, const std::vector<float> & bias = {});
// Whether the prefill GEMM of type t and n_tok rows goes through cuBLAS now
// (loaded, and chosen by GB_CUDA_GEMM / the type / n_tok), and the loader's
// one-line description.
bool gemm_uses_cublas(TensorType t, int n_tok);
std::string cublas_describe();
// Several matrices sharing x in one matvec call (types may differ: the fast
// path mixes them in one launch); outputs concatenated job after job.
Result<std::vector<float>> linear_jobs(const std::vector<TensorType> & types, const std::vector<std::vector<uint8_t>> & ws,
                                       const std::vector<int64_t> & n_rows, int64_t n_cols, const std::vector<float> & x, int n_tok);
// Decode gate/up: y = act(Wg x) * (Wu x) through matvec_glu (x quantized to
// q8 first, like the decode path); q8_out gets y's q8 round trip.
Result<std::vector<float>> glu(TensorType tg, const std::vector<uint8_t> & wg, TensorType tu, const std::vector<uint8_t> & wu,
                               int64_t n_cols, int64_t n_rows, const std::vector<float> & x, int n_tok, int act,
                               std::vector<float> * q8_out);
// Whether the decode matvec (one plane of q8 activations) of a W of this type
// and shape, and the gate/up pair of it, take the streaming kernels of
// matvec_pipe.cu on this device.
bool pipe_taken(TensorType t, int64_t n_cols, int64_t n_rows, bool glu);
// Rows `rows` of W dequantized through the embedding kernel (scale applied).
Result<std::vector<float>> embed(TensorType t, const std::vector<uint8_t> & w, int64_t n_cols, int64_t n_rows,
                                 const std::vector<int> & rows, float scale);
// x += post_w ? rmsnorm(p) * post_w : p (when p non-empty); y = rmsnorm(x) * w.
// Returns y followed by the new x; q8 of y dequantized in q8_out.
Result<std::vector<float>> add_norm(std::vector<float> x, const std::vector<float> & p, const std::vector<float> & post_w,
                                    const std::vector<float> & w, float eps, int n, int n_tok, std::vector<float> * q8_out);
// v = act(g) * up; returns v and (q8_out) its q8 round trip.
Result<std::vector<float>> act(const std::vector<float> & g, const std::vector<float> & up, int act,
                               std::vector<float> * q8_out);
// Activations of the decode-path harnesses (linear, linear_jobs, glu,
// add_norm, act, q8_quantize, linear_multi, time_kernel) in two int8 planes
// (Q8Act::lo, the decode Context's form; the default) or one (off: the
// BatchForward's form).
void set_two_planes(bool on);
bool two_planes();
// x (n % 32 == 0) through the decode path's activation quantizer
// (q8_quant_warp): q [n], d [n / 32], s [n / 16], lo [n] (two planes; else empty).
struct Q8Out { std::vector<int8_t> q; std::vector<float> d, s; std::vector<int8_t> lo; };
Result<Q8Out> q8_quantize(const std::vector<float> & x);
// RoPE etc. on q/k/v rows at positions pos0.. ; returns q (f32) then K and V
// cache rows [pos0, pos0 + n_tok) converted back to f32.
struct QkvIn {
    std::vector<float> q, k, v, bq, bk, bv, q_norm, k_norm, inv_freq;
    bool neox = false; float q_scale = 1.0f, eps = 1e-6f;
    int n_head = 0, n_head_kv = 0, hd = 0, pos0 = 0, n_tok = 0, n_ctx = 0;
};
Result<std::vector<float>> qkv_post(const QkvIn & in);
// Attention of n_tok queries at positions pos0.. over f32 K/V rows [n_ctx, n_kv*hd]
// (converted to f16 on the device).
struct AttnIn {
    std::vector<float> q, k, v;
    int n_head = 0, n_head_kv = 0, hd = 0, window = 0, pos0 = 0, n_tok = 0, n_ctx = 0, n_split = 1;
    float scale = 1.0f;
    // Combine fused into the split kernel (AttnArgs::counters): run twice,
    // the output poisoned in between (the counters must be back at zero).
    bool fused = false;
};
Result<std::vector<float>> attention(const AttnIn & in);
Result<std::vector<int>> argmax_rows(const std::vector<float> & x, int n, int n_tok);
// [spec] y [n_tok, n_rows] through matvec_multi (each weight read once per up
// to 16 tokens; the output head of a verification tree).
Result<std::vector<float>> linear_multi(TensorType t, const std::vector<uint8_t> & w, int64_t n_cols, int64_t n_rows,
                                        const std::vector<float> & x, int n_tok);
// [spec] summarize_rows over x [n_rows, n]: per row argmax, max, log-sum-exp.
struct RowSummaryOut { int argmax; float max; double lse; };
Result<std::vector<RowSummaryOut>> row_summaries(const std::vector<float> & x, int n, int n_rows);
Result<std::vector<float>> softcap(const std::vector<float> & x, float cap);
// Timing (bench/bench_cuda_kernels, not tests): device microseconds per call
// (median of 5 graph replays of `iters` calls each, rotating over enough
// weight copies of random bytes to exceed the L2 cache). what: "matvec"
// (one job), "glu" (gate/up pair of the shape), "add_norm" (n_cols wide, one
// token). PDL off (plain stream order).
Result<double> time_kernel(const char * what, TensorType t, int64_t n_cols, int64_t n_rows, int iters);
// Whether a usable device is present (tests skip otherwise).
bool device_available(std::string * why);

}  // namespace gb::cuda::testing
