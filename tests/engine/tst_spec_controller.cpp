// The speculation controller (spec/draft_controller.h) with scripted
// acceptance and injected costs, no timing: it turns speculation on once the
// free shadow walks show drafts being accepted and off when they are not, the
// draft depth follows the acceptance pattern and the measured cost curve,
// trees and the lookahead window are used only when they pay, model drafters
// probe with back-off at a depth that follows their acceptance, and the cost model interpolates and
// explores as documented.
#include "spec/draft_controller.h"
#include "glassbox/spec/speculator.h"

#include <QtTest>
#include <algorithm>
#include <functional>

using namespace gb;
using namespace gb::spec;

class TstSpecController : public QObject {
    Q_OBJECT
  private slots:
    void costModel();
    void loadSpikeDoesNotStick();
    void deepDepthsInheritTheDepthAbove();
    void shadowTurnsOnThenOff();
    void depthFollowsAcceptance();
    void depthFollowsCost_data();
    void depthFollowsCost();
    void treeOnlyWhenItPays();
    void lookaheadWindowByCost();
    void modelDrafterProbesAtTheDepthCap();
    void modelDrafterThatCannotPay();
    void modelDrafterProbeBudget();
    void modelDrafterOverBudgetWaits();
    void fixedConfig();
    void lookupDraftClass();
    void classBorrowsPooledAcceptance();
    void firstTokenOddsCapTheClassPrior();
};

namespace {

Draft chain(std::initializer_list<Token> toks) {
    Draft d;
    int32_t p = -1;
    for (Token t : toks) p = d.add(p, t);
    return d;
}

Draft chain_n(Token first, int32_t n) {
    Draft d;
    int32_t p = -1;
    for (int32_t i = 0; i < n; ++i) p = d.add(p, first + i);
    return d;
}

// Injected costs: a plain step t1 ms, a forward over n tokens f(n) ms.
void inject(Controller & c, double t1, const std::function<double(int32_t)> & f, int32_t n_max) {
    c.costs.observe(1, t1);
    for (int32_t n = 2; n <= n_max; ++n) c.costs.observe(n, f(n));
    // all injected sizes count as just measured (none stale yet)
    for (int32_t n = 1; n <= n_max; ++n) c.costs.last_obs[n] = c.costs.clock;
}

// One step of a scripted generation: the step's proposal is shadowed, then
// `emitted` tokens come out (whatever the plan was: greedy output does not
// depend on it).
Plan step(Controller & c, const SpecConfig & cfg, const Draft & d, int32_t k_max, std::initializer_list<Token> emitted) {
    c.shadow_start(d);
    const Plan p = c.choose(cfg, shape_of(d), k_max, false);
    for (Token t : emitted) c.on_emitted(t);
    return p;
}

// Oracle: the k in [1, k_max] maximising (1 + sum_{d<k} prod_{i<=d} p_i) / cost(1 + k).
int32_t best_k(const Controller & c, int32_t cls, int32_t k_max, double * best_rate) {
    int32_t best = 0;
    *best_rate = 1.0 / c.costs.cost(1);
    for (int32_t k = 1; k <= k_max; ++k) {
        double e = 1.0, reach = 1.0;
        for (int32_t d = 0; d < k; ++d) {
            reach *= c.p(cls, false, d);
            e += reach;
        }
        const double r = e / c.costs.cost(1 + k);
        if (r > *best_rate) { *best_rate = r; best = k; }
    }
    return best;
}

}  // namespace

void TstSpecController::costModel() {
    CostModel m;
    QCOMPARE(m.cost(3), 0.0);  // nothing measured
    m.observe(1, 10.0);
    // before any verification: the prior slope (estimate), optimistic for choices
    QCOMPARE(m.estimate(5), 10.0 + 4 * CostModel::kPriorSlope * 10.0);
    QCOMPARE(m.cost(5), 10.0 + 4 * CostModel::kExploreSlope * 10.0);
    m.observe(5, 30.0);
    QCOMPARE(m.cost(5), 30.0);
    QCOMPARE(m.estimate(3), 20.0);                               // linear between 1 and 5
    QCOMPARE(m.cost(3), 10.0 + 2 * CostModel::kExploreSlope * 10);  // not measured: optimistic
    QCOMPARE(m.estimate(9), 30.0 + 4 * 5.0);                     // beyond: mean slope (30 - 10) / 4
    m.observe(3, 25.0);
    QCOMPARE(m.cost(3), 25.0);
    QCOMPARE(m.cost(4), std::min(27.5, 25.0 + CostModel::kExploreSlope * 10));
    // per size: the median of the last 3 readings
    m.observe(5, 40.0);
    QCOMPARE(m.cost(5), 35.0);  // two readings: their mean
    m.observe(5, 34.0);
    QCOMPARE(m.cost(5), 34.0);  // 30, 40, 34: the median
    m.observe(5, 90.0);
    QCOMPARE(m.cost(5), 40.0);  // 40, 34, 90: a spike does not count
    // a reading above n plain steps is load noise: clamped to n plain steps
    m.observe(2, 1000.0);
    QCOMPARE(m.cost(2), 20.0);
    // a size not measured for a while is explored again (optimistic)
    for (int i = 0; i < CostModel::kStale + 1; ++i) m.observe(1, 10.0);
    QCOMPARE(m.estimate(5), 40.0);
    QCOMPARE(m.cost(5), 25.0 + 2 * CostModel::kExploreSlope * 10.0);
}

