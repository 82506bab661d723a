"""Two frontdoor replicas sharing one tls.acme.storage order a certificate once.

Each replica takes an exclusive flock on <storage>/locks/<ca>-<name>.lock around an order and,
once it holds the lock, first loads a certificate that another replica stored meanwhile
(acme/manager.cc Manager::process, acme/storage.cc Storage::lock).

Replica A and replica B have the same config apart from their ports: the same fresh name, the same
storage folder, http-01. Pebble's validator dials <name>:ACME_LAB_HTTP01_PORT; the test listens
there itself with a relay to A's plain listener (a load balancer that happens to pick A). The
relay holds the validator's connections until the test opens it, so A's order cannot finish
before B has started and is seen (/proc/locks) blocked on the lock that A holds. Then:

  * exactly one "acme order" for the name across both replicas, by A; A logs
    "acme certificate issued", B logs "acme certificate loaded from storage" with the same serial
    (after A's issuance) and never orders;
  * both replicas serve that serial for the name (openssl s_client -servername, verified against
    the lab's issuer root), and /status agrees;
  * Pebble saw one new order and one validation for the name and issued one certificate, with
    that serial ($ACME_LAB_STATE_DIR/log/pebble.log);
  * nobody holds or waits for the lock afterwards, and both replicas exit 0 on SIGTERM.

Runs under CTest's acme_lab fixture (the module name matches test_acme*); skipped without it.
"""

import os
import re
import secrets
import select
import socket
import threading
import time
import unittest

import acme_testlib as lab
import harness
from test_acme import s_client_leaf  # openssl s_client + openssl x509 on the served leaf

ISSUE_TIMEOUT = 30 * harness.SLOW
ORDER_TIMEOUT = 15 * harness.SLOW
LOCK_WAIT_TIMEOUT = 5 * harness.SLOW
# The relay never holds a validation longer than this (Pebble gives up after 15 s).
GATE_MAX_HOLD = 8
MSG_LOADED = "acme certificate loaded from storage"


class GatedRelay:
    """TCP relay 127.0.0.1:listen_port -> 127.0.0.1:target_port. Accepted connections wait until
    open() (at most GATE_MAX_HOLD s) before the relay connects to the target and pumps bytes."""

    def __init__(self, listen_port, target_port):
        self.target_port = target_port
        self.gate = threading.Event()
        self.stopping = threading.Event()
        self.accepted = 0
        self.lock = threading.Lock()
        self.threads = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.sock.bind(("127.0.0.1", listen_port))
        except OSError as e:
            self.sock.close()
            raise AssertionError("cannot listen on 127.0.0.1:%d (the http-01 port Pebble dials): "
                                 "%s" % (listen_port, e))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.acceptor = threading.Thread(target=self._accept, daemon=True)
        self.acceptor.start()

    def open(self):
        self.gate.set()

    def connections(self):
        with self.lock:
            return self.accepted

    def _accept(self):
        while not self.stopping.is_set():
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                self.accepted += 1
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            t.start()
            self.threads.append(t)

    def _serve(self, conn):
        with conn:
            deadline = time.monotonic() + GATE_MAX_HOLD
            while not self.gate.wait(0.1):
                if self.stopping.is_set() or time.monotonic() > deadline:
                    return
            try:
                up = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                return
            with up:
                peers = {conn: up, up: conn}
                open_ends = {conn, up}
                end = time.monotonic() + 30
                while open_ends and not self.stopping.is_set() and time.monotonic() < end:
                    readable, _, _ = select.select(list(open_ends), [], [], 0.2)
                    for s in readable:
                        try:
                            data = s.recv(65536)
                        except OSError:
                            data = b""
                        if data:
                            try:
                                peers[s].sendall(data)
                            except OSError:
                                return
                        else:
                            open_ends.discard(s)
                            try:
                                peers[s].shutdown(socket.SHUT_WR)
                            except OSError:
                                pass

    def close(self):
        self.stopping.set()
        self.gate.set()
        self.sock.close()
        self.acceptor.join(5)
        for t in self.threads:
            t.join(5)


def flock_holders(inode):
    """[(pid, blocked)] of FLOCK entries in /proc/locks on |inode| (blocked: a waiter, "->")."""
    out = []
    with open("/proc/locks") as f:
        for line in f:
            m = re.match(r"^\d+:\s+(->\s+)?FLOCK\s+\S+\s+\S+\s+(\d+)\s+[0-9a-f]+:[0-9a-f]+:(\d+)\s",
                         line)
            if m and int(m.group(3)) == inode:
                out.append((int(m.group(2)), bool(m.group(1))))
    return out


