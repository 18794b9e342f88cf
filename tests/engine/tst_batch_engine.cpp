// Paged KV cache forward and continuous-batching engine on tiny synthetic
// models (llama, qwen2, gemma3 with a sliding window): batched multi-sequence
// results against the contiguous single-sequence Context (bit-exact), prefix
// cache on/off, preemption, impossible requests, cancellation, Q8_0 KV.
#include "forward_ops.h"
#include "batch_engine_fixture.h"
#include "glassbox/kv/batch_engine.h"
#include "glassbox/tensor_type.h"
#include "kv/paged_attention.h"
#include "quants.h"
#include "glassbox/model.h"
#include "glassbox/synth.h"

#include <QTemporaryDir>
#include <QtTest>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <numeric>
#include <random>

using namespace gb;
using namespace gb::kv;
using namespace gb::test;

class TstBatchEngine : public PresetModelTest {
    Q_OBJECT

  public:
    TstBatchEngine() : PresetModelTest(77, 1234) {}

  private:
    // Oracle: the contiguous single-sequence Context, one request alone.
    static std::vector<Token> generate_alone(std::shared_ptr<const Model> m, const GenRequest & r) {
        ContextParams cp;
        cp.n_ctx = 1024;
        cp.n_threads = 2;
        auto ctx = Context::create(m, cp);
        if (!ctx) qFatal("%s", ctx.error().to_string().c_str());
        Sampler s(r.sampling);
        for (Token t : r.prompt) s.accept(t);
        if (!(*ctx)->decode(r.prompt, false)) qFatal("decode");
        std::vector<Token> out;
        while (true) {
            const Token t = s.sample((*ctx)->logits());
            s.accept(t);
            out.push_back(t);
            if (int32_t(out.size()) >= r.max_new_tokens || t == r.stop_token) break;
            if (!(*ctx)->decode(std::span<const Token>(&t, 1), false)) qFatal("decode");
        }
        return out;
    }

  private slots:
    void initTestCase() { QVERIFY(model.valid()); }

    // One batch holding prefill chunks and decode tokens of several sequences
    // on scattered pages: each sequence's logits equal, bit for bit, those of the
    // contiguous Context fed the same tokens alone.
    void batched_forward_equals_context_data() {
        QTest::addColumn<QString>("preset");
        QTest::addColumn<int>("page_size");
        QTest::newRow("llama ps4") << "tiny-llama" << 4;
        QTest::newRow("qwen2 ps16") << "tiny-qwen2" << 16;
        QTest::newRow("gemma3-swa ps4") << "tiny-gemma3" << 4;
        QTest::newRow("gemma3-swa ps7") << "tiny-gemma3" << 7;
    }
    void batched_forward_equals_context() {
        QFETCH(QString, preset);
        QFETCH(int, page_size);
        auto m = model(preset.toStdString());
        const int n_pages = 64;
        BatchForwardParams fp;
        fp.n_threads = 2;
        fp.max_batch_tokens = 128;
        fp.n_pages = n_pages;
        fp.page_size = page_size;
        auto fwd = BatchForward::create(m, fp);
        QVERIFY2(fwd, fwd ? "" : fwd.error().to_string().c_str());

        // Sequences with a history; each step feeds a chunk (prefill) or one token (decode).
        struct Seq { std::vector<Token> hist; std::vector<PageId> pages; int32_t n_done = 0; };
        std::vector<PageId> free_pages(n_pages);
        std::iota(free_pages.begin(), free_pages.end(), 0);
        std::shuffle(free_pages.begin(), free_pages.end(), m_rng);  // scattered pages
        std::vector<Seq> seqs(4);
        const int lens[4] = {23, 5, 40, 12};
        for (int s = 0; s < 4; ++s) {
            seqs[s].hist = random_tokens(*m, lens[s]);
            for (int p = 0; p < (lens[s] + page_size - 1) / page_size; ++p) {
                seqs[s].pages.push_back(free_pages.back());
                free_pages.pop_back();
            }
        }
        std::uniform_int_distribution<int> chunk(1, 9);
        int n_checked = 0;
        for (int round = 0; round < 20; ++round) {
            std::vector<BatchSeq> batch;
            std::vector<int> which;
            std::vector<int32_t> ends;
            for (int s = 0; s < 4; ++s) {
                Seq & q = seqs[s];
                if (q.n_done >= int32_t(q.hist.size())) continue;
                if ((round + s) % 3 == 0) continue;  // vary the batch composition
                const int32_t n = std::min<int32_t>(chunk(m_rng), int32_t(q.hist.size()) - q.n_done);
                BatchSeq b;
                b.tokens = std::span<const Token>(q.hist.data() + q.n_done, size_t(n));
                b.first_pos = q.n_done;
                b.pages = q.pages;
                b.logits = true;
                batch.push_back(b);
                which.push_back(s);
                ends.push_back(q.n_done + n);
            }
            if (batch.empty()) continue;
            Status st = (*fwd)->run(batch);
            QVERIFY2(st, st ? "" : st.error().to_string().c_str());
            for (size_t i = 0; i < batch.size(); ++i) {
                Seq & q = seqs[size_t(which[i])];
                q.n_done = ends[i];
                // oracle: Context over the history up to here
                ContextParams cp;
                cp.n_ctx = 256;
                cp.n_threads = 2;
                auto ctx = Context::create(m, cp);
                QVERIFY(ctx);
                QVERIFY((*ctx)->decode(std::span<const Token>(q.hist.data(), size_t(q.n_done)), false));
                QVERIFY2(same_bits((*fwd)->logits(i), (*ctx)->logits()),
                         qPrintable(QString("seq %1 at %2 tokens differs").arg(which[i]).arg(q.n_done)));
                ++n_checked;
            }
        }
        QVERIFY(n_checked >= 10);
        // Bad input is refused before anything runs.
        BatchSeq bad;
        const Token tok = 1;
        bad.tokens = std::span<const Token>(&tok, 1);
        bad.first_pos = page_size;  // needs two pages
        std::vector<PageId> one_page{0};
        bad.pages = one_page;
        QVERIFY(!(*fwd)->run(std::span<const BatchSeq>(&bad, 1)));
    }

