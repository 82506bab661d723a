"""What happens to requests still running on an old configuration once shutdown_timeout has
passed after a reload: they move onto the new configuration when their upstream is still in it
(long responses are not cut), and are cut when it is gone, so an old generation does not live
on."""

import hashlib
import subprocess
import time
import unittest

import harness
from harness import SLOW

CUT = "requests cut after a reload"


class RetireTest(harness.ProxyTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        try:
            cls.one = cls.class_upstream("one")
            cls.two = cls.class_upstream("two")
        except BaseException:
            cls.tearDownClass()
            raise

    def config(self, port, upstreams, routes=None):
        return harness.tls_config(port, self.certs, upstreams, routes=routes,
                                  shutdown_timeout="1s")

    def background(self, port, path, *args, http="--http1.1"):
        out = self.tmp.join("retire-%d-%s.body" % (port, time.monotonic_ns()))
        proc = subprocess.Popen(
            ["curl", "-sS", http, "--cacert", self.certs.ca,
             "--resolve", "localhost:%d:127.0.0.1" % port, "--max-time", str(30 * SLOW),
             "-o", out, "-w", "%{http_code}", *args, self.url(port, path)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        self.addCleanup(lambda: proc.poll() is None and (proc.kill(), proc.wait(timeout=10)))
        return proc, out

    def test_long_download_outlives_the_old_generation(self):
        self.check_long_download("--http1.1")

    def test_long_http2_download_outlives_the_old_generation(self):
        self.check_long_download("--http2")

    def check_long_download(self, http):
        port = harness.free_port()
        fd = self.frontdoor(self.config(port, {"app": [self.one.address]}))
        size = 3 * 1024 * 1024
        # About 3 s at 1 MiB/s: well past shutdown_timeout (1 s) after the reload.
        proc, out = self.background(port, "/big?bytes=%d" % size, "--limit-rate", "1M", http=http)
        time.sleep(0.5)
        self.assertIsNone(proc.poll(), "download finished before the reload")
        routes = [{"match": {"path_prefix": "/extra/"}, "upstream": "app"},
                  {"match": {"path_prefix": "/"}, "upstream": "app"}]
        fd.reload(self.config(port, {"app": [self.one.address]}, routes), 2)
        status, err = proc.communicate(timeout=30 * SLOW)
        self.assertEqual(status, b"200", (err, fd.tail()))
        with open(out, "rb") as f:
            body = f.read()
        self.assertEqual(len(body), size)
        self.assertEqual(hashlib.sha256(body).hexdigest(), harness.pattern_sha256(size))
        self.assertFalse([l for l in fd.log_lines() if l.get("msg") == CUT], fd.tail())

    def test_request_whose_upstream_left_is_cut_after_shutdown_timeout(self):
        self.check_cut("--http1.1")

    def test_http2_stream_whose_upstream_left_is_cut_after_shutdown_timeout(self):
        self.check_cut("--http2")

    def check_cut(self, http):
        port = harness.free_port()
        fd = self.frontdoor(self.config(port, {"old": [self.one.address]}))
        proc, _ = self.background(port, "/sleep?ms=%d" % int(8000 * SLOW), http=http)
        time.sleep(0.5)
        t0 = time.monotonic()
        fd.reload(self.config(port, {"new": [self.two.address]}), 2)
        # New requests go to the new upstream at once.
        r = self.get(port, "/after")
        self.assertEqual((r.status, r.body), (200, b"upstream two /after\n"), fd.tail())
        status, _ = proc.communicate(timeout=30 * SLOW)
        elapsed = time.monotonic() - t0
        self.assertNotEqual(status, b"200", fd.tail())
        self.assertLess(elapsed, 6 * SLOW, "cut only when the upstream answered\n" + fd.tail())
        harness.wait_for(lambda: any(l.get("msg") == CUT for l in fd.log_lines()), 5 * SLOW,
                         what="the cut is logged")
        cut = [l for l in fd.log_lines() if l.get("msg") == CUT]
        self.assertEqual(sum(l["connections"] for l in cut), 1, cut)

    def test_idle_keepalive_connection_uses_the_new_routes(self):
        port = harness.free_port()
        fd = self.frontdoor(self.config(port, {"old": [self.one.address]}))
        with harness.tls_connect(port, ca=self.certs.ca, timeout=5) as s:
            s.sendall(b"GET /a HTTP/1.1\r\nHost: localhost\r\n\r\n")
            self.assertEqual(harness.read_response(s, timeout=5 * SLOW)[::2],
                             (200, b"upstream one /a\n"))
            fd.reload(self.config(port, {"new": [self.two.address]}), 2)
            s.sendall(b"GET /b HTTP/1.1\r\nHost: localhost\r\n\r\n")
            self.assertEqual(harness.read_response(s, timeout=5 * SLOW)[::2],
                             (200, b"upstream two /b\n"), fd.tail())


if __name__ == "__main__":
    unittest.main()
