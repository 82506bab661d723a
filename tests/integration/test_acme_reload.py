"""SIGHUP and tls.acme against the loopback Pebble CA of the acme_lab CTest fixture: a name added
by a reload is ordered (and only that name), a name removed by a reload is no longer served, and
a reload that fails leaves the managed certificates as they were.

When tls.acme changes, proxy/server.cc (Server::switch_config -> configure_acme) stops the ACME
manager and starts a new one with the new settings: it publishes what is already in storage,
then orders what is missing. The TLS set serves managed certificates only for names in the
current tls.acme.domains. Every config here also has a static certificate (harness.make_certs),
listed first so that it is the default: a handshake for a name that is no longer managed gets it.

Like test_acme.py: every test uses its own storage folder and its own names (per-run random
suffix), because Pebble keeps accounts and authorizations for its whole life; http-01 is answered
on the plain listener at ACME_LAB_HTTP01_PORT. Without the fixture's env file the module is
skipped. Takes about 6 s in a Debug build.
"""

import json
import os
import re
import secrets
import signal
import socket
import ssl
import sys
import time
import unittest

import acme_testlib as lab
import harness
from harness import SLOW

ISSUE_TIMEOUT = 30 * SLOW  # as test_acme.py
SWITCH_TIMEOUT = 5 * SLOW  # from the reload line until every worker serves the new TLS set
RUN_ID = secrets.token_hex(4)
TIMINGS = []

MSG_LOADED = "acme certificate loaded from storage"
MSG_INSTALLED = "certificates installed"
RELOAD_OK = "configuration reloaded"
RELOAD_FAILED = "configuration reload failed"

LAB = {}


def setUpModule():
    env = lab.read_lab_env()
    if not env:
        raise unittest.SkipTest(
            "acme-lab (Pebble) is not running: no env file in $ACME_LAB_STATE_DIR (%s). Run "
            "through CTest (ctest -R test_acme_reload starts the acme_lab fixture)"
            % (lab.lab_state_dir() or "unset"))
    LAB.update(env)
    missing = [k for k in ("ACME_LAB_DIRECTORY_URL", "ACME_LAB_CA_BUNDLE", "ACME_LAB_ISSUER_ROOT",
                           "ACME_LAB_HTTP01_PORT") if not LAB.get(k)]
    if missing:
        raise AssertionError("the acme-lab env file lacks %s: %r" % (missing, LAB))
    for key in ("ACME_LAB_CA_BUNDLE", "ACME_LAB_ISSUER_ROOT"):
        if not os.path.isfile(LAB[key]):
            raise AssertionError("%s=%s is not a file" % (key, LAB[key]))


def tearDownModule():
    if TIMINGS:
        sys.stderr.write("\nACME reload timings (run %s):\n" % RUN_ID)
        for what, seconds in TIMINGS:
            sys.stderr.write("  %-62s %6.2f s\n" % (what, seconds))


def issuer_root():
    return LAB["ACME_LAB_ISSUER_ROOT"]


def fresh_name(prefix):
    """A name Pebble has never seen: <prefix>-<run id>-<random>.test."""
    return "%s-%s-%s.test" % (prefix, RUN_ID, secrets.token_hex(3))


def logged_serial(text):
    """A serial as frontdoor logs it (lowercase hex) as an int."""
    return int(text.strip().replace(":", ""), 16)


# --- certificates ------------------------------------------------------------------------------


class Leaf:
    """A served leaf certificate: serial (int), issuer and subject (openssl one-line text) and
    its SAN entries (["DNS:a.test", ...])."""

    def __init__(self, der):
        self.der = der
        self.serial = lab.serial_int(der)
        text = lab.openssl_text(der, "-issuer", "-subject", "-ext", "subjectAltName")
        issuer = re.search(r"^issuer=(.*)$", text, re.M)
        subject = re.search(r"^subject=(.*)$", text, re.M)
        san = re.search(r"X509v3 Subject Alternative Name:.*\n\s*(.*)", text)
        self.issuer = issuer.group(1).strip() if issuer else ""
        self.subject = subject.group(1).strip() if subject else ""
        self.sans = [s.strip() for s in san.group(1).split(",")] if san else []

    def __repr__(self):
        return "Leaf(serial=%x, issuer=%r, subject=%r, sans=%r)" % (
            self.serial, self.issuer, self.subject, self.sans)


