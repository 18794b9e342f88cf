// Prefill-path matrix products Y [n_tok, n_rows] = X [n_tok, K] W^T with the
// f16-rounded activations: through cuBLAS when libcublas is present (loaded at
// run time, cublas_dl.h; rule at gemm_mode), else on our wmma kernels below
// (16x16x16, f32 accumulation).
// Fused path (rows of a multiple of 64 values): weight tiles decoded into
// shared memory as f16 inside the GEMM. Otherwise (or GB_CUDA_GEMM=slab) the
// weight is dequantized in row slabs to global f16 first, then the f16 GEMM
// (tiles 64 tokens x 128 rows x 32 k, 8 warps of 32x32, cp.async double buffer).
#include "cublas_dl.h"
#include "kernels.h"
#include "quant_decode.cuh"

#include <cuda_bf16.h>

#include <mma.h>

#include <cstdlib>
#include <cstring>

namespace gb::cuda {
namespace {

using namespace nvcuda;

template <TensorType T>
__global__ void dequant_kernel(const DevMat w, int64_t row0, int64_t n_rows, __half * __restrict__ out) {
    const int64_t n_chunks = w.n_cols / 32;
    const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i >= n_rows * n_chunks) return;
    const int64_t r = i / n_chunks;
    const int c = int(i % n_chunks);
    const uint8_t * row = w.data + size_t(row0 + r) * w.stride;
    float v[32];
    row_chunk_floats<T>(row, w.d_off, c, v);
    uint4 * o = reinterpret_cast<uint4 *>(out + r * w.n_cols + 32 * int64_t(c));
#pragma unroll
    for (int k = 0; k < 4; ++k) {
        __half2 h[4];
#pragma unroll
        for (int m = 0; m < 4; ++m) h[m] = __floats2half2_rn(v[8 * k + 2 * m], v[8 * k + 2 * m + 1]);
        o[k] = *reinterpret_cast<uint4 *>(h);
    }
}

__global__ void f32_to_f16_kernel(const float * __restrict__ x, int64_t n, __half * __restrict__ y) {
    const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i < n) y[i] = __float2half_rn(x[i]);
}
__global__ void f32_to_bf16_kernel(const float * __restrict__ x, int64_t n, __nv_bfloat16 * __restrict__ y) {
    const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i < n) y[i] = __float2bfloat16_rn(x[i]);
}
// y [M, ldy] (columns [0, n)) += bias [n]
__global__ void add_bias_kernel(float * __restrict__ y, const float * __restrict__ bias, int M, int n, int ldy) {
    const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i >= int64_t(M) * n) return;
    const int r = int(i / n), c = int(i % n);
    y[size_t(r) * ldy + c] += bias[c];
}

constexpr int BM = 64, BN = 128, BK = 32, LDS = BK + 8, LDC = BN + 4;
constexpr int kGemmThreads = 256;

__device__ __forceinline__ void cp_async16(void * smem, const void * gmem) {
    const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(s), "l"(gmem));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N> __device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N)); }

struct GemmSmem {
    __half a[2][BM][LDS];
    __half b[2][BN][LDS];
};