void TstSpecController::loadSpikeDoesNotStick() {
    // A verify size read once while another process had the cores (a spike of
    // 3.5 plain steps where the size costs 1.7): the controller drafts less
    // deep, then re-explores the size once its reading is stale, and two
    // normal readings put the depth back: the spike does not outlive them.
    Controller c;
    SpecConfig cfg;
    cfg.draft_max = 7;
    inject(c, 10.0, [](int32_t n) { return 10.0 + 1.0 * (n - 1); }, 7);  // 1 + 0.1 (n - 1) plain steps
    c.costs.observe(8, 35.0);  // the spike at n = 8 (7-token drafts)
    for (int i = 0; i < 6; ++i) step(c, cfg, chain_n(100, 7), 7, {100, 101, 102, 103, 104, 105, 106});  // all accepted
    Plan p = step(c, cfg, chain_n(100, 7), 7, {100, 101, 102, 103, 104, 105, 106});
    QVERIFY2(p.k < 7, "the spike makes depth 7 look dear");
    // other sizes are measured meanwhile (the spike's size is not): it goes stale
    for (int i = 0; i <= CostModel::kStale; ++i) c.costs.observe(p.k + 1, 10.0 + 1.0 * p.k);
    p = step(c, cfg, chain_n(100, 7), 7, {100, 101, 102, 103, 104, 105, 106});
    QCOMPARE(p.k, 7);  // explored again (optimistic while stale)
    c.costs.observe(8, 17.0);  // normal readings at n = 8
    c.costs.observe(8, 17.0);
    QCOMPARE(c.costs.cost(8), 17.0);  // the median of 35, 17, 17
    p = step(c, cfg, chain_n(100, 7), 7, {100, 101, 102, 103, 104, 105, 106});
    QCOMPARE(p.k, 7);
}

void TstSpecController::deepDepthsInheritTheDepthAbove() {
    // Two 3-token drafts, both accepted whole (the walks end at their leaves):
    // depths 0-2 are seen accepted, deeper ones never. A deeper depth takes
    // the estimate of the deepest seen one (not the 0.5 prior), so the next
    // 12-token proposal is drafted deep, not at 3-4 tokens.
    Controller c;
    SpecConfig cfg;
    inject(c, 10.0, [](int32_t n) { return 10.0 + 1.0 * (n - 1); }, 13);
    step(c, cfg, chain_n(100, 3), 3, {100, 101, 102, 9});
    step(c, cfg, chain_n(200, 3), 3, {200, 201, 202, 9});
    const double p2 = c.pooled(false, 2);
    QVERIFY(p2 > 0.8);
    for (int32_t d = 3; d < 12; ++d) {
        QCOMPARE(c.pooled(false, d), p2);
        QCOMPARE(c.p(0, false, d), p2);  // no class counts there either
    }
    const Plan p = step(c, cfg, chain_n(300, 12), 12, {300});
    double r = 0;
    QCOMPARE(p.k, best_k(c, 0, 12, &r));
    QVERIFY(p.k >= 8);
}

