"""Managed certificates (tls.acme) against the loopback Pebble CA of the acme_lab CTest fixture:
http-01 and tls-alpn-01 issuance, reuse of stored certificates across a restart, hot renewal under
load, and a name whose challenge cannot succeed.

Pebble (tests/tools/pebble.sh, started by the acme_lab fixture with --authz-reuse 0) publishes its
settings in $ACME_LAB_STATE_DIR/env. Its validator connects to <name>:ACME_LAB_HTTP01_PORT
(http-01) and <name>:ACME_LAB_TLSALPN01_PORT (tls-alpn-01), and its mock DNS resolves every name
to 127.0.0.1, so frontdoor answers the challenges on 127.0.0.1 at those ports. Pebble keeps its
state (accounts, authorizations) for its whole life, so every test uses its own storage folder
and its own names (with a per-run random suffix). Without the env file the module is skipped.
"""

import datetime
import os
import re
import secrets
import signal
import stat
import sys
import threading
import time
import unittest

import harness
from harness import SLOW

ISSUE_TIMEOUT = 30 * SLOW  # acme-lab README: "about 30 s as the issuance timeout"
RUN_ID = secrets.token_hex(4)
TIMINGS = []  # (what, seconds), printed at the end of the module

MSG_ISSUED = "acme certificate issued"
MSG_LOADED = "acme certificate loaded from storage"
MSG_ORDER = "acme order"
MSG_FAILED = "acme order failed; the current certificate stays in service"
MSG_REFUSED = "TLS handshake refused: no certificate for this name yet"
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:?\d\d)$")

LAB = {}


def _env_file():
    state_dir = os.environ.get("ACME_LAB_STATE_DIR")
    return os.path.join(state_dir, "env") if state_dir else None


def read_lab_env(path):
    env = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                key, _, value = line.partition("=")
                env[key] = value
    return env


def setUpModule():
    path = _env_file()
    if not path or not os.path.isfile(path):
        raise unittest.SkipTest(
            "acme-lab (Pebble) is not running: %s not found. Run through CTest "
            "(ctest -R test_acme starts the acme_lab fixture) or start tests/tools/pebble.sh with "
            "the same ACME_LAB_* variables" % (path or "$ACME_LAB_STATE_DIR/env (unset)"))
    LAB.update(read_lab_env(path))
    missing = [k for k in ("ACME_LAB_DIRECTORY_URL", "ACME_LAB_CA_BUNDLE", "ACME_LAB_ISSUER_ROOT",
                           "ACME_LAB_HTTP01_PORT", "ACME_LAB_TLSALPN01_PORT") if not LAB.get(k)]
    if missing:
        raise AssertionError("%s lacks %s: %r" % (path, missing, LAB))
    for key in ("ACME_LAB_CA_BUNDLE", "ACME_LAB_ISSUER_ROOT"):
        if not os.path.isfile(LAB[key]):
            raise AssertionError("%s=%s is not a file" % (key, LAB[key]))


def tearDownModule():
    if TIMINGS:
        sys.stderr.write("\nACME timings (run %s):\n" % RUN_ID)
        for what, seconds in TIMINGS:
            sys.stderr.write("  %-58s %6.2f s\n" % (what, seconds))


def http01_port():
    return int(LAB["ACME_LAB_HTTP01_PORT"])


def tlsalpn01_port():
    return int(LAB["ACME_LAB_TLSALPN01_PORT"])


def issuer_root():
    return LAB["ACME_LAB_ISSUER_ROOT"]


def lifetime_seconds():
    return int(LAB.get("ACME_LAB_CERT_VALIDITY_SECONDS") or 157766400)


def fresh_name(prefix):
    """A name Pebble has never seen: <prefix>-<run id>-<random>.test."""
    return "%s-%s-%s.test" % (prefix, RUN_ID, secrets.token_hex(3))


def parse_rfc3339(text):
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


