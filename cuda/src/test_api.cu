// Test harnesses for single kernels (see test_api.h). Every output buffer is
// filled with 0xFF bytes (NaN) before the kernel runs.
#include "glassbox/cuda_backend.h"
#include "cublas_dl.h"
#include "kernels.h"
#include "test_api.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>

namespace gb::cuda::testing {
namespace {

// Device buffers freed at scope exit.
struct Pool {
    std::vector<void *> ptrs;
    ~Pool() {
        for (void * p : ptrs) cudaFree(p);
    }
    template <typename T> Result<T *> get(size_t n, bool poison = true) {
        void * p = nullptr;
        GB_CU(cudaMalloc(&p, std::max<size_t>(n, 1) * sizeof(T)));
        ptrs.push_back(p);
        if (poison) GB_CU(cudaMemset(p, 0xff, std::max<size_t>(n, 1) * sizeof(T)));
        return static_cast<T *>(p);
    }
    template <typename T> Result<T *> put(const std::vector<T> & v) {
        auto r = get<T>(v.size(), false);
        if (!r) return r.error();
        if (!v.empty()) GB_CU(cudaMemcpy(*r, v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice));
        return *r;
    }
};

#define GB_ASSIGN(lhs, expr)                   \
    do {                                       \
        auto gb_r_ = (expr);                   \
        if (!gb_r_.ok()) return gb_r_.error(); \
        lhs = *gb_r_;                          \
    } while (0)

template <typename T> Result<std::vector<T>> fetch(const T * d, size_t n) {
    GB_CU(cudaDeviceSynchronize());
    std::vector<T> h(n);
    GB_CU(cudaMemcpy(h.data(), d, n * sizeof(T), cudaMemcpyDeviceToHost));
    return h;
}

Result<DevMat> upload(Pool & pool, TensorType t, const std::vector<uint8_t> & w, int64_t n_cols, int64_t n_rows) {
    if (w.size() != row_size(t, n_cols) * size_t(n_rows)) return make_error(ErrorCode::InvalidArgument, "weight size mismatch");
    DevMat m = dev_layout(t, n_cols, n_rows);
    std::vector<uint8_t> packed(m.stride * size_t(n_rows));
    const size_t rs = row_size(t, n_cols);
    for (int64_t r = 0; r < n_rows; ++r) pack_row(t, n_cols, w.data() + size_t(r) * rs, packed.data() + size_t(r) * m.stride, m);
    GB_ASSIGN(m.data, pool.put(packed));
    return m;
}

bool g_two_planes = true;  // set_two_planes

Result<std::vector<float>> q8_roundtrip(const Q8Act & q, size_t n) {
    GB_CU(cudaDeviceSynchronize());
    std::vector<int8_t> qs(n), ls(n, 0);
    std::vector<float> d(n / 32), s(n / 16);
    GB_CU(cudaMemcpy(qs.data(), q.q, n, cudaMemcpyDeviceToHost));
    if (q.lo) GB_CU(cudaMemcpy(ls.data(), q.lo, n, cudaMemcpyDeviceToHost));
    GB_CU(cudaMemcpy(d.data(), q.d, d.size() * 4, cudaMemcpyDeviceToHost));
    GB_CU(cudaMemcpy(s.data(), q.s, s.size() * 4, cudaMemcpyDeviceToHost));
    const int k = q.lo ? 256 : 1;  // x = d / k * (k q + lo)
    std::vector<float> out(n);
    for (size_t i = 0; i < n; ++i) out[i] = d[i / 32] / float(k) * float(k * qs[i] + ls[i]);
    // s must equal d / k * sum(k q + lo) over each 16 values; report a mismatch as NaN.
    for (size_t j = 0; j < n / 16; ++j) {
        int sum = 0;
        for (size_t i = 16 * j; i < 16 * j + 16; ++i) sum += k * qs[i] + ls[i];
        const float want = d[j / 2] / float(k) * float(sum);
        if (std::fabs(want - s[j]) > 1e-5f * (1.0f + std::fabs(want))) out[16 * j] = NAN;
    }
    return out;
}

Result<Q8Act> q8_buffers(Pool & pool, size_t n) {
    Q8Act q;
    GB_ASSIGN(q.q, pool.get<int8_t>(n));
    GB_ASSIGN(q.d, pool.get<float>(n / 32));
    GB_ASSIGN(q.s, pool.get<float>(n / 16));
    if (g_two_planes) GB_ASSIGN(q.lo, pool.get<int8_t>(n));
    return q;
}

}  // namespace

namespace {
__global__ void fill_random_kernel(uint32_t * p, size_t n, uint32_t seed) {
    for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x) {
        uint32_t h = uint32_t(i) * 2654435761u ^ seed;
        h ^= h >> 15; h *= 2246822519u; h ^= h >> 13; h *= 3266489917u; h ^= h >> 16;
        // keep fp16 fields finite-ish: clear the top exponent bit of each half
        p[i] = h & 0xBFFFBFFFu;
    }
}
}  // namespace

