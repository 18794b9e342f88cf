// Context overflow policy and the drop-oldest-turns rule, shared by Session
// (which re-renders messages) and kv::BatchEngine (which cuts token spans at
// turn boundaries), so both drop exactly the same turns.
#pragma once

#include "glassbox/result.h"

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace gb {

enum class OverflowPolicy {
    Error,           // a prompt longer than the context is an OutOfRange error
    DropOldestTurns, // chat: drop the oldest turns after the system prompt until it fits
};
const char * overflow_policy_name(OverflowPolicy p);  // "error" "drop_oldest_turns"

// Room kept for the reply when turns are dropped to fit a context of n_ctx
// positions: max_tokens (n_ctx / 4 when max_tokens <= 0), at most n_ctx / 2.
int32_t overflow_reply_reserve(int32_t max_tokens, int32_t n_ctx);
// Does a prompt of n_prompt tokens fit a context of n_ctx (DropOldestTurns:
// together with the reply reserve; Error: the prompt alone)?
bool overflow_prompt_fits(OverflowPolicy policy, int32_t n_prompt, int32_t max_tokens, int32_t n_ctx);

// The drop rule over the turns that follow the kept system prompt (turn 0 =
// the oldest): while fits(cut) is false (cut = turns dropped so far), drop the
// oldest turn, then any further non-user turns so the kept conversation starts
// with a user turn, never dropping the last turn. Returns the cut that fits;
// OutOfRange (saying how many turns were dropped) when the policy is Error or
// nothing is left to drop; an error of fits (a render error) is passed on.
struct TurnCut {
    int32_t cut = 0;  // turns dropped
};
Result<TurnCut> choose_turn_cut(OverflowPolicy policy, int32_t n_turns, const std::function<bool(int32_t)> & turn_is_user,
                                const std::function<Result<bool>(int32_t cut)> & fits);

// A tokenized chat prompt with its turn boundaries (Session::chat_prompt), the
// form kv::GenRequest takes for DropOldestTurns.
struct TurnSpans {
    int32_t system_len = 0;            // tokens [0, system_len): BOS + system prompt, always kept
    std::vector<int32_t> starts;       // token offset where each later turn starts (ascending, >= system_len)
    std::vector<uint8_t> is_user;      // per turn: a user message (the kept part starts with one); empty = all
    bool empty() const { return starts.empty(); }
};

// prompt with turns [0, cut) removed: prompt[0, system_len) + prompt[starts[cut], end).
std::vector<int32_t> drop_turn_spans(const std::vector<int32_t> & prompt, const TurnSpans & turns, int32_t cut);
// Checks that spans are well formed for a prompt of n tokens (reason on error).
Status check_turn_spans(const TurnSpans & turns, size_t n_prompt);

}  // namespace gb
