"""Active health checks, passive failure detection, retries and the 503 for "no server":
a killed upstream under load, thresholds, hanging and resetting upstreams, retry safety."""

import hashlib
import os
import re
import time
import unittest

import harness
from harness import SLOW, curl_many

# Timings of the checks used here (seconds) and the matching config.
INTERVAL = 0.5
CHECK_TIMEOUT = 0.3
HEALTHY_AFTER = 2
UNHEALTHY_AFTER = 2
HEALTH_CHECK = {"path": "/healthz", "interval": "500ms", "timeout": "300ms",
                "healthy_after": HEALTHY_AFTER, "unhealthy_after": UNHEALTHY_AFTER}
# Added to every bound on timing: polling, scheduling, the proxy's own latency.
SLACK = 0.75


class HealthTestBase(harness.ProxyTestCase):

    def start_proxy(self, groups, routes=None, workers=2, **extra):
        """frontdoor with an admin listener: (public port, Frontdoor, AdminClient)."""
        return self.frontdoor_with_admin(groups, routes=routes, workers=workers, **extra)

    def start_plain_proxy(self, groups, **extra):
        port = harness.free_port()
        fd = self.frontdoor(harness.tls_config(port, self.certs, groups, **extra))
        return port, fd

    def get_many(self, port, path, n):
        return curl_many([self.url(port, path)] * n, ca=self.certs.ca, timeout=20 * SLOW)

    def timed_gets(self, port, path, n, timeout=10):
        """n sequential GETs over one keep-alive TLS connection: [(status, x-upstream, secs)]."""
        out = []
        sock = harness.tls_connect(port, ca=self.certs.ca, timeout=timeout * SLOW)
        try:
            for i in range(n):
                t0 = time.monotonic()
                sock.sendall(("GET %s?i=%d HTTP/1.1\r\nHost: localhost\r\n\r\n"
                              % (path, i)).encode())
                status, headers, _ = harness.read_response(sock, timeout=timeout * SLOW)
                out.append((status, headers.get("x-upstream"), time.monotonic() - t0))
                if "close" in headers.get("connection", "").lower():
                    sock.close()
                    sock = harness.tls_connect(port, ca=self.certs.ca, timeout=timeout * SLOW)
        finally:
            sock.close()
        return out

    def wait_all_up(self, admin, group, ups, timeout=3):
        for u in ups:
            admin.wait_health(group, u.address, "up", timeout * SLOW)


