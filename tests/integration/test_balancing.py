"""Balancing policies: smooth weighted round-robin (nginx order), least_conn away from a slow
server, random_two spreading over every server."""

import collections
import unittest

import harness
from harness import SLOW, curl_many


class BalancingTest(harness.ProxyTestCase):

    def get_ids(self, port, path, n, chunk=100):
        """n GETs, in curl processes of up to |chunk| keep-alive requests; X-Upstream ids."""
        ids = []
        while len(ids) < n:
            k = min(chunk, n - len(ids))
            for r in curl_many([self.url(port, path)] * k, ca=self.certs.ca, timeout=30 * SLOW):
                self.assertEqual(r.status, 200, r)
                ids.append(r.headers.get("x-upstream"))
        return ids

    def test_smooth_weighted_round_robin_5_1_1(self):
        a, b, c = self.upstream("w5a"), self.upstream("w1b"), self.upstream("w1c")
        port = harness.free_port()
        self.frontdoor(harness.tls_config(port, self.certs, {"app": {
            "servers": [{"address": a.address, "weight": 5},
                        {"address": b.address, "weight": 1},
                        {"address": c.address, "weight": 1}],
            "balance": "round_robin"}}, workers=1))
        results = curl_many([self.url(port, "/w")] * 14, ca=self.certs.ca, timeout=30 * SLOW)
        for r in results:
            self.assertEqual(r.status, 200, r)
        self.assertEqual(sum(r.num_connects for r in results), 1,
                         "curl needed more than one connection: %r" % [r.num_connects for r in results])
        letters = {a.id: "a", b.id: "b", c.id: "c"}
        seq = "".join(letters.get(r.headers.get("x-upstream"), "?") for r in results)
        self.assertEqual(seq, "aabacaa" * 2)
        self.assertEqual([u.stats()["requests"] for u in (a, b, c)], [10, 2, 2])

    def test_least_conn_sends_fewer_requests_to_a_slow_server(self):
        fast = [self.upstream("lc-fast%d" % i) for i in range(2)]
        slow = self.upstream("lc-slow", args=["--delay-ms", "400"])
        port = harness.free_port()
        self.frontdoor(harness.tls_config(port, self.certs, {"app": {
            "servers": [slow.address] + [u.address for u in fast],
            "balance": "least_conn", "response_timeout": "10s"}}, workers=2))
        load = harness.KeepAliveLoad(port, self.certs.ca, threads=6, path="/lc", duration=3.0,
                                     max_requests=6000)
        load.start()
        records = load.wait(timeout=15 * SLOW)
        bad = [r for r in records if r[2] != 200]
        self.assertEqual(bad, [], "non-200 responses: %r" % bad[:5])
        counts = collections.Counter(r[3] for r in records)
        total = len(records)
        self.assertGreaterEqual(total, 60, counts)
        # Round-robin would give the slow server a third; least_conn far less.
        self.assertLess(counts[slow.id], 0.15 * total, counts)
        for u in fast:
            self.assertGreater(counts[u.id], 0.3 * total, counts)
        self.assertLessEqual(set(counts), {slow.id} | {u.id for u in fast}, counts)

    def test_least_conn_ties_rotate(self):
        ups = [self.upstream("lct%d" % i) for i in range(3)]
        port = harness.free_port()
        self.frontdoor(harness.tls_config(port, self.certs, {"app": {
            "servers": [u.address for u in ups], "balance": "least_conn"}}, workers=1))
        ids = self.get_ids(port, "/tie", 30)
        counts = collections.Counter(ids)
        # Sequential requests all tie at 0 active; ties must not all go to one server.
        self.assertEqual(set(counts), {u.id for u in ups}, counts)
        for u in ups:
            self.assertGreaterEqual(counts[u.id], 5, counts)

    def test_random_two_spreads_over_all_servers(self):
        ups = [self.upstream("r2c%d" % i) for i in range(3)]
        port = harness.free_port()
        self.frontdoor(harness.tls_config(port, self.certs, {"app": {
            "servers": [u.address for u in ups], "balance": "random_two"}}))
        n = 300
        ids = self.get_ids(port, "/r2", n)
        counts = collections.Counter(ids)
        self.assertEqual(set(counts), {u.id for u in ups}, counts)
        for u in ups:
            self.assertGreater(counts[u.id], 0.15 * n, counts)


if __name__ == "__main__":
    unittest.main()
