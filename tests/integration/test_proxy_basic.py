"""Proxying over HTTP/1.1: balancing, forwarded headers, hop-by-hop stripping, routing,
chunked bodies both ways, upstream keep-alive pooling and the access log."""

import hashlib
import json
import os
import re
import socket
import socketserver
import threading
import time
import unittest

import harness
from harness import curl, curl_many, echo_headers


def assert_rotation(test, seq, n):
    """seq has period n and every window of n consecutive entries holds n distinct values."""
    for i in range(len(seq) - n + 1):
        test.assertEqual(len(set(seq[i:i + n])), n, "window %d of %r is not a rotation" % (i, seq))
    for i in range(len(seq) - n):
        test.assertEqual(seq[i], seq[i + n], "%r does not repeat with period %d" % (seq, n))


def parse_forwarded(value):
    """RFC 7239 Forwarded -> list of dicts (one per element), quotes removed, keys lowercased."""
    elements = []
    for element in value.split(","):
        pairs = {}
        for pair in element.split(";"):
            if "=" not in pair:
                continue
            k, _, v = pair.strip().partition("=")
            v = v.strip()
            if len(v) >= 2 and v[0] == '"' and v[-1] == '"':
                v = v[1:-1].replace('\\"', '"')
            pairs[k.strip().lower()] = v
        elements.append(pairs)
    return elements


