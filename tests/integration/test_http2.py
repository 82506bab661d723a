"""HTTP/2 to clients: ALPN, header conversion, bodies both ways byte for byte, multiplexed load
spread over upstreams, flow control keeping memory bounded for slow readers, GOAWAY on shutdown.

Clients: curl --http2, nghttp and h2load (Debian's nghttp2-client). Everything on 127.0.0.1.
"""

import hashlib
import json
import re
import signal
import subprocess
import time
import unittest

import harness
from harness import MIB, SANITIZE, ProxyTestCase, curl, curl_many, pattern_sha256, run, tls_config


def nghttp(url, *args, timeout=30):
    """nghttp -v URL: (returncode, stdout text). nghttp does not verify certificates."""
    r = run(["nghttp", "-v", "-t", str(timeout)] + list(args) + [url], timeout=timeout + 10)
    return r.returncode, r.stdout.decode(errors="replace") + r.stderr.decode(errors="replace")


class Http2Test(ProxyTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.ups = [cls.class_upstream(uid) for uid in ("a", "b", "c")]
        cls.port = harness.free_port()
        # h2load does not reconnect after a GOAWAY: 2000 requests per connection below.
        cls.fd = cls.class_frontdoor(tls_config(
            cls.port, cls.certs, {"app": [u.address for u in cls.ups]}, workers=2,
            limits={"max_requests_per_connection": 100000}))

    def h2(self, path, *args, **kw):
        kw.setdefault("ca", self.certs.ca)
        kw.setdefault("http", "2")
        return curl(self.url(self.port, path), *args, **kw)

    def test_alpn_selects_h2_and_status_headers_body(self):
        r = self.h2("/status/201")
        self.assertEqual(r.status, 201, r)
        self.assertEqual(r.http_version, "2", r)
        self.assertTrue(r.body.startswith(b"status 201 from "), r)
        self.assertIn(r.headers.get("x-upstream"), ("a", "b", "c"), r)
        # HTTP/1.1 clients still get HTTP/1.1.
        r1 = self.h2("/status/200", http="1.1")
        self.assertEqual((r1.status, r1.http_version), (200, "1.1"), r1)

    def test_request_headers_converted_for_upstream(self):
        # nghttp sends each cookie crumb as its own field; the upstream must see one Cookie.
        rc, out = nghttp(self.url(self.port, "/echo?x=1"), "-H", "cookie: a=1",
                         "-H", "cookie: b=2", "-H", "x-custom: yes")
        self.assertEqual(rc, 0, out)
        self.assertIn(":status: 200", out)
        m = re.search(r"^(\{.*\})\s*$", out, re.M)
        self.assertIsNotNone(m, out)
        echo = json.loads(m.group(1))
        self.assertEqual(echo["path"], "/echo?x=1", echo)
        self.assertEqual(echo["version"], "HTTP/1.1", echo)
        self.assertEqual(harness.echo_headers(echo, "host"), ["localhost:%d" % self.port], echo)
        self.assertEqual(harness.echo_headers(echo, "cookie"), ["a=1; b=2"], echo)
        self.assertEqual(harness.echo_headers(echo, "x-custom"), ["yes"], echo)
        self.assertEqual(harness.echo_headers(echo, "x-forwarded-proto"), ["https"], echo)
        self.assertEqual(harness.echo_headers(echo, "transfer-encoding"), [], echo)

    def test_connection_specific_request_header_is_refused(self):
        rc, out = nghttp(self.url(self.port, "/echo"), "-H", "connection: keep-alive")
        self.assertIn("RST_STREAM", out)
        self.assertIn("PROTOCOL_ERROR", out)
        self.assertNotIn(":status: 200", out)

    def test_large_download_byte_for_byte(self):
        for path in ("/big", "/bigchunked"):
            n = 8 * MIB + 123
            r = self.h2("%s?bytes=%d" % (path, n), timeout=60)
            self.assertEqual((r.status, r.http_version), (200, "2"), r)
            self.assertEqual(len(r.body), n, path)
            self.assertEqual(hashlib.sha256(r.body).hexdigest(), pattern_sha256(n), path)

    def test_large_upload_byte_for_byte(self):
        n = 6 * MIB + 7
        path = self.tmp.join("upload.bin")
        with open(path, "wb") as f:
            harness.write_pattern(f, n)
        # With a length (Content-Length) and without one (stdin: the body goes upstream chunked).
        r = self.h2("/upload", "--data-binary", "@" + path, timeout=60)
        self.assertEqual((r.status, r.http_version), (200, "2"), r)
        got = json.loads(r.body)
        self.assertEqual((got["body_len"], got["body_sha256"]), (n, pattern_sha256(n)), got)
        with open(path, "rb") as f:
            data = f.read()
        r = self.h2("/upload", "-T", "-", "-X", "POST", input=data, timeout=60)
        self.assertEqual((r.status, r.http_version), (200, "2"), r)
        got = json.loads(r.body)
        self.assertEqual((got["body_len"], got["body_sha256"]), (n, pattern_sha256(n)), got)

    def test_many_streams_on_one_connection(self):
        urls = [self.url(self.port, "/status/200?i=%d" % i) for i in range(30)]
        results = curl_many(urls, "--parallel", "--parallel-max", "30", ca=self.certs.ca,
                            http="2")
        self.assertEqual([r.status for r in results], [200] * 30, results[:3])
        self.assertEqual({r.http_version for r in results}, {"2"})

    def test_h2load_spread_round_robin(self):
        before = [u.stats()["requests"] for u in self.ups]
        n = 20000
        r = run(["h2load", "-c", "10", "-m", "50", "-n", str(n), "-T", "30", "-N", "30",
                 self.url(self.port, "/load")], timeout=90)
        out = r.stdout.decode(errors="replace")
        self.assertEqual(r.returncode, 0, out + r.stderr.decode(errors="replace"))
        m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                      r"(\d+) failed, (\d+) errored, (\d+) timeout", out)
        self.assertIsNotNone(m, out)
        total, _, done, ok, failed, errored, timeout = map(int, m.groups())
        self.assertEqual((total, done, ok, failed, errored, timeout), (n, n, n, 0, 0, 0), out)
        self.assertIn("status codes: %d 2xx, 0 3xx, 0 4xx, 0 5xx" % n, out)
        counts = [u.stats()["requests"] - b for u, b in zip(self.ups, before)]
        self.assertEqual(sum(counts), n, counts)
        for c in counts:
            self.assertGreater(c, n / 3 * 0.9, counts)


