// Y = X W^T for GGUF-typed weights on the CPU: quantizes the activations to
// the weight type's activation format once, then splits the work over the
// thread pool (rows for decode, row x token tiles for prefill).
#include "cpu/matmul.h"

#include "cpu/thread_pool.h"
#include "cpu/vec_dot.h"

#include <algorithm>
#include <atomic>
#include <cassert>
#include <utility>
#include <vector>

namespace gb::cpu {

namespace {

// Forced path (SimdPath::Auto: the best the CPU has).
std::atomic<int> g_forced{static_cast<int>(SimdPath::Auto)};

bool cpu_has_avx2() {
#if defined(__x86_64__) || defined(__i386__)
    static const bool ok = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
    return ok;
#else
    return false;
#endif
}

bool cpu_has_avx512vnni() {
#if defined(__x86_64__) || defined(__i386__)
    static const bool ok = cpu_has_avx2() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
                           __builtin_cpu_supports("avx512vnni");
    return ok;
#else
    return false;
#endif
}

bool cpu_supports(SimdPath p) {
    switch (p) {
        case SimdPath::Auto: case SimdPath::Scalar: return true;
        case SimdPath::Avx2: return cpu_has_avx2();
        case SimdPath::Avx512Vnni: return cpu_has_avx512vnni();
    }
    return false;
}

SimdPath current_path() {
    const SimdPath f = static_cast<SimdPath>(g_forced.load(std::memory_order_relaxed));
    if (f != SimdPath::Auto) return f;
    if (cpu_has_avx512vnni()) return SimdPath::Avx512Vnni;
    if (cpu_has_avx2()) return SimdPath::Avx2;
    return SimdPath::Scalar;
}

// Kernel tables per path (scalar, avx2, avx512vnni), built once. Entries a
// path lacks fall back to the previous path's.
struct KernelTables {
    static constexpr int k_n_ids = 64;
    static constexpr int k_n_paths = 3;
    TypeKernels table[k_n_paths][k_n_ids];
    GemmKernels gemm[k_n_ids];  // AVX512-VNNI path only
    MultiKernels multi[k_n_ids];  // AVX512-VNNI path only
    bool ok[k_n_paths][k_n_ids] = {};
    KernelTables() {
        for (uint32_t id = 0; id < k_n_ids; ++id) {
            if (type_traits(id) == nullptr) continue;
            const TensorType t = static_cast<TensorType>(id);
            ok[0][id] = scalar_kernels(t, &table[0][id]);
            for (int p = 1; p < k_n_paths; ++p) {
                table[p][id] = table[p - 1][id];
                ok[p][id] = ok[p - 1][id];
            }
            if (cpu_has_avx2()) {
                TypeKernels k;
                if (avx2_kernels(t, &k)) {
                    table[1][id] = table[2][id] = k;
                    ok[1][id] = ok[2][id] = true;
                }
            }
            if (cpu_has_avx512vnni()) {
                TypeKernels k;
                if (avx512vnni_kernels(t, &k)) {
                    table[2][id] = k;
                    ok[2][id] = true;
                }
                GemmKernels g;
                if (ok[2][id] && avx512vnni_gemm(t, &g)) {
                    // the vectorized Q8_K quantizer of the decode table (same bytes)
                    if (g.prep_act == quantize_row_q8_K_act && table[2][id].act_type == TensorType::Q8_K) g.prep_act = table[2][id].quantize;
                    gemm[id] = g;
                }
                MultiKernels m;
                if (ok[2][id] && avx512vnni_multi(t, &m)) multi[id] = m;
            }
        }
    }
};

const KernelTables & tables() {
    static const KernelTables t;
    return t;
}

const TypeKernels * kernels_for(TensorType t) {
    const uint32_t id = static_cast<uint32_t>(t);
    const SimdPath p = current_path();
    const int path = p == SimdPath::Avx512Vnni ? 2 : p == SimdPath::Avx2 ? 1 : 0;
    if (id >= KernelTables::k_n_ids || !tables().ok[path][id]) return nullptr;
    return &tables().table[path][id];
}

std::atomic<bool> g_llamacpp_order{false};

// llama.cpp-order kernels for t while that order is on and the CPU has AVX2
// (its x86 order is emulated with AVX2 code), else nullptr
const LlamaCppKernels * llamacpp_kernels_for(TensorType t) {
    static const auto table = [] {
        std::vector<std::pair<bool, LlamaCppKernels>> v(KernelTables::k_n_ids);
        for (uint32_t id = 0; id < KernelTables::k_n_ids; ++id) v[id].first = llamacpp_kernels(TensorType(id), &v[id].second);
        return v;
    }();
    const uint32_t id = static_cast<uint32_t>(t);
    if (!g_llamacpp_order.load(std::memory_order_relaxed) || current_path() == SimdPath::Scalar || !cpu_has_avx2() ||
        id >= KernelTables::k_n_ids || !table[id].first) {
        return nullptr;
    }
    return &table[id].second;
}

// nullptr where the current path has no prefill GEMM for t
const GemmKernels * gemm_for(TensorType t) {
    const uint32_t id = static_cast<uint32_t>(t);
    if (current_path() != SimdPath::Avx512Vnni || id >= KernelTables::k_n_ids) return nullptr;
    const GemmKernels & g = tables().gemm[id];
    return g.run != nullptr ? &g : nullptr;
}

std::atomic<bool> g_multi_on{true};

// nullptr where the current path has no small-batch kernel for t
const MultiKernels * multi_for(TensorType t) {
    const uint32_t id = static_cast<uint32_t>(t);
    if (!g_multi_on.load(std::memory_order_relaxed) || current_path() != SimdPath::Avx512Vnni || id >= KernelTables::k_n_ids)
        return nullptr;
    const MultiKernels & m = tables().multi[id];
    return m.run != nullptr ? &m : nullptr;
}

// Below this many weight bytes a matvec runs on the caller alone: waking the
// pool would cost more than it saves.
constexpr size_t k_min_parallel_bytes = 48 * 1024;
// Prefill tile: weight rows that stay in L2 while a block of tokens sweeps them.
constexpr size_t k_tile_weight_bytes = 192 * 1024;
constexpr int64_t k_tile_tokens = 64;
// GEMM path (from GemmKernels::min_tokens tokens on): panels of strips packed together.
constexpr int k_gemm_strip_rows = 16;
constexpr int k_gemm_tile_tokens = 8;
constexpr size_t k_gemm_panel_bytes = 160 * 1024;

// Prefill through a GemmKernels set: activations prepared once, then work
// items of (panel of 16-row strips) x (token range); each item packs its
// strips once and sweeps its tokens 8 at a time over them.
void matmul_gemm(const GemmKernels & g, const WeightView & w, const float * x, int64_t n_tokens, float * y, ThreadPool & pool) {
    const int64_t n_cols = w.n_cols;
    const int64_t n_rows = w.n_rows;
    const int nth = pool.size();

    thread_local std::vector<uint8_t> act_buf;
    const uint8_t * act = reinterpret_cast<const uint8_t *>(x);
    size_t act_stride = static_cast<size_t>(n_cols) * sizeof(float);
    if (g.prep_act != nullptr) {
        act_stride = g.act_row_bytes(n_cols);
        const size_t need = act_stride * static_cast<size_t>(n_tokens) + 64;
        if (act_buf.size() < need) act_buf.resize(need);
        // 64-byte aligned rows (the float tiles load whole cache lines)
        uint8_t * dst = act_buf.data() + ((64 - reinterpret_cast<uintptr_t>(act_buf.data()) % 64) % 64);
        const QuantizeRowFn prep = g.prep_act;
        auto prep_rows = [&](int64_t t0, int64_t t1) {
            for (int64_t t = t0; t < t1; ++t) prep(x + t * n_cols, dst + t * act_stride, n_cols);
        };
        if (nth == 1) prep_rows(0, n_tokens);
        else pool.parallel_for(n_tokens, 1, [f = &prep_rows](int64_t t0, int64_t t1) { (*f)(t0, t1); });
        act = dst;
    }

    const size_t strip_bytes = g.strip_bytes(n_cols);
    const int64_t n_strips = (n_rows + k_gemm_strip_rows - 1) / k_gemm_strip_rows;
    int64_t panel_strips = std::clamp<int64_t>(static_cast<int64_t>(k_gemm_panel_bytes / strip_bytes), 1, 8);
    // enough panels to keep every thread busy
    while (panel_strips > 1 && (n_strips + panel_strips - 1) / panel_strips < 4 * nth) panel_strips /= 2;
    const int64_t n_panels = (n_strips + panel_strips - 1) / panel_strips;
    // split tokens too when there are few panels
    int64_t n_tok_chunks = 1;
    while (n_panels * n_tok_chunks < 4 * nth && n_tokens / (n_tok_chunks * 2) >= 2 * k_gemm_tile_tokens) n_tok_chunks *= 2;
    const int64_t tok_chunk = (n_tokens + n_tok_chunks - 1) / n_tok_chunks;
    const int64_t n_items = n_panels * n_tok_chunks;

    std::atomic<int64_t> next{0};
    auto work = [&](int, int) {
        thread_local std::vector<uint8_t> pack_buf;
        const size_t need = strip_bytes * static_cast<size_t>(panel_strips) + 64;
        if (pack_buf.size() < need) pack_buf.resize(need);
        // 64-byte aligned packed strips
        uint8_t * packed = pack_buf.data() + ((64 - reinterpret_cast<uintptr_t>(pack_buf.data()) % 64) % 64);
        int64_t packed_panel = -1;
        for (int64_t item = next.fetch_add(1, std::memory_order_relaxed); item < n_items;
             item = next.fetch_add(1, std::memory_order_relaxed)) {
            const int64_t panel = item / n_tok_chunks;
            const int64_t s0 = panel * panel_strips;
            const int64_t s1 = std::min(n_strips, s0 + panel_strips);
            if (panel != packed_panel) {
                for (int64_t s = s0; s < s1; ++s) {
                    const int64_t r0 = s * k_gemm_strip_rows;
                    const int n_valid = static_cast<int>(std::min<int64_t>(k_gemm_strip_rows, n_rows - r0));
                    g.pack(w.data + r0 * w.row_bytes, w.row_bytes, n_valid, n_cols, packed + (s - s0) * strip_bytes);
                }
                packed_panel = panel;
            }
            const int64_t t_begin = (item % n_tok_chunks) * tok_chunk;
            const int64_t t_end = std::min(n_tokens, t_begin + tok_chunk);
            for (int64_t t = t_begin; t < t_end; t += k_gemm_tile_tokens) {
                const int nt = static_cast<int>(std::min<int64_t>(k_gemm_tile_tokens, t_end - t));
                for (int64_t s = s0; s < s1; ++s) {
                    const int64_t r0 = s * k_gemm_strip_rows;
                    const int n_valid = static_cast<int>(std::min<int64_t>(k_gemm_strip_rows, n_rows - r0));
                    g.run(packed + (s - s0) * strip_bytes, act + t * act_stride, act_stride, nt, n_cols, y + t * n_rows + r0,
                          static_cast<size_t>(n_rows), n_valid);
                }
            }
        }
    };
    if (nth == 1 || n_items == 1) work(0, 1);
    else pool.run([f = &work](int ith, int nth_) { (*f)(ith, nth_); });
}


// y[r] = dot(W[r], act) for r in [r0, r1): the path's whole-range kernel, else
// 4 rows at a time where it has a 4-row kernel (same results)
void matvec_rows(const TypeKernels & k, const WeightView & w, const uint8_t * act, float * y, int64_t r0, int64_t r1) {
    if (k.rows != nullptr) {
        k.rows(w.n_cols, w.data + r0 * w.row_bytes, w.row_bytes, r1 - r0, act, y + r0);
        return;
    }
    int64_t r = r0;
    if (k.rows4 != nullptr)
        for (; r + 4 <= r1; r += 4) k.rows4(w.n_cols, w.data + r * w.row_bytes, w.row_bytes, act, y + r);
    for (; r < r1; ++r) k.dot1(w.n_cols, w.data + r * w.row_bytes, act, 0, y + r);
}

// Rows per work item of a parallel matvec: ~8 items per thread, a multiple of 8
// (the 8-row decode kernels).
int64_t matvec_chunk(int64_t n_rows, int nth) {
    return (std::max<int64_t>(8, (n_rows + 8 * nth - 1) / (8 * nth)) + 7) / 8 * 8;
}

// Small batch (2..k_multi_max_tokens tokens) through a MultiKernels set:
// activations quantized and laid out once, then chunks of rows over the pool,
// each weight row read once for all tokens. y: [n_tokens, n_rows].
void matmul_multi(const MultiKernels & m, const TypeKernels & k, const WeightView & w, const float * x, int64_t n_tokens, float * y,
                  ThreadPool & pool) {
    const int64_t n_cols = w.n_cols, n_rows = w.n_rows;
    const int nt = static_cast<int>(n_tokens);
    const size_t arb = row_size(k.act_type, n_cols);
    thread_local std::vector<uint8_t> act_buf, prep_buf;
    if (act_buf.size() < arb * size_t(nt)) act_buf.resize(arb * size_t(nt));
    for (int t = 0; t < nt; ++t) k.quantize(x + t * n_cols, act_buf.data() + size_t(t) * arb, n_cols);
    const size_t need = m.prep_bytes(n_cols, nt) + 64;
    if (prep_buf.size() < need) prep_buf.resize(need);
    uint8_t * prep = prep_buf.data() + ((64 - reinterpret_cast<uintptr_t>(prep_buf.data()) % 64) % 64);
    m.prep(act_buf.data(), arb, nt, n_cols, prep);
    const int nth = pool.size();
    if (nth == 1 || w.row_bytes * size_t(n_rows) < k_min_parallel_bytes) {
        m.run(n_cols, w.data, w.row_bytes, n_rows, prep, nt, y, size_t(n_rows));
        return;
    }
    const int64_t chunk = matvec_chunk(n_rows, nth);
    const int64_t n_chunks = (n_rows + chunk - 1) / chunk;
    std::atomic<int64_t> next{0};
    auto rows = [&] {
        for (int64_t c = next.fetch_add(1, std::memory_order_relaxed); c < n_chunks; c = next.fetch_add(1, std::memory_order_relaxed)) {
            const int64_t r0 = c * chunk;
            m.run(n_cols, w.data + r0 * w.row_bytes, w.row_bytes, std::min(chunk, n_rows - r0), prep, nt, y + r0, size_t(n_rows));
        }
    };
    pool.run([f = &rows](int, int) { (*f)(); });
}

}  // namespace

const TypeKernels * dot_kernels(TensorType t) { return kernels_for(t); }

const char * simd_path_name(SimdPath p) {
    switch (p) {
        case SimdPath::Auto: return "auto";
        case SimdPath::Scalar: return "scalar";
        case SimdPath::Avx2: return "avx2";
        case SimdPath::Avx512Vnni: return "avx512vnni";
    }
    return "?";
}

const char * simd_path() { return simd_path_name(current_path()); }

bool force_simd_path(SimdPath p) {
    if (!cpu_supports(p)) return false;
    g_forced.store(static_cast<int>(p), std::memory_order_relaxed);
    return true;
}

void force_scalar(bool on) { force_simd_path(on ? SimdPath::Scalar : SimdPath::Auto); }

void set_small_batch_kernels(bool on) { g_multi_on.store(on, std::memory_order_relaxed); }

void set_llamacpp_order(bool on) { g_llamacpp_order.store(on, std::memory_order_relaxed); }
bool llamacpp_order() { return g_llamacpp_order.load(std::memory_order_relaxed); }

void matmul(const WeightView & w, const float * x, int64_t n_tokens, float * y, ThreadPool & pool) {
    const TypeKernels * k = kernels_for(w.type);
    assert(k != nullptr && "matmul: weight type has no CPU kernel");
    assert(w.n_cols % type_traits(w.type).block_size == 0);
    if (k == nullptr || n_tokens <= 0 || w.n_rows <= 0) return;
    const int64_t n_cols = w.n_cols;
    const int64_t n_rows = w.n_rows;
    const int nth = pool.size();
    // llama.cpp's order (matmul.h): its kernels, no GEMM, no 4-row decode
    TypeKernels llama_k;
    const LlamaCppKernels * lk = llamacpp_kernels_for(w.type);
    if (lk == nullptr && n_tokens >= 2 && n_tokens <= k_multi_max_tokens) {
        if (const MultiKernels * m = multi_for(w.type); m != nullptr) {
            matmul_multi(*m, *k, w, x, n_tokens, y, pool);
            return;
        }
    }
    if (lk != nullptr) {
        const bool wide = n_tokens >= k_wide_tokens && lk->dot1_wide != nullptr;
        llama_k.act_type = lk->act_type;
        llama_k.quantize = lk->quantize;
        llama_k.dot1 = wide ? lk->dot1_wide : lk->dot1;
        llama_k.dot4 = wide ? lk->dot4_wide : lk->dot4;
        k = &llama_k;
    } else if (const GemmKernels * g = gemm_for(w.type); g != nullptr && n_tokens >= g->min_tokens) {
        matmul_gemm(*g, w, x, n_tokens, y, pool);
        return;
    }

    // Activations in the weight type's activation format: [n_tokens, act_row_bytes]
    thread_local std::vector<uint8_t> act_buf;
    const uint8_t * act = reinterpret_cast<const uint8_t *>(x);
    size_t act_row_bytes = static_cast<size_t>(n_cols) * sizeof(float);
    if (k->quantize != nullptr) {
        act_row_bytes = row_size(k->act_type, n_cols);
        const size_t need = act_row_bytes * static_cast<size_t>(n_tokens);
        if (act_buf.size() < need) act_buf.resize(need);
        uint8_t * dst = act_buf.data();
        const QuantizeRowFn quantize = k->quantize;
        if (n_tokens < 4 || nth == 1) {
            for (int64_t t = 0; t < n_tokens; ++t) quantize(x + t * n_cols, dst + t * act_row_bytes, n_cols);
        } else {
            auto quantize_rows = [&](int64_t t0, int64_t t1) {
                for (int64_t t = t0; t < t1; ++t) quantize(x + t * n_cols, dst + t * act_row_bytes, n_cols);
            };
            pool.parallel_for(n_tokens, 1, [f = &quantize_rows](int64_t t0, int64_t t1) { (*f)(t0, t1); });
        }
        act = dst;
    }
    const DotFn dot1 = k->dot1;
    const DotFn dot4 = k->dot4;

    if (n_tokens == 1) {
        // y[r] = dot(W[r], x): rows handed out in chunks from a shared counter,
        // so a thread slowed by a neighbour on the machine takes fewer.
        const size_t w_bytes = w.row_bytes * static_cast<size_t>(n_rows);
        if (nth == 1 || w_bytes < k_min_parallel_bytes) {
            matvec_rows(*k, w, act, y, 0, n_rows);
            return;
        }
        const int64_t chunk = matvec_chunk(n_rows, nth);
        const int64_t n_chunks = (n_rows + chunk - 1) / chunk;
        std::atomic<int64_t> next{0};
        auto rows = [&] {
            for (int64_t c = next.fetch_add(1, std::memory_order_relaxed); c < n_chunks;
                 c = next.fetch_add(1, std::memory_order_relaxed)) {
                matvec_rows(*k, w, act, y, c * chunk, std::min(n_rows, (c + 1) * chunk));
            }
        };
        // one captured pointer: std::function keeps it inline, no allocation per call
        pool.run([f = &rows](int, int) { (*f)(); });
        return;
    }

    // Prefill: tiles of [tile_rows weight rows] x [k_tile_tokens tokens]. Within a
    // tile, groups of 4 tokens sweep the tile's rows: each weight block is
    // decoded once per 4 tokens, and the tile's weights stay in cache.
    const int64_t tile_rows = std::clamp<int64_t>(static_cast<int64_t>(k_tile_weight_bytes / std::max<size_t>(w.row_bytes, 1)), 8, 256);
    const int64_t n_row_tiles = (n_rows + tile_rows - 1) / tile_rows;
    const int64_t n_tok_tiles = (n_tokens + k_tile_tokens - 1) / k_tile_tokens;
    const int64_t n_tiles = n_row_tiles * n_tok_tiles;
    std::atomic<int64_t> next{0};
    auto work = [&](int, int) {
        float out[4];
        for (int64_t tile = next.fetch_add(1, std::memory_order_relaxed); tile < n_tiles;
             tile = next.fetch_add(1, std::memory_order_relaxed)) {
            const int64_t r0 = (tile % n_row_tiles) * tile_rows;
            const int64_t r1 = std::min(n_rows, r0 + tile_rows);
            const int64_t t0 = (tile / n_row_tiles) * k_tile_tokens;
            const int64_t t1 = std::min(n_tokens, t0 + k_tile_tokens);
            int64_t t = t0;
            if (dot4 != nullptr) {
                for (; t + 4 <= t1; t += 4) {
                    const uint8_t * xa = act + t * act_row_bytes;
                    for (int64_t r = r0; r < r1; ++r) {
                        dot4(n_cols, w.data + r * w.row_bytes, xa, act_row_bytes, out);
                        for (int c = 0; c < 4; ++c) y[(t + c) * n_rows + r] = out[c];
                    }
                }
            }
            for (; t < t1; ++t) {
                const uint8_t * xa = act + t * act_row_bytes;
                for (int64_t r = r0; r < r1; ++r) dot1(n_cols, w.data + r * w.row_bytes, xa, 0, y + t * n_rows + r);
            }
        }
    };
    if (nth == 1 || n_tiles == 1) {
        work(0, 1);
    } else {
        pool.run([f = &work](int ith, int nth) { (*f)(ith, nth); });
    }
}

namespace {

constexpr int k_max_group = 4;  // weights of one matmul_group call fused into one dispatch

// Chunks of rows of every one of n_w weights as the work items of one pool
// dispatch: fn(i, r0, r1) computes rows [r0, r1) of weight i.
template <class F>
void run_row_chunks(const WeightView * ws, int n_w, ThreadPool & pool, F && fn) {
    const int nth = pool.size();
    int64_t chunk[k_max_group], first_item[k_max_group + 1];
    first_item[0] = 0;
    for (int i = 0; i < n_w; ++i) {
        chunk[i] = matvec_chunk(ws[i].n_rows, nth);
        first_item[i + 1] = first_item[i] + (ws[i].n_rows + chunk[i] - 1) / chunk[i];
    }
    const int64_t n_items = first_item[n_w];
    std::atomic<int64_t> next{0};
    auto rows = [&] {
        for (int64_t it = next.fetch_add(1, std::memory_order_relaxed); it < n_items; it = next.fetch_add(1, std::memory_order_relaxed)) {
            int i = 0;
            while (it >= first_item[i + 1]) ++i;
            const int64_t r0 = (it - first_item[i]) * chunk[i];
            fn(i, r0, std::min(ws[i].n_rows, r0 + chunk[i]));
        }
    };
    pool.run([f = &rows](int, int) { (*f)(); });
}

// matmul_group for 2..k_multi_max_tokens tokens when every weight has a
// small-batch kernel: x quantized and laid out once per distinct activation
// format (q/k/v and gate/up of gemma-3-270m: one), then chunks of rows of every
// weight in one pool dispatch. False (nothing done) when some weight has none.
bool matmul_group_multi(const WeightView * ws, float * const * ys, int n_w, const float * x, int64_t n_tokens, ThreadPool & pool) {
    if (n_w > k_max_group || n_tokens < 2 || n_tokens > k_multi_max_tokens || pool.size() == 1) return false;
    const TypeKernels * ks[k_max_group];
    const MultiKernels * ms[k_max_group];
    for (int i = 0; i < n_w; ++i) {
        ks[i] = kernels_for(ws[i].type);
        ms[i] = multi_for(ws[i].type);
        if (ks[i] == nullptr || ms[i] == nullptr || ks[i]->quantize == nullptr || ws[i].n_cols != ws[0].n_cols ||
            llamacpp_kernels_for(ws[i].type) != nullptr)
            return false;
    }
    const int64_t n_cols = ws[0].n_cols;
    const int nt = static_cast<int>(n_tokens);
    thread_local std::vector<uint8_t> act_buf[k_max_group], prep_buf[k_max_group];
    const uint8_t * prep[k_max_group];
    for (int i = 0; i < n_w; ++i) {
        prep[i] = nullptr;
        for (int j = 0; j < i; ++j) {
            if (ks[j]->quantize == ks[i]->quantize && ks[j]->act_type == ks[i]->act_type && ms[j]->prep == ms[i]->prep) prep[i] = prep[j];
        }
        if (prep[i] != nullptr) continue;
        const size_t arb = row_size(ks[i]->act_type, n_cols);
        if (act_buf[i].size() < arb * size_t(nt)) act_buf[i].resize(arb * size_t(nt));
        for (int t = 0; t < nt; ++t) ks[i]->quantize(x + t * n_cols, act_buf[i].data() + size_t(t) * arb, n_cols);
        const size_t need = ms[i]->prep_bytes(n_cols, nt) + 64;
        if (prep_buf[i].size() < need) prep_buf[i].resize(need);
        uint8_t * dst = prep_buf[i].data() + ((64 - reinterpret_cast<uintptr_t>(prep_buf[i].data()) % 64) % 64);
        ms[i]->prep(act_buf[i].data(), arb, nt, n_cols, dst);
        prep[i] = dst;
    }
    run_row_chunks(ws, n_w, pool, [&](int i, int64_t r0, int64_t r1) {
        const WeightView & w = ws[i];
        ms[i]->run(n_cols, w.data + r0 * w.row_bytes, w.row_bytes, r1 - r0, prep[i], nt, ys[i] + r0, size_t(w.n_rows));
    });
    return true;
}

}  // namespace

void matmul_group(const WeightView * ws, float * const * ys, int n_w, const float * x, int64_t n_tokens, ThreadPool & pool) {
    if (n_tokens >= 2 && matmul_group_multi(ws, ys, n_w, x, n_tokens, pool)) return;
    const TypeKernels * ks[k_max_group];
    bool fused = n_tokens == 1 && n_w <= k_max_group && pool.size() > 1;
    for (int i = 0; fused && i < n_w; ++i) {
        ks[i] = kernels_for(ws[i].type);
        // llama.cpp's order has its own quantizers and kernels: one call each
        fused = ks[i] != nullptr && ws[i].n_cols == ws[0].n_cols && llamacpp_kernels_for(ws[i].type) == nullptr;
    }
    if (!fused) {
        for (int i = 0; i < n_w; ++i) matmul(ws[i], x, n_tokens, ys[i], pool);
        return;
    }
    // one activation row per distinct format, quantized once
    const int64_t n_cols = ws[0].n_cols;
    thread_local std::vector<uint8_t> act_buf[k_max_group];
    const uint8_t * act[k_max_group];
    for (int i = 0; i < n_w; ++i) {
        act[i] = nullptr;
        for (int j = 0; j < i; ++j) {
            if (ks[j]->act_type == ks[i]->act_type && ks[j]->quantize == ks[i]->quantize) act[i] = act[j];
        }
        if (act[i] != nullptr) continue;
        if (ks[i]->quantize == nullptr) {
            act[i] = reinterpret_cast<const uint8_t *>(x);
            continue;
        }
        act_buf[i].resize(row_size(ks[i]->act_type, n_cols));
        ks[i]->quantize(x, act_buf[i].data(), n_cols);
        act[i] = act_buf[i].data();
    }
    // work items: chunks of rows of every weight, in one pool dispatch
    run_row_chunks(ws, n_w, pool, [&](int i, int64_t r0, int64_t r1) { matvec_rows(*ks[i], ws[i], act[i], ys[i], r0, r1); });
}

}  // namespace gb::cpu