// C [M, N] (ldc) = A [M, K] . B [N, K]^T (+ bias[N]); K % 32 == 0.
__global__ void __launch_bounds__(kGemmThreads) gemm_f16_kernel(const __half * __restrict__ A, const __half * __restrict__ B,
                                                                float * __restrict__ C, const float * __restrict__ bias,
                                                                int M, int N, int K, int ldc) {
    __shared__ __align__(128) unsigned char smem_raw[sizeof(GemmSmem) > sizeof(float) * BM * LDC ? sizeof(GemmSmem)
                                                                                                 : sizeof(float) * BM * LDC];
    GemmSmem & sm = *reinterpret_cast<GemmSmem *>(smem_raw);
    const int tid = threadIdx.x, warp = tid >> 5;
    const int wm = warp >> 2, wn = warp & 3;  // 2 x 4 warps
    const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;

    auto load_stage = [&](int st, int k0) {
        {  // A: 64 rows x 4 16-byte pieces = 256
            const int r = tid >> 2, p = tid & 3;
            const int gr = min(m0 + r, M - 1);
            cp_async16(&sm.a[st][r][p * 8], A + size_t(gr) * K + k0 + p * 8);
        }
#pragma unroll
        for (int i = 0; i < 2; ++i) {  // B: 128 rows x 4 = 512
            const int idx = tid + i * kGemmThreads;
            const int r = idx >> 2, p = idx & 3;
            const int gr = min(n0 + r, N - 1);
            cp_async16(&sm.b[st][r][p * 8], B + size_t(gr) * K + k0 + p * 8);
        }
        cp_async_commit();
    };

    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[2][2];
#pragma unroll
    for (int i = 0; i < 2; ++i)
#pragma unroll
        for (int j = 0; j < 2; ++j) wmma::fill_fragment(acc[i][j], 0.0f);

    const int KT = K / BK;
    load_stage(0, 0);
    for (int kt = 0; kt < KT; ++kt) {
        const int st = kt & 1;
        if (kt + 1 < KT) {
            load_stage(st ^ 1, (kt + 1) * BK);
            cp_async_wait<1>();
        } else {
            cp_async_wait<0>();
        }
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < BK; kk += 16) {
            wmma::fragment<wmma::matrix_a, 16, 16, 16, __half, wmma::row_major> fa[2];
            wmma::fragment<wmma::matrix_b, 16, 16, 16, __half, wmma::col_major> fb[2];
#pragma unroll
            for (int i = 0; i < 2; ++i) wmma::load_matrix_sync(fa[i], &sm.a[st][wm * 32 + i * 16][kk], LDS);
#pragma unroll
            for (int j = 0; j < 2; ++j) wmma::load_matrix_sync(fb[j], &sm.b[st][wn * 32 + j * 16][kk], LDS);
#pragma unroll
            for (int i = 0; i < 2; ++i)
#pragma unroll
                for (int j = 0; j < 2; ++j) wmma::mma_sync(acc[i][j], fa[i], fb[j], acc[i][j]);
        }
        __syncthreads();
    }
    float * cs = reinterpret_cast<float *>(smem_raw);
#pragma unroll
    for (int i = 0; i < 2; ++i)
#pragma unroll
        for (int j = 0; j < 2; ++j)
            wmma::store_matrix_sync(cs + (wm * 32 + i * 16) * LDC + wn * 32 + j * 16, acc[i][j], LDC, wmma::mem_row_major);
    __syncthreads();
    for (int idx = tid; idx < BM * BN; idx += kGemmThreads) {
        const int r = idx / BN, c = idx % BN;
        const int gr = m0 + r, gc = n0 + c;
        if (gr < M && gc < N) C[size_t(gr) * ldc + gc] = cs[r * LDC + c] + (bias ? bias[gc] : 0.0f);
    }
}

// ---- fused path: weight tiles decoded straight into shared memory ----------
// Block tile BM tokens x 128 weight rows, k steps of 64 values: per step each
// of 256 threads decodes one 32-value chunk of one weight row to f16 in shared
// memory (the quantized bytes are read once per token tile, from L2 after the
// first), while the activation tile (f16, converted once per call) arrives by
// cp.async; two stages. 8 warps as 2 (tokens) x 4 (rows), warp tile
// (BM/2) x 32, wmma 16x16x16 with f32 accumulation.
constexpr int QBN = 128, QBK = 64, QLDS = QBK + 8;  // 144-byte smem rows: 16-byte aligned, conflict-free

