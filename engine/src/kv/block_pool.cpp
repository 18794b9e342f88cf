// Block pool: ref counts, the eviction-ordered free list and the page hash map.
#include "glassbox/kv/block_pool.h"

#include <cassert>

namespace gb::kv {

namespace {

// splitmix64 finaliser: cheap and well mixed.
uint64_t mix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

}  // namespace

uint64_t page_hash(uint64_t parent_hash, const Token * tokens, int32_t n_tokens) {
    uint64_t h = mix64(parent_hash ^ 0x5bd1e995ull);
    for (int32_t i = 0; i < n_tokens; ++i) h = mix64(h ^ static_cast<uint32_t>(tokens[i]));
    return mix64(h ^ static_cast<uint64_t>(n_tokens));
}

BlockPool::BlockPool(int32_t n_pages, int32_t page_size) : m_pages(static_cast<size_t>(n_pages)), m_page_size(page_size) {
    assert(n_pages > 0 && page_size > 0);
    for (PageId p = 0; p < n_pages; ++p) list_push_back(p);
}

void BlockPool::list_remove(PageId page) {
    Page & pg = m_pages[size_t(page)];
    if (pg.prev != k_no_page) m_pages[size_t(pg.prev)].next = pg.next; else m_head = pg.next;
    if (pg.next != k_no_page) m_pages[size_t(pg.next)].prev = pg.prev; else m_tail = pg.prev;
    pg.prev = pg.next = k_no_page;
    --m_n_on_list;
}

void BlockPool::list_push_front(PageId page) {
    Page & pg = m_pages[size_t(page)];
    pg.prev = k_no_page;
    pg.next = m_head;
    if (m_head != k_no_page) m_pages[size_t(m_head)].prev = page; else m_tail = page;
    m_head = page;
    ++m_n_on_list;
}

void BlockPool::list_push_back(PageId page) {
    Page & pg = m_pages[size_t(page)];
    pg.next = k_no_page;
    pg.prev = m_tail;
    if (m_tail != k_no_page) m_pages[size_t(m_tail)].next = page; else m_head = page;
    m_tail = page;
    ++m_n_on_list;
}

void BlockPool::forget_hash(PageId page) {
    Page & pg = m_pages[size_t(page)];
    if (!pg.hashed) return;
    auto it = m_by_hash.find(pg.hash);
    if (it != m_by_hash.end() && it->second == page) m_by_hash.erase(it);
    pg.hashed = false;
    pg.hash = 0;
}

Result<std::vector<PageId>> BlockPool::allocate(int32_t n) {
    assert(n >= 0);
    if (n > m_n_on_list) {
        return make_error(ErrorCode::OutOfMemory, "KV cache: need " + std::to_string(n) + " pages, only " +
                                                      std::to_string(m_n_on_list) + " of " +
                                                      std::to_string(n_pages()) + " are free or evictable");
    }
    std::vector<PageId> out;
    out.reserve(size_t(n));
    for (int32_t i = 0; i < n; ++i) {
        const PageId p = m_head;
        assert(p != k_no_page);
        Page & pg = m_pages[size_t(p)];
        // NOTE: pages on the list have ref 0.
        assert(pg.ref == 0);
        if (pg.hashed) {
            // Tell the index before the page changes hands, so it never maps to reused storage.
            if (m_evict_hook) m_evict_hook(p);
            forget_hash(p);
            ++m_evictions;
        }
        list_remove(p);
        pg.ref = 1;
        out.push_back(p);
    }
    return out;
}

void BlockPool::ref(PageId page) {
    assert(page >= 0 && page < n_pages());
    Page & pg = m_pages[size_t(page)];
    if (pg.ref == 0) list_remove(page);
    ++pg.ref;
}

void BlockPool::unref(PageId page) {
    assert(page >= 0 && page < n_pages());
    Page & pg = m_pages[size_t(page)];
    // NOTE: unref of a page nobody holds is a caller bug (double free).
    assert(pg.ref > 0);
    if (--pg.ref > 0) return;
    if (pg.hashed) list_push_back(page);   // keep the content, most recently used last
    else list_push_front(page);            // nothing worth keeping: hand it out first
}

int32_t BlockPool::ref_count(PageId page) const {
    assert(page >= 0 && page < n_pages());
    return m_pages[size_t(page)].ref;
}

void BlockPool::set_hash(PageId page, uint64_t hash) {
    assert(page >= 0 && page < n_pages());
    Page & pg = m_pages[size_t(page)];
    // NOTE: only held pages get content; a page on the list keeps its place.
    assert(pg.ref > 0);
    forget_hash(page);
    pg.hashed = true;
    pg.hash = hash;
    m_by_hash.emplace(hash, page);  // first page with a hash wins; duplicates stay unindexed
}

bool BlockPool::has_hash(PageId page) const { return m_pages[size_t(page)].hashed; }
uint64_t BlockPool::hash(PageId page) const { return m_pages[size_t(page)].hash; }

PageId BlockPool::find_cached(uint64_t hash) const {
    auto it = m_by_hash.find(hash);
    return it == m_by_hash.end() ? k_no_page : it->second;
}

void BlockPool::drop_cached(PageId page) {
    // NOTE: only a released page with content can be dropped.
    assert(m_pages[size_t(page)].ref == 0 && m_pages[size_t(page)].hashed);
    forget_hash(page);
    ++m_evictions;
    list_remove(page);
    list_push_front(page);
}

void BlockPool::clear_hash(PageId page) {
    assert(m_pages[size_t(page)].ref > 0);
    forget_hash(page);
}

BlockPoolStats BlockPool::stats() const {
    BlockPoolStats s;
    s.n_pages = n_pages();
    s.evictions = m_evictions;
    for (const Page & pg : m_pages) {
        if (pg.ref > 0) {
            ++s.used;
            if (pg.ref > 1) ++s.shared;
        } else if (pg.hashed) {
            ++s.cached;
        } else {
            ++s.free;
        }
    }
    return s;
}

std::vector<PageId> BlockPool::free_list() const {
    std::vector<PageId> out;
    for (PageId p = m_head; p != k_no_page; p = m_pages[size_t(p)].next) out.push_back(p);
    return out;
}

Status BlockPool::check_invariants() const {
    auto fail = [](std::string msg) { return Status(make_error(ErrorCode::Internal, "BlockPool: " + msg)); };
    std::vector<int> seen(m_pages.size(), 0);
    int32_t n = 0;
    bool in_cached_part = false;
    PageId prev = k_no_page;
    for (PageId p = m_head; p != k_no_page; p = m_pages[size_t(p)].next) {
        if (p < 0 || p >= n_pages()) return fail("bad link to page " + std::to_string(p));
        if (seen[size_t(p)]++) return fail("page " + std::to_string(p) + " twice on the free list");
        const Page & pg = m_pages[size_t(p)];
        if (pg.prev != prev) return fail("broken prev link at page " + std::to_string(p));
        if (pg.ref != 0) return fail("page " + std::to_string(p) + " on the free list with ref " + std::to_string(pg.ref));
        if (pg.hashed) in_cached_part = true;
        else if (in_cached_part) return fail("empty page " + std::to_string(p) + " after a cached page");
        prev = p;
        if (++n > n_pages()) return fail("free list cycle");
    }
    if (prev != m_tail) return fail("tail mismatch");
    if (n != m_n_on_list) return fail("list length " + std::to_string(n) + " != counter " + std::to_string(m_n_on_list));
    for (PageId p = 0; p < n_pages(); ++p) {
        const Page & pg = m_pages[size_t(p)];
        if (pg.ref < 0) return fail("negative ref on page " + std::to_string(p));
        if ((pg.ref == 0) != (seen[size_t(p)] == 1))
            return fail("page " + std::to_string(p) + " ref " + std::to_string(pg.ref) + " but on-list " + std::to_string(seen[size_t(p)]));
    }
    for (const auto & [h, p] : m_by_hash) {
        if (!m_pages[size_t(p)].hashed || m_pages[size_t(p)].hash != h) return fail("hash map entry for page " + std::to_string(p) + " is stale");
    }
    return Status::success();
}

}  // namespace gb::kv
