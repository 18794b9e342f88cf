// GPTQ for GGUF 4-bit blocks (Q4_0, Q4_K) and importance-weighted round-to-nearest.
// Rows (output channels) are independent given U = upper Cholesky factor of H^-1,
// so they are processed in tiles of rows in parallel; scales are fixed per block
// when the column walk reaches the block (or up front with act-order).
#include "glassbox/quant/gptq.h"

#include "cpu/thread_pool.h"
#include "quants.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <thread>

namespace gb::quant {
namespace {

int resolve_threads(int n) { return n > 0 ? n : int(std::max(1u, std::thread::hardware_concurrency())); }

// H (n x n, symmetric, SPD after damping) -> U upper triangular with H^-1 = U^T U.
// With J the reversal, J H J = L L^T gives H = R R^T, R = J L J upper; U = R^-1.
bool inverse_upper_cholesky(std::vector<double> & h, int64_t n, cpu::ThreadPool & pool) {
    // L = chol(J H J), lower, row-major, in `l`.
    std::vector<double> l(static_cast<size_t>(n * n), 0.0);
    auto hr = [&](int64_t i, int64_t j) { return h[size_t((n - 1 - i) * n + (n - 1 - j))]; };
    for (int64_t j = 0; j < n; ++j) {
        const double * lj = &l[size_t(j * n)];
        double s = hr(j, j);
        for (int64_t k = 0; k < j; ++k) s -= lj[k] * lj[k];
        if (!(s > 0.0)) return false;
        const double djj = std::sqrt(s);
        l[size_t(j * n + j)] = djj;
        auto body = [&](int64_t b, int64_t e) {
            for (int64_t i = j + 1 + b; i < j + 1 + e; ++i) {
                const double * li = &l[size_t(i * n)];
                double t = hr(i, j);
                for (int64_t k = 0; k < j; ++k) t -= li[k] * lj[k];
                l[size_t(i * n + j)] = t / djj;
            }
        };
        const int64_t rem = n - j - 1;
        if (rem * j > (1 << 15)) pool.parallel_for(rem, 16, body);
        else body(0, rem);
    }
    // R[i][j] = L[n-1-i][n-1-j] (upper). U = R^-1 (upper): solve column by column.
    // Equivalent: U = J L^-1 J. Compute M = L^-1 (lower) by forward substitution per column.
    std::vector<double> m(static_cast<size_t>(n * n), 0.0);
    pool.parallel_for(n, 8, [&](int64_t b, int64_t e) {
        std::vector<double> col(static_cast<size_t>(n));
        for (int64_t c = b; c < e; ++c) {
            // solve L x = e_c, x[i] = 0 for i < c
            std::fill(col.begin(), col.end(), 0.0);
            for (int64_t i = c; i < n; ++i) {
                double t = i == c ? 1.0 : 0.0;
                const double * li = &l[size_t(i * n)];
                for (int64_t k = c; k < i; ++k) t -= li[k] * col[size_t(k)];
                col[size_t(i)] = t / li[i];
            }
            for (int64_t i = c; i < n; ++i) m[size_t(i * n + c)] = col[size_t(i)];
        }
    });
    // U[i][j] = M[n-1-i][n-1-j]
    for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < n; ++j) h[size_t(i * n + j)] = m[size_t((n - 1 - i) * n + (n - 1 - j))];
    return true;
}

// Per-row, per-element affine grid: value = scale * q - offset, q in [0, 15].
struct Grid {
    float scale = 0.0f, offset = 0.0f;
    uint8_t quant(double w) const {
        if (scale == 0.0f) return uint8_t(std::clamp(0.0, 0.0, 15.0));
        const double q = std::nearbyint((w + offset) / scale);
        return uint8_t(std::clamp(q, 0.0, 15.0));
    }
    double value(uint8_t q) const { return double(scale) * q - offset; }
};

// Q4_0 grid over values v[0..n): d = signed max / -8, stored as fp16.
Grid q4_0_grid(const double * v, int64_t n) {
    double amax = 0.0, mx = 0.0;
    for (int64_t i = 0; i < n; ++i)
        if (std::fabs(v[i]) > amax) { amax = std::fabs(v[i]); mx = v[i]; }
    const float d = fp16_to_fp32(fp32_to_fp16(float(mx / -8.0)));
    Grid g;
    g.scale = d;
    g.offset = 8.0f * d;  // x = d * (q - 8)
    return g;
}

// Q4_K super-block over v[0..256): scales/mins from the reference quantizer;
// grids[k] for the 8 sub-blocks; header (d, dmin, scales) written to blk.
void q4_k_grids(const double * v, block_q4_K * blk, Grid * grids) {
    float f[QK_K];
    for (int i = 0; i < QK_K; ++i) f[i] = float(v[i]);
    quantize_row_ref(TensorType::Q4_K, f, blk, QK_K);
    const float d = fp16_to_fp32(blk->d), dmin = fp16_to_fp32(blk->dmin);
    for (int k = 0; k < 8; ++k) {
        uint8_t sc, mn;
        get_scale_min_k4(k, blk->scales, &sc, &mn);
        grids[k].scale = d * float(sc);
        grids[k].offset = dmin * float(mn);
    }
}

void pack_q4_0(const uint8_t * q, block_q4_0 * b, float d) {
    b->d = fp32_to_fp16(d);
    for (int j = 0; j < 16; ++j) b->qs[j] = uint8_t(q[j] | (q[j + 16] << 4));
}
void pack_q4_k_qs(const uint8_t * q, block_q4_K * b) {
    for (int j = 0; j < 4; ++j)
        for (int l = 0; l < 32; ++l) b->qs[32 * j + l] = uint8_t(q[64 * j + l] | (q[64 * j + 32 + l] << 4));
}

}  // namespace

