#include "config/load.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <set>
#include <utility>

#include "common/file.h"
#include "common/result.h"
#include "config/expand.h"
#include "config/units.h"
#include "config/validate.h"
#include "config/yaml_stream.h"

namespace fd::config {
namespace {

// Upper bound for a server weight, so a balancer can sum the weights of an upstream's servers in
// an int without overflow.
constexpr uint64_t MAX_WEIGHT = 1000;
constexpr uint64_t MAX_WORKERS = 1024;
// Passive and active health thresholds, and retries: small numbers, capped so a typo like 30000
// is an error rather than a server that is never taken out or a request retried for ever.
constexpr uint64_t MAX_FAILS = 1000;
constexpr uint64_t MAX_HEALTH_THRESHOLD = 100;
constexpr uint64_t MAX_RETRIES = 10;
constexpr uint64_t MAX_U32 = std::numeric_limits<uint32_t>::max();
constexpr uint64_t MAX_U64 = std::numeric_limits<uint64_t>::max();

std::string quoted(std::string_view text) {
  return "\"" + std::string(text) + "\"";
}

Mark to_mark(const YAML::Mark& m) {
  if (m.is_null()) {
    return {};
  }
  return {m.line + 1, m.column + 1};
}

// How a value that had the wrong shape looks, for "expected X for "key", got Y".
std::string describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Scalar:
      return quoted(node.Scalar());
    case YAML::NodeType::Sequence:
      return "a sequence";
    case YAML::NodeType::Map:
      return "a map";
    default:
      return "an empty value";
  }
}

bool is_ascii_alnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

bool is_space_or_control(char c) {
  return static_cast<unsigned char>(c) <= 0x20 || c == 0x7f;
}

std::string ascii_lower(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(), [](char c) {
    return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
  });
  return text;
}

// The ACME directory is fetched with libcurl: https, or plain http only for a test CA on this
// machine (Pebble). Userinfo is skipped so "http://localhost@ca.example" is not taken as local.
std::optional<std::string> directory_problem(std::string_view url) {
  if (std::any_of(url.begin(), url.end(), is_space_or_control)) {
    return "directory must not contain spaces or control characters, got " + quoted(url);
  }
  constexpr std::string_view HTTPS = "https://";
  constexpr std::string_view HTTP = "http://";
  bool https = url.starts_with(HTTPS);
  if (!https && !url.starts_with(HTTP)) {
    return "directory must be an https:// URL, got " + quoted(url);
  }
  std::string_view authority = url.substr(https ? HTTPS.size() : HTTP.size());
  authority = authority.substr(0, authority.find_first_of("/?#"));
  size_t at = authority.rfind('@');
  std::string_view host = at == std::string_view::npos ? authority : authority.substr(at + 1);
  host = host.substr(0, host.starts_with("[") ? host.find(']') + 1 : host.find(':'));
  if (host.empty()) {
    return "directory has no host, got " + quoted(url);
  }
  std::string name = ascii_lower(std::string(host));
  if (!https && name != "127.0.0.1" && name != "localhost" && name != "[::1]") {
    return "directory must be an https:// URL (http:// is allowed only for 127.0.0.1, localhost "
           "and [::1]), got " +
           quoted(url);
  }
  return std::nullopt;
}

// A name the CA can validate with http-01 or tls-alpn-01: letters, digits and "-" in dot-separated
// labels (LDH, RFC 1123), as written so the message shows what the user typed.
std::optional<std::string> domain_problem(std::string_view name) {
  if (name.starts_with("*")) {
    return "wildcard domain " + quoted(name) +
           " is not supported: http-01 and tls-alpn-01 cannot validate wildcards";
  }
  std::string invalid = "invalid domain name " + quoted(name) + ": ";
  if (name.empty()) {
    return invalid + "empty";
  }
  if (name.size() > 253) {
    return invalid + "longer than 253 characters";
  }
  auto allowed = [](char c) { return is_ascii_alnum(c) || c == '-' || c == '.'; };
  if (!std::all_of(name.begin(), name.end(), allowed)) {
    return invalid + "only letters, digits, \"-\" and \".\" are allowed";
  }
  std::string_view label;
  for (size_t start = 0; start <= name.size(); start += label.size() + 1) {
    label = name.substr(start, name.find('.', start) - start);
    if (label.empty()) {
      return invalid + "empty label";
    }
    if (label.size() > 63) {
      return invalid + "label " + quoted(label) + " is longer than 63 characters";
    }
    if (label.front() == '-' || label.back() == '-') {
      return invalid + "label " + quoted(label) + " starts or ends with \"-\"";
    }
  }
  auto is_digit = [](char c) { return c >= '0' && c <= '9'; };
  if (std::all_of(label.begin(), label.end(), is_digit)) {
    return invalid + "the last label is all digits (IP addresses are not supported)";
  }
  return std::nullopt;
}

