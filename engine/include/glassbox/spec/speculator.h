// The Speculator interface (propose a draft chain or token tree, observe what the
// target accepted) and the factories of the four methods: draft model, prompt
// lookup, lookahead (Jacobi + n-gram pool) and self-draft (layers skipped).
#pragma once

#include "glassbox/model.h"
#include "glassbox/result.h"
#include "glassbox/sampler.h"
#include "glassbox/spec/spec_types.h"

#include <atomic>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace gb {

// Candidate continuations of the sequence as a token tree rooted at the last
// committed token. Nodes are stored parents first; parent -1 = child of the root.
// The first child of a node is the most likely one: the target decodes the
// whole tree in one pass (Context::decode_tree) and computes output rows for
// first-child chains first; a chain is the tree where every node has one child.
struct Draft {
    std::vector<Token>   tokens;
    std::vector<int32_t> parent;
    // Stochastic drafts (a draft model sampling): q[i] is the distribution node
    // i was drawn from, as sorted sparse (token, probability). Empty for
    // deterministic guesses (q is a point mass on the token).
    std::vector<std::vector<std::pair<Token, float>>> q;
    // Auxiliary nodes (lookahead decoding's Jacobi window): decoded in the same
    // forward pass as the draft, behind it in the tree, never accepted.
    // aux_parent[j]: -1 = a child of the root (the pending token), else an
    // earlier aux node. aux_output[j] != 0: the speculator wants the target's
    // argmax after node j (SpecObservation::aux_next). Backends without token
    // trees drop them (aux_next then stays empty).
    std::vector<Token>   aux_tokens;
    std::vector<int32_t> aux_parent;
    std::vector<uint8_t> aux_output;
    // The speculator's class of this draft, 0-7 (prompt lookup: how long a
    // suffix matched): the draft-length controller keeps acceptance per class.
    int32_t cls = 0;
    // The speculator's own estimate that the target takes the first-child
    // chain's first token, < 0 where it has none. Prompt lookup: the share of
    // the match's earlier occurrences followed by that token. The controller
    // caps the prior of the class's depth-0 acceptance with it (chain and
    // tree plans alike: a tree's alternatives are credited by its own walks).
    float first_p = -1.0f;

    size_t size() const { return tokens.size(); }
    bool   empty() const { return tokens.empty(); }
    void   clear() { tokens.clear(); parent.clear(); q.clear(); aux_tokens.clear(); aux_parent.clear(); aux_output.clear(); cls = 0; first_p = -1.0f; }
    int32_t add_aux(int32_t aux_parent_node, Token t, bool want_output) {
        aux_tokens.push_back(t);
        aux_parent.push_back(aux_parent_node);
        aux_output.push_back(want_output ? 1 : 0);
        return int32_t(aux_tokens.size()) - 1;
    }
    int32_t add(int32_t parent_node, Token t) {
        tokens.push_back(t);
        parent.push_back(parent_node);
        return int32_t(tokens.size()) - 1;
    }
    // Inserts a continuation below the root, sharing existing prefixes (trie).
    // Returns the number of new nodes.
    int32_t add_branch(std::span<const Token> seq);
    int32_t depth() const;   // longest root-to-leaf path
};

// What verification found, given back to the speculator.
struct SpecObservation {
    std::span<const Token> tokens;        // committed sequence, ending with the new pending token
    int32_t n_accepted = 0;               // draft tokens accepted this step
    // The last decoded branch beyond the accepted prefix: the (rejected or
    // unverified) draft tokens and, for each, the target's greedy next token
    // after it (Jacobi outputs). Empty when the whole branch was accepted.
    std::vector<Token> tail_tokens;
    std::vector<Token> tail_next;
    // Per aux node of the draft: the target's argmax (raw logits) after it, -1
    // where no output was asked for. Empty when the aux nodes were not decoded.
    std::vector<Token> aux_next;
};

class Speculator {
  public:
    virtual ~Speculator() = default;
    virtual const char * name() const = 0;
    // tokens: the committed sequence (prompt + output); the last one is the
    // token the target decodes next together with the draft. max_len: depth cap.
    virtual Status propose(std::span<const Token> tokens, int32_t max_len, Draft & out,
                           const std::atomic<bool> * cancel) = 0;
    virtual void observe(const SpecObservation &) {}
    // A new request starts (the prompt may share a prefix with the last one).
    virtual void reset() {}
    // Whether propose() costs model compute (draft model): the controller then
    // weighs draft time against verify savings; lookup methods are ~free.
    virtual bool has_model_cost() const { return false; }
    // Model drafters: milliseconds of one drafting step on a one-token context
    // (the draft and self-draft speculators time it when they are made), read
    // before the drafter's first prefill of the prompt so a drafter that
    // cannot pay is never started; 0 for the ~free methods.
    virtual Result<double> step_ms(const std::atomic<bool> * /*cancel*/) { return 0.0; }
    // Model drafters: the most tokens the next propose() may feed the drafter to
    // catch up with the sequence (0 = no bound). A larger catch-up restarts the
    // drafter on the sequence's first token (an attention sink) + its last
    // `tokens` tokens, so a probe costs at most that much prefill whatever the
    // context's length; verification does not depend on it (lossless either way).
    virtual void set_ingest_window(int32_t /*tokens*/) {}
    // Model drafters: tokens the last propose() decoded before its first draft
    // token (its catch-up, or the whole window after a restart); 0 otherwise.
    virtual int32_t last_ingested() const { return 0; }
};

// Why a draft model cannot speculate for a target: vocab size, differing token
// texts / attributes on sampled ids and on special ids, BOS/EOS/EOT, add_bos.
// OK when compatible.
Status check_vocab_compatible(const Model & target, const Model & draft);

// --- factories (one method per source file) ---
// sampling: the request's sampler params (draft tokens are drawn with them).
Result<std::unique_ptr<Speculator>> make_draft_model_speculator(const Model & target, std::shared_ptr<const Model> draft,
                                                                const SpecConfig & cfg, const SamplerParams & sampling,
                                                                int32_t n_ctx, int32_t n_threads);
std::unique_ptr<Speculator> make_prompt_lookup_speculator(const SpecConfig & cfg);
std::unique_ptr<Speculator> make_lookahead_speculator(const SpecConfig & cfg);
// Self-draft: the same loaded model in a second Context with cfg.skip_layers
// skipped (ContextParams::skip_layers; empty = default_skip_layers()).
Result<std::unique_ptr<Speculator>> make_self_draft_speculator(std::shared_ptr<const Model> target, const SpecConfig & cfg,
                                                               const SamplerParams & sampling, int32_t n_ctx,
                                                               int32_t n_threads);

// The default self-draft skip set for a model (middle layers; for gemma3 a
// whole local/global group of 6; any set works with skip_layers, the group
// also suits write_layer_skipped_copy).
std::vector<int32_t> default_skip_layers(const Model & model);
// Writes a GGUF copy of the model's file without the given layers (renumbered,
// block_count updated). Fails with the reason when the architecture's layer
// pattern would change (gemma3: skipped layers must form whole groups of 6).
Status write_layer_skipped_copy(const Model & model, const std::vector<int32_t> & skip_layers, const std::string & path);

// All of the above by config (loads cfg.draft_model_path when needed).
Result<std::unique_ptr<Speculator>> make_speculator(std::shared_ptr<const Model> target, const SpecConfig & cfg,
                                                    const SamplerParams & sampling, int32_t n_ctx, int32_t n_threads);

}  // namespace gb