class HealthUnderLoadTest(HealthTestBase):

    def test_killed_upstream_is_taken_out_and_readmitted_under_load(self):
        ups = [self.upstream("hl%d" % i) for i in range(3)]
        victim = ups[1]
        port, fd, admin = self.start_proxy({"app": {
            "servers": [u.address for u in ups], "health_check": HEALTH_CHECK,
            "connect_timeout": "1s", "response_timeout": "3s",
            # passive detection must not be what keeps the restarted server out
            "fail_timeout": "1s"}})
        self.wait_all_up(admin, "app", ups)

        load = harness.KeepAliveLoad(port, self.certs.ca, threads=4, duration=20 * SLOW,
                                     max_requests=100000, pause=0.002)
        load.start()
        stopped = [False]

        def stop_load():
            if not stopped[0]:
                stopped[0] = True
                load.stop()
        self.addCleanup(stop_load)

        time.sleep(1.5)
        t_kill = time.monotonic()
        victim.kill()
        down_bound = INTERVAL * UNHEALTHY_AFTER + INTERVAL + SLACK
        admin.wait_health("app", victim.address, "down", down_bound * SLOW)
        t_down = time.monotonic()
        time.sleep(0.1)
        requests_when_down = admin.server("app", victim.address)["requests"]
        time.sleep(0.6)  # load goes on with the victim out
        requests_before_restart = admin.server("app", victim.address)["requests"]

        t_restart = time.monotonic()
        restarted = harness.Upstream(victim.id, port=victim.port, log_dir=self.tmp.path).start()
        self.addCleanup(restarted.stop)
        up_bound = INTERVAL * HEALTHY_AFTER + SLACK + 0.25
        admin.wait_server("app", victim.address,
                          lambda s: s.get("health") == "up" and s.get("up") is True,
                          up_bound * SLOW, "restarted %s back up" % victim.address)
        t_up = time.monotonic()
        harness.wait_for(lambda: any(r[3] == victim.id and r[0] >= t_up for r in load.snapshot()),
                         3 * SLOW, what="a response from the restarted upstream")
        stop_load()
        records = load.snapshot()

        self.assertGreater(len(records), 50, "the load hardly ran: %d requests" % len(records))
        bad = [r for r in records if r[2] != 200]
        self.assertEqual(len(bad), 0, "%d of %d responses were not 200 (first: %r)\n%s"
                         % (len(bad), len(records), bad[:5], fd.tail()))
        before_kill = {r[3] for r in records if r[1] < t_kill}
        self.assertEqual(before_kill, {u.id for u in ups}, "all three served before the kill")
        self.assertLessEqual(t_down - t_kill, down_bound * SLOW)
        self.assertLessEqual(t_up - t_restart, up_bound * SLOW)
        while_down = [r for r in records if r[3] == victim.id and t_down <= r[0] and r[1] <= t_restart]
        self.assertEqual(while_down, [], "responses from the killed upstream while it was down")
        self.assertEqual(requests_before_restart, requests_when_down,
                         "requests were sent to %s while it was down" % victim.address)
        after_restart = [r for r in records if r[3] == victim.id and r[0] >= t_restart]
        self.assertGreater(len(after_restart), 0, "the restarted upstream answered no request")
        self.assertGreater(restarted.stats()["requests"], 0)


