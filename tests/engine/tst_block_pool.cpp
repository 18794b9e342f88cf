// Block pool and page tables: free-list order, eviction, copy-on-write, and a
// random-operation property test against a brute-force model with a simulated
// K/V storage (each slot holds the token value written there).
#include "glassbox/kv/block_pool.h"
#include "glassbox/kv/page_table.h"

#include <QtTest>
#include <map>
#include <random>
#include <set>

using namespace gb::kv;

class TstBlockPool : public QObject {
    Q_OBJECT
  private slots:
    void allocateAllOrNothing();
    void freeListOrder();
    void cachedPagesEvictedLast();
    void copyOnWrite();
    void pageHashChains();
    void property_data();
    void property();
};

void TstBlockPool::allocateAllOrNothing() {
    BlockPool pool(4, 8);
    auto a = pool.allocate(3);
    QVERIFY(a.ok());
    QCOMPARE(int(a->size()), 3);
    auto b = pool.allocate(2);
    QVERIFY(!b.ok());
    QCOMPARE(b.error().code, gb::ErrorCode::OutOfMemory);
    QVERIFY(b.error().message.find("need 2 pages, only 1") != std::string::npos);
    QCOMPARE(pool.stats().used, 3);  // nothing taken by the failed call
    QCOMPARE(pool.stats().free, 1);
    QVERIFY(pool.check_invariants().ok());
}

void TstBlockPool::freeListOrder() {
    BlockPool pool(3, 4);
    auto a = pool.allocate(3).value();
    pool.set_hash(a[0], 100);
    pool.set_hash(a[2], 102);
    pool.unref(a[0]);  // cached -> tail
    pool.unref(a[1]);  // empty  -> head
    pool.unref(a[2]);  // cached -> tail
    QCOMPARE(pool.free_list(), (std::vector<PageId>{a[1], a[0], a[2]}));
    const auto s = pool.stats();
    QCOMPARE(s.free, 1);
    QCOMPARE(s.cached, 2);
    QCOMPARE(pool.find_cached(102), a[2]);
    // Re-using a cached page (prefix hit) takes it off the list, content kept.
    pool.ref(a[0]);
    QCOMPARE(pool.free_list(), (std::vector<PageId>{a[1], a[2]}));
    QVERIFY(pool.has_hash(a[0]));
    pool.ref(a[0]);
    QCOMPARE(pool.stats().shared, 1);
    QVERIFY(pool.check_invariants().ok());
}

void TstBlockPool::cachedPagesEvictedLast() {
    BlockPool pool(4, 2);
    std::vector<PageId> evicted;
    pool.set_evict_hook([&](PageId p) { evicted.push_back(p); });
    auto a = pool.allocate(4).value();
    for (int i = 0; i < 3; ++i) pool.set_hash(a[size_t(i)], 10 + uint64_t(i));
    pool.unref(a[1]);
    pool.unref(a[0]);
    pool.unref(a[2]);
    pool.unref(a[3]);  // empty
    auto b = pool.allocate(2).value();
    QCOMPARE(b, (std::vector<PageId>{a[3], a[1]}));  // empty first, then least recently released
    QCOMPARE(evicted, (std::vector<PageId>{a[1]}));
    QVERIFY(!pool.has_hash(a[1]));
    QCOMPARE(pool.find_cached(11), k_no_page);
    QCOMPARE(pool.stats().evictions, int64_t(1));
    QVERIFY(pool.check_invariants().ok());
}

void TstBlockPool::copyOnWrite() {
    BlockPool pool(8, 4);
    PageTables t(pool);
    const SeqId a = t.create();
    QVERIFY(t.append(a, 6).ok());  // pages: full, 2/4
    const SeqId b = t.fork(a);
    QCOMPARE(pool.ref_count(t.pages(a)[1]), 2);
    auto r = t.append(b, 1);
    QVERIFY(r.ok());
    QCOMPARE(int(r->copies.size()), 1);
    QCOMPARE(r->copies[0].src, t.pages(a)[1]);
    QCOMPARE(r->copies[0].dst, t.pages(b)[1]);
    QCOMPARE(r->copies[0].n_tokens, 2);
    QCOMPARE(r->first_pos, 6);
    QVERIFY(t.pages(a)[1] != t.pages(b)[1]);
    QCOMPARE(t.pages(a)[0], t.pages(b)[0]);  // full page still shared
    QCOMPARE(pool.ref_count(t.pages(a)[1]), 1);
    // Now private: no second copy.
    QVERIFY(t.append(b, 1)->copies.empty());
    // Appending to a shared page that is full needs no copy either.
    const SeqId c = t.fork(b);  // b has 8 tokens = 2 full pages
    QVERIFY(t.append(c, 3)->copies.empty());
    t.free(a);
    t.free(b);
    t.free(c);
    QCOMPARE(pool.stats().used, 0);
    QVERIFY(pool.check_invariants().ok());
}