Result<double> time_kernel(const char * what, TensorType t, int64_t n_cols, int64_t n_rows, int iters) {
    Pool pool;
    const std::string w = what;
    const DevMat lay = dev_layout(t, n_cols, n_rows);
    const size_t bytes = lay.stride * size_t(n_rows);
    const int per_call = w == "glu" ? 2 : (w == "matvec" ? 1 : 0);
    const int copies = per_call ? int(std::max<size_t>(2, (size_t(256) << 20) / (bytes * per_call) + 1)) : 1;
    std::vector<DevMat> mats;
    for (int i = 0; i < copies * per_call; ++i) {
        DevMat m = lay;
        uint8_t * d;
        GB_ASSIGN(d, pool.get<uint8_t>(bytes, false));
        fill_random_kernel<<<1024, 256>>>(reinterpret_cast<uint32_t *>(d), bytes / 4, 0x9e3779b9u * uint32_t(i + 1));
        GB_CU_LAUNCH("fill");
        m.data = d;
        mats.push_back(m);
    }
    const size_t nx = size_t(std::max(n_cols, n_rows));
    float *x, *y, *p, *nw;
    GB_ASSIGN(x, pool.get<float>(nx, false));
    GB_ASSIGN(y, pool.get<float>(nx, false));
    GB_ASSIGN(p, pool.get<float>(nx, false));
    GB_ASSIGN(nw, pool.get<float>(nx, false));
    std::vector<float> hx(nx);
    for (size_t i = 0; i < nx; ++i) hx[i] = std::sin(0.37f * float(i)) * 0.1f;
    GB_CU(cudaMemcpy(x, hx.data(), nx * 4, cudaMemcpyHostToDevice));
    GB_CU(cudaMemcpy(p, hx.data(), nx * 4, cudaMemcpyHostToDevice));
    GB_CU(cudaMemcpy(nw, hx.data(), nx * 4, cudaMemcpyHostToDevice));
    Q8Act q, qo;
    GB_ASSIGN(q, q8_buffers(pool, nx));
    GB_ASSIGN(qo, q8_buffers(pool, nx));
    GB_TRY_STATUS(act_quant(x, nullptr, 0, int64_t(n_cols), q, nullptr));
    GB_CU(cudaDeviceSynchronize());
    cudaStream_t st;
    GB_CU(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
    struct StreamGuard { cudaStream_t s; ~StreamGuard() { cudaStreamDestroy(s); } } guard{st};
    auto enqueue = [&](int i) -> Status {
        if (w == "matvec") {
            const MatvecJob job{mats[size_t(i % copies)], y, nullptr};
            return matvec(&job, 1, q, x, 1, st);
        }
        if (w == "glu") return matvec_glu(mats[size_t(2 * (i % copies))], mats[size_t(2 * (i % copies) + 1)], 0, q, x, 1, y, qo, st);
        if (w == "add_norm") return add_norm(x, p, nullptr, nw, 1e-5f, int(n_cols), 1, y, qo, st);
        return make_error(ErrorCode::InvalidArgument, "time_kernel: unknown kernel " + w);
    };
    GB_CU(cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal));
    Status cs;
    for (int i = 0; i < iters && cs.ok(); ++i) cs = enqueue(i);
    cudaGraph_t g = nullptr;
    const cudaError_t ce = cudaStreamEndCapture(st, &g);
    if (!cs.ok()) { if (g) cudaGraphDestroy(g); return cs.error(); }
    GB_CU(ce);
    cudaGraphExec_t ge = nullptr;
    const cudaError_t ie = cudaGraphInstantiate(&ge, g, 0);
    cudaGraphDestroy(g);
    GB_CU(ie);
    struct GraphGuard { cudaGraphExec_t e; ~GraphGuard() { cudaGraphExecDestroy(e); } } gguard{ge};
    cudaEvent_t e0, e1;
    GB_CU(cudaEventCreate(&e0));
    GB_CU(cudaEventCreate(&e1));
    std::vector<double> ts;
    for (int rep = 0; rep < 6; ++rep) {
        GB_CU(cudaEventRecord(e0, st));
        GB_CU(cudaGraphLaunch(ge, st));
        GB_CU(cudaEventRecord(e1, st));
        GB_CU(cudaEventSynchronize(e1));
        float ms = 0.0f;
        GB_CU(cudaEventElapsedTime(&ms, e0, e1));
        if (rep > 0) ts.push_back(double(ms) * 1000.0 / iters);  // first replay: warm-up
    }
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    std::sort(ts.begin(), ts.end());
    return ts[ts.size() / 2];
}

