// Renders a model's own Jinja chat template (tokenizer.chat_template) with a
// small Jinja subset interpreter: for/if/set/macros, loop variables, the
// filters and tests real templates use, raise_exception.
#pragma once

#include "glassbox/result.h"

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace gb {

struct ChatMessage {
    std::string role;     // "system" | "user" | "assistant" | ...
    std::string content;
};

struct ChatTemplateInputs {
    std::vector<ChatMessage> messages;
    bool        add_generation_prompt = true;
    std::string bos_token;
    std::string eos_token;
};

class ChatTemplate {
  public:
    // Parse errors (and features outside the subset) come back as errors.
    static Result<std::shared_ptr<const ChatTemplate>> parse(std::string_view source);
    virtual ~ChatTemplate() = default;
    virtual Result<std::string> render(const ChatTemplateInputs & in) const = 0;
    virtual const std::string & source() const = 0;
};

// A model's template if it parses and renders a probe conversation, else a
// ChatML fallback; *warning explains why the fallback was taken.
std::shared_ptr<const ChatTemplate> chat_template_or_fallback(std::string_view source, std::string * warning);

// Known templates shipped with the engine, by name: "gemma" (Gemma 3), "chatml"
// (Qwen2.5, with tools), "llama3" (Llama 3.1), "llama2", "mistral" (v0.3),
// "phi3", "zephyr". Empty for an unknown name. For models whose GGUF lacks
// tokenizer.chat_template (pick by architecture, e.g. gemma3 -> "gemma").
std::string builtin_chat_template(std::string_view name);

}  // namespace gb