# --- log helpers -------------------------------------------------------------------------------


def log_events(fd, msg, name=None):
    return [o for o in fd.log_lines()
            if o.get("msg") == msg and (name is None or o.get("name") == name)]


def wait_log(fd, msg, name, timeout, fail_on=(MSG_FAILED,)):
    """Waits for a log line |msg| about |name|; fails at once if frontdoor exits or logs one of
    |fail_on| for that name. Returns the line (dict)."""
    deadline = time.monotonic() + timeout
    while True:
        found = log_events(fd, msg, name)
        if found:
            return found[0]
        for bad in fail_on:
            failed = log_events(fd, bad, name)
            if failed:
                raise AssertionError("waiting for %r for %s, got %r\n%s"
                                     % (msg, name, failed[0], fd.tail(6000)))
        if not fd.running():
            raise AssertionError("frontdoor exited (%s) while waiting for %r for %s\n%s"
                                 % (fd.proc.poll(), msg, name, fd.tail(6000)))
        if time.monotonic() >= deadline:
            raise AssertionError("no %r for %s within %ss\n%s"
                                 % (msg, name, timeout, fd.tail(6000)))
        time.sleep(0.1)


def serial_int(text):
    """A serial as logged (lowercase hex), as openssl prints it (serial=0A1B...) or as Python's
    getpeercert() gives it, as an int."""
    text = text.strip()
    if text.lower().startswith("serial="):
        text = text[7:]
    return int(text.replace(":", ""), 16)


# --- certificate inspection ---------------------------------------------------------------------


class Served:
    """What `openssl s_client -servername NAME` saw: rc, output, and the leaf's serial (int),
    issuer, subject and SAN text (from `openssl x509`)."""

    def __init__(self, rc, out, serial=None, issuer="", subject="", san=""):
        self.rc = rc
        self.out = out
        self.serial = serial
        self.issuer = issuer
        self.subject = subject
        self.san = san

    @property
    def verified(self):
        return "Verify return code: 0 (ok)" in self.out

    def __repr__(self):
        return ("Served(rc=%r, serial=%r, issuer=%r, subject=%r, san=%r)\n%s"
                % (self.rc, None if self.serial is None else "%x" % self.serial, self.issuer,
                   self.subject, self.san, self.out[-2500:]))


def s_client_leaf(port, name, ca=None, timeout=15):
    """openssl s_client -connect 127.0.0.1:port -servername name [-CAfile ca], then
    openssl x509 on the leaf it printed."""
    cmd = ["openssl", "s_client", "-connect", "127.0.0.1:%d" % port, "-servername", name]
    if ca:
        cmd += ["-CAfile", ca, "-verify_hostname", name]
    r = harness.run(cmd, timeout=timeout, input=b"")
    out = r.stdout.decode(errors="replace") + r.stderr.decode(errors="replace")
    m = re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----\n", out, re.S)
    short = re.sub(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----\n?", "[PEM]\n", out,
                   flags=re.S)
    short = re.sub(r"(?m)^\s+[0-9a-f]{4} - .*\n", "", short)
    if not m:
        return Served(r.returncode, short)
    x = harness.run(["openssl", "x509", "-noout", "-serial", "-issuer", "-subject",
                     "-ext", "subjectAltName"], input=m.group(0).encode(), timeout=timeout)
    if x.returncode != 0:
        raise AssertionError("openssl x509 failed: %r" % x.stderr)
    text = x.stdout.decode(errors="replace")
    serial = re.search(r"^serial=([0-9A-Fa-f]+)", text, re.M)
    issuer = re.search(r"^issuer=(.*)$", text, re.M)
    subject = re.search(r"^subject=(.*)$", text, re.M)
    san = re.search(r"X509v3 Subject Alternative Name:.*\n\s*(.*)", text)
    return Served(r.returncode, short, serial=int(serial.group(1), 16) if serial else None,
                  issuer=issuer.group(1).strip() if issuer else "",
                  subject=subject.group(1).strip() if subject else "",
                  san=san.group(1).strip() if san else "")


