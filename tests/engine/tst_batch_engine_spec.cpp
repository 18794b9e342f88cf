// BatchEngine's context overflow policy (drop oldest turns as Session does,
// the system prompt's pages reused, Error answering impossible) and speculative
// decoding per request inside continuous batching (greedy equality with plain
// decoding, K/V after rejections, prefix cache without rejected tokens).
#include "batch_engine_fixture.h"
#include "dist_oracle.h"
#include "glassbox/kv/batch_engine.h"
#include "glassbox/session.h"
#include "glassbox/spec/spec_decoder.h"
#include "glassbox/synth.h"

#include <QTemporaryDir>
#include <QtTest>

#include <cmath>
#include <map>
#include <random>

using namespace gb;
using namespace gb::kv;
using namespace gb::test;

class TstBatchEngineSpec : public PresetModelTest {
    Q_OBJECT

  public:
    TstBatchEngineSpec() : PresetModelTest(91, 4321) {}

  private:
    // A prompt with repeated segments (prompt lookup finds matches).
    std::vector<Token> repetitive(const Model & m, int n_seg, int seg_len, int reps) {
        std::vector<std::vector<Token>> segs;
        for (int i = 0; i < n_seg; ++i) segs.push_back(random_tokens(m, seg_len));
        std::vector<Token> out = {1};
        std::uniform_int_distribution<int> pick(0, n_seg - 1);
        for (int r = 0; r < reps; ++r) {
            const auto & s = segs[size_t(pick(m_rng))];
            out.insert(out.end(), s.begin(), s.end());
        }
        return out;
    }

    static std::vector<Token> alone(std::shared_ptr<const Model> m, GenRequest r) {
        auto e = engine(std::move(m), engine_params(8, 128, 64));
        r.spec = SpecConfig{};
        return run_all(*e, {r})[0];
    }

  private slots:
    void initTestCase() { QVERIFY(model.valid()); }

    // ---- context overflow ----

    // The engine's dropped prompt equals the one Session decodes for the same
    // conversation and limit (same turns dropped, same tokens).
    void drop_oldest_turns_equals_session() {
        auto m = model("tiny-llama");
        const int32_t limit = 160;
        SessionParams sp;
        sp.context.n_ctx = limit;
        sp.context.n_threads = 2;
        sp.overflow = OverflowPolicy::DropOldestTurns;
        sp.chat_template_override = builtin_chat_template("chatml");
        auto session = Session::create(m, sp);
        QVERIFY(session.ok());
        std::vector<ChatMessage> msgs = {{"system", "you are a terse helper who answers in few words"}};
        const char * words[] = {"alpha beta gamma", "delta epsilon", "zeta eta theta iota", "kappa lambda mu"};
        for (int t = 0; t < 8; ++t) {
            msgs.push_back({"user", std::string("question ") + words[t % 4] + " " + words[(t + 1) % 4]});
            msgs.push_back({"assistant", std::string("answer ") + words[(t + 2) % 4]});
        }
        msgs.push_back({"user", "last question please"});
        auto cp = (*session)->chat_prompt(msgs);
        QVERIFY2(cp.ok(), cp.ok() ? "" : cp.error().message.c_str());
        QVERIFY(int32_t(cp->tokens.size()) > limit);  // it must overflow
        QCOMPARE(cp->turns.starts.size(), msgs.size() - 1);
        QVERIFY(cp->turns.system_len > 5);

        GenerateParams gp;
        gp.sampling = greedy();
        gp.max_tokens = 12;
        gp.ignore_eos = true;
        auto sr = (*session)->chat(msgs, gp);
        QVERIFY2(sr.ok(), sr.ok() ? "" : sr.error().message.c_str());
        QVERIFY(sr->n_dropped_messages > 0);
        const std::vector<Token> session_prompt((*session)->cached_tokens().begin(),
                                                (*session)->cached_tokens().begin() + sr->n_prompt_tokens);

        auto e = engine(m, engine_params(8, limit / 8, 32));
        QCOMPARE(e->max_seq_tokens(), limit);
        GenRequest r;
        r.prompt = cp->tokens;
        r.turns = cp->turns;
        r.max_new_tokens = 12;
        r.sampling = greedy();
        r.overflow = OverflowPolicy::Error;
        const AdmissionResult refused = e->check(r);
        QCOMPARE(refused.verdict, Admission::Impossible);
        r.overflow = OverflowPolicy::DropOldestTurns;
        const AdmissionResult a = e->submit(r);
        QVERIFY2(a.verdict != Admission::Impossible, a.reason.c_str());
        QCOMPARE(a.n_dropped_turns, sr->n_dropped_messages);
        QCOMPARE(e->request(a.id)->params.prompt, session_prompt);
        std::vector<EngineEvent> evs;
        QVERIFY(e->run_to_completion([&](const StepReport & rep) { evs.insert(evs.end(), rep.events.begin(), rep.events.end()); }));
        bool saw = false;
        for (const auto & ev : evs) {
            if (ev.kind == EngineEvent::Kind::Admitted && ev.id == a.id) {
                QCOMPARE(ev.dropped_turns, sr->n_dropped_messages);
                saw = true;
            }
        }
        QVERIFY(saw);
        // Same reply as the Session (same prompt, greedy).
        std::vector<Token> session_reply((*session)->cached_tokens().begin() + sr->n_prompt_tokens, (*session)->cached_tokens().end());
        const auto & got = e->request(a.id)->generated;
        QVERIFY(got.size() >= session_reply.size());
        QVERIFY(std::equal(session_reply.begin(), session_reply.end(), got.begin()));
    }