void TstSpecController::shadowTurnsOnThenOff() {
    Controller c;
    SpecConfig cfg;  // adaptive + auto-off
    cfg.max_branches = 1;
    // Verification of n tokens costs 10 + 2 (n - 1) ms, a plain step 10 ms.
    inject(c, 10.0, [](int32_t n) { return 10.0 + 2.0 * (n - 1); }, 20);
    // First the drafts fail: the draft proposes 100..107, the text goes 0, 1, 2, ...
    for (int i = 0; i < 20; ++i) step(c, cfg, chain_n(100, 8), 8, {Token(i)});
    QVERIFY(c.p(0, false, 0) < 0.1);
    // Off now, and it stays off while the shadows keep failing.
    Plan p = step(c, cfg, chain_n(100, 8), 8, {Token(1)});
    QVERIFY(p.off);
    QCOMPARE(p.k, 0);
    // The text now follows the drafts: every plain step emits the draft's first
    // token, so the shadow walks (overlapping) accept. Speculation turns on
    // without ever having speculated.
    int32_t first_on = -1;
    for (int i = 0; i < 40 && first_on < 0; ++i) {
        const Token base = Token(1000 + i);
        c.shadow_start(chain_n(base, 8));
        const Plan q = c.choose(cfg, shape_of(chain_n(base, 8)), 8, false);
        if (q.k > 0) first_on = i;
        c.on_emitted(base);  // a plain step's token: the proposal's first
        // later steps' tokens continue the same chain only for this walk; the
        // next proposal starts at base + 1, which the next emitted token matches
    }
    QVERIFY2(first_on >= 0, "speculation never turned on although every shadow draft token was accepted");
    QVERIFY(first_on < 10);
    // Full acceptance, verification cheap: (nearly) the whole draft, as the oracle says.
    for (int i = 0; i < 30; ++i) {
        p = step(c, cfg, chain_n(2000, 8), 8, {2000, 2001, 2002, 2003, 2004, 2005, 2006, 2007, 9999});
    }
    p = c.choose(cfg, shape_of(chain_n(2000, 8)), 8, false);
    double r = 0;
    QCOMPARE(p.k, best_k(c, 0, 8, &r));
    QVERIFY(p.k >= 6);
    QVERIFY(!p.tree && !p.off);
    // Drafts start failing: off again, within a handful of steps.
    int32_t steps_to_off = -1;
    for (int i = 0; i < 30 && steps_to_off < 0; ++i) {
        p = step(c, cfg, chain_n(3000, 8), 8, {Token(5)});
        if (p.off) steps_to_off = i;
    }
    QVERIFY(steps_to_off >= 0);
    QVERIFY(steps_to_off < 15);
}

void TstSpecController::depthFollowsAcceptance() {
    // Every draft is right for its first 3 tokens and wrong at the 4th: the
    // plan drafts 3 (a 4th would cost without ever being accepted).
    Controller c;
    SpecConfig cfg;
    inject(c, 10.0, [](int32_t n) { return 10.0 + 1.0 * (n - 1); }, 20);
    Plan p;
    for (int i = 0; i < 30; ++i) {
        const Token b = Token(100 * i);
        p = step(c, cfg, chain_n(b, 10), 10, {b, Token(b + 1), Token(b + 2), Token(b + 50)});
    }
    QCOMPARE(p.k, 3);
    double r = 0;
    QCOMPARE(p.k, best_k(c, 0, 10, &r));
}

void TstSpecController::depthFollowsCost_data() {
    QTest::addColumn<double>("slope");  // ms per extra token of a verification (plain step 10 ms)
    QTest::addColumn<double>("fixed");  // ms of any verification over a plain step
    QTest::newRow("flat") << 0.2 << 0.0;
    QTest::newRow("head-like") << 0.5 << 5.0;
    QTest::newRow("steep") << 4.0 << 2.0;
    QTest::newRow("too-steep") << 12.0 << 5.0;
}

void TstSpecController::depthFollowsCost() {
    QFETCH(double, slope);
    QFETCH(double, fixed);
    // Acceptance 0.8 at every depth (each draft is accepted for exactly j
    // tokens with probability proportional to 0.8^j 0.2, scripted in a fixed
    // rotation), costs injected: the plan is the oracle's argmax, and speculation
    // is off exactly when no depth beats a plain step.
    Controller c;
    SpecConfig cfg;
    const int32_t k_max = 12;
    inject(c, 10.0, [&](int32_t n) { return 10.0 + fixed + slope * (n - 1); }, 40);
    const int accept_len[] = {0, 4, 1, 8, 2, 12, 3, 6, 0, 5, 2, 9, 1, 4, 7, 3};
    Plan p;
    for (int i = 0; i < 64; ++i) {
        const Token b = Token(1000 * (i + 1));
        const int a = accept_len[i % 16];
        c.shadow_start(chain_n(b, k_max));
        p = c.choose(cfg, shape_of(chain_n(b, k_max)), k_max, false);
        for (int j = 0; j < a; ++j) c.on_emitted(Token(b + j));
        c.on_emitted(Token(b + 500));  // the correction
    }
    p = c.choose(cfg, shape_of(chain_n(99, k_max)), k_max, false);
    double best_rate = 0;
    const int32_t want = best_k(c, 0, k_max, &best_rate);
    const bool pays = best_rate > Controller::kMargin / c.costs.cost(1);
    QCOMPARE(p.off, !pays);
    if (pays) QCOMPARE(p.k, want);
    if (slope == 0.2) QVERIFY(p.k >= 8);       // cheap verification: long drafts
    if (slope == 12.0) QVERIFY(p.off);         // each token costs more than a plain step
}