std::string range_text(uint64_t min, uint64_t max) {
  if (min == 0 && max == MAX_U64) {
    return "a non-negative integer";
  }
  return "an integer from " + std::to_string(min) + " to " + std::to_string(max);
}

std::optional<uint64_t> parse_integer(std::string_view text, uint64_t min, uint64_t max) {
  uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || value < min ||
      value > max) {
    return std::nullopt;
  }
  return value;
}

// One value to convert, with what the messages call it and where they point: at the key when
// the value is empty, because yaml-cpp marks an empty value at the token after it.
struct Entry {
  std::string label;  // "\"tls\"" or "an entry of \"listen\""
  YAML::Node node;
  Mark mark;
};

using Reader = std::function<void(const Entry&)>;

struct Field {
  std::string_view key;
  Reader read;
  bool required = false;
};

class Loader {
 public:
  Loader(std::string source, const Environment& env) : source_(std::move(source)), env_(env) {}

  Config load(const YAML::Node& root);
  std::vector<Diagnostic> take_errors() { return std::move(errors_); }

 private:
  void error(Mark at, std::string message);

  // Structure.
  void read_map(const Entry& entry, const std::vector<Field>& fields);
  void read_sequence(const Entry& entry, const Reader& read_item, bool allow_empty = false);
  bool check_not_empty(const Entry& entry);

  // Scalars. Each reports its own error and leaves |*out| unchanged on failure.
  std::optional<std::string> scalar(const Entry& entry, std::string_view expected);
  void read_string(const Entry& entry, std::string* out);
  void read_non_empty_string(const Entry& entry, std::string* out);
  void read_bool(const Entry& entry, bool* out);
  void read_duration(const Entry& entry, Duration* out, bool positive = false);
  void read_rate(const Entry& entry, uint64_t* out);
  void read_choice(const Entry& entry, const std::vector<std::string_view>& choices,
                   std::string* out);
  void read_address(const Entry& entry, std::string* address, HostPort* endpoint);
  template <typename T>
  void read_integer(const Entry& entry, uint64_t min, uint64_t max, T* out);
  void read_workers(const Entry& entry, unsigned* out);

  // Sections.
  void read_listener(const Entry& entry, Listener* out);
  void read_tls(const Entry& entry, Tls* out);
  void read_certificate(const Entry& entry, Certificate* out);
  void read_acme(const Entry& entry, Tls* out);
  void read_acme_directory(const Entry& entry, std::string* out);
  void read_acme_email(const Entry& entry, std::string* out);
  void read_acme_domain(const Entry& entry, std::set<std::string>* seen,
                        std::vector<std::string>* out);
  void read_acme_renew(const Entry& entry, Acme* out);
  void read_eab_hmac_key(const Entry& entry, std::string* out);
  void read_upstreams(const Entry& entry, std::vector<Upstream>* out);
  void read_upstream(const Entry& entry, Upstream* out);
  void read_server(const Entry& entry, ServerSpec* out);
  void read_health_check(const Entry& entry, Upstream* out);
  void read_health_path(const Entry& entry, std::string* out);
  void read_route(const Entry& entry, Route* out);
  void read_match(const Entry& entry, RouteMatch* out);
  void read_log(const Entry& entry, Log* out);
  void read_limits(const Entry& entry, Limits* out);
  void read_admin(const Entry& entry, Admin* out);

  std::string source_;
  const Environment& env_;
  std::vector<Diagnostic> errors_;
};

void Loader::error(Mark at, std::string message) {
  errors_.push_back(Diagnostic{source_, at.line, at.col, std::move(message)});
}

