"""Re-resolution of server host names: FRONTDOOR_HOSTS_FILE (/etc/hosts format) is re-read
every resolve_interval; each address is its own server admitted by the health rule; a name
that does not resolve at start is retried, not fatal."""

import time
import unittest

import harness
from harness import SLOW, curl_many

RESOLVE_INTERVAL = 0.5
INTERVAL = 0.5
HEALTH_CHECK = {"path": "/healthz", "interval": "500ms", "timeout": "300ms",
                "healthy_after": 2, "unhealthy_after": 2}
SLACK = 1.0
IPS = ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"]


class ResolveTest(harness.ProxyTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        try:
            cls.up_port = harness.free_port_on(IPS)
            # r2, r3, r4 listen on the same port on 127.0.0.2 .. .4; r5 is started by a test.
            cls.ups = {ip: cls.class_upstream("r" + ip.rsplit(".", 1)[1], host=ip, port=cls.up_port)
                       for ip in IPS[:3]}
        except BaseException:
            cls.tearDownClass()
            raise

    def start(self, group, name, hosts_path, **extra):
        return self.frontdoor_with_admin(
            {group: {"servers": ["%s:%d" % (name, self.up_port)], "resolve_interval": "500ms",
                     "health_check": HEALTH_CHECK, "connect_timeout": "1s"}},
            env={"FRONTDOOR_HOSTS_FILE": hosts_path}, **extra)

    def addr(self, ip):
        return "%s:%d" % (ip, self.up_port)

    def ids(self, port, n):
        results = curl_many([self.url(port, "/r")] * n, ca=self.certs.ca, timeout=20 * SLOW)
        for r in results:
            self.assertEqual(r.status, 200, r)
        return [r.headers.get("x-upstream") for r in results]

    def wait_servers(self, admin, group, ips, timeout, what):
        """Waits until /status lists exactly |ips| for |group|, all with health "up"."""
        want = {self.addr(ip) for ip in ips}
        last = [None]

        def probe():
            servers = admin.servers(group)
            last[0] = servers
            return (servers if {s["address"] for s in servers} == want and len(servers) == len(want)
                    and all(s["health"] == "up" for s in servers) else None)
        try:
            return harness.wait_for(probe, timeout, interval=0.05, what=what)
        except AssertionError as e:
            raise AssertionError("%s; last /status servers: %r" % (e, last[0]))

    def test_servers_follow_the_hosts_file(self):
        hosts = self.tmp.join("hosts-follow")
        harness.write_hosts_file(hosts, [(ip, "app.test") for ip in IPS[:3]]
                                 + [("127.0.0.9", "unrelated.test")])
        port, fd, admin = self.start("app", "app.test", hosts)
        servers = self.wait_servers(admin, "app", IPS[:3], 3 * SLOW, "the three addresses up")
        for s in servers:
            self.assertEqual(s["name"], "app.test:%d" % self.up_port, s)
        self.assertEqual(set(self.ids(port, 30)), {"r2", "r3", "r4"})
        check = self.ups["127.0.0.4"].stats()["last_health_check"]
        self.assertIsNotNone(check)
        self.assertEqual(harness.echo_headers(check, "Host"), ["app.test:%d" % self.up_port], check)

        r5 = self.upstream("r5", host="127.0.0.5", port=self.up_port)
        r2 = self.ups["127.0.0.2"]
        harness.write_hosts_file(hosts, [(ip, "app.test") for ip in IPS[1:]])
        t0 = time.monotonic()
        bound = RESOLVE_INTERVAL + INTERVAL + SLACK
        self.wait_servers(admin, "app", IPS[1:], bound * SLOW,
                          "/status to list exactly .3 .4 .5, all up")
        self.assertLessEqual(time.monotonic() - t0, bound * SLOW)
        r2_before = r2.stats()["requests"]
        ids = self.ids(port, 30)
        self.assertEqual(set(ids), {"r3", "r4", "r5"}, ids)
        self.assertEqual(r2.stats()["requests"], r2_before, "the vanished address got requests")
        self.assertGreater(r5.stats()["requests"], 0)
        fd.assert_running()

    def test_name_unresolvable_at_start_is_retried(self):
        hosts = self.tmp.join("hosts-late")
        harness.write_hosts_file(hosts, [("127.0.0.3", "app.test")])
        port, fd, admin = self.start("late", "late.test", hosts)
        fd.assert_running()
        r = self.get(port, "/early", timeout=10 * SLOW)
        self.assertEqual(r.status, 503, r)
        self.assertIn("retry-after", r.headers, r)
        harness.wait_for(lambda: "late.test" in fd.log_text() + fd.stderr_text(), 2 * SLOW,
                         what="a log line about late.test")
        self.assertEqual(admin.servers("late"), [])

        harness.write_hosts_file(hosts, [("127.0.0.3", "app.test"), ("127.0.0.2", "late.test")])
        t0 = time.monotonic()
        bound = RESOLVE_INTERVAL + INTERVAL + SLACK
        self.wait_servers(admin, "late", ["127.0.0.2"], bound * SLOW, "late.test resolved and up")
        self.assertLessEqual(time.monotonic() - t0, bound * SLOW)
        self.assertEqual(set(self.ids(port, 4)), {"r2"})
        srv = admin.servers("late")[0]
        self.assertEqual(srv["name"], "late.test:%d" % self.up_port, srv)
        fd.assert_running()


if __name__ == "__main__":
    unittest.main()