def https_serial_and_status(port, name, ca, path="/acme", timeout=10):
    """One request over a NEW TLS connection verified against |ca| for |name|:
    (serial int, status, x-upstream)."""
    with harness.tls_connect(port, name, ca, timeout=timeout) as s:
        serial = serial_int(s.getpeercert()["serialNumber"])
        s.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n"
                   % (path, name)).encode())
        status, headers, _ = harness.read_response(s, timeout=timeout)
        return serial, status, headers.get("x-upstream")


def find_stored(storage, name):
    """(chain.pem, key.pem) paths of |name| under <storage>/certificates/<ca>/<name>/."""
    root = os.path.join(storage, "certificates")
    found = []
    for ca in sorted(os.listdir(root)) if os.path.isdir(root) else []:
        folder = os.path.join(root, ca, name)
        if os.path.isdir(folder):
            found.append((os.path.join(folder, "chain.pem"), os.path.join(folder, "key.pem")))
    if len(found) != 1:
        raise AssertionError("expected one stored folder for %s under %s, found %r (tree: %r)"
                             % (name, root, found, list(os.walk(storage))))
    return found[0]


class AcmeTest(harness.ProxyTestCase):
    STATIC_NAME = "static-%s.test" % RUN_ID
    cert_names = [[STATIC_NAME]]

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        try:
            cls.up = cls.class_upstream("acme")
        except BaseException:
            cls.tearDownClass()
            raise

    def setUp(self):
        self.t0 = time.monotonic()

    def timing(self, what, since=None):
        seconds = time.monotonic() - (self.t0 if since is None else since)
        TIMINGS.append(("%s: %s" % (self.id().rsplit(".", 1)[-1], what), seconds))
        return seconds

    # --- configuration ---

    def acme_config(self, domains, challenge="http-01", tls_port=None, plain_port=None,
                    redirect=False, renew=None, storage=None, static=False):
        """A config: a TLS listener on tls_port (default: a free port), a plain listener on
        127.0.0.1:plain_port if given, tls.acme for |domains| with a fresh storage folder
        (returned, not created: frontdoor makes it), an admin listener. Returns
        (cfg, storage, AdminClient)."""
        tls_port = tls_port or harness.free_port()
        admin_port = harness.free_port()
        if storage is None:
            storage = os.path.join(self.tmp.path, "storage-" + secrets.token_hex(4))
        acme = {
            "directory": LAB["ACME_LAB_DIRECTORY_URL"],
            "email": "ops@frontdoor.test",
            "domains": list(domains),
            "challenge": challenge,
            "storage": storage,
            "ca_bundle": LAB["ACME_LAB_CA_BUNDLE"],
        }
        if renew:
            acme["renew"] = renew
        listen = [{"address": "127.0.0.1:%d" % tls_port, "tls": True}]
        if plain_port:
            plain = {"address": "127.0.0.1:%d" % plain_port}
            if redirect:
                plain["redirect_https"] = True
            listen.append(plain)
        tls = {"acme": acme}
        if static:
            tls["certificates"] = self.certs.config_list()
        cfg = {
            "listen": listen,
            "tls": tls,
            "upstreams": {"app": {"servers": [self.up.address]}},
            "routes": [{"match": {"path_prefix": "/"}, "upstream": "app"}],
            "admin": {"address": "127.0.0.1:%d" % admin_port},
            "log": {"level": "info", "access": True},
            "workers": 2,
        }
        return cfg, storage, harness.AdminClient("127.0.0.1:%d" % admin_port)

    # --- shared assertions ---

    def assert_issued_and_served(self, fd, port, name, issued):
        """The issued log line's fields, the served certificate (s_client and curl) and
        returns the Served leaf."""
        self.assertRegex(issued.get("serial", ""), r"^[0-9a-f]+$", issued)
        self.assertIn("Pebble", issued.get("issuer", ""), issued)
        self.assertRegex(issued.get("not_after", ""), RFC3339, issued)

        r = harness.curl("https://%s:%d/acme" % (name, port), ca=issuer_root())
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body, b"upstream acme /acme\n")
        self.assertEqual(r.headers.get("x-upstream"), "acme")

        leaf = s_client_leaf(port, name, ca=issuer_root())
        self.assertEqual(leaf.rc, 0, leaf)
        self.assertTrue(leaf.verified, leaf)
        self.assertIn("Pebble", leaf.issuer, leaf)
        self.assertIn("DNS:" + name, [s.strip() for s in leaf.san.split(",")], leaf)
        self.assertEqual(leaf.serial, serial_int(issued["serial"]), leaf)
        return leaf

    def assert_storage_modes(self, storage, name, serial=None):
        chain, key = find_stored(storage, name)
        self.assertEqual(stat.S_IMODE(os.stat(key).st_mode), 0o600, key)
        self.assertEqual(stat.S_IMODE(os.stat(chain).st_mode), 0o600, chain)
        accounts = os.path.join(storage, "accounts")
        account_keys = [os.path.join(d, "account.key") for d in
                        (os.path.join(accounts, x) for x in os.listdir(accounts))
                        if os.path.isfile(os.path.join(d, "account.key"))]
        self.assertEqual(len(account_keys), 1, list(os.walk(storage)))
        self.assertEqual(stat.S_IMODE(os.stat(account_keys[0]).st_mode), 0o600, account_keys[0])
        for dirpath, dirnames, filenames in os.walk(storage):
            self.assertEqual(stat.S_IMODE(os.stat(dirpath).st_mode), 0o700, dirpath)
            for f in filenames:
                path = os.path.join(dirpath, f)
                self.assertEqual(stat.S_IMODE(os.stat(path).st_mode) & 0o077, 0,
                                 "%s is readable by group or others" % path)
        # The stored chain is leaf + intermediate(s), its leaf is the served certificate and the
        # stored key is that certificate's key.
        with open(chain) as f:
            self.assertGreaterEqual(f.read().count("BEGIN CERTIFICATE"), 2, chain)
        if serial is not None:
            x = harness.run(["openssl", "x509", "-in", chain, "-noout", "-serial"])
            self.assertEqual(serial_int(x.stdout.decode()), serial, x)
        cert_pub = harness.run(["openssl", "x509", "-in", chain, "-noout", "-pubkey"])
        key_pub = harness.run(["openssl", "pkey", "-in", key, "-pubout"])
        self.assertEqual(cert_pub.returncode, 0, cert_pub)
        self.assertEqual(key_pub.returncode, 0, key_pub)
        self.assertEqual(cert_pub.stdout, key_pub.stdout, "key.pem does not match chain.pem")
        return chain, key

    def status_certificate(self, admin, name):
        for c in admin.status().get("certificates", []):
            if name in (c.get("names") or []):
                return c
        return None

    def assert_status_issued(self, admin, name, issued):
        """/status lists |name| from acme with the issued certificate's issuer and not_after,
        a next_renewal and no last_error (waits for the ACME thread to plan the renewal)."""
        last = [None]

        def planned():
            c = self.status_certificate(admin, name)
            last[0] = c
            return c if c and c.get("next_renewal") else None

        try:
            c = harness.wait_for(planned, 5 * SLOW, interval=0.1,
                                 what="/status next_renewal for %s" % name)
        except AssertionError as e:
            raise AssertionError("%s; last seen %r" % (e, last[0]))
        self.assertEqual(c["source"], "acme", c)
        self.assertIn("Pebble", c["issuer"], c)
        self.assertEqual(c["issuer"], issued["issuer"], c)
        self.assertIsInstance(c["not_after"], str, c)
        self.assertEqual(parse_rfc3339(c["not_after"]), parse_rfc3339(issued["not_after"]), c)
        self.assertRegex(c["next_renewal"], RFC3339, c)
        self.assertIsNone(c["last_error"], c)
        return c

    def issue(self, fd, name):
        """Waits for the order and the issuance of |name|; returns the issued log line."""
        t = time.monotonic()
        issued = wait_log(fd, MSG_ISSUED, name, ISSUE_TIMEOUT)
        self.timing("issuance of %s after listeners were up" % name, since=t)
        orders = log_events(fd, MSG_ORDER, name)
        self.assertTrue(orders, fd.tail())
        self.assertFalse(orders[0].get("renewal"), orders[0])
        wait_log(fd, "certificates installed", None, 5 * SLOW)
        return issued

    # --- tests ---

    def test_http01_issuance(self):
        name = fresh_name("h1")
        cfg, storage, admin = self.acme_config([name], challenge="http-01",
                                               plain_port=http01_port(), redirect=True)
        self.assertFalse(os.path.exists(storage))
        fd = self.frontdoor(cfg)
        port = harness.listen_ports(cfg)[0][1]
        issued = self.issue(fd, name)
        leaf = self.assert_issued_and_served(fd, port, name, issued)
        self.assert_storage_modes(storage, name, leaf.serial)
        c = self.assert_status_issued(admin, name, issued)
        # renew: auto for a 5-year (> 10 days) certificate: a third of the lifetime left, i.e.
        # about 2/3 of the lifetime after issuance; anyway well after now.
        now = datetime.datetime.now(datetime.timezone.utc)
        not_after = parse_rfc3339(c["not_after"])
        next_renewal = parse_rfc3339(c["next_renewal"])
        self.assertGreater(next_renewal, now + datetime.timedelta(days=1), c)
        self.assertLess(next_renewal, not_after, c)
        # Anything but a challenge on the plain listener is still redirected.
        r = harness.curl("http://%s:%d/x" % (name, http01_port()))
        self.assertEqual(r.status, 308, r)
        self.assertEqual(r.headers.get("location"), "https://%s:%d/x" % (name, port), r)
        # The CA validated through the plain listener (the TLS one is on a port it never dials).
        self.assertTrue(log_events(fd, "acme http-01 challenge answered"), fd.tail())
        self.assertEqual(log_events(fd, MSG_FAILED, name), [], fd.tail())
        self.assertEqual(fd.stop(), 0, fd.tail())
        self.timing("whole test")

    def test_tls_alpn01_issuance(self):
        name = fresh_name("alpn")
        port = tlsalpn01_port()
        cfg, storage, admin = self.acme_config([name], challenge="tls-alpn-01", tls_port=port)
        self.assertEqual(len(cfg["listen"]), 1)
        fd = self.frontdoor(cfg)
        issued = self.issue(fd, name)
        leaf = self.assert_issued_and_served(fd, port, name, issued)
        self.assert_storage_modes(storage, name, leaf.serial)
        self.assert_status_issued(admin, name, issued)
        self.assertTrue(log_events(fd, "acme tls-alpn-01 challenge answered", name), fd.tail())
        self.assertEqual(log_events(fd, MSG_FAILED, name), [], fd.tail())
        self.assertEqual(fd.stop(), 0, fd.tail())
        self.timing("whole test")

    def test_restart_reuses_stored_certificate(self):
        name = fresh_name("restart")
        cfg, storage, admin = self.acme_config([name], plain_port=http01_port())
        port = harness.listen_ports(cfg)[0][1]
        first = self.frontdoor(cfg)
        issued = self.issue(first, name)
        served = self.assert_issued_and_served(first, port, name, issued)
        key_path = find_stored(storage, name)[1]
        with open(key_path, "rb") as f:
            key_before = f.read()
        self.assertEqual(first.stop(signal.SIGTERM), 0, first.tail())

        t = time.monotonic()
        second = self.frontdoor(cfg)
        loaded = wait_log(second, MSG_LOADED, name, 10 * SLOW)
        self.timing("restart until the stored certificate was loaded", since=t)
        self.assertEqual(serial_int(loaded["serial"]), serial_int(issued["serial"]), loaded)
        again = s_client_leaf(port, name, ca=issuer_root())
        self.assertEqual(again.rc, 0, again)
        self.assertTrue(again.verified, again)
        self.assertEqual(again.serial, served.serial, again)
        r = harness.curl("https://%s:%d/acme" % (name, port), ca=issuer_root())
        self.assertEqual(r.status, 200, r)
        self.assert_status_issued(admin, name, issued)
        # Give the ACME thread time to (wrongly) order; it must not.
        time.sleep(2)
        self.assertEqual(log_events(second, MSG_ORDER, name), [], second.tail())
        self.assertEqual(log_events(second, MSG_ISSUED, name), [], second.tail())
        with open(key_path, "rb") as f:
            self.assertEqual(f.read(), key_before)
        self.assertEqual(second.stop(), 0, second.tail())
        self.timing("whole test")

    def test_hot_renewal_under_load(self):
        name = fresh_name("renew")
        # Longer than the lifetime: renew as soon as issued, again and again.
        renew = "%ds" % (lifetime_seconds() + 86400)
        cfg, storage, admin = self.acme_config([name], plain_port=http01_port(), renew=renew)
        port = harness.listen_ports(cfg)[0][1]
        fd = self.frontdoor(cfg)
        pid = fd.pid
        self.issue(fd, name)
        first_serial, status, _ = https_serial_and_status(port, name, issuer_root())
        self.assertEqual(status, 200)

        # A keep-alive connection opened on the first certificate keeps working throughout.
        keepalive = harness.KeepAliveLoad(port, issuer_root(), threads=1, duration=60,
                                          server_hostname=name, pause=0.05)
        keepalive.start()
        results = []  # (serial, status, error) per new-connection request
        lock = threading.Lock()
        stop = threading.Event()

        def worker():
            while not stop.is_set():
                try:
                    serial, status, _ = https_serial_and_status(port, name, issuer_root())
                    rec = (serial, status, None)
                except Exception as e:  # recorded; asserted below
                    rec = (None, 0, repr(e))
                with lock:
                    results.append(rec)

        threads = [threading.Thread(target=worker, daemon=True) for _ in range(3)]
        t_load = time.monotonic()
        for t in threads:
            t.start()
        curl_results = []
        changed_at = None
        deadline = t_load + 20 * SLOW
        try:
            while time.monotonic() < deadline:
                r = harness.curl("https://%s:%d/curl" % (name, port), ca=issuer_root())
                curl_results.append(r)
                with lock:
                    changed = [s for s, _, _ in results if s is not None and s != first_serial]
                if changed and changed_at is None:
                    changed_at = time.monotonic()
                # Keep the load on a little after the first swap to see more of them.
                if changed_at is not None and time.monotonic() - changed_at > 1.0:
                    break
                time.sleep(0.05)
        finally:
            stop.set()
            for t in threads:
                t.join(15)
            records = keepalive.stop()
        self.assertFalse([t for t in threads if t.is_alive()], "load threads still running")
        self.assertIsNotNone(changed_at, "the served serial stayed %x for %ss of load\n%s"
                             % (first_serial, 20 * SLOW, fd.tail(6000)))
        self.timing("load until the served serial changed", since=t_load)

        errors = [r for r in results if r[1] != 200]
        self.assertEqual(errors, [], "new-connection requests failed during renewals")
        self.assertEqual([r for r in curl_results if r.status != 200], [])
        ka_errors = [r for r in records if r[2] != 200]
        self.assertEqual(ka_errors, [], "keep-alive requests failed during renewals")
        self.assertGreater(len(records), 5, records)
        self.assertEqual(fd.pid, pid)
        fd.assert_running()

        issued_serials = {serial_int(o["serial"]) for o in log_events(fd, MSG_ISSUED, name)}
        served_serials = {s for s, _, _ in results}
        self.assertGreaterEqual(len(issued_serials), 2, fd.tail())
        self.assertGreaterEqual(len(served_serials), 2, served_serials)
        self.assertLessEqual(served_serials, issued_serials,
                             "served a serial that was never logged as issued")
        renewals = [o for o in log_events(fd, MSG_ORDER, name) if o.get("renewal")]
        self.assertTrue(renewals, fd.tail())
        sys.stderr.write("hot renewal: %d new-connection requests, %d curl, %d keep-alive, "
                         "%d serials served, %d issued\n"
                         % (len(results), len(curl_results), len(records), len(served_serials),
                            len(issued_serials)))
        # Shutting down in the middle of a renewal cycle is still a clean exit.
        t = time.monotonic()
        self.assertEqual(fd.stop(), 0, fd.tail())
        self.timing("SIGTERM to exit while renewing", since=t)
        self.timing("whole test")

    def test_pending_name_fails_while_static_name_is_served(self):
        name = fresh_name("pending")
        # tls-alpn-01, but the TLS listener is not where Pebble's validator connects: the
        # challenge cannot succeed.
        cfg, storage, admin = self.acme_config([name], challenge="tls-alpn-01", static=True)
        port = harness.listen_ports(cfg)[0][1]
        self.assertNotEqual(port, tlsalpn01_port())
        fd = self.frontdoor(cfg)
        failed = wait_log(fd, MSG_FAILED, name, ISSUE_TIMEOUT, fail_on=(MSG_ISSUED,))
        self.timing("until the order failed")
        # It failed at the challenge (Pebble's "Failed to connect to 127.0.0.1:PORT for the
        # tls-alpn-01 challenge"), not on the way to the CA.
        self.assertIn("tls-alpn-01", failed.get("reason", ""), failed)

        leaf = s_client_leaf(port, name, ca=issuer_root())
        self.assertNotEqual(leaf.rc, 0, leaf)
        self.assertIsNone(leaf.serial, leaf)
        wait_log(fd, MSG_REFUSED, name, 5 * SLOW)
        r = harness.curl("https://%s:%d/acme" % (name, port), ca=issuer_root())
        self.assertEqual(r.status, 0, r)
        self.assertNotEqual(r.rc, 0, r)

        # The static name is served as usual by the same listener.
        static = s_client_leaf(port, self.STATIC_NAME, ca=self.certs.ca)
        self.assertEqual(static.rc, 0, static)
        self.assertTrue(static.verified, static)
        self.assertIn("DNS:" + self.STATIC_NAME, static.san, static)
        r = harness.curl("https://%s:%d/acme" % (self.STATIC_NAME, port), ca=self.certs.ca)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body, b"upstream acme /acme\n")

        c = self.status_certificate(admin, name)
        self.assertIsNotNone(c, admin.status())
        self.assertEqual(c["source"], "acme", c)
        self.assertIsInstance(c["last_error"], str, c)
        self.assertEqual(c["last_error"], failed["reason"], c)
        # The retry is planned (backoff), so next_renewal is the next attempt, in the future.
        self.assertIsNotNone(c["next_renewal"], c)
        self.assertGreater(parse_rfc3339(c["next_renewal"]),
                           datetime.datetime.now(datetime.timezone.utc), c)
        s = self.status_certificate(admin, self.STATIC_NAME)
        self.assertIsNotNone(s, admin.status())
        self.assertEqual(s["source"], "file", s)
        self.assertIsNone(s["last_error"], s)
        self.assertEqual(log_events(fd, MSG_ISSUED, name), [])
        self.assertEqual(fd.stop(), 0, fd.tail())
        self.timing("whole test")


if __name__ == "__main__":
    unittest.main()
