"""The ACME CA goes away and comes back: the current certificate stays in service, the failure is
reported, and the retry after the back-off gets a new certificate from the restarted CA.

frontdoor is configured with `renew` longer than Pebble's certificate lifetime, so it wants to
renew as soon as it has a certificate, again and again. Once the first certificate is issued the
test stops the acme_lab fixture's Pebble (tests/tools/pebble.sh stop), checks the failed attempt
(log line with a retry ~60 s later, /status, /metrics, `frontdoor acme status`) and that requests
keep being served with the last certificate, then starts Pebble again with the fixture's options.
Pebble keeps everything in memory and regenerates its issuing root on start, so frontdoor's
retry must register its account again, and the new certificate verifies only with the new root.

Takes about 70-80 s (the first retry comes 60 s +-10% after the failure). Needs the acme_lab
fixture; Pebble is left running (started again in cleanup if the test stopped midway).
"""

import re
import secrets
import ssl
import sys
import time
import unittest

import acme_testlib as lab
import harness

FIRST_ISSUE_TIMEOUT = 45 * harness.SLOW
FAIL_TIMEOUT = 30 * harness.SLOW  # an order in progress when Pebble stops fails at its next request
RECOVERY_TIMEOUT = 100  # from Pebble's restart to the new certificate
BACKOFF = 60  # first retry after 60 s +-10%
MSG_REREGISTER = "acme account unknown to the CA, registering again"


