"""ACME Renewal Information (RFC 9773) against Pebble 2.4.0, which has none: ari_shim.py adds a
"renewalInfo" URL to Pebble's directory and answers it with windows this test chooses.

Scenario (each test): frontdoor gets its first certificate for a fresh name through the shim's
directory; right after, it asks renewalInfo for that certificate's CertID, which the test
computes itself from the served certificate (AKI keyIdentifier + serial DER content, RFC 9773
4.1). The shim answers with a window starting 3-4 s later and lasting 4 s; frontdoor must renew
inside it, serve the new certificate, then ask renewalInfo for the new one (answered with a
window 30 days out and Retry-After: 7200, so /status must show the next look ~2 h away).

  test_renewal_inside_ari_window        ari-only mode: renewalInfo lives on the shim, every
                                        other URL is Pebble's (two origins, one ca_bundle).
  test_renewal_order_carries_replaces   proxy mode: the shim forwards everything to Pebble with
                                        the client's Host, so it can read the renewal newOrder's
                                        JWS payload and check "replaces": <CertID>.

Needs the acme_lab fixture (CTest: integration.test_acme* require it).
"""

import secrets
import ssl
import sys
import time
import unittest

import acme_testlib as lab
import harness
from ari_shim import AriShim, WindowPlan, DAY

WINDOW_OFFSET = 4  # the first certificate's window starts at int(now) + 4: 3-4 s from now
WINDOW_LENGTH = 4
FAR_RETRY_AFTER = 7200  # Retry-After of every renewalInfo answer (frontdoor clamps to 60 s..1 d)
FIRST_ISSUE_TIMEOUT = 45 * harness.SLOW  # Pebble's README: ~30 s is a safe issuance bound
ISSUE_SLACK = 10 * harness.SLOW  # an order started at the window end is issued within this


