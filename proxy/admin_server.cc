#include "proxy/admin_server.h"

#include "common/log.h"
#include "proxy/admin_render.h"
#include "proxy/header_rewrite.h"
#include "proxy/http1_parser.h"
#include "proxy/transport.h"

namespace fd::proxy {
namespace {

constexpr uint32_t MAX_ADMIN_HEAD = 16 * 1024;
constexpr std::chrono::milliseconds ADMIN_TIMEOUT{10000};

}  // namespace

// One admin request: read the head, answer, close after the answer is flushed.
class AdminServer::Connection : public Deferrable,
                                private Transport::Handler,
                                private Http1Parser::Handler {
 public:
  Connection(AdminServer& server, int fd)
      : server_(server),
        parser_(Http1Parser::Kind::request, this, MAX_ADMIN_HEAD),
        timer_(server.loop_, [this] { close(); }) {
    transport_ = Transport::accept_tcp(server.loop_, fd, this);
    timer_.arm(ADMIN_TIMEOUT);
  }

  bool ok() const { return transport_ != nullptr; }
  std::list<std::unique_ptr<Connection>>::iterator self;

  void close() {
    if (closed_) {
      return;
    }
    closed_ = true;
    timer_.cancel();
    transport_->close();
    server_.remove(this);
  }

 private:
  void on_readable() override {
    evbuffer* in = transport_->input();
    while (!answered_ && evbuffer_get_length(in) > 0) {
      evbuffer_iovec seg;
      evbuffer_peek(in, -1, nullptr, &seg, 1);
      auto out = parser_.execute(static_cast<const char*>(seg.iov_base), seg.iov_len);
      evbuffer_drain(in, out.consumed);
      if (out.status == Http1Parser::Status::error) {
        respond(out.http_status, "text/plain; charset=utf-8", "bad request\n");
      }
    }
    evbuffer_drain(in, evbuffer_get_length(in));
  }

  bool on_head() override {
    const RequestHead& req = parser_.request();
    std::string_view path = req.target;
    path = path.substr(0, path.find('?'));
    if (req.method != "GET" && req.method != "HEAD") {
      respond(405, "text/plain; charset=utf-8", "method not allowed\n");
    } else if (path == "/ready") {
      bool draining = server_.view_().draining;
      respond(draining ? 503 : 200, "text/plain; charset=utf-8",
              draining ? "draining\n" : "ready\n");
    } else if (path == "/status") {
      respond(200, "application/json", render_status(server_.view_()));
    } else if (path == "/metrics") {
      respond(200, "text/plain; version=0.0.4; charset=utf-8", render_metrics(server_.view_()));
    } else {
      respond(404, "text/plain; charset=utf-8", "not found: try /status, /metrics or /ready\n");
    }
    return false;
  }
  void on_body(const char*, size_t) override {}
  void on_message_complete() override {}

  void respond(int status, const char* type, const std::string& body) {
    if (answered_) {
      return;
    }
    answered_ = true;
    bool head = parser_.head_complete() && parser_.request().method == "HEAD";
    std::string text =
        "HTTP/1.1 " + std::to_string(status) + " " +
        (status == 200 ? "OK" : reason_phrase(status)) + "\r\nContent-Type: " + type +
        "\r\nContent-Length: " + std::to_string(body.size()) + "\r\nCache-Control: no-store" +
        "\r\nConnection: close\r\n\r\n" + (head ? std::string() : body);
    evbuffer_add(transport_->output(), text.data(), text.size());
  }

  void on_drained() override {
    if (answered_ && transport_->unsent() == 0) {
      close();
    }
  }
  void on_closed(bool, bool, const std::string&) override { close(); }

  AdminServer& server_;
  std::unique_ptr<Transport> transport_;
  Http1Parser parser_;
  bool answered_ = false;
  bool closed_ = false;
  Timer timer_;
};

AdminServer::AdminServer(EventLoop& loop, std::function<AdminView()> view)
    : loop_(loop), view_(std::move(view)) {}

AdminServer::~AdminServer() {
  listener_.reset();
  std::vector<Connection*> open;
  for (auto& c : conns_) {
    open.push_back(c.get());
  }
  for (auto* c : open) {
    c->close();
  }
}

Result<void> AdminServer::listen(const config::Admin& admin) {
  auto fd = open_listen_socket(admin.endpoint, admin.address, false);
  if (!fd) {
    return fd.error();
  }
  auto listener =
      std::make_unique<Listener>(loop_, *fd, [this](int cfd, const sockaddr*) { accept(cfd); });
  if (!listener->ok()) {
    return make_error(Errc::bind, "cannot listen on admin address " + admin.address);
  }
  listener_ = std::move(listener);
  log::info("admin listening", {{"address", admin.address}});
  return {};
}

void AdminServer::close() {
  listener_.reset();
}

void AdminServer::accept(int fd) {
  auto conn = std::make_unique<Connection>(*this, fd);
  Connection* raw = conn.get();
  conns_.push_front(std::move(conn));
  raw->self = conns_.begin();
  if (!raw->ok()) {
    conns_.erase(raw->self);
  }
}

void AdminServer::remove(Connection* conn) {
  std::unique_ptr<Connection> owned = std::move(*conn->self);
  conns_.erase(conn->self);
  loop_.defer_delete(std::move(owned));
}

}  // namespace fd::proxy
