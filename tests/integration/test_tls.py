"""TLS termination: certificate choice by SNI, protocol versions, ALPN, session resumption,
and the plain-HTTP redirect listener."""

import re
import subprocess
import time
import unittest

import harness
from harness import peer_cn, s_client


class TlsTest(harness.ProxyTestCase):
    # First certificate is the default (no SNI, unknown SNI).
    cert_names = [["localhost", "IP:127.0.0.1"], ["a.test"], ["*.b.test"]]

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        try:
            cls.up = cls.class_upstream("tls")
            cls.port = harness.free_port()
            cls.http_port = harness.free_port()
            cfg = harness.tls_config(cls.port, cls.certs, {"app": [cls.up.address]}, workers=2)
            cfg["listen"].append({"address": "127.0.0.1:%d" % cls.http_port, "redirect_https": True})
            # As in a container: frontdoor binds 8443, the world sees it as 443.
            cls.hsts_port = harness.free_port()
            cfg["listen"].append({"address": "127.0.0.1:%d" % cls.hsts_port, "tls": True,
                                  "hsts": "365d"})
            cls.mapped_http_port = harness.free_port()
            cfg["listen"].append({"address": "127.0.0.1:%d" % cls.mapped_http_port,
                                  "redirect_https": True, "https_port": 443})
            cls.fd = cls.class_frontdoor(cfg)
        except BaseException:
            cls.tearDownClass()
            raise

    def setUp(self):
        self.fd.assert_running()

    def handshake(self, *args):
        return s_client(self.port, "-CAfile", self.certs.ca, *args)

    # --- SNI ---

    def test_sni_selects_certificate(self):
        cases = [
            (["-servername", "a.test"], "a.test"),
            (["-servername", "x.b.test"], "*.b.test"),
            (["-servername", "deep.x.b.test"], None),  # see below
            (["-servername", "A.Test"], "a.test"),  # DNS names are case-insensitive
            (["-servername", "X.B.TEST"], "*.b.test"),
            (["-servername", "localhost"], "localhost"),
            (["-servername", "unknown.test"], "localhost"),
            (["-noservername"], "localhost"),
        ]
        for args, want in cases:
            with self.subTest(args=args):
                rc, out = self.handshake(*args)
                self.assertEqual(rc, 0, out)
                cn = peer_cn(out)
                if want is None:
                    # A wildcard covers exactly one label (RFC 6125); the config comment says
                    # "one or more labels" only for route matching. Either the wildcard cert or
                    # the default is acceptable here, nothing else.
                    self.assertIn(cn, ("*.b.test", "localhost"), out)
                else:
                    self.assertEqual(cn, want, out)
                self.assertIn("Verify return code: 0 (ok)", out)

    def test_curl_verifies_each_name(self):
        for host, url_host in (("a.test", "a.test"), ("x.b.test", "x.b.test"),
                               ("localhost", "localhost"), ("127.0.0.1", "127.0.0.1")):
            with self.subTest(host=host):
                r = self.get(self.port, "/tls", url_host)
                self.assertEqual(r.status, 200, r)
                self.assertEqual(r.body, b"upstream tls /tls\n")

    # --- versions ---

    def test_tls12_and_tls13_succeed(self):
        for flag, name in (("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")):
            with self.subTest(version=name):
                rc, out = self.handshake("-servername", "localhost", flag)
                self.assertEqual(rc, 0, out)
                self.assertRegex(out, r"Protocol\s*:\s*%s|New, %s" % (re.escape(name), re.escape(name)))

    def test_tls11_rejected(self):
        self._require_local_tls11()
        rc, out = self.handshake("-servername", "localhost", "-tls1_1",
                                 "-cipher", "DEFAULT@SECLEVEL=0")
        self.assertNotEqual(rc, 0, out)
        # On failure s_client still prints "Protocol : TLSv1.1" (what it tried) but no cipher.
        self.assertNotRegex(out, r"Cipher is (?!\(NONE\))")
        self.fd.assert_running()

    def _require_local_tls11(self):
        """Control: the local openssl client really negotiates TLS 1.1 (it needs SECLEVEL=0
        on Debian), so a failure against frontdoor is frontdoor refusing it."""
        port = harness.free_port()
        leaf = self.certs.leaves[0]
        server = subprocess.Popen(
            ["openssl", "s_server", "-accept", "127.0.0.1:%d" % port, "-cert", leaf.cert,
             "-key", leaf.key, "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0", "-quiet"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        ok = False
        try:
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and server.poll() is None:
                rc, out = s_client(port, "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0")
                if (rc == 0 and re.search(r"Protocol\s*:\s*TLSv1\.1\b", out)
                        and re.search(r"Cipher is (?!\(NONE\))", out)):
                    ok = True
                    break
                time.sleep(0.2)
        finally:
            server.kill()
            server.wait(timeout=5)
        if not ok:
            self.skipTest("the local openssl cannot negotiate TLS 1.1 even with SECLEVEL=0")

    def test_min_version_13(self):
        port = harness.free_port()
        cfg = harness.tls_config(port, self.certs, {"app": [self.up.address]})
        cfg["tls"]["min_version"] = "1.3"
        self.frontdoor(cfg)
        rc, out = s_client(port, "-servername", "localhost", "-tls1_2")
        self.assertNotEqual(rc, 0, out)
        rc, out = s_client(port, "-servername", "localhost", "-tls1_3")
        self.assertEqual(rc, 0, out)

    # --- ALPN ---

    def test_alpn(self):
        rc, out = self.handshake("-servername", "localhost", "-alpn", "http/1.1")
        self.assertEqual(rc, 0, out)
        self.assertIn("ALPN protocol: http/1.1", out)
        # The server prefers h2 when the client offers it, whatever the client's order.
        rc, out = self.handshake("-servername", "localhost", "-alpn", "h2,http/1.1")
        self.assertEqual(rc, 0, out)
        self.assertIn("ALPN protocol: h2", out)
        rc, out = self.handshake("-servername", "localhost", "-alpn", "http/1.1,h2")
        self.assertEqual(rc, 0, out)
        self.assertIn("ALPN protocol: h2", out)

    # --- resumption ---

    def test_tls12_session_resumption(self):
        sess = self.tmp.join("tls12.sess")
        rc, out = self.handshake("-servername", "localhost", "-tls1_2", "-sess_out", sess)
        self.assertEqual(rc, 0, out)
        self.assertIn("New, TLSv1.2", out)
        reused = 0
        for _ in range(3):  # two workers: resumption must work on either
            rc, out = self.handshake("-servername", "localhost", "-tls1_2", "-sess_in", sess)
            self.assertEqual(rc, 0, out)
            self.assertIn("Reused, TLSv1.2", out)
            reused += 1
        self.assertEqual(reused, 3)

    def test_tls13_one_ticket_per_handshake_resumes(self):
        # The request keeps s_client reading until frontdoor closes, so every ticket sent
        # after the handshake has arrived by then.
        request = b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        sess = self.tmp.join("tls13.sess")
        rc, out = harness.s_client(self.port, "-CAfile", self.certs.ca, "-servername", "localhost",
                                   "-tls1_3", "-ign_eof", "-sess_out", sess, stdin=request)
        self.assertEqual(rc, 0, out)
        self.assertIn("HTTP/1.1 ", out)
        self.assertEqual(out.count("Post-Handshake New Session Ticket arrived"), 1, out)
        rc, out = harness.s_client(self.port, "-CAfile", self.certs.ca, "-servername", "localhost",
                                   "-tls1_3", "-ign_eof", "-sess_in", sess, stdin=request)
        self.assertEqual(rc, 0, out)
        self.assertIn("Reused, TLSv1.3", out)
        self.assertIn("HTTP/1.1 ", out)

    # --- redirect listener ---

    def test_plain_listener_redirects_to_https(self):
        r = harness.curl("http://localhost:%d/path?q=1" % self.http_port)
        self.assertEqual(r.status, 308, r)
        self.assertEqual(r.headers.get("location"), "https://localhost:%d/path?q=1" % self.port)

    # --- HSTS ---

    def test_hsts_on_its_listener_only(self):
        for http in ("1.1", "2"):
            with self.subTest(http=http):
                r = harness.curl("https://localhost:%d/x" % self.hsts_port, ca=self.certs.ca,
                                 http=http)
                self.assertEqual(r.status, 200, r)
                self.assertEqual(r.headers.get("strict-transport-security"), "max-age=31536000")
                r = harness.curl("https://localhost:%d/own-hsts" % self.hsts_port,
                                 ca=self.certs.ca, http=http)
                self.assertEqual(r.headers.get("strict-transport-security"),
                                 "max-age=60; includeSubDomains", "the upstream's policy wins")
                r = harness.curl("https://localhost:%d/x" % self.port, ca=self.certs.ca, http=http)
                self.assertEqual(r.status, 200, r)
                self.assertIsNone(r.headers.get("strict-transport-security"))

    def test_redirect_names_the_configured_https_port(self):
        r = harness.curl("http://localhost:%d/path?q=1" % self.mapped_http_port)
        self.assertEqual(r.status, 308, r)
        self.assertEqual(r.headers.get("location"), "https://localhost/path?q=1")

    def test_redirect_does_not_reach_upstream(self):
        before = self.up.stats()["requests"]
        r = harness.curl("http://localhost:%d/nowhere" % self.http_port)
        self.assertEqual(r.status, 308, r)
        self.assertEqual(r.headers.get("location"), "https://localhost:%d/nowhere" % self.port)
        self.assertEqual(self.up.stats()["requests"], before)


if __name__ == "__main__":
    unittest.main()