def verified_leaf(port, name):
    """The leaf a NEW handshake with SNI |name| gets, verified (chain and host name) against
    Pebble's issuing root. Raises ssl.SSLError when it does not verify."""
    return Leaf(lab.served_certificate(port, name, issuer_root()))


def any_leaf(port, name):
    """The leaf a NEW handshake with SNI |name| gets, without verification."""
    with harness.tls_connect(port, server_hostname=name, ca=None) as s:
        return Leaf(s.getpeercert(binary_form=True))


def wait_leaf(port, name, predicate, timeout, what, verify=True):
    """Polls new handshakes for SNI |name| until predicate(Leaf) holds; returns that Leaf."""
    last = [None]

    def probe():
        try:
            leaf = verified_leaf(port, name) if verify else any_leaf(port, name)
        except (ssl.SSLError, OSError) as e:
            last[0] = e
            return None
        last[0] = leaf
        return leaf if predicate(leaf) else None

    try:
        return harness.wait_for(probe, timeout, interval=0.1, what=what)
    except AssertionError as e:
        raise AssertionError("%s; last handshake gave %r" % (e, last[0]))


# --- log and reloads ---------------------------------------------------------------------------


def lines_after(fd, mark, msg, name=None):
    """Log lines with |msg| (and "name") from the |mark|-th JSON line on (Reloader.sighup's
    mark: what the reload logged, including what it logged before its reload line)."""
    return [o for o in fd.log_lines()[mark:]
            if o.get("msg") == msg and (name is None or o.get("name") == name)]


class Reloader:
    """Rewrites a running Frontdoor's config file atomically, sends SIGHUP and waits for the one
    reload line (msg starting with "configuration reload") it produces (as test_reload.py)."""

    def __init__(self, fd):
        self.fd = fd

    def reload_lines(self):
        """(index in the log, line) of every reload line so far."""
        return [(i, o) for i, o in enumerate(self.fd.log_lines())
                if str(o.get("msg", "")).startswith("configuration reload")]

    def write(self, config):
        text = config if isinstance(config, str) else json.dumps(config, indent=2) + "\n"
        path = self.fd.config_path
        tmp_path = path + ".tmp-%d" % os.getpid()
        with open(tmp_path, "w") as f:
            f.write(text)
        os.replace(tmp_path, path)

    def sighup(self, config, expect="success", timeout=10):
        """Writes |config| (dict or text), sends SIGHUP; returns (mark, reload line), mark being
        the number of JSON log lines before the signal: a new ACME manager logs its loads from
        storage before the reload line."""
        self.fd.assert_running()
        mark = len(self.fd.log_lines())
        before = len(self.reload_lines())
        self.write(config)
        self.fd.send_signal(signal.SIGHUP)

        def probe():
            self.fd.assert_running()
            lines = self.reload_lines()
            return lines if len(lines) > before else None

        try:
            lines = harness.wait_for(probe, timeout * SLOW, interval=0.02,
                                     what="the reload line of SIGHUP #%d" % (before + 1))
        except AssertionError as e:
            raise AssertionError("%s\n%s" % (e, self.fd.tail(6000)))
        time.sleep(0.1)
        lines = self.reload_lines()
        if len(lines) != before + 1:
            raise AssertionError("one SIGHUP produced %d reload lines: %r"
                                 % (len(lines) - before, lines[before:]))
        _, line = lines[before]
        want = (RELOAD_OK, "info") if expect == "success" else (RELOAD_FAILED, "error")
        if (line.get("msg"), line.get("level"), line.get("result")) != want + (expect,):
            raise AssertionError("SIGHUP #%d: want msg %r, level %r, result %r; got %r\n%s"
                                 % (before + 1, want[0], want[1], expect, line,
                                    self.fd.tail(6000)))
        return mark, line


