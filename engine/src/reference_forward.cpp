// The scalar fp32 reference forward pass, the test oracle (llama2.c style):
// the whole sequence at once, every weight row dequantized to f32 when used,
// naive loops with double accumulators, K/V kept in f32. It shares only the
// hyper-parameters and the weight table with the optimized Context. (Large
// linear layers split their output rows over threads: each output is still
// one double sum in column order, so the results do not depend on it.)
#include "arch/arch.h"

#include <algorithm>
#include <cmath>
#include <thread>

namespace gb {
namespace {

using Buf = std::vector<float>;

// y = x W^T:  W [n_out, n_in] (GGUF ne = [n_in, n_out]), x [n, n_in] -> y [n, n_out]
void linear_rows(const arch::Matrix & w, const Buf & x, int n, Buf & y, int64_t r0, int64_t r1) {
    const int64_t n_in = w.t->ne[0], n_out = w.t->ne[1];
    Buf row(static_cast<size_t>(n_in), 0.0f);
    for (int64_t r = r0; r < r1; ++r) {
        dequantize_row(w.t->type, w.row(r), row.data(), n_in);
        for (int t = 0; t < n; ++t) {
            const float * xt = x.data() + size_t(t) * n_in;
            double acc = 0.0;
            for (int64_t c = 0; c < n_in; ++c) acc += double(row[c]) * double(xt[c]);
            y[size_t(t) * n_out + r] = float(acc);
        }
    }
}

void linear(const arch::Matrix & w, const Buf & x, int n, Buf & y) {
    const int64_t n_in = w.t->ne[0], n_out = w.t->ne[1];
    y.assign(size_t(n) * n_out, 0.0f);
    // threads only where the work is large (the real model's output head)
    const double macs = double(n) * double(n_in) * double(n_out);
    const int64_t nth = macs < 1e7 ? 1 : std::clamp<int64_t>(int64_t(std::thread::hardware_concurrency()), 1, std::min<int64_t>(n_out, 64));
    if (nth == 1) {
        linear_rows(w, x, n, y, 0, n_out);
        return;
    }
    std::vector<std::thread> th;
    const int64_t chunk = (n_out + nth - 1) / nth;
    for (int64_t i = 0; i < nth; ++i) {
        const int64_t r0 = i * chunk, r1 = std::min(n_out, r0 + chunk);
        if (r0 < r1) th.emplace_back([&, r0, r1] { linear_rows(w, x, n, y, r0, r1); });
    }
    for (auto & t : th) t.join();
}

// out = x / sqrt(mean(x^2) + eps) * w   (x, out: [n])
void rmsnorm(float * out, const float * x, const float * w, int64_t n, float eps) {
    double ss = 0.0;
    for (int64_t i = 0; i < n; ++i) ss += double(x[i]) * x[i];
    const double scale = 1.0 / std::sqrt(ss / double(n) + double(eps));
    for (int64_t i = 0; i < n; ++i) out[i] = float(double(x[i]) * scale * w[i]);
}

// Rotates one head vector v [head_dim] for position pos.
void rope(float * v, int head_dim, int pos, float base, float scale, const float * freq_factors, RopeStyle style) {
    const int half = head_dim / 2;
    for (int i = 0; i < half; ++i) {
        double freq = std::pow(double(base), -2.0 * i / head_dim);
        if (freq_factors) freq /= freq_factors[i];
        const double theta = double(scale) * pos * freq;
        const int a = style == RopeStyle::Normal ? 2 * i : i;          // (2i, 2i+1) or (i, i + half)
        const int b = style == RopeStyle::Normal ? 2 * i + 1 : i + half;
        const double x0 = v[a], x1 = v[b];
        v[a] = float(x0 * std::cos(theta) - x1 * std::sin(theta));
        v[b] = float(x0 * std::sin(theta) + x1 * std::cos(theta));
    }
}

float activation(arch::FfnAct act, float x) {
    const double d = x;
    if (act == arch::FfnAct::Silu) return float(d / (1.0 + std::exp(-d)));
    return float(0.5 * d * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (d + 0.044715 * d * d * d))));
}

}  // namespace