// Calls the reader of each key in |fields|; reports keys that are not there, duplicated, missing
// when required, or not scalars. An empty value counts as an empty map, so "log:" with everything
// commented out means the defaults.
void Loader::read_map(const Entry& entry, const std::vector<Field>& fields) {
  if (!entry.node.IsMap() && !entry.node.IsNull()) {
    error(entry.mark, "expected a map for " + entry.label + ", got " + describe(entry.node));
    return;
  }
  std::set<std::string> seen;
  if (entry.node.IsMap()) {
    for (const auto& kv : entry.node) {
      Mark key_mark = to_mark(kv.first.Mark());
      if (!kv.first.IsScalar()) {
        error(key_mark, "expected a string key, got " + describe(kv.first));
        continue;
      }
      const std::string& key = kv.first.Scalar();
      auto field =
          std::find_if(fields.begin(), fields.end(), [&](const Field& f) { return f.key == key; });
      if (field == fields.end()) {
        error(key_mark, "unknown key " + quoted(key));
      } else if (!seen.insert(key).second) {
        error(key_mark, "duplicate key " + quoted(key));
      } else {
        field->read(Entry{quoted(key), kv.second,
                          kv.second.IsNull() ? key_mark : to_mark(kv.second.Mark())});
      }
    }
  }
  for (const Field& field : fields) {
    if (field.required && seen.count(std::string(field.key)) == 0) {
      error(entry.mark, "missing required key " + quoted(field.key));
    }
  }
}

bool Loader::check_not_empty(const Entry& entry) {
  if (entry.node.size() == 0) {
    error(entry.mark, entry.label + " must not be empty");
    return false;
  }
  return true;
}

// Calls |read_item| for each item of the sequence |entry|. Where empty is allowed, so is an empty
// value, like a map section whose items are all commented out.
void Loader::read_sequence(const Entry& entry, const Reader& read_item, bool allow_empty) {
  if (allow_empty && entry.node.IsNull()) {
    return;
  }
  if (!entry.node.IsSequence()) {
    error(entry.mark, "expected a sequence for " + entry.label + ", got " + describe(entry.node));
    return;
  }
  if (!allow_empty && !check_not_empty(entry)) {
    return;
  }
  for (const auto& item : entry.node) {
    read_item(Entry{"an entry of " + entry.label, item, to_mark(item.Mark())});
  }
}

std::optional<std::string> Loader::scalar(const Entry& entry, std::string_view expected) {
  if (!entry.node.IsScalar()) {
    error(entry.mark, "expected " + std::string(expected) + " for " + entry.label + ", got " +
                          describe(entry.node));
    return std::nullopt;
  }
  auto expanded = expand_variables(entry.node.Scalar(), env_);
  if (!expanded) {
    error(entry.mark, expanded.error().message);
    return std::nullopt;
  }
  return std::move(*expanded);
}

void Loader::read_string(const Entry& entry, std::string* out) {
  if (auto text = scalar(entry, "a string")) {
    *out = std::move(*text);
  }
}

// For values where "" can only be a mistake, such as a path or an identifier.
void Loader::read_non_empty_string(const Entry& entry, std::string* out) {
  auto text = scalar(entry, "a string");
  if (!text) {
    return;
  }
  if (text->empty()) {
    error(entry.mark, entry.label + " must not be empty");
    return;
  }
  *out = std::move(*text);
}

// Only the YAML 1.2 spellings: "yes", "on" and friends are more often typos than intent.
void Loader::read_bool(const Entry& entry, bool* out) {
  auto text = scalar(entry, "a boolean");
  if (!text) {
    return;
  }
  if (*text == "true" || *text == "True" || *text == "TRUE") {
    *out = true;
  } else if (*text == "false" || *text == "False" || *text == "FALSE") {
    *out = false;
  } else {
    error(entry.mark, "expected a boolean for " + entry.label + ", got " + quoted(*text));
  }
}

// |positive| is for timeouts where 0 would fail every connection or request at once.
void Loader::read_duration(const Entry& entry, Duration* out, bool positive) {
  auto text = scalar(entry, "a duration like 5s");
  if (!text) {
    return;
  }
  auto duration = parse_duration(*text);
  if (!duration) {
    error(entry.mark,
          "expected a duration like 5s for " + entry.label + ": " + duration.error().message);
  } else if (positive && duration->count() == 0) {
    error(entry.mark, entry.label + " must be greater than 0");
  } else {
    *out = *duration;
  }
}