bool gemm_uses_cublas(TensorType t, int n_tok) { return cuda::gemm_uses_cublas(t, n_tok); }
std::string cublas_describe() { return blas::describe(); }

bool device_available(std::string * why) {
    const DeviceReport r = probe();
    if (why) *why = r.message;
    return r.available;
}

Result<std::vector<float>> linear(TensorType t, const std::vector<uint8_t> & w, int64_t n_cols, int64_t n_rows,
                                  const std::vector<float> & x, int n_tok, bool use_gemm, const std::vector<float> & bias) {
    Pool pool;
    const float * bias_d = nullptr;
    if (!bias.empty()) GB_ASSIGN(bias_d, pool.put(bias));
    DevMat m;
    GB_ASSIGN(m, upload(pool, t, w, n_cols, n_rows));
    float * xf;
    GB_ASSIGN(xf, pool.put(x));
    float * y;
    GB_ASSIGN(y, pool.get<float>(size_t(n_tok) * n_rows));
    if (use_gemm) {
        GemmScratch s;
        GB_ASSIGN(s.x16, pool.get<__half>(size_t(n_tok) * n_cols));
        s.w16_elems = size_t(256) * size_t(n_cols);  // 256-row slabs: exercises the slab loop
        GB_ASSIGN(s.w16, pool.get<__half>(s.w16_elems));
        GB_TRY_STATUS(gemm(m, xf, n_tok, y, bias_d, s, nullptr));
    } else {
        Q8Act q;
        GB_ASSIGN(q, q8_buffers(pool, size_t(n_tok) * n_cols));
        GB_TRY_STATUS(act_quant(xf, nullptr, 0, int64_t(n_tok) * n_cols, q, nullptr));
        const MatvecJob job{m, y, bias_d};
        GB_TRY_STATUS(matvec(&job, 1, q, xf, n_tok, nullptr));
    }
    return fetch(y, size_t(n_tok) * n_rows);
}

bool pipe_taken(TensorType t, int64_t n_cols, int64_t n_rows, bool glu) {
    DevMat m = dev_layout(t, n_cols, n_rows);
    alignas(16) static const uint8_t dummy[16] = {};
    m.data = dummy;  // (only its alignment is looked at)
    Q8Act q;
    static int8_t qd[1];
    q.q = qd;
    if (g_two_planes) q.lo = qd;  // (set_two_planes: the two-plane kernels)
    return glu ? glu_pipe_supported(m, m, q) : mv_pipe_supported(m, q);
}

Result<std::vector<float>> linear_jobs(const std::vector<TensorType> & types, const std::vector<std::vector<uint8_t>> & ws,
                                       const std::vector<int64_t> & n_rows, int64_t n_cols, const std::vector<float> & x, int n_tok) {
    Pool pool;
    float * xf;
    GB_ASSIGN(xf, pool.put(x));
    Q8Act q;
    GB_ASSIGN(q, q8_buffers(pool, size_t(n_tok) * n_cols));
    GB_TRY_STATUS(act_quant(xf, nullptr, 0, int64_t(n_tok) * n_cols, q, nullptr));
    std::vector<MatvecJob> jobs;
    std::vector<float *> ys;
    for (size_t i = 0; i < types.size(); ++i) {
        DevMat m;
        GB_ASSIGN(m, upload(pool, types[i], ws[i], n_cols, n_rows[i]));
        float * y;
        GB_ASSIGN(y, pool.get<float>(size_t(n_tok) * n_rows[i]));
        jobs.push_back({m, y, nullptr});
        ys.push_back(y);
    }
    GB_TRY_STATUS(matvec(jobs.data(), int(jobs.size()), q, xf, n_tok, nullptr));
    std::vector<float> out;
    for (size_t i = 0; i < ys.size(); ++i) {
        auto h = fetch(ys[i], size_t(n_tok) * n_rows[i]);
        if (!h) return h.error();
        out.insert(out.end(), h->begin(), h->end());
    }
    return out;
}