// Chunk c (32 values) of a row as f16, 4 x 16 bytes (values 8k .. 8k+7 in h[k]).
// Quantized types go through the common chunk form without int->float
// conversions (quarter rate): byte b (int8) -> f16 1024 + (b ^ 0x80) by a
// byte permute, minus 1152 (exact), then sc * q + mn in f16x2 with one
// rounding. Scales too small for a normal f16 take the f32 route instead.
template <TensorType T> __device__ __forceinline__ void chunk_f16(const uint8_t * row, size_t d_off, int c, uint4 (&h)[4]) {
    if constexpr (T == TensorType::F16) {
#pragma unroll
        for (int k = 0; k < 4; ++k) h[k] = ld128(row + 64 * size_t(c) + 16 * k);
        return;
    } else {
        float v[32];
        bool via_f32 = true;
        if constexpr (T != TensorType::F32 && T != TensorType::BF16) {
            Chunk ch;
            decode_chunk<T>(row, d_off, c, ch);
            constexpr float kMinNormal = 6.1035156e-05f;  // 2^-14
            bool normal = true;
#pragma unroll
            for (int hf = 0; hf < 2; ++hf) {
                normal = normal && (ch.sc[hf] == 0.0f || fabsf(ch.sc[hf]) >= kMinNormal) &&
                         (ch.mn[hf] == 0.0f || fabsf(ch.mn[hf]) >= kMinNormal);
            }
            if (normal) {
                via_f32 = false;
                const __half2 off = __float2half2_rn(1152.0f);
                uint32_t hw[16];
#pragma unroll
                for (int hf = 0; hf < 2; ++hf) {
                    const __half2 sc = __float2half2_rn(ch.sc[hf]), mn = __float2half2_rn(ch.mn[hf]);
#pragma unroll
                    for (int i = 0; i < 4; ++i) {  // q[4 hf + i]: values 16 hf + 4 i .. + 3
                        const uint32_t x = uint32_t(ch.q[4 * hf + i]) ^ 0x80808080u;
                        const uint32_t lo = __byte_perm(x, 0x64646464u, 0x4140), hi = __byte_perm(x, 0x64646464u, 0x4342);
                        __half2 a = *reinterpret_cast<const __half2 *>(&lo), b = *reinterpret_cast<const __half2 *>(&hi);
                        a = __hfma2(__hsub2(a, off), sc, mn);
                        b = __hfma2(__hsub2(b, off), sc, mn);
                        hw[8 * hf + 2 * i] = *reinterpret_cast<const uint32_t *>(&a);
                        hw[8 * hf + 2 * i + 1] = *reinterpret_cast<const uint32_t *>(&b);
                    }
                }
#pragma unroll
                for (int k = 0; k < 4; ++k) h[k] = make_uint4(hw[4 * k], hw[4 * k + 1], hw[4 * k + 2], hw[4 * k + 3]);
            } else {
#pragma unroll
                for (int e = 0; e < 32; ++e) v[e] = chunk_value(ch, e);
            }
        } else {
            load_float_chunk<T>(row, c, v);
        }
        if (via_f32) {
#pragma unroll
            for (int k = 0; k < 4; ++k) {
                __half2 p[4];
#pragma unroll
                for (int m = 0; m < 4; ++m) p[m] = __floats2half2_rn(v[8 * k + 2 * m], v[8 * k + 2 * m + 1]);
                h[k] = *reinterpret_cast<uint4 *>(p);
            }
        }
    }
}

template <int BM> struct QSmem {
    __half a[2][BM][QLDS];
    __half b[2][QBN][QLDS];
};
template <int BM> constexpr size_t qgemm_smem() {
    return sizeof(QSmem<BM>) > sizeof(float) * BM * (QBN + 4) ? sizeof(QSmem<BM>) : sizeof(float) * BM * (QBN + 4);
}

