// The CPU transformer layers of the Context and the batched forward (see
// layer_cpu.h): matmuls on all rows at once, per-row norms, RoPE and
// residuals, K/V into the cache; attention through the caller's KvAttention.
#include "layer_cpu.h"

#include "cpu/matmul.h"
#include "forward_ops.h"
#include "quants.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace gb::layer {

using arch::LayerWeights;

CpuLayers::CpuLayers(const Model & model, cpu::ThreadPool & pool)
    : m_hp(model.hparams()), m_w(arch::weights_of(model)), m_traits(arch::traits_of(model)), m_pool(pool) {
    m_any_swa = std::find(m_hp.layer_is_swa.begin(), m_hp.layer_is_swa.end(), true) != m_hp.layer_is_swa.end();
    m_n_q = int64_t(m_hp.n_head) * m_hp.head_dim_k;
    m_n_k = int64_t(m_hp.n_head_kv) * m_hp.head_dim_k;
    m_n_v = int64_t(m_hp.n_head_kv) * m_hp.head_dim_v;
    m_n_o = int64_t(m_hp.n_head) * m_hp.head_dim_v;
}

LayerAttn CpuLayers::attn_of(int il) const {
    LayerAttn a;
    a.n_head = m_hp.n_head;
    a.n_head_kv = m_hp.n_head_kv;
    a.group = m_hp.n_head / m_hp.n_head_kv;
    a.hd_k = m_hp.head_dim_k;
    a.hd_v = m_hp.head_dim_v;
    a.window = m_hp.layer_is_swa[il] ? m_hp.sliding_window : 0;
    a.scale = m_traits.scale_q ? 1.0f : arch::attn_scale(m_hp);  // gemma3: already in Q
    return a;
}

void CpuLayers::allocate(int32_t n_batch) {
    const size_t nb = size_t(n_batch);
    m_x.resize(nb * m_hp.n_embd);
    m_xn.resize(nb * m_hp.n_embd);
    m_proj.resize(nb * m_hp.n_embd);
    m_q.resize(nb * m_n_q);
    m_k.resize(nb * m_n_k);
    m_v.resize(nb * m_n_v);
    m_attn.resize(nb * m_n_o);
    m_gate.resize(nb * m_hp.n_ff);
    m_up.resize(nb * m_hp.n_ff);
    for (auto & cs : m_rope_cs) cs.resize(nb * m_hp.head_dim_k);
}

void CpuLayers::matmul(const arch::Matrix & w, const float * x, int64_t n, float * y) {
    if (observer) observer(m_cur_layer, w.t->name.c_str(), x, n, w.t->ne[0]);  // [quantlab]
    cpu::matmul(w.view(), x, n, y, m_pool);
}

void CpuLayers::matmul_shared(std::initializer_list<std::pair<const arch::Matrix *, float *>> items, const float * x, int64_t n) {
    cpu::WeightView ws[4];
    float * ys[4];
    int n_w = 0;
    for (const auto & [w, y] : items) {
        if (observer) observer(m_cur_layer, w->t->name.c_str(), x, n, w->t->ne[0]);  // [quantlab]
        ws[n_w] = w->view();
        ys[n_w++] = y;
    }
    cpu::matmul_group(ws, ys, n_w, x, n, m_pool);
}

void CpuLayers::embed(const Token * tokens, const float * hidden, int64_t n) {
    const int64_t n_embd = m_hp.n_embd;
    for_rows(n, n_embd * 4, [&](int64_t b, int64_t e) {
        for (int64_t t = b; t < e; ++t) {
            float * x = m_x.data() + t * n_embd;
            if (hidden) {  // [cuda] partial offload: the hidden state after the GPU's layers
                std::memcpy(x, hidden + t * n_embd, sizeof(float) * size_t(n_embd));
                continue;
            }
            dequantize_row(m_w.tok_embd.t->type, m_w.tok_embd.row(tokens[t]), x, n_embd);
            if (m_hp.embd_scale != 1.0f) {
                for (int64_t i = 0; i < n_embd; ++i) x[i] *= m_hp.embd_scale;
            }
        }
    });
}