void Loader::read_rate(const Entry& entry, uint64_t* out) {
  auto text = scalar(entry, "a rate like 1KiB/s");
  if (!text) {
    return;
  }
  auto rate = parse_rate(*text);
  if (!rate) {
    error(entry.mark, "expected a rate like 1KiB/s for " + entry.label + ": " +
                          rate.error().message);
  } else {
    *out = *rate;
  }
}

void Loader::read_choice(const Entry& entry, const std::vector<std::string_view>& choices,
                         std::string* out) {
  auto text = scalar(entry, "a string");
  if (!text) {
    return;
  }
  if (std::find(choices.begin(), choices.end(), *text) != choices.end()) {
    *out = std::move(*text);
    return;
  }
  std::string list;
  for (std::string_view choice : choices) {
    list += (list.empty() ? "" : ", ") + std::string(choice);
  }
  error(entry.mark, "expected one of " + list + " for " + entry.label + ", got " + quoted(*text));
}

void Loader::read_address(const Entry& entry, std::string* address, HostPort* endpoint) {
  auto text = scalar(entry, "host:port");
  if (!text) {
    return;
  }
  auto parsed = parse_host_port(*text);
  if (!parsed) {
    error(entry.mark, "expected host:port for " + entry.label + ": " + parsed.error().message);
    return;
  }
  *address = std::move(*text);
  *endpoint = std::move(*parsed);
}

template <typename T>
void Loader::read_integer(const Entry& entry, uint64_t min, uint64_t max, T* out) {
  auto text = scalar(entry, range_text(min, max));
  if (!text) {
    return;
  }
  if (auto value = parse_integer(*text, min, max)) {
    *out = static_cast<T>(*value);
  } else {
    error(entry.mark,
          "expected " + range_text(min, max) + " for " + entry.label + ", got " + quoted(*text));
  }
}

void Loader::read_workers(const Entry& entry, unsigned* out) {
  std::string expected = "\"auto\" or " + range_text(1, MAX_WORKERS);
  auto text = scalar(entry, expected);
  if (!text) {
    return;
  }
  if (*text == "auto") {
    *out = 0;
  } else if (auto value = parse_integer(*text, 1, MAX_WORKERS)) {
    *out = static_cast<unsigned>(*value);
  } else {
    error(entry.mark, "expected " + expected + " for " + entry.label + ", got " + quoted(*text));
  }
}

void Loader::read_listener(const Entry& entry, Listener* out) {
  out->mark = entry.mark;
  Mark https_port_mark;
  Mark hsts_mark;
  read_map(entry,
           {
               {"address", [&](const Entry& e) { read_address(e, &out->address, &out->endpoint); },
                true},
               {"tls", [&](const Entry& e) { read_bool(e, &out->tls); }},
               {"redirect_https", [&](const Entry& e) { read_bool(e, &out->redirect_https); }},
               {"https_port",
                [&](const Entry& e) {
                  read_integer(e, 1, 65535, &out->https_port);
                  https_port_mark = e.mark;
                }},
               {"hsts",
                [&](const Entry& e) {
                  read_duration(e, &out->hsts);
                  hsts_mark = e.mark;
                }},
           });
  if (out->tls && out->redirect_https) {
    error(entry.mark, "a listener cannot have both tls and redirect_https");
  }
  if (out->https_port != 0 && !out->redirect_https) {
    error(https_port_mark, "https_port only applies to a listener with redirect_https: true");
  }
  // RFC 6797 7.2: a host must not send the header over plain HTTP.
  if (out->hsts.count() != 0 && !out->tls) {
    error(hsts_mark, "hsts only applies to a listener with tls: true");
  }
}

void Loader::read_certificate(const Entry& entry, Certificate* out) {
  out->mark = entry.mark;
  read_map(entry, {
                      {"cert", [&](const Entry& e) { read_string(e, &out->cert); }, true},
                      {"key", [&](const Entry& e) { read_string(e, &out->key); }, true},
                  });
}

void Loader::read_tls(const Entry& entry, Tls* out) {
  auto read_certificates = [&](const Entry& e) {
    read_sequence(
        e, [&](const Entry& item) { read_certificate(item, &out->certificates.emplace_back()); },
        true);
  };
  read_map(entry, {
                      {"min_version",
                       [&](const Entry& e) {
                         read_choice(e, {"1.2", "1.3"}, &out->min_version);
                       }},
                      {"certificates", read_certificates},
                      {"acme", [&](const Entry& e) { read_acme(e, out); }},
                  });
}