void InputStats::add(const float * x, int64_t n_tok, int64_t n_c) {
    if (h.empty()) {
        n_cols = n_c;
        h.assign(size_t(n_c * n_c), 0.0);
    }
    if (n_c != n_cols) return;
    // upper triangle only; mirrored when used.  h[i][j] += sum_t x[t,i] x[t,j]
    const int n_threads = resolve_threads(0);
    auto body = [&](int64_t b, int64_t e) {
        std::vector<double> xd(static_cast<size_t>(n_c));
        for (int64_t t = 0; t < n_tok; ++t) {
            const float * xt = x + t * n_c;
            for (int64_t i = 0; i < n_c; ++i) xd[size_t(i)] = xt[i];
            for (int64_t i = b; i < e; ++i) {
                const double xi = xd[size_t(i)];
                if (xi == 0.0) continue;
                double * hi = &h[size_t(i * n_c)];
                for (int64_t j = i; j < n_c; ++j) hi[j] += xi * xd[size_t(j)];
            }
        }
    };
    if (n_threads == 1 || n_tok * n_c * n_c < (1 << 20)) {
        body(0, n_c);
    } else {
        // balance the triangle: split rows so each thread gets ~equal area
        std::vector<std::thread> th;
        const double total = double(n_c) * double(n_c + 1) / 2.0;
        int64_t start = 0;
        for (int k = 0; k < n_threads && start < n_c; ++k) {
            const double target = total * double(k + 1) / n_threads;
            int64_t end = start;
            // area of rows [0, end) = end*n - end*(end-1)/2
            while (end < n_c && double(end) * n_c - double(end) * (end - 1) / 2.0 < target) ++end;
            if (k == n_threads - 1) end = n_c;
            th.emplace_back(body, start, end);
            start = end;
        }
        for (auto & t : th) t.join();
    }
    n_tokens += n_tok;
}

