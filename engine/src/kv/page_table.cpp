// Page tables: allocation on append, sharing on fork, copy-on-write.
#include "glassbox/kv/page_table.h"

#include <cassert>

namespace gb::kv {

PageTables::~PageTables() {
    for (auto & [id, s] : m_seqs) {
        for (auto it = s.pages.rbegin(); it != s.pages.rend(); ++it) m_pool.unref(*it);
    }
}

PageTables::Seq & PageTables::get(SeqId seq) {
    auto it = m_seqs.find(seq);
    assert(it != m_seqs.end());
    return it->second;
}

const PageTables::Seq & PageTables::get(SeqId seq) const {
    auto it = m_seqs.find(seq);
    assert(it != m_seqs.end());
    return it->second;
}

SeqId PageTables::create() {
    const SeqId id = m_next_id++;
    m_seqs.emplace(id, Seq{});
    return id;
}

SeqId PageTables::create_with_prefix(std::span<const PageId> pages) {
    const SeqId id = m_next_id++;
    Seq s;
    s.pages.assign(pages.begin(), pages.end());
    for (PageId p : s.pages) m_pool.ref(p);
    s.n_tokens = static_cast<int32_t>(pages.size()) * m_pool.page_size();
    m_seqs.emplace(id, std::move(s));
    return id;
}

SeqId PageTables::fork(SeqId src) {
    Seq copy = get(src);
    for (PageId p : copy.pages) m_pool.ref(p);
    const SeqId id = m_next_id++;
    m_seqs.emplace(id, std::move(copy));
    return id;
}

void PageTables::free(SeqId seq) {
    auto it = m_seqs.find(seq);
    assert(it != m_seqs.end());
    const auto & pages = it->second.pages;
    for (auto p = pages.rbegin(); p != pages.rend(); ++p) m_pool.unref(*p);
    m_seqs.erase(it);
}

int32_t PageTables::pages_needed(SeqId seq, int32_t n) const {
    const Seq & s = get(seq);
    const int32_t ps = m_pool.page_size();
    const int32_t have = static_cast<int32_t>(s.pages.size());
    // NOTE: a table holds exactly ceil(n_tokens / page_size) pages.
    assert(have == (s.n_tokens + ps - 1) / ps);
    const int32_t want = (s.n_tokens + n + ps - 1) / ps;
    const bool partial = s.n_tokens % ps != 0;
    const bool cow = n > 0 && partial && m_pool.ref_count(s.pages.back()) > 1;
    return (want - have) + (cow ? 1 : 0);
}

Result<AppendResult> PageTables::append(SeqId seq, int32_t n) {
    assert(n >= 0);
    const int32_t need = pages_needed(seq, n);
    auto got = m_pool.allocate(need);
    if (!got) return got.error();
    Seq & s = get(seq);
    const int32_t ps = m_pool.page_size();
    AppendResult r;
    r.first_pos = s.n_tokens;
    r.new_pages = *got;
    size_t next = 0;
    if (n > 0 && s.n_tokens % ps != 0 && m_pool.ref_count(s.pages.back()) > 1) {
        // Copy-on-write: the partly filled last page is shared; its other holders
        // keep the original, this sequence writes into a private copy.
        const PageId src = s.pages.back();
        // NOTE: partly filled pages never hold cached prefix content.
        assert(!m_pool.has_hash(src));
        const PageId dst = (*got)[next++];
        r.copies.push_back(PageCopy{src, dst, s.n_tokens % ps});
        s.pages.back() = dst;
        m_pool.unref(src);
    }
    while (next < got->size()) s.pages.push_back((*got)[next++]);
    s.n_tokens += n;
    assert(static_cast<int32_t>(s.pages.size()) == (s.n_tokens + ps - 1) / ps);
    return r;
}

void PageTables::truncate(SeqId seq, int32_t n) {
    Seq & s = get(seq);
    assert(n >= 0 && n <= s.n_tokens);
    const int32_t ps = m_pool.page_size();
    const size_t keep = size_t((n + ps - 1) / ps);
    while (s.pages.size() > keep) {
        m_pool.unref(s.pages.back());
        s.pages.pop_back();
    }
    s.n_tokens = n;
}

void PageTables::replace_page(SeqId seq, int32_t index, PageId page) {
    Seq & s = get(seq);
    assert(index >= 0 && index < static_cast<int32_t>(s.pages.size()));
    // NOTE: only full pages can be swapped for an equal cached page.
    assert((index + 1) * m_pool.page_size() <= s.n_tokens);
    const PageId old = s.pages[size_t(index)];
    if (old == page) return;
    m_pool.ref(page);
    s.pages[size_t(index)] = page;
    m_pool.unref(old);
}

int32_t PageTables::n_tokens(SeqId seq) const { return get(seq).n_tokens; }

std::span<const PageId> PageTables::pages(SeqId seq) const { return get(seq).pages; }

std::vector<SeqId> PageTables::seq_ids() const {
    std::vector<SeqId> out;
    for (const auto & [id, s] : m_seqs) out.push_back(id);
    return out;
}

}  // namespace gb::kv
