// Renders a parsed Jinja program against a set of variables, with jinja2's
// scoping (loop bodies and macros get their own scope; namespace() crosses them).
#pragma once

#include "jinja/parser.h"
#include "jinja/value.h"

#include <string>

namespace gb::jinja {

// `context` holds the template variables (messages, add_generation_prompt, ...);
// built-in globals (range, namespace, raise_exception, strftime_now) are added.
// Errors name the template line and column, except raise_exception() messages.
Result<std::string> render_program(const Program & program, const Dict & context);

}  // namespace gb::jinja
