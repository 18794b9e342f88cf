// BatchEngine on the real gemma-3-270m: four concurrent greedy requests with a
// shared prefix (chunked prefill, prefix cache, sliding-window layers) produce
// the same tokens as each run alone with the Context; Q8_0 KV stays close to F16.
#include "glassbox/kv/batch_engine.h"
#include "glassbox/model.h"

#include <QFileInfo>
#include <QtTest>

#include <cmath>

using namespace gb;
using namespace gb::kv;

namespace {
const char * k_prompts[] = {
    "The quick brown fox jumps over the lazy dog. The dog was not amused by the fox, and",
    "int count = 0;\nfor (int i = 0; i < n; ++i) count += a[i];\n",
    "Tell me a short story about a robot who learns to paint.",
    "The capital of France is",
};
const char * k_shared =
    "You are a helpful assistant. Answer briefly and precisely. Be polite. The following is a conversation between a "
    "user and the assistant about many topics, including programming, geography and stories for children.\n";
constexpr int32_t kN = 20;

SamplerParams greedy() {
    SamplerParams p;
    p.temperature = 0.0f;
    return p;
}

std::vector<Token> alone(std::shared_ptr<const Model> m, const std::vector<Token> & prompt) {
    ContextParams cp;
    cp.n_ctx = 512;
    cp.n_threads = 2;
    auto ctx = std::move(Context::create(std::move(m), cp).value());
    Sampler s(greedy());
    if (!ctx->decode(prompt, false)) qFatal("decode");
    std::vector<Token> out;
    for (int i = 0; i < kN; ++i) {
        const Token t = s.sample(ctx->logits());
        out.push_back(t);
        if (!ctx->decode(std::span<const Token>(&t, 1), false)) qFatal("decode");
    }
    return out;
}
}  // namespace

class TstBatchEngineModel : public QObject {
    Q_OBJECT
    std::shared_ptr<const Model> m_model;
    std::vector<std::vector<Token>> m_prompts;

  private slots:
    void initTestCase() {
        const QString path = QStringLiteral(GLASSBOX_MODEL_DIR "/gemma-3-270m-q4_k_m.gguf");
        if (!QFileInfo::exists(path)) QSKIP("model file missing: " GLASSBOX_MODEL_DIR "/gemma-3-270m-q4_k_m.gguf");
        auto m = Model::load(path.toStdString());
        QVERIFY(m);
        m_model = *m;
        for (const char * p : k_prompts) m_prompts.push_back(m_model->tokenizer().encode(std::string(k_shared) + p, true, false));
    }

    void concurrent_equals_alone() {
        for (KvType type : {KvType::F16, KvType::Q8_0}) {
            BatchEngineParams p;
            p.n_threads = 2;
            p.page_size = 16;
            p.n_pages = 64;
            p.max_tokens_per_step = 48;  // prompts of ~60 tokens are chunked next to decodes
            p.max_running = 4;
            p.kv_type = type;
            auto e = std::move(BatchEngine::create(m_model, p).value());
            std::vector<RequestId> ids;
            for (const auto & pr : m_prompts) {
                GenRequest r;
                r.prompt = pr;
                r.max_new_tokens = kN;
                r.sampling = greedy();
                ids.push_back(e->submit(r).id);
            }
            int hits = 0;
            QVERIFY(e->run_to_completion([&](const StepReport & rep) {
                for (const auto & a : rep.metrics.admitted) hits += a.prefix_hit_tokens;
            }));
            QVERIFY(hits >= 32);  // the shared system text is served from the cache for later requests
            int same = 0;
            for (size_t i = 0; i < ids.size(); ++i) {
                const auto & got = e->request(ids[i])->generated;
                const auto ref = alone(m_model, m_prompts[i]);
                if (type == KvType::F16) {
                    QVERIFY2(got == ref, qPrintable(QString("request %1 differs").arg(i)));
                } else {  // leading tokens equal to F16's (greedy paths may part after a near tie)
                    size_t k = 0;
                    while (k < got.size() && k < ref.size() && got[k] == ref[k]) ++k;
                    same += int(k);
                }
            }
            if (type == KvType::Q8_0) qInfo("Q8_0 KV: %d of %d greedy tokens before the first divergence equal F16's", same, kN * 4);
        }
    }

    // Speculation per request (prompt lookup, fixed draft length) inside the
    // batch: greedy tokens of every request equal each alone without it.
    void spec_lookup_concurrent_equals_alone() {
        BatchEngineParams p;
        p.n_threads = 2;
        p.page_size = 16;
        p.n_pages = 64;
        p.max_tokens_per_step = 48;
        p.max_running = 4;
        auto e = std::move(BatchEngine::create(m_model, p).value());
        std::vector<RequestId> ids;
        for (size_t i = 0; i < m_prompts.size(); ++i) {
            GenRequest r;
            r.prompt = m_prompts[i];
            r.max_new_tokens = kN;
            r.sampling = greedy();
            if (i % 2 == 0) {
                r.spec.method = SpecMethod::PromptLookup;
                r.spec.draft_max = 4;
                r.spec.adaptive = false;
                r.spec.auto_off = false;
            }
            ids.push_back(e->submit(r).id);
        }
        QVERIFY(e->run_to_completion());
        int64_t proposed = 0, accepted = 0;
        for (size_t i = 0; i < ids.size(); ++i) {
            QVERIFY2(e->request(ids[i])->generated == alone(m_model, m_prompts[i]), qPrintable(QString("request %1 differs").arg(i)));
            if (const SpecStats * st = e->spec_stats(ids[i])) {
                proposed += st->proposed;
                accepted += st->accepted;
            }
        }
        qInfo("lookup in the batch: %lld draft tokens proposed, %lld accepted", (long long)proposed, (long long)accepted);
        QVERIFY(proposed > 0);
    }

    // Logits of one prompt with Q8_0 KV against F16 KV.
    void q8_0_close_to_f16() {
        std::vector<float> l[2];
        for (int q = 0; q < 2; ++q) {
            BatchForwardParams fp;
            fp.n_threads = 2;
            fp.n_pages = 16;
            fp.kv_type = q ? KvType::Q8_0 : KvType::F16;
            auto f = std::move(BatchForward::create(m_model, fp).value());
            std::vector<PageId> pages{5, 9, 2, 7, 1, 0, 3, 4, 6, 8};
            BatchSeq s{m_prompts[0], 0, pages, true};
            QVERIFY(f->run(std::span<const BatchSeq>(&s, 1)));
            l[q].assign(f->logits(0).begin(), f->logits(0).end());
        }
        double d2 = 0, n2 = 0;
        size_t a0 = 0, a1 = 0;
        for (size_t i = 0; i < l[0].size(); ++i) {
            d2 += double(l[1][i] - l[0][i]) * (l[1][i] - l[0][i]);
            n2 += double(l[0][i]) * l[0][i];
            if (l[0][i] > l[0][a0]) a0 = i;
            if (l[1][i] > l[1][a1]) a1 = i;
        }
        const double rel = std::sqrt(d2 / n2);
        qInfo("gemma-3-270m, Q8_0 vs F16 KV: relative L2 logit error %.2e, top-1 %s", rel, a0 == a1 ? "equal" : "differs");
        QCOMPARE(a1, a0);
        QVERIFY2(rel < 0.05, qPrintable(QString::number(rel)));
    }
};

QTEST_GUILESS_MAIN(TstBatchEngineModel)
#include "tst_batch_engine_model.moc"
