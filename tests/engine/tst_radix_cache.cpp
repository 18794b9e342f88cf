// Radix prefix cache: match / insert / split / lock / evict against a brute-force
// model (a map from every cached page-aligned prefix to its page and last access).
#include "glassbox/kv/page_table.h"
#include "glassbox/kv/radix_cache.h"

#include <QtTest>
#include <algorithm>
#include <climits>
#include <map>
#include <random>
#include <set>

using namespace gb::kv;
using gb::Token;
using Tokens = std::vector<Token>;

class TstRadixCache : public QObject {
    Q_OBJECT
  private slots:
    void matchInsertSplit();
    void duplicatesReported();
    void lockedNodesSurviveEvict();
    void evictsLeastRecentlyUsedLeaf();
    void poolReuseRemovesLeafPages();
    void poolReuseOfInnerPageDropsSubtree();
    void property_data();
    void property();
};

namespace {

// Allocate pages for tokens (full pages only) in a table, insert, return the seq.
SeqId hold_and_insert(PageTables & t, RadixCache & c, const Tokens & toks) {
    const SeqId s = t.create();
    if (!t.append(s, int32_t(toks.size())).ok()) return -1;
    const std::vector<PageId> pages(t.pages(s).begin(), t.pages(s).end());
    auto r = c.insert(toks, pages);
    for (auto d : r.duplicates) t.replace_page(s, d.index, d.cached);
    return s;
}

}  // namespace

void TstRadixCache::matchInsertSplit() {
    BlockPool pool(16, 2);
    RadixCache c(pool);
    PageTables t(pool);
    const SeqId a = hold_and_insert(t, c, {1, 2, 3, 4, 5, 6});
    const std::vector<PageId> pa(t.pages(a).begin(), t.pages(a).end());
    auto m = c.match_prefix(Tokens{1, 2, 3, 4, 9, 9, 9});
    QCOMPARE(m.n_tokens, 4);
    QCOMPARE(m.pages, (std::vector<PageId>{pa[0], pa[1]}));
    QCOMPARE(c.stats().n_nodes, 2);  // split at the page boundary
    QCOMPARE(c.match_prefix(Tokens{1, 2, 3}).n_tokens, 2);   // partial pages never match
    QCOMPARE(c.match_prefix(Tokens{1}).n_tokens, 0);
    QCOMPARE(c.match_prefix(Tokens{2, 1}).n_tokens, 0);
    const SeqId b = hold_and_insert(t, c, {1, 2, 7, 7});
    QCOMPARE(t.pages(b)[0], pa[0]);  // shared first page after dedup
    QCOMPARE(c.stats().n_nodes, 4);  // [1 2] -> {[3 4] -> [5 6], [7 7]}
    const std::string d = c.dump();
    QVERIFY2(d.find("tokens=2") != std::string::npos && d.find("key=[7 7]") != std::string::npos, d.c_str());
    QVERIFY(c.check_invariants().ok());
    t.free(a);
    t.free(b);
    QCOMPARE(pool.stats().cached, 4);
    QCOMPARE(c.evict(INT_MAX), 4);
    QCOMPARE(c.stats().n_nodes, 0);
    QCOMPARE(pool.stats().free, 16);
}

void TstRadixCache::duplicatesReported() {
    BlockPool pool(8, 2);
    RadixCache c(pool);
    PageTables t(pool);
    const SeqId a = hold_and_insert(t, c, {1, 2, 3, 4});
    const SeqId b = t.create();
    QVERIFY(t.append(b, 6).ok());
    const std::vector<PageId> pb(t.pages(b).begin(), t.pages(b).end());
    auto r = c.insert(Tokens{1, 2, 3, 4, 5, 6}, pb);
    QCOMPARE(int(r.duplicates.size()), 2);
    QCOMPARE(r.duplicates[0].index, 0);
    QCOMPARE(r.duplicates[0].cached, t.pages(a)[0]);
    QCOMPARE(r.duplicates[1].cached, t.pages(a)[1]);
    QCOMPARE(r.n_new_pages, 1);
    for (auto d : r.duplicates) t.replace_page(b, d.index, d.cached);
    QCOMPARE(pool.ref_count(t.pages(a)[0]), 2);
    QCOMPARE(pool.stats().used, 3);  // b's own copies of the first two pages went back
    QVERIFY(c.check_invariants().ok());
}

