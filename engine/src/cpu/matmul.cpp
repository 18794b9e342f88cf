// Y = X W^T for GGUF-typed weights on the CPU: quantizes the activations to
// the weight type's activation format once, then splits the work over the
// thread pool (rows for decode, row x token tiles for prefill).
#include "cpu/matmul.h"

#include "cpu/thread_pool.h"
#include "cpu/vec_dot.h"

#include <algorithm>
#include <atomic>
#include <cassert>
#include <vector>

namespace gb::cpu {

namespace {

std::atomic<bool> g_force_scalar{false};

bool cpu_has_avx2() {
#if defined(__x86_64__) || defined(__i386__)
    static const bool ok = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
    return ok;
#else
    return false;
#endif
}

bool use_avx2() { return cpu_has_avx2() && !g_force_scalar.load(std::memory_order_relaxed); }

// Kernel tables per path, built once. AVX2 entries missing a kernel fall back to scalar.
struct KernelTables {
    static constexpr int k_n_ids = 64;
    TypeKernels table[2][k_n_ids];
    bool ok[2][k_n_ids] = {};
    KernelTables() {
        for (uint32_t id = 0; id < k_n_ids; ++id) {
            if (type_traits(id) == nullptr) continue;
            const TensorType t = static_cast<TensorType>(id);
            ok[0][id] = scalar_kernels(t, &table[0][id]);
            table[1][id] = table[0][id];
            ok[1][id] = ok[0][id];
            if (cpu_has_avx2()) {
                TypeKernels k;
                if (avx2_kernels(t, &k)) {
                    table[1][id] = k;
                    ok[1][id] = true;
                }
            }
        }
    }
};

const TypeKernels * kernels_for(TensorType t) {
    static const KernelTables tables;
    const uint32_t id = static_cast<uint32_t>(t);
    const int path = use_avx2() ? 1 : 0;
    if (id >= KernelTables::k_n_ids || !tables.ok[path][id]) return nullptr;
    return &tables.table[path][id];
}

// Below this many weight bytes a matvec runs on the caller alone: waking the
// pool would cost more than it saves.
constexpr size_t k_min_parallel_bytes = 48 * 1024;
// Prefill tile: weight rows that stay in L2 while a block of tokens sweeps them.
constexpr size_t k_tile_weight_bytes = 192 * 1024;
constexpr int64_t k_tile_tokens = 64;

}  // namespace

const char * simd_path() { return use_avx2() ? "avx2" : "scalar"; }

void force_scalar(bool on) { g_force_scalar.store(on, std::memory_order_relaxed); }

void matmul(const WeightView & w, const float * x, int64_t n_tokens, float * y, ThreadPool & pool) {
    const TypeKernels * k = kernels_for(w.type);
    assert(k != nullptr && "matmul: weight type has no CPU kernel");
    assert(w.n_cols % type_traits(w.type).block_size == 0);
    if (k == nullptr || n_tokens <= 0 || w.n_rows <= 0) return;
    const int64_t n_cols = w.n_cols;
    const int64_t n_rows = w.n_rows;
    const int nth = pool.size();

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
            for (int64_t r = 0; r < n_rows; ++r) dot1(n_cols, w.data + r * w.row_bytes, act, 0, y + r);
            return;
        }
        const int64_t chunk = std::max<int64_t>(4, (n_rows + 8 * nth - 1) / (8 * nth));
        const int64_t n_chunks = (n_rows + chunk - 1) / chunk;
        std::atomic<int64_t> next{0};
        auto rows = [&] {
            for (int64_t c = next.fetch_add(1, std::memory_order_relaxed); c < n_chunks;
                 c = next.fetch_add(1, std::memory_order_relaxed)) {
                const int64_t r1 = std::min(n_rows, (c + 1) * chunk);
                for (int64_t r = c * chunk; r < r1; ++r) dot1(n_cols, w.data + r * w.row_bytes, act, 0, y + r);
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

}  // namespace gb::cpu
