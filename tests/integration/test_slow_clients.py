"""Slow and idle clients: slowhttptest's slowloris (-H) and slow-body (-B) runs (1000
connections opened at 400/s), and a flood of idle TLS connections, each while a normal client
keeps asking. What must hold: the attack's
connections die by themselves (header_timeout counted from accept; body_min_rate after its
grace), slow bodies hold no upstream connection, the normal client sees no failure and no
slow answer, and an idle TLS connection costs little memory."""

import resource
import shutil
import socket
import ssl
import subprocess
import threading
import time
import unittest

import harness
from harness import SLOW

# The normal client's worst answer while an attack runs (issue: under 100 ms).
MAX_LATENCY = 0.1 * SLOW


class NormalClient:
    """A new TLS connection and one GET every 100 ms until stop(): the failures and the
    slowest answer, each timed from connect to the last byte."""

    def __init__(self, port, ca):
        self.port = port
        self.ctx = harness.client_context(ca, ["http/1.1"])
        self.failures = []
        self.latencies = []
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)

    def loop(self):
        while not self.stopped.is_set():
            t0 = time.monotonic()
            try:
                raw = socket.create_connection(("127.0.0.1", self.port), timeout=5)
                with self.ctx.wrap_socket(raw, server_hostname="localhost") as s:
                    s.sendall(b"GET /normal HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                    status, _, _ = harness.read_response(s, timeout=5)
                if status != 200:
                    self.failures.append("status %d" % status)
            except (OSError, ssl.SSLError, AssertionError) as e:
                self.failures.append(repr(e))
            self.latencies.append(time.monotonic() - t0)
            self.stopped.wait(0.1)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopped.set()
        self.thread.join(timeout=10)


def csv_rows(path):
    """slowhttptest's -g CSV: [(seconds, closed, pending, connected)]."""
    rows = []
    with open(path) as f:
        next(f)
        for line in f:
            fields = line.strip().split(",")
            if len(fields) >= 4 and all(x.isdigit() for x in fields[:4]):
                rows.append(tuple(int(x) for x in fields[:4]))
    return rows


@unittest.skipIf(shutil.which("slowhttptest") is None,
                 "slowhttptest not installed (Debian package slowhttptest)")
class SlowClientsTest(harness.ProxyTestCase):

    def start_proxy(self, **limits):
        self.up = self.upstream("slow")
        self.port = harness.free_port()
        self.fd = self.frontdoor(harness.tls_config(
            self.port, self.certs, {"app": [self.up.address]}, workers=2, access=False,
            limits=dict({"header_timeout": "10s", "body_min_rate": "1KiB/s"}, **limits)))

    def slowhttptest(self, mode, interval, length):
        """Runs slowhttptest against the proxy beside a NormalClient: (CSV rows, client)."""
        prefix = self.tmp.join("slow%s" % mode.strip("-"))
        args = ["slowhttptest", mode, "-c", "1000", "-r", "400", "-i", str(interval),
                "-l", str(length), "-s", "8192", "-p", "3", "-g", "-o", prefix,
                "-u", "https://localhost:%d/" % self.port]
        with NormalClient(self.port, self.certs.ca) as client:
            r = harness.run(args, timeout=length + 60)
        self.assertEqual(r.returncode, 0, r.stdout[-2000:] + r.stderr[-2000:])
        return csv_rows(prefix + ".csv"), client

    def assert_normal_client_unharmed(self, client):
        self.assertGreater(len(client.latencies), 20)
        self.assertEqual(client.failures, [])
        self.assertLess(max(client.latencies), MAX_LATENCY,
                        "slowest normal answer %.0f ms" % (1000 * max(client.latencies)))

    def test_slowloris_dies_by_header_timeout(self):
        self.start_proxy()
        rows, client = self.slowhttptest("-H", interval=10, length=30)
        self.assert_normal_client_unharmed(client)
        peak = max(connected for _, _, _, connected in rows)
        self.assertGreaterEqual(peak, 900, rows)
        # Every slow head was closed by frontdoor within header_timeout of its accept, so the
        # run ends by itself (slowhttptest stops once none is left, without a last row) well
        # before its 30 s.
        seconds, closed, pending, connected = rows[-1]
        self.assertLess(seconds, 25, rows[-3:])
        self.assertGreater(closed, 500, rows[-3:])
        self.assertEqual(self.up.path_count("/normal"), len(client.latencies))
        self.assertEqual(set(self.up.stats()["paths"]) - {"/normal", "/"}, set())

    def test_slow_bodies_are_cut_and_hold_no_upstream_connection(self):
        self.start_proxy()
        connections = self.up.stats()["connections"]
        rows, client = self.slowhttptest("-B", interval=2, length=30)
        self.assert_normal_client_unharmed(client)
        seconds, closed, pending, connected = rows[-1]
        self.assertLess(seconds, 20, rows[-3:])
        self.assertGreater(closed, 500, rows[-3:])
        # One upstream connection per normal request at most (they are pooled), one for the
        # /stats call, a few for slowhttptest's probes: nothing for the 1000 slow bodies.
        used = self.up.stats()["connections"] - connections
        self.assertLess(used, 20, "slow bodies took upstream connections: %d" % used)
        self.assertIn("request body slower than body_min_rate", self.fd.log_text())

    def test_idle_tls_connections_are_cheap(self):
        # 3000 client sockets here and 3000 in frontdoor, which inherits our limit.
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        wanted = 8192 if hard == resource.RLIM_INFINITY else min(hard, 8192)
        if soft < wanted:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            self.addCleanup(resource.setrlimit, resource.RLIMIT_NOFILE, (soft, hard))
        if wanted < 7000:
            self.skipTest("RLIMIT_NOFILE hard limit %d is below the 7000 this test needs" % hard)
        self.start_proxy(header_timeout="60s")
        self.assertEqual(self.get(self.port, "/warm").status, 200)
        base = self.fd.rss_kib()
        ctx = harness.client_context(self.certs.ca, ["http/1.1"])
        idle = []
        self.addCleanup(lambda: [s.close() for s in idle])
        with NormalClient(self.port, self.certs.ca) as client:
            for _ in range(3000):
                raw = socket.create_connection(("127.0.0.1", self.port), timeout=10)
                idle.append(ctx.wrap_socket(raw, server_hostname="localhost"))
            time.sleep(1)
        per_connection = (self.fd.rss_kib() - base) / 3000.0
        print("idle TLS connection: %.1f KiB" % per_connection)
        self.assert_normal_client_unharmed(client)
        if not harness.SANITIZE:  # ASan's shadow memory and quarantine are not ours
            self.assertLessEqual(per_connection, 17.0)
        for s in idle[:50]:
            s.sendall(b"GET /late HTTP/1.1\r\nHost: localhost\r\n\r\n")
            status, _, _ = harness.read_response(s, timeout=5 * SLOW)
            self.assertEqual(status, 200)


if __name__ == "__main__":
    unittest.main()