class AcmeAriTest(unittest.TestCase):

    def setUp(self):
        harness.require_binary()
        self.lab = lab.read_lab_env()
        if not self.lab:
            self.skipTest("acme-lab (Pebble) is not running: run through ctest, which starts the "
                          "acme_lab fixture (ACME_LAB_STATE_DIR=%r)" % lab.lab_state_dir())
        self.tmp = harness.TempDir(prefix="fd-acme-ari-")
        self.addCleanup(self.tmp.cleanup)
        self.issuer_root = self.tmp.join("issuer-root.pem")
        with open(self.lab["ACME_LAB_ISSUER_ROOT"], "rb") as src:
            with open(self.issuer_root, "wb") as dst:
                dst.write(src.read())

    # --- the scenario ---

    def run_scenario(self, mode):
        plan = WindowPlan(windows=[(WINDOW_OFFSET, WINDOW_LENGTH), (30 * DAY, DAY)],
                          retry_after=FAR_RETRY_AFTER)
        shim = AriShim(self.tmp.path, self.lab["ACME_LAB_DIRECTORY_URL"],
                       self.lab["ACME_LAB_CA_BUNDLE"], mode=mode, plan=plan).start()
        self.addCleanup(shim.stop)
        # One bundle for frontdoor's ACME client: the shim's test CA and Pebble's HTTPS CA.
        bundle = self.tmp.join("acme-ca-bundle.pem")
        with open(bundle, "wb") as out:
            for path in (shim.ca, self.lab["ACME_LAB_CA_BUNDLE"]):
                with open(path, "rb") as f:
                    out.write(f.read().rstrip(b"\n") + b"\n")

        name = "ari-%s-%s.frontdoor.test" % (mode, secrets.token_hex(4))
        up = harness.Upstream("ari", log_dir=self.tmp.path).start()
        self.addCleanup(up.stop)
        port = harness.free_port()
        admin_port = harness.free_port()
        storage = self.tmp.join("storage-" + mode)
        cfg = lab.acme_config(port, int(self.lab["ACME_LAB_HTTP01_PORT"]), admin_port, up, name,
                              shim.directory_url, storage, bundle, "auto")
        fd = harness.Frontdoor(self.tmp.path, cfg, name="frontdoor-ari-" + mode)
        self.addCleanup(fd.close)
        t0 = time.time()
        fd.start()
        admin = harness.AdminClient("127.0.0.1:%d" % admin_port).wait_listening()

        def context():
            return "\n--- shim records ---\n%s\n%s" % (
                "\n".join(repr(r) for r in shim.requests()), fd.tail(6000))

        # 1. First issuance, served to a new handshake.
        issued1 = lab.wait_line(fd, lab.MSG_ISSUED, FIRST_ISSUE_TIMEOUT, name=name,
                                what="the first certificate for %s" % name)
        der1 = self.wait_served(port, name, issued1["serial"])
        cert_id1 = lab.ari_cert_id(der1)

        # 2. frontdoor asks renewalInfo for exactly that CertID.
        harness.wait_for(lambda: shim.renewal_info_requests(), 10, interval=0.1,
                         what="a renewalInfo request" + context())
        first = shim.renewal_info_requests()[0]
        self.assertEqual(first["cert_id"], cert_id1,
                         "renewalInfo asked for another CertID than the served certificate's "
                         "(serial %s)%s" % (issued1["serial"], context()))
        self.assertGreaterEqual(first["t"], lab.line_time(issued1) - 0.5)
        start, end = shim.windows[cert_id1]

        # 3. The renewal: ordered inside the window, issued soon after.
        issued2 = lab.wait_line(fd, lab.MSG_ISSUED, max(0.0, end - time.time()) + ISSUE_SLACK + 20,
                                name=name, after=1, what="the renewed certificate")
        orders = lab.acme_lines(fd, lab.MSG_ORDER, name)
        self.assertEqual([o.get("renewal") for o in orders], [False, True], context())
        t_order = lab.line_time(orders[1])
        t_issued = lab.line_time(issued2)
        timing = ("window [%s, %s], renewal ordered at %+.3f s, issued at %+.3f s (relative to "
                  "the window start); renewalInfo requests for the first certificate: %d"
                  % (lab.rfc3339(start), lab.rfc3339(end), t_order - start, t_issued - start,
                     len(shim.renewal_info_requests(cert_id1))))
        sys.stderr.write("[%s] %s\n" % (mode, timing))
        # Log timestamps are truncated to the millisecond.
        self.assertGreaterEqual(t_order, start - 0.01, "renewed before the window: " + timing)
        self.assertLessEqual(t_order, end + 1.0, "renewed after the window: " + timing)
        self.assertLessEqual(t_issued, end + ISSUE_SLACK, timing)
        self.assertNotEqual(issued2["serial"], issued1["serial"])
        self.assertEqual(lab.acme_lines(fd, lab.MSG_FAILED, name), [], context())

        # 4. The new certificate is served and frontdoor looks up ITS renewal info next.
        der2 = self.wait_served(port, name, issued2["serial"])
        cert_id2 = lab.ari_cert_id(der2)
        self.assertNotEqual(cert_id2, cert_id1)
        harness.wait_for(lambda: shim.renewal_info_requests(cert_id2), 10, interval=0.1,
                         what="a renewalInfo request for the renewed certificate" + context())
        asked = shim.renewal_info_requests(cert_id2)[0]["t"]
        ids = [r["cert_id"] for r in shim.renewal_info_requests()]
        self.assertEqual(set(ids), {cert_id1, cert_id2}, context())
        # Window 30 days out, Retry-After 7200 s: the next look is min(pick, now + 7200 s).
        cert = harness.wait_for(lambda: (lambda c: c if c and c.get("next_renewal") else None)(
            lab.status_certificate(admin, name)), 5, what="/status next_renewal")
        next_renewal = lab.parse_time(cert["next_renewal"])
        self.assertAlmostEqual(next_renewal, asked + FAR_RETRY_AFTER, delta=5,
                               msg="/status next_renewal %s: expected renewalInfo's Retry-After "
                                   "(%d s after %s) to set the next look" % (
                                       cert["next_renewal"], FAR_RETRY_AFTER, lab.rfc3339(asked)))
        self.assertIsNone(cert.get("last_error"), cert)
        # No further order: the new window is far away.
        time.sleep(2)
        self.assertEqual(len(lab.acme_lines(fd, lab.MSG_ORDER, name)), 2, context())
        self.assertEqual(shim.requests("error"), [], context())
        sys.stderr.write("[%s] %s: certificates %s -> %s in %.1f s; CertIDs %s -> %s\n"
                         % (mode, name, issued1["serial"], issued2["serial"], time.time() - t0,
                            cert_id1, cert_id2))
        return shim, fd, name, cert_id1, context

    def wait_served(self, port, name, serial_hex):
        """Waits (5 s) until a new handshake for |name| gets the certificate with this serial,
        verified against Pebble's issuing root; returns its DER."""
        want = int(serial_hex, 16)
        last = [None]

        def probe():
            try:
                der = lab.served_certificate(port, name, self.issuer_root)
            except (ssl.SSLError, OSError) as e:
                last[0] = repr(e)
                return None
            last[0] = "%x" % lab.serial_int(der)
            return der if lab.serial_int(der) == want else None

        try:
            return harness.wait_for(probe, 5, interval=0.1,
                                    what="certificate %s served for %s" % (serial_hex, name))
        except AssertionError as e:
            raise AssertionError("%s; last seen: %s" % (e, last[0]))

    # --- tests ---

    def test_renewal_inside_ari_window(self):
        shim, fd, name, cert_id1, context = self.run_scenario("ari-only")
        # frontdoor sent the shim nothing but directory and renewalInfo GETs.
        self.assertEqual(shim.requests("refused"), [], context())
        with self.subTest("the renewal newOrder carries replaces"):
            self.skipTest(
                "not observable in ari-only mode: newOrder goes straight to Pebble, which "
                "ignores 'replaces', and frontdoor does not log the payload. A shim cannot "
                "forward just newOrder, because the JWS 'url' names the shim while Pebble checks "
                "it against its own URL. test_renewal_order_carries_replaces checks it in proxy "
                "mode")

    def test_renewal_order_carries_replaces(self):
        shim, fd, name, cert_id1, context = self.run_scenario("proxy")
        # Pebble rejects 5% of nonces: a newOrder may be sent again after a 400 badNonce.
        attempts = shim.new_orders()
        orders = [o for o in attempts if o["status"] == 201]
        self.assertEqual(len(orders), 2, context())
        want_ids = [{"type": "dns", "value": name}]
        self.assertEqual(orders[0]["payload"].get("identifiers"), want_ids)
        self.assertNotIn("replaces", orders[0]["payload"],
                         "the first order replaces nothing")
        self.assertEqual(orders[1]["payload"].get("identifiers"), want_ids)
        self.assertEqual(orders[1]["payload"].get("replaces"), cert_id1,
                         "the renewal newOrder must name the replaced certificate (RFC 9773 5)"
                         + context())
        for o in attempts:
            if o["t"] > orders[0]["t"]:
                self.assertEqual(o["payload"].get("replaces"), cert_id1, o)


if __name__ == "__main__":
    unittest.main()