class HealthRuleTest(HealthTestBase):

    def test_first_result_decides_at_once_and_unknown_gets_traffic(self):
        good = self.upstream("first-good")
        bad = self.upstream("first-bad", args=["--healthz-status", "503"])
        pending = self.upstream("first-pending", args=["--healthz-hang"])
        slow_checks = {"path": "/healthz", "interval": "20s", "timeout": "10s",
                       "healthy_after": 3, "unhealthy_after": 3}
        port, fd, admin = self.start_proxy(
            {"fast": {"servers": [good.address, bad.address], "health_check": slow_checks},
             "pending": {"servers": [pending.address], "health_check": slow_checks}},
            routes=[{"match": {"path_prefix": "/pending/"}, "upstream": "pending"},
                    {"match": {"path_prefix": "/"}, "upstream": "fast"}])
        # With thresholds of 3 and a 20 s interval only the first-result rule can decide now.
        srv = admin.wait_health("fast", good.address, "up", (CHECK_TIMEOUT + SLACK) * SLOW)
        self.assertIs(srv["up"], True, srv)
        self.assertEqual(srv["consecutive_passes"], 1, srv)
        srv = admin.wait_health("fast", bad.address, "down", (CHECK_TIMEOUT + SLACK) * SLOW)
        self.assertIs(srv["up"], False, srv)
        self.assertEqual(srv["consecutive_failures"], 1, srv)
        self.assertTrue(str(srv["last_check"]["result"]).startswith("fail"), srv)
        for r in self.get_many(port, "/first", 6):
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.headers.get("x-upstream"), good.id, r)

        # The check of |pending| hangs (timeout 10 s): it is unknown and still gets traffic.
        srv = admin.server("pending", pending.address)
        self.assertIsNotNone(srv, admin.status())
        self.assertEqual(srv["health"], "unknown", srv)
        self.assertIs(srv["up"], True, srv)
        self.assertIsNone(srv["last_check"], srv)
        for r in self.get_many(port, "/pending/x", 3):
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.headers.get("x-upstream"), pending.id, r)
        self.assertEqual(admin.server("pending", pending.address)["health"], "unknown")

    def test_thresholds_and_the_check_request(self):
        a = self.upstream("thr-a")
        b = self.upstream("thr-b")
        port, fd, admin = self.start_proxy({"app": {"servers": [a.address, b.address],
                                                    "health_check": HEALTH_CHECK}})
        self.wait_all_up(admin, "app", [a, b])

        check = a.stats()["last_health_check"]
        self.assertIsNotNone(check, "no health check reached %s" % a.id)
        self.assertEqual(check["method"], "GET", check)
        self.assertEqual(check["target"], "/healthz", check)
        self.assertEqual(harness.echo_headers(check, "Host"), [a.address], check)
        self.assertEqual(harness.echo_headers(check, "User-Agent"),
                         ["frontdoor/" + harness.frontdoor_version()], check)

        # 3xx passes.
        a.control(healthz_status=302)
        seen = a.stats()["health_checks"]
        harness.wait_for(lambda: a.stats()["health_checks"] >= seen + 2, (3 * INTERVAL + SLACK) * SLOW,
                         what="two checks answered 302")
        srv = admin.server("app", a.address)
        self.assertEqual(srv["health"], "up", srv)
        self.assertEqual(srv["last_check"]["result"], "pass", srv)

        # One failure is not enough, UNHEALTHY_AFTER failures take it out.
        a.control(healthz_status=500)
        t0 = time.monotonic()
        bound = INTERVAL * UNHEALTHY_AFTER + INTERVAL + SLACK
        one_failure = []

        def down():
            s = admin.server("app", a.address)
            if s["consecutive_failures"] == 1 and s["health"] != "down":
                one_failure.append(s)
            if s["health"] == "down":
                return s
            self.assertEqual(s["health"], "up", s)
            return None
        srv = harness.wait_for(down, bound * SLOW, interval=0.03, what="%s down" % a.address)
        self.assertLessEqual(time.monotonic() - t0, bound * SLOW)
        self.assertTrue(one_failure, "never saw the state 'one failure, still up'")
        self.assertGreaterEqual(srv["consecutive_failures"], UNHEALTHY_AFTER, srv)
        self.assertIs(srv["up"], False, srv)
        self.assertTrue(str(srv["last_check"]["result"]).startswith("fail"), srv)
        self.assertIsInstance(srv["last_check"]["time"], str, srv)
        for r in self.get_many(port, "/while-down", 6):
            self.assertEqual((r.status, r.headers.get("x-upstream")), (200, b.id), r)

        # HEALTHY_AFTER passes bring it back; one is not enough.
        a.control(healthz_status=200)
        t0 = time.monotonic()
        bound = INTERVAL * HEALTHY_AFTER + INTERVAL + SLACK
        one_pass = []

        def up():
            s = admin.server("app", a.address)
            if s["consecutive_passes"] == 1 and s["health"] != "up":
                one_pass.append(s)
            return s if s["health"] == "up" else None
        srv = harness.wait_for(up, bound * SLOW, interval=0.03, what="%s up again" % a.address)
        self.assertLessEqual(time.monotonic() - t0, bound * SLOW)
        self.assertTrue(one_pass, "never saw the state 'one pass, still down'")
        self.assertGreaterEqual(srv["consecutive_passes"], HEALTHY_AFTER, srv)
        self.assertEqual(srv["consecutive_failures"], 0, srv)
        ids = [r.headers.get("x-upstream") for r in self.get_many(port, "/back", 6)]
        self.assertEqual(set(ids), {a.id, b.id}, ids)


