// The drafter's Context comes from SpecConfig::context_factory (draft model,
// self-draft), and Session passes its own context_factory to it (the GPU with
// --backend cuda), falling back to a CPU Context where that factory fails.
// Synthetic tiny-llama, CPU factories that count and can refuse.
#include "glassbox/model.h"
#include "glassbox/session.h"
#include "glassbox/spec/speculator.h"
#include "synth_model.h"

#include <QTemporaryDir>
#include <QtTest>

using namespace gb;

class TstSpecContextFactory : public QObject {
    Q_OBJECT

    QTemporaryDir m_dir;
    std::shared_ptr<const Model> m_model, m_draft;

    std::shared_ptr<const Model> make(const char * preset, const char * file) {
        auto spec = synth_preset(preset);
        if (!spec) qFatal("%s", spec.error().to_string().c_str());
        spec->seed = 11;
        return test::write_and_load(*spec, m_dir.filePath(file).toStdString(), 1);
    }
    std::vector<Token> prompt() const {
        std::mt19937 rng(5);
        const std::vector<Token> phrase = test::random_tokens(*m_model, 8, rng);
        std::vector<Token> p;
        for (int r = 0; r < 3; ++r) p.insert(p.end(), phrase.begin(), phrase.end());
        return p;
    }
    static GenerateParams params(SpecMethod m, std::shared_ptr<const Model> draft) {
        GenerateParams gp;
        gp.sampling.temperature = 0.0f;
        gp.max_tokens = 24;
        gp.ignore_eos = true;
        gp.spec.method = m;
        gp.spec.draft_max = 4;
        gp.spec.adaptive = false;
        gp.spec.auto_off = false;
        gp.spec.draft_model = std::move(draft);
        return gp;
    }
    std::vector<Token> run(Session & s, const GenerateParams & gp) {
        std::vector<Token> out;
        auto r = s.generate(prompt(), gp, [&](const TokenEvent & e) { if (e.id >= 0) out.push_back(e.id); return true; });
        if (!r) qFatal("%s", r.error().to_string().c_str());
        return out;
    }

  private slots:
    void initTestCase() {
        QVERIFY(m_dir.isValid());
        m_model = make("tiny-llama", "target.gguf");
        m_draft = make("tiny-llama", "draft.gguf");
    }

    // Session's factory makes the target's and the drafter's Contexts; output
    // equals plain decoding.
    void sessionFactoryMakesDrafter_data() {
        QTest::addColumn<int>("method");
        QTest::newRow("selfdraft") << int(SpecMethod::SelfDraft);
        QTest::newRow("draft") << int(SpecMethod::DraftModel);
    }
    void sessionFactoryMakesDrafter() {
        QFETCH(int, method);
        int calls = 0, skip_calls = 0;
        SessionParams sp;
        sp.context.n_ctx = 256;
        sp.context.n_threads = 1;
        sp.context_factory = [&](std::shared_ptr<const Model> m, const ContextParams & cp) {
            ++calls;
            skip_calls += !cp.skip_layers.empty();
            return Context::create(std::move(m), cp);
        };
        auto s = Session::create(m_model, sp);
        QVERIFY(s.ok());
        QCOMPARE(calls, 1);
        SessionParams plain_sp;
        plain_sp.context = sp.context;
        auto plain = Session::create(m_model, plain_sp);
        QVERIFY(plain.ok());
        const std::vector<Token> want = run(**plain, params(SpecMethod::None, nullptr));
        const std::vector<Token> got = run(**s, params(SpecMethod(method), m_draft));
        QCOMPARE(got, want);
        QCOMPARE(calls, 2);  // the drafter's Context
        QCOMPARE(skip_calls, SpecMethod(method) == SpecMethod::SelfDraft ? 1 : 0);
    }

    // A factory that refuses the drafter (as a full GPU would): the drafter
    // runs on a CPU Context and the output is still plain decoding's.
    void refusedDrafterFallsBackToCpu() {
        int refused = 0;
        SessionParams sp;
        sp.context.n_ctx = 256;
        sp.context.n_threads = 1;
        sp.context_factory = [&](std::shared_ptr<const Model> m, const ContextParams & cp) -> Result<std::unique_ptr<Context>> {
            if (!cp.skip_layers.empty()) {
                ++refused;
                return make_error(ErrorCode::OutOfMemory, "no room for a second context");
            }
            return Context::create(std::move(m), cp);
        };
        SessionParams plain_sp;
        plain_sp.context = sp.context;
        auto s = Session::create(m_model, sp);
        auto plain = Session::create(m_model, plain_sp);
        QVERIFY(s.ok() && plain.ok());
        const std::vector<Token> got = run(**s, params(SpecMethod::SelfDraft, nullptr));
        QCOMPARE(refused, 1);
        QCOMPARE(got, run(**plain, params(SpecMethod::None, nullptr)));
    }

    // The factories use SpecConfig::context_factory directly; its error reaches the caller.
    void speculatorUsesFactory() {
        SpecConfig cfg;
        cfg.method = SpecMethod::SelfDraft;
        int calls = 0;
        cfg.context_factory = [&](std::shared_ptr<const Model>, const ContextParams &) -> Result<std::unique_ptr<Context>> {
            ++calls;
            return make_error(ErrorCode::Unsupported, "refused by the test");
        };
        SamplerParams sp;
        auto r = make_speculator(m_model, cfg, sp, 128, 1);
        QVERIFY(!r.ok());
        QVERIFY(r.error().message.find("refused by the test") != std::string::npos);
        cfg.method = SpecMethod::DraftModel;
        cfg.draft_model = m_draft;
        QVERIFY(!make_speculator(m_model, cfg, sp, 128, 1).ok());
        QCOMPARE(calls, 2);
    }
};

QTEST_GUILESS_MAIN(TstSpecContextFactory)
#include "tst_spec_context_factory.moc"