    // Token-level rule: turns dropped oldest first, the kept part starts with a
    // user turn, the system span is kept and its pages come from the prefix
    // cache; the reply is capped to the room left.
    void drop_oldest_turns_reuses_system_pages() {
        auto m = model("tiny-qwen2");
        auto e = engine(m, engine_params(8, 16, 32));  // 128 positions per sequence
        const std::vector<Token> system = random_tokens(*m, 45);  // 5 full pages + 5 tokens
        GenRequest first;
        first.prompt = system;
        first.prompt.push_back(7);
        first.max_new_tokens = 4;
        first.sampling = greedy();
        run_all(*e, {first});

        GenRequest r;
        r.prompt = system;
        r.turns.system_len = int32_t(system.size());
        const int lens[] = {20, 15, 25, 10, 18, 12};
        for (int t = 0; t < 6; ++t) {
            r.turns.starts.push_back(int32_t(r.prompt.size()));
            r.turns.is_user.push_back(t % 2 == 0 ? 1 : 0);
            const auto body = random_tokens(*m, lens[t]);
            r.prompt.insert(r.prompt.end(), body.begin(), body.end());
        }
        // 145 tokens; with max_new 20 (reserve 20): needs <= 108 -> drop turns 0,1 (35) -> 110 > 108 -> drop 2,3 -> 75.
        r.max_new_tokens = 20;
        r.sampling = greedy();
        r.overflow = OverflowPolicy::DropOldestTurns;
        const AdmissionResult a = e->submit(r);
        QVERIFY2(a.verdict != Admission::Impossible, a.reason.c_str());
        QCOMPARE(a.n_dropped_turns, 4);
        std::vector<Token> want = system;
        want.insert(want.end(), r.prompt.begin() + r.turns.starts[4], r.prompt.end());
        QCOMPARE(e->request(a.id)->params.prompt, want);
        int hit = -1;
        QVERIFY(e->run_to_completion([&](const StepReport & rep) {
            for (const auto & ad : rep.metrics.admitted) if (ad.id == a.id) hit = ad.prefix_hit_tokens;
        }));
        QCOMPARE(hit, 40);  // the system prompt's 5 full pages
        GenRequest plain = r;
        plain.prompt = want;
        plain.overflow = OverflowPolicy::Error;
        plain.turns = {};
        QCOMPARE(e->request(a.id)->generated, alone(m, plain));

        // Turn 1 is not a user turn: dropping turn 0 drops it too (the kept part starts with a user turn).
        GenRequest r2 = r;
        r2.max_new_tokens = 18;  // 110 + 18 <= 128: fits after dropping turns 0 and 1
        const AdmissionResult a2 = e->check(r2);
        QVERIFY2(a2.verdict != Admission::Impossible, a2.reason.c_str());
        QCOMPARE(a2.n_dropped_turns, 2);
    }

