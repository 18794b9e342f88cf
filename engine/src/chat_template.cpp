// ChatTemplate over the Jinja subset interpreter: renders a model's own
// tokenizer.chat_template, with a ChatML fallback and built-in templates.
#include "glassbox/chat_template.h"

#include "builtin_templates.h"
#include "jinja/interpreter.h"
#include "jinja/parser.h"

namespace gb {

namespace {

// Generic ChatML, used when a model's template is missing or unusable.
constexpr std::string_view k_fallback_chatml =
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}";

class JinjaChatTemplate final : public ChatTemplate {
  public:
    JinjaChatTemplate(std::string source, std::shared_ptr<const jinja::Program> program)
        : m_source(std::move(source)), m_program(std::move(program)) {}

    Result<std::string> render(const ChatTemplateInputs & in) const override {
        jinja::List messages;
        for (const ChatMessage & m : in.messages) {
            jinja::Value msg = jinja::Value::dict();
            msg.dict_ref().set("role", jinja::Value(m.role));
            msg.dict_ref().set("content", jinja::Value(m.content));
            messages.push_back(std::move(msg));
        }
        jinja::Dict context;
        context.set("messages", jinja::Value::list(std::move(messages)));
        context.set("add_generation_prompt", jinja::Value(in.add_generation_prompt));
        context.set("bos_token", jinja::Value(in.bos_token));
        context.set("eos_token", jinja::Value(in.eos_token));
        return jinja::render_program(*m_program, context);
    }

    const std::string & source() const override { return m_source; }

  private:
    std::string                           m_source;
    std::shared_ptr<const jinja::Program> m_program;
};

std::shared_ptr<const ChatTemplate> fallback_template() {
    auto parsed = ChatTemplate::parse(k_fallback_chatml);
    assert(parsed.ok());
    return parsed.value();
}

}  // namespace

Result<std::shared_ptr<const ChatTemplate>> ChatTemplate::parse(std::string_view source) {
    auto program = jinja::parse_program(source);
    if (!program.ok()) return program.error();
    return std::shared_ptr<const ChatTemplate>(std::make_shared<JinjaChatTemplate>(std::string(source), *program));
}

std::shared_ptr<const ChatTemplate> chat_template_or_fallback(std::string_view source, std::string * warning) {
    auto set_warning = [&](const std::string & why) {
        if (warning) *warning = why + "; using a generic ChatML template instead";
    };
    if (warning) warning->clear();
    if (source.empty()) {
        set_warning("the model has no chat template");
        return fallback_template();
    }
    auto parsed = ChatTemplate::parse(source);
    if (!parsed.ok()) {
        set_warning("the model's chat template could not be parsed (" + parsed.error().to_string() + ")");
        return fallback_template();
    }
    // A probe conversation every chat template should accept.
    ChatTemplateInputs probe;
    probe.messages = {{"user", "Hello"}, {"assistant", "Hi there."}, {"user", "How are you?"}};
    probe.add_generation_prompt = true;
    probe.bos_token = "<s>";
    probe.eos_token = "</s>";
    auto rendered = (*parsed)->render(probe);
    if (!rendered.ok()) {
        set_warning("the model's chat template failed on a probe conversation (" + rendered.error().to_string() + ")");
        return fallback_template();
    }
    return *parsed;
}

std::string builtin_chat_template(std::string_view name) { return std::string(builtin_template_source(name)); }

}  // namespace gb
