#include "proxy/http1_parser.h"

#include <string_view>

namespace fd::proxy {
namespace {

constexpr size_t TYPICAL_HEADERS = 16;

Http1Parser* self_of(llhttp_t* p) {
  return static_cast<Http1Parser*>(p->data);
}

void trim_trailing_ws(std::string* s) {
  while (!s->empty() && (s->back() == ' ' || s->back() == '\t')) {
    s->pop_back();
  }
}

bool starts_with_nocase(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && iequals(s.substr(0, prefix.size()), prefix);
}

// What RFC 9112 makes a request head invalid and llhttp lets through: framing other than a
// single final "chunked" (§6.1: we do not decode other codings, so the length is unknown),
// a missing or repeated Host (§3.2), and targets other than the forms an origin accepts, among
// them an absolute-form naming another authority than Host (§3.2.2), which would let routing
// and the upstream see different hosts.
const char* request_head_problem(const RequestHead& r) {
  // llhttp takes a request line without a version as HTTP/0.9, which has no headers to route
  // or forward by.
  if (r.version_major != 1) {
    return "HTTP version other than 1.0 and 1.1";
  }
  // CONNECT asks for a tunnel to the target (RFC 9110 §9.3.6): a forward proxy's job. Passed
  // on, its 2xx answer would turn the upstream connection into a tunnel frontdoor cannot frame.
  if (r.method == "CONNECT") {
    return "CONNECT is not served: frontdoor is not a forward proxy";
  }
  const std::string* host = nullptr;
  int hosts = 0;
  int codings = 0;
  for (const auto& h : r.headers) {
    if (iequals(h.name, "host")) {
      host = &h.value;
      ++hosts;
    } else if (iequals(h.name, "transfer-encoding")) {
      if (++codings > 1 || !iequals(h.value, "chunked")) {
        return "Transfer-Encoding other than a single chunked";
      }
    }
  }
  if (hosts > 1) {
    return "more than one Host header";
  }
  if (hosts == 0 && r.version_minor >= 1) {
    return "HTTP/1.1 request without Host";
  }
  // Targets are origin-form, OPTIONS *, or an http(s) absolute-form naming the Host (§3.2);
  // anything else (another scheme, a fragment) would reach the upstream as a target it may
  // read differently from frontdoor's routing.
  std::string_view target = r.target;
  if (target.find('#') != std::string_view::npos) {
    return "fragment in the request target";
  }
  if (target == "*") {
    return r.method == "OPTIONS" ? nullptr : "asterisk-form target for a method other than OPTIONS";
  }
  if (!target.empty() && target.front() == '/') {
    return nullptr;
  }
  for (std::string_view scheme : {"http://", "https://"}) {
    if (starts_with_nocase(target, scheme)) {
      std::string_view rest = target.substr(scheme.size());
      std::string_view authority = rest.substr(0, rest.find_first_of("/?"));
      if (host == nullptr || !iequals(authority, *host)) {
        return "absolute-form target names another host than Host";
      }
      return nullptr;
    }
  }
  return "request target is neither a path nor an http(s) URI";
}

// An absolute-form target as the origin-form the rest of frontdoor and the upstream get
// (RFC 9112 §3.2.1, §3.2.2): its path, "/" when that is empty, and its query.
void to_origin_form(std::string* target) {
  if (target->empty() || target->front() == '/' || *target == "*") {
    return;
  }
  size_t authority = target->find("://") + 3;
  size_t path = target->find_first_of("/?", authority);
  std::string origin = path == std::string::npos ? std::string() : target->substr(path);
  *target = origin.empty() || origin.front() == '?' ? "/" + origin : std::move(origin);
}

}  // namespace

Http1Parser::Http1Parser(Kind kind, Handler* handler, uint32_t max_head_bytes,
                         uint32_t max_headers)
    : kind_(kind),
      handler_(handler),
      max_head_bytes_(max_head_bytes),
      max_headers_(max_headers),
      guard_(kind == Kind::request) {
  llhttp_settings_init(&settings_);
  settings_.on_message_begin = &Http1Parser::on_message_begin;
  settings_.on_url = &Http1Parser::on_url;
  settings_.on_status = &Http1Parser::on_status;
  settings_.on_header_field = &Http1Parser::on_header_field;
  settings_.on_header_value = &Http1Parser::on_header_value;
  settings_.on_header_value_complete = &Http1Parser::on_header_value_complete;
  settings_.on_headers_complete = &Http1Parser::on_headers_complete;
  settings_.on_body = &Http1Parser::on_body;
  settings_.on_message_complete = &Http1Parser::on_message_complete;
  llhttp_init(&parser_, kind == Kind::request ? HTTP_REQUEST : HTTP_RESPONSE, &settings_);
  parser_.data = this;
}

Http1Parser::Outcome Http1Parser::execute(const char* data, size_t len) {
  if (const char* refused = guard_.scan(data, len); refused != nullptr) {
    return {Status::error, 0, 400, refused};
  }
  llhttp_errno_t err = llhttp_execute(&parser_, data, len);
  if (err == HPE_OK) {
    return {Status::more, len, 0, {}};
  }
  size_t consumed = static_cast<size_t>(llhttp_get_error_pos(&parser_) - data);
  if (err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE) {
    return {Status::message_done, consumed, 0, {}};
  }
  Outcome out{Status::error, consumed, 0, {}};
  out.http_status = limit_status_ != 0 ? limit_status_ : 400;
  out.reason = head_problem_ != nullptr ? std::string(head_problem_)
                                        : std::string(llhttp_errno_name(err)) + ": " +
                                              llhttp_get_error_reason(&parser_);
  return out;
}

bool Http1Parser::finish() {
  // on_message_complete pauses the parser, so a clean finish reports HPE_PAUSED.
  llhttp_errno_t err = llhttp_finish(&parser_);
  return err == HPE_OK || err == HPE_PAUSED;
}

bool Http1Parser::needs_eof() const {
  return llhttp_message_needs_eof(&parser_) != 0;
}

void Http1Parser::next_message() {
  llhttp_errno_t err = llhttp_get_errno(&parser_);
  if (err == HPE_PAUSED_UPGRADE) {
    llhttp_resume_after_upgrade(&parser_);
  } else if (err == HPE_PAUSED) {
    llhttp_resume(&parser_);
  }
  in_message_ = false;
  head_complete_ = false;
  guard_.reset();
}

bool Http1Parser::count_head(size_t len, bool url) {
  head_bytes_ += len;
  if (head_bytes_ <= max_head_bytes_) {
    return true;
  }
  limit_status_ = url ? 414 : 431;
  llhttp_set_error_reason(&parser_, url ? "request target too long" : "request head too large");
  return false;
}

int Http1Parser::on_message_begin(llhttp_t* p) {
  Http1Parser* self = self_of(p);
  self->in_message_ = true;
  self->head_complete_ = false;
  self->head_bytes_ = 0;
  self->limit_status_ = 0;
  self->head_problem_ = nullptr;
  self->field_.clear();
  self->value_.clear();
  // Room for a typical head's headers in one allocation, not the four of growing by doubling.
  // A request head is moved out to its exchange; a response head is read where it is, so the
  // next response on a pooled connection reuses its header vector.
  if (self->kind_ == Kind::request) {
    self->request_ = RequestHead{};
    self->request_.headers.reserve(TYPICAL_HEADERS);
  } else {
    std::vector<Header> headers = std::move(self->response_.headers);
    headers.clear();
    headers.reserve(TYPICAL_HEADERS);
    self->response_ = ResponseHead{};
    self->response_.headers = std::move(headers);
  }
  return 0;
}

int Http1Parser::on_url(llhttp_t* p, const char* at, size_t len) {
  Http1Parser* self = self_of(p);
  if (!self->count_head(len, true)) {
    return HPE_USER;
  }
  self->request_.target.append(at, len);
  return 0;
}

int Http1Parser::on_status(llhttp_t* p, const char* at, size_t len) {
  Http1Parser* self = self_of(p);
  if (!self->count_head(len, false)) {
    return HPE_USER;
  }
  self->response_.reason.append(at, len);
  return 0;
}

int Http1Parser::on_header_field(llhttp_t* p, const char* at, size_t len) {
  Http1Parser* self = self_of(p);
  if (!self->count_head(len, false)) {
    return HPE_USER;
  }
  self->field_.append(at, len);
  return 0;
}

int Http1Parser::on_header_value(llhttp_t* p, const char* at, size_t len) {
  Http1Parser* self = self_of(p);
  if (!self->count_head(len, false)) {
    return HPE_USER;
  }
  self->value_.append(at, len);
  return 0;
}

int Http1Parser::on_header_value_complete(llhttp_t* p) {
  Http1Parser* self = self_of(p);
  // Four bytes of framing per line (": " and CRLF) count against the limit too.
  if (!self->count_head(4, false)) {
    return HPE_USER;
  }
  if (self->head_complete_) {
    // A trailer field of a chunked body (RFC 9112 §7.1.2). Trailers are not forwarded, and
    // must not join the head that was already handed on: they only count against its size.
    self->field_.clear();
    self->value_.clear();
    return 0;
  }
  trim_trailing_ws(&self->value_);
  auto& headers = self->kind_ == Kind::request ? self->request_.headers : self->response_.headers;
  if (self->max_headers_ != 0 && headers.size() >= self->max_headers_) {
    self->limit_status_ = 431;
    llhttp_set_error_reason(p, "too many header fields");
    return HPE_USER;
  }
  headers.push_back(Header{std::move(self->field_), std::move(self->value_)});
  self->field_.clear();
  self->value_.clear();
  return 0;
}

int Http1Parser::on_headers_complete(llhttp_t* p) {
  Http1Parser* self = self_of(p);
  self->head_complete_ = true;
  bool chunked = (p->flags & F_CHUNKED) != 0;
  int64_t length =
      (p->flags & F_CONTENT_LENGTH) != 0 ? static_cast<int64_t>(p->content_length) : -1;
  bool keep_alive = llhttp_should_keep_alive(p) != 0;
  if (self->kind_ == Kind::request) {
    RequestHead& r = self->request_;
    r.method = llhttp_method_name(static_cast<llhttp_method_t>(p->method));
    r.version_major = p->http_major;
    r.version_minor = p->http_minor;
    r.chunked = chunked;
    r.content_length = length;
    r.keep_alive = keep_alive;
    self->head_problem_ = request_head_problem(r);
    if (self->head_problem_ != nullptr) {
      return -1;  // any value but 0, 1, 2 and HPE_PAUSED is an error to llhttp
    }
    to_origin_form(&r.target);
    self->handler_->on_head();
    return 0;
  }
  ResponseHead& r = self->response_;
  r.status = p->status_code;
  r.version_major = p->http_major;
  r.version_minor = p->http_minor;
  r.chunked = chunked;
  r.content_length = length;
  r.keep_alive = keep_alive;
  return self->handler_->on_head() ? 1 : 0;
}

int Http1Parser::on_body(llhttp_t* p, const char* at, size_t len) {
  self_of(p)->handler_->on_body(at, len);
  return 0;
}

int Http1Parser::on_message_complete(llhttp_t* p) {
  Http1Parser* self = self_of(p);
  self->handler_->on_message_complete();
  return HPE_PAUSED;
}

}  // namespace fd::proxy