void TstRadixCache::lockedNodesSurviveEvict() {
    BlockPool pool(8, 1);
    RadixCache c(pool);
    PageTables t(pool);
    const SeqId a = hold_and_insert(t, c, {1, 2, 3});
    const SeqId b = hold_and_insert(t, c, {1, 5});
    t.free(b);
    auto m = c.match_prefix(Tokens{1, 2, 3});
    QCOMPARE(m.n_tokens, 3);
    c.lock(m.node);
    QCOMPARE(c.root().lock_ref, 1);
    t.free(a);  // unheld but locked: the rule is to hold while locked; check_invariants says so
    QVERIFY(!c.check_invariants().ok());
    const SeqId h = t.create_with_prefix(m.pages);
    QVERIFY(c.check_invariants().ok());
    QCOMPARE(c.evict(INT_MAX), 1);  // only [5]
    QCOMPARE(c.match_prefix(Tokens{1, 2, 3}).n_tokens, 3);
    c.unlock(m.node);
    t.free(h);
    QCOMPARE(c.evict(INT_MAX), 3);
    QCOMPARE(c.root().lock_ref, 0);
}

void TstRadixCache::evictsLeastRecentlyUsedLeaf() {
    BlockPool pool(8, 1);
    RadixCache c(pool);
    PageTables t(pool);
    std::vector<PageId> evicted;
    c.set_evict_listener([&](PageId p) { evicted.push_back(p); });
    t.free(hold_and_insert(t, c, {1, 2}));
    t.free(hold_and_insert(t, c, {1, 3}));
    t.free(hold_and_insert(t, c, {4}));
    const PageId p12 = c.match_prefix(Tokens{1, 2}).pages[1];  // touch [1 2]: now [1 3] then [4] are older
    const PageId p13 = c.match_prefix(Tokens{1, 3}).pages[1];
    const PageId p4 = c.match_prefix(Tokens{4}).pages[0];
    c.match_prefix(Tokens{1, 2});
    QCOMPARE(c.evict(1), 1);
    QCOMPARE(evicted, (std::vector<PageId>{p13}));
    QCOMPARE(c.evict(1), 1);
    QCOMPARE(evicted.back(), p4);
    QCOMPARE(c.evict(2), 2);  // [1 2] leaf, then its parent [1]
    QCOMPARE(evicted[2], p12);
    QCOMPARE(c.stats().n_pages, 0);
}

void TstRadixCache::poolReuseRemovesLeafPages() {
    BlockPool pool(4, 1);
    RadixCache c(pool);
    PageTables t(pool);
    const SeqId a = hold_and_insert(t, c, {1, 2, 3, 4});
    t.free(a);  // released deepest first: 4, 3, 2, 1 in eviction order
    QCOMPARE(pool.stats().cached, 4);
    const SeqId b = t.create();
    QVERIFY(t.append(b, 2).ok());
    QCOMPARE(c.match_prefix(Tokens{1, 2, 3, 4}).n_tokens, 2);  // [3 4] went
    QVERIFY(c.check_invariants().ok());
    QCOMPARE(c.stats().n_evicted_pages, int64_t(2));
}

// A fork keeps the pages its parent swapped for cached duplicates, so a tree
// page's child can be held while the page itself is released and reused.
void TstRadixCache::poolReuseOfInnerPageDropsSubtree() {
    BlockPool pool(3, 1);
    RadixCache c(pool);
    PageTables t(pool);
    std::vector<PageId> evicted;
    c.set_evict_listener([&](PageId p) { evicted.push_back(p); });
    const SeqId x = hold_and_insert(t, c, {1});
    const PageId c1 = t.pages(x)[0];
    t.free(x);
    const SeqId a = t.create();
    QVERIFY(t.append(a, 2).ok());
    const SeqId f = t.fork(a);
    const PageId o1 = t.pages(a)[0], o2 = t.pages(a)[1];
    auto r = c.insert(Tokens{1, 2}, std::vector<PageId>{o1, o2});
    QCOMPARE(int(r.duplicates.size()), 1);
    t.replace_page(a, 0, c1);  // a: [c1, o2], f: [o1, o2]
    t.free(a);
    QCOMPARE(pool.ref_count(c1), 0);
    QCOMPARE(pool.ref_count(o2), 1);
    auto got = pool.allocate(1);  // reuses c1, whose child o2 is still held by f
    QVERIFY(got.ok());
    QCOMPARE(got->front(), c1);
    QCOMPARE(evicted.size(), size_t(2));
    QCOMPARE(c.stats().n_nodes, 0);
    QVERIFY(!pool.has_hash(o2));
    QCOMPARE(pool.ref_count(o2), 1);
    QVERIFY(c.check_invariants().ok());
    QVERIFY(pool.check_invariants().ok());
    pool.unref(c1);
    t.free(f);
    QCOMPARE(pool.stats().free, 3);
}

