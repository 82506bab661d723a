#include "proxy/header_rewrite.h"

#include <array>

namespace fd::proxy {
namespace {

constexpr std::array<std::string_view, 7> HOP_BY_HOP = {
    "connection", "keep-alive", "te", "trailer", "transfer-encoding", "upgrade", "proxy-connection",
};

bool starts_with_ci(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && iequals(s.substr(0, prefix.size()), prefix);
}

void append_header(std::string* out, std::string_view name, std::string_view value) {
  out->append(name);
  out->append(": ");
  out->append(value);
  out->append("\r\n");
}

void append_forwarded_node(std::string* out, std::string_view ip) {
  // RFC 7239: IPv6 addresses are bracketed and the value quoted.
  if (ip.find(':') != std::string_view::npos) {
    out->append("\"[");
    out->append(ip);
    out->append("]\"");
  } else {
    out->append(ip);
  }
}

void append_forwarded_host(std::string* out, std::string_view host) {
  for (char c : host) {
    bool token = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '.' || c == '-';
    if (!token) {
      out->push_back('"');
      out->append(host);
      out->push_back('"');
      return;
    }
  }
  out->append(host);
}

// A Connection header may not take away the fields that frame or address the message
// (RFC 9110 §7.6.1 forbids naming them): "Connection: content-length" would otherwise send a
// body upstream without its length, to be read there as the next request.
bool connection_may_name(std::string_view name) {
  return !iequals(name, "content-length") && !iequals(name, "host");
}

}  // namespace

HopByHop::HopByHop(const std::vector<Header>& headers) : headers_(headers) {
  for (const auto& h : headers) {
    if (!iequals(h.name, "connection")) {
      continue;
    }
    std::string_view list = h.value;
    while (!list.empty()) {
      size_t comma = list.find(',');
      std::string_view token = trim_ows(list.substr(0, comma));
      list.remove_prefix(comma == std::string_view::npos ? list.size() : comma + 1);
      if (token.empty() || !connection_may_name(token)) {
        continue;
      }
      if (named_count_ == MAX_NAMED) {
        too_many_named_ = true;
        return;
      }
      named_[named_count_++] = token;
    }
  }
}

bool HopByHop::contains(std::string_view name) const {
  for (auto h : HOP_BY_HOP) {
    if (iequals(name, h)) {
      return true;
    }
  }
  if (starts_with_ci(name, "proxy-")) {
    return true;
  }
  if (too_many_named_) {
    if (!connection_may_name(name)) {
      return false;
    }
    for (const auto& h : headers_) {
      if (iequals(h.name, "connection") && has_token(h.value, name)) {
        return true;
      }
    }
    return false;
  }
  for (size_t i = 0; i < named_count_; ++i) {
    if (iequals(name, named_[i])) {
      return true;
    }
  }
  return false;
}

std::string normalize_host(std::string_view host) {
  if (!host.empty() && host.front() == '[') {
    size_t close = host.find(']');
    host = host.substr(0, close == std::string_view::npos ? host.size() : close + 1);
  } else {
    size_t colon = host.find(':');
    if (colon != std::string_view::npos && host.find(':', colon + 1) == std::string_view::npos) {
      host = host.substr(0, colon);
    }
  }
  std::string out(host);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') {
      c = static_cast<char>(c + 32);
    }
  }
  return out;
}

std::string request_host(const RequestHead& req) {
  const std::string* host = req.find("host");
  return host != nullptr ? normalize_host(*host) : std::string();
}

bool is_valid_request_id(std::string_view id) {
  if (id.empty() || id.size() > MAX_REQUEST_ID) {
    return false;
  }
  for (char c : id) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == ':' || c == '-';
    if (!ok) {
      return false;
    }
  }
  return true;
}