    // N concurrent requests (greedy and seeded sampling) through the engine with
    // a small token budget (chunked prefill next to decodes): each reply equals
    // the one generated alone with the Context.
    void concurrent_equals_alone_data() {
        QTest::addColumn<QString>("preset");
        QTest::newRow("llama") << "tiny-llama";
        QTest::newRow("qwen2") << "tiny-qwen2";
        QTest::newRow("gemma3") << "tiny-gemma3";
    }
    void concurrent_equals_alone() {
        QFETCH(QString, preset);
        auto m = model(preset.toStdString());
        auto e = engine(m, engine_params(8, 128, 24, 6));
        std::vector<GenRequest> reqs;
        const std::vector<Token> shared = random_tokens(*m, 20);
        for (int i = 0; i < 6; ++i) {
            GenRequest r;
            r.prompt = i % 2 ? shared : std::vector<Token>{};
            const auto own = random_tokens(*m, 5 + 7 * i);
            r.prompt.insert(r.prompt.end(), own.begin(), own.end());
            r.max_new_tokens = 12 + i;
            r.sampling = i < 4 ? greedy() : seeded(100 + i);
            reqs.push_back(r);
        }
        const auto got = run_all(*e, reqs);
        for (size_t i = 0; i < reqs.size(); ++i) {
            QCOMPARE(got[i].size(), size_t(reqs[i].max_new_tokens));
            QVERIFY2(got[i] == generate_alone(m, reqs[i]), qPrintable(QString("request %1 differs").arg(i)));
        }
        QCOMPARE(e->scheduler().pool().stats().used, 0);
    }

