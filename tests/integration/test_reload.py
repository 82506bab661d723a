"""Configuration reload on SIGHUP: atomic switch under load, invalid files rejected with
FILE:LINE:COL errors, listeners opened and closed, certificate files re-read, upstream health kept,
bounded memory over many reloads, the /status "config" object and the reload metrics, in-flight
transfers finishing on the old configuration, a graceful shutdown after a reload, and a file
that cannot be applied changing nothing.

Helpers that other tests could reuse (LogTail, Reloader, listener_inodes, served_serial, ...)
live here for now."""

import copy
import datetime
import hashlib
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import threading
import time
import unittest

import harness
from harness import MIB, SANITIZE, SLOW, curl_many, pattern_sha256

RELOAD_OK = "configuration reloaded"
RELOAD_FAILED = "configuration reload failed"
CHANGE_KEYS = ("listeners_added", "listeners_removed", "upstreams_added", "upstreams_removed",
               "upstreams_changed", "routes_changed", "certificates", "acme_domains_added",
               "acme_domains_removed")
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:?\d\d)$")
H2LOAD = "/usr/bin/h2load"


# --- helpers ---------------------------------------------------------------------------------


def config_text(config):
    """The text Frontdoor.write_config writes for a dict (JSON, which is YAML), or str as is."""
    if isinstance(config, str):
        return config
    return json.dumps(config, indent=2) + "\n"


def replace_file(path, data):
    """Atomically replaces |path| (write a temporary file beside it, then rename)."""
    tmp_path = path + ".tmp-%d" % os.getpid()
    with open(tmp_path, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)
    os.chmod(tmp_path, 0o600)
    os.replace(tmp_path, path)


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def parse_time(text):
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00").replace(" ", "T"))