def _frame(ftype, flags, stream_id, payload=b""):
    return (len(payload).to_bytes(3, "big") + bytes([ftype, flags])
            + stream_id.to_bytes(4, "big") + payload)


def rapid_reset(port, ca, resets, timeout=10):
    """A raw HTTP/2 client: |resets| times HEADERS (GET /) then RST_STREAM(CANCEL) on the next
    stream. Returns the GOAWAY error code the server sent (None if none within timeout)."""
    s = harness.tls_connect(port, ca=ca, alpn=("h2",), timeout=timeout)
    try:
        assert s.selected_alpn_protocol() == "h2"
        # HPACK: indexed :method GET (2), :scheme https (7), :path / (4); :authority as a
        # literal without indexing, name index 1.
        block = b"\x82\x87\x84\x01" + bytes([len("localhost")]) + b"localhost"
        out = bytearray(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + _frame(4, 0, 0))
        for i in range(resets):
            sid = 1 + 2 * i
            out += _frame(1, 0x5, sid, block)  # END_STREAM | END_HEADERS
            out += _frame(3, 0, sid, (8).to_bytes(4, "big"))  # RST_STREAM CANCEL
        try:
            s.sendall(bytes(out))
        except OSError:
            pass  # the server may close before taking everything
        buf = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            while len(buf) >= 9:
                length = int.from_bytes(buf[:3], "big")
                if len(buf) < 9 + length:
                    break
                ftype, payload = buf[3], buf[9:9 + length]
                buf = buf[9 + length:]
                if ftype == 7:  # GOAWAY
                    return int.from_bytes(payload[4:8], "big")
            try:
                chunk = s.recv(65536)
            except (OSError, harness.ssl.SSLError):
                return None
            if not chunk:
                return None
            buf += chunk
        return None
    finally:
        s.close()


