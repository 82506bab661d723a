#include "config/yaml_stream.h"

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/parser.h>

#include <sstream>
#include <vector>

namespace fd::config {
namespace {

// Records where each document starts, and where its top node does (past any "---"); the
// nodes themselves are built by YAML::Load.
class DocumentStarts : public YAML::EventHandler {
 public:
  struct Document {
    YAML::Mark start;
    YAML::Mark node;
  };

  void OnDocumentStart(const YAML::Mark& mark) override {
    documents.push_back({mark, mark});
    seen_node_ = false;
  }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark& mark, YAML::anchor_t) override { node(mark); }
  void OnAlias(const YAML::Mark& mark, YAML::anchor_t) override { node(mark); }
  void OnScalar(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                const std::string&) override {
    node(mark);
  }
  void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {
    node(mark);
  }
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {
    node(mark);
  }
  void OnMapEnd() override {}

  std::vector<Document> documents;

 private:
  void node(const YAML::Mark& mark) {
    if (!seen_node_ && !documents.empty()) {
      documents.back().node = mark;
    }
    seen_node_ = true;
  }
  bool seen_node_ = false;
};

}  // namespace

std::optional<StreamProblem> single_document_problem(const std::string& text) {
  std::istringstream in(text);
  YAML::Parser parser(in);
  DocumentStarts events;
  for (int i = 0; i < 3 && parser.HandleNextDocument(events); ++i) {
  }
  const auto& docs = events.documents;
  for (size_t i = 1; i < docs.size(); ++i) {
    int pos = docs[i].start.pos;
    if (pos == docs[i - 1].start.pos) {
      std::string what = pos >= 0 && static_cast<size_t>(pos) < text.size()
                             ? std::string("'") + text[pos] + "'"
                             : std::string("this");
      return StreamProblem{docs[i].start, "invalid YAML: " + what + " cannot start a node here"};
    }
  }
  if (docs.size() > 1) {
    return StreamProblem{docs[1].node,
                         "a second YAML document: the config file must be one document"};
  }
  return std::nullopt;
}

}  // namespace fd::config