void TstSpecController::treeOnlyWhenItPays() {
    // A tree with two children at the root: the first child is always wrong,
    // the second right (and its chain accepted for 5 tokens).
    auto tree = [](Token b) {
        Draft d;
        d.add(-1, b + 900);  // first child (wrong), with a chain below
        d.add(0, b + 901);
        int32_t p = d.add(-1, b);  // second child
        for (int i = 1; i < 6; ++i) p = d.add(p, Token(b + i));
        return d;
    };
    for (int branches : {1, 3}) {
        Controller c;
        SpecConfig cfg;
        cfg.max_branches = branches;
        inject(c, 10.0, [](int32_t n) { return 10.0 + 1.0 * (n - 1); }, 20);
        Plan p;
        for (int i = 0; i < 30; ++i) {
            const Token b = Token(100 * (i + 1));
            c.shadow_start(tree(b));
            p = c.choose(cfg, shape_of(tree(b)), 6, false);
            for (int j = 0; j < 6; ++j) c.on_emitted(Token(b + j));
            c.on_emitted(Token(b + 50));
        }
        QVERIFY(c.p(0, false, 0) < 0.1);  // the chain walk fails at once
        QVERIFY(c.p(0, true, 0) > 0.9);   // the tree walk takes the second child
        if (branches == 1) {
            QVERIFY(p.off);  // chain only: nothing pays
        } else {
            QVERIFY(p.tree);
            QCOMPARE(p.k, 6);
        }
    }
    // The same tree when its first child is the right one: the chain is enough
    // (the tree's extra nodes cost without adding accepted tokens).
    Controller c;
    SpecConfig cfg;
    inject(c, 10.0, [](int32_t n) { return 10.0 + 1.0 * (n - 1); }, 20);
    Plan p;
    for (int i = 0; i < 30; ++i) {
        const Token b = Token(100 * (i + 1));
        Draft d;
        int32_t q = d.add(-1, b);
        d.add(-1, b + 77);  // an alternative that is never taken
        for (int j = 1; j < 6; ++j) q = d.add(q, Token(b + j));
        c.shadow_start(d);
        p = c.choose(cfg, shape_of(d), 6, false);
        for (int j = 0; j < 6; ++j) c.on_emitted(Token(b + j));
        c.on_emitted(Token(b + 50));
    }
    QVERIFY(!p.off);
    QVERIFY(!p.tree);
    QCOMPARE(p.k, 6);
}

void TstSpecController::lookaheadWindowByCost() {
    auto with_window = [](Token b) {
        Draft d = chain_n(b, 4);
        for (int j = 0; j < 15; ++j) d.add_aux(j == 0 ? -1 : j - 1, Token(7), true);
        return d;
    };
    for (double slope : {0.02, 1.0}) {  // ms per token: the window's 15 nodes cost 0.3 ms (3%) or 15 ms
        Controller c;
        SpecConfig cfg;
        inject(c, 10.0, [&](int32_t n) { return 10.0 + 2.0 + slope * (n - 1); }, 40);
        Plan p;
        for (int i = 0; i < 30; ++i) {
            const Token b = Token(100 * (i + 1));
            c.shadow_start(with_window(b));
            p = c.choose(cfg, shape_of(with_window(b)), 4, false);
            for (int j = 0; j < 4; ++j) c.on_emitted(Token(b + j));
            c.on_emitted(Token(b + 50));
        }
        QCOMPARE(p.k, 4);
        QCOMPARE(p.window, slope < 0.1);
    }
}

