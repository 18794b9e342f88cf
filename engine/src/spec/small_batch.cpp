// 2-4 token matmuls for speculative verification: chunks of weight rows, each
// row (dot4: 1 row x 4 tokens) or 4-row group (rows4, per token) dotted with
// every token while it is in L1, so the matrix is streamed once.
#include "spec/small_batch.h"

#include "cpu/matmul.h"
#include "cpu/thread_pool.h"
#include "cpu/vec_dot.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <vector>

namespace gb::spec {
bool small_batch_matmul(const cpu::WeightView & w, const float * x, int64_t n, float * y, cpu::ThreadPool & pool) {
    if (n < 2 || n > 4 || cpu::llamacpp_order()) return false;
    if (w.row_bytes * size_t(w.n_rows) < 48 * 1024) return false;  // small: cpu::matmul runs it inline anyway
    const cpu::TypeKernels * k = cpu::dot_kernels(w.type);
    if (k == nullptr || k->dot4 == nullptr || k->quantize == nullptr) return false;
    const bool use_rows4 = n == 2 && k->rows4 != nullptr;  // 2 tokens: two 4-row passes beat a padded dot4

    // activations, padded to 4 rows by repeating the last (dot4 always reads 4)
    const int64_t n_cols = w.n_cols, n_rows = w.n_rows;
    const size_t arb = row_size(k->act_type, n_cols);
    thread_local std::vector<uint8_t> act;
    act.resize(arb * 4);
    for (int64_t t = 0; t < n; ++t) k->quantize(x + t * n_cols, act.data() + size_t(t) * arb, n_cols);
    for (int64_t t = n; t < 4; ++t) std::memcpy(act.data() + size_t(t) * arb, act.data() + size_t(n - 1) * arb, arb);
    const uint8_t * a = act.data();  // the pool's threads see their own thread_local, not this one

    auto rows = [&](int64_t r0, int64_t r1) {
        if (use_rows4) {
            int64_t r = r0;
            for (; r + 4 <= r1; r += 4) {
                for (int64_t t = 0; t < n; ++t) k->rows4(n_cols, w.data + r * w.row_bytes, w.row_bytes, a + size_t(t) * arb, y + t * n_rows + r);
            }
            for (; r < r1; ++r) {
                for (int64_t t = 0; t < n; ++t) k->dot1(n_cols, w.data + r * w.row_bytes, a + size_t(t) * arb, 0, y + t * n_rows + r);
            }
            return;
        }
        float o[4];
        for (int64_t r = r0; r < r1; ++r) {
            k->dot4(n_cols, w.data + r * w.row_bytes, a, arb, o);
            for (int64_t t = 0; t < n; ++t) y[t * n_rows + r] = o[t];
        }
    };
    const int nth = pool.size();
    if (nth == 1) {
        rows(0, n_rows);
        return true;
    }
    // ~8 chunks per thread, multiples of 4 rows, handed out from a shared counter
    const int64_t chunk = (std::max<int64_t>(4, (n_rows + 8 * nth - 1) / (8 * nth)) + 3) / 4 * 4;
    const int64_t n_chunks = (n_rows + chunk - 1) / chunk;
    std::atomic<int64_t> next{0};
    auto work = [&] {
        for (int64_t c = next.fetch_add(1, std::memory_order_relaxed); c < n_chunks; c = next.fetch_add(1, std::memory_order_relaxed)) {
            rows(c * chunk, std::min(n_rows, (c + 1) * chunk));
        }
    };
    pool.run([f = &work](int, int) { (*f)(); });
    return true;
}

}  // namespace gb::spec