def has_open(pid, inode):
    """True when process |pid| has a file with |inode| open: a replica polling for the lock."""
    fd_dir = "/proc/%d/fd" % pid
    try:
        names = os.listdir(fd_dir)
    except OSError:
        return False
    for n in names:
        try:
            if os.stat(os.path.join(fd_dir, n)).st_ino == inode:
                return True
        except OSError:
            continue
    return False


class PebbleLog:
    """The part of $ACME_LAB_STATE_DIR/log/pebble.log written since construction."""

    def __init__(self, state_dir):
        self.path = os.path.join(state_dir, "log", "pebble.log")
        self.start = os.path.getsize(self.path) if os.path.isfile(self.path) else 0

    def since(self):
        with open(self.path, "rb") as f:
            f.seek(self.start)
            return f.read().decode("utf-8", "replace")


class AcmeReplicasTest(unittest.TestCase):

    def setUp(self):
        harness.require_binary()
        self.lab = lab.read_lab_env()
        if not self.lab:
            self.skipTest("acme-lab (Pebble) is not running (%s/env not found): run through "
                          "ctest, whose acme_lab fixture starts it" % lab.lab_state_dir())
        missing = [k for k in ("ACME_LAB_DIRECTORY_URL", "ACME_LAB_CA_BUNDLE",
                               "ACME_LAB_ISSUER_ROOT", "ACME_LAB_HTTP01_PORT")
                   if not self.lab.get(k)]
        self.assertEqual(missing, [], "the lab's env file lacks %r" % missing)
        if not os.path.exists("/proc/locks"):
            self.skipTest("/proc/locks is not available")
        self.tmp = harness.TempDir(prefix="fd-acme-replicas-")
        self.addCleanup(self.tmp.cleanup)

    def replica(self, label, up, name, storage):
        """(Frontdoor, tls port, AdminClient) for one replica, not started."""
        tls_port, plain_port, admin_port = (harness.free_port() for _ in range(3))
        cfg = lab.acme_config(tls_port, plain_port, admin_port, up, name,
                              self.lab["ACME_LAB_DIRECTORY_URL"], storage,
                              self.lab["ACME_LAB_CA_BUNDLE"], "auto")
        fd = harness.Frontdoor(self.tmp.path, cfg, name="frontdoor-" + label)
        self.addCleanup(fd.close)
        return fd, tls_port, plain_port, harness.AdminClient("127.0.0.1:%d" % admin_port)

    def lock_inode(self, storage, name):
        """The inode of <storage>/locks/<ca>-<name>.lock (<ca>: the single certificates/ folder)."""
        cas = os.listdir(os.path.join(storage, "certificates"))
        self.assertEqual(len(cas), 1, cas)
        path = os.path.join(storage, "locks", "%s-%s.lock" % (cas[0], name))
        self.assertTrue(os.path.isfile(path), (path, os.listdir(os.path.join(storage, "locks"))))
        return os.stat(path).st_ino

    def test_second_replica_loads_instead_of_ordering(self):
        name = "replica-%s.frontdoor.test" % secrets.token_hex(4)
        ca = self.lab["ACME_LAB_ISSUER_ROOT"]
        storage = self.tmp.join("shared-storage")
        pebble = PebbleLog(lab.lab_state_dir())

        up = harness.Upstream("replicas", log_dir=self.tmp.path).start()
        self.addCleanup(up.stop)
        a, a_port, a_plain, a_admin = self.replica("a", up, name, storage)
        b, b_port, _, b_admin = self.replica("b", up, name, storage)
        relay = GatedRelay(int(self.lab["ACME_LAB_HTTP01_PORT"]), a_plain)
        self.addCleanup(relay.close)

        # 1. A starts and orders: it holds the lock; its validation waits in the relay.
        a.start()
        lab.wait_line(a, lab.MSG_ORDER, ORDER_TIMEOUT, name=name, what="replica A's order")
        inode = self.lock_inode(storage, name)
        self.assertIn((a.pid, False), flock_holders(inode), "A orders without holding the lock")

        # 2. B starts on the same storage and waits for A's lock: it polls with LOCK_NB (so it
        # can stop on SIGTERM), which shows as the lock file open in B without a lock of B's.
        b.start()
        try:
            harness.wait_for(lambda: has_open(b.pid, inode) and
                             all(pid != b.pid for pid, _ in flock_holders(inode)),
                             LOCK_WAIT_TIMEOUT, interval=0.05,
                             what="replica B waiting for the lock (lock file open, not held)")
        except AssertionError as e:
            raise AssertionError("%s; locks on the inode: %r\n%s\n%s"
                                 % (e, flock_holders(inode), a.tail(), b.tail()))
        self.assertEqual(lab.acme_lines(a, lab.MSG_ISSUED, name), [],
                         "A finished before B was seen waiting: the relay did not hold it")
        b.assert_running()
        self.assertEqual(lab.acme_lines(b, lab.MSG_ORDER, name), [], b.tail())
        self.assertEqual(lab.acme_lines(b, MSG_LOADED, name), [], b.tail())

        # 3. Pebble may validate now: A gets its certificate, B loads it from the storage.
        relay.open()
        issued = lab.wait_line(a, lab.MSG_ISSUED, ISSUE_TIMEOUT, name=name,
                               what="replica A's certificate")
        loaded = lab.wait_line(b, MSG_LOADED, 10 * harness.SLOW, name=name,
                               what="replica B loading A's certificate")
        self.assertGreater(relay.connections(), 0, "Pebble never dialled the http-01 port")
        serial = int(issued["serial"], 16)
        self.assertEqual(int(loaded["serial"], 16), serial, (issued, loaded))
        self.assertGreaterEqual(lab.line_time(loaded), lab.line_time(issued) - 0.001,
                                (issued, loaded))
        self.assertTrue(lab.acme_lines(a, "acme http-01 challenge answered"), a.tail())

        # Give both ACME threads time to (wrongly) order again.
        time.sleep(2)
        for fd, orders, issues, loads in ((a, 1, 1, 0), (b, 0, 0, 1)):
            fd.assert_running()
            self.assertEqual(len(lab.acme_lines(fd, lab.MSG_ORDER, name)), orders, fd.tail(6000))
            self.assertEqual(len(lab.acme_lines(fd, lab.MSG_ISSUED, name)), issues, fd.tail(6000))
            self.assertEqual(len(lab.acme_lines(fd, MSG_LOADED, name)), loads, fd.tail(6000))
            self.assertEqual(lab.acme_lines(fd, lab.MSG_FAILED, name), [], fd.tail(6000))

        # 4. Both serve the one certificate, verified for the name, and report it in /status.
        for label, port in (("A", a_port), ("B", b_port)):
            leaf = s_client_leaf(port, name, ca=ca)
            self.assertEqual(leaf.rc, 0, (label, leaf))
            self.assertTrue(leaf.verified, (label, leaf))
            self.assertIn("DNS:" + name, [s.strip() for s in leaf.san.split(",")], (label, leaf))
            self.assertEqual(leaf.serial, serial, (label, leaf))
        for label, admin in (("A", a_admin), ("B", b_admin)):
            c = lab.status_certificate(admin, name)
            self.assertIsNotNone(c, (label, admin.status()))
            self.assertEqual(c["source"], "acme", (label, c))
            self.assertEqual(lab.parse_time(c["not_after"]), lab.parse_time(issued["not_after"]),
                             (label, c, issued))
            self.assertIsNone(c["last_error"], (label, c))

        # 5. The CA saw one order, one validation for the name, one certificate.
        log = pebble.since()
        # Orders created, not newOrder requests: Pebble rejects 5% of nonces, and a rejected
        # request is sent again with the fresh nonce.
        self.assertEqual(len(re.findall(r'Added order "[^"]+" to the db', log)), 1, log[-4000:])
        self.assertEqual(log.count('Pulled a task from the Tasks queue: &va.vaTask{'
                                   'Identifier:acme.Identifier{Type:"dns", Value:"%s"}' % name),
                         1, log[-4000:])
        pebble_serials = [int(s, 16) for s in
                          re.findall(r"Issued certificate serial ([0-9a-fA-F]+) for order", log)]
        self.assertEqual(pebble_serials, [serial], log[-4000:])

        # 6. The lock is free again; both exit cleanly.
        harness.wait_for(lambda: flock_holders(inode) == [], 5 * harness.SLOW, interval=0.1,
                         what="the lock to be released: %r" % (flock_holders(inode),))
        self.assertEqual(b.stop(), 0, b.tail())
        self.assertEqual(a.stop(), 0, a.tail())


if __name__ == "__main__":
    unittest.main()