void build_upstream_request(const RequestHead& req, const ForwardContext& ctx, std::string* out) {
  out->append(req.method);
  out->push_back(' ');
  out->append(req.target);
  out->append(" HTTP/1.1\r\n");

  const std::string* host = req.find("host");
  std::string xff;
  std::string forwarded;
  HopByHop hop_by_hop(req.headers);
  for (const auto& h : req.headers) {
    if (hop_by_hop.contains(h.name)) {
      continue;
    }
    if (iequals(h.name, "x-forwarded-for")) {
      xff += xff.empty() ? h.value : ", " + h.value;
      continue;
    }
    if (iequals(h.name, "forwarded")) {
      forwarded += forwarded.empty() ? h.value : ", " + h.value;
      continue;
    }
    if (iequals(h.name, "x-forwarded-proto") || iequals(h.name, "x-forwarded-host") ||
        iequals(h.name, "x-request-id")) {
      continue;
    }
    append_header(out, h.name, h.value);
  }
  if (host == nullptr) {
    // An HTTP/1.0 client need not send Host, but the HTTP/1.1 request we make of it must have
    // one; with no authority to name it is empty (RFC 9112 §3.2).
    append_header(out, "Host", "");
  }
  if (req.chunked) {
    append_header(out, "Transfer-Encoding", "chunked");
  }
  if (ctx.websocket) {
    append_header(out, "Connection", "Upgrade");
    append_header(out, "Upgrade", "websocket");
  }
  // The appended headers are written in place, without temporaries.
  out->append("X-Forwarded-For: ");
  if (!xff.empty()) {
    out->append(xff);
    out->append(", ");
  }
  out->append(ctx.client_ip);
  out->append("\r\n");
  append_header(out, "X-Forwarded-Proto", ctx.proto);
  if (host != nullptr) {
    append_header(out, "X-Forwarded-Host", *host);
  }
  out->append("Forwarded: ");
  if (!forwarded.empty()) {
    out->append(forwarded);
    out->append(", ");
  }
  out->append("for=");
  append_forwarded_node(out, ctx.client_ip);
  if (host != nullptr) {
    out->append(";host=");
    append_forwarded_host(out, *host);
  }
  out->append(";proto=");
  out->append(ctx.proto);
  out->append("\r\n");
  append_header(out, "X-Request-Id", ctx.request_id);
  out->append("\r\n");
}

bool is_websocket_upgrade(const RequestHead& req) {
  if (req.method != "GET") {
    return false;
  }
  bool upgrade = false;
  bool connection = false;
  for (const auto& h : req.headers) {
    upgrade = upgrade || (iequals(h.name, "upgrade") && has_token(h.value, "websocket"));
    connection = connection || (iequals(h.name, "connection") && has_token(h.value, "upgrade"));
  }
  return upgrade && connection;
}

std::string build_upgrade_response(const ResponseHead& resp) {
  std::string out;
  out.reserve(256);
  out.append("HTTP/1.1 101 ");
  out.append(resp.reason.empty() ? std::string_view("Switching Protocols") : resp.reason);
  out.append("\r\n");
  HopByHop hop_by_hop(resp.headers);
  for (const auto& h : resp.headers) {
    if (!hop_by_hop.contains(h.name)) {
      append_header(&out, h.name, h.value);
    }
  }
  const std::string* upgrade = resp.find("upgrade");
  append_header(&out, "Connection", "Upgrade");
  append_header(&out, "Upgrade", upgrade != nullptr ? *upgrade : std::string("websocket"));
  out.append("\r\n");
  return out;
}

BodyFraming response_framing(const ResponseHead& resp, bool head_request, bool client_http10) {
  if (head_request || resp.status < 200 || resp.status == 204 || resp.status == 304) {
    return BodyFraming::none;
  }
  if (!resp.chunked && resp.content_length >= 0) {
    return BodyFraming::content_length;
  }
  return client_http10 ? BodyFraming::until_close : BodyFraming::chunked;
}

std::string build_downstream_response(const ResponseHead& resp, BodyFraming framing, bool close) {
  std::string out;
  out.reserve(256);
  out.append("HTTP/1.1 ");
  out.append(std::to_string(resp.status));
  out.push_back(' ');
  out.append(resp.reason);
  out.append("\r\n");
  bool keep_length = framing == BodyFraming::content_length || framing == BodyFraming::none;
  HopByHop hop_by_hop(resp.headers);
  for (const auto& h : resp.headers) {
    if (hop_by_hop.contains(h.name)) {
      continue;
    }
    if (!keep_length && iequals(h.name, "content-length")) {
      continue;
    }
    append_header(&out, h.name, h.value);
  }
  if (framing == BodyFraming::chunked) {
    append_header(&out, "Transfer-Encoding", "chunked");
  }
  if (close) {
    append_header(&out, "Connection", "close");
  }
  out.append("\r\n");
  return out;
}

}  // namespace fd::proxy