    // Error policy (or nothing left to drop): impossible with the reason, the others run on.
    void overflow_error_impossible_others_continue() {
        auto m = model("tiny-llama");
        auto e = engine(m, engine_params(8, 16, 32));
        GenRequest ok;
        ok.prompt = random_tokens(*m, 20);
        ok.max_new_tokens = 10;
        ok.sampling = greedy();
        const auto a1 = e->submit(ok);
        QCOMPARE(a1.verdict, Admission::Ok);
        QVERIFY(e->step());
        GenRequest big;
        big.prompt = random_tokens(*m, 120);
        big.turns.system_len = 10;
        big.turns.starts = {10, 100};
        big.max_new_tokens = 30;
        const auto ae = e->submit(big);
        QCOMPARE(ae.verdict, Admission::Impossible);
        QVERIFY2(ae.reason.find("pages") != std::string::npos, ae.reason.c_str());
        big.overflow = OverflowPolicy::DropOldestTurns;
        big.turns.starts = {10, 30};  // the last turn alone (90 tokens) + reserve 30 > 128
        const auto ad = e->submit(big);
        QCOMPARE(ad.verdict, Admission::Impossible);
        QVERIFY2(ad.reason.find("per-sequence limit of 128") != std::string::npos, ad.reason.c_str());
        QVERIFY2(ad.reason.find("dropping 1 older turns") != std::string::npos, ad.reason.c_str());
        big.turns.starts = {5};  // malformed: before the system span's end
        QVERIFY(e->check(big).reason.find("turn spans") != std::string::npos);
        QVERIFY(e->run_to_completion());
        QCOMPARE(e->request(a1.id)->generated, alone(m, ok));
    }

    // ---- speculative decoding per request ----

    // Greedy outputs of concurrent requests, some speculating (lookup, lookahead,
    // several draft lengths), equal each request decoded alone without speculation.
    void spec_concurrent_equals_alone_data() {
        QTest::addColumn<QString>("preset");
        QTest::newRow("llama") << "tiny-llama";
        QTest::newRow("gemma3") << "tiny-gemma3";
    }
    void spec_concurrent_equals_alone() {
        QFETCH(QString, preset);
        auto m = model(preset.toStdString());
        auto e = engine(m, engine_params(4, 256, 24, 6));
        std::vector<GenRequest> reqs;
        for (int i = 0; i < 6; ++i) {
            GenRequest r;
            r.prompt = repetitive(*m, 3, 4 + i % 3, 6 + i);
            r.max_new_tokens = 30 + 3 * i;
            r.sampling = i == 5 ? seeded(17) : greedy();
            if (i < 3) r.spec = fixed_spec(SpecMethod::PromptLookup, 2 + 2 * i);
            if (i == 3) r.spec = fixed_spec(SpecMethod::Lookahead, 4);
            if (i == 5) r.spec = fixed_spec(SpecMethod::PromptLookup, 4);
            reqs.push_back(r);
        }
        RunLog log;
        const auto got = run_all(*e, reqs, &log);
        const std::vector<RequestId> & ids = log.ids;
        int64_t proposed = 0, accepted = 0, corrections = 0;
        for (size_t i = 0; i < reqs.size(); ++i) {
            QCOMPARE(got[i].size(), size_t(reqs[i].max_new_tokens));
            if (i < 5) QVERIFY2(got[i] == alone(m, reqs[i]), qPrintable(QString("request %1 differs").arg(i)));
            const SpecStats * st = e->spec_stats(ids[i]);
            QCOMPARE(st != nullptr, reqs[i].spec.method != SpecMethod::None);
            if (!st) continue;
            QCOMPARE(st->n_target + st->n_draft + st->n_correction + st->n_bonus, st->emitted);
            QCOMPARE(st->emitted, int64_t(got[i].size()));
            proposed += st->proposed;
            accepted += st->accepted;
            corrections += st->n_correction;
            // Per-token origins in the events match the statistics.
            std::vector<SpecOrigin> origins;
            for (const auto & ev : log.events) if (ev.kind == EngineEvent::Kind::Token && ev.id == ids[i]) origins.push_back(ev.origin);
            QCOMPARE(origins, st->origins);
        }
        qInfo("proposed %lld accepted %lld corrections %lld", (long long)proposed, (long long)accepted, (long long)corrections);
        QVERIFY2(accepted > 0 && corrections > 0, "the workload was meant to accept and reject drafts");
        QCOMPARE(e->scheduler().pool().stats().used, 0);
    }