class ProxyBasicTest(harness.ProxyTestCase):
    cert_names = [["localhost", "IP:127.0.0.1", "api.test", "other.test", "only.test"]]

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        try:
            cls.ups = [cls.class_upstream("rr%d" % i) for i in range(3)]
            cls.port = harness.free_port()
            cls.fd = cls.class_frontdoor(harness.tls_config(
                cls.port, cls.certs, {"app": [u.address for u in cls.ups]}, workers=2))
        except BaseException:
            cls.tearDownClass()
            raise

    def setUp(self):
        self.fd.assert_running()

    def echo(self, *args, path="/echo", **kw):
        r = self.get(self.port, path, "localhost", *args, **kw)
        self.assertEqual(r.status, 200, r)
        return json.loads(r.body)

    # --- balancing ---

    def test_round_robin_over_one_keepalive_connection(self):
        url = self.url(self.port, "/rr")
        results = curl_many([url] * 6, ca=self.certs.ca)
        for r in results:
            self.assertEqual(r.status, 200, r)
        ids = [r.headers.get("x-upstream") for r in results]
        self.assertEqual(sum(r.num_connects for r in results), 1,
                         "curl needed more than one connection: %r" % [r.num_connects for r in results])
        self.assertEqual(set(ids), {u.id for u in self.ups}, ids)
        assert_rotation(self, ids, 3)
        for r, uid in zip(results, ids):
            self.assertEqual(r.body, ("upstream %s /rr\n" % uid).encode())

    def test_client_offering_h2_is_served_over_h2(self):
        # ALPN prefers h2 (issue 6); test_http2.py covers HTTP/2 in depth.
        r = self.get(self.port, "/h2", http="2")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.http_version, "2", r)
        self.assertEqual(r.body, ("upstream %s /h2\n" % r.headers["x-upstream"]).encode())

    def test_pipelined_requests_answered_in_order(self):
        payload = (b"GET /pipe1 HTTP/1.1\r\nHost: localhost\r\n\r\n"
                   b"GET /pipe2 HTTP/1.1\r\nHost: localhost\r\n\r\n"
                   b"GET /pipe3 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        data, closed = harness.raw_tls_exchange(self.port, payload, ca=self.certs.ca,
                                                timeout=10 * harness.SLOW)
        self.assertTrue(closed, data)
        self.assertEqual(data.count(b"HTTP/1.1 200 "), 3, data)
        paths = re.findall(rb"upstream rr\d (/pipe\d)\n", data)
        self.assertEqual(paths, [b"/pipe1", b"/pipe2", b"/pipe3"], data)

    # --- forwarded headers ---

    def test_forwarded_headers_added(self):
        e = self.echo()
        host = "localhost:%d" % self.port
        self.assertEqual(echo_headers(e, "Host"), [host])
        xff = echo_headers(e, "X-Forwarded-For")
        self.assertEqual(len(xff), 1, e)
        self.assertTrue(xff[0].endswith("127.0.0.1"), xff)
        self.assertEqual(xff[0], "127.0.0.1")
        self.assertEqual(echo_headers(e, "X-Forwarded-Proto"), ["https"])
        self.assertEqual(echo_headers(e, "X-Forwarded-Host"), [host])
        fwd = echo_headers(e, "Forwarded")
        self.assertEqual(len(fwd), 1, e)
        elements = parse_forwarded(fwd[0])
        self.assertEqual(len(elements), 1, fwd)
        self.assertEqual(elements[0].get("for"), "127.0.0.1", fwd)
        self.assertEqual(elements[0].get("host"), host, fwd)
        self.assertEqual(elements[0].get("proto"), "https", fwd)
        rid = echo_headers(e, "X-Request-Id")
        self.assertEqual(len(rid), 1, e)
        self.assertRegex(rid[0], r"^[0-9a-f]{32}$")

    def test_request_ids_are_unique(self):
        ids = set()
        for _ in range(3):
            ids.update(echo_headers(self.echo(), "X-Request-Id"))
        self.assertEqual(len(ids), 3, ids)

    def test_x_forwarded_for_appended(self):
        e = self.echo("-H", "X-Forwarded-For: 203.0.113.9")
        self.assertEqual(echo_headers(e, "X-Forwarded-For"), ["203.0.113.9, 127.0.0.1"])

    def test_valid_request_id_kept(self):
        e = self.echo("-H", "X-Request-Id: abc-123")
        self.assertEqual(echo_headers(e, "X-Request-Id"), ["abc-123"])

    def test_hop_by_hop_headers_not_forwarded(self):
        e = self.echo("-H", "Connection: X-Custom-Hop", "-H", "X-Custom-Hop: 1",
                      "-H", "Keep-Alive: timeout=5", "-H", "TE: trailers",
                      "-H", "Proxy-Authorization: x", "-H", "Upgrade: foo",
                      "-H", "X-Keep-Me: 1")
        names = [k.lower() for k, _ in e["headers"]]
        for hop in ("x-custom-hop", "keep-alive", "te", "proxy-authorization", "upgrade"):
            self.assertNotIn(hop, names, "hop-by-hop header %s reached the upstream: %r"
                             % (hop, e["headers"]))
        # A Connection header to the upstream may only carry the proxy's own tokens.
        for value in echo_headers(e, "Connection"):
            self.assertNotIn("x-custom-hop", value.lower(), e["headers"])
        self.assertEqual(echo_headers(e, "X-Keep-Me"), ["1"])
        self.assertEqual(e["method"], "GET")

    # --- bodies ---

    def test_chunked_request_body(self):
        data = os.urandom(300 * 1024 + 7)
        path = self.tmp.join("chunked-body.bin")
        with open(path, "wb") as f:
            f.write(data)
        e = self.echo("-H", "Transfer-Encoding: chunked", "--data-binary", "@" + path)
        self.assertEqual(e["method"], "POST")
        self.assertEqual(e["body_len"], len(data))
        self.assertEqual(e["body_sha256"], hashlib.sha256(data).hexdigest())

    def test_content_length_request_body(self):
        data = os.urandom(123457)
        path = self.tmp.join("cl-body.bin")
        with open(path, "wb") as f:
            f.write(data)
        e = self.echo("--data-binary", "@" + path)
        self.assertEqual(e["body_len"], len(data))
        self.assertEqual(e["body_sha256"], hashlib.sha256(data).hexdigest())

    def test_chunked_response(self):
        r = self.get(self.port, "/chunked?n=50")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body, b"".join(b"chunk %d\n" % i for i in range(50)))

    # --- access log ---

    def test_access_log(self):
        ids_to_port = {u.id: u.port for u in self.ups}
        seen = []
        for i in range(4):
            e = self.echo(path="/echo")
            seen.append((echo_headers(e, "X-Request-Id")[0], e["id"], "GET", 0))
        body = b"x" * 1500
        path = self.tmp.join("access-body.bin")
        with open(path, "wb") as f:
            f.write(body)
        e = self.echo("--data-binary", "@" + path)
        seen.append((echo_headers(e, "X-Request-Id")[0], e["id"], "POST", len(body)))

        wanted = {rid for rid, _, _, _ in seen}

        def lines():
            found = [o for o in self.fd.access_lines() if o.get("request_id") in wanted]
            return found if len(found) >= len(wanted) else None

        try:
            harness.wait_for(lines, 3, what="access log lines")
        except AssertionError:
            self.fail("access lines missing for %r\n%s" % (wanted, self.fd.tail()))
        by_id = {}
        for o in self.fd.access_lines():
            by_id.setdefault(o.get("request_id"), []).append(o)
        for rid, uid, method, body_len in seen:
            self.assertEqual(len(by_id.get(rid, [])), 1, "want exactly one access line for %s" % rid)
            o = by_id[rid][0]
            for key in ("ts", "level", "msg", "method", "host", "path", "status", "bytes_in",
                        "bytes_out", "duration_ms", "client", "upstream", "request_id"):
                self.assertIn(key, o, o)
            self.assertEqual(o["msg"], "access")
            self.assertEqual(o["method"], method, o)
            self.assertIn(o["host"], ("localhost:%d" % self.port, "localhost"), o)
            self.assertEqual(o["path"], "/echo", o)
            self.assertEqual(o["status"], 200, o)
            self.assertEqual(o["upstream"], "127.0.0.1:%d" % ids_to_port[uid], o)
            self.assertTrue(str(o["client"]).startswith("127.0.0.1"), o)
            for key in ("bytes_in", "bytes_out", "duration_ms"):
                self.assertIsInstance(o[key], (int, float), o)
                self.assertGreaterEqual(o[key], 0, o)
            self.assertGreaterEqual(o["bytes_in"], body_len, o)
            self.assertGreater(o["bytes_out"], 0, o)
        self.assertEqual(self.fd.non_json_lines(), [], "stdout must be JSON lines only")
        for o in self.fd.log_lines():
            for key in ("ts", "level", "msg"):
                self.assertIn(key, o, o)


