// Session: chat template rendering, prompt caching by common prefix, the
// decode loop with sampling, stop strings and streaming events.
#include "glassbox/session.h"
#include "glassbox/stop_matcher.h"
#include "glassbox/spec/spec_decoder.h"  // [spec]

#include <algorithm>
#include <chrono>

namespace gb {

const char * stop_reason_name(StopReason r) {
    switch (r) {
        case StopReason::MaxTokens:       return "max_tokens";
        case StopReason::EndOfGeneration: return "eog";
        case StopReason::StopString:      return "stop_string";
        case StopReason::ContextFull:     return "context_full";
        case StopReason::Cancelled:       return "cancelled";
    }
    return "?";
}

double GenerateResult::prompt_tokens_per_s() const {
    const int32_t n = n_prompt_tokens - n_prompt_reused;
    return t_prompt_ms > 0.0 ? 1000.0 * n / t_prompt_ms : 0.0;
}

double GenerateResult::gen_tokens_per_s() const {
    const double t = t_total_ms - t_first_token_ms;
    return (n_generated > 1 && t > 0.0) ? 1000.0 * (n_generated - 1) / t : 0.0;
}

namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

const char * builtin_template_for_arch(Arch a) {
    switch (a) {
        case Arch::Gemma3: return "gemma";
        case Arch::Qwen2:  return "chatml";
        case Arch::Llama:  return "llama3";
    }
    return "chatml";
}


}  // namespace

std::shared_ptr<const ChatTemplate> chat_template_for(const Model & model, const std::string & override_source, std::string * warning) {
    warning->clear();
    std::string source = override_source;
    std::string origin = "the override";
    if (source.empty()) {
        source = model.chat_template_source();
        origin = "the model file";
    }
    if (source.empty()) {
        const char * name = builtin_template_for_arch(model.hparams().arch);
        source = builtin_chat_template(name);
        *warning = std::string("the model has no chat template; using the built-in \"") + name + "\" template for its architecture";
        origin.clear();
    }
    std::string why;
    std::shared_ptr<const ChatTemplate> t = chat_template_or_fallback(source, &why);
    if (!why.empty()) {
        *warning = "chat template from " + (origin.empty() ? std::string("built-in") : origin) + " unusable (" + why + "); using ChatML";
    }
    return t;
}

Result<std::unique_ptr<Session>> Session::create(std::shared_ptr<const Model> model, const SessionParams & params) {
    if (!model) return make_error(ErrorCode::InvalidArgument, "no model loaded");
    auto ctx = params.context_factory ? params.context_factory(model, params.context) : Context::create(model, params.context);
    if (!ctx) return ctx.error();
    std::unique_ptr<Session> s(new Session());
    s->m_model = std::move(model);
    s->m_ctx = std::move(ctx.value());
    s->m_params = params;

    s->m_template = chat_template_for(*s->m_model, params.chat_template_override, &s->m_template_warning);
    return s;
}

Result<std::string> Session::render_chat(const std::vector<ChatMessage> & messages, bool add_generation_prompt) const {
    const Tokenizer & tok = m_model->tokenizer();
    ChatTemplateInputs in;
    in.messages = messages;
    in.add_generation_prompt = add_generation_prompt;
    in.bos_token = tok.bos() >= 0 ? tok.text(tok.bos()) : "";
    in.eos_token = tok.eos() >= 0 ? tok.text(tok.eos()) : "";
    return m_template->render(in);
}

namespace {
// Chat text -> prompt tokens as chat() decodes them (specials parsed; BOS once).
std::vector<Token> encode_chat(const Tokenizer & tok, const std::string & text) {
    std::vector<Token> prompt = tok.encode(text, tok.add_bos(), true);
    // The template may already write the BOS text: never feed BOS twice.
    if (prompt.size() >= 2 && prompt[0] == tok.bos() && prompt[1] == tok.bos()) prompt.erase(prompt.begin());
    return prompt;
}
}  // namespace