Result<std::vector<float>> reference_forward(const Model & model, std::span<const Token> tokens) {
    const HParams & hp         = model.hparams();
    const arch::Weights & w    = arch::weights_of(model);
    const arch::Traits & tr    = arch::traits_of(model);
    const int n                = int(tokens.size());
    const int64_t dim          = hp.n_embd;
    const int hd_k = hp.head_dim_k, hd_v = hp.head_dim_v;
    const int64_t n_q = int64_t(hp.n_head) * hd_k, n_k = int64_t(hp.n_head_kv) * hd_k;
    const int64_t n_v = int64_t(hp.n_head_kv) * hd_v, n_o = int64_t(hp.n_head) * hd_v;
    const int kv_group = hp.n_head / hp.n_head_kv;
    const float eps    = hp.rms_eps;

    for (int t = 0; t < n; ++t) {
        if (tokens[t] < 0 || tokens[t] >= hp.n_vocab) {
            return make_error(ErrorCode::InvalidArgument, "reference_forward: token " + std::to_string(tokens[t]) + " out of range");
        }
    }

    // x = token_embd[tokens] * embd_scale   (seq, dim)
    Buf x(size_t(n) * dim);
    for (int t = 0; t < n; ++t) {
        float * xt = x.data() + size_t(t) * dim;
        dequantize_row(w.tok_embd.t->type, w.tok_embd.row(tokens[t]), xt, dim);
        for (int64_t i = 0; i < dim; ++i) xt[i] *= hp.embd_scale;
    }

    Buf xn(x.size()), q, k, v, att(size_t(n) * n_o), o, gate, up, down;
    std::vector<double> scores(static_cast<size_t>(n), 0.0);
    for (int il = 0; il < hp.n_layer; ++il) {
        const arch::LayerWeights & l = w.layers[il];
        // xn = rmsnorm(x) * attn_norm   (seq, dim)
        for (int t = 0; t < n; ++t) rmsnorm(&xn[size_t(t) * dim], &x[size_t(t) * dim], l.attn_norm.data, dim, eps);
        // q (seq, n_head * hd_k), k (seq, n_head_kv * hd_k), v (seq, n_head_kv * hd_v)
        linear(l.wq, xn, n, q);
        linear(l.wk, xn, n, k);
        linear(l.wv, xn, n, v);
        const float base  = arch::rope_base(hp, il);
        const float scale = arch::rope_scale(hp, il);
        for (int t = 0; t < n; ++t) {
            float * qt = &q[size_t(t) * n_q];
            float * kt = &k[size_t(t) * n_k];
            float * vt = &v[size_t(t) * n_v];
            if (tr.qkv_bias) {
                for (int64_t i = 0; i < n_q; ++i) qt[i] += l.bq.data[i];
                for (int64_t i = 0; i < n_k; ++i) kt[i] += l.bk.data[i];
                for (int64_t i = 0; i < n_v; ++i) vt[i] += l.bv.data[i];
            }
            for (int h = 0; h < hp.n_head; ++h) {
                if (tr.qk_norm) rmsnorm(qt + h * hd_k, qt + h * hd_k, l.q_norm.data, hd_k, eps);
                rope(qt + h * hd_k, hd_k, t, base, scale, w.rope_freqs.data, hp.rope_style);
            }
            for (int h = 0; h < hp.n_head_kv; ++h) {
                if (tr.qk_norm) rmsnorm(kt + h * hd_k, kt + h * hd_k, l.k_norm.data, hd_k, eps);
                rope(kt + h * hd_k, hd_k, t, base, scale, w.rope_freqs.data, hp.rope_style);
            }
        }
        // att[t, h] = softmax_j(q[t,h] . k[j,g] * attn_scale) v[j,g], causal, sliding window on local layers
        const bool swa = hp.layer_is_swa[il] && hp.sliding_window > 0;
        for (int t = 0; t < n; ++t) {
            const int lo = swa ? std::max(0, t - hp.sliding_window + 1) : 0;
            for (int h = 0; h < hp.n_head; ++h) {
                const int g = h / kv_group;
                const float * qh = &q[size_t(t) * n_q + size_t(h) * hd_k];
                double max = -INFINITY;
                for (int j = lo; j <= t; ++j) {
                    const float * kj = &k[size_t(j) * n_k + size_t(g) * hd_k];
                    double s = 0.0;
                    for (int i = 0; i < hd_k; ++i) s += double(qh[i]) * kj[i];
                    scores[j] = s * arch::attn_scale(hp);
                    max = std::max(max, scores[j]);
                }
                double sum = 0.0;
                for (int j = lo; j <= t; ++j) sum += (scores[j] = std::exp(scores[j] - max));
                float * out = &att[size_t(t) * n_o + size_t(h) * hd_v];
                for (int i = 0; i < hd_v; ++i) {
                    double acc = 0.0;
                    for (int j = lo; j <= t; ++j) acc += scores[j] / sum * v[size_t(j) * n_v + size_t(g) * hd_v + i];
                    out[i] = float(acc);
                }
            }
        }
        // x += [post_norm](att Wo^T)   (seq, dim)
        linear(l.wo, att, n, o);
        for (int t = 0; t < n; ++t) {
            float * ot = &o[size_t(t) * dim];
            if (tr.post_norms) rmsnorm(ot, ot, l.attn_post_norm.data, dim, eps);
            for (int64_t i = 0; i < dim; ++i) x[size_t(t) * dim + i] += ot[i];
        }
        // x += [post_norm](W_down (act(W_gate xn) * (W_up xn)))   (seq, dim), xn = rmsnorm(x) * ffn_norm
        for (int t = 0; t < n; ++t) rmsnorm(&xn[size_t(t) * dim], &x[size_t(t) * dim], l.ffn_norm.data, dim, eps);
        linear(l.ffn_gate, xn, n, gate);  // (seq, n_ff)
        linear(l.ffn_up, xn, n, up);      // (seq, n_ff)
        for (size_t i = 0; i < gate.size(); ++i) gate[i] = activation(tr.act, gate[i]) * up[i];
        linear(l.ffn_down, gate, n, down);
        for (int t = 0; t < n; ++t) {
            float * dt = &down[size_t(t) * dim];
            if (tr.post_norms) rmsnorm(dt, dt, l.ffn_post_norm.data, dim, eps);
            for (int64_t i = 0; i < dim; ++i) x[size_t(t) * dim + i] += dt[i];
        }
    }
    // logits = output(rmsnorm(x) * output_norm)   (seq, n_vocab)
    for (int t = 0; t < n; ++t) rmsnorm(&xn[size_t(t) * dim], &x[size_t(t) * dim], w.output_norm.data, dim, eps);
    Buf logits;
    linear(w.output, xn, n, logits);
    if (hp.final_logit_softcap > 0.0f) {
        for (float & z : logits) z = float(hp.final_logit_softcap * std::tanh(double(z) / hp.final_logit_softcap));
    }
    return logits;
}

}  // namespace gb