class LogTail:
    """Reads a Frontdoor's stdout incrementally (the file can hold many access lines)."""

    def __init__(self, fd):
        self.fd = fd
        self.offset = 0
        self.partial = b""

    def new_lines(self):
        """JSON objects of the complete lines written since the previous call."""
        try:
            with open(self.fd.stdout_path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except OSError:
            return []
        self.offset += len(data)
        data = self.partial + data
        *complete, self.partial = data.split(b"\n")
        out = []
        for raw in complete:
            raw = raw.strip()
            if not raw:
                continue
            try:
                obj = json.loads(raw)
            except ValueError:
                continue
            if isinstance(obj, dict):
                out.append(obj)
        return out


class Reloader:
    """Rewrites a running Frontdoor's config file atomically, sends SIGHUP and waits for the one
    reload log line (msg starting with "configuration reload") the signal produces."""

    def __init__(self, fd):
        self.fd = fd
        self.tail = LogTail(fd)
        self.events = []  # every reload log line seen so far, in order
        self.latencies = []

    def write(self, config):
        replace_file(self.fd.config_path, config_text(config))

    def poll(self):
        for obj in self.tail.new_lines():
            if str(obj.get("msg", "")).startswith("configuration reload"):
                self.events.append(obj)
        return self.events

    def sighup(self, config=None, expect="success", timeout=10):
        """Writes |config| (dict or YAML text; None: leave the file as it is), sends SIGHUP and
        returns the reload line once it is logged. AssertionError on a timeout, on a second line
        for the same signal, or when the line is not the expected outcome."""
        self.fd.assert_running()
        self.poll()
        n = len(self.events)
        if config is not None:
            self.write(config)
        t0 = time.monotonic()
        self.fd.send_signal(signal.SIGHUP)
        deadline = t0 + timeout * SLOW
        while len(self.poll()) <= n:
            if not self.fd.running():
                raise AssertionError("frontdoor exited after SIGHUP\n" + self.fd.tail())
            if time.monotonic() > deadline:
                raise AssertionError("no reload log line within %ss of SIGHUP #%d\n%s"
                                     % (timeout * SLOW, n + 1, self.fd.tail()))
            time.sleep(0.01)
        self.latencies.append(time.monotonic() - t0)
        line = self.events[n]
        if len(self.events) > n + 1:
            raise AssertionError("one SIGHUP produced %d reload lines: %r"
                                 % (len(self.events) - n, self.events[n:]))
        want_msg, want_level = ((RELOAD_OK, "info") if expect == "success"
                                else (RELOAD_FAILED, "error"))
        if (line.get("msg"), line.get("level"), line.get("result")) != (want_msg, want_level,
                                                                        expect):
            raise AssertionError("SIGHUP #%d: want msg %r, level %r, result %r; got %r\n%s"
                                 % (n + 1, want_msg, want_level, expect, line, self.fd.tail()))
        return line


def socket_inodes(pid):
    """Inodes of the sockets process |pid| holds open."""
    out = set()
    base = "/proc/%d/fd" % pid
    for name in os.listdir(base):
        try:
            target = os.readlink(os.path.join(base, name))
        except OSError:
            continue
        m = re.match(r"socket:\[(\d+)\]", target)
        if m:
            out.add(m.group(1))
    return out


def listener_inodes(fd, port):
    """Inodes of the TCP listening sockets on |port| that frontdoor holds (one per worker with
    SO_REUSEPORT). The same set before and after a reload means the sockets were kept."""
    mine = socket_inodes(fd.pid)
    out = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                rows = f.readlines()[1:]
        except OSError:
            continue
        for row in rows:
            parts = row.split()
            if len(parts) < 10 or parts[3] != "0A":  # 0A = LISTEN
                continue
            if int(parts[1].rsplit(":", 1)[1], 16) == port and parts[9] in mine:
                out.add(parts[9])
    return out


def open_fd_count(fd):
    return len(os.listdir("/proc/%d/fd" % fd.pid))


def connect_outcome(port, timeout=2):
    """'refused' when nothing listens on 127.0.0.1:port, 'accepted', or 'error: ...'."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout):
            return "accepted"
    except ConnectionRefusedError:
        return "refused"
    except OSError as e:
        return "error: %r" % e


def not_served(port, ca, timeout=3):
    """True when a new connection to 127.0.0.1:port is refused, or accepted and closed without
    a response to a request (what test_shutdown accepts for "stopped accepting")."""
    try:
        raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    except ConnectionRefusedError:
        return True
    s = None
    try:
        try:
            s = harness.client_context(ca, ["http/1.1"]).wrap_socket(raw,
                                                                     server_hostname="localhost")
            s.settimeout(timeout)
            s.sendall(b"GET /late HTTP/1.1\r\nHost: localhost\r\n\r\n")
        except (ssl.SSLError, OSError):
            return True
        data, closed = harness.read_until_close(s, timeout)
        return closed and not data
    finally:
        if s is not None:
            s.close()
        raw.close()


def cert_serial(pem_path=None, der=None):
    """The serial number (hex, as openssl prints it) of a PEM file or DER bytes."""
    if der is not None:
        r = harness.run(["openssl", "x509", "-inform", "DER", "-noout", "-serial"], input=der)
    else:
        r = harness.run(["openssl", "x509", "-in", pem_path, "-noout", "-serial"])
    out = r.stdout.decode(errors="replace").strip()
    if r.returncode != 0 or not out.startswith("serial="):
        raise AssertionError("openssl x509 -serial: %r %r" % (out, r.stderr))
    return out[len("serial="):].upper()


def served_serial(port, server_hostname="localhost"):
    """Serial of the leaf certificate a new TLS handshake with 127.0.0.1:port gets."""
    ctx = ssl._create_unverified_context()
    with socket.create_connection(("127.0.0.1", port), timeout=5 * SLOW) as raw:
        with ctx.wrap_socket(raw, server_hostname=server_hostname) as s:
            der = s.getpeercert(binary_form=True)
    return cert_serial(der=der)


def ka_get(sock, path, host="localhost", timeout=10):
    """One GET on an open keep-alive TLS socket: (status, headers, body)."""
    sock.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (path, host)).encode())
    return harness.read_response(sock, timeout=timeout * SLOW)


class StreamingGet:
    """A GET on its own TLS connection whose body the test reads piece by piece."""

    def __init__(self, port, ca, path, host="localhost", timeout=30):
        self.timeout = timeout * SLOW
        self.sock = harness.tls_connect(port, server_hostname=host, ca=ca, timeout=self.timeout)
        self.sock.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (path, host)).encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise AssertionError("connection closed before the response head: %r" % self.buf)
            self.buf += chunk
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split()[1])
        self.headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            self.headers[name.strip().lower()] = value.strip()
        self.length = int(self.headers.get("content-length", "-1"))
        self.received = 0
        self.sha = hashlib.sha256()
        self._take(self.buf)
        self.buf = b""

    def _take(self, data):
        data = data[:max(0, self.length - self.received)]
        self.sha.update(data)
        self.received += len(data)

    def read(self, nbytes):
        """Reads up to nbytes more of the body (fewer at its end); False once the peer closed."""
        goal = min(self.length, self.received + nbytes)
        deadline = time.monotonic() + self.timeout
        while self.received < goal:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("body stalled at %d of %d bytes" % (self.received,
                                                                         self.length))
            self.sock.settimeout(left)
            chunk = self.sock.recv(min(MIB, goal - self.received))
            if not chunk:
                return False
            self._take(chunk)
        return True

    def read_all(self):
        while self.received < self.length:
            if not self.read(4 * MIB):
                break
        return self.received

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def h2load_summary(out):
    """Counts from h2load's summary: total, started, done, succeeded, failed, errored, timeout,
    2xx, 3xx, 4xx, 5xx (AssertionError when the summary is missing)."""
    m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                  r"(\d+) failed, (\d+) errored, (\d+) timeout", out)
    s = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    if not m or not s:
        raise AssertionError("no h2load summary in:\n%s" % out[-3000:])
    keys = ("total", "started", "done", "succeeded", "failed", "errored", "timeout")
    summary = dict(zip(keys, map(int, m.groups())))
    summary.update(zip(("2xx", "3xx", "4xx", "5xx"), map(int, s.groups())))
    return summary


# --- tests -----------------------------------------------------------------------------------


class ReloadTest(harness.ProxyTestCase):

    # The default leaf also covers other.test, used by host routes in test_08.
    cert_names = [["localhost", "other.test", "IP:127.0.0.1"]]

    def new_upstreams(self, *ids):
        return [self.upstream(uid) for uid in ids]

    def assert_changes(self, line, **expected):
        changes = line.get("changes")
        self.assertIsInstance(changes, dict, line)
        for key in CHANGE_KEYS:
            self.assertIn(key, changes, line)
        for key in CHANGE_KEYS:
            if key == "routes_changed":
                self.assertIsInstance(changes[key], bool, line)
            elif key == "certificates":
                self.assertIs(type(changes[key]), int, line)
            else:
                self.assertIsInstance(changes[key], list, line)
        for key, want in expected.items():
            got = changes[key]
            if isinstance(want, (list, tuple)):
                self.assertEqual(sorted(got), sorted(want), "changes.%s in %r" % (key, line))
            else:
                self.assertEqual(got, want, "changes.%s in %r" % (key, line))

    def assert_generation(self, line, generation):
        self.assertIs(type(line.get("generation")), int, line)
        self.assertEqual(line["generation"], generation, line)

    def assert_rfc3339(self, value, what):
        self.assertIsInstance(value, str, what)
        self.assertRegex(value, RFC3339, what)

    def check_diagnostics(self, path):
        """FILE:LINE:COL lines `frontdoor --check` prints for |path|."""
        env = dict(os.environ)
        env.update(harness.sanitizer_env())
        r = harness.run([harness.BIN, "--check", "-c", path], timeout=20 * SLOW, env=env)
        out = (r.stdout + r.stderr).decode(errors="replace")
        return [line.strip() for line in out.splitlines()
                if re.match(r"^%s:\d+:\d+: \S" % re.escape(path), line.strip())]

    def ids(self, port, path, n, ca=None, host="localhost"):
        results = curl_many([self.url(port, path, host)] * n, ca=ca or self.certs.ca,
                            timeout=20 * SLOW)
        for r in results:
            self.assertEqual(r.status, 200, r)
        return [r.headers.get("x-upstream") for r in results]

    # 1 ------------------------------------------------------------------------------------------

    def test_01_twenty_reloads_under_load(self):
        """20 SIGHUPs ~250 ms apart, alternating configs A and B (other servers, an extra route),
        while h2load keeps 8 keep-alive TLS connections busy: no failed or non-2xx request, the
        public listening sockets are kept, each reload is logged with the next generation and
        its changes, the next request on an old keep-alive connection follows the new routes,
        and after the last reload only the last config's servers answer."""
        if not os.access(H2LOAD, os.X_OK):
            self.fail("%s not found (Debian package nghttp2-client)" % H2LOAD)
        a1, a2, b1, b2, bee = self.new_upstreams("a1", "a2", "b1", "b2", "bee")
        port = harness.free_port()
        cfg_a = harness.tls_config(port, self.certs, {"app": [a1.address, a2.address]},
                                   access=False)
        cfg_b = harness.tls_config(
            port, self.certs, {"app": [b1.address, b2.address], "bee": [bee.address]},
            routes=[{"match": {"path_prefix": "/b/"}, "upstream": "bee"},
                    {"match": {"path_prefix": "/"}, "upstream": "app"}], access=False)
        fd = self.frontdoor(cfg_a)
        rl = Reloader(fd)
        inodes = listener_inodes(fd, port)
        self.assertTrue(inodes, "no listening socket of frontdoor found on port %d" % port)
        set_a, set_b = {a1.id, a2.id}, {b1.id, b2.id}

        probe = harness.tls_connect(port, ca=self.certs.ca, timeout=5 * SLOW)
        self.addCleanup(probe.close)
        status, headers, body = ka_get(probe, "/b/first")
        self.assertEqual(status, 200, body)
        self.assertIn(headers.get("x-upstream"), set_a, headers)

        duration = 20 if SANITIZE else 12  # covers 1 s + 20 x (reload + probes + 250 ms)
        out_path, err_path = self.tmp.join("h2load.out"), self.tmp.join("h2load.err")
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            load = subprocess.Popen(
                [H2LOAD, "--h1", "-c", "16", "-t", "1", "--rps", "100", "-D", str(duration),
                 "https://127.0.0.1:%d/load" % port, "https://127.0.0.1:%d/b/load" % port],
                stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        self.addCleanup(lambda: load.poll() is None and (load.kill(), load.wait(timeout=10)))
        time.sleep(1.0)

        for i in range(1, 21):
            to_b = i % 2 == 1
            line = rl.sighup(cfg_b if to_b else cfg_a)
            self.assert_generation(line, i + 1)
            if to_b:
                self.assert_changes(line, upstreams_added=["bee"], upstreams_removed=[],
                                    upstreams_changed=["app"], routes_changed=True,
                                    listeners_added=[], listeners_removed=[], certificates=1,
                                    acme_domains_added=[], acme_domains_removed=[])
            else:
                self.assert_changes(line, upstreams_added=[], upstreams_removed=["bee"],
                                    upstreams_changed=["app"], routes_changed=True,
                                    listeners_added=[], listeners_removed=[], certificates=1)
            # The next requests on a connection opened before the reload use the new config.
            status, headers, body = ka_get(probe, "/p%d" % i)
            self.assertEqual(status, 200, (i, body))
            self.assertIn(headers.get("x-upstream"), set_b if to_b else set_a,
                          "reload %d: %r" % (i, headers))
            status, headers, body = ka_get(probe, "/b/%d" % i)
            self.assertEqual(status, 200, (i, body))
            if to_b:
                self.assertEqual(headers.get("x-upstream"), bee.id, (i, headers))
            else:
                self.assertIn(headers.get("x-upstream"), set_a, (i, headers))
            time.sleep(0.25)
        self.assertIsNone(load.poll(), "h2load ended before the 20th reload: the load did not "
                                       "cover every reload (raise its -D)")
        try:
            load.wait(timeout=duration + 30 * SLOW)
        except subprocess.TimeoutExpired:
            self.fail("h2load did not finish")
        out = harness.read_text(out_path) + harness.read_text(err_path)
        summary = h2load_summary(out)
        print("\n20 reloads under load: h2load %r; SIGHUP-to-log max %.0f ms"
              % (summary, 1000 * max(rl.latencies)))
        self.assertEqual(load.returncode, 0, out[-3000:])
        self.assertGreater(summary["done"], 1000, summary)
        problems = [json.dumps(o) for o in fd.log_lines()
                    if o.get("level") in ("warn", "error")][:12]
        self.assertEqual((summary["failed"], summary["errored"], summary["timeout"]), (0, 0, 0),
                         "h2load saw failed requests across the reloads:\n%s\n"
                         "frontdoor's warnings and errors:\n%s"
                         % (out[-700:], "\n".join(problems)))
        self.assertEqual((summary["3xx"], summary["4xx"], summary["5xx"]), (0, 0, 0), out[-2000:])
        self.assertEqual(summary["succeeded"], summary["done"], summary)
        # When -D ends, h2load may count the status of a response it then does not count as
        # done (seen: 2xx one above done); every done request must still be a 2xx.
        self.assertGreaterEqual(summary["2xx"], summary["done"], summary)

        # The 20th reload went back to A: only a1/a2 answer, b1/b2/bee get nothing.
        before = {u.id: u.stats()["requests"] for u in (b1, b2, bee)}
        ids = self.ids(port, "/final", 10) + self.ids(port, "/b/final", 10)
        self.assertEqual(set(ids), set_a, ids)
        self.assertEqual({u.id: u.stats()["requests"] for u in (b1, b2, bee)}, before)
        self.assertEqual(listener_inodes(fd, port), inodes,
                         "the listening sockets of an unchanged address were replaced")
        self.assertEqual(fd.non_json_lines(), [])

    # 2 ------------------------------------------------------------------------------------------

    def test_02_invalid_file_keeps_running_config(self):
        """An unknown key, a YAML syntax error and a route to an unknown upstream are each
        rejected with one "configuration reload failed" line (FILE:LINE:COL errors, the same as
        --check prints, generation unchanged); the old upstream keeps serving; /status and
        /metrics count the failures. The fixed file then loads."""
        a, b = self.new_upstreams("inv-a", "inv-b")
        port, fd, admin = self.frontdoor_with_admin({"app": [a.address]})
        rl = Reloader(fd)
        path = fd.config_path
        cfg_b = copy.deepcopy(fd.config)
        cfg_b["upstreams"]["app"]["servers"] = [b.address]

        def still_old(tag, failures):
            ids = self.ids(port, "/old-%s" % tag, 4)
            self.assertEqual(ids, [a.id] * 4, "after the rejected file (%s)" % tag)
            self.assertEqual(b.stats()["requests"], 0)
            cfg = admin.status().get("config")
            self.assertIsInstance(cfg, dict, "no config object in /status")
            self.assertEqual(cfg.get("generation"), 1, cfg)
            self.assertEqual(cfg.get("reloads"), {"success": 0, "failure": failures}, cfg)
            self.assert_rfc3339(cfg.get("last_reload_failure"), "last_reload_failure")
            self.assertIsNone(cfg.get("last_reload_success"), cfg)
            self.assertIsInstance(cfg.get("last_reload_error"), str, cfg)
            self.assertTrue(cfg["last_reload_error"], cfg)
            m = harness.Metrics(admin.metrics())
            self.assertEqual(m.value("frontdoor_config_reloads_total", result="failure"),
                             failures, m.find("frontdoor_config_reloads_total"))
            self.assertIn(m.value("frontdoor_config_reloads_total", result="success"), (None, 0))
            self.assertEqual(m.value("frontdoor_config_generation"), 1)
            return cfg

        def assert_failure_line(line, what):
            self.assert_generation(line, 1)
            errors = line.get("errors")
            self.assertIsInstance(errors, list, line)
            self.assertTrue(errors, line)
            for e in errors:
                self.assertIsInstance(e, str, line)
                self.assertRegex(e, r"^%s:\d+:\d+: \S" % re.escape(path),
                                 "%s: errors must be FILE:LINE:COL: message" % what)
            for diag in self.check_diagnostics(path):
                self.assertIn(diag, errors, "%s: --check reports it, the reload does not" % what)
            self.assertNotIn("changes", line)
            return errors

        # (a) An unknown key inside upstream "app" (which also switches it to b).
        lines = config_text(cfg_b).split("\n")
        at = lines.index('    "app": {') + 1
        lines.insert(at, '      "max_failz": 3,')
        bad_key_line, bad_key_col = at + 1, 7
        line = rl.sighup("\n".join(lines), expect="failure")
        errors = assert_failure_line(line, "unknown key")
        want = "%s:%d:%d: " % (path, bad_key_line, bad_key_col)
        self.assertTrue(any(e.startswith(want) and "max_failz" in e for e in errors),
                        "want an error starting %r naming max_failz: %r" % (want, errors))
        cfg = still_old("key", 1)
        self.assertIn("max_failz", cfg["last_reload_error"], cfg)
        time.sleep(0.3)
        self.assertEqual(len(rl.poll()), 1, "one SIGHUP, one reload line: %r" % rl.events)

        # (b) A YAML syntax error: the flow mapping is never closed.
        text = config_text(cfg_b).rstrip()
        self.assertTrue(text.endswith("}"))
        line = rl.sighup(text[:-1] + "\n", expect="failure")
        assert_failure_line(line, "syntax error")
        still_old("syntax", 2)

        # (c) A route naming an upstream that does not exist.
        bad_ref = copy.deepcopy(cfg_b)
        bad_ref["routes"][0]["upstream"] = "nope"
        text = config_text(bad_ref)
        line = rl.sighup(text, expect="failure")
        errors = assert_failure_line(line, "bad reference")
        text_lines = text.split("\n")
        nope_line = next(i for i, l in enumerate(text_lines) if '"nope"' in l) + 1
        route_line = max(i for i, l in enumerate(text_lines[:nope_line]) if '"routes"' in l) + 1
        self.assertTrue(any("nope" in e and route_line <= int(e[len(path) + 1:].split(":")[0])
                            <= nope_line for e in errors),
                        "want an error on lines %d-%d naming 'nope': %r"
                        % (route_line, nope_line, errors))
        still_old("ref", 3)

        # The fixed file loads.
        line = rl.sighup(cfg_b)
        self.assert_generation(line, 2)
        self.assert_changes(line, upstreams_changed=["app"], upstreams_added=[],
                            upstreams_removed=[], routes_changed=False, listeners_added=[],
                            listeners_removed=[])
        served_a = a.stats()["requests"]
        self.assertEqual(self.ids(port, "/new", 6), [b.id] * 6)
        self.assertEqual(a.stats()["requests"], served_a)
        cfg = admin.status()["config"]
        self.assertEqual(cfg.get("generation"), 2, cfg)
        self.assertEqual(cfg.get("reloads"), {"success": 1, "failure": 3}, cfg)
        m = harness.Metrics(admin.metrics())
        self.assertEqual(m.value("frontdoor_config_reloads_total", result="success"), 1)
        self.assertEqual(m.value("frontdoor_config_reloads_total", result="failure"), 3)
        self.assertEqual(m.value("frontdoor_config_generation"), 2)

    # 3 ------------------------------------------------------------------------------------------

    def test_03_listeners_added_and_removed(self):
        """A reload from listeners {L1, L2} to {L1, L3}: L1 keeps its sockets and accepts all
        along, L3 opens, L2 refuses new connections while a keep-alive connection on L2 with a
        slow request in flight gets its whole 200 and is then closed by the proxy."""
        up, = self.new_upstreams("lst")
        p1, p2, p3 = harness.free_port(), harness.free_port(), harness.free_port()
        cfg_a = harness.tls_config(p1, self.certs, {"app": [up.address]})
        cfg_a["listen"].append({"address": "127.0.0.1:%d" % p2, "tls": True})
        cfg_b = copy.deepcopy(cfg_a)
        cfg_b["listen"][1] = {"address": "127.0.0.1:%d" % p3, "tls": True}
        fd = self.frontdoor(cfg_a)
        rl = Reloader(fd)
        self.assertEqual(connect_outcome(p3), "refused")
        inodes_p1 = listener_inodes(fd, p1)
        self.assertTrue(inodes_p1)

        conn = harness.tls_connect(p2, ca=self.certs.ca, timeout=10 * SLOW)
        self.addCleanup(conn.close)
        status, _, body = ka_get(conn, "/before")
        self.assertEqual((status, body), (200, b"upstream lst /before\n"))
        conn.sendall(b"GET /sleep?ms=1500 HTTP/1.1\r\nHost: localhost\r\n\r\n")
        harness.wait_for(lambda: up.path_count("/sleep") == 1, 5 * SLOW,
                         what="the slow request to reach the upstream")

        # Connections to L1 all through the reload: none may be refused.
        refused, attempts, stop = [], [0], threading.Event()

        def hammer():
            while not stop.is_set():
                attempts[0] += 1
                if connect_outcome(p1, timeout=1) != "accepted":
                    refused.append(time.monotonic())
                stop.wait(0.005)
        t = threading.Thread(target=hammer, daemon=True)
        t.start()
        try:
            time.sleep(0.1)
            line = rl.sighup(cfg_b)
            time.sleep(0.2)
        finally:
            stop.set()
            t.join(timeout=5)
        self.assert_generation(line, 2)
        self.assert_changes(line, listeners_added=["127.0.0.1:%d" % p3],
                            listeners_removed=["127.0.0.1:%d" % p2], upstreams_added=[],
                            upstreams_removed=[], upstreams_changed=[], routes_changed=False)
        self.assertEqual(refused, [], "%d of %d connections to the unchanged listener refused"
                         % (len(refused), attempts[0]))
        self.assertGreater(attempts[0], 10)
        self.assertEqual(listener_inodes(fd, p1), inodes_p1,
                         "the unchanged listener's sockets were replaced")

        # L3 serves, L2 refuses.
        r = self.get(p3, "/added")
        self.assertEqual((r.status, r.body), (200, b"upstream lst /added\n"), r)
        harness.wait_for(lambda: connect_outcome(p2) == "refused", 2 * SLOW,
                         what="the removed listener 127.0.0.1:%d to refuse connections" % p2)
        self.assertEqual(listener_inodes(fd, p2), set())
        r = self.get(p1, "/kept")
        self.assertEqual(r.status, 200, r)

        # The request in flight on L2 finishes; then the proxy closes that connection.
        status, headers, body = harness.read_response(conn, timeout=10 * SLOW)
        self.assertEqual((status, body), (200, b"slept"), headers)
        data, closed = harness.read_until_close(conn, timeout=3 * SLOW)
        self.assertTrue(closed, "the keep-alive connection on the removed listener stayed open")
        self.assertEqual(data, b"")

    # 4 ------------------------------------------------------------------------------------------

    def test_04_certificate_files_reread(self):
        """The cert/key files named in the config are replaced in place: a junk file is
        rejected (the old certificate stays in service), a new pair is served to new handshakes
        after SIGHUP, and a connection opened before keeps working."""
        c1 = harness.make_certs(self.tmp.join("cert-old"), [["localhost", "IP:127.0.0.1"]])
        c2 = harness.make_certs(self.tmp.join("cert-new"), [["localhost", "IP:127.0.0.1"]])
        leaf, new_leaf = c1.leaves[0], c2.leaves[0]
        old_serial, new_serial = cert_serial(leaf.cert), cert_serial(new_leaf.cert)
        self.assertNotEqual(old_serial, new_serial)
        up, = self.new_upstreams("crt")
        port = harness.free_port()
        cfg = harness.tls_config(port, c1, {"app": [up.address]})
        fd = self.frontdoor(cfg)
        rl = Reloader(fd)
        self.assertEqual(served_serial(port), old_serial)
        before = harness.tls_connect(port, ca=c1.ca, timeout=5 * SLOW)
        self.addCleanup(before.close)
        self.assertEqual(ka_get(before, "/one")[0], 200)

        # Not a certificate: rejected, the loaded one stays.
        replace_file(leaf.cert, "this is not a certificate\n")
        line = rl.sighup(expect="failure")
        self.assert_generation(line, 1)
        self.assertTrue(line.get("errors"), line)
        for e in line["errors"]:
            self.assertRegex(e, r"^%s:\d+:\d+: \S" % re.escape(fd.config_path), line)
        self.assertEqual(served_serial(port), old_serial)
        self.assertEqual(self.get(port, "/still", ca=c1.ca).status, 200)

        # The new pair at the same paths.
        replace_file(leaf.cert, read_bytes(new_leaf.cert))
        replace_file(leaf.key, read_bytes(new_leaf.key))
        line = rl.sighup()
        self.assert_generation(line, 2)
        self.assert_changes(line, certificates=1, listeners_added=[], listeners_removed=[],
                            upstreams_added=[], upstreams_removed=[], upstreams_changed=[],
                            routes_changed=False)
        self.assertEqual(served_serial(port), new_serial)
        r = self.get(port, "/new-ca", ca=c2.ca)
        self.assertEqual((r.status, r.body), (200, b"upstream crt /new-ca\n"), r)
        r = self.get(port, "/old-ca", ca=c1.ca)
        self.assertEqual(r.status, 0, "the old CA still verifies the served chain: %r" % r)
        status, _, body = ka_get(before, "/two")
        self.assertEqual((status, body), (200, b"upstream crt /two\n"))

    # 5 ------------------------------------------------------------------------------------------

    def test_05_health_state_kept_across_reload(self):
        """Two servers are "down": one stopped, one whose checks time out. A reload that changes
        only the routes keeps both down (for the second a new check would take 1 s to decide,
        during which an "unknown" server would get requests): /status says down right after the
        reload and no request reaches them."""
        good, sick, dead = self.new_upstreams("hk-good", "hk-sick", "hk-dead")
        check = {"path": "/healthz", "interval": "1s", "timeout": "1s", "healthy_after": 1,
                 "unhealthy_after": 1}
        group = {"servers": [good.address, sick.address, dead.address], "health_check": check,
                 "connect_timeout": "1s"}
        port, fd, admin = self.frontdoor_with_admin({"app": group})
        rl = Reloader(fd)
        for u in (good, sick, dead):
            admin.wait_health("app", u.address, "up", 3 * SLOW)
        sick.control(healthz_hang=1)
        dead.kill()
        for u in (sick, dead):
            down = admin.wait_health("app", u.address, "down", 5 * SLOW)
            self.assertIsNotNone(down.get("last_check"), down)
        sick_requests = sick.stats()["requests"]

        cfg = copy.deepcopy(fd.config)
        cfg["routes"].insert(0, {"match": {"path_prefix": "/extra/"}, "upstream": "app"})
        line = rl.sighup(cfg)
        st = admin.status()
        self.assert_generation(line, 2)
        self.assert_changes(line, routes_changed=True, upstreams_added=[], upstreams_removed=[],
                            upstreams_changed=[], listeners_added=[], listeners_removed=[])
        for u in (sick, dead):
            srv = admin.server("app", u.address, st)
            self.assertIsNotNone(srv, st)
            self.assertEqual(srv["health"], "down", "health state lost by the reload: %r" % srv)
            self.assertIs(srv["up"], False, srv)
            self.assertIsNotNone(srv["last_check"], srv)
            self.assertGreaterEqual(srv["consecutive_failures"], 1, srv)
        srv = admin.server("app", good.address, st)
        self.assertEqual(srv["health"], "up", srv)
        self.assertIsNotNone(srv["last_check"], srv)
        ids = self.ids(port, "/extra/x", 8) + self.ids(port, "/y", 8)
        self.assertEqual(ids, [good.id] * 16)
        self.assertEqual(sick.stats()["requests"], sick_requests)
        srv = admin.server("app", dead.address)
        self.assertEqual(srv["failures"], 0, "a request was sent to the stopped server: %r" % srv)
        time.sleep(0.5)
        self.assertEqual(admin.server("app", sick.address)["health"], "down")

    # 6 ------------------------------------------------------------------------------------------

    def test_06_memory_bounded_over_100_reloads(self):
        """100 reloads alternating A/B (other servers, an extra upstream, route and listener),
        with requests after each: RSS, open file descriptors and threads after reload 100 stay
        where they were after reload 10."""
        a1, a2, b1, bee = self.new_upstreams("m-a1", "m-a2", "m-b1", "m-bee")
        port, pa, pb = harness.free_port(), harness.free_port(), harness.free_port()
        cfg_a = harness.tls_config(port, self.certs, {"app": [a1.address, a2.address]},
                                   access=False)
        cfg_a["listen"].append({"address": "127.0.0.1:%d" % pa, "tls": True})
        cfg_b = harness.tls_config(
            port, self.certs, {"app": [b1.address], "bee": [bee.address]},
            routes=[{"match": {"path_prefix": "/b/"}, "upstream": "bee"},
                    {"match": {"path_prefix": "/"}, "upstream": "app"}], access=False)
        cfg_b["listen"].append({"address": "127.0.0.1:%d" % pb, "tls": True})
        fd = self.frontdoor(cfg_a, asan_extra="quarantine_size_mb=16")
        rl = Reloader(fd)
        conn = harness.tls_connect(port, ca=self.certs.ca, timeout=5 * SLOW)
        self.addCleanup(conn.close)
        samples = {}
        for i in range(1, 101):
            to_b = i % 2 == 1
            line = rl.sighup(cfg_b if to_b else cfg_a)
            self.assert_generation(line, i + 1)
            want = {b1.id} if to_b else {a1.id, a2.id}
            for path in ("/m%d" % i, "/b/m%d" % i):
                status, headers, _ = ka_get(conn, path)
                self.assertEqual(status, 200, (i, path))
                if to_b and path.startswith("/b/"):
                    self.assertEqual(headers.get("x-upstream"), bee.id, (i, headers))
                else:
                    self.assertIn(headers.get("x-upstream"), want, (i, path, headers))
            with harness.tls_connect(pb if to_b else pa, ca=self.certs.ca,
                                     timeout=5 * SLOW) as fresh:
                self.assertEqual(ka_get(fresh, "/fresh%d" % i)[0], 200, i)
            if i in (10, 100):
                time.sleep(0.2)
                samples[i] = (fd.rss_kib(), open_fd_count(fd), fd.threads())
        (rss10, fds10, thr10), (rss100, fds100, thr100) = samples[10], samples[100]
        print("\n100 reloads: VmRSS %d -> %d KiB, fds %d -> %d, threads %d -> %d; "
              "SIGHUP-to-log max %.0f ms"
              % (rss10, rss100, fds10, fds100, thr10, thr100, 1000 * max(rl.latencies)))
        harness.wait_for(lambda: connect_outcome(pb) == "refused", 2 * SLOW,
                         what="B's extra listener closed after the last reload")
        self.assertLessEqual(fds100, fds10 + 8, "file descriptors leak across reloads")
        self.assertLessEqual(thr100, thr10 + 1, "threads leak across reloads")
        if SANITIZE:
            # ASan's quarantine and shadow memory make RSS meaningless here; LeakSanitizer
            # checks at exit (Frontdoor.close) instead.
            print("RSS bound not checked under the sanitizers (LeakSanitizer checks at exit)")
        else:
            self.assertLess(rss100 - rss10, 8 * 1024,
                            "VmRSS grew by %d KiB between reload 10 and reload 100"
                            % (rss100 - rss10))

    # 7 ------------------------------------------------------------------------------------------

    def test_07_status_config_object_and_metrics(self):
        """/status "config" and the reload metrics at start, after a failed reload and after 2
        successful and 1 failed reload."""
        a, b = self.new_upstreams("st-a", "st-b")
        port, fd, admin = self.frontdoor_with_admin({"app": [a.address]})
        rl = Reloader(fd)

        def snapshot():
            cfg = admin.status().get("config")
            self.assertIsInstance(cfg, dict, "no config object in /status")
            for key in ("source", "generation", "loaded_at", "reloads", "last_reload_success",
                        "last_reload_failure", "last_reload_error"):
                self.assertIn(key, cfg, cfg)
            self.assertEqual(cfg["source"], fd.config_path, cfg)
            self.assert_rfc3339(cfg["loaded_at"], "loaded_at")
            self.assertIsInstance(cfg["reloads"], dict, cfg)
            return cfg, harness.Metrics(admin.metrics())

        def counters(m):
            return (m.value("frontdoor_config_reloads_total", result="success"),
                    m.value("frontdoor_config_reloads_total", result="failure"),
                    m.value("frontdoor_config_generation"))

        cfg0, m = snapshot()
        self.assertEqual(cfg0["generation"], 1, cfg0)
        self.assertEqual(cfg0["reloads"], {"success": 0, "failure": 0}, cfg0)
        for key in ("last_reload_success", "last_reload_failure", "last_reload_error"):
            self.assertIsNone(cfg0[key], cfg0)
        s, f, g = counters(m)
        self.assertIn(s, (None, 0), m.find("frontdoor_config_reloads_total"))
        self.assertIn(f, (None, 0), m.find("frontdoor_config_reloads_total"))
        self.assertEqual(g, 1, m.find("frontdoor_config_generation"))

        cfg_b = copy.deepcopy(fd.config)
        cfg_b["upstreams"]["app"]["servers"] = [b.address]
        time.sleep(1.1)  # loaded_at has at least second resolution: let it move
        self.assertEqual(rl.sighup(cfg_b)["generation"], 2)
        bad = copy.deepcopy(fd.config)
        bad["colour"] = "blue"
        self.assertEqual(rl.sighup(bad, expect="failure")["generation"], 2)
        cfg1, m = snapshot()
        self.assertEqual(cfg1["generation"], 2, cfg1)
        self.assertEqual(cfg1["reloads"], {"success": 1, "failure": 1}, cfg1)
        self.assertIsInstance(cfg1["last_reload_error"], str, cfg1)
        self.assertIn("colour", cfg1["last_reload_error"], cfg1)
        self.assertEqual(counters(m), (1, 1, 2))
        self.assertEqual(self.ids(port, "/b", 3), [b.id] * 3)

        cfg_a = copy.deepcopy(fd.config)
        self.assertEqual(rl.sighup(cfg_a)["generation"], 3)
        cfg2, m = snapshot()
        self.assertEqual(cfg2["generation"], 3, cfg2)
        self.assertEqual(cfg2["reloads"], {"success": 2, "failure": 1}, cfg2)
        self.assert_rfc3339(cfg2["last_reload_success"], "last_reload_success")
        self.assert_rfc3339(cfg2["last_reload_failure"], "last_reload_failure")
        self.assertTrue(cfg2["last_reload_error"] is None
                        or isinstance(cfg2["last_reload_error"], str), cfg2)
        self.assertGreater(parse_time(cfg2["loaded_at"]), parse_time(cfg0["loaded_at"]), cfg2)
        self.assertGreaterEqual(parse_time(cfg2["last_reload_success"]),
                                parse_time(cfg2["last_reload_failure"]), cfg2)
        self.assertLess(abs((parse_time(cfg2["loaded_at"])
                             - parse_time(cfg2["last_reload_success"])).total_seconds()), 1.0,
                        "loaded_at is the time of the last successful reload: %r" % cfg2)
        self.assertEqual(counters(m), (2, 1, 3))
        self.assertEqual(m.errors, [])
        reloads_type = m.types.get("frontdoor_config_reloads_total",
                                   m.types.get("frontdoor_config_reloads"))
        self.assertEqual(reloads_type, "counter", m.text)
        self.assertEqual(m.types.get("frontdoor_config_generation"), "gauge", m.text)
        self.assertEqual(self.ids(port, "/a", 3), [a.id] * 3)

    # 8 ------------------------------------------------------------------------------------------

    def test_08_downloads_in_flight_survive_reload(self):
        """Two 32 MiB downloads read slowly across a SIGHUP, one over a route the reload keeps
        and one over a route (and upstream) the reload removes: both arrive whole; the next
        request on each connection follows the new routes; new requests never reach the
        removed server."""
        keep, gone, fresh = self.new_upstreams("dl-keep", "dl-gone", "dl-new")
        port = harness.free_port()
        cfg_a = harness.tls_config(
            port, self.certs, {"app": [keep.address], "other": [gone.address]},
            routes=[{"match": {"host": "other.test", "path_prefix": "/"}, "upstream": "other"},
                    {"match": {"path_prefix": "/"}, "upstream": "app"}])
        cfg_b = harness.tls_config(
            port, self.certs, {"app": [keep.address], "fresh": [fresh.address]},
            routes=[{"match": {"path_prefix": "/fresh/"}, "upstream": "fresh"},
                    {"match": {"path_prefix": "/"}, "upstream": "app"}])
        fd = self.frontdoor(cfg_a)
        rl = Reloader(fd)
        n = 32 * MIB + 777
        kept = StreamingGet(port, self.certs.ca, "/big?bytes=%d" % n)
        self.addCleanup(kept.close)
        moved = StreamingGet(port, self.certs.ca, "/big?bytes=%d" % n, host="other.test")
        self.addCleanup(moved.close)
        for dl, uid in ((kept, keep.id), (moved, gone.id)):
            self.assertEqual(dl.status, 200, dl.headers)
            self.assertEqual(dl.headers.get("x-upstream"), uid, dl.headers)
            self.assertEqual(dl.length, n, dl.headers)
            self.assertTrue(dl.read(MIB))

        line = rl.sighup(cfg_b)
        self.assert_generation(line, 2)
        self.assert_changes(line, upstreams_added=["fresh"], upstreams_removed=["other"],
                            upstreams_changed=[], routes_changed=True)
        self.assertEqual(self.ids(port, "/fresh/x", 2), [fresh.id] * 2)
        self.assertEqual(self.ids(port, "/x", 2, host="other.test"), [keep.id] * 2)
        for _ in range(4):  # slowly: 4 x 1 MiB over 0.6 s, then the rest
            for dl in (kept, moved):
                self.assertTrue(dl.read(MIB))
            time.sleep(0.15)
        for dl, what in ((kept, "kept route"), (moved, "removed route")):
            got = dl.read_all()
            self.assertEqual(got, n, "%s: %d of %d bytes\n%s" % (what, got, n, fd.tail()))
            self.assertEqual(dl.sha.hexdigest(), pattern_sha256(n), what)

        status, headers, body = ka_get(kept.sock, "/after")
        self.assertEqual((status, body), (200, b"upstream dl-keep /after\n"), headers)
        status, headers, body = ka_get(moved.sock, "/after", host="other.test")
        self.assertEqual((status, headers.get("x-upstream")), (200, keep.id),
                         "the next request on a keep-alive connection must use the new routes")
        self.assertEqual(gone.stats()["requests"], 1, "the removed server got new requests")

    # 9 ------------------------------------------------------------------------------------------

    def test_09_sigterm_after_reload_drains(self):
        """After a reload that added a listener, SIGTERM: /ready turns 503 at once, neither the
        original nor the added listener accepts, a request in flight on the added listener
        finishes with 200, and frontdoor exits 0."""
        up, = self.new_upstreams("term")
        port, fd, admin = self.frontdoor_with_admin({"app": [up.address]},
                                                    shutdown_timeout="10s")
        rl = Reloader(fd)
        added = harness.free_port()
        cfg = copy.deepcopy(fd.config)
        cfg["listen"].append({"address": "127.0.0.1:%d" % added, "tls": True})
        line = rl.sighup(cfg)
        self.assert_changes(line, listeners_added=["127.0.0.1:%d" % added])
        conn = harness.tls_connect(added, ca=self.certs.ca, timeout=10 * SLOW)
        self.addCleanup(conn.close)
        conn.sendall(b"GET /sleep?ms=2000 HTTP/1.1\r\nHost: localhost\r\n\r\n")
        harness.wait_for(lambda: up.path_count("/sleep") == 1, 5 * SLOW,
                         what="the slow request to reach the upstream")
        self.assertEqual(admin.get("/ready")[0], 200)
        t0 = time.monotonic()
        fd.send_signal(signal.SIGTERM)

        def draining():
            try:
                return admin.get("/ready")[0] == 503
            except OSError:
                return False
        harness.wait_for(draining, 1.0 * SLOW, interval=0.02, what="/ready 503 after SIGTERM")
        for p in (port, added):
            self.assertTrue(not_served(p, self.certs.ca),
                            "a new connection to 127.0.0.1:%d was served after SIGTERM" % p)
        status, _, body = harness.read_response(conn, timeout=10 * SLOW)
        self.assertEqual((status, body), (200, b"slept"))
        code = fd.wait_exit(max(0.1, t0 + 8 * SLOW - time.monotonic()))
        if code is None:
            fd.kill()
            self.fail("frontdoor still running after the drain\n" + fd.tail())
        self.assertEqual(code, 0, fd.tail())


    # 10 -----------------------------------------------------------------------------------------

    def test_10_failed_apply_changes_nothing(self):
        """A file that is valid but cannot be applied (one of two added listeners is on a port
        already in use) fails as a whole: the other added listener is not opened, the upstream
        change in the same file is not applied, the generation stays, and the same file loads
        once the port is free."""
        a, b = self.new_upstreams("apply-a", "apply-b")
        port, fd, admin = self.frontdoor_with_admin({"app": [a.address]})
        rl = Reloader(fd)
        blocker = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(blocker.close)
        blocker.bind(("127.0.0.1", 0))  # no SO_REUSEADDR / SO_REUSEPORT
        blocker.listen(8)
        busy = blocker.getsockname()[1]
        free = harness.free_port()
        cfg = copy.deepcopy(fd.config)
        cfg["upstreams"]["app"]["servers"] = [b.address]
        cfg["listen"].append({"address": "127.0.0.1:%d" % free, "tls": True})
        cfg["listen"].append({"address": "127.0.0.1:%d" % busy, "tls": True})
        line = rl.sighup(cfg, expect="failure")
        self.assert_generation(line, 1)
        self.assertTrue(line.get("errors"), line)
        self.assertTrue(any(str(busy) in e for e in line["errors"]),
                        "an error should name 127.0.0.1:%d: %r" % (busy, line))
        # Like a validation error, it points at the listener in the file.
        at = re.compile(re.escape(fd.config_path) + r":\d+:\d+: .*Address already in use")
        self.assertTrue(any(at.match(e) for e in line["errors"]), line)
        time.sleep(0.2)
        self.assertEqual(connect_outcome(free), "refused",
                         "a listener of the rejected file was opened")
        self.assertEqual(self.ids(port, "/still", 4), [a.id] * 4)
        cfg_now = admin.status()["config"]
        self.assertEqual((cfg_now["generation"], cfg_now["reloads"]),
                         (1, {"success": 0, "failure": 1}), cfg_now)

        blocker.close()
        line = rl.sighup()
        self.assert_generation(line, 2)
        self.assert_changes(line, listeners_added=["127.0.0.1:%d" % free, "127.0.0.1:%d" % busy],
                            upstreams_changed=["app"])
        for p in (port, free, busy):
            r = self.get(p, "/now")
            self.assertEqual((r.status, r.headers.get("x-upstream")), (200, b.id), (p, r))


    # 11 -----------------------------------------------------------------------------------------

    def test_11_admin_address_moves_and_goes(self):
        """A reload that moves admin.address serves /status on the new port and stops the old
        one; a reload without the admin section closes it."""
        a, = self.new_upstreams("adm")
        port, fd, admin = self.frontdoor_with_admin({"app": [a.address]})
        old_port = admin.port
        new_port = harness.free_port()
        rl = Reloader(fd)
        cfg = copy.deepcopy(fd.config)
        cfg["admin"] = {"address": "127.0.0.1:%d" % new_port}
        rl.sighup(cfg)
        moved = harness.AdminClient("127.0.0.1:%d" % new_port)
        self.assertEqual(moved.status()["config"]["generation"], 2)
        self.assertEqual(connect_outcome(old_port), "refused")
        del cfg["admin"]
        rl.sighup(cfg)
        self.assertEqual(connect_outcome(new_port), "refused")
        self.assertEqual(self.ids(port, "/still", 2), [a.id] * 2)


    # 12 -----------------------------------------------------------------------------------------

    def test_13_session_tickets_survive_reload(self):
        """Ticket keys belong to the process, not to a configuration's TLS contexts: a session
        from before a reload resumes after it, on TLS 1.2 and 1.3."""
        up, = self.new_upstreams("tkt")
        port = harness.free_port()
        cfg = harness.tls_config(port, self.certs, {"app": [up.address]})
        fd = self.frontdoor(cfg)
        rl = Reloader(fd)
        sessions = {}
        for version in ("-tls1_2", "-tls1_3"):
            sessions[version] = self.tmp.join("session%s" % version)
            # A request, so that s_client stays until the server's TLS 1.3 ticket has come.
            rc, out = harness.s_client(port, "-CAfile", self.certs.ca, "-servername", "localhost",
                                       "-ign_eof", version, "-sess_out", sessions[version],
                                       stdin=b"GET / HTTP/1.1\r\nHost: localhost\r\n"
                                             b"Connection: close\r\n\r\n")
            self.assertEqual(rc, 0, out)
        cfg["routes"].insert(0, {"match": {"path_prefix": "/other/"}, "upstream": "app"})
        self.assert_generation(rl.sighup(cfg), 2)
        for version, path in sessions.items():
            rc, out = harness.s_client(port, "-CAfile", self.certs.ca, "-servername", "localhost",
                                       version, "-sess_in", path)
            self.assertEqual(rc, 0, out)
            self.assertIn("Reused, TLSv1.%s" % version[-1], out, version)

    def test_12_listener_changes_role_on_the_same_address(self):
        """A listener whose address stays but which turns from TLS into a redirect keeps its
        sockets; new connections get the new role."""
        a, = self.new_upstreams("role")
        port, fd, admin = self.frontdoor_with_admin({"app": [a.address]})
        rl = Reloader(fd)
        cfg = copy.deepcopy(fd.config)
        cfg["listen"][0] = {"address": "127.0.0.1:%d" % port, "redirect_https": True}
        line = rl.sighup(cfg)
        self.assertEqual(line["changes"]["listeners_changed"], ["127.0.0.1:%d" % port], line)
        r = harness.curl("http://127.0.0.1:%d/x" % port)
        self.assertEqual(r.status, 308, r)
        self.assertEqual(r.headers.get("location"), "https://127.0.0.1/x", r)


if __name__ == "__main__":
    unittest.main()
