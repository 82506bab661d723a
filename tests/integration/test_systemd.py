"""systemd integration: deploy/frontdoor.service is a valid unit with the directives the README
promises, deploy/frontdoor.sysusers parses, and the real binary speaks the sd_notify protocol
(READY=1 once it serves, RELOADING=1 then READY=1 around a SIGHUP, STOPPING=1 on SIGTERM)."""

import os
import re
import shutil
import signal
import socket
import struct
import time
import unittest

import harness
from harness import SLOW

UNIT = os.path.join(harness.SOURCE_DIR, "deploy", "frontdoor.service")
SYSUSERS = os.path.join(harness.SOURCE_DIR, "deploy", "frontdoor.sysusers")


def parse_unit(text):
    """{section: [(key, value)]} of a unit file (comments dropped; no line continuations)."""
    sections = {}
    current = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
            continue
        key, sep, value = line.partition("=")
        if not sep or current is None:
            raise AssertionError("not a KEY=VALUE line inside a section: %r" % raw)
        current.append((key.strip(), value.strip()))
    return sections


def seconds(value):
    """A unit-file time span such as "20s", "1min 30s" or "20" (seconds), in seconds."""
    units = {"": 1, "s": 1, "sec": 1, "min": 60, "m": 60, "ms": 0.001, "h": 3600}
    total = 0.0
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", value)
    if not parts:
        raise AssertionError("not a time span: %r" % value)
    for number, unit in parts:
        total += float(number) * units[unit]
    return total


class UnitFileTest(unittest.TestCase):
    """The unit file and the sysusers snippet, checked without running systemd."""

    @classmethod
    def setUpClass(cls):
        with open(UNIT) as f:
            cls.text = f.read()
        cls.unit = parse_unit(cls.text)

    def values(self, section, key):
        return [v for k, v in self.unit.get(section, []) if k == key]

    def value(self, section, key):
        found = self.values(section, key)
        self.assertEqual(len(found), 1, "[%s] %s= should appear once: %r" % (section, key, found))
        return found[0]

    def test_required_directives(self):
        self.assertEqual(self.value("Service", "Type"), "notify")
        self.assertRegex(self.value("Service", "ExecReload"), r"^/bin/kill\s+-HUP\s+\$MAINPID$")
        self.assertEqual(self.value("Service", "Restart"), "on-failure")
        self.assertIn("CAP_NET_BIND_SERVICE", self.value("Service", "AmbientCapabilities").split())
        self.assertEqual(self.value("Service", "CapabilityBoundingSet"), "CAP_NET_BIND_SERVICE")
        user = self.value("Service", "User")
        self.assertNotIn(user, ("", "root", "0"), "the service must not run as root")
        self.assertEqual(self.value("Service", "StateDirectory"), "frontdoor")
        self.assertEqual(self.value("Service", "ProtectSystem"), "strict")
        self.assertEqual(self.value("Service", "NoNewPrivileges"), "yes")
        self.assertEqual(self.value("Service", "KillSignal"), "SIGTERM")
        self.assertEqual(self.value("Install", "WantedBy"), "multi-user.target")
        exec_start = self.value("Service", "ExecStart").split()
        self.assertEqual(exec_start[0], "/usr/local/bin/frontdoor")
        self.assertEqual(exec_start[1:], ["-c", "/etc/frontdoor/frontdoor.yaml"])

    def test_stop_timeout_exceeds_default_shutdown_timeout(self):
        # systemd sends SIGKILL after TimeoutStopSec; the drain may take shutdown_timeout (10s).
        self.assertGreater(seconds(self.value("Service", "TimeoutStopSec")), 10)

    def test_sysusers_creates_the_unit_user(self):
        user = self.value("Service", "User")
        with open(SYSUSERS) as f:
            entries = [line.split() for line in f
                       if line.strip() and not line.lstrip().startswith("#")]
        self.assertIn(["u", user], [e[:2] for e in entries], entries)
        if shutil.which("systemd-sysusers") is None:
            return
        tmp = harness.TempDir(prefix="fd-sysusers-")
        self.addCleanup(tmp.cleanup)
        r = harness.run(["systemd-sysusers", "--root=" + tmp.path, "--dry-run", SYSUSERS])
        out = (r.stdout + r.stderr).decode(errors="replace")
        self.assertEqual(r.returncode, 0, out)
        self.assertIn("Creating user '%s'" % user, out)

    def test_systemd_analyze_verify(self):
        analyze = shutil.which("systemd-analyze")
        if analyze is None:
            self.skipTest("systemd-analyze not installed (Debian package systemd)")
        harness.require_binary()
        tmp = harness.TempDir(prefix="fd-unit-")
        self.addCleanup(tmp.cleanup)
        # verify checks that ExecStart= is executable, and /usr/local/bin/frontdoor is not
        # installed here: point it at the binary under test.
        text, n = re.subn(r"(?m)^ExecStart=\S+", lambda _: "ExecStart=" + harness.BIN,
                          self.text)
        self.assertEqual(n, 1)
        copy = tmp.join("frontdoor.service")
        with open(copy, "w") as f:
            f.write(text)
        r = harness.run([analyze, "verify", copy], timeout=60)
        out = (r.stdout + r.stderr).decode(errors="replace")
        # Unknown keys and bad values are only warnings (exit 0), so the output counts too.
        # Lines about other units installed on this machine are not ours to judge.
        ours = [line for line in out.splitlines() if "frontdoor.service" in line]
        self.assertEqual(r.returncode, 0, out)
        self.assertEqual(ours, [], out)


