#pragma once

#include <yaml-cpp/mark.h>

#include <optional>
#include <string>

namespace fd::config {

struct StreamProblem {
  YAML::Mark mark;
  std::string message;
};

// Why the YAML text |text| is not one document: a second document follows the first, or
// yaml-cpp stops making progress at some character. yaml-cpp 0.7 (Debian 12) turns a ","
// where a node should start into an endless run of empty documents (its issue #1040), so
// YAML::LoadAll on such text never returns and takes all memory; this looks at three
// documents at most. Syntax errors throw YAML::Exception, as YAML::Load does.
std::optional<StreamProblem> single_document_problem(const std::string& text);

}  // namespace fd::config
