"""The admin listener: /status JSON, /metrics (Prometheus text), /ready and draining, and its
separation from the public TLS listener."""

import os
import re
import signal
import socket
import subprocess
import time
import unittest

import harness
from harness import SLOW, curl_many

HEALTH_CHECK = {"path": "/healthz", "interval": "500ms", "timeout": "300ms",
                "healthy_after": 2, "unhealthy_after": 2}
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:?\d\d)$")
PROMTOOL = os.environ.get("FRONTDOOR_PROMTOOL") or "/usr/bin/promtool"
FAMILIES = {
    "frontdoor_requests_total": "counter",
    "frontdoor_upstream_up": "gauge",
    "frontdoor_request_duration_seconds": "histogram",
    "frontdoor_connections_active": "gauge",
    "frontdoor_upstream_retries_total": "counter",
}


def is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def health_command(url, timeout="2s"):
    """Runs `frontdoor health --url URL`: (exit code, stderr)."""
    env = dict(os.environ, **harness.sanitizer_env())
    result = harness.run([harness.BIN, "health", "--url", url, "--timeout", timeout],
                         timeout=10 * SLOW, env=env)
    return result.returncode, result.stderr.decode()


class AdminTest(harness.ProxyTestCase):

    def assert_counts(self, obj, what):
        self.assertIsInstance(obj, dict, what)
        for code, n in obj.items():
            self.assertRegex(code, r"^[1-5]\d\d$", (what, obj))
            self.assertTrue(is_int(n) and n >= 0, (what, obj))

    def assert_rfc3339(self, value, what):
        self.assertIsInstance(value, str, what)
        self.assertRegex(value, RFC3339, what)

    # --- /status ---

    def test_status_fields_and_types(self):
        a, b, c = self.upstream("st-a"), self.upstream("st-b"), self.upstream("st-c")
        port, fd, admin = self.frontdoor_with_admin(
            {"app": {"servers": [a.address, b.address], "health_check": HEALTH_CHECK},
             "other": {"servers": [c.address], "balance": "least_conn"}},
            routes=[{"match": {"path_prefix": "/other/"}, "upstream": "other"},
                    {"match": {"path_prefix": "/"}, "upstream": "app"}])
        for u in (a, b):
            admin.wait_health("app", u.address, "up", 3 * SLOW)
        code, headers, body = admin.get("/status")
        self.assertEqual(code, 200, body)
        self.assertIn("json", headers.get("content-type", ""), headers)
        st = admin.status()

        for key in ("version", "started_at", "draining", "connections_active", "upstreams",
                    "certificates"):
            self.assertIn(key, st, st)
        self.assertIsInstance(st["version"], str)
        self.assertIn(harness.frontdoor_version(), st["version"])
        self.assert_rfc3339(st["started_at"], "started_at")
        self.assertIs(st["draining"], False)
        self.assertTrue(is_int(st["connections_active"]) and st["connections_active"] >= 0, st)

        self.assertIsInstance(st["upstreams"], list)
        by_name = {u["name"]: u for u in st["upstreams"]}
        self.assertEqual(set(by_name), {"app", "other"}, st["upstreams"])
        self.assertEqual(by_name["app"]["balance"], "round_robin")
        self.assertEqual(by_name["other"]["balance"], "least_conn")
        for up in st["upstreams"]:
            self.assertTrue(is_int(up["retries"]), up)
            self.assert_counts(up["unserved"], "unserved")
            self.assertIsInstance(up["servers"], list, up)
            for srv in up["servers"]:
                for key in ("address", "name", "health", "up", "passive_down", "last_check",
                            "consecutive_passes", "consecutive_failures", "active", "requests",
                            "failures", "responses"):
                    self.assertIn(key, srv, srv)
                self.assertIn(srv["health"], ("up", "down", "unknown"), srv)
                self.assertIsInstance(srv["up"], bool, srv)
                self.assertIsInstance(srv["passive_down"], bool, srv)
                for key in ("consecutive_passes", "consecutive_failures", "active", "requests",
                            "failures"):
                    self.assertTrue(is_int(srv[key]) and srv[key] >= 0, (key, srv))
                self.assert_counts(srv["responses"], "responses")
                if srv["last_check"] is not None:
                    self.assert_rfc3339(srv["last_check"]["time"], "last_check.time")
                    self.assertIsInstance(srv["last_check"]["result"], str, srv)

        app = {s["address"]: s for s in by_name["app"]["servers"]}
        self.assertEqual(set(app), {a.address, b.address})
        for u in (a, b):
            srv = app[u.address]
            self.assertEqual(srv["name"], u.address, srv)
            self.assertEqual(srv["health"], "up", srv)
            self.assertIs(srv["up"], True, srv)
            self.assertIs(srv["passive_down"], False, srv)
            self.assertEqual(srv["last_check"]["result"], "pass", srv)
            self.assertGreaterEqual(srv["consecutive_passes"], 1, srv)
            self.assertEqual(srv["consecutive_failures"], 0, srv)
        other = by_name["other"]["servers"]
        self.assertEqual([s["address"] for s in other], [c.address])
        self.assertIsNone(other[0]["last_check"], "no health_check configured: %r" % other[0])
        self.assertIs(other[0]["up"], True, other[0])

        self.assertIsInstance(st["certificates"], list)
        self.assertEqual(len(st["certificates"]), 1, st["certificates"])
        cert = st["certificates"][0]
        for key in ("names", "issuer", "not_after", "source", "next_renewal", "last_error"):
            self.assertIn(key, cert, cert)
        self.assertIn("localhost", cert["names"], cert)
        self.assertIn("frontdoor integration test CA", cert["issuer"], cert)
        self.assert_rfc3339(cert["not_after"], "not_after")
        self.assertEqual(cert["source"], "file", cert)
        self.assertIn(cert["last_error"], (None, ""), cert)

    def test_status_counters_move_with_requests(self):
        a, b = self.upstream("mv-a"), self.upstream("mv-b")
        port, fd, admin = self.frontdoor_with_admin({"app": [a.address, b.address]})
        before = {s["address"]: s for s in admin.servers("app")}
        for s in before.values():
            self.assertEqual((s["requests"], s["responses"], s["active"]), (0, {}, 0), s)
        results = curl_many([self.url(port, "/move")] * 6 + [self.url(port, "/status/404")] * 2,
                            ca=self.certs.ca)
        self.assertEqual([r.status for r in results], [200] * 6 + [404] * 2, results)
        after = {s["address"]: s for s in admin.servers("app")}
        for u in (a, b):
            s = after[u.address]
            self.assertEqual(s["requests"], 4, s)
            self.assertEqual(s["responses"], {"200": 3, "404": 1}, s)
            self.assertEqual(s["active"], 0, s)
            self.assertEqual(s["failures"], 0, s)

    # --- /metrics ---

    def test_metrics_families_labels_and_values(self):
        a, b, c = self.upstream("m-a"), self.upstream("m-b"), self.upstream("m-c")
        dead = "127.0.0.1:%d" % harness.free_port()
        dead_only = "127.0.0.1:%d" % harness.free_port()
        port, fd, admin = self.frontdoor_with_admin(
            {"app": [a.address, b.address],
             "flaky": {"servers": [dead, c.address], "connect_timeout": "1s"},
             "gone": {"servers": [dead_only], "connect_timeout": "1s"}},
            routes=[{"match": {"path_prefix": "/flaky/"}, "upstream": "flaky"},
                    {"match": {"path_prefix": "/gone/"}, "upstream": "gone"},
                    {"match": {"path_prefix": "/"}, "upstream": "app"}])
        n_ok = 10
        results = curl_many([self.url(port, "/m")] * n_ok + [self.url(port, "/status/404")] * 2,
                            ca=self.certs.ca)
        self.assertEqual([r.status for r in results], [200] * n_ok + [404] * 2, results)
        # Two requests to [dead, c]: exactly one of them tries |dead| first and is retried.
        for r in curl_many([self.url(port, "/flaky/x")] * 2, ca=self.certs.ca, timeout=15 * SLOW):
            self.assertEqual((r.status, r.headers.get("x-upstream")), (200, c.id), r)
        first = self.get(port, "/gone/x", timeout=15 * SLOW)
        self.assertIn(first.status, (502, 503), first)
        second = self.get(port, "/gone/y", timeout=15 * SLOW)
        self.assertEqual(second.status, 503, second)
        self.assertIn("retry-after", second.headers, second)

        code, headers, body = admin.get("/metrics")
        self.assertEqual(code, 200, body)
        self.assertTrue(headers.get("content-type", "").startswith("text/plain"), headers)
        m = harness.Metrics(body.decode("utf-8"))
        self.assertEqual(m.errors, [], "lines that are not Prometheus text")
        for family, kind in FAMILIES.items():
            declared = m.types.get(family)
            if declared is None and family.endswith("_total"):
                declared = m.types.get(family[:-len("_total")])
            self.assertEqual(declared, kind, "# TYPE of %s in\n%s" % (family, m.text))
        series = set()
        for name, labels, _ in m.samples:
            self.assertIsNotNone(m.family_of(name), "sample %s has no # TYPE" % name)
            key = (name, tuple(sorted(labels.items())))
            self.assertNotIn(key, series, "duplicate series %r" % (key,))
            series.add(key)

        # frontdoor_requests_total{upstream,server,code}
        for u in (a, b):
            self.assertEqual(m.value("frontdoor_requests_total", upstream="app", server=u.address,
                                     code="200"), n_ok / 2, m.find("frontdoor_requests_total"))
            self.assertEqual(m.value("frontdoor_requests_total", upstream="app", server=u.address,
                                     code="404"), 1)
        self.assertEqual(m.total("frontdoor_requests_total", upstream="app", code="200"), n_ok)
        self.assertEqual(m.value("frontdoor_requests_total", upstream="flaky", server=c.address,
                                 code="200"), 2)
        # frontdoor_upstream_up{upstream,server}
        for u in (a, b, c):
            group = "flaky" if u is c else "app"
            self.assertEqual(m.value("frontdoor_upstream_up", upstream=group, server=u.address), 1,
                             m.find("frontdoor_upstream_up"))
        self.assertEqual(m.value("frontdoor_upstream_up", upstream="flaky", server=dead), 0)
        self.assertEqual(m.value("frontdoor_upstream_up", upstream="gone", server=dead_only), 0)
        # frontdoor_upstream_retries_total{upstream}
        self.assertEqual(m.value("frontdoor_upstream_retries_total", upstream="flaky"), 1)
        self.assertEqual(m.value("frontdoor_upstream_retries_total", upstream="app"), 0)
        # frontdoor_connections_active
        active = m.find("frontdoor_connections_active")
        self.assertTrue(active and all(v >= 0 for _, v in active), active)
        # frontdoor_request_duration_seconds histogram: cumulative buckets, +Inf == _count
        counts = m.find("frontdoor_request_duration_seconds_count")
        self.assertTrue(counts, "no frontdoor_request_duration_seconds_count")
        self.assertGreaterEqual(sum(v for _, v in counts), n_ok + 2 + 2)
        self.assertTrue(m.find("frontdoor_request_duration_seconds_sum"))
        for labels, count in counts:
            buckets = [(l, v) for l, v in m.find("frontdoor_request_duration_seconds_bucket", **labels)
                       if set(l) == set(labels) | {"le"}]
            self.assertTrue(buckets, labels)
            ordered = sorted(buckets, key=lambda lv: float(lv[0]["le"]))
            values = [v for _, v in ordered]
            self.assertEqual(values, sorted(values), "buckets not cumulative: %r" % ordered)
            self.assertEqual(ordered[-1][0]["le"], "+Inf", ordered)
            self.assertEqual(ordered[-1][1], count, ordered)

        # /status agrees with /metrics.
        st = admin.status()
        flaky = admin.upstream("flaky", st)
        self.assertEqual(flaky["retries"], 1, flaky)
        dead_srv = admin.server("flaky", dead, st)
        self.assertEqual(dead_srv["failures"], 1, dead_srv)
        self.assertIs(dead_srv["passive_down"], True, dead_srv)
        self.assertIs(dead_srv["up"], False, dead_srv)
        self.assertGreaterEqual(admin.upstream("gone", st)["unserved"].get("503", 0), 1, st)
        self.assertEqual(admin.upstream("app", st)["retries"], 0)

    def test_promtool_accepts_metrics(self):
        if not os.access(PROMTOOL, os.X_OK):
            self.skipTest("%s not found (Debian package prometheus): promtool check skipped"
                          % PROMTOOL)
        a = self.upstream("prom")
        port, fd, admin = self.frontdoor_with_admin({"app": {"servers": [a.address],
                                                             "health_check": HEALTH_CHECK}})
        for r in curl_many([self.url(port, "/p")] * 5, ca=self.certs.ca):
            self.assertEqual(r.status, 200, r)
        text = admin.metrics()
        r = harness.run([PROMTOOL, "check", "metrics"], timeout=30, input=text.encode())
        self.assertEqual(r.returncode, 0, "promtool check metrics:\n%s%s\n--- metrics ---\n%s"
                         % (r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace"),
                            text[:4000]))

    # --- /ready and other paths ---

    def test_ready_and_unknown_paths(self):
        a = self.upstream("rd")
        port, fd, admin = self.frontdoor_with_admin({"app": [a.address]})
        code, _, body = admin.get("/ready")
        self.assertEqual((code, body.strip()), (200, b"ready"))
        for path in ("/", "/nope", "/statusx", "/readyz", "/metrics/extra"):
            with self.subTest(path=path):
                code, _, body = admin.get(path)
                self.assertEqual(code, 404, (path, body))
        self.assertEqual(a.stats()["requests"], 0, "admin requests must not reach upstreams")

    def test_health_command_exit_code_follows_the_status(self):
        a = self.upstream("hc")
        port, fd, admin = self.frontdoor_with_admin({"app": [a.address]})
        base = "http://%s" % admin.address
        self.assertEqual(health_command(base + "/ready"), (0, ""))
        code, err = health_command(base + "/nope")
        self.assertEqual(code, 1)
        self.assertIn("HTTP 404", err)
        code, err = health_command("http://127.0.0.1:%d/ready" % harness.free_port())
        self.assertEqual(code, 1)
        self.assertIn("onnect", err)
        fd.send_signal(signal.SIGTERM)
        code, err = harness.wait_for(
            lambda: (lambda r: r if r[0] == 1 and "HTTP 503" in r[1] else None)(
                health_command(base + "/ready")),
            2.0 * SLOW, interval=0.02, what="`frontdoor health` to fail with 503 while draining")
        self.assertEqual(code, 1)

    def test_ready_is_503_while_draining(self):
        a = self.upstream("drain")
        port, fd, admin = self.frontdoor_with_admin({"app": [a.address]}, shutdown_timeout="10s")
        self.assertEqual(admin.get("/ready")[0], 200)
        out = self.tmp.join("drain.body")
        proc = subprocess.Popen(
            ["curl", "-sS", "--http1.1", "--cacert", self.certs.ca,
             "--resolve", "localhost:%d:127.0.0.1" % port, "--max-time", str(30 * SLOW),
             "-o", out, "-w", "%{http_code}", self.url(port, "/sleep?ms=3000")],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        self.addCleanup(lambda: proc.poll() is None and (proc.kill(), proc.wait(timeout=10)))
        harness.wait_for(lambda: a.path_count("/sleep") == 1, 5 * SLOW,
                         what="the slow request to reach the upstream")
        t0 = time.monotonic()
        fd.send_signal(signal.SIGTERM)

        def draining():
            try:
                code, _, body = admin.get("/ready")
            except OSError:
                return None
            return (code, body) if code == 503 else None
        code, body = harness.wait_for(draining, 1.0 * SLOW, interval=0.02,
                                      what="/ready 503 after SIGTERM")
        self.assertLess(len(body), 512, body)
        st = admin.status()
        self.assertIs(st["draining"], True, st)
        self.assertIsNone(proc.poll(), "the in-flight request ended before /ready said 503")
        out_b, err_b = proc.communicate(timeout=20 * SLOW)
        self.assertEqual(out_b, b"200", (out_b, err_b, fd.tail()))
        self.assertEqual(harness.read_text(out), "slept")
        exit_code = fd.wait_exit(max(0.1, t0 + 10 * SLOW - time.monotonic()))
        if exit_code is None:
            fd.kill()
            self.fail("frontdoor still running after the drain\n" + fd.tail())
        self.assertEqual(exit_code, 0, fd.tail())

    def test_shutdown_delay_keeps_serving_while_ready_is_503(self):
        a = self.upstream("delay")
        port, fd, admin = self.frontdoor_with_admin({"app": [a.address]},
                                                    shutdown_delay="%dms" % (2000 * SLOW))
        self.assertEqual(self.get(port, "/before").status, 200)
        t0 = time.monotonic()
        fd.send_signal(signal.SIGTERM)
        harness.wait_for(lambda: admin.get("/ready")[0] == 503, 1.0 * SLOW, interval=0.02,
                         what="/ready 503 at once after SIGTERM")
        # New connections are still served while load balancers learn that /ready failed.
        r = self.get(port, "/during-delay")
        self.assertEqual(r.status, 200, r)
        self.assertLess(time.monotonic() - t0, 2.0 * SLOW, "the delay was over already")
        self.assertEqual(a.path_count("/during-delay"), 1)
        exit_code = fd.wait_exit(10 * SLOW)
        self.assertEqual(exit_code, 0, fd.tail())
        self.assertGreaterEqual(time.monotonic() - t0, 2.0 * SLOW, "exited before the delay")
        line = [entry for entry in fd.log_lines() if entry.get("msg") == "shutting down"]
        self.assertEqual(line[0]["delay_ms"], int(2000 * SLOW), line)

    def test_second_signal_skips_the_shutdown_delay(self):
        a = self.upstream("delay2")
        port, fd, admin = self.frontdoor_with_admin({"app": [a.address]}, shutdown_delay="60s")
        fd.send_signal(signal.SIGTERM)
        harness.wait_for(lambda: admin.get("/ready")[0] == 503, 1.0 * SLOW, interval=0.02,
                         what="/ready 503 after SIGTERM")
        t0 = time.monotonic()
        fd.send_signal(signal.SIGINT)
        exit_code = fd.wait_exit(5 * SLOW)
        self.assertEqual(exit_code, 0, fd.tail())
        self.assertLess(time.monotonic() - t0, 5 * SLOW)
        self.assertIn("second signal: draining now", fd.log_text())

    # --- separation from the public listener ---

    def test_admin_paths_through_public_listener_reach_the_upstream(self):
        a = self.upstream("pub")
        port, fd, admin = self.frontdoor_with_admin({"app": [a.address]})
        for path in ("/status", "/metrics", "/ready"):
            with self.subTest(path=path):
                r = self.get(port, path)
                self.assertEqual(r.status, 200, r)
                self.assertEqual(r.headers.get("x-upstream"), a.id, r)
                self.assertEqual(r.body, ("upstream pub %s\n" % path).encode())
        self.assertEqual(a.stats()["requests"], 3)

    def test_admin_on_its_own_address(self):
        a = self.upstream("own")
        # Same port number as the public listener, another loopback address.
        port = harness.free_port_on(["127.0.0.1", "127.0.0.2"])
        cfg = harness.tls_config(port, self.certs, {"app": [a.address]},
                                 admin={"address": "127.0.0.2:%d" % port})
        fd = self.frontdoor(cfg)
        admin = harness.AdminClient("127.0.0.2:%d" % port)
        try:
            admin.wait_listening()
        except AssertionError as e:
            raise AssertionError("%s\n%s" % (e, fd.tail()))
        code, _, body = admin.get("/ready")
        self.assertEqual((code, body.strip()), (200, b"ready"))
        self.assertEqual(admin.status()["upstreams"][0]["name"], "app")
        # The public address speaks TLS and proxies; plain HTTP there is not the admin API.
        r = self.get(port, "/status")
        self.assertEqual((r.status, r.headers.get("x-upstream")), (200, a.id), r)
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=3 * SLOW) as s:
                s.sendall(b"GET /status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                data, _ = harness.read_until_close(s, timeout=3 * SLOW)
        except OSError:
            data = b""
        self.assertNotIn(b'"upstreams"', data)
        # And the admin address does not speak TLS.
        with self.assertRaises((OSError, ValueError)):
            harness.tls_connect(port, host="127.0.0.2", timeout=3 * SLOW).close()


if __name__ == "__main__":
    unittest.main()