void TstSpecController::modelDrafterProbesAtTheDepthCap() {
    Controller c;
    SpecConfig cfg;
    cfg.probe_interval = 4;
    cfg.probe_budget = 0.0;  // the interval and the depth cap alone (modelDrafterProbeBudget: the budget)
    inject(c, 10.0, [](int32_t n) { return 10.0 + 1.0 * (n - 1); }, 20);
    c.t_draft = 3.0;
    DraftShape s;
    s.depth = s.chain_depth = 8;
    for (int32_t i = 0; i <= 8; ++i) s.nodes_upto.push_back(i);
    // The drafter's tokens are always rejected at depth 0.
    for (int i = 0; i < 20; ++i) c.observe_walk(0, 0, false);
    QCOMPARE(c.model_depth_cap(), 1);
    std::vector<int32_t> probes;
    for (int i = 0; i < 60; ++i) {
        const Plan p = c.choose(cfg, s, 8, true);
        if (p.k > 0) {
            QVERIFY(p.probe);
            QCOMPARE(p.k, 1);  // a rejected drafter drafts one token a probe, not 8
            probes.push_back(i);
            c.observe_walk(0, 0, false);
            c.probe_done(cfg, false);
        } else {
            QVERIFY(p.off);
        }
    }
    // intervals 4, 8, 16, 32: a useless probe doubles it (up to 16x the base)
    QVERIFY(probes.size() >= 3);
    QCOMPARE(probes[0], 3);
    QCOMPARE(probes[1] - probes[0], 8);
    QCOMPARE(probes[2] - probes[1], 16);
    // The drafter starts being accepted: the cap doubles with the depths accepted.
    c.observe_walk(0, 0, true);
    QCOMPARE(c.model_depth_cap(), 2);
    c.observe_walk(0, 1, true);
    QCOMPARE(c.model_depth_cap(), 4);
    // Fixed drafts (not adaptive) keep full-depth probes.
    Controller f;
    SpecConfig fixed_off = cfg;
    fixed_off.adaptive = false;
    inject(f, 10.0, [](int32_t n) { return 10.0 + 1.0 * (n - 1); }, 20);
    f.t_draft = 3.0;
    for (int i = 0; i < 20; ++i) f.observe_walk(0, 0, false);
    for (int i = 0; i < 8; ++i) {
        const Plan p = f.choose(fixed_off, s, 8, true);
        if (p.k > 0) QCOMPARE(p.k, 8);
    }
    // A good drafter: on, and the plan weighs drafting time (3 ms per depth).
    Controller g;
    inject(g, 10.0, [](int32_t n) { return 10.0 + 1.0 * (n - 1); }, 20);
    g.t_draft = 3.0;
    for (int i = 0; i < 30; ++i) {
        for (int d = 0; d < 8; ++d) g.observe_walk(0, d, true);
    }
    QCOMPARE(g.model_depth_cap(), 16);
    const Plan p = g.choose(cfg, s, 8, true);
    QVERIFY(!p.off && !p.probe);
    QVERIFY(p.k >= 3);
}

void TstSpecController::modelDrafterThatCannotPay() {
    // Plain step 10 ms, a verify of n tokens 10 + 1 (n - 1) ms: with every
    // drafted token accepted, depth k at t ms a drafted token gives
    // (k + 1) / (10 + k + k t) tokens a ms against 0.1 for a plain step.
    Controller c;
    QVERIFY(c.model_can_pay(8));  // nothing measured yet
    inject(c, 10.0, [](int32_t n) { return 10.0 + 1.0 * (n - 1); }, 20);
    QVERIFY(c.model_can_pay(8));  // no drafting time yet
    c.t_draft = 3.0;              // k = 8: 9 / 42 = 0.214 a ms
    QVERIFY(c.model_can_pay(8));
    QVERIFY(c.model_can_pay(1));  // 2 / 14 = 0.143
    c.t_draft = 8.5;              // k = 1: 2 / 19.5 = 0.1026, under 0.105; deeper is worse
    QVERIFY(!c.model_can_pay(8));
    c.t_draft = 8.0;              // k = 1: 2 / 19 = 0.1053, just over
    QVERIFY(c.model_can_pay(8));
    QVERIFY(!c.model_can_pay(0));  // no depth to draft
}

namespace {

DraftShape model_chain(int32_t k) {
    DraftShape s;
    s.depth = s.chain_depth = k;
    for (int32_t i = 0; i <= k; ++i) s.nodes_upto.push_back(i);
    return s;
}

}  // namespace