class ProxyRoutingTest(harness.ProxyTestCase):
    cert_names = [["localhost", "IP:127.0.0.1", "api.test", "other.test", "only.test"]]

    def test_routes_host_and_prefix(self):
        a = self.upstream("groupA")
        b = self.upstream("groupB")
        port = harness.free_port()
        # Hand-written YAML (not JSON) on purpose.
        yaml_text = """\
# routing test
listen:
  - address: "127.0.0.1:{port}"
    tls: true
tls:
  min_version: "1.2"
  certificates:
    - cert: {cert}
      key: {key}
upstreams:
  A:
    servers: ["{a}"]
  B:
    servers:
      - "{b}"
    connect_timeout: 2s
routes:
  - match: {{host: "api.test", path_prefix: "/v1/"}}
    upstream: B
  - match:
      path_prefix: /
    upstream: A
log:
  level: info
  access: true
workers: 2
shutdown_timeout: 5s
""".format(port=port, cert=self.certs.leaves[0].cert, key=self.certs.leaves[0].key,
           a=a.address, b=b.address)
        self.frontdoor(yaml_text, wait=[("127.0.0.1", port)])
        cases = [
            ("api.test", "/v1/users", "groupB"),
            ("api.test", "/v1/", "groupB"),
            ("api.test", "/v2/users", "groupA"),
            ("api.test", "/v1", "groupA"),
            ("other.test", "/v1/users", "groupA"),
            ("localhost", "/v1/users", "groupA"),
            ("localhost", "/", "groupA"),
        ]
        for host, path, want in cases:
            with self.subTest(host=host, path=path):
                r = self.get(port, path, host)
                self.assertEqual(r.status, 200, r)
                self.assertEqual(r.headers.get("x-upstream"), want, r)
                self.assertEqual(r.body, ("upstream %s %s\n" % (want, path)).encode())

    def test_no_route_is_404(self):
        a = self.upstream("only")
        port = harness.free_port()
        self.frontdoor(harness.tls_config(
            port, self.certs, {"app": [a.address]},
            routes=[{"match": {"host": "only.test"}, "upstream": "app"}]))
        r = self.get(port, "/x", "only.test")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body, b"upstream only /x\n")
        for host in ("localhost", "other.test"):
            with self.subTest(host=host):
                r = self.get(port, "/x", host)
                self.assertEqual(r.status, 404, r)
                self.assertNotIn("x-upstream", r.headers)
                self.assertLess(len(r.body), 512, r)
                self.assertGreater(len(r.body), 0, r)
                self.assertTrue(r.headers.get("content-type", "").startswith("text/plain"), r)
        self.assertEqual(a.stats()["requests"], 1)