Result<std::vector<float>> glu(TensorType tg, const std::vector<uint8_t> & wg, TensorType tu, const std::vector<uint8_t> & wu,
                               int64_t n_cols, int64_t n_rows, const std::vector<float> & x, int n_tok, int act,
                               std::vector<float> * q8_out) {
    Pool pool;
    DevMat g, u;
    GB_ASSIGN(g, upload(pool, tg, wg, n_cols, n_rows));
    GB_ASSIGN(u, upload(pool, tu, wu, n_cols, n_rows));
    if (!matvec_glu_supported(g, u)) return make_error(ErrorCode::Unsupported, "matvec_glu does not support these types/shapes");
    float * xf;
    GB_ASSIGN(xf, pool.put(x));
    Q8Act q, qo;
    GB_ASSIGN(q, q8_buffers(pool, size_t(n_tok) * n_cols));
    GB_ASSIGN(qo, q8_buffers(pool, size_t(n_tok) * n_rows));
    GB_TRY_STATUS(act_quant(xf, nullptr, 0, int64_t(n_tok) * n_cols, q, nullptr));
    float * y;
    GB_ASSIGN(y, pool.get<float>(size_t(n_tok) * n_rows));
    GB_TRY_STATUS(matvec_glu(g, u, act, q, xf, n_tok, y, qo, nullptr));
    if (q8_out) {
        auto r = q8_roundtrip(qo, size_t(n_tok) * n_rows);
        if (!r) return r.error();
        *q8_out = *r;
    }
    return fetch(y, size_t(n_tok) * n_rows);
}

Result<std::vector<float>> embed(TensorType t, const std::vector<uint8_t> & w, int64_t n_cols, int64_t n_rows,
                                 const std::vector<int> & rows, float scale) {
    Pool pool;
    DevMat m;
    GB_ASSIGN(m, upload(pool, t, w, n_cols, n_rows));
    int * r;
    GB_ASSIGN(r, pool.put(rows));
    float * out;
    GB_ASSIGN(out, pool.get<float>(rows.size() * n_cols));
    GB_TRY_STATUS(gb::cuda::embed(m, r, int(rows.size()), scale, out, nullptr));
    return fetch(out, rows.size() * n_cols);
}

Result<std::vector<float>> add_norm(std::vector<float> x, const std::vector<float> & p, const std::vector<float> & post_w,
                                    const std::vector<float> & w, float eps, int n, int n_tok, std::vector<float> * q8_out) {
    Pool pool;
    float *dx, *dp = nullptr, *dpw = nullptr, *dw, *dy;
    GB_ASSIGN(dx, pool.put(x));
    if (!p.empty()) GB_ASSIGN(dp, pool.put(p));
    if (!post_w.empty()) GB_ASSIGN(dpw, pool.put(post_w));
    GB_ASSIGN(dw, pool.put(w));
    GB_ASSIGN(dy, pool.get<float>(size_t(n) * n_tok));
    Q8Act q;
    GB_ASSIGN(q, q8_buffers(pool, size_t(n) * n_tok));
    GB_TRY_STATUS(gb::cuda::add_norm(dx, dp, dpw, dw, eps, n, n_tok, dy, q, nullptr));
    std::vector<float> out;
    GB_ASSIGN(out, fetch(dy, size_t(n) * n_tok));
    std::vector<float> nx;
    GB_ASSIGN(nx, fetch(dx, size_t(n) * n_tok));
    out.insert(out.end(), nx.begin(), nx.end());
    if (q8_out) GB_ASSIGN(*q8_out, q8_roundtrip(q, size_t(n) * n_tok));
    return out;
}

