"""Errors the proxy makes itself (502, 504, 400, 413, 431) and client-side timeouts."""

import json
import os
import socket
import subprocess
import time
import unittest

import h2.config
import h2.connection
import h2.events

import harness
from harness import SLOW


class ProxyErrorsTest(harness.ProxyTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        try:
            cls.up = cls.class_upstream("err")
            cls.dead_port = harness.free_port()  # nothing listens here
            cls.port = harness.free_port()
            cls.fd = cls.class_frontdoor(harness.tls_config(
                cls.port, cls.certs,
                {
                    "app": [cls.up.address],
                    "dead": {"servers": ["127.0.0.1:%d" % cls.dead_port], "connect_timeout": "2s"},
                    "slow": {"servers": [cls.up.address], "response_timeout": "1s"},
                },
                routes=[
                    {"match": {"path_prefix": "/dead/"}, "upstream": "dead"},
                    {"match": {"path_prefix": "/hang"}, "upstream": "slow"},
                    {"match": {"path_prefix": "/"}, "upstream": "app"},
                ],
                limits={"max_header_bytes": 2048, "max_body_bytes": 1000}))
        except BaseException:
            cls.tearDownClass()
            raise

    def setUp(self):
        self.fd.assert_running()

    def assert_plain_error(self, r, status):
        self.assertEqual(r.status, status, r)
        self.assertGreater(len(r.body), 0, r)
        self.assertLess(len(r.body), 512, r)
        self.assertTrue(r.headers.get("content-type", "").startswith("text/plain"), r)
        self.assertNotIn("x-upstream", r.headers, r)

    def test_502_when_upstream_port_closed(self):
        t0 = time.monotonic()
        r = self.get(self.port, "/dead/x")
        self.assert_plain_error(r, 502)
        self.assertLess(time.monotonic() - t0, 5 * SLOW)

    def test_504_when_upstream_hangs(self):
        t0 = time.monotonic()
        r = self.get(self.port, "/hang", timeout=15 * SLOW)
        elapsed = time.monotonic() - t0
        self.assert_plain_error(r, 504)
        self.assertLess(elapsed, 5 * SLOW)
        self.assertGreaterEqual(elapsed, 0.9, "504 came before response_timeout (1s)")

    def test_malformed_request_gets_400_and_close(self):
        data, closed = harness.raw_tls_exchange(
            self.port, b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n", ca=self.certs.ca,
            timeout=5 * SLOW)
        self.assertTrue(data.startswith(b"HTTP/1.1 400"), data)
        self.assertTrue(closed, "connection not closed after 400: %r" % data)
        r = self.get(self.port, "/after-400")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body, b"upstream err /after-400\n")

    def test_431_header_too_large(self):
        r = self.get(self.port, "/big-header", "localhost", "-H", "X-Big: " + "a" * 4000)
        self.assert_plain_error(r, 431)
        r = self.get(self.port, "/small-header", "localhost", "-H", "X-Small: " + "a" * 500)
        self.assertEqual(r.status, 200, r)

    def test_413_body_too_large(self):
        path = self.tmp.join("5000.bin")
        with open(path, "wb") as f:
            f.write(os.urandom(5000))
        r = self.get(self.port, "/echo", "localhost", "--data-binary", "@" + path)
        self.assert_plain_error(r, 413)
        small = self.tmp.join("900.bin")
        with open(small, "wb") as f:
            f.write(os.urandom(900))
        r = self.get(self.port, "/echo", "localhost", "--data-binary", "@" + small)
        self.assertEqual(r.status, 200, r)

    def test_413_chunked_body_too_large(self):
        path = self.tmp.join("5000c.bin")
        with open(path, "wb") as f:
            f.write(os.urandom(5000))
        r = self.get(self.port, "/echo", "localhost", "-H", "Transfer-Encoding: chunked",
                     "--data-binary", "@" + path)
        # The head may already be on its way upstream when the limit is crossed; the client
        # must not see a 200 with the body accepted.
        self.assertIn(r.status, (413, 0), r)


