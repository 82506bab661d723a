"""Graceful shutdown on SIGTERM / SIGINT: in-flight requests finish, no new connections are
served, idle keep-alive connections are closed, exit code 0, shutdown_timeout is enforced."""

import signal
import socket
import ssl
import subprocess
import time
import unittest

import harness
from harness import SLOW


class ShutdownTest(harness.ProxyTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        try:
            cls.up = cls.class_upstream("sd")
        except BaseException:
            cls.tearDownClass()
            raise

    def start_proxy(self, shutdown_timeout):
        port = harness.free_port()
        fd = self.frontdoor(harness.tls_config(port, self.certs, {"app": [self.up.address]},
                                               shutdown_timeout=shutdown_timeout))
        return port, fd

    def curl_background(self, port, path):
        out = self.tmp.join("bg-%d.body" % port)
        proc = subprocess.Popen(
            ["curl", "-sS", "--http1.1", "--cacert", self.certs.ca,
             "--resolve", "localhost:%d:127.0.0.1" % port, "--max-time", str(30 * SLOW),
             "-o", out, "-w", "%{http_code}", self.url(port, path)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        self.addCleanup(lambda: proc.poll() is None and (proc.kill(), proc.wait(timeout=10)))
        return proc, out

    def new_connection_outcome(self, port, timeout):
        """'refused', 'closed' (no response), or the response bytes when one arrives."""
        try:
            raw = socket.create_connection(("127.0.0.1", port), timeout=2)
        except ConnectionRefusedError:
            return "refused"
        except OSError as e:
            return "refused (%s)" % e
        try:
            ctx = harness.client_context(self.certs.ca, ["http/1.1"])
            try:
                s = ctx.wrap_socket(raw, server_hostname="localhost")
            except (ssl.SSLError, ConnectionError, OSError):
                return "closed"
            s.settimeout(timeout)
            try:
                s.sendall(b"GET /late HTTP/1.1\r\nHost: localhost\r\n\r\n")
            except (ssl.SSLError, ConnectionError, OSError):
                return "closed"
            data, closed = harness.read_until_close(s, timeout)
            if data:
                return data
            return "closed" if closed else "timeout"
        finally:
            raw.close()

    def test_sigterm_lets_inflight_request_finish(self):
        shutdown_timeout = 5
        port, fd = self.start_proxy("%ds" % shutdown_timeout)
        proc, body_path = self.curl_background(port, "/sleep?ms=2000")
        time.sleep(0.5)
        self.assertIsNone(proc.poll(), "request finished too early")
        t_signal = time.monotonic()
        fd.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        outcome = self.new_connection_outcome(port, timeout=shutdown_timeout + 2)
        self.assertIn(outcome, ("refused", "closed"),
                      "a connection made after SIGTERM was served: %r" % (outcome,))
        try:
            out, err = proc.communicate(timeout=20 * SLOW)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate(timeout=10)
            self.fail("in-flight request never completed\n" + fd.tail())
        self.assertEqual(out, b"200", (out, err, fd.tail()))
        self.assertEqual(harness.read_text(body_path), "slept")
        code = fd.wait_exit(max(0.1, t_signal + (shutdown_timeout + 2) * SLOW - time.monotonic()))
        if code is None:
            fd.kill()
            self.fail("frontdoor still running %ds after SIGTERM\n%s"
                      % (shutdown_timeout + 2, fd.tail()))
        self.assertEqual(code, 0, fd.tail())

    def test_sigint_closes_idle_keepalive_and_exits_promptly(self):
        port, fd = self.start_proxy("8s")
        with harness.tls_connect(port, ca=self.certs.ca, timeout=5) as s:
            s.sendall(b"GET /before HTTP/1.1\r\nHost: localhost\r\n\r\n")
            status, _, body = harness.read_response(s, timeout=5 * SLOW)
            self.assertEqual((status, body), (200, b"upstream sd /before\n"))
            t0 = time.monotonic()
            fd.send_signal(signal.SIGINT)
            data, closed = harness.read_until_close(s, timeout=5 * SLOW)
            self.assertTrue(closed, "idle keep-alive connection not closed on shutdown")
            self.assertEqual(data, b"")
        code = fd.wait_exit(max(0.1, t0 + 3 * SLOW - time.monotonic()))
        if code is None:
            fd.kill()
            self.fail("with only idle connections frontdoor should exit at once, not wait for "
                      "shutdown_timeout\n" + fd.tail())
        self.assertEqual(code, 0, fd.tail())

    def test_shutdown_timeout_bounds_the_wait(self):
        port, fd = self.start_proxy("1s")
        proc, _ = self.curl_background(port, "/sleep?ms=15000")
        time.sleep(0.5)
        t0 = time.monotonic()
        fd.send_signal(signal.SIGTERM)
        code = fd.wait_exit(3 * SLOW)
        if code is None:
            fd.kill()
            self.fail("frontdoor ignored shutdown_timeout: 1s\n" + fd.tail())
        self.assertLess(time.monotonic() - t0, 3 * SLOW)
        self.assertEqual(code, 0, fd.tail())
        out, _ = proc.communicate(timeout=10 * SLOW)
        self.assertNotEqual(out, b"200")
        stopped = [l for l in fd.log_lines() if l.get("msg") == "stopped"]
        self.assertEqual(len(stopped), 1, fd.tail())
        self.assertEqual((stopped[0]["forced"], stopped[0]["connections_cut"]), (True, 1),
                         stopped[0])


if __name__ == "__main__":
    unittest.main()
