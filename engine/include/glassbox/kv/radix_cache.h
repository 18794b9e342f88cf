// Prefix cache: a radix tree over token sequences whose edges are whole pages of
// the BlockPool. match_prefix finds the longest cached page-aligned prefix,
// insert adds the full pages a sequence computed, lock pins a path while it is
// in use, evict drops least recently used unlocked leaves.
#pragma once

#include "glassbox/kv/block_pool.h"

#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace gb::kv {

// A node of the tree. Its key is tokens.size() == pages.size() * page_size
// tokens following the parent's path; pages[i] holds K/V for the i-th page of it.
struct RadixNode {
    int64_t id = 0;
    RadixNode * parent = nullptr;
    std::vector<Token> tokens;
    std::vector<PageId> pages;
    // Children keyed by their first page of tokens.
    std::map<std::vector<Token>, std::unique_ptr<RadixNode>> children;
    int32_t lock_ref = 0;     // locks on this node or any descendant (propagated to the root)
    int32_t direct_locks = 0; // locks taken on this very node
    uint64_t last_access = 0; // logical clock, larger = more recent
    uint64_t depth_tokens = 0;// tokens on the path from the root to the end of this node
};

struct PrefixMatch {
    std::vector<PageId> pages;     // cached pages of the prefix, in order
    int32_t n_tokens = 0;          // pages.size() * page_size
    RadixNode * node = nullptr;    // deepest node of the match (root if none); lock it while using pages
};

struct InsertResult {
    RadixNode * node = nullptr;    // node ending exactly at the inserted length
    int32_t n_new_pages = 0;       // pages newly indexed
    // Positions where the tree already had another page for the same content:
    // the caller should swap its page index i for page (PageTables::replace_page).
    struct Dup { int32_t index; PageId cached; };
    std::vector<Dup> duplicates;
};

struct RadixStats {
    int32_t n_nodes = 0;           // without the root
    int32_t n_pages = 0;
    int64_t n_evicted_pages = 0;   // since creation (tree-driven and pool-driven)
};

class RadixCache {
  public:
    // Installs itself as the pool's evict hook: a cached page reused by
    // BlockPool::allocate leaves the tree first.
    explicit RadixCache(BlockPool & pool);
    ~RadixCache();
    RadixCache(const RadixCache &) = delete;
    RadixCache & operator=(const RadixCache &) = delete;

    int32_t page_size() const { return m_page_size; }

    // Longest cached prefix of tokens, page aligned. Splits a node when the
    // match ends inside it; refreshes last access along the path. Takes no refs:
    // ref the pages (and lock the node) before anything can allocate.
    PrefixMatch match_prefix(std::span<const Token> tokens);

    // Index the full pages of a sequence: tokens.size() must be
    // pages.size() * page_size. The caller holds a ref on every page; newly
    // indexed pages get their chained hash in the pool (and so stay cached when
    // released).
    InsertResult insert(std::span<const Token> tokens, std::span<const PageId> pages);

    // NOTE: lock while the node's path is in use; locked nodes are never evicted.
    void lock(RadixNode * node);
    void unlock(RadixNode * node);

    // Evict least recently used unlocked leaves whose pages nobody holds until at
    // least n_pages pages were freed (or nothing evictable is left). Returns the
    // number of pages freed (they become free pages of the pool).
    int32_t evict(int32_t n_pages);
    // Pages evict() could free now.
    int32_t n_evictable_pages() const;

    // Told of every page that leaves the tree by eviction (for metrics, tests).
    void set_evict_listener(std::function<void(PageId)> listener) { m_listener = std::move(listener); }

    const RadixNode & root() const { return *m_root; }
    RadixStats stats() const;
    // Tree as indented text: per node its token count, lock count, last access,
    // page ids and the first tokens.
    std::string dump() const;
    // Structure, lock counts, page ownership and hashes against the pool.
    Status check_invariants() const;

  private:
    RadixNode * split(RadixNode * node, int32_t n_pages_keep);
    void on_pool_evict(PageId page);
    void drop_subtree_pages(RadixNode * node, size_t from);
    void remove_leaf(RadixNode * node);
    uint64_t tick() { return ++m_clock; }

    BlockPool & m_pool;
    int32_t m_page_size = 0;
    std::unique_ptr<RadixNode> m_root;
    std::map<PageId, RadixNode *> m_page_owner;
    std::function<void(PageId)> m_listener;
    uint64_t m_clock = 0;
    int64_t m_next_node_id = 1;
    int64_t m_evicted = 0;
};

}  // namespace gb::kv