class AcmeOutageTest(unittest.TestCase):

    def setUp(self):
        harness.require_binary()
        if not lab.lab_state_dir():
            self.skipTest("ACME_LAB_STATE_DIR is not set: this test stops and restarts the "
                          "acme_lab fixture's Pebble, so it runs only under ctest")
        self.lab = lab.read_lab_env()
        if not self.lab:
            self.skipTest("acme-lab (Pebble) is not running in %s" % lab.lab_state_dir())
        # Registered first, so it runs last: after frontdoor has stopped, Pebble runs again.
        self.addCleanup(self.ensure_lab_running)
        self.tmp = harness.TempDir(prefix="fd-acme-outage-")
        self.addCleanup(self.tmp.cleanup)
        self.timeline = []
        self.t0 = time.time()
        self.addCleanup(self.print_timeline)

    def ensure_lab_running(self):
        if lab.lab_running():
            return
        sys.stderr.write("acme-lab: Pebble is down after the test; starting it again\n")
        r = lab.run_lab("start", *lab.lab_start_args())
        if r.returncode != 0:
            raise AssertionError("could not start Pebble again: %s%s" % (r.stdout, r.stderr))

    def print_timeline(self):
        sys.stderr.write("\noutage timeline (seconds from the test's start):\n")
        for t, what in self.timeline:
            sys.stderr.write("  %6.1f  %s\n" % (t, what))

    def mark(self, what):
        self.timeline.append((time.time() - self.t0, what))

    def copy_file(self, src, dst):
        with open(src, "rb") as f, open(dst, "wb") as out:
            data = f.read()
            out.write(data)
        return data

    def served_serial(self, port, name, ca):
        """Serial (int) of the leaf a new handshake gets, verified with |ca|."""
        return lab.serial_int(lab.served_certificate(port, name, ca))

    def get_through(self, port, name, ca, path):
        r = harness.curl("https://%s:%d%s" % (name, port, path), ca=ca, timeout=10)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body, ("upstream outage %s\n" % path).encode(), r)
        return r

    def test_ca_outage_keeps_certificate_and_recovers(self):
        validity = int(self.lab.get("ACME_LAB_CERT_VALIDITY_SECONDS") or 157766400)
        renew = "%dd" % (validity // 86400 + 2)  # longer than the lifetime: renew at once
        name = "outage-%s.frontdoor.test" % secrets.token_hex(4)
        old_root = self.tmp.join("issuer-root-before.pem")
        old_root_pem = self.copy_file(self.lab["ACME_LAB_ISSUER_ROOT"], old_root)

        up = harness.Upstream("outage", log_dir=self.tmp.path).start()
        self.addCleanup(up.stop)
        port = harness.free_port()
        admin_port = harness.free_port()
        cfg = lab.acme_config(port, int(self.lab["ACME_LAB_HTTP01_PORT"]), admin_port, up, name,
                              self.lab["ACME_LAB_DIRECTORY_URL"], self.tmp.join("storage"),
                              self.lab["ACME_LAB_CA_BUNDLE"], renew)
        fd = harness.Frontdoor(self.tmp.path, cfg, name="frontdoor-outage")
        self.addCleanup(fd.close)
        fd.start()
        admin = harness.AdminClient("127.0.0.1:%d" % admin_port).wait_listening()

        # 1. The first certificate; frontdoor starts renewing right away.
        first = lab.wait_line(fd, lab.MSG_ISSUED, FIRST_ISSUE_TIMEOUT, name=name,
                              what="the first certificate")
        self.mark("first certificate %s issued" % first["serial"])
        lab.wait_line(fd, lab.MSG_ORDER, 10, name=name, predicate=lambda o: o.get("renewal"),
                      what="an immediate renewal order (renew %s > lifetime)" % renew)

        # 2. The CA goes away.
        t_stop = time.time()
        r = lab.run_lab("stop")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertFalse(lab.lab_running())
        self.mark("pebble.sh stop done")

        failed = lab.wait_line(fd, lab.MSG_FAILED, FAIL_TIMEOUT, name=name,
                               what="a failed renewal attempt")
        t_failed = lab.line_time(failed)
        self.mark("order failed: %s" % failed.get("reason"))
        self.assertGreaterEqual(t_failed, t_stop - 0.5,
                                "an attempt failed before the CA was stopped: %r" % failed)
        self.assertEqual(failed.get("attempt"), 1, failed)
        self.assertTrue(failed.get("reason"), failed)
        retry_at = lab.parse_time(failed["retry_at"])
        # retry_at has whole seconds (truncated), and the backoff counts from the failure,
        # a moment before the log line's own timestamp: allow one and a half more.
        self.assertGreaterEqual(retry_at - t_failed, BACKOFF * 0.9 - 1.5, failed)
        self.assertLessEqual(retry_at - t_failed, BACKOFF * 1.1 + 1.0, failed)

        # The certificate in service is the last one issued before the outage.
        issued_before = lab.acme_lines(fd, lab.MSG_ISSUED, name)
        old_serial = issued_before[-1]["serial"]
        self.assertTrue(all(lab.line_time(o) <= t_failed for o in issued_before))
        self.mark("%d certificate(s) issued before the outage; in service: %s"
                  % (len(issued_before), old_serial))

        # 3. Requests keep working with the old certificate, new handshakes included.
        for i in range(3):
            self.assertEqual(self.served_serial(port, name, old_root), int(old_serial, 16))
            self.get_through(port, name, old_root, "/during-outage-%d" % i)

        # /status, /metrics and `frontdoor acme status` report the failure.
        cert = lab.status_certificate(admin, name)
        self.assertIsNotNone(cert, admin.status())
        self.assertEqual(cert.get("source"), "acme", cert)
        self.assertIsNotNone(cert.get("last_error"), cert)
        self.assertEqual(cert.get("last_error"), failed.get("reason"), cert)
        self.assertEqual(cert.get("next_renewal"), failed["retry_at"], cert)
        metrics = harness.Metrics(admin.metrics())
        failures = [v for n, labels, v in metrics.samples
                    if n == "frontdoor_acme_failures_total" and labels.get("name") == name]
        self.assertEqual(failures, [1.0], metrics.text)
        r = harness.run([harness.BIN, "acme", "status", "-c", fd.config_path], timeout=15)
        report = r.stdout.decode(errors="replace")
        self.assertEqual(r.returncode, 0, report + r.stderr.decode(errors="replace"))
        self.assertIn(name, report)
        m = re.search(r"^\s*last_error:\s*(.*)$", report, re.M)
        self.assertTrue(m and m.group(1).strip() != "-", report)
        self.assertIn("retry at %s" % failed["retry_at"], report)
        self.assertEqual(len(lab.acme_lines(fd, lab.MSG_ISSUED, name)), len(issued_before))
        self.mark("checks during the outage done")

        # 4. The CA comes back (same options as the fixture); its issuing root is new.
        r = lab.run_lab("start", *lab.lab_start_args())
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        t_restart = time.time()
        self.mark("pebble.sh start %s done" % " ".join(lab.lab_start_args()))
        self.lab = lab.read_lab_env()
        new_root = self.tmp.join("issuer-root-after.pem")
        new_root_pem = self.copy_file(self.lab["ACME_LAB_ISSUER_ROOT"], new_root)
        self.assertNotEqual(new_root_pem, old_root_pem, "Pebble's issuing root should be new")
        self.assertLess(t_restart, retry_at - 1, "Pebble restarted too late for the first retry")

        recovered = lab.wait_line(
            fd, lab.MSG_ISSUED, min(RECOVERY_TIMEOUT, max(0, retry_at - time.time()) + 40),
            name=name, after=len(issued_before), what="a certificate from the restarted CA")
        t_recovered = lab.line_time(recovered)
        self.mark("certificate %s issued after the restart" % recovered["serial"])
        self.assertNotEqual(recovered["serial"], old_serial)
        orders_after = [o for o in lab.acme_lines(fd, lab.MSG_ORDER, name)
                        if lab.line_time(o) > t_failed]
        self.assertTrue(orders_after, fd.tail())
        t_retry = lab.line_time(orders_after[0])
        # The retry comes at retry_at (whole seconds in the log), not sooner, not much later.
        self.assertGreaterEqual(t_retry, retry_at - 0.01, orders_after[0])
        self.assertLessEqual(t_retry, retry_at + 2, orders_after[0])
        self.assertEqual(len(lab.acme_lines(fd, lab.MSG_FAILED, name)), 1, fd.tail())
        reregistered = lab.acme_lines(fd, MSG_REREGISTER)

        # 5. New handshakes get a certificate from the new hierarchy (renewals go on, so it may
        # already be a later one than |recovered|).
        def issued_after():
            return {int(o["serial"], 16) for o in lab.acme_lines(fd, lab.MSG_ISSUED, name)
                    if lab.line_time(o) >= t_recovered}

        last = [None]

        def served_new():
            try:
                serial = self.served_serial(port, name, new_root)
            except (ssl.SSLError, OSError) as e:
                last[0] = repr(e)
                return None
            last[0] = "%x" % serial
            return serial if serial in issued_after() else None

        try:
            harness.wait_for(served_new, 5, interval=0.1, what="the new certificate served")
        except AssertionError as e:
            raise AssertionError("%s; last seen: %s\n%s" % (e, last[0], fd.tail()))
        with self.assertRaises(ssl.SSLError,
                               msg="the new certificate must not chain to the old root"):
            lab.served_certificate(port, name, old_root)
        self.get_through(port, name, new_root, "/after-outage")
        self.mark("new certificate served, verified with the new root")
        cert = lab.status_certificate(admin, name)
        self.assertIsNone(cert.get("last_error"), cert)

        self.mark("first retry %.1f s after the failure, new certificate %.1f s after the "
                  "restart; account re-registrations logged: %d"
                  % (t_retry - t_failed, t_recovered - t_restart, len(reregistered)))


if __name__ == "__main__":
    unittest.main()