class InstallTest(unittest.TestCase):
    """`cmake --install` lays out a VM: binary, unit pointing at it, sysusers entry, and an
    example config that passes --check and is never written over."""

    @classmethod
    def setUpClass(cls):
        harness.require_binary()
        cls.build_dir = os.path.dirname(os.path.abspath(harness.BIN))
        if not os.path.exists(os.path.join(cls.build_dir, "cmake_install.cmake")):
            raise unittest.SkipTest("FRONTDOOR_BIN is not in a CMake build tree")

    def install(self, destdir, prefix="/opt/fd"):
        env = dict(os.environ, DESTDIR=destdir)
        r = harness.run(["cmake", "--install", self.build_dir, "--prefix", prefix],
                        timeout=120, env=env)
        out = (r.stdout + r.stderr).decode(errors="replace")
        self.assertEqual(r.returncode, 0, out)
        return out

    def test_install_layout(self):
        tmp = harness.TempDir(prefix="fd-install-")
        self.addCleanup(tmp.cleanup)
        self.install(tmp.path)
        binary = tmp.join("opt", "fd", "bin", "frontdoor")
        unit_path = tmp.join("opt", "fd", "lib", "systemd", "system", "frontdoor.service")
        sysusers = tmp.join("opt", "fd", "lib", "sysusers.d", "frontdoor.conf")
        config = tmp.join("etc", "frontdoor", "frontdoor.yaml")
        for path in (binary, unit_path, sysusers, config):
            self.assertTrue(os.path.isfile(path), path)
        self.assertTrue(os.access(binary, os.X_OK))

        with open(unit_path) as f:
            unit = parse_unit(f.read())
        exec_start = [v for k, v in unit["Service"] if k == "ExecStart"]
        self.assertEqual(exec_start, ["/opt/fd/bin/frontdoor -c /etc/frontdoor/frontdoor.yaml"])

        env = dict(os.environ, **harness.sanitizer_env())
        env.pop("FRONTDOOR_DOMAIN", None)
        r = harness.run([binary, "--check", "-c", config], env=env)
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"FRONTDOOR_DOMAIN is not set", r.stderr)
        env["FRONTDOOR_DOMAIN"] = "example.com"
        r = harness.run([binary, "--check", "-c", config], env=env)
        self.assertEqual(r.returncode, 0, r.stderr)

        with open(config, "a") as f:
            f.write("# edited by the operator\n")
        out = self.install(tmp.path)
        self.assertIn("Kept: " + config, out)
        with open(config) as f:
            self.assertTrue(f.read().endswith("# edited by the operator\n"))


class NotifySocket:
    """An AF_UNIX datagram socket standing in for systemd's notification socket. SO_PASSCRED
    makes the kernel attach the sender's pid, which systemd (NotifyAccess=main) checks."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.bind(path)
        self.received = []  # (pid, {key: value}, raw text), in arrival order

    def close(self):
        self.sock.close()

    def receive(self, timeout):
        """The next datagram as (pid, fields, text), or None after timeout seconds."""
        self.sock.settimeout(max(0.001, timeout))
        try:
            data, ancdata, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(12))
        except (socket.timeout, TimeoutError):
            return None
        pid = None
        for level, kind, payload in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                pid, _, _ = struct.unpack("iII", payload[:12])
        text = data.decode(errors="replace")
        fields = {}
        for line in text.split("\n"):
            if "=" in line:
                key, _, value = line.partition("=")
                fields[key] = value
        message = (pid, fields, text)
        self.received.append(message)
        return message

    def wait(self, key, value, timeout, fd):
        """Receives until a datagram has key=value; returns it. AssertionError on timeout or
        when frontdoor exits first."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("no %s=%s within %.1fs; received %r\n%s"
                                     % (key, value, timeout, self.received, fd.tail()))
            message = self.receive(min(left, 0.2))
            if message is not None and message[1].get(key) == value:
                return message
            if message is None and not fd.running():
                raise AssertionError("frontdoor exited (%s) before sending %s=%s; received %r\n%s"
                                     % (fd.proc.poll(), key, value, self.received, fd.tail()))


