// Multi-sequence batched CPU forward pass over the paged KV cache: one call runs
// the tokens of several sequences (decode tokens and prefill chunks, each with
// its positions and page table) and keeps logits where asked. A row's result
// does not depend on the rest of the batch (batch-invariant CPU numerics).
#pragma once

#include "glassbox/kv/kv_storage.h"
#include "glassbox/model.h"

#include <memory>
#include <span>
#include <vector>

namespace gb::kv {

// One sequence's part of a batch: tokens at positions first_pos .. first_pos + n - 1,
// K/V read and written through pages (pages[p / page_size], slot p % page_size),
// which must cover first_pos + n tokens.
struct BatchSeq {
    std::span<const Token>  tokens;
    int32_t                 first_pos = 0;
    std::span<const PageId> pages;
    bool                    logits = false;  // keep the logits of the last token
    bool                    all_logits = false;  // keep logits of every token (speculative verify)
};

struct BatchForwardParams {
    int32_t n_threads = 0;           // 0 = hardware concurrency
    int32_t max_batch_tokens = 512;  // tokens of one run()
    int32_t n_pages = 0;
    int32_t page_size = 16;
    KvType  kv_type = KvType::F16;
};

class BatchForward {
  public:
    static Result<std::unique_ptr<BatchForward>> create(std::shared_ptr<const Model> model, const BatchForwardParams & params);
    virtual ~BatchForward() = default;

    // Performs the page copies, then runs the batch. Logits of sequence i (if
    // asked) are logits(i) until the next run(): one n_vocab row, or with
    // all_logits (and logits) n_tokens rows, row j = after token j.
    virtual Status run(std::span<const BatchSeq> seqs, std::span<const PageCopy> copies = {}) = 0;
    virtual std::span<const float> logits(size_t seq_index) const = 0;
    // First argmax of sequence i's last logits row (what a plain greedy
    // Sampler picks); a GPU backend answers without copying the logits.
    virtual Token greedy_token(size_t seq_index) const;

    virtual const Model & model() const = 0;
    virtual KvStorage & storage() = 0;
    virtual int32_t max_batch_tokens() const = 0;
    // Longest sequence the scratch buffers allow (n_pages * page_size, capped by n_ctx_train).
    virtual int32_t max_positions() const = 0;
};

}  // namespace gb::kv