class OneRequestPerConnectionServer(socketserver.ThreadingTCPServer):
    """An HTTP/1.1 upstream that answers the first request of a connection with keep-alive and
    closes the connection, unanswered, when a second request comes on it: a server whose idle
    timeout or request limit struck just as the proxy reused its pooled connection. Bodies
    name the connection ("conn N")."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self):
        self.lock = threading.Lock()
        self.connections = 0
        self.requests = []  # (connection number, request line)
        super().__init__(("127.0.0.1", 0), self.Handler)

    class Handler(socketserver.BaseRequestHandler):
        def read_head(self, buf):
            while b"\r\n\r\n" not in buf:
                chunk = self.request.recv(65536)
                if not chunk:
                    return None, b""
                buf += chunk
            head, _, rest = buf.partition(b"\r\n\r\n")
            return head, rest

        def handle(self):
            srv = self.server
            with srv.lock:
                srv.connections += 1
                conn = srv.connections
            head, rest = self.read_head(b"")
            if head is None:
                return
            with srv.lock:
                srv.requests.append((conn, head.split(b"\r\n")[0].decode()))
            body = b"conn %d" % conn
            self.request.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" %
                                 (len(body), body))
            head, _ = self.read_head(rest)
            if head is not None:
                with srv.lock:
                    srv.requests.append((conn, head.split(b"\r\n")[0].decode()))
            self.request.shutdown(socket.SHUT_RDWR)


class UpstreamKeepAliveTest(harness.ProxyTestCase):

    def closing_upstream(self):
        srv = OneRequestPerConnectionServer()
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        self.addCleanup(srv.server_close)
        self.addCleanup(srv.shutdown)
        return srv

    def test_request_on_a_pooled_connection_the_server_closed_goes_again(self):
        srv = self.closing_upstream()
        port = harness.free_port()
        self.frontdoor(harness.tls_config(
            port, self.certs, {"app": ["127.0.0.1:%d" % srv.server_address[1]]}, workers=1))
        first = self.get(port, "/one")
        self.assertEqual((first.status, first.body), (200, b"conn 1"), first)
        # The pooled connection is taken, the server closes it on reading the request: the
        # request never reached the application, so it goes again on a fresh connection.
        second = self.get(port, "/two")
        self.assertEqual((second.status, second.body), (200, b"conn 2"), second)
        self.assertEqual(srv.requests, [(1, "GET /one HTTP/1.1"), (1, "GET /two HTTP/1.1"),
                                        (2, "GET /two HTTP/1.1")])
        # A POST may have had effects: it is not sent twice.
        post = self.get(port, "/three", "localhost", "-X", "POST", "-d", "x")
        self.assertEqual(post.status, 502, post)
        self.assertEqual(srv.requests[3:], [(2, "POST /three HTTP/1.1")])

    def test_pooled_connections_are_reused(self):
        ups = [self.upstream("ka%d" % i) for i in range(3)]
        port = harness.free_port()
        self.frontdoor(harness.tls_config(port, self.certs, {"app": [u.address for u in ups]},
                                          workers=1))
        url = self.url(port, "/ka")
        for _ in range(10):  # 10 separate client connections, 3 requests each
            results = curl_many([url] * 3, ca=self.certs.ca)
            for r in results:
                self.assertEqual(r.status, 200, r)
            self.assertEqual(len({r.headers.get("x-upstream") for r in results}), 3,
                             [r.headers for r in results])
        stats = [u.stats() for u in ups]
        # Each /stats query above arrived on its own connection: subtract it.
        upstream_connections = sum(s["connections"] - 1 for s in stats)
        self.assertEqual(sum(s["requests"] for s in stats), 30, stats)
        self.assertEqual([s["requests"] for s in stats], [10, 10, 10], stats)
        self.assertEqual(upstream_connections, 3,
                         "expected one pooled connection per upstream, got %r" % stats)


if __name__ == "__main__":
    unittest.main()
