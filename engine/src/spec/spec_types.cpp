// Names of speculative methods and token origins, the statistics as JSON, and
// the Draft tree helpers.
#include "glassbox/spec/spec_types.h"
#include "glassbox/spec/speculator.h"

#include <algorithm>
#include <cstdio>

namespace gb {

const char * spec_method_name(SpecMethod m) {
    switch (m) {
        case SpecMethod::None:         return "none";
        case SpecMethod::DraftModel:   return "draft";
        case SpecMethod::PromptLookup: return "lookup";
        case SpecMethod::Lookahead:    return "lookahead";
        case SpecMethod::SelfDraft:    return "selfdraft";
    }
    return "?";
}

bool parse_spec_method(std::string_view name, SpecMethod * out) {
    for (SpecMethod m : {SpecMethod::None, SpecMethod::DraftModel, SpecMethod::PromptLookup, SpecMethod::Lookahead,
                         SpecMethod::SelfDraft}) {
        if (name == spec_method_name(m)) { *out = m; return true; }
    }
    return false;
}

const char * spec_origin_name(SpecOrigin o) {
    switch (o) {
        case SpecOrigin::Target:     return "target";
        case SpecOrigin::Draft:      return "draft";
        case SpecOrigin::Correction: return "correction";
        case SpecOrigin::Bonus:      return "bonus";
    }
    return "?";
}

namespace {
std::string num(double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.4g", v);
    return buf;
}
template <typename V> std::string arr(const V & v) {
    std::string s = "[";
    for (size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + num(double(v[i]));
    return s + "]";
}
}  // namespace

std::string SpecStats::to_json(bool with_steps) const {
    std::vector<double> rate_at(attempted_at.size());
    for (size_t i = 0; i < attempted_at.size(); ++i) rate_at[i] = attempted_at[i] ? double(accepted_at[i]) / double(attempted_at[i]) : 0.0;
    std::string s = "{";
    s += "\"method\":\"" + method + "\"";
    s += ",\"steps\":" + num(double(steps)) + ",\"spec_steps\":" + num(double(spec_steps));
    s += ",\"off_steps\":" + num(double(off_steps));
    s += ",\"probes\":" + num(double(probes)) + ",\"drafter_ingested\":" + num(double(drafter_ingested));
    s += ",\"proposed\":" + num(double(proposed)) + ",\"accepted\":" + num(double(accepted));
    s += ",\"emitted\":" + num(double(emitted));
    s += ",\"acceptance_rate\":" + num(acceptance_rate());
    s += ",\"mean_accepted_len\":" + num(mean_accepted_len());
    s += ",\"tokens_per_step\":" + num(tokens_per_step());
    s += ",\"origins\":{\"target\":" + num(double(n_target)) + ",\"draft\":" + num(double(n_draft)) +
         ",\"correction\":" + num(double(n_correction)) + ",\"bonus\":" + num(double(n_bonus)) + "}";
    s += ",\"attempted_at\":" + arr(attempted_at) + ",\"accepted_at\":" + arr(accepted_at);
    s += ",\"acceptance_at\":" + arr(rate_at);
    s += ",\"t_draft_ms\":" + num(t_draft_ms) + ",\"t_verify_ms\":" + num(t_verify_ms) + ",\"t_total_ms\":" + num(t_total_ms);
    s += ",\"tokens_per_s\":" + num(tokens_per_s());
    s += ",\"plain_step_ms\":" + num(plain_step_ms) + ",\"plain_tokens_per_s_est\":" + num(plain_tokens_per_s());
    if (with_steps) {
        s += ",\"steps_detail\":[";
        for (size_t i = 0; i < per_step.size(); ++i) {
            const SpecStep & p = per_step[i];
            s += std::string(i ? "," : "") + "{\"k\":" + num(p.draft_len) + ",\"proposed\":" + num(p.proposed) +
                 ",\"accepted\":" + num(p.accepted) + ",\"emitted\":" + num(p.emitted) + ",\"calls\":" +
                 num(p.decode_calls) + ",\"t_draft_ms\":" + num(p.t_draft_ms) + ",\"t_verify_ms\":" + num(p.t_verify_ms) +
                 ",\"ingested\":" + num(p.ingested) + ",\"probe\":" + (p.probe ? "true" : "false") + "}";
        }
        s += "],\"token_origins\":\"";
        for (SpecOrigin o : origins) s += "TDCB"[int(o)];
        s += "\"";
    }
    return s + "}";
}

int32_t Draft::add_branch(std::span<const Token> seq) {
    int32_t node = -1, added = 0;
    for (Token t : seq) {
        int32_t found = -1;
        for (size_t i = 0; i < tokens.size(); ++i) {
            if (parent[i] == node && tokens[i] == t) { found = int32_t(i); break; }
        }
        if (found < 0) {
            found = add(node, t);
            if (!q.empty()) q.emplace_back();
            ++added;
        }
        node = found;
    }
    return added;
}

int32_t Draft::depth() const {
    std::vector<int32_t> d(tokens.size());
    int32_t best = 0;
    for (size_t i = 0; i < tokens.size(); ++i) {
        d[i] = parent[i] < 0 ? 1 : d[size_t(parent[i])] + 1;
        best = std::max(best, d[i]);
    }
    return best;
}

}  // namespace gb