class HangingUpstreamTest(HealthTestBase):

    def test_upstream_that_starts_hanging_is_retried_and_taken_out(self):
        ups = [self.upstream("hang%d" % i) for i in range(3)]
        hanger = ups[2]
        port, fd, admin = self.start_proxy({"app": {
            "servers": [u.address for u in ups], "health_check": HEALTH_CHECK,
            "response_timeout": "1s", "connect_timeout": "1s"}})
        self.wait_all_up(admin, "app", ups)

        hanger.control(hang_all=1)
        t0 = time.monotonic()
        first = self.timed_gets(port, "/during", 4, timeout=10)
        for status, uid, secs in first:
            self.assertEqual(status, 200, first)
            self.assertIn(uid, (ups[0].id, ups[1].id), first)
        self.assertTrue(any(secs >= 0.9 for _, _, secs in first),
                        "no request waited for the hanging upstream: %r" % first)
        self.assertTrue(all(secs < 3 * SLOW for _, _, secs in first), first)

        bound = INTERVAL * UNHEALTHY_AFTER + INTERVAL + CHECK_TIMEOUT + SLACK
        srv = admin.wait_health("app", hanger.address, "down", bound * SLOW)
        self.assertLessEqual(time.monotonic() - t0, bound * SLOW + 1.5)
        self.assertTrue(str(srv["last_check"]["result"]).startswith("fail"), srv)
        after = self.timed_gets(port, "/after", 12)
        for status, uid, secs in after:
            self.assertEqual(status, 200, after)
            self.assertIn(uid, (ups[0].id, ups[1].id), after)
            self.assertLess(secs, 0.9, "a request still waited on the hanging upstream: %r" % after)
        self.assertEqual(hanger.stats()["requests"], 1,
                         "the hanging upstream should have got exactly one request")

    def test_upstream_hanging_from_start_is_taken_out_by_its_first_check(self):
        ok = self.upstream("hs-ok")
        hanger = self.upstream("hs-hang", args=["--hang-all"])
        port, fd, admin = self.start_proxy({"app": {
            "servers": [ok.address, hanger.address], "health_check": HEALTH_CHECK,
            "response_timeout": "1s"}})
        srv = admin.wait_health("app", hanger.address, "down", (CHECK_TIMEOUT + INTERVAL + SLACK) * SLOW)
        self.assertGreaterEqual(srv["consecutive_failures"], 1, srv)
        after = self.timed_gets(port, "/x", 8)
        for status, uid, secs in after:
            self.assertEqual((status, uid), (200, ok.id), after)
            self.assertLess(secs, 0.9, after)
        self.assertGreaterEqual(hanger.stats()["health_checks"], 1)