    // A multi-turn conversation: outputs identical with the prefix cache on and
    // off; with it on, later turns hit every full page of the previous history.
    void prefix_cache_on_off_identical() {
        auto m = model("tiny-gemma3");
        std::vector<std::vector<Token>> replies[2];
        int hits[2] = {0, 0};
        const std::vector<Token> system = random_tokens(*m, 37);
        std::vector<std::vector<Token>> users;
        for (int t = 0; t < 4; ++t) users.push_back(random_tokens(*m, 3 + 2 * t));
        for (int on = 0; on < 2; ++on) {
            BatchEngineParams p = engine_params(8, 96, 32);
            p.prefix_cache = on == 1;
            auto e = engine(m, p);
            std::vector<Token> history = system;
            for (int t = 0; t < 4; ++t) {
                history.insert(history.end(), users[t].begin(), users[t].end());
                GenRequest r;
                r.prompt = history;
                r.max_new_tokens = 6;
                r.sampling = greedy();
                RunLog log;
                auto out = run_all(*e, {r}, &log);
                const int h = log.prefix_hits;
                if (on) {  // every full page computed in the previous turn (its last reply token never was)
                    const int prev = t == 0 ? 0 : int(history.size() - users[t].size()) - 1;
                    QCOMPARE(h, std::min(prev / 8 * 8, (int(history.size()) - 1) / 8 * 8));
                }
                hits[on] += h;
                replies[on].push_back(out[0]);
                history.insert(history.end(), out[0].begin(), out[0].end());
            }
        }
        QCOMPARE(hits[0], 0);
        QVERIFY(hits[1] > 100);
        QCOMPARE(replies[0], replies[1]);
        // and both equal the Context oracle on the last turn
        GenRequest last;
        std::vector<Token> h = system;
        for (int t = 0; t < 4; ++t) {
            h.insert(h.end(), users[t].begin(), users[t].end());
            if (t < 3) h.insert(h.end(), replies[0][t].begin(), replies[0][t].end());
        }
        last.prompt = h;
        last.max_new_tokens = 6;
        last.sampling = greedy();
        QCOMPARE(replies[1][3], generate_alone(m, last));
    }

    // Too few pages for all requests at once: some are preempted by recompute
    // and resumed; every reply equals the uninterrupted one. Cache on and off.
    void preempted_equals_uninterrupted_data() {
        QTest::addColumn<bool>("cache");
        QTest::newRow("cache on") << true;
        QTest::newRow("cache off") << false;
    }
    void preempted_equals_uninterrupted() {
        QFETCH(bool, cache);
        auto m = model("tiny-llama");
        BatchEngineParams p = engine_params(4, 24, 32, 4);  // 96 tokens for 4 requests that grow to ~40 each
        p.prefix_cache = cache;
        auto e = engine(m, p);
        std::vector<GenRequest> reqs;
        for (int i = 0; i < 4; ++i) {
            GenRequest r;
            r.prompt = random_tokens(*m, 10 + 3 * i);
            r.max_new_tokens = 24;
            r.sampling = i == 3 ? seeded(9) : greedy();
            reqs.push_back(r);
        }
        RunLog log;
        const auto got = run_all(*e, reqs, &log);
        QVERIFY2(log.n_preempted > 0, "the workload was meant to preempt");
        for (size_t i = 0; i < reqs.size(); ++i) QVERIFY2(got[i] == generate_alone(m, reqs[i]), qPrintable(QString::number(i)));
    }

    // A request that can never fit is refused with the reason; the others run on.
    void impossible_request_others_continue() {
        auto m = model("tiny-qwen2");
        auto e = engine(m, engine_params(8, 16, 32));  // 128 tokens
        GenRequest ok1, ok2, huge, bad_tok;
        ok1.prompt = random_tokens(*m, 12);
        ok1.max_new_tokens = 10;
        ok1.sampling = greedy();
        ok2 = ok1;
        ok2.prompt = random_tokens(*m, 20);
        huge.prompt = random_tokens(*m, 100);
        huge.max_new_tokens = 100;
        bad_tok.prompt = {1, m->hparams().n_vocab + 5};
        const auto a1 = e->submit(ok1);
        QCOMPARE(a1.verdict, Admission::Ok);
        QVERIFY(e->step());  // ok1 running
        const auto ah = e->submit(huge);
        QCOMPARE(ah.verdict, Admission::Impossible);
        QVERIFY2(ah.reason.find("needs 25 pages") != std::string::npos, ah.reason.c_str());
        QCOMPARE(ah.id, RequestId(-1));
        const auto ab = e->submit(bad_tok);
        QCOMPARE(ab.verdict, Admission::Impossible);
        QVERIFY2(ab.reason.find("vocabulary") != std::string::npos, ab.reason.c_str());
        const auto a2 = e->submit(ok2);
        QVERIFY(a2.verdict != Admission::Impossible);
        QVERIFY(e->run_to_completion());
        QCOMPARE(e->request(a1.id)->generated, generate_alone(m, ok1));
        QCOMPARE(e->request(a2.id)->generated, generate_alone(m, ok2));
    }

