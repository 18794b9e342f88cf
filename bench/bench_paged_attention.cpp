// Micro-benchmark of the CPU paged attention with GQA: the query heads of one
// KV head run one at a time (each reads every K/V page again) against
// attend_paged_group (each K/V slot read once per group). Prints timings only.
#include "forward_ops.h"
#include "kv/paged_attention.h"
#include "quants.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <random>
#include <vector>

using namespace gb;
using namespace gb::kv;

int main(int argc, char ** argv) {
    // args: head_dim group n_keys n_seqs kv(f16|q8_0)
    const int32_t hd = argc > 1 ? std::atoi(argv[1]) : 256;
    const int32_t group = argc > 2 ? std::atoi(argv[2]) : 4;
    const int32_t n_keys = argc > 3 ? std::atoi(argv[3]) : 2048;
    const int32_t n_seqs = argc > 4 ? std::atoi(argv[4]) : 8;
    const bool q8 = argc > 5 && std::strcmp(argv[5], "q8_0") == 0;
    const int32_t ps = 16;
    const int32_t pages_per_seq = (n_keys + ps - 1) / ps;
    KvShape shape;
    shape.type = q8 ? KvType::Q8_0 : KvType::F16;
    shape.n_layer = 1;
    shape.n_head_kv = 1;
    shape.head_dim_k = hd;
    shape.head_dim_v = hd;
    shape.page_size = ps;
    shape.n_pages = pages_per_seq * n_seqs;
    auto kv = CpuKvStorage::create(shape);
    if (!kv) { std::fprintf(stderr, "%s\n", kv.error().message.c_str()); return 1; }
    std::mt19937 rng(1);
    {
        // random bytes are fine for F16 only if they are finite: fill with small halves / valid q8 blocks
        std::uniform_real_distribution<float> u(-1.0f, 1.0f);
        std::vector<float> row(static_cast<size_t>(hd));
        for (int32_t p = 0; p < shape.n_pages; ++p) {
            for (int32_t s = 0; s < ps; ++s) {
                for (auto & x : row) x = u(rng);
                uint8_t * kd = (*kv)->k_layer(0) + size_t(p) * (*kv)->page_bytes_k() + size_t(s) * (*kv)->slot_bytes_k();
                uint8_t * vd = (*kv)->v_layer(0) + size_t(p) * (*kv)->page_bytes_v() + size_t(s) * (*kv)->slot_bytes_v();
                if (q8) {
                    quantize_row_q8_0_ref(row.data(), reinterpret_cast<block_q8_0 *>(kd), hd);
                    quantize_row_q8_0_ref(row.data(), reinterpret_cast<block_q8_0 *>(vd), hd);
                } else {
                    ops::f32_to_f16(reinterpret_cast<uint16_t *>(kd), row.data(), hd);
                    ops::f32_to_f16(reinterpret_cast<uint16_t *>(vd), row.data(), hd);
                }
            }
        }
    }
    std::vector<PageId> table(size_t(shape.n_pages));
    std::iota(table.begin(), table.end(), 0);
    std::shuffle(table.begin(), table.end(), rng);  // scattered pages
    std::vector<float> q(size_t(group) * hd), out_a(size_t(group) * hd), out_b(size_t(group) * hd);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    for (auto & x : q) x = u(rng);
    std::vector<float> scratch(size_t(group) * size_t(ops::attend_scratch_floats(n_keys, hd, hd)));
    auto head_of = [&](int s) {
        PagedHead h;
        h.type = shape.type;
        h.pages = table.data() + size_t(s) * pages_per_seq;
        h.page_size = ps;
        h.k = (*kv)->k_layer(0);
        h.v = (*kv)->v_layer(0);
        h.k_page_bytes = (*kv)->page_bytes_k();
        h.k_slot_bytes = (*kv)->slot_bytes_k();
        h.v_page_bytes = (*kv)->page_bytes_v();
        h.v_slot_bytes = (*kv)->slot_bytes_v();
        return h;
    };
    const float scale = 1.0f / std::sqrt(float(hd));
    using Clock = std::chrono::steady_clock;
    double best[2] = {1e30, 1e30};
    for (int rep = 0; rep < 7; ++rep) {
        for (int mode = 0; mode < 2; ++mode) {
            const auto t0 = Clock::now();
            for (int s = 0; s < n_seqs; ++s) {
                const PagedHead h = head_of(s);
                if (mode == 0) {
                    for (int32_t i = 0; i < group; ++i)
                        attend_paged(out_a.data() + i * hd, q.data() + i * hd, h, 0, n_keys, hd, hd, scale, scratch.data());
                } else {
                    attend_paged_group(out_b.data(), hd, q.data(), hd, group, h, 0, n_keys, hd, hd, scale, scratch.data());
                }
            }
            best[mode] = std::min(best[mode], std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
        }
    }
    const bool same = std::memcmp(out_a.data(), out_b.data(), out_a.size() * sizeof(float)) == 0;
    std::printf("head_dim %d group %d keys %d seqs %d kv %s: per head %.3f ms, per group %.3f ms (x%.2f), same bits %s\n", hd, group,
                n_keys, n_seqs, q8 ? "q8_0" : "f16", best[0], best[1], best[0] / best[1], same ? "yes" : "NO");
    return same ? 0 : 1;
}