class ClientTimeoutsTest(harness.ProxyTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        try:
            cls.up = cls.class_upstream("to")
        except BaseException:
            cls.tearDownClass()
            raise

    def test_header_timeout(self):
        port = harness.free_port()
        self.frontdoor(harness.tls_config(port, self.certs, {"app": [self.up.address]},
                                          limits={"header_timeout": "1s", "idle_timeout": "60s"}))
        with harness.tls_connect(port, ca=self.certs.ca, timeout=5) as s:
            t0 = time.monotonic()
            s.sendall(b"GET / HTTP/1.1\r\n")
            data, closed = harness.read_until_close(s, timeout=6 * SLOW)
            elapsed = time.monotonic() - t0
        self.assertTrue(closed, "connection still open %.1fs after a partial head" % elapsed)
        self.assertLess(elapsed, 3.0 * SLOW)
        self.assertGreater(elapsed, 0.5, "closed before header_timeout")
        self.assertTrue(data == b"" or data.startswith(b"HTTP/1.1 408"), data)

    def test_a_silent_connection_waits_in_the_kernel_until_it_speaks(self):
        port, _, admin = self.frontdoor_with_admin(
            {"app": [self.up.address]}, limits={"header_timeout": "1s", "idle_timeout": "60s"})
        ctx = harness.client_context(self.certs.ca, ["http/1.1"])
        # Not scaled by SLOW: the kernel hands a silent connection over after about a second.
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            time.sleep(0.3)
            self.assertEqual(admin.status()["connections_active"], 0,
                             "a connection that sent nothing was accepted")
            with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                self.assertEqual(admin.status()["connections_active"], 1)
                s.sendall(b"GET /spoke HTTP/1.1\r\nHost: localhost\r\n\r\n")
                status, _, _ = harness.read_response(s, timeout=5 * SLOW)
                self.assertEqual(status, 200)
        # Held, not kept: one that never speaks reaches frontdoor and dies by header_timeout.
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            t0 = time.monotonic()
            data, closed = harness.read_until_close(raw, timeout=10 * SLOW)
            elapsed = time.monotonic() - t0
        self.assertTrue(closed, "a silent connection still open after %.1fs" % elapsed)
        self.assertEqual(data, b"")
        self.assertGreater(elapsed, 0.9, "closed before its header_timeout")

    def slow_body(self, limits, chunk, interval, total=1 << 20, timeout=20):
        """POSTs a body of |total| bytes, |chunk| bytes every |interval| s, until frontdoor
        answers or closes: (response bytes, seconds from the head to the answer)."""
        port = harness.free_port()
        self.frontdoor(harness.tls_config(port, self.certs, {"app": [self.up.address]},
                                          limits=limits))
        with harness.tls_connect(port, ca=self.certs.ca, timeout=5) as s:
            s.sendall(b"POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: %d\r\n\r\n"
                      % total)
            t0 = time.monotonic()
            s.settimeout(interval)
            data = b""
            sent = 0
            while time.monotonic() - t0 < timeout * SLOW:
                if sent < total:
                    piece = b"x" * min(chunk, total - sent)
                    try:
                        s.sendall(piece)
                    except OSError:
                        break
                    sent += len(piece)
                try:
                    piece = s.recv(65536)
                except socket.timeout:
                    continue
                except OSError:
                    break
                if not piece:
                    break
                data += piece
                if b"\r\n\r\n" in data:
                    break
            return data, time.monotonic() - t0

    def test_body_slower_than_body_min_rate_gets_408(self):
        # 100 bytes every 0.5 s is 200 B/s, under 1KiB/s: cut after the 5 s grace.
        connections = self.up.stats()["connections"]
        data, elapsed = self.slow_body({"body_min_rate": "1KiB/s", "body_timeout": "60s"},
                                       chunk=100, interval=0.5)
        self.assertTrue(data.startswith(b"HTTP/1.1 408 "), data[:200])
        # The one more is the /stats request itself.
        self.assertEqual(self.up.stats()["connections"], connections + 1,
                         "a slow body held an upstream connection")
        self.assertIn(b"body_min_rate", data)
        self.assertGreaterEqual(elapsed, 4.5)
        self.assertLess(elapsed, 9 * SLOW)

    def test_body_at_a_good_rate_is_cut_by_body_timeout(self):
        # 8 KiB every 0.1 s is fast enough, but 1 MiB cannot be complete within 2 s.
        data, elapsed = self.slow_body({"body_min_rate": "1KiB/s", "body_timeout": "2s"},
                                       chunk=8192, interval=0.1)
        self.assertTrue(data.startswith(b"HTTP/1.1 408 "), data[:200])
        self.assertIn(b"body_timeout", data)
        self.assertGreaterEqual(elapsed, 1.8)
        self.assertLess(elapsed, 5 * SLOW)

    def test_body_min_rate_zero_lets_a_slow_body_finish(self):
        data, elapsed = self.slow_body({"body_min_rate": "0B/s", "body_timeout": "0s"},
                                       chunk=100, interval=0.5, total=1400)
        self.assertTrue(data.startswith(b"HTTP/1.1 200 "), data[:200])
        self.assertGreater(elapsed, 6)

    def test_slow_body_on_a_pooled_upstream_outlives_its_idle_timeout(self):
        # The upstream connection was parked with a 1 s idle timeout. The next request takes it
        # once 64 KiB of its body are in (BODY_BEFORE_CONNECT); the rest takes 2.5 s to come,
        # and the idle timeout must not cut the connection meanwhile.
        port = harness.free_port()
        self.frontdoor(harness.tls_config(
            port, self.certs, {"app": {"servers": [self.up.address], "idle_timeout": "1s"}},
            workers=1, limits={"body_min_rate": "0B/s", "body_timeout": "0s"}))
        connections = self.up.stats()["connections"]
        with harness.tls_connect(port, ca=self.certs.ca, timeout=5) as s:
            s.sendall(b"GET /first HTTP/1.1\r\nHost: localhost\r\n\r\n")
            status, _, body = harness.read_response(s, timeout=5 * SLOW)
            self.assertEqual((status, body), (200, b"upstream to /first\n"))
            s.sendall(b"POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: %d\r\n\r\n"
                      % (65536 + 1000) + b"x" * 65536)
            t0 = time.monotonic()
            for _ in range(10):
                time.sleep(0.25)
                s.sendall(b"y" * 100)
            status, _, body = harness.read_response(s, timeout=5 * SLOW)
            elapsed = time.monotonic() - t0
        self.assertEqual(status, 200, body)
        self.assertEqual(json.loads(body)["body_len"], 65536 + 1000)
        self.assertGreater(elapsed, 2.4)
        # Both requests went over one upstream connection (the one more is /stats).
        self.assertEqual(self.up.stats()["connections"], connections + 2)

    def test_header_count_and_requests_per_connection_limits(self):
        port = harness.free_port()
        self.frontdoor(harness.tls_config(port, self.certs, {"app": [self.up.address]},
                                          limits={"max_headers": 10,
                                                  "max_requests_per_connection": 3}))
        extra = [a for i in range(12) for a in ("-H", "X-Extra-%d: y" % i)]
        r = self.get(port, "/many-headers", "localhost", *extra)
        self.assertEqual(r.status, 431, r)
        self.assertEqual(self.up.path_count("/many-headers"), 0)
        with harness.tls_connect(port, ca=self.certs.ca, timeout=5 * SLOW) as s:
            for i in range(3):
                s.sendall(b"GET /ka%d HTTP/1.1\r\nHost: localhost\r\n\r\n" % i)
                status, headers, _ = harness.read_response(s, timeout=5 * SLOW)
                self.assertEqual(status, 200)
            self.assertEqual(headers.get("connection"), "close", headers)
            data, closed = harness.read_until_close(s, timeout=5 * SLOW)
            self.assertTrue(closed and data == b"", data)

    def h2_client(self, port):
        """An h2 connection (python3-h2 over TLS with ALPN h2): (socket, H2Connection)."""
        s = harness.tls_connect(port, ca=self.certs.ca, timeout=0.5, alpn=("h2",))
        self.addCleanup(s.close)
        self.assertEqual(s.selected_alpn_protocol(), "h2")
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        conn.initiate_connection()
        s.sendall(conn.data_to_send())
        return s, conn

    @staticmethod
    def h2_events(s, conn):
        """The events of what arrives within the socket's timeout (acknowledging data)."""
        try:
            data = s.recv(65536)
        except socket.timeout:
            return []
        if not data:
            return [None]
        events = conn.receive_data(data)
        for e in events:
            if isinstance(e, h2.events.DataReceived):
                conn.acknowledge_received_data(e.flow_controlled_length, e.stream_id)
        s.sendall(conn.data_to_send())
        return events

    def h2_get(self, s, conn, path):
        """GETs |path| on a new stream: (stream id, status)."""
        sid = conn.get_next_available_stream_id()
        conn.send_headers(sid, [(":method", "GET"), (":path", path), (":scheme", "https"),
                                (":authority", "localhost")], end_stream=True)
        s.sendall(conn.data_to_send())
        status = None
        deadline = time.monotonic() + 5 * SLOW
        while time.monotonic() < deadline:
            for e in self.h2_events(s, conn):
                if isinstance(e, h2.events.ResponseReceived) and e.stream_id == sid:
                    status = int(dict(e.headers)[b":status"])
                if isinstance(e, h2.events.StreamEnded) and e.stream_id == sid:
                    return sid, status
        self.fail("no complete answer on stream %d" % sid)

    def test_h2_slow_body_stream_gets_408_and_the_connection_lives_on(self):
        port = harness.free_port()
        self.frontdoor(harness.tls_config(port, self.certs, {"app": [self.up.address]},
                                          limits={"body_min_rate": "1KiB/s"}))
        connections = self.up.stats()["connections"]
        s, conn = self.h2_client(port)
        sid = conn.get_next_available_stream_id()
        conn.send_headers(sid, [(":method", "POST"), (":path", "/upload"), (":scheme", "https"),
                                (":authority", "localhost"), ("content-length", "1048576")])
        s.sendall(conn.data_to_send())
        t0 = time.monotonic()
        status = None
        # 100 bytes every 0.5 s is 200 B/s, under 1KiB/s: cut after the 5 s grace.
        while status is None and time.monotonic() - t0 < 12 * SLOW:
            if conn.local_flow_control_window(sid) >= 100:
                conn.send_data(sid, b"x" * 100)
                s.sendall(conn.data_to_send())
            for e in self.h2_events(s, conn):
                self.assertIsNotNone(e, "the connection closed")
                if isinstance(e, h2.events.ResponseReceived) and e.stream_id == sid:
                    status = int(dict(e.headers)[b":status"])
        elapsed = time.monotonic() - t0
        self.assertEqual(status, 408)
        self.assertGreaterEqual(elapsed, 4.5)
        self.assertLess(elapsed, 9 * SLOW)
        # The one more is the /stats request itself.
        self.assertEqual(self.up.stats()["connections"], connections + 1,
                         "a slow body held an upstream connection")
        # Only that stream was cut: the connection serves the next one.
        self.assertEqual(self.h2_get(s, conn, "/after-slow-body")[1], 200)

    def test_h2_requests_per_connection_limit_sends_goaway(self):
        port = harness.free_port()
        self.frontdoor(harness.tls_config(port, self.certs, {"app": [self.up.address]},
                                          limits={"max_requests_per_connection": 3}))
        # curl goes on with a new connection after the GOAWAY that follows the third stream.
        urls = ["https://localhost:%d/h2-ka%d" % (port, i) for i in range(7)]
        results = harness.curl_many(urls, ca=self.certs.ca, http="2")
        self.assertEqual([r.status for r in results], [200] * 7)
        self.assertEqual([r.http_version for r in results], ["2"] * 7)
        self.assertEqual([r.num_connects for r in results], [1, 0, 0, 1, 0, 0, 1])

    def test_expect_100_continue_is_answered_by_frontdoor(self):
        port = harness.free_port()
        self.frontdoor(harness.tls_config(port, self.certs, {"app": [self.up.address]}))
        with harness.tls_connect(port, ca=self.certs.ca, timeout=5 * SLOW) as s:
            s.sendall(b"POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n"
                      b"Expect: 100-continue\r\n\r\n")
            interim = b""
            while b"\r\n\r\n" not in interim:
                piece = s.recv(1024)
                self.assertTrue(piece, "closed before 100 Continue: %r" % interim)
                interim += piece
            self.assertEqual(interim, b"HTTP/1.1 100 Continue\r\n\r\n")
            s.sendall(b"hello")
            status, _, body = harness.read_response(s, timeout=5 * SLOW)
        self.assertEqual(status, 200)
        echo = json.loads(body)
        self.assertEqual(echo["body_len"], 5)
        self.assertNotIn("expect", [name.lower() for name, _ in echo["headers"]])

    def test_max_connections_pauses_accepting_until_one_closes(self):
        port = harness.free_port()
        fd = self.frontdoor(harness.tls_config(
            port, self.certs, {"app": [self.up.address]}, workers=4,
            limits={"max_connections": 3, "header_timeout": "30s"}))
        held = [harness.tls_connect(port, ca=self.certs.ca, timeout=5) for _ in range(3)]
        try:
            # The fourth waits in the backlog: its handshake cannot finish while paused.
            waiting = subprocess.Popen(
                ["curl", "-sS", "--http1.1", "--cacert", self.certs.ca, "--resolve",
                 "localhost:%d:127.0.0.1" % port, "--max-time", str(20 * SLOW), "-o",
                 os.devnull, "-w", "%{http_code}", "https://localhost:%d/fourth" % port],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
            self.addCleanup(lambda: waiting.poll() is None and (waiting.kill(), waiting.wait()))
            time.sleep(1.0 * SLOW)
            self.assertIsNone(waiting.poll(), "a fourth connection was served at the limit")
            self.assertEqual(self.up.path_count("/fourth"), 0)
            held.pop().close()
            out, err = waiting.communicate(timeout=10 * SLOW)
            self.assertEqual(out, b"200", err)
        finally:
            for s in held:
                s.close()
        fd.assert_running()
        text = fd.log_text()
        self.assertIn("max_connections reached: accepting paused", text)
        self.assertIn("accepting again: below max_connections", text)

    def test_idle_timeout(self):
        port = harness.free_port()
        self.frontdoor(harness.tls_config(port, self.certs, {"app": [self.up.address]},
                                          limits={"idle_timeout": "1s", "header_timeout": "10s"}))
        with harness.tls_connect(port, ca=self.certs.ca, timeout=5) as s:
            s.sendall(b"GET /idle HTTP/1.1\r\nHost: localhost\r\n\r\n")
            status, headers, body = harness.read_response(s, timeout=5 * SLOW)
            self.assertEqual(status, 200)
            self.assertEqual(body, b"upstream to /idle\n")
            t0 = time.monotonic()
            data, closed = harness.read_until_close(s, timeout=6 * SLOW)
            elapsed = time.monotonic() - t0
        self.assertTrue(closed, "idle keep-alive connection still open after %.1fs" % elapsed)
        self.assertEqual(data, b"")
        self.assertLess(elapsed, 3.0 * SLOW)
        self.assertGreater(elapsed, 0.5, "closed well before idle_timeout")

    def test_keepalive_survives_within_idle_timeout(self):
        port = harness.free_port()
        self.frontdoor(harness.tls_config(port, self.certs, {"app": [self.up.address]},
                                          limits={"idle_timeout": "3s"}))
        with harness.tls_connect(port, ca=self.certs.ca, timeout=5) as s:
            for i in range(3):
                s.sendall(b"GET /ka%d HTTP/1.1\r\nHost: localhost\r\n\r\n" % i)
                status, _, body = harness.read_response(s, timeout=5 * SLOW)
                self.assertEqual((status, body), (200, b"upstream to /ka%d\n" % i))
                time.sleep(0.5)


if __name__ == "__main__":
    unittest.main()