Result<std::vector<float>> act(const std::vector<float> & g, const std::vector<float> & up, int act_kind,
                               std::vector<float> * q8_out) {
    Pool pool;
    float *dg, *du;
    GB_ASSIGN(dg, pool.put(g));
    GB_ASSIGN(du, pool.put(up));
    Q8Act q;
    GB_ASSIGN(q, q8_buffers(pool, g.size()));
    GB_TRY_STATUS(act_quant(dg, du, act_kind, int64_t(g.size()), q, nullptr));
    std::vector<float> out;
    GB_ASSIGN(out, fetch(dg, g.size()));
    if (q8_out) GB_ASSIGN(*q8_out, q8_roundtrip(q, g.size()));
    return out;
}

void set_two_planes(bool on) { g_two_planes = on; }
bool two_planes() { return g_two_planes; }

Result<Q8Out> q8_quantize(const std::vector<float> & x) {
    if (x.empty() || x.size() % 32 != 0) return make_error(ErrorCode::InvalidArgument, "q8_quantize: size must be a multiple of 32");
    Pool pool;
    float * dx;
    GB_ASSIGN(dx, pool.put(x));
    Q8Act q;
    GB_ASSIGN(q, q8_buffers(pool, x.size()));
    GB_TRY_STATUS(act_quant(dx, nullptr, 0, int64_t(x.size()), q, nullptr));
    GB_CU(cudaDeviceSynchronize());
    Q8Out o;
    o.q.resize(x.size());
    o.d.resize(x.size() / 32);
    o.s.resize(x.size() / 16);
    GB_CU(cudaMemcpy(o.q.data(), q.q, o.q.size(), cudaMemcpyDeviceToHost));
    GB_CU(cudaMemcpy(o.d.data(), q.d, o.d.size() * 4, cudaMemcpyDeviceToHost));
    GB_CU(cudaMemcpy(o.s.data(), q.s, o.s.size() * 4, cudaMemcpyDeviceToHost));
    if (q.lo) {
        o.lo.resize(x.size());
        GB_CU(cudaMemcpy(o.lo.data(), q.lo, o.lo.size(), cudaMemcpyDeviceToHost));
    }
    return o;
}

Result<std::vector<float>> qkv_post(const QkvIn & in) {
    Pool pool;
    QkvPost a{};
    const size_t n_k = size_t(in.n_head_kv) * in.hd;
    GB_ASSIGN(a.q, pool.put(in.q));
    float *k, *v;
    GB_ASSIGN(k, pool.put(in.k));
    GB_ASSIGN(v, pool.put(in.v));
    a.k = k; a.v = v;
    auto opt = [&](const std::vector<float> & h, const float ** out) -> Status {
        *out = nullptr;
        if (h.empty()) return {};
        float * d;
        GB_ASSIGN(d, pool.put(h));
        *out = d;
        return {};
    };
    GB_TRY_STATUS(opt(in.bq, &a.bq));
    GB_TRY_STATUS(opt(in.bk, &a.bk));
    GB_TRY_STATUS(opt(in.bv, &a.bv));
    GB_TRY_STATUS(opt(in.q_norm, &a.q_norm));
    GB_TRY_STATUS(opt(in.k_norm, &a.k_norm));
    GB_TRY_STATUS(opt(in.inv_freq, &a.inv_freq));
    a.neox = in.neox; a.q_scale = in.q_scale; a.eps = in.eps;
    a.n_head = in.n_head; a.n_head_kv = in.n_head_kv; a.hd = in.hd;
    GB_ASSIGN(a.k_cache, pool.get<__half>(size_t(in.n_ctx) * n_k));
    GB_ASSIGN(a.v_cache, pool.get<__half>(size_t(in.n_ctx) * n_k));
    int * pos;
    GB_ASSIGN(pos, pool.put(std::vector<int>{in.pos0}));
    GB_TRY_STATUS(gb::cuda::qkv_post(a, pos, in.n_tok, nullptr));
    std::vector<float> out;
    GB_ASSIGN(out, fetch(a.q, in.q.size()));
    for (__half * c : {a.k_cache, a.v_cache}) {
        std::vector<__half> h;
        GB_ASSIGN(h, fetch(c + size_t(in.pos0) * n_k, size_t(in.n_tok) * n_k));
        for (__half x : h) out.push_back(__half2float(x));
    }
    return out;
}