Status gptq_quantize(TensorType type, const float * w, int64_t n_rows, int64_t n_cols, const InputStats & stats,
                     const GptqParams & params, uint8_t * out) {
    if (type != TensorType::Q4_0 && type != TensorType::Q4_K) {
        return make_error(ErrorCode::InvalidArgument, std::string("GPTQ supports Q4_0 and Q4_K, not ") + type_name(type));
    }
    const int64_t blk = type == TensorType::Q4_0 ? QK4_0 : QK_K;
    if (n_cols % blk != 0) {
        return make_error(ErrorCode::InvalidArgument, "GPTQ " + std::string(type_name(type)) + ": row length " +
                                                          std::to_string(n_cols) + " is not a multiple of " + std::to_string(blk));
    }
    const int64_t group = type == TensorType::Q4_0 ? params.group_size : QK_K;
    if (type == TensorType::Q4_0 && (group != 32 && group != 64 && group != 128)) {
        return make_error(ErrorCode::InvalidArgument, "GPTQ group size must be 32, 64 or 128, not " + std::to_string(group));
    }
    if (type == TensorType::Q4_0 && n_cols % group != 0) {
        return make_error(ErrorCode::InvalidArgument, "GPTQ: row length " + std::to_string(n_cols) +
                                                          " is not a multiple of the group size " + std::to_string(group));
    }
    if (stats.n_cols != n_cols || stats.h.size() != size_t(n_cols * n_cols)) {
        return make_error(ErrorCode::InvalidArgument, "GPTQ: input statistics have " + std::to_string(stats.n_cols) +
                                                          " columns, the weight has " + std::to_string(n_cols));
    }
    const int64_t n = n_cols;
    cpu::ThreadPool pool(resolve_threads(params.n_threads));

    // H, symmetric; dead inputs (never non-zero) get H_ii = 1 and their weights are zeroed.
    std::vector<double> h(static_cast<size_t>(n * n));
    for (int64_t i = 0; i < n; ++i)
        for (int64_t j = i; j < n; ++j) h[size_t(i * n + j)] = h[size_t(j * n + i)] = stats.h[size_t(i * n + j)];
    std::vector<bool> dead(static_cast<size_t>(n), false);
    double mean_diag = 0.0;
    for (int64_t i = 0; i < n; ++i) {
        if (h[size_t(i * n + i)] <= 0.0) { dead[size_t(i)] = true; h[size_t(i * n + i)] = 1.0; }
        mean_diag += h[size_t(i * n + i)];
    }
    mean_diag /= double(n);
    // column order
    std::vector<int64_t> perm(static_cast<size_t>(n));
    std::iota(perm.begin(), perm.end(), 0);
    if (params.act_order) {
        std::stable_sort(perm.begin(), perm.end(), [&](int64_t a, int64_t b) { return h[size_t(a * n + a)] > h[size_t(b * n + b)]; });
    }
    std::vector<double> hp(static_cast<size_t>(n * n));
    for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < n; ++j) hp[size_t(i * n + j)] = h[size_t(perm[size_t(i)] * n + perm[size_t(j)])];
    double damp = std::max(params.damp, 0.0) * mean_diag;
    bool ok = false;
    for (int attempt = 0; attempt < 6 && !ok; ++attempt) {
        std::vector<double> u = hp;
        for (int64_t i = 0; i < n; ++i) u[size_t(i * n + i)] += damp;
        if (inverse_upper_cholesky(u, n, pool)) { hp.swap(u); ok = true; }
        else damp = damp > 0.0 ? damp * 10.0 : 1e-6 * mean_diag + 1e-12;
    }
    if (!ok) return make_error(ErrorCode::InvalidArgument, "GPTQ: the Hessian is not positive definite even with damping");
    const std::vector<double> & u = hp;  // [n, n] upper, permuted order
    std::vector<int64_t> pos_of(static_cast<size_t>(n));  // original column -> position in the walk
    for (int64_t i = 0; i < n; ++i) pos_of[size_t(perm[size_t(i)])] = i;

    const size_t row_bytes = row_size(type, n);
    const int64_t n_groups = n / group;
    constexpr int64_t kTile = 8;
    pool.parallel_for((n_rows + kTile - 1) / kTile, 1, [&](int64_t tb, int64_t te) {
        std::vector<double> wr(static_cast<size_t>(kTile * n));          // rows of the tile, original column order
        std::vector<Grid> grids(static_cast<size_t>(kTile * (n / 32)));  // per 32-sub-block grid (Q4_0 groups replicate)
        std::vector<uint8_t> q(static_cast<size_t>(kTile * n));
        std::vector<block_q4_K> kblk(static_cast<size_t>(kTile * (type == TensorType::Q4_K ? n / QK_K : 0)));
        std::vector<bool> grid_set(static_cast<size_t>(n_groups));
        for (int64_t tile = tb; tile < te; ++tile) {
            const int64_t r0 = tile * kTile, nr = std::min(kTile, n_rows - r0);
            for (int64_t r = 0; r < nr; ++r)
                for (int64_t c = 0; c < n; ++c) wr[size_t(r * n + c)] = dead[size_t(c)] ? 0.0 : w[(r0 + r) * n + c];
            auto make_group_grid = [&](int64_t g) {
                for (int64_t r = 0; r < nr; ++r) {
                    const double * v = &wr[size_t(r * n + g * group)];
                    if (type == TensorType::Q4_0) {
                        const Grid gr = q4_0_grid(v, group);
                        for (int64_t s = 0; s < group / 32; ++s) grids[size_t(r * (n / 32) + g * group / 32 + s)] = gr;
                    } else {
                        q4_k_grids(v, &kblk[size_t(r * (n / QK_K) + g)], &grids[size_t(r * (n / 32) + g * 8)]);
                    }
                }
            };
            std::fill(grid_set.begin(), grid_set.end(), false);
            if (params.act_order) {  // static groups from the original weights
                for (int64_t g = 0; g < n_groups; ++g) { make_group_grid(g); grid_set[size_t(g)] = true; }
            }
            double err[kTile];
            for (int64_t i = 0; i < n; ++i) {
                const int64_t c = perm[size_t(i)];
                const int64_t g = c / group;
                if (!grid_set[size_t(g)]) { make_group_grid(g); grid_set[size_t(g)] = true; }
                const double uii = u[size_t(i * n + i)];
                for (int64_t r = 0; r < nr; ++r) {
                    const Grid & gr = grids[size_t(r * (n / 32) + c / 32)];
                    const double wv = wr[size_t(r * n + c)];
                    const uint8_t qq = gr.quant(wv);
                    q[size_t(r * n + c)] = qq;
                    err[r] = (wv - gr.value(qq)) / uii;
                }
                // propagate to the columns after i in the walk
                const double * ui = &u[size_t(i * n)];
                for (int64_t r = 0; r < nr; ++r) {
                    const double e = err[r];
                    if (e == 0.0) continue;
                    double * wrow = &wr[size_t(r * n)];
                    if (!params.act_order) {
                        for (int64_t j = i + 1; j < n; ++j) wrow[j] -= e * ui[j];
                    } else {
                        for (int64_t j = i + 1; j < n; ++j) wrow[perm[size_t(j)]] -= e * ui[j];
                    }
                }
            }
            // pack
            for (int64_t r = 0; r < nr; ++r) {
                uint8_t * dst = out + size_t(r0 + r) * row_bytes;
                if (type == TensorType::Q4_0) {
                    auto * b = reinterpret_cast<block_q4_0 *>(dst);
                    for (int64_t s = 0; s < n / 32; ++s) pack_q4_0(&q[size_t(r * n + s * 32)], &b[s], grids[size_t(r * (n / 32) + s)].scale);
                } else {
                    auto * b = reinterpret_cast<block_q4_K *>(dst);
                    for (int64_t s = 0; s < n / QK_K; ++s) {
                        b[s] = kblk[size_t(r * (n / QK_K) + s)];
                        pack_q4_k_qs(&q[size_t(r * n + s * QK_K)], &b[s]);
                    }
                }
            }
        }
    });
    (void)pos_of;
    return {};
}

