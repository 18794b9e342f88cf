// Row conversion for the k-quants (256-element super-blocks: Q2_K..Q6_K, Q8_K).
// The quantizers reproduce ggml's reference ones, including their iterative
// scale searches, with the same float operation order so the bytes match.
#include "quants.h"

#include "glassbox/tensor_type.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace gb {

namespace {

constexpr float k_group_max_eps = 1e-15f;

inline float h2f(uint16_t h) { return fp16_to_fp32(h); }
inline uint16_t f2h(float f) { return fp32_to_fp16(f); }
inline int clampi(int v, int lo, int hi) { return std::max(lo, std::min(hi, v)); }

// Symmetric quantization of n values to L[i] in [0, 2*nmax) (stored with the
// +nmax offset), x ~ scale * (L - nmax). With weights w = x^2 (the only mode
// the reference Q6_K uses), try 18 nearby inverse scales and keep the one
// maximising (sum w x l)^2 / sum w l^2, i.e. the least weighted error after
// the optimal scale for that assignment.
float make_qx_quants_sq(int n, int nmax, const float * x, int8_t * L) {
    float amax = 0.0f;
    float max = 0.0f;
    for (int i = 0; i < n; ++i) {
        const float a = std::fabs(x[i]);
        if (a > amax) {
            amax = a;
            max = x[i];
        }
    }
    if (amax < k_group_max_eps) {
        for (int i = 0; i < n; ++i) L[i] = 0;
        return 0.0f;
    }
    float iscale = -nmax / max;
    float sumlx = 0.0f;
    float suml2 = 0.0f;
    for (int i = 0; i < n; ++i) {
        const int l = clampi(nearest_int(iscale * x[i]), -nmax, nmax - 1);
        L[i] = static_cast<int8_t>(l + nmax);
        const float w = x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    float scale = suml2 != 0.0f ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
    for (int step = -9; step <= 9; ++step) {
        if (step == 0) continue;
        iscale = -(nmax + 0.1f * step) / max;
        sumlx = 0.0f;
        suml2 = 0.0f;
        for (int i = 0; i < n; ++i) {
            const int l = clampi(nearest_int(iscale * x[i]), -nmax, nmax - 1);
            const float w = x[i] * x[i];
            sumlx += w * x[i] * l;
            suml2 += w * l * l;
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; ++i) {
                L[i] = static_cast<int8_t>(nmax + clampi(nearest_int(iscale * x[i]), -nmax, nmax - 1));
            }
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

// Symmetric 3-bit style quantization with coordinate-descent refinement: each
// value's level is re-chosen given the scale fitted to the others, keeping a
// change only when it improves (sum w x l)^2 / sum w l^2 (w = x^2); up to 5
// sweeps. L gets the +nmax offset.
float make_q3_quants_rmse(int n, int nmax, const float * x, int8_t * L) {
    float amax = 0.0f;
    float max = 0.0f;
    for (int i = 0; i < n; ++i) {
        const float a = std::fabs(x[i]);
        if (a > amax) {
            amax = a;
            max = x[i];
        }
    }
    if (amax < k_group_max_eps) {
        for (int i = 0; i < n; ++i) L[i] = 0;
        return 0.0f;
    }
    const float iscale = -nmax / max;
    float sumlx = 0.0f;
    float suml2 = 0.0f;
    for (int i = 0; i < n; ++i) {
        const int l = clampi(nearest_int(iscale * x[i]), -nmax, nmax - 1);
        L[i] = static_cast<int8_t>(l);
        const float w = x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    for (int sweep = 0; sweep < 5; ++sweep) {
        int n_changed = 0;
        for (int i = 0; i < n; ++i) {
            const float w = x[i] * x[i];
            float slx = sumlx - w * x[i] * L[i];
            if (slx > 0) {
                float sl2 = suml2 - w * L[i] * L[i];
                const int nl = clampi(nearest_int(x[i] * sl2 / slx), -nmax, nmax - 1);
                if (nl != L[i]) {
                    slx += w * x[i] * nl;
                    sl2 += w * nl * nl;
                    if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
                        L[i] = static_cast<int8_t>(nl);
                        sumlx = slx;
                        suml2 = sl2;
                        ++n_changed;
                    }
                }
            }
        }
        if (n_changed == 0) break;
    }
    for (int i = 0; i < n; ++i) L[i] = static_cast<int8_t>(L[i] + nmax);
    return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

// Asymmetric quantization x ~ scale * L - min_out, L in [0, nmax], min_out >= 0.
// Starts from the min/max grid, then scans nstep+1 grid sizes
// (nmax + rmin + rdelta * k) and for each solves the weighted least-squares
// scale and offset; keeps the assignment with the least weighted error
// (absolute error when use_mad, squared otherwise).
float make_qkx2_quants(int n, int nmax, const float * x, const float * weights, uint8_t * L, float * min_out,
                       uint8_t * Laux, float rmin, float rdelta, int nstep, bool use_mad) {
    float mn = x[0];
    float mx = x[0];
    float sum_w = weights[0];
    float sum_x = sum_w * x[0];
    for (int i = 1; i < n; ++i) {
        if (x[i] < mn) mn = x[i];
        if (x[i] > mx) mx = x[i];
        const float w = weights[i];
        sum_w += w;
        sum_x += w * x[i];
    }
    if (mn > 0) mn = 0;
    if (mx == mn) {
        for (int i = 0; i < n; ++i) L[i] = 0;
        *min_out = -mn;
        return 0.0f;
    }
    float iscale = nmax / (mx - mn);
    float scale = 1 / iscale;
    float best_error = 0.0f;
    for (int i = 0; i < n; ++i) {
        L[i] = static_cast<uint8_t>(clampi(nearest_int(iscale * (x[i] - mn)), 0, nmax));
        float diff = scale * L[i] + mn - x[i];
        diff = use_mad ? std::fabs(diff) : diff * diff;
        best_error += weights[i] * diff;
    }
    if (nstep < 1) {
        *min_out = -mn;
        return scale;
    }
    for (int step = 0; step <= nstep; ++step) {
        iscale = (rmin + rdelta * step + nmax) / (mx - mn);
        float sum_l = 0.0f, sum_l2 = 0.0f, sum_xl = 0.0f;
        for (int i = 0; i < n; ++i) {
            const int l = clampi(nearest_int(iscale * (x[i] - mn)), 0, nmax);
            Laux[i] = static_cast<uint8_t>(l);
            const float w = weights[i];
            sum_l += w * l;
            sum_l2 += w * l * l;
            sum_xl += w * l * x[i];
        }
        const float det = sum_w * sum_l2 - sum_l * sum_l;
        if (det > 0) {
            float this_scale = (sum_w * sum_xl - sum_x * sum_l) / det;
            float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / det;
            if (this_min > 0) {
                this_min = 0;
                this_scale = sum_xl / sum_l2;
            }
            float cur_error = 0.0f;
            for (int i = 0; i < n; ++i) {
                float diff = this_scale * Laux[i] + this_min - x[i];
                diff = use_mad ? std::fabs(diff) : diff * diff;
                cur_error += weights[i] * diff;
            }
            if (cur_error < best_error) {
                std::memcpy(L, Laux, static_cast<size_t>(n));
                best_error = cur_error;
                scale = this_scale;
                mn = this_min;
            }
        }
    }
    *min_out = -mn;
    return scale;
}

// Pack 256 2-bit values: byte l of each 32-byte group g holds elements
// 128*g + l + 32*k in bits 2k..2k+1.
void pack_2bit(const uint8_t * L, uint8_t * qs) {
    for (int j = 0; j < QK_K; j += 128) {
        for (int l = 0; l < 32; ++l) {
            qs[j / 4 + l] = static_cast<uint8_t>(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) |
                                                 (L[j + l + 96] << 6));
        }
    }
}

// Pack 8 6-bit scales and mins into the 12-byte Q4_K/Q5_K layout.
void pack_scale_min_k4(const uint8_t * ls, const uint8_t * lm, uint8_t * q) {
    for (int j = 0; j < 8; ++j) {
        if (j < 4) {
            q[j] = ls[j];
            q[j + 4] = lm[j];
        } else {
            q[j + 4] = static_cast<uint8_t>((ls[j] & 0x0f) | ((lm[j] & 0x0f) << 4));
            q[j - 4] |= static_cast<uint8_t>((ls[j] >> 4) << 6);
            q[j] |= static_cast<uint8_t>((lm[j] >> 4) << 6);
        }
    }
}

// Q3_K scale j (0..15), 6 bits biased by 32: low nibble in scales[j % 8]
// (high nibble for j >= 8), top 2 bits in scales[8 + j % 4] at bit 2*(j/4).
inline int q3k_scale(const uint8_t * s, int j) {
    const int lo = j < 8 ? (s[j] & 0x0f) : (s[j - 8] >> 4);
    const int hi = (s[8 + j % 4] >> (2 * (j / 4))) & 3;
    return (lo | (hi << 4)) - 32;
}

// Shared by Q4_K and Q5_K: per 32-sub-block scale/min search, then 6-bit
// quantization of scales and mins and requantization of the values to L.
void quantize_k4_scales(const float * x, int nmax, float rmin, int nstep, uint16_t * d_out, uint16_t * dmin_out,
                        uint8_t * scales12, uint8_t * L) {
    uint8_t Laux[32];
    float weights[32];
    float mins[QK_K / 32];
    float scales[QK_K / 32];
    float max_scale = 0.0f;
    float max_min = 0.0f;
    for (int j = 0; j < QK_K / 32; ++j) {
        const float * xs = x + 32 * j;
        float sum_x2 = 0.0f;
        for (int l = 0; l < 32; ++l) sum_x2 += xs[l] * xs[l];
        const float av_x = std::sqrt(sum_x2 / 32);
        for (int l = 0; l < 32; ++l) weights[l] = av_x + std::fabs(xs[l]);
        scales[j] = make_qkx2_quants(32, nmax, xs, weights, L + 32 * j, &mins[j], Laux, rmin, 0.1f, nstep, false);
        if (scales[j] > max_scale) max_scale = scales[j];
        if (mins[j] > max_min) max_min = mins[j];
    }
    const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
    const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
    uint8_t ls[8], lm[8];
    for (int j = 0; j < QK_K / 32; ++j) {
        // uint8 wrap first, as the reference does
        ls[j] = std::min<uint8_t>(63, static_cast<uint8_t>(nearest_int(inv_scale * scales[j])));
        lm[j] = std::min<uint8_t>(63, static_cast<uint8_t>(nearest_int(inv_min * mins[j])));
    }
    std::memset(scales12, 0, K_SCALE_SIZE);
    pack_scale_min_k4(ls, lm, scales12);
    *d_out = f2h(max_scale / 63.f);
    *dmin_out = f2h(max_min / 63.f);

    const float d_all = h2f(*d_out);
    const float dmin_all = h2f(*dmin_out);
    for (int j = 0; j < QK_K / 32; ++j) {
        uint8_t sc, m;
        get_scale_min_k4(j, scales12, &sc, &m);
        const float d = d_all * sc;
        if (d == 0.0f) continue;
        const float dm = dmin_all * m;
        for (int ii = 0; ii < 32; ++ii) {
            L[32 * j + ii] = static_cast<uint8_t>(clampi(nearest_int((x[32 * j + ii] + dm) / d), 0, nmax));
        }
    }
}

}  // namespace

// ---- Q2_K: 16 x 16, x = d*sc*q - dmin*m, 4-bit sc/m, q in 0..3 ------------

void quantize_row_q2_K_ref(const float * x, block_q2_K * y, int64_t n) {
    const int64_t nb = n / QK_K;
    uint8_t L[QK_K];
    uint8_t Laux[16];
    float weights[16];
    float mins[QK_K / 16];
    float scales[QK_K / 16];
    const float q4scale = 15.f;

    for (int64_t i = 0; i < nb; ++i, x += QK_K) {
        float max_scale = 0.0f;
        float max_min = 0.0f;
        for (int j = 0; j < QK_K / 16; ++j) {
            for (int l = 0; l < 16; ++l) weights[l] = std::fabs(x[16 * j + l]);
            scales[j] = make_qkx2_quants(16, 3, x + 16 * j, weights, L + 16 * j, &mins[j], Laux, -0.5f, 0.1f, 15, true);
            if (scales[j] > max_scale) max_scale = scales[j];
            if (mins[j] > max_min) max_min = mins[j];
        }
        if (max_scale > 0) {
            const float iscale = q4scale / max_scale;
            for (int j = 0; j < QK_K / 16; ++j) y[i].scales[j] = static_cast<uint8_t>(nearest_int(iscale * scales[j]));
            y[i].d = f2h(max_scale / q4scale);
        } else {
            for (int j = 0; j < QK_K / 16; ++j) y[i].scales[j] = 0;
            y[i].d = f2h(0.0f);
        }
        if (max_min > 0) {
            const float iscale = q4scale / max_min;
            for (int j = 0; j < QK_K / 16; ++j) {
                y[i].scales[j] |= static_cast<uint8_t>(nearest_int(iscale * mins[j]) << 4);
            }
            y[i].dmin = f2h(max_min / q4scale);
        } else {
            y[i].dmin = f2h(0.0f);
        }
        const float d_all = h2f(y[i].d);
        const float dmin_all = h2f(y[i].dmin);
        for (int j = 0; j < QK_K / 16; ++j) {
            const float d = d_all * (y[i].scales[j] & 0x0f);
            if (d == 0.0f) continue;  // keep the search's levels
            const float dm = dmin_all * (y[i].scales[j] >> 4);
            for (int ii = 0; ii < 16; ++ii) {
                L[16 * j + ii] = static_cast<uint8_t>(clampi(nearest_int((x[16 * j + ii] + dm) / d), 0, 3));
            }
        }
        pack_2bit(L, y[i].qs);
    }
}

void dequantize_row_q2_K(const block_q2_K * x, float * y, int64_t n) {
    const int64_t nb = n / QK_K;
    for (int64_t i = 0; i < nb; ++i) {
        const float d = h2f(x[i].d);
        const float dmin = h2f(x[i].dmin);
        // element e = 128*g + 32*k + 16*h + l: byte qs[32*g + 16*h + l], bits 2k; scale index e / 16
        for (int e = 0; e < QK_K; ++e) {
            const int g = e / 128, k = (e / 32) % 4, r = e % 32;
            const uint8_t sc = x[i].scales[e / 16];
            const float dl = d * (sc & 0x0f);
            const float ml = dmin * (sc >> 4);
            const int q = (x[i].qs[32 * g + r] >> (2 * k)) & 3;
            y[e] = dl * q - ml;
        }
        y += QK_K;
    }
}

// ---- Q3_K: 16 x 16, x = d * (sc - 32) * (q - 4*!hbit), q low 2 bits --------

void quantize_row_q3_K_ref(const float * x, block_q3_K * y, int64_t n) {
    const int64_t nb = n / QK_K;
    int8_t L[QK_K];
    float scales[QK_K / 16];

    for (int64_t i = 0; i < nb; ++i, x += QK_K) {
        float max_scale = 0.0f;
        float amax = 0.0f;
        for (int j = 0; j < QK_K / 16; ++j) {
            scales[j] = make_q3_quants_rmse(16, 4, x + 16 * j, L + 16 * j);
            const float a = std::fabs(scales[j]);
            if (a > amax) {
                amax = a;
                max_scale = scales[j];
            }
        }
        std::memset(y[i].scales, 0, 12);
        if (max_scale != 0.0f) {
            const float iscale = -32.f / max_scale;
            for (int j = 0; j < QK_K / 16; ++j) {
                int l = static_cast<int8_t>(nearest_int(iscale * scales[j]));
                l = clampi(l, -32, 31) + 32;
                if (j < 8) {
                    y[i].scales[j] = static_cast<uint8_t>(l & 0x0f);
                } else {
                    y[i].scales[j - 8] |= static_cast<uint8_t>((l & 0x0f) << 4);
                }
                y[i].scales[j % 4 + 8] |= static_cast<uint8_t>((l >> 4) << (2 * (j / 4)));
            }
            y[i].d = f2h(1 / iscale);
        } else {
            y[i].d = f2h(0.0f);
        }
        const float d_all = h2f(y[i].d);
        for (int j = 0; j < QK_K / 16; ++j) {
            const float d = d_all * q3k_scale(y[i].scales, j);
            if (d == 0.0f) continue;
            for (int ii = 0; ii < 16; ++ii) {
                L[16 * j + ii] = static_cast<int8_t>(clampi(nearest_int(x[16 * j + ii] / d), -4, 3) + 4);
            }
        }
        // high bit of element e goes to hmask[e % 32], bit e / 32
        std::memset(y[i].hmask, 0, QK_K / 8);
        uint8_t Lu[QK_K];
        for (int e = 0; e < QK_K; ++e) {
            int l = L[e];
            if (l > 3) {
                y[i].hmask[e % 32] |= static_cast<uint8_t>(1u << (e / 32));
                l -= 4;
            }
            Lu[e] = static_cast<uint8_t>(l);
        }
        pack_2bit(Lu, y[i].qs);
    }
}

void dequantize_row_q3_K(const block_q3_K * x, float * y, int64_t n) {
    const int64_t nb = n / QK_K;
    for (int64_t i = 0; i < nb; ++i) {
        const float d_all = h2f(x[i].d);
        for (int e = 0; e < QK_K; ++e) {
            const int g = e / 128, k = (e / 32) % 4, r = e % 32;
            const float dl = d_all * q3k_scale(x[i].scales, e / 16);
            const int lo = (x[i].qs[32 * g + r] >> (2 * k)) & 3;
            const int q = lo - (((x[i].hmask[r] >> (e / 32)) & 1) ? 0 : 4);
            y[e] = dl * q;
        }
        y += QK_K;
    }
}

// ---- Q4_K: 8 x 32, x = d*sc*q - dmin*m, 6-bit sc/m, q in 0..15 ------------

void quantize_row_q4_K_ref(const float * x, block_q4_K * y, int64_t n) {
    const int64_t nb = n / QK_K;
    uint8_t L[QK_K];
    for (int64_t i = 0; i < nb; ++i, x += QK_K) {
        quantize_k4_scales(x, 15, -1.f, 20, &y[i].d, &y[i].dmin, y[i].scales, L);
        // 32-byte group g: low nibbles elements 64g..64g+31, high nibbles the next 32
        for (int g = 0; g < QK_K / 64; ++g) {
            for (int l = 0; l < 32; ++l) {
                y[i].qs[32 * g + l] = static_cast<uint8_t>(L[64 * g + l] | (L[64 * g + l + 32] << 4));
            }
        }
    }
}

void dequantize_row_q4_K(const block_q4_K * x, float * y, int64_t n) {
    const int64_t nb = n / QK_K;
    for (int64_t i = 0; i < nb; ++i) {
        const float d = h2f(x[i].d);
        const float dmin = h2f(x[i].dmin);
        for (int j = 0; j < QK_K / 32; ++j) {
            uint8_t sc, m;
            get_scale_min_k4(j, x[i].scales, &sc, &m);
            const float dl = d * sc;
            const float ml = dmin * m;
            const uint8_t * q = x[i].qs + 32 * (j / 2);
            const int shift = 4 * (j % 2);
            for (int l = 0; l < 32; ++l) y[32 * j + l] = dl * ((q[l] >> shift) & 0x0f) - ml;
        }
        y += QK_K;
    }
}

// ---- Q5_K: as Q4_K with a 5th bit, q in 0..31 -----------------------------

void quantize_row_q5_K_ref(const float * x, block_q5_K * y, int64_t n) {
    const int64_t nb = n / QK_K;
    uint8_t L[QK_K];
    for (int64_t i = 0; i < nb; ++i, x += QK_K) {
        quantize_k4_scales(x, 31, -0.5f, 15, &y[i].d, &y[i].dmin, y[i].scales, L);
        // sub-block j: low nibbles as Q4_K, 5th bit in qh[l] bit j
        std::memset(y[i].qh, 0, QK_K / 8);
        std::memset(y[i].qs, 0, QK_K / 2);
        for (int j = 0; j < QK_K / 32; ++j) {
            for (int l = 0; l < 32; ++l) {
                const int v = L[32 * j + l];
                y[i].qs[32 * (j / 2) + l] |= static_cast<uint8_t>((v & 0x0f) << (4 * (j % 2)));
                if (v > 15) y[i].qh[l] |= static_cast<uint8_t>(1u << j);
            }
        }
    }
}

void dequantize_row_q5_K(const block_q5_K * x, float * y, int64_t n) {
    const int64_t nb = n / QK_K;
    for (int64_t i = 0; i < nb; ++i) {
        const float d = h2f(x[i].d);
        const float dmin = h2f(x[i].dmin);
        for (int j = 0; j < QK_K / 32; ++j) {
            uint8_t sc, m;
            get_scale_min_k4(j, x[i].scales, &sc, &m);
            const float dl = d * sc;
            const float ml = dmin * m;
            const uint8_t * q = x[i].qs + 32 * (j / 2);
            const int shift = 4 * (j % 2);
            for (int l = 0; l < 32; ++l) {
                const int v = ((q[l] >> shift) & 0x0f) + (((x[i].qh[l] >> j) & 1) ? 16 : 0);
                y[32 * j + l] = dl * v - ml;
            }
        }
        y += QK_K;
    }
}

// ---- Q6_K: 16 x 16, x = d * sc * (q - 32), int8 sc, q in 0..63 ------------

void quantize_row_q6_K_ref(const float * x, block_q6_K * y, int64_t n) {
    const int64_t nb = n / QK_K;
    int8_t L[QK_K];
    float scales[QK_K / 16];
    for (int64_t i = 0; i < nb; ++i, x += QK_K) {
        float max_scale = 0.0f;
        float max_abs_scale = 0.0f;
        for (int ib = 0; ib < QK_K / 16; ++ib) {
            scales[ib] = make_qx_quants_sq(16, 32, x + 16 * ib, L + 16 * ib);
            const float a = std::fabs(scales[ib]);
            if (a > max_abs_scale) {
                max_abs_scale = a;
                max_scale = scales[ib];
            }
        }
        if (max_abs_scale < k_group_max_eps) {
            std::memset(&y[i], 0, sizeof(block_q6_K));
            continue;
        }
        const float iscale = -128.f / max_scale;
        y[i].d = f2h(1 / iscale);
        for (int ib = 0; ib < QK_K / 16; ++ib) {
            y[i].scales[ib] = static_cast<int8_t>(std::min(127, nearest_int(iscale * scales[ib])));
        }
        const float d_all = h2f(y[i].d);
        for (int j = 0; j < QK_K / 16; ++j) {
            const float d = d_all * y[i].scales[j];
            if (d == 0.0f) continue;
            for (int ii = 0; ii < 16; ++ii) {
                L[16 * j + ii] = static_cast<int8_t>(clampi(nearest_int(x[16 * j + ii] / d), -32, 31) + 32);
            }
        }
        // element e = 128*g + 32*k + l: low nibble in ql[64*g + 32*(k%2) + l] at
        // bit 4*(k/2); high 2 bits in qh[32*g + l] at bit 2*k
        std::memset(y[i].ql, 0, QK_K / 2);
        std::memset(y[i].qh, 0, QK_K / 4);
        for (int e = 0; e < QK_K; ++e) {
            const int g = e / 128, k = (e / 32) % 4, l = e % 32;
            const int v = L[e];
            y[i].ql[64 * g + 32 * (k % 2) + l] |= static_cast<uint8_t>((v & 0x0f) << (4 * (k / 2)));
            y[i].qh[32 * g + l] |= static_cast<uint8_t>((v >> 4) << (2 * k));
        }
    }
}

void dequantize_row_q6_K(const block_q6_K * x, float * y, int64_t n) {
    const int64_t nb = n / QK_K;
    for (int64_t i = 0; i < nb; ++i) {
        const float d = h2f(x[i].d);
        for (int e = 0; e < QK_K; ++e) {
            const int g = e / 128, k = (e / 32) % 4, l = e % 32;
            const int lo = (x[i].ql[64 * g + 32 * (k % 2) + l] >> (4 * (k / 2))) & 0x0f;
            const int hi = (x[i].qh[32 * g + l] >> (2 * k)) & 3;
            y[e] = d * x[i].scales[e / 16] * ((lo | (hi << 4)) - 32);
        }
        y += QK_K;
    }
}

// ---- Q8_K (activations): float d, q = round(-127/max * x) -----------------

void quantize_row_q8_K_ref(const float * x, block_q8_K * y, int64_t n) {
    const int64_t nb = n / QK_K;
    for (int64_t i = 0; i < nb; ++i, x += QK_K) {
        float amax = 0.0f;
        float max = 0.0f;
        for (int j = 0; j < QK_K; ++j) {
            const float a = std::fabs(x[j]);
            if (a > amax) {
                amax = a;
                max = x[j];
            }
        }
        if (amax == 0.0f) {
            y[i].d = 0.0f;
            std::memset(y[i].qs, 0, QK_K);
            std::memset(y[i].bsums, 0, sizeof(y[i].bsums));
            continue;
        }
        const float iscale = -127.f / max;
        for (int j = 0; j < QK_K; ++j) y[i].qs[j] = static_cast<int8_t>(std::min(127, nearest_int(iscale * x[j])));
        for (int j = 0; j < QK_K / 16; ++j) {
            int sum = 0;
            for (int l = 0; l < 16; ++l) sum += y[i].qs[16 * j + l];
            y[i].bsums[j] = static_cast<int16_t>(sum);
        }
        y[i].d = 1 / iscale;
    }
}

void dequantize_row_q8_K(const block_q8_K * x, float * y, int64_t n) {
    const int64_t nb = n / QK_K;
    for (int64_t i = 0; i < nb; ++i, y += QK_K) {
        for (int j = 0; j < QK_K; ++j) y[j] = x[i].d * x[i].qs[j];
    }
}

}  // namespace gb