void TstBlockPool::pageHashChains() {
    const std::vector<gb::Token> x{1, 2, 3, 4}, y{1, 2, 3, 5};
    const uint64_t hx = page_hash(k_root_hash, x.data(), 4);
    QVERIFY(hx != page_hash(k_root_hash, y.data(), 4));
    QVERIFY(page_hash(hx, x.data(), 4) != hx);                             // depends on the parent
    QVERIFY(page_hash(hx, x.data(), 4) != page_hash(page_hash(k_root_hash, y.data(), 4), x.data(), 4));
    QCOMPARE(page_hash(hx, x.data(), 4), page_hash(hx, x.data(), 4));
}

void TstBlockPool::property_data() {
    QTest::addColumn<uint32_t>("seed");
    QTest::addColumn<int>("page_size");
    QTest::addColumn<int>("n_pages");
    QTest::newRow("ps1") << 1u << 1 << 24;
    QTest::newRow("ps3") << 2u << 3 << 16;
    QTest::newRow("ps4") << 3u << 4 << 20;
    QTest::newRow("ps16-tight") << 4u << 16 << 6;
}

// Random allocate / append / fork / free / hash sequences against a model that
// only knows each sequence's token values. Storage is simulated: a page slot
// holds the value last written there, so a missing or wrong copy-on-write, a page
// handed out twice or freed too early shows up as a wrong value read back.
void TstBlockPool::property() {
    QFETCH(uint32_t, seed);
    QFETCH(int, page_size);
    QFETCH(int, n_pages);
    std::mt19937 rng(seed);
    auto rnd = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };

    BlockPool pool(n_pages, page_size);
    std::set<PageId> evicted_now;
    pool.set_evict_hook([&](PageId p) { evicted_now.insert(p); });
    PageTables tables(pool);
    std::vector<std::vector<int>> storage(size_t(n_pages), std::vector<int>(size_t(page_size), -1));
    std::map<SeqId, std::vector<int>> model;  // sequence -> token values
    int next_value = 0;
    int n_oom = 0, n_cow = 0, n_evict = 0;

    auto holders = [&]() {
        std::vector<int> h(static_cast<size_t>(n_pages), 0);
        for (const auto & [s, v] : model) {
            for (PageId p : tables.pages(s)) ++h[size_t(p)];
        }
        return h;
    };
    auto check = [&](const char * op, int step) {
        const std::string where = std::string(op) + " at step " + std::to_string(step);
        const auto st = pool.check_invariants();
        QVERIFY2(st.ok(), (where + ": " + (st.ok() ? "" : st.error().message)).c_str());
        const auto h = holders();
        int used = 0, shared = 0;
        for (PageId p = 0; p < n_pages; ++p) {
            QVERIFY2(pool.ref_count(p) == h[size_t(p)], (where + ": ref count != holders, page " + std::to_string(p)).c_str());
            used += h[size_t(p)] > 0;
            shared += h[size_t(p)] > 1;
        }
        const auto s = pool.stats();
        QCOMPARE(s.used, used);
        QCOMPARE(s.shared, shared);
        QCOMPARE(s.used + s.free + s.cached, n_pages);
        QCOMPARE(int(tables.n_seqs()), int(model.size()));
        for (const auto & [sid, vals] : model) {
            QCOMPARE(tables.n_tokens(sid), int(vals.size()));
            const auto pages = tables.pages(sid);
            QCOMPARE(int(pages.size()), (int(vals.size()) + page_size - 1) / page_size);
            for (size_t t = 0; t < vals.size(); ++t) {
                const int got = storage[size_t(pages[t / size_t(page_size)])][t % size_t(page_size)];
                QVERIFY2(got == vals[t], (where + ": seq " + std::to_string(sid) + " pos " + std::to_string(t) + " reads " +
                                          std::to_string(got) + ", expected " + std::to_string(vals[t])).c_str());
            }
        }
    };

    for (int step = 0; step < 4000; ++step) {
        int op = model.empty() ? 0 : rnd(0, 9);
        if (pool.n_available() < n_pages / 3 && rnd(0, 1) == 0) op = 9;  // keep the pool from staying full
        if (op <= 1 || model.empty()) {  // create
            const SeqId s = tables.create();
            model[s];
            check("create", step);
            continue;
        }
        auto it = model.begin();
        std::advance(it, rnd(0, int(model.size()) - 1));
        const SeqId s = it->first;
        if (op <= 5) {  // append (ops 2..5)
            const int n = rnd(0, 1) ? rnd(0, page_size + 1) : rnd(0, 3 * page_size);
            // Model: pages needed, COW when the partly filled last page has other holders.
            const int len = int(it->second.size());
            const int have = (len + page_size - 1) / page_size;
            const auto h = holders();
            const bool cow = n > 0 && len % page_size != 0 && h[size_t(tables.pages(s).back())] > 1;
            const int need = (len + n + page_size - 1) / page_size - have + (cow ? 1 : 0);
            int available = 0;
            for (int x : h) available += x == 0;
            QCOMPARE(tables.pages_needed(s, n), need);
            evicted_now.clear();
            const std::vector<PageId> before(tables.pages(s).begin(), tables.pages(s).end());
            auto r = tables.append(s, n);
            if (need > available) {
                QVERIFY(!r.ok());
                QCOMPARE(r.error().code, gb::ErrorCode::OutOfMemory);
                ++n_oom;
                check("append-oom", step);
                continue;
            }
            QVERIFY(r.ok());
            QCOMPARE(r->first_pos, len);
            QCOMPARE(int(r->copies.size()), cow ? 1 : 0);
            for (PageId p : evicted_now) QCOMPARE(h[size_t(p)], 0);  // only unheld cached pages are evicted
            n_evict += int(evicted_now.size());
            for (const PageCopy & c : r->copies) {
                QCOMPARE(c.src, before.back());
                QCOMPARE(c.n_tokens, len % page_size);
                for (int i = 0; i < c.n_tokens; ++i) storage[size_t(c.dst)][size_t(i)] = storage[size_t(c.src)][size_t(i)];
                ++n_cow;
            }
            const auto pages = tables.pages(s);
            for (int i = 0; i < n; ++i) {
                const int pos = len + i;
                storage[size_t(pages[size_t(pos / page_size)])][size_t(pos % page_size)] = next_value;
                it->second.push_back(next_value++);
            }
            check("append", step);
        } else if (op == 6 || op == 7) {  // fork
            const SeqId f = tables.fork(s);
            model[f] = it->second;
            check("fork", step);
        } else if (op == 8) {  // mark a full page as cached content
            const int n_full = int(it->second.size()) / page_size;
            if (n_full > 0) pool.set_hash(tables.pages(s)[size_t(rnd(0, n_full - 1))], uint64_t(rng()));
            check("hash", step);
        } else {  // free
            tables.free(s);
            model.erase(it);
            check("free", step);
        }
        if (QTest::currentTestFailed()) return;
    }
    while (!model.empty()) {
        tables.free(model.begin()->first);
        model.erase(model.begin());
    }
    check("final", -1);
    QCOMPARE(pool.stats().used, 0);
    QCOMPARE(pool.n_available(), n_pages);  // no leak
    qDebug("cow %d, oom %d, evictions %d", n_cow, n_oom, n_evict);
    // The random walk really exercised the interesting paths.
    QVERIFY(page_size == 1 || n_cow > 10);
    QVERIFY(n_oom > 0);
    QVERIFY(n_evict > 0);
}

QTEST_APPLESS_MAIN(TstBlockPool)
#include "tst_block_pool.moc"