    // Cancel frees a running request's pages at once; the others are unaffected.
    void cancel_frees_pages() {
        auto m = model("tiny-llama");
        BatchEngineParams p = engine_params(4, 64, 64);
        p.prefix_cache = false;
        auto e = engine(m, p);
        GenRequest a, b;
        a.prompt = random_tokens(*m, 30);
        a.max_new_tokens = 20;
        a.sampling = greedy();
        b.prompt = random_tokens(*m, 9);
        b.max_new_tokens = 15;
        b.sampling = greedy();
        const RequestId ia = e->submit(a).id, ib = e->submit(b).id;
        std::vector<EngineEvent> events;
        e->set_listener([&](const EngineEvent & ev) { events.push_back(ev); });
        int observed = 0;
        e->set_step_observer([&](const Scheduler & s, const StepPlan & plan) {
            ++observed;
            QCOMPARE(plan.metrics.pages_used, s.pool().stats().used);  // seen before commit, with the plan
        });
        for (int i = 0; i < 4; ++i) QVERIFY(e->step());
        const int used_before = e->scheduler().pool().stats().used;
        QVERIFY(e->cancel(ia));
        const int used_after = e->scheduler().pool().stats().used;
        QCOMPARE(used_before - used_after, 9);  // a held 30 + 3 tokens: ceil(33 / 4) pages
        QVERIFY(e->run_to_completion());
        QCOMPARE(e->request(ia)->state, RequestState::Cancelled);
        QCOMPARE(e->request(ib)->generated, generate_alone(m, b));
        QCOMPARE(e->scheduler().pool().stats().used, 0);
        // token events carry increasing indices and timestamps
        int32_t next = 0;
        double t = 0.0;
        for (const auto & ev : events) {
            if (ev.kind != EngineEvent::Kind::Token || ev.id != ib) continue;
            QCOMPARE(ev.index, next++);
            QVERIFY(ev.t_ms >= t);
            t = ev.t_ms;
        }
        QCOMPARE(next, 15);
        QVERIFY(observed >= 15);
    }

