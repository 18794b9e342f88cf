// Tests for synthetic GGUF models: every tiny preset in several weight types is
// written, re-opened with gguf::File and checked against independently derived
// tensor tables and metadata; writes are reproducible; the Q4_K_M mix of the
// gemma3-270m preset matches the real gemma-3-270m-q4_k_m.gguf (llama.cpp's).
#include "glassbox/gguf.h"
#include "glassbox/synth.h"
#include "glassbox/tensor_type.h"

#include <QTemporaryDir>
#include <QtTest>

#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <set>

using namespace gb;

namespace {

struct Expected {
    std::string          name;
    std::vector<int64_t> ne;
    bool                 is_norm = false;
};

// The llama.cpp tensor table for each architecture, written out independently.
std::vector<Expected> expected_tensors(const SynthSpec & s) {
    std::vector<Expected> t;
    const int64_t q = int64_t(s.n_head) * s.head_dim, kv = int64_t(s.n_head_kv) * s.head_dim;
    t.push_back({"token_embd.weight", {s.n_embd, s.n_vocab}});
    t.push_back({"output_norm.weight", {s.n_embd}, true});
    if (!s.tie_embeddings) t.push_back({"output.weight", {s.n_embd, s.n_vocab}});
    for (int i = 0; i < s.n_layer; ++i) {
        const std::string p = "blk." + std::to_string(i) + ".";
        t.push_back({p + "attn_norm.weight", {s.n_embd}, true});
        t.push_back({p + "attn_q.weight", {s.n_embd, q}});
        t.push_back({p + "attn_k.weight", {s.n_embd, kv}});
        t.push_back({p + "attn_v.weight", {s.n_embd, kv}});
        t.push_back({p + "attn_output.weight", {q, s.n_embd}});
        t.push_back({p + "ffn_norm.weight", {s.n_embd}, true});
        t.push_back({p + "ffn_gate.weight", {s.n_embd, s.n_ff}});
        t.push_back({p + "ffn_up.weight", {s.n_embd, s.n_ff}});
        t.push_back({p + "ffn_down.weight", {s.n_ff, s.n_embd}});
        if (s.arch == "qwen2") {
            t.push_back({p + "attn_q.bias", {q}});
            t.push_back({p + "attn_k.bias", {kv}});
            t.push_back({p + "attn_v.bias", {kv}});
        }
        if (s.arch == "gemma3") {
            t.push_back({p + "attn_q_norm.weight", {s.head_dim}, true});
            t.push_back({p + "attn_k_norm.weight", {s.head_dim}, true});
            t.push_back({p + "post_attention_norm.weight", {s.n_embd}, true});
            t.push_back({p + "post_ffw_norm.weight", {s.n_embd}, true});
        }
    }
    return t;
}

std::string read_all(const QString & path) {
    std::ifstream f(path.toStdString(), std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

SynthSpec preset(const char * name, const char * ftype) {
    auto s = synth_preset(name);
    if (!s) qFatal("%s", s.error().to_string().c_str());
    auto ty = synth_types(ftype);
    if (!ty) qFatal("%s", ty.error().to_string().c_str());
    s->types = *ty;
    return *s;
}

}  // namespace

class TstSynth : public QObject {
    Q_OBJECT

  private slots:
    void write_and_reopen_data();
    void write_and_reopen();
    void q4_k_m_mix_tiny_llama();
    void gemma3_270m_mix_matches_llama_cpp();
    void reproducible();
    void cancel_removes_file();
    void vocab();
    void bad_input();

  private:
    QTemporaryDir m_dir;
};

void TstSynth::write_and_reopen_data() {
    QTest::addColumn<QString>("preset");
    QTest::addColumn<QString>("ftype");
    for (const char * p : {"tiny-llama", "tiny-qwen2", "tiny-gemma3"}) {
        for (const char * f : {"F32", "F16", "BF16", "Q8_0", "Q4_0", "Q5_1", "Q2_K", "Q3_K", "Q4_K_M", "Q5_K_M", "Q6_K"}) {
            QTest::addRow("%s/%s", p, f) << QString(p) << QString(f);
        }
    }
}

void TstSynth::write_and_reopen() {
    QFETCH(QString, preset);
    QFETCH(QString, ftype);
    const SynthSpec s = ::preset(preset.toUtf8().constData(), ftype.toUtf8().constData());
    const QString path = m_dir.filePath(preset + "-" + ftype + ".gguf");
    float last_progress = -1.0f;
    bool monotonic = true;
    const Status st = write_synthetic_model(s, path.toStdString(), [&](float p) {
        if (p < last_progress) monotonic = false;
        last_progress = p;
        return true;
    });
    QVERIFY2(st.ok(), st.ok() ? "" : st.error().to_string().c_str());
    QVERIFY(monotonic);
    QCOMPARE(last_progress, 1.0f);

    auto opened = gguf::File::open(path.toStdString());
    QVERIFY2(opened.ok(), opened.ok() ? "" : opened.error().to_string().c_str());
    const gguf::File & f = **opened;

    // Metadata llama.cpp reads.
    const std::string a = s.arch;
    QCOMPARE(std::string(*f.get_string("general.architecture")), a);
    QCOMPARE(*f.get_int(a + ".block_count"), int64_t(s.n_layer));
    QCOMPARE(*f.get_int(a + ".embedding_length"), int64_t(s.n_embd));
    QCOMPARE(*f.get_int(a + ".feed_forward_length"), int64_t(s.n_ff));
    QCOMPARE(*f.get_int(a + ".attention.head_count"), int64_t(s.n_head));
    QCOMPARE(*f.get_int(a + ".attention.head_count_kv"), int64_t(s.n_head_kv));
    QCOMPARE(*f.get_int(a + ".attention.key_length"), int64_t(s.head_dim));
    QCOMPARE(*f.get_int(a + ".context_length"), int64_t(s.n_ctx_train));
    QCOMPARE(float(*f.get_float(a + ".rope.freq_base")), s.rope_base);
    QCOMPARE(float(*f.get_float(a + ".attention.layer_norm_rms_epsilon")), s.rms_eps);
    if (a == "gemma3") QCOMPARE(*f.get_int("gemma3.attention.sliding_window"), int64_t(s.sliding_window));
    QCOMPARE(*f.get_int("general.file_type"), int64_t(s.types.file_type));
    QCOMPARE(std::string(*f.get_string("tokenizer.ggml.model")), std::string("llama"));
    QVERIFY(f.get_array("tokenizer.ggml.tokens"));
    QCOMPARE(f.get_array("tokenizer.ggml.tokens")->items.size(), size_t(s.n_vocab));
    QCOMPARE(f.get_array("tokenizer.ggml.scores")->items.size(), size_t(s.n_vocab));
    QCOMPARE(f.get_array("tokenizer.ggml.token_type")->items.size(), size_t(s.n_vocab));
    QCOMPARE(*f.get_int("tokenizer.ggml.bos_token_id"), int64_t(1));
    QCOMPARE(*f.get_int("tokenizer.ggml.eos_token_id"), int64_t(2));
    QCOMPARE(*f.get_bool("tokenizer.ggml.add_bos_token"), true);
    QCOMPARE(*f.get_array("tokenizer.ggml.tokens")->items[3 + 0x0A].as_string(), std::string("<0x0A>"));
    QCOMPARE(*f.get_array("tokenizer.ggml.token_type")->items[3 + 0x0A].as_int(), int64_t(6));

    // Every tensor: name, shape, type allowed for its class, size.
    const std::vector<Expected> exp = expected_tensors(s);
    QCOMPARE(f.tensors().size(), exp.size());
    std::set<TensorType> weight_types = {s.types.type, s.types.more_bits, s.types.output, s.types.token_embd};
    for (const Expected & e : exp) {
        const gguf::TensorInfo * t = f.find_tensor(e.name);
        QVERIFY2(t, e.name.c_str());
        QCOMPARE(t->n_dims, int(e.ne.size()));
        int64_t rows = 1;
        for (size_t d = 0; d < e.ne.size(); ++d) {
            QCOMPARE(t->ne[d], e.ne[d]);
            if (d > 0) rows *= e.ne[d];
        }
        if (e.ne.size() == 1) {
            QCOMPARE(t->type, TensorType::F32);
        } else if (e.ne[0] % 256 == 0 || weight_types.count(t->type)) {
            // Rows of 256 never need a fallback; the type is one of the spec's.
            QVERIFY2(weight_types.count(t->type), (e.name + " " + type_name(t->type)).c_str());
        } else {
            // Fallbacks for K-quant rows that are not a multiple of 256 (llama.cpp's choices).
            static const std::set<TensorType> fallback = {TensorType::Q4_0, TensorType::Q5_0, TensorType::Q5_1,
                                                          TensorType::Q8_0, TensorType::F16};
            QVERIFY2(fallback.count(t->type), (e.name + " " + type_name(t->type)).c_str());
        }
        QCOMPARE(t->n_bytes, row_size(t->type, e.ne[0]) * size_t(rows));

        // Values: weights ~ N(0, std^2), norms ~ 1 + N(0, 0.1^2).
        std::vector<float> row(static_cast<size_t>(e.ne[0]));
        QVERIFY(dequantize_row(t->type, t->data, row.data(), e.ne[0]));
        if (e.ne[0] >= 128) {
            double sum = 0, sum2 = 0;
            for (float x : row) { sum += x; sum2 += double(x) * x; }
            const double mean = sum / row.size(), sd = std::sqrt(std::max(0.0, sum2 / row.size() - mean * mean));
            const double want_mean = e.is_norm ? 1.0 : 0.0, want_sd = e.is_norm ? 0.1 : s.weight_std;
            QVERIFY2(std::abs(mean - want_mean) < 0.35 * want_sd + 1e-6, (e.name + " mean").c_str());
            QVERIFY2(sd > 0.6 * want_sd && sd < 1.4 * want_sd, (e.name + " sd " + std::to_string(sd)).c_str());
        }
        if (e.ne.size() == 2 && t->type == TensorType::F32) {
            // Rows are independent: row 1 is neither row 0 nor row 0 shifted by one.
            const float * r0 = reinterpret_cast<const float *>(t->data);
            const float * r1 = r0 + e.ne[0];
            double c0 = 0, c1 = 0, n0 = 0;
            for (int64_t i = 0; i + 1 < e.ne[0]; ++i) {
                c0 += double(r0[i]) * r1[i];
                c1 += double(r0[i + 1]) * r1[i];
                n0 += double(r0[i]) * r0[i];
            }
            QVERIFY2(std::abs(c0) < 0.5 * n0 && std::abs(c1) < 0.5 * n0, (e.name + " rows correlated").c_str());
        }
    }
}

void TstSynth::q4_k_m_mix_tiny_llama() {
    // tiny-llama: 2 layers, n_embd 256, untied. llama.cpp's use_more_bits(i, 2)
    // holds for layer 1 only (i >= 7*2/8 = 1): its attn_v / ffn_down get Q6_K.
    const SynthSpec s = preset("tiny-llama", "Q4_K_M");
    auto t = synth_tensors(s);
    QVERIFY(t.ok());
    std::map<std::string, TensorType> by_name;
    for (const SynthTensor & x : *t) by_name[x.name] = x.type;
    QCOMPARE(by_name["token_embd.weight"], TensorType::Q4_K);
    QCOMPARE(by_name["output.weight"], TensorType::Q6_K);
    QCOMPARE(by_name["blk.0.attn_v.weight"], TensorType::Q4_K);
    QCOMPARE(by_name["blk.0.ffn_down.weight"], TensorType::Q4_K);
    QCOMPARE(by_name["blk.1.attn_v.weight"], TensorType::Q6_K);
    QCOMPARE(by_name["blk.1.ffn_down.weight"], TensorType::Q6_K);
    QCOMPARE(by_name["blk.1.attn_q.weight"], TensorType::Q4_K);
    QCOMPARE(by_name["blk.1.ffn_norm.weight"], TensorType::F32);
}

void TstSynth::gemma3_270m_mix_matches_llama_cpp() {
    // Type counts of the real gemma-3-270m-q4_k_m.gguf (quantized by llama.cpp).
    const SynthSpec s = preset("gemma3-270m", "Q4_K_M");
    auto t = synth_tensors(s);
    QVERIFY(t.ok());
    std::map<TensorType, int> counts;
    for (const SynthTensor & x : *t) counts[x.type]++;
    QCOMPARE(int(t->size()), 236);
    QCOMPARE(counts[TensorType::F32], 109);
    QCOMPARE(counts[TensorType::Q5_0], 81);
    QCOMPARE(counts[TensorType::Q4_K], 27);
    QCOMPARE(counts[TensorType::Q8_0], 10);
    QCOMPARE(counts[TensorType::Q6_K], 9);

    // And tensor by tensor when the real file is here.
    const std::string real = std::string(GLASSBOX_MODEL_DIR) + "/gemma-3-270m-q4_k_m.gguf";
    auto f = gguf::File::open(real);
    if (!f) QSKIP("real gemma-3-270m file not available");
    QCOMPARE((*f)->tensors().size(), t->size());
    for (const SynthTensor & x : *t) {
        const gguf::TensorInfo * r = (*f)->find_tensor(x.name);
        QVERIFY2(r, x.name.c_str());
        QVERIFY2(r->type == x.type, (x.name + ": " + type_name(r->type) + " vs " + type_name(x.type)).c_str());
        QCOMPARE(r->n_dims, int(x.ne.size()));
        for (size_t d = 0; d < x.ne.size(); ++d) QCOMPARE(r->ne[d], x.ne[d]);
        QCOMPARE(r->n_bytes, x.n_bytes);
    }
    for (const char * key : {"gemma3.context_length", "gemma3.embedding_length", "gemma3.block_count",
                             "gemma3.feed_forward_length", "gemma3.attention.head_count",
                             "gemma3.attention.head_count_kv", "gemma3.attention.key_length",
                             "gemma3.attention.sliding_window", "general.file_type"}) {
        QVERIFY2((*f)->get_int(key), key);
    }
    QCOMPARE(*(*f)->get_int("gemma3.context_length"), int64_t(s.n_ctx_train));
    QCOMPARE(*(*f)->get_int("gemma3.attention.key_length"), int64_t(s.head_dim));
    QCOMPARE(*(*f)->get_int("gemma3.attention.sliding_window"), int64_t(s.sliding_window));
    QCOMPARE(*(*f)->get_int("general.file_type"), int64_t(s.types.file_type));
    QCOMPARE(float(*(*f)->get_float("gemma3.rope.freq_base")), s.rope_base);
}

void TstSynth::reproducible() {
    SynthSpec s = preset("tiny-qwen2", "Q4_K_M");
    const QString a = m_dir.filePath("rep-a.gguf"), b = m_dir.filePath("rep-b.gguf"), c = m_dir.filePath("rep-c.gguf");
    QVERIFY(write_synthetic_model(s, a.toStdString(), {}, 1).ok());
    QVERIFY(write_synthetic_model(s, b.toStdString(), {}, 3).ok());  // thread count must not matter
    s.seed = 2;
    QVERIFY(write_synthetic_model(s, c.toStdString(), {}, 1).ok());
    const std::string da = read_all(a), db = read_all(b), dc = read_all(c);
    QVERIFY(!da.empty());
    QVERIFY(da == db);
    QCOMPARE(da.size(), dc.size());
    QVERIFY(da != dc);

    // A different seed changes the weights, not the layout.
    auto fa = gguf::File::open(a.toStdString());
    auto fc = gguf::File::open(c.toStdString());
    QVERIFY(fa.ok() && fc.ok());
    const gguf::TensorInfo * ta = (*fa)->find_tensor("blk.0.ffn_up.weight");
    const gguf::TensorInfo * tc = (*fc)->find_tensor("blk.0.ffn_up.weight");
    QVERIFY(ta && tc && ta->offset == tc->offset && ta->n_bytes == tc->n_bytes);
    QVERIFY(std::memcmp(ta->data, tc->data, ta->n_bytes) != 0);
}

void TstSynth::cancel_removes_file() {
    const SynthSpec s = preset("tiny-llama", "Q8_0");
    const QString path = m_dir.filePath("cancelled.gguf");
    int calls = 0;
    const Status st = write_synthetic_model(s, path.toStdString(), [&](float) { return ++calls < 3; });
    QVERIFY(!st.ok());
    QCOMPARE(st.error().code, ErrorCode::Cancelled);
    QVERIFY(!QFile::exists(path));
}

void TstSynth::vocab() {
    const std::vector<std::string> v = synth_vocab(5000);
    QCOMPARE(v.size(), size_t(5000));
    QCOMPARE(v[0], std::string("<unk>"));
    QCOMPARE(v[1], std::string("<s>"));
    QCOMPARE(v[2], std::string("</s>"));
    QCOMPARE(v[3], std::string("<0x00>"));
    QCOMPARE(v[3 + 255], std::string("<0xFF>"));
    QCOMPARE(std::set<std::string>(v.begin(), v.end()).size(), v.size());
    for (const std::string & piece : v) QVERIFY(!piece.empty());
    // The gemma3-270m vocab (262144) is unique too.
    const std::vector<std::string> big = synth_vocab(262144);
    QCOMPARE(std::set<std::string>(big.begin(), big.end()).size(), big.size());
}

void TstSynth::bad_input() {
    QVERIFY(!synth_preset("no-such-model").ok());
    QVERIFY(!synth_types("Q4_K_X").ok());
    QVERIFY(synth_types("q4_k_m").ok());
    SynthSpec s = preset("tiny-llama", "F16");
    s.n_head_kv = 3;  // 4 heads cannot share 3 kv heads
    const Status st = write_synthetic_model(s, m_dir.filePath("bad.gguf").toStdString());
    QVERIFY(!st.ok());
    QCOMPARE(st.error().code, ErrorCode::InvalidArgument);
    s = preset("tiny-llama", "F16");
    s.n_vocab = 100;
    QVERIFY(!synth_validate(s).ok());
    s = preset("tiny-gemma3", "F16");
    s.sliding_window = 0;
    QVERIFY(!synth_validate(s).ok());
}

QTEST_APPLESS_MAIN(TstSynth)
#include "tst_synth.moc"