Result<std::vector<float>> attention(const AttnIn & in) {
    Pool pool;
    AttnArgs a{};
    float * q;
    GB_ASSIGN(q, pool.put(in.q));
    a.q = q;
    std::vector<__half> kh(in.k.size()), vh(in.v.size());
    for (size_t i = 0; i < kh.size(); ++i) kh[i] = __float2half_rn(in.k[i]);
    for (size_t i = 0; i < vh.size(); ++i) vh[i] = __float2half_rn(in.v[i]);
    __half *k, *v;
    GB_ASSIGN(k, pool.put(kh));
    GB_ASSIGN(v, pool.put(vh));
    a.k = k; a.v = v;
    a.n_head = in.n_head; a.n_head_kv = in.n_head_kv; a.hd = in.hd; a.window = in.window; a.scale = in.scale;
    const size_t n_out = size_t(in.n_tok) * in.n_head * in.hd;
    GB_ASSIGN(a.out, pool.get<float>(n_out));
    const size_t parts = size_t(in.n_tok) * in.n_head * in.n_split;
    GB_ASSIGN(a.part_acc, pool.get<float>(parts * in.hd));
    GB_ASSIGN(a.part_ml, pool.get<float>(parts * 2));
    int * pos;
    GB_ASSIGN(pos, pool.put(std::vector<int>{in.pos0}));
    if (in.fused) {
        const size_t nc = size_t(in.n_tok) * in.n_head;
        GB_ASSIGN(a.counters, pool.get<int>(nc, false));
        GB_CU(cudaMemset(a.counters, 0, nc * sizeof(int)));
        GB_TRY_STATUS(gb::cuda::attention(a, pos, in.n_tok, in.n_split, nullptr));
        GB_CU(cudaMemset(a.out, 0xff, n_out * sizeof(float)));  // NaN: the second run must write every value
    }
    GB_TRY_STATUS(gb::cuda::attention(a, pos, in.n_tok, in.n_split, nullptr));
    return fetch(a.out, n_out);
}

Result<std::vector<int>> argmax_rows(const std::vector<float> & x, int n, int n_tok) {
    Pool pool;
    float * dx;
    GB_ASSIGN(dx, pool.put(x));
    int * out;
    GB_ASSIGN(out, pool.get<int>(size_t(n_tok)));
    GB_TRY_STATUS(gb::cuda::argmax_rows(dx, n, n_tok, out, nullptr));
    return fetch(out, size_t(n_tok));
}

Result<std::vector<float>> linear_multi(TensorType t, const std::vector<uint8_t> & w, int64_t n_cols, int64_t n_rows,
                                        const std::vector<float> & x, int n_tok) {
    Pool pool;
    DevMat m;
    GB_ASSIGN(m, upload(pool, t, w, n_cols, n_rows));
    float * xf;
    GB_ASSIGN(xf, pool.put(x));
    float * y;
    GB_ASSIGN(y, pool.get<float>(size_t(n_tok) * n_rows));
    Q8Act q;
    GB_ASSIGN(q, q8_buffers(pool, size_t(n_tok) * n_cols));
    GB_TRY_STATUS(act_quant(xf, nullptr, 0, int64_t(n_tok) * n_cols, q, nullptr));
    const MatvecJob job{m, y, nullptr};
    GB_TRY_STATUS(matvec_multi(job, q, xf, n_tok, nullptr));
    return fetch(y, size_t(n_tok) * n_rows);
}

Result<std::vector<RowSummaryOut>> row_summaries(const std::vector<float> & x, int n, int n_rows) {
    static_assert(sizeof(RowSummaryOut) == sizeof(RowSum), "same layout");
    Pool pool;
    float * dx;
    GB_ASSIGN(dx, pool.put(x));
    RowPart * parts;
    GB_ASSIGN(parts, pool.get<RowPart>(size_t(n_rows) * kRowPartsMax));
    RowSum * out;
    GB_ASSIGN(out, pool.get<RowSum>(size_t(n_rows)));  // poisoned: every summary must be written
    GB_TRY_STATUS(summarize_rows(dx, n, n_rows, parts, out, nullptr));
    auto h = fetch(out, size_t(n_rows));
    if (!h) return h.error();
    std::vector<RowSummaryOut> r(static_cast<size_t>(n_rows));
    std::memcpy(r.data(), h->data(), r.size() * sizeof(RowSum));
    return r;
}

Result<std::vector<float>> softcap(const std::vector<float> & x, float cap) {
    Pool pool;
    float * dx;
    GB_ASSIGN(dx, pool.put(x));
    GB_TRY_STATUS(gb::cuda::softcap(dx, int64_t(x.size()), cap, nullptr));
    return fetch(dx, x.size());
}

}  // namespace gb::cuda::testing
