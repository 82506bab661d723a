#include "config/expand.h"

namespace fd::config {
namespace {

bool is_name_char(char c, bool first) {
  bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
  return alpha || (!first && c >= '0' && c <= '9');
}

bool is_variable_name(std::string_view name) {
  if (name.empty()) {
    return false;
  }
  for (size_t i = 0; i < name.size(); ++i) {
    if (!is_name_char(name[i], i == 0)) {
      return false;
    }
  }
  return true;
}

// Resolves the inside of one "${...}": "VAR" or "VAR:-default". Like the shell (and compose),
// the default also applies when the variable is set but empty.
Result<std::string> resolve_variable(std::string_view expr, const Environment& env) {
  size_t sep = expr.find(":-");
  std::string name(expr.substr(0, sep));
  if (!is_variable_name(name)) {
    return make_error(Errc::invalid_argument, "invalid environment variable name \"" + name + "\"" +
                                                  " in \"${" + std::string(expr) + "}\"");
  }
  std::optional<std::string> value = env(name);
  if (sep == std::string_view::npos) {
    if (!value) {
      return make_error(Errc::invalid_argument, "environment variable " + name + " is not set");
    }
    return std::move(*value);
  }
  if (!value || value->empty()) {
    return std::string(expr.substr(sep + 2));
  }
  return std::move(*value);
}

}  // namespace

Result<std::string> expand_variables(std::string_view text, const Environment& env) {
  std::string out;
  size_t pos = 0;
  while (true) {
    size_t start = text.find("${", pos);
    if (start == std::string_view::npos) {
      break;
    }
    out.append(text.substr(pos, start - pos));
    size_t end = text.find('}', start + 2);
    if (end == std::string_view::npos) {
      return make_error(Errc::invalid_argument,
                        "unterminated \"${\" in \"" + std::string(text) + "\"");
    }
    auto value = resolve_variable(text.substr(start + 2, end - start - 2), env);
    if (!value) {
      return value.error();
    }
    out += *value;
    pos = end + 1;
  }
  out.append(text.substr(pos));
  return out;
}

}  // namespace fd::config