void Loader::read_acme_directory(const Entry& entry, std::string* out) {
  auto url = scalar(entry, "a URL");
  if (!url) {
    return;
  }
  if (auto problem = directory_problem(*url)) {
    error(entry.mark, std::move(*problem));
    return;
  }
  *out = std::move(*url);
}

// The account contact; sent to the CA as "mailto:" + email. Empty means none, so that
// `email: "${ACME_EMAIL:-}"` lets a deployment leave it out.
void Loader::read_acme_email(const Entry& entry, std::string* out) {
  auto email = scalar(entry, "a string");
  if (!email || email->empty()) {
    return;
  }
  size_t at = email->find('@');
  if (std::any_of(email->begin(), email->end(), is_space_or_control)) {
    error(entry.mark, "email must not contain spaces or control characters, got " + quoted(*email));
  } else if (at == std::string::npos || at != email->rfind('@') || at == 0 ||
             at + 1 == email->size()) {
    error(entry.mark, "email must be one address like ops@example.com, got " + quoted(*email));
  } else {
    *out = std::move(*email);
  }
}

// DNS names are case-insensitive: stored in lower case, so "Example.com" and "example.com" are
// one certificate (and a duplicate).
void Loader::read_acme_domain(const Entry& entry, std::set<std::string>* seen,
                              std::vector<std::string>* out) {
  auto name = scalar(entry, "a domain name");
  if (!name) {
    return;
  }
  if (auto problem = domain_problem(*name)) {
    error(entry.mark, std::move(*problem));
    return;
  }
  std::string lower = ascii_lower(*name);
  if (!seen->insert(lower).second) {
    error(entry.mark, "duplicate domain " + quoted(*name));
    return;
  }
  out->push_back(std::move(lower));
}

void Loader::read_acme_renew(const Entry& entry, Acme* out) {
  std::string expected = "\"auto\" or a duration like 30d";
  auto text = scalar(entry, expected);
  if (!text) {
    return;
  }
  if (*text == "auto") {
    out->renew_auto = true;
    out->renew_before = Duration{0};
    return;
  }
  auto duration = parse_duration(*text);
  if (!duration) {
    error(entry.mark,
          "expected " + expected + " for " + entry.label + ": " + duration.error().message);
  } else if (duration->count() == 0) {
    error(entry.mark, entry.label + " must be greater than 0");
  } else {
    out->renew_auto = false;
    out->renew_before = *duration;
  }
}

// The key is a secret: messages never repeat it.
void Loader::read_eab_hmac_key(const Entry& entry, std::string* out) {
  auto key = scalar(entry, "a string");
  if (!key) {
    return;
  }
  auto is_base64url = [](char c) { return is_ascii_alnum(c) || c == '-' || c == '_'; };
  if (key->empty()) {
    error(entry.mark, entry.label + " must not be empty");
  } else if (!std::all_of(key->begin(), key->end(), is_base64url)) {
    error(entry.mark, entry.label +
                          " must be base64url: letters, digits, \"-\" and \"_\", without \"=\" "
                          "padding");
  } else if (key->size() % 4 == 1) {
    error(entry.mark, entry.label + " is not valid base64url: truncated or one character too long");
  } else {
    *out = std::move(*key);
  }
}