    // After steps that rejected draft tokens, the sequence's K/V (every stored
    // position) equals plain decoding's, bit for bit; then a follow-up request
    // on the finished history hits the prefix cache and its cached K/V is
    // plain decoding's too (no page holding rejected tokens was cached).
    void spec_rollback_kv_equals_plain() {
        auto m = model("tiny-llama");
        BatchEngineParams p = engine_params(4, 128, 32);
        auto es = engine(m, p);
        auto ep = engine(m, p);
        GenRequest r;
        r.prompt = repetitive(*m, 3, 5, 8);
        r.max_new_tokens = 48;
        r.sampling = greedy();
        GenRequest rs = r;
        rs.spec = fixed_spec(SpecMethod::PromptLookup, 5);
        const RequestId is = es->submit(rs).id, ip = ep->submit(r).id;
        const int n_layer = m->hparams().n_layer;
        int checked = 0;
        int64_t last_corr = 0;
        while (es->has_work()) {
            QVERIFY(es->step());
            QVERIFY(es->scheduler().check_invariants());
            const SpecStats * st = es->spec_stats(is);
            const RequestInfo * info = es->request(is);
            if (info->state != RequestState::Running || st->n_correction == last_corr) continue;
            last_corr = st->n_correction;
            // A rejection just happened: K/V holds history minus the pending token.
            const int32_t n_kv = int32_t(info->params.prompt.size() + info->generated.size()) - 1;
            while (ep->request(ip)->generated.size() < info->generated.size()) QVERIFY(ep->step());
            QCOMPARE(ep->request(ip)->generated, info->generated);
            for (int il = 0; il < n_layer; il += std::max(1, n_layer - 1)) {
                for (int32_t pos = 0; pos < n_kv; ++pos) {
                    const auto a = es->kv_bytes_at(is, il, pos), b = ep->kv_bytes_at(ip, il, pos);
                    QVERIFY(!a.empty());
                    QVERIFY2(a == b, qPrintable(QString("layer %1 pos %2").arg(il).arg(pos)));
                }
                // Nothing stored past the kept tokens: pages cover exactly n_kv (+0) tokens.
                QCOMPARE(int32_t(es->scheduler().pages(is).size()), (n_kv + 3) / 4);
            }
            ++checked;
        }
        QVERIFY2(checked > 0, "no rejection happened");
        QVERIFY(ep->run_to_completion());
        QCOMPARE(es->request(is)->generated, ep->request(ip)->generated);

        // Follow-up turn on the speculated history: prefix hit, cached K/V correct.
        GenRequest next;
        next.prompt = r.prompt;
        next.prompt.insert(next.prompt.end(), es->request(is)->generated.begin(), es->request(is)->generated.end());
        next.prompt.push_back(9);
        next.max_new_tokens = 3;
        next.sampling = greedy();
        const RequestId n1 = es->submit(next).id, n2 = ep->submit(next).id;
        int hit = 0;
        auto st1 = es->step();
        QVERIFY(st1.ok());
        for (const auto & ad : st1->metrics.admitted) hit = ad.prefix_hit_tokens;
        QVERIFY2(hit >= int(next.prompt.size()) - 2 * 4, qPrintable(QString::number(hit)));
        QVERIFY(ep->step());
        for (int32_t pos = 0; pos < hit; ++pos) QVERIFY(es->kv_bytes_at(n1, 0, pos) == ep->kv_bytes_at(n2, 0, pos));
        QVERIFY(es->run_to_completion());
        QVERIFY(ep->run_to_completion());
        QCOMPARE(es->request(n1)->generated, ep->request(n2)->generated);
        QCOMPARE(es->request(n1)->generated, alone(m, next));
    }