void TstSpecController::modelDrafterProbeBudget() {
    // Plain step 10 ms. Each probe of this drafter counts as useful (the
    // interval stays at its base of 4) but costs 30 ms for its one token (a
    // window restart's prefill): 2 plain steps lost a probe. Its timing cost
    // 2 plain steps. With a budget of 3%, what probing loses stays within 3%
    // of the tokens' plain time plus one probe; without one it does not.
    auto run = [](double budget, int64_t n_tokens, int * n_probes, double * worst_over) {
        SpecConfig cfg;
        cfg.probe_interval = 4;
        cfg.probe_budget = budget;
        Controller c;
        inject(c, 10.0, [](int32_t n) { return 10.0 + 1.0 * (n - 1); }, 20);
        c.t_draft = 9.0;  // no plan pays: k = 1 gives 1.5 / (11 + 9) tokens a ms against 0.1
        const DraftShape s = model_chain(8);
        c.model_spent(20.0, 0, false);
        *n_probes = 0;
        *worst_over = -1e9;
        while (c.emitted() < n_tokens) {
            const Plan p = c.choose(cfg, s, 8, true);
            if (p.k > 0) {
                if (!p.probe) return false;
                ++*n_probes;
                c.observe_walk(0, 0, false);
                c.model_spent(30.0, 1, true);
                c.probe_done(cfg, true);
            } else if (!p.off) {
                return false;
            }
            c.on_emitted(1);
            *worst_over = std::max(*worst_over, c.debt() - budget * double(c.emitted()));
        }
        return true;
    };
    int probes = 0;
    double over = 0.0;
    QVERIFY(run(0.03, 2000, &probes, &over));
    // 2000 tokens x 3% = 60 plain steps, minus the timing's 2: at most 29 probes of 2
    QVERIFY2(probes >= 20 && probes <= 30, qPrintable(QString("probes %1").arg(probes)));
    QVERIFY2(over <= 2.0 + 1e-9, qPrintable(QString("over budget by %1 plain steps").arg(over)));
    // No budget: the interval alone (every 5th step) probes ~400 times, losing ~800 plain steps.
    QVERIFY(run(0.0, 2000, &probes, &over));
    QVERIFY2(probes > 300, qPrintable(QString("probes %1").arg(probes)));
    // Before any probe its loss is estimated: a restart on 16 + 1 tokens at a
    // quarter of a drafting step each + a 2-token verify - 1 token.
    Controller e;
    SpecConfig ecfg;
    inject(e, 10.0, [](int32_t n) { return 10.0 + 1.0 * (n - 1); }, 20);
    e.t_draft = 9.0;
    QCOMPARE(ecfg.draft_window, 16);
    QCOMPARE(e.probe_loss_estimate(ecfg), (17 * 0.25 * 9.0 + 11.0) / 10.0 - 1.0);
    e.model_spent(50.0, 1, true);  // 4 lost
    QCOMPARE(e.probe_loss_estimate(ecfg), 4.0);
    e.model_spent(5.0, 2, true);   // a gain counts as 0 in the estimate (the mean with 4: 2), not in the debt
    QCOMPARE(e.probe_loss_estimate(ecfg), 2.0);
    QCOMPARE(e.debt(), 4.0 - 1.5);
}

void TstSpecController::modelDrafterOverBudgetWaits() {
    // A drafter the controller thinks pays (every token accepted, 3 ms a
    // drafted token), whose steps in fact lose time (the readings were wrong):
    // once its debt exceeds the budget it is off until the budget has grown.
    SpecConfig cfg;
    cfg.probe_budget = 0.03;
    Controller g;
    inject(g, 10.0, [](int32_t n) { return 10.0 + 1.0 * (n - 1); }, 20);
    g.t_draft = 3.0;
    for (int i = 0; i < 30; ++i) {
        for (int d = 0; d < 8; ++d) g.observe_walk(0, d, true);
    }
    const DraftShape s = model_chain(8);
    for (int i = 0; i < 100; ++i) g.on_emitted(1);  // budget 3 plain steps
    Plan p = g.choose(cfg, s, 8, true);
    QVERIFY(!p.off && p.k > 0);
    g.model_spent(60.0, 2, false);  // 4 plain steps lost: over the budget
    for (int i = 0; i < 2; ++i) g.on_emitted(1);
    p = g.choose(cfg, s, 8, true);
    QVERIFY(p.off);
    QCOMPARE(p.k, 0);
    // the same with no budget: on (turning on after a plain step: as a probe)
    SpecConfig unbounded = cfg;
    unbounded.probe_budget = 0.0;
    Controller u = g;
    p = u.choose(unbounded, s, 8, true);
    QVERIFY(!p.off && p.probe);
    // 40 more tokens: budget 0.03 x 142 = 4.26 >= the debt of 4, but turning on
    // again costs a catch-up like a probe (estimated (17 x 0.25 x 3 + 11) / 10 - 1
    // = 1.375): not yet
    for (int i = 0; i < 40; ++i) g.on_emitted(1);
    QVERIFY(g.affordable(cfg, 0.0));
    QVERIFY(!g.probe_affordable(cfg));
    QVERIFY(g.choose(cfg, s, 8, true).off);
    // 40 more: 0.03 x 182 = 5.46 >= 5.375: on, as a probe; the next step plainly on
    for (int i = 0; i < 40; ++i) g.on_emitted(1);
    p = g.choose(cfg, s, 8, true);
    QVERIFY(!p.off && p.k > 0 && p.probe);
    p = g.choose(cfg, s, 8, true);
    QVERIFY(!p.off && p.k > 0 && !p.probe);
    // A drafter whose steps gain (negative debt) is never held back by it.
    g.model_spent(10.0, 9, false);
    QVERIFY(g.debt() < 0.0);
    QVERIFY(g.affordable(cfg, 0.0));
}