    // attend_paged on scattered pages (F16 and Q8_0) against softmax attention
    // in double over the values the slots hold (dequantized), with a window;
    // attend_paged_group bit-equal to attend_paged per head.
    void paged_attention_oracle() {
        const int hd = 64, ps = 5, n_keys = 37, lo = 9;
        std::normal_distribution<float> nd(0.0f, 1.0f);
        std::vector<float> q(hd), k(size_t(n_keys) * hd), v(size_t(n_keys) * hd);
        for (auto & x : q) x = nd(m_rng);
        for (auto & x : k) x = nd(m_rng);
        for (auto & x : v) x = nd(m_rng);
        const std::vector<PageId> pages{6, 2, 7, 0, 5, 1, 3, 4};
        for (KvType type : {KvType::F16, KvType::Q8_0}) {
            const bool q8 = type == KvType::Q8_0;
            const size_t slot = q8 ? size_t(hd / 32) * sizeof(block_q8_0) : size_t(hd) * 2;
            std::vector<uint8_t> ks(slot * ps * 8), vs(slot * ps * 8);
            std::vector<float> kd(k.size()), vd(v.size());  // what the slots hold
            for (int j = 0; j < n_keys; ++j) {
                uint8_t * kp = ks.data() + size_t(pages[j / ps]) * ps * slot + size_t(j % ps) * slot;
                uint8_t * vp = vs.data() + size_t(pages[j / ps]) * ps * slot + size_t(j % ps) * slot;
                if (q8) {
                    quantize_row_q8_0_ref(&k[size_t(j) * hd], reinterpret_cast<block_q8_0 *>(kp), hd);
                    quantize_row_q8_0_ref(&v[size_t(j) * hd], reinterpret_cast<block_q8_0 *>(vp), hd);
                    dequantize_row_q8_0(reinterpret_cast<block_q8_0 *>(kp), &kd[size_t(j) * hd], hd);
                    dequantize_row_q8_0(reinterpret_cast<block_q8_0 *>(vp), &vd[size_t(j) * hd], hd);
                } else {
                    for (int i = 0; i < hd; ++i) {
                        reinterpret_cast<uint16_t *>(kp)[i] = fp32_to_fp16(k[size_t(j) * hd + i]);
                        reinterpret_cast<uint16_t *>(vp)[i] = fp32_to_fp16(v[size_t(j) * hd + i]);
                        kd[size_t(j) * hd + i] = fp16_to_fp32(reinterpret_cast<uint16_t *>(kp)[i]);
                        vd[size_t(j) * hd + i] = fp16_to_fp32(reinterpret_cast<uint16_t *>(vp)[i]);
                    }
                }
            }
            PagedHead h;
            h.type = type;
            h.pages = pages.data();
            h.page_size = ps;
            h.k = ks.data();
            h.v = vs.data();
            h.k_page_bytes = h.v_page_bytes = slot * ps;
            h.k_slot_bytes = h.v_slot_bytes = slot;
            std::vector<float> scratch(size_t(ops::attend_scratch_floats(n_keys, hd, hd)));
            std::vector<float> out(hd);
            const float scale = 0.125f;
            attend_paged(out.data(), q.data(), h, lo, n_keys, hd, hd, scale, scratch.data());
            // oracle
            std::vector<double> s(n_keys, 0.0);
            double mx = -1e300, sum = 0.0;
            for (int j = lo; j < n_keys; ++j) {
                for (int i = 0; i < hd; ++i) s[j] += double(q[i]) * kd[size_t(j) * hd + i];
                s[j] *= scale;
                mx = std::max(mx, s[j]);
            }
            for (int j = lo; j < n_keys; ++j) sum += std::exp(s[j] - mx);
            double err = 0.0, norm = 0.0;
            for (int i = 0; i < hd; ++i) {
                double o = 0.0;
                for (int j = lo; j < n_keys; ++j) o += std::exp(s[j] - mx) / sum * vd[size_t(j) * hd + i];
                err = std::max(err, std::fabs(o - out[i]));
                norm = std::max(norm, std::fabs(o));
            }
            // F16 rounds q and the probabilities to F16 (rel 2^-11 each)
            QVERIFY2(err < 2e-3 * norm, qPrintable(QString("%1: err %2 of %3").arg(kv_type_name(type)).arg(err).arg(norm)));
            // A GQA group of 3 query heads reading each slot once: per head the same bits as alone.
            const int n_q = 3;
            std::vector<float> qg(size_t(n_q) * hd), og(size_t(n_q) * hd), one(hd);
            for (auto & x : qg) x = nd(m_rng);
            std::vector<float> gscratch(size_t(n_q) * size_t(ops::attend_scratch_floats(n_keys, hd, hd)));
            attend_paged_group(og.data(), hd, qg.data(), hd, n_q, h, lo, n_keys, hd, hd, scale, gscratch.data());
            for (int i = 0; i < n_q; ++i) {
                attend_paged(one.data(), qg.data() + i * hd, h, lo, n_keys, hd, hd, scale, scratch.data());
                QVERIFY(same_bits(one, std::span<const float>(og.data() + i * hd, size_t(hd))));
            }
        }
    }

    // Context with kv_type Q8_0 (one sequence on in-order pages) gives the same
    // logits, bit for bit, as the batched forward with Q8_0 pages; its byte count
    // is the Q8_0 one, and F16's is the old contiguous size.
    void context_kv_types() {
        auto m = model("tiny-gemma3");
        const auto prompt = random_tokens(*m, 45);
        BatchForwardParams fp;
        fp.n_threads = 2;
        fp.n_pages = 8;
        fp.page_size = 16;
        fp.kv_type = KvType::Q8_0;
        auto fwd = BatchForward::create(m, fp);
        QVERIFY(fwd);
        std::vector<PageId> pages{7, 2, 5};
        BatchSeq s{prompt, 0, pages, true};
        QVERIFY((*fwd)->run(std::span<const BatchSeq>(&s, 1)));
        for (int page_size : {16, 10}) {
            ContextParams cp;
            cp.n_ctx = 160;
            cp.n_threads = 2;
            cp.kv_type = KvType::Q8_0;
            cp.kv_page_size = page_size;
            auto ctx = Context::create(m, cp);
            QVERIFY2(ctx, ctx ? "" : ctx.error().to_string().c_str());
            // in two pieces: the second continues on the cached Q8_0 K/V
            QVERIFY((*ctx)->decode(std::span<const Token>(prompt.data(), 30), false));
            QVERIFY((*ctx)->decode(std::span<const Token>(prompt.data() + 30, prompt.size() - 30), false));
            QVERIFY(same_bits((*ctx)->logits(), (*fwd)->logits(0)));
            QCOMPARE((*ctx)->kv_bytes(), size_t(160 / page_size) * kv_bytes_per_page(kv_shape_for(*m, 1, page_size, KvType::Q8_0)));
        }
        ContextParams cp;
        cp.n_ctx = 160;
        auto ctx = Context::create(m, cp);
        QVERIFY(ctx);
        const HParams & hp = m->hparams();
        QCOMPARE((*ctx)->kv_bytes(), size_t(hp.n_layer) * 160 * size_t(hp.n_head_kv) * size_t(hp.head_dim_k + hp.head_dim_v) * 2);
    }