void CpuLayers::rope_rows(int64_t t, int32_t pos0, int32_t cnt) {
    // A row of the table depends only on its position: one row at a time gives the same values.
    const float * ff = m_w.rope_freqs ? m_w.rope_freqs.data : nullptr;
    const int64_t off = t * m_hp.head_dim_k;
    ops::rope_table(m_rope_cs[0].data() + off, pos0, cnt, m_hp.head_dim_k, m_hp.rope_freq_base, m_hp.rope_freq_scale, ff);
    if (m_any_swa) {
        ops::rope_table(m_rope_cs[1].data() + off, pos0, cnt, m_hp.head_dim_k, m_hp.rope_freq_base_swa, m_hp.rope_freq_scale_swa, ff);
    }
}

void CpuLayers::block(int il, int32_t n, std::span<const int32_t> rows, kv::CpuKvStorage & kv, KvAttention & att) {
    const LayerWeights & l = m_w.layers[il];
    const int64_t n_embd   = m_hp.n_embd;
    m_cur_layer = il;  // [quantlab]

    // xn = rmsnorm(x) * attn_norm   [n, n_embd]
    for_rows(n, n_embd, [&](int64_t b, int64_t e) {
        for (int64_t t = b; t < e; ++t) {
            ops::rmsnorm(m_xn.data() + t * n_embd, m_x.data() + t * n_embd, l.attn_norm.data, n_embd, m_hp.rms_eps);
        }
    });
    // q, k, v = xn Wq^T, xn Wk^T, xn Wv^T   [n, n_q] [n, n_k] [n, n_v]
    matmul_shared({{&l.wq, m_q.data()}, {&l.wk, m_k.data()}, {&l.wv, m_v.data()}}, m_xn.data(), n);
    qkv_post(il, n, kv, att);  // K/V of every row go to the cache, also in the last layer

    // Only `rows` go on (the last layer: those whose logits are wanted), compacted to the front of x.
    const int32_t n_rows = int32_t(rows.size());
    if (n_rows == 0) return;
    if (n_rows < n) {
        for (int32_t r = 0; r < n_rows; ++r) {
            if (rows[r] != r) std::memcpy(m_x.data() + int64_t(r) * n_embd, m_x.data() + int64_t(rows[r]) * n_embd, sizeof(float) * size_t(n_embd));
        }
    }
    att.attend(il, rows, m_q.data(), m_attn.data());

    // x += [post_norm](attn Wo^T); xn = rmsnorm(x) * ffn_norm   [n_rows, n_embd]
    matmul(l.wo, m_attn.data(), n_rows, m_proj.data());
    residual(n_rows, l.attn_post_norm, &l.ffn_norm);
    ffn(l, n_rows);
}

void CpuLayers::qkv_post(int il, int32_t n, kv::CpuKvStorage & kv, const KvAttention & att) {
    const LayerWeights & l = m_w.layers[il];
    const int32_t hd_k = m_hp.head_dim_k;
    const float * cs   = m_rope_cs[m_hp.layer_is_swa[il] ? 1 : 0].data();
    const float q_scale = arch::attn_scale(m_hp);
    const int32_t ps = kv.shape().page_size;
    const bool q8 = kv.shape().type == kv::KvType::Q8_0;
    uint8_t * k_layer = kv.k_layer(il);
    uint8_t * v_layer = kv.v_layer(il);
    const size_t kpb = kv.page_bytes_k(), ksb = kv.slot_bytes_k();
    const size_t vpb = kv.page_bytes_v(), vsb = kv.slot_bytes_v();
    for_rows(n, (m_n_q + m_n_k) * 4, [&](int64_t b, int64_t e) {
        for (int64_t t = b; t < e; ++t) {
            float * q = m_q.data() + t * m_n_q;
            float * k = m_k.data() + t * m_n_k;
            float * v = m_v.data() + t * m_n_v;
            if (m_traits.qkv_bias) {
                ops::add(q, q, l.bq.data, m_n_q);
                ops::add(k, k, l.bk.data, m_n_k);
                ops::add(v, v, l.bv.data, m_n_v);
            }
            const float * cs_t = cs + t * hd_k;
            for (int h = 0; h < m_hp.n_head; ++h) {
                float * qh = q + int64_t(h) * hd_k;
                if (m_traits.qk_norm) ops::rmsnorm(qh, qh, l.q_norm.data, hd_k, m_hp.rms_eps);
                ops::rope_apply(qh, cs_t, hd_k, m_hp.rope_style);
            }
            if (m_traits.scale_q) {  // gemma3 scales Q itself (llama.cpp order)
                for (int64_t i = 0; i < m_n_q; ++i) q[i] *= q_scale;
            }
            for (int h = 0; h < m_hp.n_head_kv; ++h) {
                float * kh = k + int64_t(h) * hd_k;
                if (m_traits.qk_norm) ops::rmsnorm(kh, kh, l.k_norm.data, hd_k, m_hp.rms_eps);
                ops::rope_apply(kh, cs_t, hd_k, m_hp.rope_style);
            }
            // slot of position p: page pages[p / ps], slot p % ps
            const KvSlot s = att.kv_slot(int32_t(t));
            const kv::PageId page = s.pages[s.pos / ps];
            uint8_t * kd = k_layer + size_t(page) * kpb + size_t(s.pos % ps) * ksb;
            uint8_t * vd = v_layer + size_t(page) * vpb + size_t(s.pos % ps) * vsb;
            if (q8) {
                quantize_row_q8_0_ref(k, reinterpret_cast<block_q8_0 *>(kd), m_n_k);
                quantize_row_q8_0_ref(v, reinterpret_cast<block_q8_0 *>(vd), m_n_v);
            } else {
                ops::f32_to_f16(reinterpret_cast<uint16_t *>(kd), k, m_n_k);
                ops::f32_to_f16(reinterpret_cast<uint16_t *>(vd), v, m_n_v);
            }
        }
    });
}