void TstSpecController::fixedConfig() {
    Controller c;
    SpecConfig cfg;
    cfg.adaptive = cfg.auto_off = false;
    Draft d = chain_n(5, 6);
    d.add(-1, 99);  // a second branch
    const Plan p = c.choose(cfg, shape_of(d), 4, false);  // even with nothing measured
    QCOMPARE(p.k, 4);
    QVERIFY(p.tree && !p.off);
    // adaptive off, auto-off on, drafts useless: off; useful: the whole draft
    cfg.auto_off = true;
    cfg.max_branches = 1;
    inject(c, 10.0, [](int32_t n) { return 10.0 + 1.0 * (n - 1); }, 20);
    for (int i = 0; i < 20; ++i) step(c, cfg, chain_n(100, 6), 6, {Token(1)});
    QVERIFY(c.choose(cfg, shape_of(chain_n(100, 6)), 6, false).off);
    for (int i = 0; i < 40; ++i) step(c, cfg, chain_n(200, 6), 6, {200, 201, 202, 203, 204, 205, 1});
    const Plan q = c.choose(cfg, shape_of(chain_n(300, 6)), 6, false);
    QCOMPARE(q.k, 6);
}

void TstSpecController::lookupDraftClass() {
    // The class of a prompt-lookup draft is how long a suffix matched (0-3),
    // 6 / 7 for 1- / 2-token matches whose occurrences went on differently.
    SpecConfig cfg;
    cfg.max_branches = 1;
    auto lk = make_prompt_lookup_speculator(cfg);
    Draft d;
    // ... 1 2 3 4 5 6 7 | 9 ... 1 2 3 4 5 6 7 -> match of 7 tokens: class 3
    std::vector<Token> t = {1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 1, 2, 3, 4, 5, 6, 7};
    QVERIFY(lk->propose(t, 4, d, nullptr).ok());
    QCOMPARE(d.tokens[0], Token(9));
    QCOMPARE(d.cls, 3);
    // only the last token matches: class 0
    t = {1, 2, 3, 20, 21, 3};
    QVERIFY(lk->propose(t, 4, d, nullptr).ok());
    QCOMPARE(d.tokens[0], Token(20));
    QCOMPARE(d.cls, 0);
    // two tokens: class 1
    t = {1, 2, 3, 20, 21, 2, 3};
    QVERIFY(lk->propose(t, 4, d, nullptr).ok());
    QCOMPARE(d.cls, 1);
    // one token, its two earlier occurrences followed by 20 and 22: class 6 (the most recent drafted)
    t = {1, 2, 3, 20, 21, 3, 22, 23, 3};
    QVERIFY(lk->propose(t, 4, d, nullptr).ok());
    QCOMPARE(d.tokens[0], Token(22));
    QCOMPARE(d.cls, 6);
    // the same with both followed by 22: class 0
    t = {1, 2, 3, 22, 21, 3, 22, 23, 3};
    QVERIFY(lk->propose(t, 4, d, nullptr).ok());
    QCOMPARE(d.cls, 0);
    // two tokens, followed by 20 and 22: class 7
    t = {2, 3, 20, 9, 2, 3, 22, 8, 2, 3};
    QVERIFY(lk->propose(t, 4, d, nullptr).ok());
    QCOMPARE(d.tokens[0], Token(22));
    QCOMPARE(d.cls, 7);
    // a longer match is classed by its length whatever the shorter ones say
    t = {2, 3, 20, 9, 5, 2, 3, 22, 8, 5, 2, 3};
    QVERIFY(lk->propose(t, 4, d, nullptr).ok());
    QCOMPARE(d.tokens[0], Token(22));
    QCOMPARE(d.cls, 2);
}

void TstSpecController::classBorrowsPooledAcceptance() {
    // Class 0 drafts always fail; one class-2 draft succeeds once: class 2's
    // estimate stays near the pooled one (no speculation on one lucky guess);
    // after ten successes it is trusted.
    Controller c;
    SpecConfig cfg;
    inject(c, 10.0, [](int32_t n) { return 15.0 + 1.0 * (n - 1); }, 20);
    for (int i = 0; i < 30; ++i) step(c, cfg, chain_n(100, 4), 4, {Token(1)});
    Draft good = chain_n(500, 4);
    good.cls = 2;
    c.shadow_start(good);
    c.on_emitted(500);
    QVERIFY(c.p(2, false, 0) < 0.5);
    QVERIFY(c.choose(cfg, shape_of(good), 4, false).off);
    for (int i = 0; i < 10; ++i) {
        Draft g = chain_n(Token(600 + 10 * i), 4);
        g.cls = 2;
        c.shadow_start(g);
        for (int j = 0; j < 4; ++j) c.on_emitted(Token(600 + 10 * i + j));
        c.on_emitted(9999);
    }
    QVERIFY(c.p(2, false, 0) > 0.8);
    QVERIFY(c.p(0, false, 0) < 0.2);
    const Plan p = c.choose(cfg, shape_of(good), 4, false);
    QVERIFY(!p.off);
    QCOMPARE(p.k, 4);
    QVERIFY(c.choose(cfg, shape_of(chain_n(100, 4)), 4, false).off);  // class 0 still off
}