// Present, even empty, turns managed certificates on; directory and domains are then required.
// External Account Binding takes both its keys or neither.
void Loader::read_acme(const Entry& entry, Tls* out) {
  out->acme_enabled = true;
  Acme& acme = out->acme;
  acme.mark = entry.mark;
  std::set<std::string> seen;
  std::optional<Mark> kid_mark;
  std::optional<Mark> hmac_mark;
  auto read_domains = [&](const Entry& e) {
    read_sequence(e, [&](const Entry& item) { read_acme_domain(item, &seen, &acme.domains); });
  };
  read_map(
      entry,
      {
          {"directory", [&](const Entry& e) { read_acme_directory(e, &acme.directory); }, true},
          {"email", [&](const Entry& e) { read_acme_email(e, &acme.email); }},
          {"domains", read_domains, true},
          {"challenge",
           [&](const Entry& e) {
             read_choice(e, {"http-01", "tls-alpn-01"}, &acme.challenge);
           }},
          {"storage", [&](const Entry& e) { read_non_empty_string(e, &acme.storage); }},
          // Empty means none, as for email: `ca_bundle: "${ACME_CA_BUNDLE:-}"`.
          {"ca_bundle", [&](const Entry& e) {
             if (auto path = scalar(e, "a string")) {
               acme.ca_bundle = std::move(*path);
             }
           }},
          {"renew", [&](const Entry& e) { read_acme_renew(e, &acme); }},
          {"eab_kid",
           [&](const Entry& e) {
             kid_mark = e.mark;
             read_non_empty_string(e, &acme.eab_kid);
           }},
          {"eab_hmac_key",
           [&](const Entry& e) {
             hmac_mark = e.mark;
             read_eab_hmac_key(e, &acme.eab_hmac_key);
           }},
      });
  if (kid_mark && !hmac_mark) {
    error(*kid_mark, "eab_kid is set but eab_hmac_key is not; External Account Binding needs both");
  }
  if (hmac_mark && !kid_mark) {
    error(*hmac_mark,
          "eab_hmac_key is set but eab_kid is not; External Account Binding needs both");
  }
}

void Loader::read_server(const Entry& entry, ServerSpec* out) {
  out->mark = entry.mark;
  if (entry.node.IsScalar()) {
    read_address(entry, &out->address, &out->endpoint);
    return;
  }
  if (!entry.node.IsMap()) {
    error(entry.mark,
          "expected host:port or a map for " + entry.label + ", got " + describe(entry.node));
    return;
  }
  read_map(entry,
           {
               {"address", [&](const Entry& e) { read_address(e, &out->address, &out->endpoint); },
                true},
               {"weight", [&](const Entry& e) { read_integer(e, 1, MAX_WEIGHT, &out->weight); }},
           });
}

// The path goes into the probe's request line as written, so it must be origin-form.
void Loader::read_health_path(const Entry& entry, std::string* out) {
  auto path = scalar(entry, "a string");
  if (!path) {
    return;
  }
  if (path->empty() || path->front() != '/') {
    error(entry.mark, "path must start with \"/\", got " + quoted(*path));
    return;
  }
  auto bad = [](char c) { return static_cast<unsigned char>(c) <= 0x20 || c == 0x7f; };
  if (std::any_of(path->begin(), path->end(), bad)) {
    error(entry.mark, "path must not contain spaces or control characters, got " + quoted(*path));
    return;
  }
  *out = std::move(*path);
}

// Present, even empty, turns active checks on. A probe that may outlast its interval would
// overlap the next one, so timeout <= interval; checked only when both values were read cleanly.
void Loader::read_health_check(const Entry& entry, Upstream* out) {
  HealthCheck& hc = out->health_check;
  out->health_check_enabled = true;
  hc.mark = entry.mark;
  std::optional<Mark> interval_mark;
  std::optional<Mark> timeout_mark;
  size_t errors_before = errors_.size();
  read_map(
      entry,
      {
          {"path", [&](const Entry& e) { read_health_path(e, &hc.path); }},
          {"interval",
           [&](const Entry& e) {
             interval_mark = e.mark;
             read_duration(e, &hc.interval, true);
           }},
          {"timeout",
           [&](const Entry& e) {
             timeout_mark = e.mark;
             read_duration(e, &hc.timeout, true);
           }},
          {"healthy_after",
           [&](const Entry& e) { read_integer(e, 1, MAX_HEALTH_THRESHOLD, &hc.healthy_after); }},
          {"unhealthy_after",
           [&](const Entry& e) { read_integer(e, 1, MAX_HEALTH_THRESHOLD, &hc.unhealthy_after); }},
      });
  if (errors_.size() == errors_before && hc.timeout > hc.interval) {
    // At the timeout when it was written, else at the interval that made the default too long.
    error(timeout_mark.value_or(interval_mark.value_or(entry.mark)),
          "health_check timeout " + format_duration(hc.timeout) +
              " must not be longer than its interval " + format_duration(hc.interval));
  }
}