Result<GenerateResult> Session::chat(const std::vector<ChatMessage> & messages, const GenerateParams & params,
                                     const TokenCallback & on_token, const std::atomic<bool> * cancel) {
    const Tokenizer & tok = m_model->tokenizer();
    const int32_t n_ctx = m_ctx->n_ctx();
    // Turns after the system prompt; the shared rule (context_overflow.h) picks how many to drop.
    const size_t first = (!messages.empty() && messages[0].role == "system") ? 1 : 0;
    std::vector<Token> prompt;
    auto kept = [&](int32_t cut) {
        std::vector<ChatMessage> msgs(messages.begin(), messages.begin() + long(first));
        msgs.insert(msgs.end(), messages.begin() + long(first) + cut, messages.end());
        return msgs;
    };
    auto fits = [&](int32_t cut) -> Result<bool> {
        auto text = render_chat(kept(cut), true);
        if (!text) return text.error();
        prompt = encode_chat(tok, *text);
        return overflow_prompt_fits(m_params.overflow, int32_t(prompt.size()), params.max_tokens, n_ctx);
    };
    auto is_user = [&](int32_t turn) { return messages[first + size_t(turn)].role == "user"; };
    auto cut = choose_turn_cut(m_params.overflow, int32_t(messages.size() - first), is_user, fits);
    if (!cut) {
        if (cut.error().code != ErrorCode::OutOfRange) return cut.error();
        return make_error(ErrorCode::OutOfRange, "the conversation is " + std::to_string(prompt.size()) +
                                                     " tokens, the context holds " + std::to_string(n_ctx) +
                                                     (m_params.overflow == OverflowPolicy::DropOldestTurns && messages.size() > first + 1
                                                          ? " even after dropping older turns" : ""));
    }
    auto r = generate(std::move(prompt), params, on_token, cancel);
    if (r) r->n_dropped_messages = cut->cut;
    return r;
}

Result<Session::ChatPrompt> Session::chat_prompt(const std::vector<ChatMessage> & messages) const {
    const Tokenizer & tok = m_model->tokenizer();
    auto full_text = render_chat(messages, true);
    if (!full_text) return full_text.error();
    ChatPrompt out;
    out.tokens = encode_chat(tok, *full_text);
    const size_t first = (!messages.empty() && messages[0].role == "system") ? 1 : 0;
    auto not_separable = [](const std::string & why) {
        return make_error(ErrorCode::Unsupported, "the chat template does not render turns as separable token spans: " + why);
    };
    // Boundary before message i: the tokens of messages [0, i) rendered alone
    // must be a prefix of the whole prompt.
    auto boundary = [&](size_t i) -> Result<int32_t> {
        std::vector<Token> pre;
        if (i == 0) {
            pre = encode_chat(tok, "");
        } else {
            auto text = render_chat(std::vector<ChatMessage>(messages.begin(), messages.begin() + long(i)), false);
            if (!text) return text.error();
            pre = encode_chat(tok, *text);
        }
        if (pre.size() > out.tokens.size() || !std::equal(pre.begin(), pre.end(), out.tokens.begin()))
            return not_separable("messages before #" + std::to_string(i) + " do not tokenize to a prefix of the prompt");
        return int32_t(pre.size());
    };
    auto sys = boundary(first);
    if (!sys) return sys.error();
    out.turns.system_len = *sys;
    for (size_t i = first; i < messages.size(); ++i) {
        auto b = i == first ? sys : boundary(i);
        if (!b) return b.error();
        out.turns.starts.push_back(*b);
        out.turns.is_user.push_back(messages[i].role == "user" ? 1 : 0);
    }
    // Dropping a turn must give what re-rendering gives (catches templates that
    // fold the system prompt into the first user turn).
    if (messages.size() > first + 1) {
        std::vector<ChatMessage> msgs(messages.begin(), messages.begin() + long(first));
        msgs.insert(msgs.end(), messages.begin() + long(first) + 1, messages.end());
        auto text = render_chat(msgs, true);
        if (!text) return text.error();
        if (encode_chat(tok, *text) != drop_turn_spans(out.tokens, out.turns, 1))
            return not_separable("dropping the oldest turn's tokens differs from rendering without it");
    }
    return out;
}

Result<GenerateResult> Session::complete(std::string_view prompt, const GenerateParams & params,
                                         const TokenCallback & on_token, const std::atomic<bool> * cancel) {
    const Tokenizer & tok = m_model->tokenizer();
    std::vector<Token> tokens = tok.encode(prompt, tok.add_bos(), false);
    if (tokens.empty()) return make_error(ErrorCode::InvalidArgument, "empty prompt");
    return generate(std::move(tokens), params, on_token, cancel);
}

