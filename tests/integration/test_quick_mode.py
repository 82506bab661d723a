"""Quick mode: frontdoor proxy --from ADDR --to A,B,C with the development certificate."""

import os
import time
import unittest

import harness
from harness import curl, curl_many, SLOW


class QuickModeTest(harness.ProxyTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        try:
            # FRONTDOOR_DEV_CERTS must hold files named exactly localhost.crt / localhost.key.
            cls.dev_dir = cls.tmp.join("dev-certs")
            cls.dev = harness.make_certs(cls.dev_dir, [["localhost", "IP:127.0.0.1"]],
                                         basenames=["localhost"])
            cls.ups = [cls.class_upstream("q%d" % i) for i in range(3)]
        except BaseException:
            cls.tearDownClass()
            raise

    def test_round_robin_over_three(self):
        port = harness.free_port()
        to = ",".join(u.address for u in self.ups)
        fd = self.frontdoor(None, args=["proxy", "--from", "127.0.0.1:%d" % port, "--to", to],
                            env={"FRONTDOOR_DEV_CERTS": self.dev_dir},
                            wait=[("127.0.0.1", port)])
        url = "https://localhost:%d/quick" % port

        # Default health checks may need a moment before every server counts as up.
        def all_up():
            seen = set()
            for r in curl_many([url] * 3, ca=self.dev.ca):
                if r.status != 200:
                    return None
                seen.add(r.headers.get("x-upstream"))
            return seen == {u.id for u in self.ups}

        try:
            harness.wait_for(all_up, 10 * SLOW, interval=0.2, what="all three servers answering")
        except AssertionError as e:
            self.fail("%s\n%s" % (e, fd.tail()))

        results = curl_many([url] * 6, ca=self.dev.ca)
        for r in results:
            self.assertEqual(r.status, 200, r)
        ids = [r.headers.get("x-upstream") for r in results]
        self.assertEqual(sum(r.num_connects for r in results), 1)
        for i in range(3):
            self.assertEqual(len(set(ids[i:i + 3])), 3, ids)
            self.assertEqual(ids[i], ids[i + 3], ids)
        for r, uid in zip(results, ids):
            self.assertEqual(r.body, ("upstream %s /quick\n" % uid).encode())

        # The certificate is the one from FRONTDOOR_DEV_CERTS (verified against its CA).
        rc, out = harness.s_client(port, "-servername", "localhost", "-CAfile", self.dev.ca)
        self.assertEqual(rc, 0, out)
        self.assertEqual(harness.peer_cn(out), "localhost")
        self.assertIn("Verify return code: 0 (ok)", out)

    def test_bad_arguments_exit_1(self):
        port = harness.free_port()
        for args in (["proxy", "--from", "127.0.0.1:%d" % port],
                     ["proxy", "--from", "127.0.0.1:%d" % port, "--to", "no-port-here"]):
            with self.subTest(args=args):
                r = harness.run([harness.BIN] + args, timeout=20 * SLOW,
                                env=dict(os.environ, FRONTDOOR_DEV_CERTS=self.dev_dir,
                                         **harness.sanitizer_env()))
                self.assertEqual(r.returncode, 1, r)


if __name__ == "__main__":
    unittest.main()