    // Sampling with speculation inside the batch keeps the target's
    // distribution: the joint distribution of the first 3 tokens of 2,000
    // concurrent sampled requests (lookup drafts on a prompt the model wrote
    // itself, so drafts are often likely) against exact enumeration with the
    // Context; chi-square must not reject. Broken acceptance rules must be rejected.
    void spec_sampling_distribution_data() {
        QTest::addColumn<int>("rule");
        QTest::newRow("exact") << int(AcceptRule::Exact);
        QTest::newRow("always-accept") << int(AcceptRule::AlwaysAccept);
        QTest::newRow("ignore-residual") << int(AcceptRule::IgnoreResidual);
    }
    void spec_sampling_distribution() {
        QFETCH(int, rule);
        auto m = model("tiny-llama");
        GenRequest g;
        g.prompt = {1, 300};
        g.max_new_tokens = 40;
        g.sampling = greedy();
        std::vector<Token> p = g.prompt;
        const auto cont = alone(m, g);
        p.insert(p.end(), cont.begin(), cont.end());
        const int K = 4;
        ContextParams cp;
        cp.n_ctx = 128;
        cp.n_threads = 2;
        auto ctx = Context::create(m, cp);
        QVERIFY(ctx.ok());
        const std::map<std::vector<Token>, double> expect = first_three_dist(**ctx, p, K);
        auto e = engine(m, engine_params(8, 512, 128, 32));
        e->set_accept_rule(AcceptRule(rule));
        const int n = 2000;
        SamplerParams sp;
        sp.temperature = 1.0f;
        sp.top_k = K;
        sp.top_p = 1.0f;
        sp.min_p = 0.0f;
        std::vector<RequestId> ids;
        for (int i = 0; i < n; ++i) {
            GenRequest r;
            r.prompt = p;
            r.max_new_tokens = 3;
            r.sampling = sp;
            r.sampling.seed = 7000 + uint64_t(i);
            r.spec = fixed_spec(SpecMethod::PromptLookup, 2);
            const auto a = e->submit(r);
            QVERIFY(a.verdict != Admission::Impossible);
            ids.push_back(a.id);
        }
        QVERIFY(e->run_to_completion());
        std::map<std::vector<Token>, int> seen;
        int64_t proposed = 0, accepted = 0;
        for (RequestId id : ids) {
            const auto & gtok = e->request(id)->generated;
            QCOMPARE(gtok.size(), size_t(3));
            seen[gtok]++;
            proposed += e->spec_stats(id)->proposed;
            accepted += e->spec_stats(id)->accepted;
        }
        int bins = 0;
        const double pv = chi_square_p(expect, seen, n, &bins);
        qInfo("rule %d: chi-square p = %.3g over %d bins, proposed %lld accepted %lld", rule, pv, bins, (long long)proposed,
              (long long)accepted);
        QVERIFY2(proposed >= n / 2 && accepted > n / 10, "drafts were meant to be proposed and accepted");
        if (rule == int(AcceptRule::Exact)) QVERIFY2(accepted < proposed, "drafts were meant to be rejected too");
        if (rule == int(AcceptRule::Exact)) QVERIFY2(pv > 1e-3, "samples do not follow the target distribution");
        else QVERIFY2(pv < 1e-6, "a broken acceptance rule went unnoticed");
    }

    // Draft tokens count against the iteration budget; with a budget of one
    // token per running stream, no draft fits and everything still completes.
    void spec_draft_tokens_within_budget() {
        auto m = model("tiny-qwen2");
        auto e = engine(m, engine_params(4, 128, 3, 3));
        std::vector<GenRequest> reqs;
        for (int i = 0; i < 3; ++i) {
            GenRequest r;
            r.prompt = repetitive(*m, 2, 4, 6);
            r.max_new_tokens = 16;
            r.sampling = greedy();
            r.spec = fixed_spec(SpecMethod::PromptLookup, 6);
            reqs.push_back(r);
        }
        int max_draft = 0;
        std::vector<RequestId> ids;
        for (const auto & r : reqs) ids.push_back(e->submit(r).id);
        QVERIFY(e->run_to_completion([&](const StepReport & rep) {
            max_draft = std::max(max_draft, rep.metrics.n_draft_tokens);
            QVERIFY(rep.metrics.n_decode_tokens + rep.metrics.n_prefill_tokens <= 3);
        }));
        for (size_t i = 0; i < reqs.size(); ++i) QCOMPARE(e->request(ids[i])->generated, alone(m, reqs[i]));
        QVERIFY(max_draft <= 2);
        // Unsupported methods are refused with the reason.
        GenRequest d = reqs[0];
        d.spec.method = SpecMethod::DraftModel;
        const auto a = e->check(d);
        QCOMPARE(a.verdict, Admission::Impossible);
        QVERIFY2(a.reason.find("drafter") != std::string::npos, a.reason.c_str());
    }
};

QTEST_GUILESS_MAIN(TstBatchEngineSpec)
#include "tst_batch_engine_spec.moc"