// Y [M, ldy] (columns [0, w.n_rows)) = X [M, K] (f16) . W^T (+ bias); K % 64 == 0.
template <TensorType T, int BM>
__global__ void __launch_bounds__(kGemmThreads, 2) gemm_q_kernel(const DevMat w, const __half * __restrict__ X,
                                                                 float * __restrict__ Y, const float * __restrict__ bias,
                                                                 int M, int ldy) {
    extern __shared__ __align__(128) unsigned char qsmem[];
    QSmem<BM> & sm = *reinterpret_cast<QSmem<BM> *>(qsmem);
    constexpr int FM = BM / 32;  // 16-row fragments per warp
    const int tid = threadIdx.x, warp = tid >> 5;
    const int wm = warp >> 2, wn = warp & 3;
    const int m0 = blockIdx.x * BM, n0 = blockIdx.y * QBN;
    const int N = int(w.n_rows), K = int(w.n_cols);
    const int dr = tid >> 1, dc = tid & 1;  // this thread decodes row n0 + dr, chunk dc of each step
    const uint8_t * wrow = w.data + size_t(min(n0 + dr, N - 1)) * w.stride;

    constexpr bool kAsyncB = T == TensorType::F16;  // f16 weights: straight to shared memory by cp.async
    auto load_a = [&](int st, int k0) {
        constexpr int kPieces = BM * QBK / 8;  // 16-byte pieces
#pragma unroll
        for (int i = 0; i < kPieces / kGemmThreads; ++i) {
            const int idx = tid + i * kGemmThreads;
            const int r = idx >> 3, p = idx & 7;
            cp_async16(&sm.a[st][r][p * 8], X + size_t(min(m0 + r, M - 1)) * K + k0 + p * 8);
        }
        if constexpr (kAsyncB) {
#pragma unroll
            for (int i = 0; i < QBN * QBK / 8 / kGemmThreads; ++i) {
                const int idx = tid + i * kGemmThreads;
                const int r = idx >> 3, p = idx & 7;
                cp_async16(&sm.b[st][r][p * 8], w.data + size_t(min(n0 + r, N - 1)) * w.stride + size_t(k0 + p * 8) * 2);
            }
        }
        cp_async_commit();
    };
    auto decode_b = [&](int k0, uint4 (&h)[4]) {
        if constexpr (!kAsyncB) chunk_f16<T>(wrow, w.d_off, k0 / 32 + dc, h);
    };
    auto store_b = [&](int st, const uint4 (&h)[4]) {
        if constexpr (!kAsyncB) {
            uint4 * o = reinterpret_cast<uint4 *>(&sm.b[st][dr][dc * 32]);
#pragma unroll
            for (int k = 0; k < 4; ++k) o[k] = h[k];
        }
    };

    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[FM][2];
#pragma unroll
    for (int i = 0; i < FM; ++i)
#pragma unroll
        for (int j = 0; j < 2; ++j) wmma::fill_fragment(acc[i][j], 0.0f);

    const int KT = K / QBK;
    {
        load_a(0, 0);
        uint4 h[4];
        decode_b(0, h);
        store_b(0, h);
        cp_async_wait<0>();
        __syncthreads();
    }
    for (int kt = 0; kt < KT; ++kt) {
        const int st = kt & 1;
        const int kn = min(kt + 1, KT - 1) * QBK;  // the last step decodes a spare copy into the idle stage
        if (kt + 1 < KT) load_a(st ^ 1, kn);
        uint4 h[4];
        decode_b(kn, h);  // global loads in flight during the products below
#pragma unroll
        for (int kk = 0; kk < QBK; kk += 16) {
            wmma::fragment<wmma::matrix_b, 16, 16, 16, __half, wmma::col_major> fb[2];
#pragma unroll
            for (int j = 0; j < 2; ++j) wmma::load_matrix_sync(fb[j], &sm.b[st][wn * 32 + j * 16][kk], QLDS);
#pragma unroll
            for (int i = 0; i < FM; ++i) {
                wmma::fragment<wmma::matrix_a, 16, 16, 16, __half, wmma::row_major> fa;
                wmma::load_matrix_sync(fa, &sm.a[st][wm * (BM / 2) + i * 16][kk], QLDS);
#pragma unroll
                for (int j = 0; j < 2; ++j) wmma::mma_sync(acc[i][j], fa, fb[j], acc[i][j]);
            }
        }
        store_b(st ^ 1, h);
        cp_async_wait<0>();
        __syncthreads();
    }
    // epilogue through shared memory: + bias, coalesced rows
    constexpr int LDC_Q = QBN + 4;
    float * cs = reinterpret_cast<float *>(qsmem);
#pragma unroll
    for (int i = 0; i < FM; ++i)
#pragma unroll
        for (int j = 0; j < 2; ++j)
            wmma::store_matrix_sync(cs + (wm * (BM / 2) + i * 16) * LDC_Q + wn * 32 + j * 16, acc[i][j], LDC_Q, wmma::mem_row_major);
    __syncthreads();
    const bool vec = ldy % 4 == 0;
    for (int idx = tid; idx < BM * QBN / 4; idx += kGemmThreads) {
        const int r = idx / (QBN / 4), c = 4 * (idx % (QBN / 4));
        const int gr = m0 + r, gc = n0 + c;
        if (gr >= M) continue;
        const float * src = cs + r * LDC_Q + c;
        float * dst = Y + size_t(gr) * ldy + gc;
        if (vec && gc + 4 <= N) {
            float4 o = make_float4(src[0], src[1], src[2], src[3]);
            if (bias) { o.x += bias[gc]; o.y += bias[gc + 1]; o.z += bias[gc + 2]; o.w += bias[gc + 3]; }
            *reinterpret_cast<float4 *>(dst) = o;
        } else {
            for (int e = 0; e < 4 && gc + e < N; ++e) dst[e] = src[e] + (bias ? bias[gc + e] : 0.0f);
        }
    }
}