void CpuLayers::residual(int32_t n_rows, const arch::Vector & post_norm, const arch::Vector * next_norm) {
    const int64_t n_embd = m_hp.n_embd;
    for_rows(n_rows, n_embd * 2, [&](int64_t b, int64_t e) {
        for (int64_t t = b; t < e; ++t) {
            float * p = m_proj.data() + t * n_embd;
            float * x = m_x.data() + t * n_embd;
            if (m_traits.post_norms) ops::rmsnorm(p, p, post_norm.data, n_embd, m_hp.rms_eps);
            ops::add(x, x, p, n_embd);
            if (next_norm) ops::rmsnorm(m_xn.data() + t * n_embd, x, next_norm->data, n_embd, m_hp.rms_eps);
        }
    });
}

void CpuLayers::ffn(const LayerWeights & l, int32_t n_rows) {
    const int64_t n_ff = m_hp.n_ff;
    // gate, up = xn Wg^T, xn Wu^T   [n_rows, n_ff]
    matmul_shared({{&l.ffn_gate, m_gate.data()}, {&l.ffn_up, m_up.data()}}, m_xn.data(), n_rows);
    // gate = act(gate) * up   (GeGLU for gemma, SwiGLU otherwise)
    const bool gelu = m_traits.act == arch::FfnAct::GeluTanh;
    for_rows(n_rows, n_ff * 4, [&](int64_t b, int64_t e) {
        float * g       = m_gate.data() + b * n_ff;
        const float * u = m_up.data() + b * n_ff;
        if (gelu) ops::geglu(g, g, u, (e - b) * n_ff);
        else ops::swiglu(g, g, u, (e - b) * n_ff);
    });
    // x += [post_norm](gate Wd^T)   [n_rows, n_embd]
    matmul(l.ffn_down, m_gate.data(), n_rows, m_proj.data());
    residual(n_rows, l.ffn_post_norm, nullptr);
}

void CpuLayers::output(int32_t n_out, const int32_t * src_rows, float * logits) {
    const int64_t n_embd = m_hp.n_embd;
    // logits = output(rmsnorm(x))   [n_out, n_vocab]
    for_rows(n_out, n_embd, [&](int64_t b, int64_t e) {
        for (int64_t t = b; t < e; ++t) {
            const int64_t src = src_rows ? src_rows[t] : t;
            ops::rmsnorm(m_xn.data() + t * n_embd, m_x.data() + src * n_embd, m_w.output_norm.data, n_embd, m_hp.rms_eps);
        }
    });
    m_cur_layer = -1;  // [quantlab]
    matmul(m_w.output, m_xn.data(), n_out, logits);
    if (m_hp.final_logit_softcap > 0.0f) {
        const float cap = m_hp.final_logit_softcap;
        for (int64_t i = 0, e = int64_t(n_out) * m_hp.n_vocab; i < e; ++i) logits[i] = cap * std::tanh(logits[i] / cap);
    }
}

}  // namespace gb::layer