class AcmeReloadTest(harness.ProxyTestCase):
    STATIC_NAME = "static-reload-%s.test" % RUN_ID
    cert_names = [[STATIC_NAME]]

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        try:
            cls.up = cls.class_upstream("acmereload")
        except BaseException:
            cls.tearDownClass()
            raise

    def setUp(self):
        self.t0 = time.monotonic()
        self.static_leaf = Leaf(harness.run(["openssl", "x509", "-in", self.certs.leaves[0].cert,
                                             "-outform", "DER"]).stdout)

    def timing(self, what, since=None):
        seconds = time.monotonic() - (self.t0 if since is None else since)
        TIMINGS.append(("%s: %s" % (self.id().rsplit(".", 1)[-1], what), seconds))
        return seconds

    def config(self, domains, storage, tls_port, admin_port, plain=True):
        """TLS on 127.0.0.1:tls_port with the static certificate first (the default) and
        tls.acme (http-01) for |domains|; the http-01 answerer on the plain listener at Pebble's
        VA port (unless plain=False); an admin listener."""
        listen = [{"address": "127.0.0.1:%d" % tls_port, "tls": True}]
        if plain:
            listen.append({"address": "127.0.0.1:%d" % int(LAB["ACME_LAB_HTTP01_PORT"]),
                           "redirect_https": True})
        return {
            "listen": listen,
            "tls": {
                "certificates": self.certs.config_list(),
                "acme": {
                    "directory": LAB["ACME_LAB_DIRECTORY_URL"],
                    "email": "ops@frontdoor.test",
                    "domains": list(domains),
                    "challenge": "http-01",
                    "storage": storage,
                    "ca_bundle": LAB["ACME_LAB_CA_BUNDLE"],
                },
            },
            "upstreams": {"app": {"servers": [self.up.address]}},
            "routes": [{"match": {"path_prefix": "/"}, "upstream": "app"}],
            "admin": {"address": "127.0.0.1:%d" % admin_port},
            "log": {"level": "info", "access": False},
            "workers": 2,
        }

    def start(self, domains):
        """Starts frontdoor for |domains| with a fresh storage folder; returns
        (fd, config builder(domains, plain=True), tls port, AdminClient)."""
        storage = self.tmp.join("storage-" + secrets.token_hex(4))
        tls_port = harness.free_port()
        admin_port = harness.free_port()

        def build(names, plain=True):
            return self.config(names, storage, tls_port, admin_port, plain=plain)

        fd = self.frontdoor(build(domains))
        admin = harness.AdminClient("127.0.0.1:%d" % admin_port).wait_listening()
        return fd, build, tls_port, admin

    def wait_issued(self, fd, name):
        """The issued log line of |name| (fails early on a failed order or an exit)."""
        t = time.monotonic()
        issued = lab.wait_line(fd, lab.MSG_ISSUED, ISSUE_TIMEOUT, name=name,
                               what="issuance of %s" % name)
        self.timing("issuance of %s" % name, since=t)
        self.assertEqual(lab.acme_lines(fd, lab.MSG_FAILED, name), [], fd.tail())
        self.assertIn("Pebble", issued.get("issuer", ""), issued)
        return issued

    def assert_managed_leaf(self, port, name, serial, what):
        """A new handshake for |name| gets (eventually, the switch is asynchronous) the managed
        certificate |serial|: verified against Pebble's root for |name|, SAN exactly |name|,
        issuer Pebble's."""
        leaf = wait_leaf(port, name, lambda l: l.serial == serial, SWITCH_TIMEOUT,
                         "%s: serial %x served for %s" % (what, serial, name))
        self.assertEqual(leaf.sans, ["DNS:" + name], leaf)
        self.assertIn("Pebble", leaf.issuer, leaf)
        return leaf

    def assert_static_fallback(self, port, name):
        """Handshakes for |name| get the static default certificate, which does not verify for
        |name| against Pebble's root."""
        leaf = wait_leaf(port, name, lambda l: l.serial == self.static_leaf.serial,
                         SWITCH_TIMEOUT, "the static default certificate for %s" % name,
                         verify=False)
        self.assertEqual(leaf.sans, ["DNS:" + self.STATIC_NAME], leaf)
        self.assertNotIn("Pebble", leaf.issuer, leaf)
        self.assertNotIn("DNS:" + name, leaf.sans, leaf)
        # Every worker switched: a run of new handshakes all get it.
        for _ in range(6):
            again = any_leaf(port, name)
            self.assertEqual(again.serial, self.static_leaf.serial, again)
        with self.assertRaises(ssl.SSLError):
            verified_leaf(port, name)
        return leaf

    def assert_status_managed(self, admin, name, issuer):
        """/status lists |name| once, from acme, with the issuer and a planned renewal."""
        entries = [c for c in admin.status().get("certificates", [])
                   if name in (c.get("names") or [])]
        self.assertEqual(len(entries), 1, admin.status())
        c = entries[0]
        self.assertEqual(c["source"], "acme", c)
        self.assertEqual(c["issuer"], issuer, c)
        self.assertIsNone(c["last_error"], c)
        return c

    def wait_status_planned(self, admin, name):
        """Waits until /status shows a next_renewal for |name| (the ACME thread planned it)."""
        last = [None]

        def planned():
            c = lab.status_certificate(admin, name)
            last[0] = c
            return c if c and c.get("next_renewal") else None

        try:
            return harness.wait_for(planned, 5 * SLOW, interval=0.1,
                                    what="/status next_renewal for %s" % name)
        except AssertionError as e:
            raise AssertionError("%s; last seen %r" % (e, last[0]))

    def get_through(self, port, name, ca):
        r = harness.curl("https://%s:%d/acme-reload" % (name, port), ca=ca)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body, b"upstream acmereload /acme-reload\n", r)

    # --- tests ---

    def test_add_then_remove_domain(self):
        """[A] -> [A, B]: B is reported added, ordered (the only new order) and served; A keeps
        its serial (loaded from storage by the new manager, not ordered again). [A, B] -> [B]:
        A is reported removed and falls back to the static default certificate, leaves /status
        and /metrics; B keeps its serial and is not ordered again."""
        a = fresh_name("reload-a")
        b = fresh_name("reload-b")
        fd, build, port, admin = self.start([a])
        rl = Reloader(fd)

        # --- [A]: A is issued and served.
        issued_a = self.wait_issued(fd, a)
        serial_a = logged_serial(issued_a["serial"])
        leaf_a = self.assert_managed_leaf(port, a, serial_a, "start")
        self.get_through(port, a, issuer_root())
        self.assertEqual(any_leaf(port, self.STATIC_NAME).serial, self.static_leaf.serial)
        self.wait_status_planned(admin, a)
        self.assertEqual(len(lab.acme_lines(fd, lab.MSG_ORDER, a)), 1, fd.tail())

        # --- [A, B]: B is added.
        t = time.monotonic()
        at_add, line = rl.sighup(build([a, b]))
        changes = line.get("changes") or {}
        self.assertEqual(line.get("generation"), 2, line)
        self.assertEqual(changes.get("acme_domains_added"), [b], line)
        self.assertEqual(changes.get("acme_domains_removed"), [], line)
        # A stays served across the reload (the new TLS set is built with the stored A).
        self.assertEqual(verified_leaf(port, a).serial, serial_a)

        issued_b = self.wait_issued(fd, b)
        self.timing("reload adding B until B was issued", since=t)
        serial_b = logged_serial(issued_b["serial"])
        self.assertNotEqual(serial_b, serial_a)
        leaf_b = self.assert_managed_leaf(port, b, serial_b, "after adding B")
        self.assertEqual(leaf_b.issuer, leaf_a.issuer, leaf_b)
        self.get_through(port, b, issuer_root())

        # A: same serial, loaded from storage by the new manager, never ordered again.
        self.assertEqual(verified_leaf(port, a).serial, serial_a)
        self.get_through(port, a, issuer_root())
        loaded_a = lines_after(fd, at_add, MSG_LOADED, a)
        self.assertEqual(len(loaded_a), 1, fd.tail(6000))
        self.assertEqual(logged_serial(loaded_a[0]["serial"]), serial_a, loaded_a)
        self.assertEqual(len(lab.acme_lines(fd, lab.MSG_ORDER, a)), 1,
                         "A was ordered again after the reload\n" + fd.tail(6000))
        self.assertEqual(len(lab.acme_lines(fd, lab.MSG_ISSUED, a)), 1, fd.tail(6000))
        orders_b = lines_after(fd, at_add, lab.MSG_ORDER, b)
        self.assertEqual(len(orders_b), 1, fd.tail(6000))
        self.assertFalse(orders_b[0].get("renewal"), orders_b)
        self.assertEqual(len(lab.acme_lines(fd, lab.MSG_ORDER)), 2,
                         "orders: %r" % lab.acme_lines(fd, lab.MSG_ORDER))
        self.wait_status_planned(admin, b)
        self.assert_status_managed(admin, a, issued_a["issuer"])
        self.assert_status_managed(admin, b, issued_b["issuer"])

        # --- [B]: A is removed.
        at_remove, line = rl.sighup(build([b]))
        changes = line.get("changes") or {}
        self.assertEqual(line.get("generation"), 3, line)
        self.assertEqual(changes.get("acme_domains_added"), [], line)
        self.assertEqual(changes.get("acme_domains_removed"), [a], line)

        # SNI A falls back to the static default certificate.
        self.assert_static_fallback(port, a)
        r = harness.curl("https://%s:%d/acme-reload" % (a, port), ca=issuer_root())
        self.assertEqual(r.status, 0, r)
        self.assertNotEqual(r.rc, 0, r)

        # B: still served with the same serial, loaded from storage, not ordered again.
        self.assert_managed_leaf(port, b, serial_b, "after removing A")
        self.get_through(port, b, issuer_root())
        loaded_b = lines_after(fd, at_remove, MSG_LOADED, b)
        self.assertEqual(len(loaded_b), 1, fd.tail(6000))
        self.assertEqual(logged_serial(loaded_b[0]["serial"]), serial_b, loaded_b)
        self.assertEqual(lines_after(fd, at_remove, MSG_LOADED, a), [], fd.tail(6000))
        self.assertEqual(lines_after(fd, at_remove, lab.MSG_ORDER), [], fd.tail(6000))

        # /status and /metrics no longer list A; B is still managed.
        self.wait_status_planned(admin, b)
        status = admin.status()
        self.assertEqual([c for c in status.get("certificates", [])
                          if a in (c.get("names") or [])], [], status)
        self.assert_status_managed(admin, b, issued_b["issuer"])
        static = lab.status_certificate(admin, self.STATIC_NAME)
        self.assertIsNotNone(static, status)
        self.assertEqual(static["source"], "file", static)
        metrics = harness.Metrics(admin.metrics())
        expiry = [l for n, l, _ in metrics.samples if n == "frontdoor_certificate_expiry_seconds"]
        self.assertEqual([l for l in expiry if l.get("name") == a], [], metrics.text)
        self.assertEqual([l for l in expiry if l.get("name") == b],
                         [{"name": b, "source": "acme"}], metrics.text)

        self.assertEqual(lab.acme_lines(fd, lab.MSG_FAILED), [], fd.tail(6000))
        self.assertEqual(fd.stop(), 0, fd.tail())
        self.timing("whole test")

    def test_failed_reload_keeps_managed_certificate(self):
        """Three failing reloads (not YAML; D added with http-01 but no plain listener; D added
        with a listener on a busy port) keep C's certificate served, the manager untouched (no
        load from storage, no order, D never ordered nor listed) and the generation at 1; a
        later valid reload without a tls.acme change keeps the manager too."""
        c = fresh_name("reload-c")
        d = fresh_name("reload-d")
        fd, build, port, admin = self.start([c])
        rl = Reloader(fd)
        issued = self.wait_issued(fd, c)
        serial = logged_serial(issued["serial"])
        self.assert_managed_leaf(port, c, serial, "start")
        self.wait_status_planned(admin, c)
        before = self.assert_status_managed(admin, c, issued["issuer"])

        # (a) Not YAML: the flow mapping is never closed.
        good = json.dumps(build([c]), indent=2)
        at_syntax, line = rl.sighup(good.rstrip()[:-1] + "\n", expect="failure")
        self.assertEqual(line.get("generation"), 1, line)
        self.assertTrue(line.get("errors"), line)
        self.assertTrue(all(e.startswith(fd.config_path + ":") for e in line["errors"]), line)

        # (b) A tls.acme change (D added) that does not validate: http-01 without a plain
        # listener. Nothing of it may take effect.
        _, line = rl.sighup(build([c, d], plain=False), expect="failure")
        self.assertEqual(line.get("generation"), 1, line)
        self.assertTrue(any("http-01" in e for e in line.get("errors") or []), line)
        self.assertEqual(verified_leaf(port, c).serial, serial)

        # (c) D added in a file that validates but cannot be applied: one more TLS listener, on
        # a port already in use.
        blocker = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(blocker.close)
        blocker.bind(("127.0.0.1", 0))  # no SO_REUSEADDR / SO_REUSEPORT
        blocker.listen(8)
        busy = blocker.getsockname()[1]
        unusable = build([c, d])
        unusable["listen"].append({"address": "127.0.0.1:%d" % busy, "tls": True})
        _, line = rl.sighup(unusable, expect="failure")
        self.assertEqual(line.get("generation"), 1, line)
        self.assertTrue(any(str(busy) in e for e in line.get("errors") or []), line)

        # The managed certificate is served as before, by the same manager.
        for _ in range(4):
            self.assertEqual(verified_leaf(port, c).serial, serial)
        self.get_through(port, c, issuer_root())
        time.sleep(1.5)  # time for a (wrongly) restarted manager to load or order
        self.assertEqual(lines_after(fd, at_syntax, MSG_LOADED), [], fd.tail(6000))
        self.assertEqual(lines_after(fd, at_syntax, lab.MSG_ORDER), [], fd.tail(6000))
        self.assertEqual(lab.acme_lines(fd, lab.MSG_ORDER, d), [], fd.tail(6000))
        after = self.assert_status_managed(admin, c, issued["issuer"])
        self.assertEqual(after["not_after"], before["not_after"], after)
        self.assertEqual(after["next_renewal"], before["next_renewal"], after)
        status = admin.status()
        self.assertIsNone(lab.status_certificate(admin, d), status)
        self.assertEqual(status["config"]["generation"], 1, status["config"])
        self.assertEqual(status["config"]["reloads"], {"success": 0, "failure": 3},
                         status["config"])
        # The plain listener (the http-01 answerer) is still there.
        r = harness.curl("http://%s:%d/x" % (c, int(LAB["ACME_LAB_HTTP01_PORT"])))
        self.assertEqual(r.status, 308, r)

        # A valid reload without a tls.acme change keeps the manager (no reload from storage).
        at_ok, line = rl.sighup(build([c]))
        self.assertEqual(line.get("generation"), 2, line)
        self.assertEqual(line["changes"].get("acme_domains_added"), [], line)
        self.assertEqual(line["changes"].get("acme_domains_removed"), [], line)
        self.assertEqual(verified_leaf(port, c).serial, serial)
        self.assertEqual(lines_after(fd, at_syntax, MSG_LOADED), [], fd.tail(6000))
        self.assertEqual(len(lab.acme_lines(fd, lab.MSG_ORDER)), 1, fd.tail(6000))

        self.assertEqual(lab.acme_lines(fd, lab.MSG_FAILED), [], fd.tail(6000))
        self.assertEqual(fd.stop(), 0, fd.tail())
        self.timing("whole test")


if __name__ == "__main__":
    unittest.main()