void TstSpecController::firstTokenOddsCapTheClassPrior() {
    // Prompt lookup's own odds for a draft's first token (Draft::first_p):
    // the share of the match's occurrences followed by it, Laplace-smoothed.
    {
        SpecConfig cfg;
        cfg.max_branches = 1;
        auto lk = make_prompt_lookup_speculator(cfg);
        Draft d;
        // "7" occurs 3 times before the end, each a 1-token match; followed by 3, 4, 4.
        // The most recent (-> 4) is drafted: 2 of 3 agree -> (2 + 0.5) / (3 + 1).
        const std::vector<Token> t = {7, 3, 20, 7, 4, 21, 7, 4, 22, 7};
        QVERIFY(lk->propose(t, 4, d, nullptr).ok());
        QCOMPARE(d.tokens[0], Token(4));
        QCOMPARE(d.cls, 6);
        QCOMPARE(d.first_p, 0.625f);
        cfg.max_branches = 3;  // a tree (root children 4 and 3): the first chain's odds
        auto lk3 = make_prompt_lookup_speculator(cfg);
        QVERIFY(lk3->propose(t, 4, d, nullptr).ok());
        QVERIFY(d.size() > 4);
        QCOMPARE(d.first_p, 0.625f);
        keep_first_chain(d);
        QCOMPARE(d.first_p, 0.625f);
        prune_depth(d, 2);
        QCOMPARE(d.first_p, 0.625f);
        // a unique 7-token match: 1 of 1 -> 0.75
        const std::vector<Token> u = {1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 1, 2, 3, 4, 5, 6, 7};
        QVERIFY(lk->propose(u, 4, d, nullptr).ok());
        QCOMPARE(d.cls, 3);
        QCOMPARE(d.first_p, 0.75f);
    }
    // The controller: after long class-3 drafts all accepted, an unseen class
    // borrows their acceptance (~0.95) and, without first_p (the policy
    // before), drafts a weak 12-token guess deep; with the speculator's 10%
    // for its first token, the class's prior is capped there and no depth
    // beats a plain step (expected tokens per ms, checked below).
    SpecConfig cfg;
    Controller c;
    inject(c, 10.0, [](int32_t n) { return 10.0 * (1.0 + 0.12 * double(n - 1)); }, 13);
    Token next = 1000;
    for (int s = 0; s < 6; ++s) {
        Draft d = chain_n(next, 12);
        d.cls = 3;
        d.first_p = 0.75f;
        c.shadow_start(d);
        for (int32_t i = 0; i < 12; ++i) c.on_emitted(next + i);
        c.on_emitted(next + 50);  // the bonus token
        next += 100;
    }
    QVERIFY(c.p(3, false, 0) > 0.9);
    Draft weak = chain_n(5000, 12);
    weak.cls = 6;
    QVERIFY(c.p(6, false, 0) > 0.8);  // borrowed from the pool
    const Plan before = c.choose(cfg, shape_of(weak), 12, false);
    QVERIFY(!before.off);
    QVERIFY(before.k >= 8);
    weak.first_p = 0.1f;
    const Plan after = c.choose(cfg, shape_of(weak), 12, false);
    QVERIFY(after.off);
    QCOMPARE(after.k, 0);
    QVERIFY(std::abs(c.p_first(6, false, 0.1) - 0.1) < 1e-9);  // class unseen: the capped prior
    for (int32_t k = 1; k <= 12; ++k) QVERIFY(c.rate(shape_of(weak), k, false, false, false) < Controller::kMargin * 0.1);
    // A cap, not an override: a strong class keeps its own record (0.75 caps
    // only the prior; six acceptances dominate), and an estimate above the
    // pool changes nothing.
    Draft strong = chain_n(9000, 12);
    strong.cls = 3;
    strong.first_p = 0.75f;
    QVERIFY(c.p_first(3, false, 0.75) > 0.85);
    QCOMPARE(c.choose(cfg, shape_of(strong), 12, false).k, 12);
    QCOMPARE(c.p_first(6, false, 0.99), c.p(6, false, 0));
}

QTEST_GUILESS_MAIN(TstSpecController)
#include "tst_spec_controller.moc"
