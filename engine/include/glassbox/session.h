// A chat/completion session over one Context: messages in, streamed tokens out
// with timestamps; stop strings, max tokens, cancellation, context-overflow
// policy, and reuse of the KV cache for the common prefix with the last request.
#pragma once

#include "glassbox/chat_template.h"
#include "glassbox/context_overflow.h"  // OverflowPolicy, the shared drop-oldest-turns rule
#include "glassbox/model.h"
#include "glassbox/result.h"
#include "glassbox/sampler.h"
#include "glassbox/spec/spec_types.h"  // [spec] speculative decoding config, token origin, stats

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace gb {

struct SessionParams {
    ContextParams  context;
    OverflowPolicy overflow = OverflowPolicy::Error;
    std::string    chat_template_override;  // Jinja source; "" = the model's own (or built-in by arch)
    // Makes the Context (e.g. a GPU one); empty = Context::create (CPU).
    std::function<Result<std::unique_ptr<Context>>(std::shared_ptr<const Model>, const ContextParams &)> context_factory;
};

struct GenerateParams {
    SamplerParams            sampling;
    int32_t                  max_tokens = 512;  // <= 0: until EOS or the context is full
    std::vector<std::string> stop;              // stop strings (not included in the output)
    bool                     ignore_eos = false;
    int32_t                  n_logprobs = 0;    // top-N alternatives per token in events
    SpecConfig               spec;              // [spec] speculative decoding (method None = plain)
    bool                     reuse_prefix = true;  // false: prefill the whole prompt (no prefix cache)
};

struct TokenEvent {
    Token       id = -1;
    std::string text;        // newly completed UTF-8 text (may be empty while held back)
    double      t_ms = 0.0;  // since the request started
    float       logprob = 0.0f;
    std::vector<TokenLogprob> top;  // n_logprobs alternatives
    SpecOrigin origin = SpecOrigin::Target;  // [spec] accepted draft / correction / bonus
};

enum class StopReason { MaxTokens, EndOfGeneration, StopString, ContextFull, Cancelled };
const char * stop_reason_name(StopReason r);

struct GenerateResult {
    std::string text;
    StopReason  stop = StopReason::MaxTokens;
    int32_t     n_prompt_tokens = 0;
    int32_t     n_prompt_reused = 0;   // prompt tokens served from the cache
    int32_t     n_generated = 0;
    int32_t     n_dropped_messages = 0;
    double      t_prompt_ms = 0.0;     // prefill time
    double      t_first_token_ms = 0.0;
    double      t_total_ms = 0.0;
    SpecStats   spec;                  // [spec] speculation statistics (method "none" when off)
    double      prompt_tokens_per_s() const;
    double      gen_tokens_per_s() const;
};

// Return false to cancel (same as setting the cancel flag).
using TokenCallback = std::function<bool(const TokenEvent &)>;

class Speculator;

// The template a chat with model uses: override_source when given, else the
// model file's, else the built-in one for its architecture; ChatML when the
// chosen one is unusable. *warning says which fallback was taken ("" if none).
std::shared_ptr<const ChatTemplate> chat_template_for(const Model & model, const std::string & override_source, std::string * warning);

class Session {
  public:
    static Result<std::unique_ptr<Session>> create(std::shared_ptr<const Model> model, const SessionParams & params);

    // Renders the messages with the chat template and generates the reply.
    Result<GenerateResult> chat(const std::vector<ChatMessage> & messages, const GenerateParams & params,
                                const TokenCallback & on_token = {}, const std::atomic<bool> * cancel = nullptr);
    // Raw completion of a text (BOS added when the model asks for it).
    Result<GenerateResult> complete(std::string_view prompt, const GenerateParams & params,
                                    const TokenCallback & on_token = {}, const std::atomic<bool> * cancel = nullptr);
    // Generation from explicit prompt tokens.
    Result<GenerateResult> generate(std::vector<Token> prompt, const GenerateParams & params,
                                    const TokenCallback & on_token = {}, const std::atomic<bool> * cancel = nullptr);

    Result<std::string> render_chat(const std::vector<ChatMessage> & messages, bool add_generation_prompt) const;
    // The prompt chat() would decode for these messages (nothing dropped), with
    // its turn boundaries for kv::GenRequest's DropOldestTurns. Unsupported (with
    // the reason) when the template does not render turns as separable token
    // spans (e.g. it merges the system prompt into the first user turn).
    struct ChatPrompt {
        std::vector<Token> tokens;
        TurnSpans turns;
    };
    Result<ChatPrompt> chat_prompt(const std::vector<ChatMessage> & messages) const;
    const ChatTemplate & chat_template() const { return *m_template; }
    const std::string & template_warning() const { return m_template_warning; }
    const Model & model() const { return *m_model; }
    Context & context() { return *m_ctx; }
    const std::vector<Token> & cached_tokens() const { return m_tokens; }

  private:
    Session() = default;
    std::shared_ptr<const Model> m_model;
    std::unique_ptr<Context> m_ctx;
    SessionParams m_params;
    std::shared_ptr<const ChatTemplate> m_template;
    std::string m_template_warning;
    std::vector<Token> m_tokens;  // tokens whose K/V are in the context
    // [spec] the speculator is kept across requests (drafter K/V, n-gram pool)
    // while the request's speculative config stays the same.
    std::shared_ptr<Speculator> m_spec;
    std::string m_spec_key;
};

}  // namespace gb
