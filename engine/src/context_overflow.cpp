// The drop-oldest-turns rule (see glassbox/context_overflow.h), used by Session
// on messages and by kv::BatchEngine on token spans.
#include "glassbox/context_overflow.h"

#include <algorithm>

namespace gb {

const char * overflow_policy_name(OverflowPolicy p) {
    switch (p) {
        case OverflowPolicy::Error: return "error";
        case OverflowPolicy::DropOldestTurns: return "drop_oldest_turns";
    }
    return "?";
}

int32_t overflow_reply_reserve(int32_t max_tokens, int32_t n_ctx) {
    return std::min(max_tokens > 0 ? max_tokens : n_ctx / 4, n_ctx / 2);
}

bool overflow_prompt_fits(OverflowPolicy policy, int32_t n_prompt, int32_t max_tokens, int32_t n_ctx) {
    return n_prompt < n_ctx &&
           (policy == OverflowPolicy::Error || n_prompt + overflow_reply_reserve(max_tokens, n_ctx) <= n_ctx);
}

Result<TurnCut> choose_turn_cut(OverflowPolicy policy, int32_t n_turns, const std::function<bool(int32_t)> & turn_is_user,
                                const std::function<Result<bool>(int32_t cut)> & fits) {
    TurnCut c;
    for (;;) {
        auto ok = fits(c.cut);
        if (!ok) return ok.error();
        if (*ok) return c;
        if (policy == OverflowPolicy::Error || n_turns - c.cut <= 1) {
            return make_error(ErrorCode::OutOfRange, c.cut > 0 ? "does not fit even after dropping " + std::to_string(c.cut) +
                                                                     " older turns"
                                                               : "does not fit");
        }
        // Drop the oldest turn; keep the conversation starting with a user turn.
        ++c.cut;
        while (n_turns - c.cut > 1 && !turn_is_user(c.cut)) ++c.cut;
    }
}

std::vector<int32_t> drop_turn_spans(const std::vector<int32_t> & prompt, const TurnSpans & turns, int32_t cut) {
    if (cut <= 0 || turns.starts.empty()) return prompt;
    std::vector<int32_t> out(prompt.begin(), prompt.begin() + turns.system_len);
    const size_t from = cut >= int32_t(turns.starts.size()) ? prompt.size() : size_t(turns.starts[size_t(cut)]);
    out.insert(out.end(), prompt.begin() + long(from), prompt.end());
    return out;
}

Status check_turn_spans(const TurnSpans & t, size_t n_prompt) {
    auto bad = [](const std::string & m) { return Status(make_error(ErrorCode::InvalidArgument, "turn spans: " + m)); };
    if (t.system_len < 0 || size_t(t.system_len) > n_prompt) return bad("system_len " + std::to_string(t.system_len) + " outside the prompt");
    if (!t.is_user.empty() && t.is_user.size() != t.starts.size()) return bad("is_user has " + std::to_string(t.is_user.size()) +
                                                                              " entries for " + std::to_string(t.starts.size()) + " turns");
    int32_t prev = t.system_len;
    for (size_t i = 0; i < t.starts.size(); ++i) {
        if (t.starts[i] < prev || size_t(t.starts[i]) > n_prompt)
            return bad("turn " + std::to_string(i) + " starts at " + std::to_string(t.starts[i]) + " (previous boundary " +
                       std::to_string(prev) + ", prompt of " + std::to_string(n_prompt) + " tokens)");
        prev = t.starts[i];
    }
    return Status::success();
}

}  // namespace gb