class NotifyProtocolTest(harness.ProxyTestCase):
    """The real binary with NOTIFY_SOCKET set, as systemd starts it for Type=notify."""

    _seq = 0

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        try:
            cls.up = cls.class_upstream("sd")
        except BaseException:
            cls.tearDownClass()
            raise

    def start_notified(self):
        """(port, Frontdoor, NotifySocket) once READY=1 has arrived (the first message)."""
        NotifyProtocolTest._seq += 1
        # Short: an AF_UNIX path has at most 107 bytes.
        notify = NotifySocket(self.tmp.join("notify%d.sock" % NotifyProtocolTest._seq))
        self.addCleanup(notify.close)
        port = harness.free_port()
        fd = self.frontdoor(harness.tls_config(port, self.certs, {"app": [self.up.address]}),
                            start=False, env={"NOTIFY_SOCKET": notify.path})
        fd.launch()
        pid, fields, text = notify.wait("READY", "1", 10 * SLOW, fd)
        self.assertEqual(pid, fd.pid, "READY=1 must come from the main process (NotifyAccess=main)")
        self.assertIn("STATUS", fields, text)
        early = [m for m in notify.received[:-1] if {"RELOADING", "STOPPING"} & set(m[1])]
        self.assertEqual(early, [], "state changes before READY=1")
        return port, fd, notify

    def assert_no_notify_errors(self, fd):
        errors = [o for o in fd.log_lines() if "sd_notify" in str(o.get("msg", ""))]
        self.assertEqual(errors, [], fd.tail())

    def assert_serves(self, port, fd, path):
        r = self.get(port, path, timeout=10 * SLOW)
        self.assertEqual((r.status, r.body), (200, ("upstream sd %s\n" % path).encode()),
                         "%r\n%s" % (r, fd.tail()))

    def assert_reload_cycle(self, notify, fd, t_signal):
        """RELOADING=1 (stamped after the signal) and then READY=1 arrive, from the main pid."""
        pid, fields, text = notify.wait("RELOADING", "1", 10 * SLOW, fd)
        self.assertEqual(pid, fd.pid)
        self.assertNotIn("READY", fields, "READY=1 must follow, not come with, RELOADING=1")
        self.assertRegex(fields.get("MONOTONIC_USEC", ""), r"^\d+$", text)
        # CLOCK_MONOTONIC, which time.monotonic() reads on Linux: taken after the signal.
        stamp = int(fields["MONOTONIC_USEC"]) / 1e6
        self.assertGreaterEqual(stamp, t_signal - 0.001, text)
        self.assertLessEqual(stamp, time.monotonic() + 0.001, text)
        pid, _, _ = notify.wait("READY", "1", 10 * SLOW, fd)
        self.assertEqual(pid, fd.pid)

    def test_ready_reload_and_stopping(self):
        port, fd, notify = self.start_notified()
        # READY=1 means the listeners accept: no wait before the first request.
        self.assert_serves(port, fd, "/after-ready")

        t_signal = time.monotonic()
        fd.send_signal(signal.SIGHUP)
        self.assert_reload_cycle(notify, fd, t_signal)
        fd.assert_running()
        self.assert_serves(port, fd, "/after-reload")

        fd.send_signal(signal.SIGTERM)
        pid, _, _ = notify.wait("STOPPING", "1", 10 * SLOW, fd)
        self.assertEqual(pid, fd.pid)
        code = fd.wait_exit(15 * SLOW)
        if code is None:
            fd.kill()
            self.fail("frontdoor still running 15s after SIGTERM\n" + fd.tail())
        self.assertEqual(code, 0, fd.tail())
        self.assert_no_notify_errors(fd)

    def test_rejected_reload_still_ends_with_ready(self):
        # systemd shows "reloading" from RELOADING=1 until READY=1, so a config that fails
        # validation (the old one stays in force) must end the cycle too.
        port, fd, notify = self.start_notified()
        with open(fd.config_path, "w") as f:
            f.write("listen: [\n")
        t_signal = time.monotonic()
        fd.send_signal(signal.SIGHUP)
        self.assert_reload_cycle(notify, fd, t_signal)
        fd.assert_running()
        self.assert_serves(port, fd, "/old-config")
        self.assert_no_notify_errors(fd)

    def test_no_notify_socket_no_change(self):
        # Without NOTIFY_SOCKET (not under systemd) frontdoor starts and stops as before.
        port = harness.free_port()
        fd = self.frontdoor(harness.tls_config(port, self.certs, {"app": [self.up.address]}),
                            start=False)
        fd.env.pop("NOTIFY_SOCKET", None)  # in case the tests themselves run under systemd
        fd.start()
        self.assert_serves(port, fd, "/plain")
        self.assertEqual(fd.stop(), 0, fd.tail())
        self.assert_no_notify_errors(fd)


if __name__ == "__main__":
    unittest.main()
