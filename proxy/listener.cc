#include "proxy/listener.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/log.h"

namespace fd::proxy {

Listener::Listener(EventLoop& loop, int fd, AcceptFn on_accept)
    : on_accept_(std::move(on_accept)),
      listener_(evconnlistener_new(loop.base(), &Listener::on_accept, this,
                                   LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, -1, fd)) {
  if (listener_ == nullptr) {
    ::close(fd);
    return;
  }
  evconnlistener_set_error_cb(listener_, &Listener::on_error);
}

Listener::~Listener() {
  if (listener_ != nullptr) {
    evconnlistener_free(listener_);
  }
}

void Listener::on_accept(evconnlistener*, evutil_socket_t fd, sockaddr* addr, int, void* arg) {
  static_cast<Listener*>(arg)->on_accept_(fd, addr);
}

void Listener::on_error(evconnlistener*, void*) {
  // EMFILE and friends: libevent retries on the next readiness; say so once per occurrence.
  int err = EVUTIL_SOCKET_ERROR();
  log::warn("accept failed", {{"reason", std::strerror(err)}});
}

}  // namespace fd::proxy
