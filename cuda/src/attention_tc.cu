// Prefill attention on the tensor cores (flash-attention style): a block takes
// 64 queries of one head, 4 warps of 16 query rows each. Per 64-key tile of
// the f16 cache: S = Q K^T (wmma, f16 operands, f32 accumulation), the online
// softmax of each row in f32 by the warp that owns it, then O = O * corr + P V
// with O kept in shared memory (f32) and P rounded to f16. Causal, sliding
// windows, GQA (head h reads KV head h / (n_head / n_head_kv)).
#include "kernels.h"

#include <mma.h>

#include <cstdlib>

namespace gb::cuda {
namespace {

using namespace nvcuda;

constexpr int FQ = 64, FK = 64, kFlashThreads = 128;

__device__ __forceinline__ void fa_cp_async16(void * smem, const void * gmem) {
    const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(s), "l"(gmem));
}

// Every array's size is a multiple of 32 bytes, so each starts 32-byte
// aligned (wmma's requirement); row pitches are multiples of 16 bytes.
template <int HD> struct FlashSmem {
    static constexpr int LDH = HD + 8, LDSC = FK + 4, LDP = FK + 8, LDO = HD + 4;
    __half q[FQ][LDH];
    __half k[FK][LDH];
    __half v[FK][LDH];
    float  s[FQ][LDSC];
    __half p[FQ][LDP];
    float  o[FQ][LDO];
    float  m[FQ], l[FQ];
};

template <int HD>
__global__ void __launch_bounds__(kFlashThreads) attn_flash_kernel(const AttnArgs a, const int * __restrict__ pos0p, int n_tok) {
    extern __shared__ __align__(128) unsigned char fa_smem[];
    using Sm = FlashSmem<HD>;
    Sm & sm = *reinterpret_cast<Sm *>(fa_smem);
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int t0 = blockIdx.x * FQ, h = blockIdx.y;
    const int g = h / (a.n_head / a.n_head_kv);
    const size_t n_kv_row = size_t(a.n_head_kv) * HD, n_q_row = size_t(a.n_head) * HD;
    const int pos0 = *pos0p;
    const int hi = pos0 + min(t0 + FQ, n_tok) - 1;  // last key any query of the block sees
    const int lo = a.window > 0 ? max(0, pos0 + t0 - a.window + 1) : 0;

    // Q tile (scaled, f16; rows past n_tok repeat the last query), O = 0
    for (int i = tid; i < FQ * HD; i += kFlashThreads) {
        const int r = i / HD, d = i % HD;
        const int t = min(t0 + r, n_tok - 1);
        sm.q[r][d] = __float2half_rn(a.q[size_t(t) * n_q_row + size_t(h) * HD + d] * a.scale);
        sm.o[r][d] = 0.0f;
    }
    if (tid < FQ) {
        sm.m[tid] = -INFINITY;
        sm.l[tid] = 0.0f;
    }
    const __half * kb = a.k + size_t(g) * HD;
    const __half * vb = a.v + size_t(g) * HD;
    constexpr int NF = HD >= 64 ? 4 : HD / 16;  // O fragments per pass

    for (int j0 = lo; j0 <= hi; j0 += FK) {
        __syncthreads();  // previous tile's K/V fully read (and the Q/O set-up done)
        for (int i = tid; i < FK * HD / 8; i += kFlashThreads) {
            const int r = i / (HD / 8), c = (i % (HD / 8)) * 8;
            const size_t j = size_t(min(j0 + r, hi));  // keys past hi are masked below
            fa_cp_async16(&sm.k[r][c], kb + j * n_kv_row + c);
            fa_cp_async16(&sm.v[r][c], vb + j * n_kv_row + c);
        }
        asm volatile("cp.async.commit_group;\n" ::);
        asm volatile("cp.async.wait_group 0;\n" ::);
        __syncthreads();

        // S [16 rows of this warp, FK] = Q K^T
        {
            wmma::fragment<wmma::accumulator, 16, 16, 16, float> sacc[FK / 16];
#pragma unroll
            for (int n = 0; n < FK / 16; ++n) wmma::fill_fragment(sacc[n], 0.0f);
#pragma unroll
            for (int kk = 0; kk < HD; kk += 16) {
                wmma::fragment<wmma::matrix_a, 16, 16, 16, __half, wmma::row_major> fq;
                wmma::load_matrix_sync(fq, &sm.q[warp * 16][kk], Sm::LDH);
#pragma unroll
                for (int n = 0; n < FK / 16; ++n) {
                    wmma::fragment<wmma::matrix_b, 16, 16, 16, __half, wmma::col_major> fk;
                    wmma::load_matrix_sync(fk, &sm.k[n * 16][kk], Sm::LDH);
                    wmma::mma_sync(sacc[n], fq, fk, sacc[n]);
                }
            }
#pragma unroll
            for (int n = 0; n < FK / 16; ++n)
                wmma::store_matrix_sync(&sm.s[warp * 16][n * 16], sacc[n], Sm::LDSC, wmma::mem_row_major);
        }
        __syncwarp();

        // online softmax of the warp's rows; lane holds keys j0 + lane, j0 + lane + 32
        for (int rr = 0; rr < 16; ++rr) {
            const int r = warp * 16 + rr;
            const int p = pos0 + min(t0 + r, n_tok - 1);
            const int lo_r = a.window > 0 ? p - a.window + 1 : 0;
            float x[2];
#pragma unroll
            for (int e = 0; e < 2; ++e) {
                const int j = j0 + lane + 32 * e;
                x[e] = (j <= p && j >= lo_r) ? sm.s[r][lane + 32 * e] : -INFINITY;
            }
            float mx = fmaxf(x[0], x[1]);
#pragma unroll
            for (int o = 16; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
            const float m_old = sm.m[r];
            const float m_new = fmaxf(m_old, mx);
            float pe[2], sum = 0.0f;
#pragma unroll
            for (int e = 0; e < 2; ++e) {
                pe[e] = x[e] == -INFINITY ? 0.0f : __expf(x[e] - m_new);
                sum += pe[e];
                sm.p[r][lane + 32 * e] = __float2half_rn(pe[e]);
            }
#pragma unroll
            for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
            const float corr = m_new == -INFINITY ? 1.0f : __expf(m_old - m_new);
            const float l_old = sm.l[r];
            __syncwarp();
            if (lane == 0) {
                sm.m[r] = m_new;
                sm.l[r] = l_old * corr + sum;
            }
            if (corr != 1.0f) {
                for (int d = lane; d < HD; d += 32) sm.o[r][d] *= corr;
            }
        }
        __syncwarp();

        // O [16 rows, HD] += P [16, FK] V [FK, HD]
#pragma unroll
        for (int dn = 0; dn < HD; dn += 16 * NF) {
            wmma::fragment<wmma::accumulator, 16, 16, 16, float> oacc[NF];
#pragma unroll
            for (int f = 0; f < NF; ++f) wmma::load_matrix_sync(oacc[f], &sm.o[warp * 16][dn + 16 * f], Sm::LDO, wmma::mem_row_major);
#pragma unroll
            for (int kk = 0; kk < FK; kk += 16) {
                wmma::fragment<wmma::matrix_a, 16, 16, 16, __half, wmma::row_major> fp;
                wmma::load_matrix_sync(fp, &sm.p[warp * 16][kk], Sm::LDP);
#pragma unroll
                for (int f = 0; f < NF; ++f) {
                    wmma::fragment<wmma::matrix_b, 16, 16, 16, __half, wmma::row_major> fv;
                    wmma::load_matrix_sync(fv, &sm.v[kk][dn + 16 * f], Sm::LDH);
                    wmma::mma_sync(oacc[f], fp, fv, oacc[f]);
                }
            }
#pragma unroll
            for (int f = 0; f < NF; ++f) wmma::store_matrix_sync(&sm.o[warp * 16][dn + 16 * f], oacc[f], Sm::LDO, wmma::mem_row_major);
        }
        __syncwarp();
    }
    __syncwarp();
    // out = O / l for the warp's rows
    for (int i = lane; i < 16 * HD; i += 32) {
        const int r = warp * 16 + i / HD, d = i % HD;
        const int t = t0 + r;
        if (t < n_tok) {
            const float l = sm.l[r];
            a.out[size_t(t) * n_q_row + size_t(h) * HD + d] = l > 0.0f ? sm.o[r][d] / l : 0.0f;
        }
    }
}

template <int HD> Status launch_flash(const AttnArgs & a, const int * pos0, int n_tok, cudaStream_t s) {
    constexpr size_t smem = sizeof(FlashSmem<HD>);
    static const cudaError_t attr = cudaFuncSetAttribute(attn_flash_kernel<HD>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem));
    GB_CU(attr);
    const dim3 grid(unsigned((n_tok + FQ - 1) / FQ), unsigned(a.n_head));
    attn_flash_kernel<HD><<<grid, kFlashThreads, smem, s>>>(a, pos0, n_tok);
    GB_CU_LAUNCH("attn_flash");
    return {};
}

}  // namespace

int attention_flash_mode(int hd) {
    if (hd != 32 && hd != 64 && hd != 128 && hd != 256) return -1;
    const char * e = std::getenv("GB_CUDA_FLASH");
    if (e && e[0] == '0') return -1;
    if (e && e[0] == '1') return 1;
    return 0;
}

Status attention_flash(const AttnArgs & a, const int * pos0, int n_tok, cudaStream_t s) {
    if (n_tok == 0) return {};
    if (a.n_head % a.n_head_kv != 0) return make_error(ErrorCode::Unsupported, "CUDA flash attention: uneven GQA");
    switch (a.hd) {
        case 32: return launch_flash<32>(a, pos0, n_tok, s);
        case 64: return launch_flash<64>(a, pos0, n_tok, s);
        case 128: return launch_flash<128>(a, pos0, n_tok, s);
        case 256: return launch_flash<256>(a, pos0, n_tok, s);
        default: return make_error(ErrorCode::Unsupported, "CUDA flash attention: head size " + std::to_string(a.hd));
    }
}

}  // namespace gb::cuda