Status rtn_weighted_quantize(TensorType type, const float * w, int64_t n_rows, int64_t n_cols,
                             const std::vector<float> & importance, uint8_t * out) {
    if (type != TensorType::Q4_0) {
        return make_error(ErrorCode::InvalidArgument, std::string("weighted RTN supports Q4_0, not ") + type_name(type));
    }
    if (n_cols % QK4_0 != 0) {
        return make_error(ErrorCode::InvalidArgument, "weighted RTN: row length " + std::to_string(n_cols) + " is not a multiple of 32");
    }
    if (int64_t(importance.size()) != n_cols) {
        return make_error(ErrorCode::InvalidArgument, "weighted RTN: importance has " + std::to_string(importance.size()) +
                                                          " entries, the weight has " + std::to_string(n_cols) + " columns");
    }
    const size_t row_bytes = row_size(type, n_cols);
    cpu::ThreadPool pool(resolve_threads(0));
    pool.parallel_for(n_rows, 16, [&](int64_t b, int64_t e) {
        uint8_t q[32], best_q[32];
        double v[32];
        for (int64_t r = b; r < e; ++r) {
            auto * blk = reinterpret_cast<block_q4_0 *>(out + size_t(r) * row_bytes);
            for (int64_t s = 0; s < n_cols / 32; ++s) {
                for (int k = 0; k < 32; ++k) v[k] = w[r * n_cols + s * 32 + k];
                const float * imp = importance.data() + s * 32;
                const Grid base = q4_0_grid(v, 32);
                double best = -1.0;
                float best_d = base.scale;
                // search scales around the RTN one: d * (1 + 0.01 k)
                for (int k = -12; k <= 12; ++k) {
                    Grid gr;
                    gr.scale = fp16_to_fp32(fp32_to_fp16(base.scale * float(1.0 + 0.01 * k)));
                    gr.offset = 8.0f * gr.scale;
                    double err = 0.0;
                    for (int j = 0; j < 32; ++j) {
                        // the scale may be negative (signed max): quantize with the same grid
                        q[j] = gr.quant(v[j]);
                        const double dlt = v[j] - gr.value(q[j]);
                        err += (double(imp[j]) + 1e-12) * dlt * dlt;
                    }
                    if (best < 0.0 || err < best) { best = err; best_d = gr.scale; std::memcpy(best_q, q, 32); }
                }
                pack_q4_0(best_q, &blk[s], best_d);
            }
        }
    });
    return {};
}

}  // namespace gb::quant