template <TensorType T, int BM>
Status launch_gemm_q(const DevMat & w, const __half * x16, int n_tok, float * y, const float * bias, cudaStream_t st) {
    constexpr size_t smem = qgemm_smem<BM>();
    static const cudaError_t attr = cudaFuncSetAttribute(gemm_q_kernel<T, BM>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem));
    GB_CU(attr);
    const dim3 grid(unsigned((n_tok + BM - 1) / BM), unsigned((w.n_rows + QBN - 1) / QBN));
    gemm_q_kernel<T, BM><<<grid, kGemmThreads, smem, st>>>(w, x16, y, bias, n_tok, int(w.n_rows));
    GB_CU_LAUNCH("gemm_q");
    return {};
}

int sm_count() {
    static const int n = [] {
        int dev = 0, v = 0;
        if (cudaGetDevice(&dev) != cudaSuccess || cudaDeviceGetAttribute(&v, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess) return 132;
        return v > 0 ? v : 132;
    }();
    return n;
}

// GB_CUDA_GEMM: "slab" (dequantize to an f16 slab, then our f16 GEMM), "64" /
// "128" (fused, that token tile), "cublas" (cuBLAS for every type and size),
// unset = cuBLAS when it is loaded (cublas_dl.h): F16/BF16 weights straight,
// quantized weights dequantized to f16 slabs first when n_tok >=
// GB_CUDA_CUBLAS_MIN_TOK (default 0: always); otherwise our fused kernel with
// the tile chosen by size. Any other setting forces our kernels. Measured on
// an H200 (h5/cudaperf), pp512: 1B F16 49.3k -> 100.0k t/s, 1B Q4_K_M 41.1k ->
// 77.0k, 1B Q8_0 45.4k -> 76.4k, 8B Q4_K_M 9.48k -> 17.24k; 1B Q4_K_M pp128
// 16.6k -> 32.8k, pp64 8.4k -> 18.2k; 8B pp128 4.25k -> 6.65k. (Below 64
// tokens the fused kernel runs one 64-token tile whatever n_tok is, while the
// slab's cost stays and cuBLAS's shrinks, so cuBLAS stays ahead there too.)
constexpr int kModeAuto = 0, kModeSlab = -1, kModeCublas = -2;
int gemm_mode() {
    const char * e = std::getenv("GB_CUDA_GEMM");
    if (!e || !*e) return kModeAuto;
    if (std::strcmp(e, "slab") == 0) return kModeSlab;
    if (std::strcmp(e, "cublas") == 0) return kModeCublas;
    return std::atoi(e);
}

Status add_bias(float * y, const float * bias, int M, int n, int ldy, cudaStream_t st) {
    const int64_t total = int64_t(M) * n;
    if (!bias || total == 0) return {};
    add_bias_kernel<<<unsigned((total + 255) / 256), 256, 0, st>>>(y, bias, M, n, ldy);
    GB_CU_LAUNCH("add_bias");
    return {};
}

// cuBLAS for weights of f16/bf16 bits: straight from the uploaded rows.
Status gemm_cublas_float(const DevMat & w, const float * x, int n_tok, float * y, const float * bias, const GemmScratch & s,
                         cudaStream_t st) {
    const int64_t K = w.n_cols, N = w.n_rows, n = int64_t(n_tok) * K;
    blas::Operand op = blas::Operand::F16;
    if (w.type == TensorType::BF16) {
        op = blas::Operand::BF16;  // operands of one type: x rounded to bf16 (s.x16 has the room)
        f32_to_bf16_kernel<<<unsigned((n + 255) / 256), 256, 0, st>>>(x, n, reinterpret_cast<__nv_bfloat16 *>(s.x16));
        GB_CU_LAUNCH("f32_to_bf16");
    } else {
        GB_TRY_STATUS(f32_to_f16(x, n, s.x16, st));
    }
    GB_TRY_STATUS(blas::gemm_xwT(op, w.data, int64_t(w.stride / 2), s.x16, K, y, N, n_tok, int(N), int(K), st));
    return add_bias(y, bias, n_tok, int(N), int(N), st);
}

}  // namespace