Result<GenerateResult> Session::generate(std::vector<Token> prompt, const GenerateParams & params,
                                         const TokenCallback & on_token, const std::atomic<bool> * cancel) {
    const auto t0 = Clock::now();
    const Tokenizer & tok = m_model->tokenizer();
    const int32_t n_ctx = m_ctx->n_ctx();
    if (prompt.empty()) return make_error(ErrorCode::InvalidArgument, "empty prompt");
    for (Token t : prompt) {
        if (t < 0 || t >= tok.n_vocab()) {
            return make_error(ErrorCode::InvalidArgument, "token id " + std::to_string(t) + " outside the vocabulary");
        }
    }
    if (int32_t(prompt.size()) >= n_ctx) {
        return make_error(ErrorCode::OutOfRange, "the prompt is " + std::to_string(prompt.size()) +
                                                     " tokens, the context holds " + std::to_string(n_ctx));
    }

    GenerateResult res;
    res.n_prompt_tokens = int32_t(prompt.size());

    // Reuse the cached prefix; at least one prompt token is decoded to get logits.
    size_t common = 0;
    while (params.reuse_prefix && common < m_tokens.size() && common < prompt.size() && m_tokens[common] == prompt[common])
        ++common;
    common = std::min(common, prompt.size() - 1);
    m_ctx->truncate(int32_t(common));
    m_tokens.resize(common);
    res.n_prompt_reused = int32_t(common);

    Sampler sampler(params.sampling);
    for (Token t : prompt) sampler.accept(t);

    auto cancelled = [&] { return cancel && cancel->load(std::memory_order_relaxed); };
    {
        const std::span<const Token> rest(prompt.data() + common, prompt.size() - common);
        Status st = m_ctx->decode(rest, false, cancel);
        if (!st) {
            m_tokens.clear();
            m_ctx->truncate(0);
            if (st.error().code == ErrorCode::Cancelled) {
                res.stop = StopReason::Cancelled;
                res.t_total_ms = ms_since(t0);
                return res;
            }
            return st.error();
        }
        m_tokens.insert(m_tokens.end(), rest.begin(), rest.end());
    }
    res.t_prompt_ms = ms_since(t0);

    // [spec] Speculative decoding: the decoder drafts, verifies and emits one or
    // more tokens per step into spec_queue; it owns the K/V updates then.
    std::unique_ptr<SpecDecoder> spec_dec;
    std::vector<SpecToken> spec_queue;
    size_t spec_next = 0;
    if (params.spec.method != SpecMethod::None) {
        const std::string key = std::string(spec_method_name(params.spec.method)) + "|" + params.spec.draft_model_path + "|" +
                                std::to_string(reinterpret_cast<uintptr_t>(params.spec.draft_model.get())) + "|" +
                                std::to_string(params.sampling.temperature);
        if (!m_spec || key != m_spec_key) {
            // The drafter's Context on this session's backend (e.g. the GPU); where
            // that fails (no room for a second context there), on the CPU.
            SpecConfig cfg = params.spec;
            if (!cfg.context_factory && m_params.context_factory) {
                cfg.context_factory = [f = m_params.context_factory](std::shared_ptr<const Model> m,
                                                                      const ContextParams & cp) -> Result<std::unique_ptr<Context>> {
                    auto c = f(m, cp);
                    if (c) return c;
                    return Context::create(std::move(m), cp);
                };
            }
            auto sp = make_speculator(m_model, cfg, params.sampling, n_ctx, m_params.context.n_threads);
            if (!sp) return sp.error();
            m_spec = std::shared_ptr<Speculator>(std::move(sp.value()));
            m_spec_key = key;
        }
        spec_dec = std::make_unique<SpecDecoder>(*m_ctx, m_spec, params.spec, params.sampling);
        spec_dec->begin(m_tokens);
    }

    StreamDecoder detok(tok);
    StopMatcher stops(params.stop);
    bool stop_hit = false;
    const SpecToken * spec_tok = nullptr;  // [spec] the token being emitted, when speculating
    // Greedy without penalties or top-n log-probabilities: where the backend
    // summarises logits rows on its device (the GPU), the token and its
    // log-probability come from that summary and no row reaches the host.
    const bool use_summary = params.sampling.greedy_argmax() && params.n_logprobs <= 0;
    const RowSummary * row_sum = nullptr;  // the summary of the token being emitted (plain decoding)
    auto emit = [&](Token id, std::string text, const std::span<const float> logits) -> bool {
        TokenEvent ev;
        ev.id = id;
        ev.t_ms = ms_since(t0);
        if (spec_tok) {
            ev.origin = spec_tok->origin;
            ev.logprob = spec_tok->logprob;
            ev.top = spec_tok->top;
        } else if (row_sum && row_sum->argmax == id) {
            ev.logprob = float(-row_sum->lse);  // the argmax token: l - max = 0 (RowSummary)
        } else if (!logits.empty()) {
            ev.logprob = Sampler::logprob_of(logits, id);
            if (params.n_logprobs > 0) ev.top = Sampler::top_logprobs(logits, params.n_logprobs);
        }
        ev.text = std::move(text);
        res.text += ev.text;
        return on_token ? on_token(ev) : true;
    };

    res.stop = StopReason::MaxTokens;
    for (;;) {
        if (cancelled()) { res.stop = StopReason::Cancelled; break; }
        if (params.max_tokens > 0 && res.n_generated >= params.max_tokens) { res.stop = StopReason::MaxTokens; break; }
        std::span<const float> logits;
        Token id = -1;
        if (spec_dec) {  // [spec]
            if (spec_next == spec_queue.size()) {
                spec_queue.clear();
                spec_next = 0;
                const int32_t left = params.max_tokens > 0 ? params.max_tokens - res.n_generated : n_ctx;
                Status st = spec_dec->step(spec_queue, std::max(1, left), params.n_logprobs, cancel);
                if (!st) {
                    if (st.error().code == ErrorCode::Cancelled) { res.stop = StopReason::Cancelled; break; }
                    m_tokens.clear();
                    m_ctx->truncate(0);
                    return st.error();
                }
            }
            spec_tok = &spec_queue[spec_next++];
            id = spec_tok->id;
        } else {
            const std::span<const RowSummary> sums = use_summary ? m_ctx->row_summaries() : std::span<const RowSummary>{};
            row_sum = sums.empty() ? nullptr : &sums.back();
            if (row_sum) {
                id = row_sum->argmax;
            } else {
                logits = m_ctx->logits();
                id = sampler.sample(logits);
            }
            sampler.accept(id);
        }
        ++res.n_generated;
        if (res.n_generated == 1) res.t_first_token_ms = ms_since(t0);

        if (!params.ignore_eos && tok.is_eog(id)) {
            res.stop = StopReason::EndOfGeneration;
            emit(id, stops.push(detok.flush(), &stop_hit), logits);
            break;
        }
        const std::string piece = stops.push(detok.push(id), &stop_hit);
        if (!emit(id, piece, logits)) { res.stop = StopReason::Cancelled; break; }
        if (stop_hit) { res.stop = StopReason::StopString; break; }
        if (params.max_tokens > 0 && res.n_generated >= params.max_tokens) { res.stop = StopReason::MaxTokens; break; }
        if (m_ctx->n_past() >= n_ctx) { res.stop = StopReason::ContextFull; break; }

        if (spec_dec) {  // [spec] K/V of accepted tokens are already in; the last one is decoded with the next draft
            m_tokens.push_back(id);
            continue;
        }
        const Token one[1] = {id};
        Status st = m_ctx->decode(one, false, cancel);
        if (!st) {
            if (st.error().code == ErrorCode::Cancelled) { res.stop = StopReason::Cancelled; break; }
            m_tokens.clear();
            m_ctx->truncate(0);
            return st.error();
        }
        m_tokens.push_back(id);
    }
    if (res.stop != StopReason::StopString) {
        // Text held back for a possible stop string or an incomplete character.
        std::string tail = stops.push(detok.flush(), &stop_hit);
        if (!stop_hit) tail += stops.flush();
        if (!tail.empty()) {
            res.text += tail;
            if (on_token) {
                TokenEvent ev;
                ev.text = tail;
                ev.t_ms = ms_since(t0);
                on_token(ev);
            }
        }
    }
    // The cache must describe exactly m_tokens.
    if (spec_dec) {  // [spec] emitted tokens beyond the cache (the pending one) are not in it
        m_tokens.resize(std::min(m_tokens.size(), size_t(m_ctx->n_past())));
        res.spec = spec_dec->stats();
    }
    m_ctx->truncate(int32_t(m_tokens.size()));
    res.t_total_ms = ms_since(t0);
    return res;
}

}  // namespace gb