void TstRadixCache::property_data() {
    QTest::addColumn<uint32_t>("seed");
    QTest::addColumn<int>("page_size");
    QTest::addColumn<int>("n_pages");
    QTest::newRow("ps1") << 11u << 1 << 40;
    QTest::newRow("ps2") << 12u << 2 << 24;
    QTest::newRow("ps4") << 13u << 4 << 32;
    QTest::newRow("ps3-tight") << 14u << 3 << 10;
}

void TstRadixCache::property() {
    QFETCH(uint32_t, seed);
    QFETCH(int, page_size);
    QFETCH(int, n_pages);
    const size_t ps = size_t(page_size);
    std::mt19937 rng(seed);
    auto rnd = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };

    BlockPool pool(n_pages, page_size);
    RadixCache cache(pool);
    PageTables tables(pool);

    struct Entry { PageId page; uint64_t last; };
    std::map<Tokens, Entry> model;  // every cached page-aligned prefix
    uint64_t clock = 0;
    struct Active { Tokens tokens; SeqId seq; RadixNode * locked = nullptr; int lock_pages = 0; };
    std::vector<Active> active;
    std::vector<PageId> evicted;
    std::string listener_error;
    bool in_pool_alloc = false;

    auto prefix = [&](const Tokens & t, size_t n_pages_) { return Tokens(t.begin(), t.begin() + long(n_pages_ * ps)); };
    auto locked_pages = [&]() {
        std::set<PageId> s;
        for (const Active & a : active) {
            for (int i = 0; i < a.lock_pages; ++i) s.insert(tables.pages(a.seq)[size_t(i)]);
        }
        return s;
    };
    cache.set_evict_listener([&](PageId p) {
        // Held pages leave the tree only below a page the pool reused (fork case).
        if (pool.ref_count(p) != 0 && !in_pool_alloc) listener_error = "evicted a held page " + std::to_string(p);
        if (locked_pages().count(p)) listener_error = "evicted a locked page " + std::to_string(p);
        evicted.push_back(p);
    });
    auto touch = [&](const Tokens & t, size_t n) {
        for (size_t k = 1; k <= n; ++k) model[prefix(t, k)].last = clock;
    };
    auto brute_match = [&](const Tokens & q) {
        size_t k = 0;
        while ((k + 1) * ps <= q.size() && model.count(prefix(q, k + 1))) ++k;
        return k;
    };
    auto is_leaf = [&](const Tokens & key) {
        auto it = model.upper_bound(key);  // extensions sort right after their prefix
        return it == model.end() || it->first.size() <= key.size() || !std::equal(key.begin(), key.end(), it->first.begin());
    };
    // Prefixes evict() may take now: leaves whose page nobody holds or locks.
    auto evictable_leaves = [&]() {
        std::vector<uint64_t> lasts;
        const auto lk = locked_pages();
        for (const auto & [k, e] : model) {
            if (is_leaf(k) && pool.ref_count(e.page) == 0 && !lk.count(e.page)) lasts.push_back(e.last);
        }
        return lasts;
    };
    auto brute_evictable_pages = [&]() {
        // A prefix can go when it and all its extensions are unheld and unlocked.
        const auto lk = locked_pages();
        int n = 0;
        for (const auto & [k, e] : model) {
            bool ok = true;
            for (auto it = model.lower_bound(k); it != model.end() && it->first.size() >= k.size() &&
                                                 std::equal(k.begin(), k.end(), it->first.begin());
                 ++it) {
                if (pool.ref_count(it->second.page) != 0 || lk.count(it->second.page)) { ok = false; break; }
            }
            n += ok;
        }
        return n;
    };
    // Drop the evicted pages from the model; each must have been a leaf by then.
    auto apply_evictions = [&](const char * where) {
        for (PageId p : evicted) {
            auto it = std::find_if(model.begin(), model.end(), [&](const auto & kv) { return kv.second.page == p; });
            QVERIFY2(it != model.end(), (std::string(where) + ": evicted page not cached").c_str());
            model.erase(it);
        }
        for (const auto & [k, e] : model) {
            for (size_t n = 1; n * ps < k.size(); ++n) {
                QVERIFY2(model.count(prefix(k, n)), (std::string(where) + ": model lost prefix-closure (non-leaf evicted)").c_str());
            }
        }
    };
    auto release = [&](size_t i) {
        if (active[i].locked) cache.unlock(active[i].locked);
        tables.free(active[i].seq);
        active.erase(active.begin() + long(i));
    };
    auto random_tokens = [&]() {
        Tokens t;
        if (!model.empty() && rnd(0, 2) > 0) {  // extend something cached: shared prefixes
            auto it = model.begin();
            std::advance(it, rnd(0, int(model.size()) - 1));
            t = it->first;
            t.resize(size_t(rnd(0, int(t.size()))));
        }
        const int extra = rnd(1, 4 * page_size);
        for (int i = 0; i < extra; ++i) t.push_back(rnd(0, 2));
        return t;
    };
    auto check = [&](const char * op, int step) {
        const std::string where = std::string(op) + " at step " + std::to_string(step);
        QVERIFY2(listener_error.empty(), (where + ": " + listener_error).c_str());
        auto s = pool.check_invariants();
        QVERIFY2(s.ok(), (where + ": " + (s.ok() ? "" : s.error().message)).c_str());
        s = cache.check_invariants();
        QVERIFY2(s.ok(), (where + ": " + (s.ok() ? "" : s.error().message) + "\n" + cache.dump()).c_str());
        std::vector<int> holders(static_cast<size_t>(n_pages), 0);
        for (const Active & a : active) {
            for (PageId p : tables.pages(a.seq)) ++holders[size_t(p)];
        }
        for (PageId p = 0; p < n_pages; ++p) {
            QVERIFY2(pool.ref_count(p) == holders[size_t(p)], (where + ": ref != holders for page " + std::to_string(p)).c_str());
        }
        // Tree content == model content.
        std::map<Tokens, PageId> tree;
        std::vector<std::pair<const RadixNode *, Tokens>> stack{{&cache.root(), {}}};
        while (!stack.empty()) {
            auto [n, path] = stack.back();
            stack.pop_back();
            for (size_t i = 0; i < n->pages.size(); ++i) {
                path.insert(path.end(), n->tokens.begin() + long(i * ps), n->tokens.begin() + long((i + 1) * ps));
                tree[path] = n->pages[i];
            }
            for (const auto & [k, c] : n->children) stack.push_back({c.get(), path});
        }
        QVERIFY2(tree.size() == model.size(), (where + ": tree has " + std::to_string(tree.size()) + " pages, model " +
                                               std::to_string(model.size())).c_str());
        for (const auto & [k, e] : model) {
            auto it = tree.find(k);
            QVERIFY2(it != tree.end() && it->second == e.page, (where + ": tree/model differ").c_str());
        }
        QCOMPARE(cache.n_evictable_pages(), brute_evictable_pages());
    };

    int n_hits = 0, n_dups = 0, n_tree_evict = 0, n_pool_evict = 0;
    for (int step = 0; step < 3000; ++step) {
        evicted.clear();
        const int op = active.empty() ? 0 : rnd(0, 9);
        const char * name = "?";
        if (op <= 2) {  // start a sequence: match, hold the hit, append the rest
            name = "start";
            const Tokens toks = random_tokens();
            const Tokens q(toks.begin(), toks.end() - 1);
            const size_t k = brute_match(q);
            ++clock;
            PrefixMatch m = cache.match_prefix(q);
            QCOMPARE(m.n_tokens, int(k * ps));
            for (size_t i = 0; i < k; ++i) QCOMPARE(m.pages[i], model.at(prefix(q, i + 1)).page);
            touch(q, k);
            n_hits += k > 0;
            Active a{toks, tables.create_with_prefix(m.pages)};
            if (k > 0) {
                cache.lock(m.node);
                a.locked = m.node;
                a.lock_pages = int(k);
            }
            active.push_back(a);
            in_pool_alloc = true;
            const bool ok = tables.append(a.seq, int(toks.size() - k * ps)).ok();
            in_pool_alloc = false;
            if (!ok) release(active.size() - 1);
            n_pool_evict += int(evicted.size());
        } else if (op <= 4) {  // insert the full pages of a sequence
            name = "insert";
            Active & a = active[size_t(rnd(0, int(active.size()) - 1))];
            const size_t n_full = a.tokens.size() / ps;
            if (n_full > 0) {
                std::vector<InsertResult::Dup> want;
                int n_new = 0;
                for (size_t i = 0; i < n_full; ++i) {
                    auto it = model.find(prefix(a.tokens, i + 1));
                    if (it == model.end()) ++n_new;
                    else if (it->second.page != tables.pages(a.seq)[i]) want.push_back({int(i), it->second.page});
                }
                ++clock;
                const std::vector<PageId> pages(tables.pages(a.seq).begin(), tables.pages(a.seq).begin() + long(n_full));
                InsertResult r = cache.insert(prefix(a.tokens, n_full), pages);
                QCOMPARE(r.n_new_pages, n_new);
                QCOMPARE(r.duplicates.size(), want.size());
                for (size_t i = 0; i < want.size(); ++i) {
                    QCOMPARE(r.duplicates[i].index, want[i].index);
                    QCOMPARE(r.duplicates[i].cached, want[i].cached);
                }
                n_dups += int(want.size());
                for (size_t i = 0; i < n_full; ++i) model.emplace(prefix(a.tokens, i + 1), Entry{pages[i], 0});
                touch(a.tokens, n_full);
                for (auto d : r.duplicates) tables.replace_page(a.seq, d.index, d.cached);
                cache.lock(r.node);
                if (a.locked) cache.unlock(a.locked);
                a.locked = r.node;
                a.lock_pages = int(n_full);
            }
        } else if (op == 5) {  // grow a sequence (may evict cached pages through the pool)
            name = "grow";
            Active & a = active[size_t(rnd(0, int(active.size()) - 1))];
            const int n = rnd(1, 2 * page_size);
            in_pool_alloc = true;
            const bool ok = tables.append(a.seq, n).ok();
            in_pool_alloc = false;
            if (ok) {
                for (int i = 0; i < n; ++i) a.tokens.push_back(rnd(0, 2));
            }
            n_pool_evict += int(evicted.size());
        } else if (op == 6 && rnd(0, 1) == 0) {  // fork: pages held by a sequence that locks nothing
            name = "fork";
            const Active & a = active[size_t(rnd(0, int(active.size()) - 1))];
            active.push_back(Active{a.tokens, tables.fork(a.seq)});
        } else if (op <= 7) {  // release
            name = "release";
            release(size_t(rnd(0, int(active.size()) - 1)));
        } else if (op == 8) {  // evict through the tree
            name = "evict";
            const int want = rnd(1, 6);
            const int can = cache.n_evictable_pages();
            const int got = cache.evict(want);
            QCOMPARE(got, int(evicted.size()));
            QVERIFY(got >= std::min(want, can));
            std::vector<uint64_t> ev_last;
            for (PageId p : evicted) {
                for (const auto & [k, e] : model) {
                    if (e.page == p) ev_last.push_back(e.last);
                }
            }
            n_tree_evict += got;
            apply_evictions(name);
            // LRU: nothing left that was evictable is older than what went.
            const auto left = evictable_leaves();
            if (!ev_last.empty() && !left.empty()) {
                QVERIFY2(*std::max_element(ev_last.begin(), ev_last.end()) <= *std::min_element(left.begin(), left.end()),
                         ("evict at step " + std::to_string(step) + ": evicted a newer leaf than one left").c_str());
            }
            evicted.clear();
        } else {  // plain match (touches, may split)
            name = "match";
            const Tokens q = random_tokens();
            const size_t k = brute_match(q);
            ++clock;
            QCOMPARE(cache.match_prefix(q).n_tokens, int(k * ps));
            touch(q, k);
        }
        if (!evicted.empty()) apply_evictions(name);
        check(name, step);
        if (QTest::currentTestFailed()) {
            qWarning("%s", cache.dump().c_str());
            return;
        }
    }
    while (!active.empty()) release(active.size() - 1);
    evicted.clear();
    cache.evict(INT_MAX);
    apply_evictions("final");
    check("final", -1);
    QVERIFY(model.empty());
    QCOMPARE(cache.stats().n_nodes, 0);
    QCOMPARE(pool.stats().free, n_pages);  // no leak
    qDebug("hits %d, duplicates %d, tree evictions %d, pool evictions %d", n_hits, n_dups, n_tree_evict, n_pool_evict);
    QVERIFY(n_hits > 50);
    QVERIFY(n_dups > 0);
    QVERIFY(n_tree_evict > 20);
    QVERIFY(n_pool_evict > 20);
}

QTEST_APPLESS_MAIN(TstRadixCache)
#include "tst_radix_cache.moc"
