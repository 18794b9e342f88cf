// Per-sequence page tables of the paged KV cache: token position -> (page, slot).
// Appending allocates pages from the BlockPool; fork shares them; appending to a
// shared, partly filled page copies it first (copy-on-write) and reports the copy.
#pragma once

#include "glassbox/kv/block_pool.h"

#include <map>
#include <span>
#include <vector>

namespace gb::kv {

using SeqId = int64_t;

// A page copy the storage must perform before the step's forward pass:
// the first n_tokens slots of page src go to page dst.
struct PageCopy {
    PageId  src = k_no_page;
    PageId  dst = k_no_page;
    int32_t n_tokens = 0;
    bool operator==(const PageCopy &) const = default;
};

struct AppendResult {
    int32_t first_pos = 0;            // position of the first appended token
    std::vector<PageId> new_pages;    // pages allocated for the append (COW targets included)
    std::vector<PageCopy> copies;     // copy-on-write, to do before writing K/V
};

// Token at position t of a sequence lives in page pages[t / page_size], slot
// t % page_size. The table holds one ref on each of its pages.
class PageTables {
  public:
    explicit PageTables(BlockPool & pool) : m_pool(pool) {}
    ~PageTables();
    PageTables(const PageTables &) = delete;
    PageTables & operator=(const PageTables &) = delete;

    // New empty sequence.
    SeqId create();
    // New sequence starting with full pages of a cached prefix (each ref'd once);
    // it holds pages.size() * page_size tokens.
    SeqId create_with_prefix(std::span<const PageId> pages);
    // New sequence sharing every page of src (ref +1 each), same length.
    SeqId fork(SeqId src);
    // Drop the sequence; its pages are unref'd from the last to the first, so a
    // deeper prefix page is evicted before the page it extends.
    void free(SeqId seq);

    // Make room for n more tokens. All or nothing: OutOfMemory leaves the
    // sequence and the pool unchanged.
    Result<AppendResult> append(SeqId seq, int32_t n);
    // Pages append(seq, n) would take from the pool (COW included).
    int32_t pages_needed(SeqId seq, int32_t n) const;
    // Shrink the sequence to n tokens (speculative rollback): pages past them
    // are unref'd, last first. n must not exceed n_tokens(seq).
    void truncate(SeqId seq, int32_t n);

    // Replace page index i (a full page) with another page holding the same
    // content (prefix-cache dedup): ref the new one, unref the old one.
    void replace_page(SeqId seq, int32_t index, PageId page);

    bool contains(SeqId seq) const { return m_seqs.count(seq) != 0; }
    int32_t n_tokens(SeqId seq) const;
    std::span<const PageId> pages(SeqId seq) const;
    size_t n_seqs() const { return m_seqs.size(); }
    std::vector<SeqId> seq_ids() const;
    BlockPool & pool() { return m_pool; }

  private:
    struct Seq {
        std::vector<PageId> pages;
        int32_t n_tokens = 0;
    };
    Seq & get(SeqId seq);
    const Seq & get(SeqId seq) const;

    BlockPool & m_pool;
    std::map<SeqId, Seq> m_seqs;
    SeqId m_next_id = 1;
};

}  // namespace gb::kv