void Loader::read_upstream(const Entry& entry, Upstream* out) {
  auto read_servers = [&](const Entry& e) {
    read_sequence(e, [&](const Entry& item) { read_server(item, &out->servers.emplace_back()); });
  };
  auto read_balance = [&](const Entry& e) {
    read_choice(e, {"round_robin", "least_conn", "random_two"}, &out->balance);
  };
  read_map(
      entry,
      {
          {"servers", read_servers, true},
          {"balance", read_balance},
          {"resolve_interval",
           [&](const Entry& e) { read_duration(e, &out->resolve_interval, true); }},
          {"health_check", [&](const Entry& e) { read_health_check(e, out); }},
          {"max_fails", [&](const Entry& e) { read_integer(e, 0, MAX_FAILS, &out->max_fails); }},
          {"fail_window", [&](const Entry& e) { read_duration(e, &out->fail_window, true); }},
          {"fail_timeout", [&](const Entry& e) { read_duration(e, &out->fail_timeout, true); }},
          {"retries", [&](const Entry& e) { read_integer(e, 0, MAX_RETRIES, &out->retries); }},
          {"retry_timeout", [&](const Entry& e) { read_duration(e, &out->retry_timeout, true); }},
          {"connect_timeout",
           [&](const Entry& e) { read_duration(e, &out->connect_timeout, true); }},
          {"response_timeout",
           [&](const Entry& e) { read_duration(e, &out->response_timeout, true); }},
          {"max_idle_connections",
           [&](const Entry& e) { read_integer(e, 0, MAX_U32, &out->max_idle_connections); }},
          {"idle_timeout", [&](const Entry& e) { read_duration(e, &out->idle_timeout); }},
      });
}

// The map keeps YAML order, which is the order upstreams are listed in /status.
void Loader::read_upstreams(const Entry& entry, std::vector<Upstream>* out) {
  if (!entry.node.IsMap()) {
    error(entry.mark, "expected a map for " + entry.label + ", got " + describe(entry.node));
    return;
  }
  if (!check_not_empty(entry)) {
    return;
  }
  std::set<std::string> names;
  for (const auto& kv : entry.node) {
    Mark key_mark = to_mark(kv.first.Mark());
    if (!kv.first.IsScalar() || kv.first.Scalar().empty()) {
      error(key_mark, "expected an upstream name, got " + describe(kv.first));
      continue;
    }
    const std::string& name = kv.first.Scalar();
    if (!names.insert(name).second) {
      error(key_mark, "duplicate upstream " + quoted(name));
      continue;
    }
    Upstream& upstream = out->emplace_back();
    upstream.name = name;
    upstream.mark = key_mark;
    read_upstream(Entry{"upstream " + quoted(name), kv.second, key_mark}, &upstream);
  }
}

void Loader::read_match(const Entry& entry, RouteMatch* out) {
  auto read_prefix = [&](const Entry& e) {
    auto prefix = scalar(e, "a string");
    if (!prefix) {
      return;
    }
    if (prefix->empty() || prefix->front() != '/') {
      error(e.mark, "path_prefix must start with \"/\", got " + quoted(*prefix));
      return;
    }
    out->path_prefix = std::move(*prefix);
  };
  read_map(entry, {
                      {"host", [&](const Entry& e) { read_string(e, &out->host); }},
                      {"path_prefix", read_prefix},
                  });
}

void Loader::read_route(const Entry& entry, Route* out) {
  out->mark = entry.mark;
  auto read_upstream_name = [&](const Entry& e) {
    out->upstream_mark = e.mark;
    read_string(e, &out->upstream);
  };
  read_map(entry, {
                      {"match", [&](const Entry& e) { read_match(e, &out->match); }},
                      {"upstream", read_upstream_name, true},
                  });
}

void Loader::read_log(const Entry& entry, Log* out) {
  read_map(entry, {
                      {"level",
                       [&](const Entry& e) {
                         read_choice(e, {"debug", "info", "warn", "error"}, &out->level);
                       }},
                      {"access", [&](const Entry& e) { read_bool(e, &out->access); }},
                  });
}

