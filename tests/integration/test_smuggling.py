"""Request smuggling and strict parsing, over raw sockets, both directions.

Client side: each hostile request is sent as raw bytes on a TLS connection, followed by a
second, smuggled request. frontdoor must answer 400, close the connection, and the upstream
must never see the smuggled request (nor, for most cases, the first one).
Upstream side: a raw upstream answers with a malformed response; the client gets 502 and
nothing of the bad response."""

import socket
import threading
import unittest

import harness
from harness import SLOW

SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: localhost\r\n\r\n"

# (name, request bytes sent before SMUGGLED). Every one must get 400 and a close.
BAD_REQUESTS = [
    ("content-length and transfer-encoding",
     b"POST /a HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4\r\n"
     b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    ("transfer-encoding and content-length",
     b"POST /a HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n"
     b"Content-Length: 4\r\n\r\n0\r\n\r\n"),
    ("two different content-lengths",
     b"POST /a HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nContent-Length: 44\r\n\r\n"),
    ("content-length list",
     b"POST /a HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0, 44\r\n\r\n"),
    ("content-length with sign",
     b"POST /a HTTP/1.1\r\nHost: localhost\r\nContent-Length: +0\r\n\r\n"),
    ("transfer-encoding gzip",
     b"POST /a HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: gzip\r\n\r\n"),
    ("transfer-encoding chunked, gzip",
     b"POST /a HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n"),
    ("transfer-encoding identity",
     b"POST /a HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: identity\r\n\r\n"),
    ("transfer-encoding xchunked",
     b"POST /a HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n"),
    ("transfer-encoding with space before colon",
     b"POST /a HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding : chunked\r\n"
     b"Content-Length: 0\r\n\r\n"),
    ("obs-fold",
     b"GET /a HTTP/1.1\r\nHost: localhost\r\nX-Folded: a\r\n b\r\n\r\n"),
    ("obs-fold of transfer-encoding",
     b"POST /a HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n"),
    ("bare LF line endings",
     b"GET /a HTTP/1.1\nHost: localhost\n\n"),
    ("bare CR in a header value",
     b"GET /a HTTP/1.1\r\nHost: localhost\r\nX-A: a\rb\r\n\r\n"),
    ("bare LF after the request line",
     b"GET /a HTTP/1.1\nHost: localhost\r\n\r\n"),
    ("NUL in a header value",
     b"GET /a HTTP/1.1\r\nHost: localhost\r\nX-A: a\x00b\r\n\r\n"),
    ("control character in a header value",
     b"GET /a HTTP/1.1\r\nHost: localhost\r\nX-A: a\x01b\r\n\r\n"),
    ("invalid character in a header name",
     b"GET /a HTTP/1.1\r\nHost: localhost\r\nX(A): b\r\n\r\n"),
    ("space before the colon",
     b"GET /a HTTP/1.1\r\nHost: localhost\r\nX-A : b\r\n\r\n"),
    ("absolute-form naming another host",
     b"GET http://evil.test/a HTTP/1.1\r\nHost: localhost\r\n\r\n"),
    ("two Host headers",
     b"GET /a HTTP/1.1\r\nHost: localhost\r\nHost: evil.test\r\n\r\n"),
    ("HTTP/1.1 without Host",
     b"GET /a HTTP/1.1\r\nX-A: b\r\n\r\n"),
    ("chunk size overflowing 64 bits",
     b"POST /a HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"10000000000000000\r\nx\r\n0\r\n\r\n"),
    ("chunk size that is not hex",
     b"POST /a HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"z\r\nx\r\n0\r\n\r\n"),
    ("chunk without its CRLF",
     b"POST /a HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"1\r\nxx\r\n0\r\n\r\n"),
    ("chunk extension with a bare LF",
     b"POST /a HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"1;a\nx\r\n0\r\n\r\n"),
    ("request line with two spaces",
     b"GET  /a HTTP/1.1\r\nHost: localhost\r\n\r\n"),
    ("HTTP/1.2",
     b"GET /a HTTP/1.2\r\nHost: localhost\r\n\r\n"),
]


class RawUpstream:
    """A TCP server on 127.0.0.1 that answers every request with the same raw bytes."""

    def __init__(self, response):
        self.response = response
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.stopped = False
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    @property
    def address(self):
        return "127.0.0.1:%d" % self.port

    def serve(self):
        while not self.stopped:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                try:
                    data = b""
                    while b"\r\n\r\n" not in data:
                        chunk = conn.recv(4096)
                        if not chunk:
                            break
                        data += chunk
                    conn.sendall(self.response)
                    conn.shutdown(socket.SHUT_WR)
                    conn.recv(4096)
                except OSError:
                    pass

    def stop(self):
        self.stopped = True
        self.sock.close()


# (name, raw response). Each must reach the client as a 502, never as the upstream's bytes.
BAD_RESPONSES = [
    ("content-length and transfer-encoding",
     b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    ("two different content-lengths",
     b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 5\r\n\r\nhello"),
    ("obs-fold",
     b"HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 2\r\n\r\nok"),
    ("bare LF",
     b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok"),
    ("NUL in a header value",
     b"HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 2\r\n\r\nok"),
    ("space before the colon",
     b"HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\nok"),
    ("garbage status line",
     b"HTTP/1.1 2OO OK\r\nContent-Length: 2\r\n\r\nok"),
    ("not HTTP at all",
     b"SSH-2.0-OpenSSH_9.2\r\n"),
]

# (name, raw response) whose head is valid and whose body framing breaks after it: the head
# has been relayed by then, so the client must see the transfer cut, never a complete one.
BAD_RESPONSE_BODIES = [
    ("chunk size overflowing 64 bits",
     b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000000\r\nx\r\n0\r\n\r\n"),
    ("chunk without its CRLF",
     b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nokX\r\n0\r\n\r\n"),
]


class RequestSmugglingTest(harness.ProxyTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        try:
            cls.up = cls.class_upstream("smuggle")
            cls.port = harness.free_port()
            cfg = harness.tls_config(cls.port, cls.certs, {"app": [cls.up.address]}, workers=1)
            cls.fd = cls.class_frontdoor(cfg)
        except BaseException:
            cls.tearDownClass()
            raise

    def send_raw(self, data):
        """Sends |data| then SMUGGLED on one TLS connection; returns (all bytes read, closed)."""
        s = harness.tls_connect(self.port, ca=self.certs.ca, timeout=5)
        try:
            s.sendall(data + SMUGGLED)
            return harness.read_until_close(s, timeout=5 * SLOW)
        finally:
            s.close()

    def test_each_hostile_request_gets_400_and_close(self):
        for name, data in BAD_REQUESTS:
            with self.subTest(case=name):
                before = self.up.stats()["requests"]
                smuggled_before = self.up.path_count("/smuggled")
                reply, closed = self.send_raw(data)
                self.assertTrue(reply.startswith(b"HTTP/1.1 400 "), (name, reply[:200]))
                self.assertTrue(closed, "%s: connection left open" % name)
                self.assertEqual(reply.count(b"HTTP/1.1 "), 1,
                                 "%s: more than one response: %r" % (name, reply[:400]))
                self.assertEqual(self.up.path_count("/smuggled"), smuggled_before,
                                 "%s: the smuggled request reached the upstream" % name)
                self.assertEqual(self.up.stats()["requests"], before,
                                 "%s: the rejected request reached the upstream" % name)
        self.fd.assert_running()

    def test_valid_request_then_pipelined_one_both_served(self):
        # The control case: the same shape, well-formed, gives two answers.
        reply, _ = self.send_raw(
            b"POST /a HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"1\r\nx\r\n0\r\n\r\n")
        self.assertEqual(reply.count(b"HTTP/1.1 200 "), 2, reply[:400])

    def test_connection_cannot_strip_content_length(self):
        # Found by tests/fuzz/http1_request: "Connection: content-length" made the length
        # hop-by-hop, so the body went upstream without it and was read there as a request.
        smuggled_before = self.up.path_count("/smuggled")
        reply, _ = self.send_raw(
            b"POST /a HTTP/1.1\r\nHost: localhost\r\nConnection: content-length\r\n"
            b"Content-Length: %d\r\n\r\n" % len(SMUGGLED))
        self.assertEqual(reply.count(b"HTTP/1.1 200 "), 1, reply[:400])
        # The upstream connection goes back to the pool: the next requests use it.
        for _ in range(3):
            self.assertEqual(self.get(self.port, "/after").status, 200)
        self.assertEqual(self.up.path_count("/smuggled"), smuggled_before,
                         "the body reached the upstream as a request")

    def proxy_to_raw_upstreams(self, cases):
        """One frontdoor with a route /case<i>/ to a RawUpstream per case: its port."""
        upstreams, routes = {}, []
        for i, (_, response) in enumerate(cases):
            raw = RawUpstream(response)
            self.addCleanup(raw.stop)
            upstreams["case%d" % i] = {"servers": [raw.address], "retries": 0}
            routes.append({"match": {"path_prefix": "/case%d/" % i}, "upstream": "case%d" % i})
        port = harness.free_port()
        self.frontdoor(harness.tls_config(port, self.certs, upstreams, routes=routes, workers=1))
        return port

    def test_each_malformed_response_becomes_502(self):
        port = self.proxy_to_raw_upstreams(BAD_RESPONSES)
        for i, (name, _) in enumerate(BAD_RESPONSES):
            with self.subTest(case=name):
                r = self.get(port, "/case%d/x" % i)
                self.assertEqual(r.status, 502, (name, r))
                self.assertNotIn(b"ok", r.body)
                self.assertNotIn(b"hello", r.body)

    def test_each_malformed_response_body_is_cut(self):
        port = self.proxy_to_raw_upstreams(BAD_RESPONSE_BODIES)
        for i, (name, _) in enumerate(BAD_RESPONSE_BODIES):
            with self.subTest(case=name):
                r = self.get(port, "/case%d/x" % i)
                self.assertEqual(r.status, 200, (name, r))
                self.assertNotEqual(r.rc, 0, "%s: curl saw a complete response: %r" % (name, r))

if __name__ == "__main__":
    unittest.main()