class RetrySafetyTest(HealthTestBase):

    def write_body(self, name, n):
        data = os.urandom(n)
        path = self.tmp.join(name)
        with open(path, "wb") as f:
            f.write(data)
        return path, data

    def test_post_whose_body_was_sent_is_not_retried(self):
        ups = [self.upstream("post%d" % i) for i in range(3)]
        port, fd = self.start_plain_proxy({"app": [u.address for u in ups]})
        path, _ = self.write_body("post-1000.bin", 1000)
        r = self.get(port, "/reset-after-body", "localhost", "-H", "Expect:",
                     "--data-binary", "@" + path, timeout=15 * SLOW)
        self.assertEqual(r.status, 502, r)
        self.assertNotIn("x-upstream", r.headers, r)
        self.assertLess(len(r.body), 512, r)
        counts = [u.path_count("/reset-after-body") for u in ups]
        self.assertEqual(sum(counts), 1, "a POST with its body sent must not be retried: %r" % counts)

    def test_get_is_retried_on_other_servers_at_most_retries_times(self):
        ups = [self.upstream("get%d" % i) for i in range(4)]
        port, fd = self.start_plain_proxy({"app": {"servers": [u.address for u in ups],
                                                   "retries": 2}})
        t0 = time.monotonic()
        r = self.get(port, "/reset-after-body", timeout=15 * SLOW)
        self.assertEqual(r.status, 502, r)
        self.assertLess(time.monotonic() - t0, 5 * SLOW)
        counts = [u.path_count("/reset-after-body") for u in ups]
        self.assertEqual(sum(counts), 3, "want 1 attempt + 2 retries: %r" % counts)
        self.assertEqual(max(counts), 1, "a retry went to a server already tried: %r" % counts)

    def test_post_not_yet_sent_is_retried_when_connect_fails(self):
        live = self.upstream("post-live")
        dead = "127.0.0.1:%d" % harness.free_port()
        port, fd = self.start_plain_proxy({"app": {"servers": [dead, live.address],
                                                   "connect_timeout": "1s"}})
        path, data = self.write_body("post-5000.bin", 5000)
        for i in range(2):
            r = self.get(port, "/upload", "localhost", "-H", "Expect:", "--data-binary", "@" + path,
                         timeout=15 * SLOW)
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.headers.get("x-upstream"), live.id, r)
            self.assertIn(('"body_sha256": "%s"' % hashlib.sha256(data).hexdigest()).encode(), r.body)
        self.assertEqual(live.path_count("/upload"), 2)

    def test_passive_failure_skips_server_for_fail_timeout(self):
        flaky = self.upstream("pas-flaky", args=["--reset-all"])
        steady = self.upstream("pas-steady")
        fail_timeout = 2.0 * SLOW
        port, fd, admin = self.start_proxy({"app": {
            "servers": [flaky.address, steady.address], "max_fails": 1,
            "fail_timeout": "%dms" % (fail_timeout * 1000)}})
        for r in self.get_many(port, "/p1", 6):
            self.assertEqual((r.status, r.headers.get("x-upstream")), (200, steady.id), r)
        self.assertEqual(flaky.stats()["requests"], 1, "skipped after one failure")
        srv = admin.server("app", flaky.address)
        self.assertIs(srv["passive_down"], True, srv)
        self.assertIs(srv["up"], False, srv)
        self.assertGreaterEqual(srv["failures"], 1, srv)
        flaky.control(reset_all=0)
        time.sleep(fail_timeout + 0.3)
        ids = [r.headers.get("x-upstream") for r in self.get_many(port, "/p2", 6)]
        self.assertGreaterEqual(ids.count(flaky.id), 2, "tried again after fail_timeout: %r" % ids)
        self.assertIs(admin.server("app", flaky.address)["passive_down"], False)


class NoServerTest(HealthTestBase):

    def test_all_servers_down_gives_503_with_retry_after_at_once(self):
        ups = [self.upstream("nos%d" % i) for i in range(2)]
        port, fd, admin = self.start_proxy({"app": {"servers": [u.address for u in ups],
                                                    "health_check": HEALTH_CHECK}})
        self.wait_all_up(admin, "app", ups)
        for u in ups:
            u.kill()
        for u in ups:
            admin.wait_health("app", u.address, "down",
                              (INTERVAL * UNHEALTHY_AFTER + INTERVAL + SLACK) * SLOW)
        with harness.tls_connect(port, ca=self.certs.ca, timeout=5 * SLOW) as s:
            t0 = time.monotonic()
            s.sendall(b"GET /none HTTP/1.1\r\nHost: localhost\r\n\r\n")
            status, headers, body = harness.read_response(s, timeout=5 * SLOW)
            elapsed = time.monotonic() - t0
        self.assertEqual(status, 503, (headers, body))
        self.assertLess(elapsed, 1.0 * SLOW, "503 took %.2fs" % elapsed)
        self.assertTrue(re.match(r"^\s*\S", headers.get("retry-after", "")), headers)
        self.assertTrue(headers.get("content-type", "").startswith("text/plain"), headers)
        self.assertGreater(len(body), 0)
        self.assertLess(len(body), 512, body)
        self.assertNotIn("x-upstream", headers)
        unserved = admin.upstream("app")["unserved"]
        self.assertGreaterEqual(unserved.get("503", 0), 1, unserved)


if __name__ == "__main__":
    unittest.main()