    // The run-time chosen Q8_0 kernels give the scalar kernels' bits.
    void q8_kernels_match_scalar() {
        std::normal_distribution<float> nd(0.0f, 2.0f);
        for (int rep = 0; rep < 20; ++rep) {
            const int n = 32 * (1 + rep % 8);
            std::vector<float> q(static_cast<size_t>(n)), x(static_cast<size_t>(n));
            for (auto & v : q) v = nd(m_rng);
            for (auto & v : x) v = nd(m_rng);
            std::vector<block_q8_0> row(static_cast<size_t>(n / 32));
            quantize_row_q8_0_ref(x.data(), row.data(), n);
            const auto * r = reinterpret_cast<const uint8_t *>(row.data());
            const float a = q8_dot(q.data(), r, n), b = q8_dot_scalar(q.data(), r, n);
            QCOMPARE(std::memcmp(&a, &b, sizeof a), 0);
            std::vector<float> y1 = q, y2 = q;
            q8_axpy(y1.data(), 0.37f, r, n);
            q8_axpy_scalar(y2.data(), 0.37f, r, n);
            QVERIFY(same_bits(y1, y2));
        }
    }

    // Q8_0 KV: bytes per token 34/64 of F16; logits close to F16's (relative L2
    // error < 0.1 on this random-weight model; ~4e-2 measured); a head_dim that is
    // not a multiple of 32 is refused with the reason.
    void q8_0_close_to_f16() {
        auto m = model("tiny-gemma3");
        const KvShape f16 = kv_shape_for(*m, 10, 16, KvType::F16), q8 = kv_shape_for(*m, 10, 16, KvType::Q8_0);
        // 6 layers x (K 64 + V 64 values) x 2 bytes; Q8_0: 2 blocks of 34 bytes per row
        QCOMPARE(kv_bytes_per_token(f16), size_t(6 * 2 * 64 * 2));
        QCOMPARE(kv_bytes_per_token(q8), size_t(6 * 2 * 2 * 34));
        QCOMPARE(kv_bytes_per_page(q8), size_t(16 * 6 * 2 * 2 * 34));
        std::vector<float> logits[2];
        const auto prompt = random_tokens(*m, 60);
        for (int q = 0; q < 2; ++q) {
            BatchForwardParams fp;
            fp.n_threads = 2;
            fp.n_pages = 8;
            fp.page_size = 16;
            fp.kv_type = q ? KvType::Q8_0 : KvType::F16;
            auto fwd = BatchForward::create(m, fp);
            QVERIFY(fwd);
            std::vector<PageId> pages{3, 1, 4, 0};
            BatchSeq s{prompt, 0, pages, true};
            QVERIFY((*fwd)->run(std::span<const BatchSeq>(&s, 1)));
            logits[q].assign((*fwd)->logits(0).begin(), (*fwd)->logits(0).end());
        }
        double d2 = 0.0, n2 = 0.0;
        for (size_t i = 0; i < logits[0].size(); ++i) {
            d2 += double(logits[1][i] - logits[0][i]) * (logits[1][i] - logits[0][i]);
            n2 += double(logits[0][i]) * logits[0][i];
        }
        const double rel = std::sqrt(d2 / n2);
        qInfo("Q8_0 vs F16 KV: relative L2 logit error %.2e", rel);
        QVERIFY(rel > 0.0);    // it is a different storage
        QVERIFY2(rel < 0.1, qPrintable(QString::number(rel)));
        // head_dim 48 cannot hold whole Q8_0 blocks per head
        KvShape odd = f16;
        odd.head_dim_k = odd.head_dim_v = 48;
        QVERIFY(kv_check_shape(odd));
        odd.type = KvType::Q8_0;
        const Status st = kv_check_shape(odd);
        QVERIFY(!st);
        QVERIFY(st.error().message.find("multiples of 32") != std::string::npos);
    }
};

QTEST_GUILESS_MAIN(TstBatchEngine)
#include "tst_batch_engine.moc"