class Http2RapidResetTest(ProxyTestCase):
    def test_rapid_reset_gets_enhance_your_calm_and_others_are_unaffected(self):
        up = self.upstream("a")
        port = harness.free_port()
        # Reset streams count as requests: the request limit must not end the connection first.
        fd = self.frontdoor(tls_config(port, self.certs, {"app": [up.address]}, workers=1,
                                       access=False,
                                       limits={"max_requests_per_connection": 100000}))
        code = rapid_reset(port, self.certs.ca, 1500)
        self.assertEqual(code, 11, "expected GOAWAY ENHANCE_YOUR_CALM\n" + fd.tail())
        r = curl(self.url(port, "/status/200"), ca=self.certs.ca, http="2")
        self.assertEqual((r.status, r.http_version), (200, "2"), r)
        fd.assert_running()
        # A client resetting a few streams is fine.
        self.assertIsNone(rapid_reset(port, self.certs.ca, 50, timeout=1))


class Http2FlowControlTest(ProxyTestCase):
    def test_slow_readers_keep_memory_bounded(self):
        up = self.upstream("a")
        port = harness.free_port()
        # ASan's quarantine would otherwise hold freed buffers (256 MiB by default) and hide
        # what the proxy really keeps.
        fd = self.frontdoor(tls_config(port, self.certs, {"app": [up.address]}, workers=1,
                                       access=False), asan_extra="quarantine_size_mb=16")
        # Warm up, then take the baseline.
        self.assertEqual(curl(self.url(port, "/big?bytes=1000"), ca=self.certs.ca,
                              http="2").status, 200)
        base = fd.rss_kib()
        streams = 20
        size = 100 * MIB
        # Each transfer is read at 16 MB/s (about 6.5 s for 100 MiB); curl stops reading a
        # stream at its rate, so its window closes and the proxy must stop pulling upstream.
        urls = [self.url(port, "/big?bytes=%d&i=%d" % (size, i)) for i in range(streams)]
        start = time.monotonic()
        results = curl_many(urls, "--parallel", "--parallel-max", str(streams),
                            "--limit-rate", "16M", ca=self.certs.ca, http="2", timeout=60)
        elapsed = time.monotonic() - start
        for r in results:
            self.assertEqual((r.status, r.http_version, r.size_download), (200, "2", size), r)
        hwm = fd.hwm_kib()
        grown_mib = (hwm - base) / 1024.0
        print("\n%d x 100 MiB slow streams: VmHWM +%.1f MiB (base %d KiB), %.1fs"
              % (streams, grown_mib, base, elapsed))
        # 20 x 100 MiB went through; without flow control most of it would sit in the proxy.
        self.assertLess(grown_mib, 192 if SANITIZE else 96,
                        "VmHWM grew by %.1f MiB (base %d KiB) in %.1fs" % (grown_mib, base, elapsed))


class Http2ShutdownTest(ProxyTestCase):
    def test_sigterm_sends_goaway_and_lets_stream_finish(self):
        up = self.upstream("a")
        port = harness.free_port()
        fd = self.frontdoor(tls_config(port, self.certs, {"app": [up.address]}, workers=1,
                                       shutdown_timeout="10s"))
        proc = subprocess.Popen(["nghttp", "-v", "-t", "20", self.url(port, "/sleep?ms=1500")],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            harness.wait_for(lambda: up.path_count("/sleep") >= 1, 10, what="request upstream")
            fd.send_signal(signal.SIGTERM)
            out, _ = proc.communicate(timeout=20)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        text = out.decode(errors="replace")
        self.assertEqual(proc.returncode, 0, text)
        self.assertIn("recv GOAWAY frame", text)
        # The GOAWAY names the stream in flight (nghttp opens its request on stream 13, after
        # its PRIORITY anchor streams), so the client knows it will still be answered.
        m = re.search(r"send HEADERS frame <[^>]*stream_id=(\d+)>", text)
        self.assertIsNotNone(m, text)
        self.assertRegex(text, r"recv GOAWAY frame <[^>]*>\s*\(last_stream_id=%s, "
                               r"error_code=NO_ERROR" % m.group(1))
        self.assertIn(":status: 200", text)
        self.assertIn("slept", text)
        self.assertEqual(fd.wait_exit(10 * harness.SLOW), 0, fd.tail())


if __name__ == "__main__":
    unittest.main()
