// Decode-path matrix-vector products for every weight type. A warp computes
// R rows; lane l takes 32-value chunks l, l+32, ... of the row; quantized
// weights are decoded to int8 lanes and dotted with the q8 activations by
// dp4a (integer sums exact, scales applied per 16 values in f32); float
// weights are dotted with the f32 activations. Up to 8 matrices that share x
// run in one launch (q/k/v, gate/up).
#include "kernels.h"
#include "quant_decode.cuh"

namespace gb::cuda {
namespace {

constexpr int kWarps = 4;        // warps per block
constexpr int kRows  = 2;        // rows per warp
constexpr int kMaxJobs = 8;

struct JobsArg {
    DevMat        w[kMaxJobs];
    float *       y[kMaxJobs];
    const float * bias[kMaxJobs];
    int           group_end[kMaxJobs];  // cumulative row groups (kRows rows each)
    int           n;
};

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

// Finds the job and first row of this warp's group; false when out of range.
__device__ __forceinline__ bool locate(const JobsArg & jobs, int group, int & j, int & row0) {
    j = 0;
    while (j < jobs.n && group >= jobs.group_end[j]) ++j;
    if (j >= jobs.n) return false;
    row0 = (group - (j ? jobs.group_end[j - 1] : 0)) * kRows;
    return true;
}

template <TensorType T>
__global__ void __launch_bounds__(kWarps * 32) matvec_q_kernel(const JobsArg jobs, const int8_t * __restrict__ xq,
                                                              const float * __restrict__ xd, const float * __restrict__ xs,
                                                              int n_cols) {
    const int lane = threadIdx.x & 31;
    const int group = blockIdx.x * kWarps + (threadIdx.x >> 5);
    int j, row0;
    if (!locate(jobs, group, j, row0)) return;
    const DevMat & w = jobs.w[j];
    const int tok = blockIdx.y;
    const int n_chunks = n_cols / 32;
    xq += size_t(tok) * n_cols;
    xd += size_t(tok) * n_chunks;
    xs += size_t(tok) * n_chunks * 2;
    const uint8_t * rows[kRows];
#pragma unroll
    for (int r = 0; r < kRows; ++r) rows[r] = w.data + size_t(min(row0 + r, int(w.n_rows) - 1)) * w.stride;

    float acc[kRows] = {};
    for (int c = lane; c < n_chunks; c += 32) {
        uint32_t xv[8];
        ld256(reinterpret_cast<const uint8_t *>(xq) + 32 * size_t(c), xv);
        const float d = __ldg(xd + c);
        const float2 s = __ldg(reinterpret_cast<const float2 *>(xs) + c);
#pragma unroll
        for (int r = 0; r < kRows; ++r) {
            Chunk ch;
            decode_chunk<T>(rows[r], w.d_off, c, ch);
            int s0 = 0, s1 = 0;
#pragma unroll
            for (int i = 0; i < 4; ++i) {
                s0 = __dp4a(ch.q[i], int(xv[i]), s0);
                s1 = __dp4a(ch.q[4 + i], int(xv[4 + i]), s1);
            }
            acc[r] += d * (ch.sc[0] * float(s0) + ch.sc[1] * float(s1)) + ch.mn[0] * s.x + ch.mn[1] * s.y;
        }
    }
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
        const float v = warp_sum(acc[r]);
        const int row = row0 + r;
        if (lane == r && row < w.n_rows) {
            jobs.y[j][size_t(tok) * w.n_rows + row] = v + (jobs.bias[j] ? jobs.bias[j][row] : 0.0f);
        }
    }
}

template <TensorType T>
__global__ void __launch_bounds__(kWarps * 32) matvec_f_kernel(const JobsArg jobs, const float * __restrict__ xf, int n_cols) {
    const int lane = threadIdx.x & 31;
    const int group = blockIdx.x * kWarps + (threadIdx.x >> 5);
    int j, row0;
    if (!locate(jobs, group, j, row0)) return;
    const DevMat & w = jobs.w[j];
    const int tok = blockIdx.y;
    const int n_chunks = n_cols / 32;
    xf += size_t(tok) * n_cols;
    const uint8_t * rows[kRows];
#pragma unroll
    for (int r = 0; r < kRows; ++r) rows[r] = w.data + size_t(min(row0 + r, int(w.n_rows) - 1)) * w.stride;
    float acc[kRows] = {};
    for (int c = lane; c < n_chunks; c += 32) {
        float x[32];
        const float4 * xp = reinterpret_cast<const float4 *>(xf + 32 * size_t(c));
#pragma unroll
        for (int i = 0; i < 8; ++i) {
            const float4 f = __ldg(xp + i);
            x[4 * i] = f.x; x[4 * i + 1] = f.y; x[4 * i + 2] = f.z; x[4 * i + 3] = f.w;
        }
#pragma unroll
        for (int r = 0; r < kRows; ++r) {
            float v[32];
            load_float_chunk<T>(rows[r], c, v);
            float a = 0.0f;
#pragma unroll
            for (int i = 0; i < 32; ++i) a = fmaf(v[i], x[i], a);
            acc[r] += a;
        }
    }
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
        const float v = warp_sum(acc[r]);
        const int row = row0 + r;
        if (lane == r && row < w.n_rows) {
            jobs.y[j][size_t(tok) * w.n_rows + row] = v + (jobs.bias[j] ? jobs.bias[j][row] : 0.0f);
        }
    }
}

Status launch_group(const MatvecJob * jobs, int n, const Q8Act & xq, const float * xf, int n_tok, cudaStream_t s) {
    JobsArg a{};
    int groups = 0;
    for (int i = 0; i < n; ++i) {
        a.w[i]    = jobs[i].w;
        a.y[i]    = jobs[i].y;
        a.bias[i] = jobs[i].bias;
        groups += int((jobs[i].w.n_rows + kRows - 1) / kRows);
        a.group_end[i] = groups;
    }
    a.n = n;
    const TensorType t = jobs[0].w.type;
    const int n_cols   = int(jobs[0].w.n_cols);
    const dim3 grid((groups + kWarps - 1) / kWarps, n_tok);
    bool ok = dispatch_type(t, [&]<TensorType T>() {
        if constexpr (T == TensorType::F32 || T == TensorType::F16 || T == TensorType::BF16) {
            matvec_f_kernel<T><<<grid, kWarps * 32, 0, s>>>(a, xf, n_cols);
        } else {
            matvec_q_kernel<T><<<grid, kWarps * 32, 0, s>>>(a, xq.q, xq.d, xq.s, n_cols);
        }
    });
    if (!ok) return make_error(ErrorCode::Unsupported, std::string("CUDA matvec: type ") + type_name(t) + " not supported");
    GB_CU_LAUNCH("matvec");
    return {};
}

}  // namespace

Status matvec(const MatvecJob * jobs, int n_jobs, const Q8Act & xq, const float * xf, int n_tok, cudaStream_t s) {
    int i = 0;
    while (i < n_jobs) {
        if (jobs[i].w.n_cols % 32 != 0) return make_error(ErrorCode::Unsupported, "CUDA matvec: row length not a multiple of 32");
        int e = i + 1;
        while (e < n_jobs && e - i < kMaxJobs && jobs[e].w.type == jobs[i].w.type) ++e;
        GB_TRY_STATUS(launch_group(jobs + i, e - i, xq, xf, n_tok, s));
        i = e;
    }
    return {};
}

}  // namespace gb::cuda
