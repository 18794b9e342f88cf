// Chat templates embedded at build time from resources/chat_templates/*.jinja
// (generated source, see engine/cmake/embed_templates.cmake).
#pragma once

#include <string_view>

namespace gb {

// The template text for `name`, or empty if there is none.
std::string_view builtin_template_source(std::string_view name);

}  // namespace gb
