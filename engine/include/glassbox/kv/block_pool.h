// Block pool of the paged KV cache: which pages exist, who holds them, which
// ones keep reusable prefix content. Metadata only; pages are integer ids and
// the K/V storage behind them belongs to a backend.
#pragma once

#include "glassbox/result.h"

#include <cstdint>
#include <functional>
#include <string>
#include <unordered_map>
#include <vector>

namespace gb {

using Token = int32_t;  // same alias as glassbox/tokenizer.h

namespace kv {

using PageId = int32_t;
constexpr PageId k_no_page = -1;

// Chained content hash of a full page: hash(parent page hash, the page's tokens).
// Two pages with equal hashes hold K/V for the same token prefix (up to collisions,
// which the radix tree guards against by comparing tokens).
uint64_t page_hash(uint64_t parent_hash, const Token * tokens, int32_t n_tokens);
constexpr uint64_t k_root_hash = 0x9e3779b97f4a7c15ull;

struct BlockPoolStats {
    int32_t n_pages  = 0;
    int32_t used     = 0;  // ref count > 0
    int32_t shared   = 0;  // ref count > 1 (subset of used)
    int32_t free     = 0;  // ref count 0, no content worth keeping
    int32_t cached   = 0;  // ref count 0, holds cached prefix content, evictable
    int64_t evictions = 0; // cached pages whose content was dropped, since creation
};

// Fixed number of pages of page_size tokens each.
//
// Page states:   used (ref > 0)  --unref to 0-->  free   (no hash: pushed at the list head)
//                                                 cached (hash:    pushed at the list tail)
// The free list is an intrusive doubly linked list in eviction order: empty pages
// first, then cached pages from least to most recently released. allocate()
// pops from the head, so a cached page is only reused (evicted) when no empty one
// is left. Ref'ing a cached page takes it off the list and keeps its content (a
// prefix-cache hit).
//
// NOTE: a page is either on the free list (ref 0) or held (ref > 0), never both.
// Not thread safe: the scheduler owns it.
class BlockPool {
  public:
    BlockPool(int32_t n_pages, int32_t page_size);

    int32_t n_pages() const { return static_cast<int32_t>(m_pages.size()); }
    int32_t page_size() const { return m_page_size; }
    // Pages allocate() can hand out now: free + cached.
    int32_t n_available() const { return m_n_on_list; }

    // Take n pages off the head of the free list, ref count 1 each. All or nothing:
    // fails with OutOfMemory (nothing changed) when fewer than n are available.
    // Cached pages taken this way are evicted: their hash is dropped and the
    // evict hook is told first.
    Result<std::vector<PageId>> allocate(int32_t n);

    void ref(PageId page);    // ref count +1; a page on the free list leaves it
    void unref(PageId page);  // ref count -1; at 0 the page joins the free list

    int32_t ref_count(PageId page) const;

    // Mark a held full page as holding the prefix with this chained hash. It stays
    // cached (evictable) once its ref count drops to 0.
    void set_hash(PageId page, uint64_t hash);
    bool has_hash(PageId page) const;
    uint64_t hash(PageId page) const;
    // Page holding this hash, or k_no_page.
    PageId find_cached(uint64_t hash) const;
    // Drop the content of a cached page (ref 0): it becomes free (list head).
    // Counted as an eviction; the evict hook is not called (the caller evicts).
    void drop_cached(PageId page);
    // Drop the hash of a held page (e.g. its content is no longer indexed).
    void clear_hash(PageId page);

    // Called with a cached page that allocate() is about to reuse.
    void set_evict_hook(std::function<void(PageId)> hook) { m_evict_hook = std::move(hook); }

    BlockPoolStats stats() const;
    // Pages on the free list, head (next to allocate) first.
    std::vector<PageId> free_list() const;

    // Full consistency check (list links, counts, hash map). For tests and debug.
    Status check_invariants() const;

  private:
    struct Page {
        int32_t  ref = 0;
        bool     hashed = false;
        uint64_t hash = 0;
        PageId   prev = k_no_page;  // free-list links, only while ref == 0
        PageId   next = k_no_page;
    };

    void list_remove(PageId page);
    void list_push_front(PageId page);
    void list_push_back(PageId page);
    void forget_hash(PageId page);

    std::vector<Page> m_pages;
    int32_t m_page_size = 0;
    PageId  m_head = k_no_page;
    PageId  m_tail = k_no_page;
    int32_t m_n_on_list = 0;
    int64_t m_evictions = 0;
    std::unordered_map<uint64_t, PageId> m_by_hash;
    std::function<void(PageId)> m_evict_hook;
};

}  // namespace kv
}  // namespace gb