bool gemm_uses_cublas(TensorType t, int n_tok) {
    if (!blas::available()) return false;
    const int mode = gemm_mode();
    if (mode == kModeCublas) return true;
    if (mode != kModeAuto) return false;
    if (t == TensorType::F16 || t == TensorType::BF16) return true;
    static const int min_tok = [] {
        const char * e = std::getenv("GB_CUDA_CUBLAS_MIN_TOK");
        return e && *e ? std::atoi(e) : 0;
    }();
    return n_tok >= min_tok;
}

Status dequant_f16(const DevMat & w, int64_t row0, int64_t n, __half * out, cudaStream_t s) {
    const int64_t total = n * (w.n_cols / 32);
    if (total == 0) return {};
    const int threads = 128;
    const unsigned blocks = unsigned((total + threads - 1) / threads);
    const bool ok = dispatch_type(w.type, [&]<TensorType T>() { dequant_kernel<T><<<blocks, threads, 0, s>>>(w, row0, n, out); });
    if (!ok) return make_error(ErrorCode::Unsupported, std::string("CUDA dequant: type ") + type_name(w.type) + " not supported");
    GB_CU_LAUNCH("dequant");
    return {};
}

Status f32_to_f16(const float * x, int64_t n, __half * y, cudaStream_t s) {
    if (n == 0) return {};
    f32_to_f16_kernel<<<unsigned((n + 255) / 256), 256, 0, s>>>(x, n, y);
    GB_CU_LAUNCH("f32_to_f16");
    return {};
}

Status gemm(const DevMat & w, const float * x, int n_tok, float * y, const float * bias, const GemmScratch & s,
            cudaStream_t st) {
    const int64_t K = w.n_cols, N = w.n_rows;
    if (K % BK != 0) return make_error(ErrorCode::Unsupported, "CUDA gemm: row length not a multiple of 32");
    const bool cublas = gemm_uses_cublas(w.type, n_tok) && N <= INT32_MAX && K <= INT32_MAX;
    if (cublas && (w.type == TensorType::F16 || w.type == TensorType::BF16)) return gemm_cublas_float(w, x, n_tok, y, bias, s, st);
    GB_TRY_STATUS(f32_to_f16(x, int64_t(n_tok) * K, s.x16, st));
    const int mode = cublas ? kModeSlab : gemm_mode();
    if (mode >= 0 && K % QBK == 0 && K <= INT32_MAX / 2 && N <= INT32_MAX / 2) {
        // Fewer than two 128-token tiles per SM: the 64-token tile (more blocks).
        const int64_t tiles128 = ((n_tok + 127) / 128) * ((N + QBN - 1) / QBN);
        const bool big = mode == 128 || (mode == 0 && n_tok > 64 && tiles128 >= 2 * sm_count());
        Status r;
        const bool ok = dispatch_type(w.type, [&]<TensorType T>() {
            if (big) (void)(r = launch_gemm_q<T, 128>(w, s.x16, n_tok, y, bias, st));
            else (void)(r = launch_gemm_q<T, 64>(w, s.x16, n_tok, y, bias, st));
        });
        if (!ok) return make_error(ErrorCode::Unsupported, std::string("CUDA gemm: type ") + type_name(w.type) + " not supported");
        return r;
    }
    int64_t slab = int64_t(s.w16_elems / size_t(K)) / BN * BN;
    if (slab <= 0) return make_error(ErrorCode::Internal, "CUDA gemm: weight scratch too small");
    for (int64_t r0 = 0; r0 < N; r0 += slab) {
        const int64_t nr = std::min<int64_t>(slab, N - r0);
        GB_TRY_STATUS(dequant_f16(w, r0, nr, s.w16, st));
        if (cublas) {  // slab [nr, K] f16 -> columns [r0, r0 + nr) of y
            GB_TRY_STATUS(blas::gemm_xwT(blas::Operand::F16, s.w16, K, s.x16, K, y + r0, N, n_tok, int(nr), int(K), st));
            GB_TRY_STATUS(add_bias(y + r0, bias ? bias + r0 : nullptr, n_tok, int(nr), int(N), st));
            continue;
        }
        const dim3 grid(unsigned((nr + BN - 1) / BN), unsigned((n_tok + BM - 1) / BM));
        gemm_f16_kernel<<<grid, kGemmThreads, 0, st>>>(s.x16, s.w16, y + r0, bias ? bias + r0 : nullptr, n_tok, int(nr),
                                                       int(K), int(N));
        GB_CU_LAUNCH("gemm_f16");
    }
    return {};
}

}  // namespace gb::cuda