void Loader::read_limits(const Entry& entry, Limits* out) {
  read_map(
      entry,
      {
          {"max_connections",
           [&](const Entry& e) { read_integer(e, 1, MAX_U32, &out->max_connections); }},
          {"header_timeout", [&](const Entry& e) { read_duration(e, &out->header_timeout, true); }},
          {"idle_timeout", [&](const Entry& e) { read_duration(e, &out->idle_timeout); }},
          {"body_timeout", [&](const Entry& e) { read_duration(e, &out->body_timeout); }},
          {"body_min_rate", [&](const Entry& e) { read_rate(e, &out->body_min_rate); }},
          {"max_header_bytes",
           [&](const Entry& e) { read_integer(e, 1024, 1048576, &out->max_header_bytes); }},
          {"max_headers", [&](const Entry& e) { read_integer(e, 1, 10000, &out->max_headers); }},
          {"max_requests_per_connection",
           [&](const Entry& e) { read_integer(e, 1, MAX_U32, &out->max_requests_per_connection); }},
          {"max_body_bytes",
           [&](const Entry& e) { read_integer(e, 0, MAX_U64, &out->max_body_bytes); }},
      });
}

// Present, even empty, turns the admin listener on at its default address.
void Loader::read_admin(const Entry& entry, Admin* out) {
  out->enabled = true;
  out->mark = entry.mark;
  read_map(entry,
           {
               {"address", [&](const Entry& e) { read_address(e, &out->address, &out->endpoint); }},
           });
}

Config Loader::load(const YAML::Node& root) {
  Config cfg;
  cfg.source = source_;
  auto read_listen = [&](const Entry& e) {
    read_sequence(e,
                  [&](const Entry& item) { read_listener(item, &cfg.listeners.emplace_back()); });
  };
  auto read_routes = [&](const Entry& e) {
    read_sequence(e, [&](const Entry& item) { read_route(item, &cfg.routes.emplace_back()); });
  };
  // Top-level keys have no better place to point at than the file itself.
  read_map(
      Entry{"the config file", root, Mark{}},
      {
          {"listen", read_listen, true},
          {"tls", [&](const Entry& e) { read_tls(e, &cfg.tls); }},
          {"upstreams", [&](const Entry& e) { read_upstreams(e, &cfg.upstreams); }, true},
          {"routes", read_routes, true},
          {"admin", [&](const Entry& e) { read_admin(e, &cfg.admin); }},
          {"log", [&](const Entry& e) { read_log(e, &cfg.log); }},
          {"limits", [&](const Entry& e) { read_limits(e, &cfg.limits); }},
          {"shutdown_timeout", [&](const Entry& e) { read_duration(e, &cfg.shutdown_timeout); }},
          {"shutdown_delay", [&](const Entry& e) { read_duration(e, &cfg.shutdown_delay); }},
          {"workers", [&](const Entry& e) { read_workers(e, &cfg.workers); }},
          {"user", [&](const Entry& e) { read_non_empty_string(e, &cfg.user); }},
      });
  return cfg;
}

}  // namespace

std::string to_string(const Diagnostic& d) {
  if (d.line > 0) {
    return d.file + ":" + std::to_string(d.line) + ":" + std::to_string(d.col) + ": " + d.message;
  }
  return d.file + ": " + d.message;
}

Environment process_environment() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* value = std::getenv(name.c_str());
    if (value == nullptr) {
      return std::nullopt;
    }
    return std::string(value);
  };
}

LoadResult load_file(const std::string& path, const Environment& env) {
  auto text = read_file(path);
  if (!text) {
    LoadResult result;
    result.errors.push_back(
        Diagnostic{path, 0, 0, "cannot read config file: " + text.error().message});
    return result;
  }
  return load_string(*text, path, env);
}

// yaml-cpp reports syntax errors by throwing; they stop here, as diagnostics with their mark.
LoadResult load_string(std::string_view yaml, const std::string& source, const Environment& env) {
  LoadResult result;
  Loader loader(source, env);
  Config cfg;
  try {
    // YAML::Load would silently take the first of several documents; text after the config
    // (a paste gone wrong) must be an error, not ignored.
    std::string text(yaml);
    if (auto problem = single_document_problem(text)) {
      Mark at = to_mark(problem->mark);
      result.errors.push_back(Diagnostic{source, at.line, at.col, problem->message});
      return result;
    }
    cfg = loader.load(YAML::Load(text));
  } catch (const YAML::Exception& e) {
    Mark at = to_mark(e.mark);
    result.errors.push_back(Diagnostic{source, at.line, at.col, "invalid YAML: " + e.msg});
    return result;
  }
  result.errors = loader.take_errors();
  if (result.errors.empty()) {
    validate(cfg, &result.errors);
  }
  if (result.errors.empty()) {
    result.config = std::move(cfg);
  }
  return result;
}

}  // namespace fd::config
