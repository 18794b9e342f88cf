// Radix tree prefix cache over BlockPool pages: match, insert, split, lock, evict, dump.
#include "glassbox/kv/radix_cache.h"

#include <algorithm>
#include <cassert>
#include <queue>
#include <sstream>
#include <tuple>

namespace gb::kv {

namespace {

std::vector<Token> first_page(const Token * t, int32_t ps) { return std::vector<Token>(t, t + ps); }

bool page_equal(const Token * a, const Token * b, int32_t ps) { return std::equal(a, a + ps, b); }

// Chained hash of the page that ends the node's parent path (root hash at the root).
uint64_t parent_path_hash(const BlockPool & pool, const RadixNode * node) {
    return node->parent == nullptr || node->parent->pages.empty() ? k_root_hash : pool.hash(node->parent->pages.back());
}

}  // namespace

RadixCache::RadixCache(BlockPool & pool) : m_pool(pool), m_page_size(pool.page_size()), m_root(std::make_unique<RadixNode>()) {
    m_pool.set_evict_hook([this](PageId p) { on_pool_evict(p); });
}

RadixCache::~RadixCache() { m_pool.set_evict_hook({}); }

RadixNode * RadixCache::split(RadixNode * node, int32_t n_pages_keep) {
    // Before: parent -> node[pages 0..n)      After: parent -> top[0..k) -> node[k..n)
    assert(n_pages_keep > 0 && n_pages_keep < static_cast<int32_t>(node->pages.size()));
    const int32_t ps = m_page_size;
    RadixNode * parent = node->parent;
    auto handle = parent->children.extract(first_page(node->tokens.data(), ps));
    assert(!handle.empty());
    std::unique_ptr<RadixNode> owned = std::move(handle.mapped());

    auto top = std::make_unique<RadixNode>();
    top->id = m_next_node_id++;
    top->parent = parent;
    top->tokens.assign(node->tokens.begin(), node->tokens.begin() + n_pages_keep * ps);
    top->pages.assign(node->pages.begin(), node->pages.begin() + n_pages_keep);
    top->lock_ref = node->lock_ref;  // every lock below passes through top
    top->last_access = node->last_access;
    top->depth_tokens = parent->depth_tokens + uint64_t(n_pages_keep) * uint64_t(ps);
    for (PageId p : top->pages) m_page_owner[p] = top.get();

    node->tokens.erase(node->tokens.begin(), node->tokens.begin() + n_pages_keep * ps);
    node->pages.erase(node->pages.begin(), node->pages.begin() + n_pages_keep);
    node->parent = top.get();
    RadixNode * top_raw = top.get();
    top->children.emplace(first_page(node->tokens.data(), ps), std::move(owned));
    parent->children.emplace(first_page(top_raw->tokens.data(), ps), std::move(top));
    return top_raw;
}

PrefixMatch RadixCache::match_prefix(std::span<const Token> tokens) {
    const int32_t ps = m_page_size;
    const uint64_t now = tick();
    PrefixMatch m;
    RadixNode * node = m_root.get();
    node->last_access = now;
    size_t pos = 0;
    while (tokens.size() - pos >= size_t(ps)) {
        auto it = node->children.find(first_page(tokens.data() + pos, ps));
        if (it == node->children.end()) break;
        RadixNode * child = it->second.get();
        const int32_t n_child = static_cast<int32_t>(child->pages.size());
        int32_t k = 1;
        while (k < n_child && tokens.size() - pos >= size_t(k + 1) * size_t(ps) &&
               page_equal(tokens.data() + pos + size_t(k) * size_t(ps), child->tokens.data() + size_t(k) * size_t(ps), ps)) {
            ++k;
        }
        if (k < n_child) child = split(child, k);
        child->last_access = now;
        m.pages.insert(m.pages.end(), child->pages.begin(), child->pages.end());
        pos += size_t(k) * size_t(ps);
        node = child;
        if (k < n_child) break;
    }
    m.n_tokens = static_cast<int32_t>(pos);
    m.node = node;
    return m;
}

InsertResult RadixCache::insert(std::span<const Token> tokens, std::span<const PageId> pages) {
    const int32_t ps = m_page_size;
    // NOTE: the tree indexes whole pages only.
    assert(tokens.size() == pages.size() * size_t(ps));
    const uint64_t now = tick();
    InsertResult r;
    RadixNode * node = m_root.get();
    node->last_access = now;
    const int32_t n = static_cast<int32_t>(pages.size());
    int32_t pi = 0;
    while (pi < n) {
        const Token * at = tokens.data() + size_t(pi) * size_t(ps);
        auto it = node->children.find(first_page(at, ps));
        if (it == node->children.end()) {
            auto fresh = std::make_unique<RadixNode>();
            fresh->id = m_next_node_id++;
            fresh->parent = node;
            fresh->tokens.assign(at, tokens.data() + tokens.size());
            fresh->pages.assign(pages.begin() + pi, pages.end());
            fresh->last_access = now;
            fresh->depth_tokens = node->depth_tokens + fresh->tokens.size();
            uint64_t h = parent_path_hash(m_pool, fresh.get());
            for (size_t i = 0; i < fresh->pages.size(); ++i) {
                const PageId p = fresh->pages[i];
                // NOTE: a page holds one prefix; it cannot be indexed twice.
                assert(m_page_owner.count(p) == 0);
                h = page_hash(h, fresh->tokens.data() + i * size_t(ps), ps);
                m_pool.set_hash(p, h);
                m_page_owner[p] = fresh.get();
            }
            r.n_new_pages = n - pi;
            RadixNode * raw = fresh.get();
            node->children.emplace(first_page(at, ps), std::move(fresh));
            node = raw;
            break;
        }
        RadixNode * child = it->second.get();
        const int32_t n_child = static_cast<int32_t>(child->pages.size());
        int32_t k = 1;
        while (k < n_child && pi + k < n &&
               page_equal(at + size_t(k) * size_t(ps), child->tokens.data() + size_t(k) * size_t(ps), ps)) {
            ++k;
        }
        if (k < n_child) child = split(child, k);
        for (int32_t i = 0; i < k; ++i) {
            if (child->pages[size_t(i)] != pages[size_t(pi + i)]) r.duplicates.push_back({pi + i, child->pages[size_t(i)]});
        }
        child->last_access = now;
        node = child;
        pi += k;
    }
    r.node = node;
    return r;
}

void RadixCache::lock(RadixNode * node) {
    assert(node != nullptr);
    ++node->direct_locks;
    for (RadixNode * n = node; n != nullptr; n = n->parent) ++n->lock_ref;
}

void RadixCache::unlock(RadixNode * node) {
    assert(node != nullptr && node->direct_locks > 0);
    --node->direct_locks;
    for (RadixNode * n = node; n != nullptr; n = n->parent) {
        assert(n->lock_ref > 0);
        --n->lock_ref;
    }
}

void RadixCache::remove_leaf(RadixNode * node) {
    assert(node != m_root.get() && node->children.empty() && node->lock_ref == 0);
    for (PageId p : node->pages) m_page_owner.erase(p);
    RadixNode * parent = node->parent;
    const size_t erased = parent->children.erase(first_page(node->tokens.data(), m_page_size));
    assert(erased == 1);
    (void)erased;
}

int32_t RadixCache::evict(int32_t n_pages) {
    auto evictable_leaf = [&](const RadixNode * n) {
        if (n == m_root.get() || !n->children.empty() || n->lock_ref != 0) return false;
        for (PageId p : n->pages) {
            if (m_pool.ref_count(p) != 0) return false;
        }
        return true;
    };
    using Entry = std::tuple<uint64_t, int64_t, RadixNode *>;  // (last access, id, node): oldest first
    std::priority_queue<Entry, std::vector<Entry>, std::greater<>> heap;
    std::vector<RadixNode *> stack{m_root.get()};
    while (!stack.empty()) {
        RadixNode * n = stack.back();
        stack.pop_back();
        for (auto & [k, c] : n->children) stack.push_back(c.get());
        if (evictable_leaf(n)) heap.emplace(n->last_access, n->id, n);
    }
    int32_t freed = 0;
    while (freed < n_pages && !heap.empty()) {
        RadixNode * n = std::get<2>(heap.top());
        heap.pop();
        RadixNode * parent = n->parent;
        const std::vector<PageId> pages = n->pages;
        remove_leaf(n);  // n is gone from here on
        // Deepest page first, like a sequence releasing its table.
        for (auto it = pages.rbegin(); it != pages.rend(); ++it) {
            m_pool.drop_cached(*it);
            ++m_evicted;
            ++freed;
            if (m_listener) m_listener(*it);
        }
        if (evictable_leaf(parent)) heap.emplace(parent->last_access, parent->id, parent);
    }
    return freed;
}

int32_t RadixCache::n_evictable_pages() const {
    // A subtree can be emptied when nothing in it is locked or held.
    std::function<bool(const RadixNode *, int32_t &)> walk = [&](const RadixNode * n, int32_t & count) {
        bool all = true;
        for (const auto & [k, c] : n->children) all = walk(c.get(), count) && all;
        if (n == m_root.get() || n->lock_ref != 0) return false;
        for (PageId p : n->pages) {
            if (m_pool.ref_count(p) != 0) return false;
        }
        if (all) count += static_cast<int32_t>(n->pages.size());
        return all;
    };
    int32_t count = 0;
    walk(m_root.get(), count);
    return count;
}

void RadixCache::drop_subtree_pages(RadixNode * node, size_t from) {
    // Pages below an evicted page lose their prefix: unheld ones become free
    // pages, held ones stay with their holders but are no longer cached content.
    // NOTE: nothing below an evicted (unheld) page is locked: a lock holds its path.
    assert(node->lock_ref == 0);
    for (auto & [k, c] : node->children) drop_subtree_pages(c.get(), 0);
    for (size_t i = from; i < node->pages.size(); ++i) {
        const PageId p = node->pages[i];
        m_page_owner.erase(p);
        if (m_pool.ref_count(p) == 0) m_pool.drop_cached(p);
        else m_pool.clear_hash(p);
        ++m_evicted;
        if (m_listener) m_listener(p);
    }
}

void RadixCache::on_pool_evict(PageId page) {
    auto it = m_page_owner.find(page);
    if (it == m_page_owner.end()) return;
    RadixNode * node = it->second;
    // Usually the last page of an unlocked leaf: the pool hands out cached pages
    // deepest first, because a table releases its last page first and whoever
    // holds a page holds its whole path. A table that shares pages with a fork
    // that swapped a duplicate for a cached page can break that, so a page in the
    // middle is handled too: everything below it leaves the tree.
    // NOTE: a locked path is held, so the pool never takes a locked page.
    assert(node->lock_ref == 0);
    const size_t index = size_t(std::find(node->pages.begin(), node->pages.end(), page) - node->pages.begin());
    assert(index < node->pages.size());
    for (auto & [k, c] : node->children) drop_subtree_pages(c.get(), 0);
    node->children.clear();
    drop_subtree_pages(node, index + 1);
    m_page_owner.erase(page);  // the pool drops its hash after this hook returns
    ++m_evicted;
    if (m_listener) m_listener(page);
    if (index == 0) {
        node->pages.clear();  // owners already gone; tokens still name the node for its parent
        remove_leaf(node);
        return;
    }
    node->pages.resize(index);
    node->tokens.resize(index * size_t(m_page_size));
    node->depth_tokens = node->parent->depth_tokens + node->tokens.size();
}

RadixStats RadixCache::stats() const {
    RadixStats s;
    s.n_pages = static_cast<int32_t>(m_page_owner.size());
    s.n_evicted_pages = m_evicted;
    std::vector<const RadixNode *> stack{m_root.get()};
    while (!stack.empty()) {
        const RadixNode * n = stack.back();
        stack.pop_back();
        for (const auto & [k, c] : n->children) stack.push_back(c.get());
        if (n != m_root.get()) ++s.n_nodes;
    }
    return s;
}

std::string RadixCache::dump() const {
    std::ostringstream os;
    std::function<void(const RadixNode *, int)> walk = [&](const RadixNode * n, int indent) {
        os << std::string(size_t(indent) * 2, ' ');
        if (n == m_root.get()) {
            os << "root lock=" << n->lock_ref << " last=" << n->last_access << '\n';
        } else {
            os << "node#" << n->id << " tokens=" << n->tokens.size() << " depth=" << n->depth_tokens
               << " lock=" << n->lock_ref << " last=" << n->last_access << " pages=[";
            for (size_t i = 0; i < n->pages.size(); ++i) os << (i ? "," : "") << n->pages[i];
            os << "] key=[";
            const size_t show = std::min<size_t>(n->tokens.size(), 8);
            for (size_t i = 0; i < show; ++i) os << (i ? " " : "") << n->tokens[i];
            os << (show < n->tokens.size() ? " ...]" : "]") << '\n';
        }
        for (const auto & [k, c] : n->children) walk(c.get(), indent + 1);
    };
    walk(m_root.get(), 0);
    return os.str();
}

Status RadixCache::check_invariants() const {
    const int32_t ps = m_page_size;
    std::string err;
    auto fail = [&](const RadixNode * n, const std::string & msg) {
        if (err.empty()) err = "RadixCache: node#" + std::to_string(n->id) + ": " + msg;
    };
    size_t n_pages_seen = 0;
    std::function<int32_t(const RadixNode *)> walk = [&](const RadixNode * n) -> int32_t {
        int32_t child_locks = 0;
        for (const auto & [key, c] : n->children) {
            if (c->parent != n) fail(c.get(), "wrong parent");
            if (c->pages.empty()) fail(c.get(), "no pages");
            if (c->tokens.size() != c->pages.size() * size_t(ps)) fail(c.get(), "tokens/pages size mismatch");
            if (c->tokens.size() >= size_t(ps) && key != first_page(c->tokens.data(), ps)) fail(c.get(), "child key != first page");
            if (c->depth_tokens != n->depth_tokens + c->tokens.size()) fail(c.get(), "depth");
            if (n != m_root.get() && c->last_access > n->last_access) fail(c.get(), "newer than its parent");
            child_locks += walk(c.get());
        }
        if (n->lock_ref != n->direct_locks + child_locks) fail(n, "lock_ref != own + children locks");
        if (n->direct_locks < 0) fail(n, "negative locks");
        if (n != m_root.get()) {
            uint64_t h = parent_path_hash(m_pool, n);
            for (size_t i = 0; i < n->pages.size(); ++i) {
                const PageId p = n->pages[i];
                ++n_pages_seen;
                auto it = m_page_owner.find(p);
                if (it == m_page_owner.end() || it->second != n) fail(n, "page " + std::to_string(p) + " owner map");
                h = page_hash(h, n->tokens.data() + i * size_t(ps), ps);
                if (!m_pool.has_hash(p) || m_pool.hash(p) != h) fail(n, "page " + std::to_string(p) + " hash differs from its path");
                if (n->lock_ref > 0 && m_pool.ref_count(p) == 0) fail(n, "locked but page " + std::to_string(p) + " unheld");
            }
        }
        return n->lock_ref;
    };
    walk(m_root.get());
    if (err.empty() && n_pages_seen != m_page_owner.size()) err = "RadixCache: owner map has pages not in the tree";
    if (err.empty()) {
        for (PageId p = 0; p < m_pool.n_pages(); ++p) {
            if (m_pool.has_hash(p) && m_page_owner.count(p) == 0) {
                err = "RadixCache: pool page " + std::to_string(p) + " has a hash but is not in the tree";
                break;
            }
        }
    }
    if (!err.empty()) return make_error(ErrorCode::Internal, err);
    return Status::success();
}

}  // namespace gb::kv
