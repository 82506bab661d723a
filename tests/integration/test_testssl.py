"""testssl.sh (Debian's package) against a frontdoor TLS listener: no finding of severity
MEDIUM or above except those about the test certificate (short-lived, from a private CA, with
no revocation URLs), old protocols off, forward secrecy only, the server's cipher order, HSTS.
DNS lookups and contacts to outside servers are off, so only 127.0.0.1 is reached."""

import json
import shutil
import unittest

import harness
from harness import SLOW

SERIOUS = ("MEDIUM", "HIGH", "CRITICAL")


@unittest.skipIf(shutil.which("testssl") is None, "testssl not installed (Debian package testssl.sh)")
class TestsslTest(harness.ProxyTestCase):

    def test_no_medium_or_worse_finding(self):
        up = self.upstream("tssl")
        port = harness.free_port()
        cfg = harness.tls_config(port, self.certs, {"app": [up.address]}, workers=1, access=False)
        cfg["listen"][0]["hsts"] = "365d"
        self.frontdoor(cfg)
        report = self.tmp.join("testssl.json")
        r = harness.run(["testssl", "--quiet", "--color", "0", "--nodns", "none", "--ip", "127.0.0.1",
                         "--connect-timeout", "10", "--openssl-timeout", "10",
                         "--jsonfile", report, "https://localhost:%d/secure-app" % port],
                        timeout=600 * SLOW)
        with open(report) as f:
            findings = json.load(f)
        by_id = {item["id"]: item for item in findings}
        self.assertIn("cipher_order", by_id, r.stdout[-3000:])
        serious = [(item["severity"], item["id"], item["finding"]) for item in findings
                   if item["severity"] in SERIOUS and not item["id"].startswith("cert_")]
        self.assertEqual(serious, [])
        for proto in ("SSLv2", "SSLv3", "TLS1", "TLS1_1"):
            self.assertIn("not offered", by_id[proto]["finding"], proto)
        self.assertEqual(by_id["TLS1_2"]["finding"], "offered")
        self.assertTrue(by_id["TLS1_3"]["finding"].startswith("offered"), by_id["TLS1_3"])
        self.assertEqual((by_id["PFS"]["severity"], by_id["cipher_order"]["finding"]),
                         ("OK", "server"))
        self.assertEqual(by_id["HSTS_time"]["severity"], "OK", by_id["HSTS_time"])
        self.assertGreater(up.path_count("/secure-app"), 0, "testssl never reached the app")


if __name__ == "__main__":
    unittest.main()
