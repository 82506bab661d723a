"""`user:` when started as root: frontdoor binds, then becomes that user for good (every
thread), keeps only CAP_NET_BIND_SERVICE (so a reload can still open a port below 1024), hands
it the ACME storage, and reads certificate keys as that user: a key only root can read stops
the start with a clear error."""

import os
import pwd
import re
import socket
import unittest

import harness
from harness import SLOW

USER = "nobody"
CAP_NET_BIND_SERVICE = 1 << 10


def proc_status(pid, task=None):
    path = "/proc/%d/task/%d/status" % (pid, task) if task else "/proc/%d/status" % pid
    with open(path) as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


def free_low_port():
    for port in range(700, 1000):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    raise unittest.SkipTest("no free port below 1000")


@unittest.skipUnless(os.geteuid() == 0, "needs root: frontdoor must start as root to drop it")
class PrivilegesTest(harness.ProxyTestCase):

    def setUp(self):
        super().setUp()
        self.nobody = pwd.getpwnam(USER)
        # The config and certificate files are read again as nobody (reloads, and the keys
        # once the user is switched): let it reach them, as an installation would.
        for path in (self.tmp.path, self.tmp.join("certs")):
            os.chmod(path, 0o755)

    def give_keys(self, certs, uid, gid):
        for leaf in certs.leaves:
            os.chown(leaf.key, uid, gid)

    def config(self, port, up, storage):
        cfg = harness.tls_config(port, self.certs, {"app": [up.address]}, workers=2)
        cfg["user"] = USER
        # Nothing answers there: the manager only has to hand the storage over.
        cfg["tls"]["acme"] = {"directory": "https://127.0.0.1:9/dir", "domains": ["x.test"],
                              "challenge": "tls-alpn-01",
                              "storage": storage}
        return cfg

    def test_runs_as_the_user_with_only_the_bind_capability(self):
        up = self.upstream("priv")
        port = harness.free_port()
        storage = self.tmp.join("acme-state")
        os.makedirs(os.path.join(storage, "old"))
        self.give_keys(self.certs, self.nobody.pw_uid, self.nobody.pw_gid)
        self.addCleanup(self.give_keys, self.certs, 0, 0)
        fd = self.frontdoor(self.config(port, up, storage))
        self.assertEqual(self.get(port, "/as-nobody").status, 200)

        ids = "%d\t%d\t%d\t%d" % ((self.nobody.pw_uid,) * 4)
        tasks = [int(t) for t in os.listdir("/proc/%d/task" % fd.pid)]
        self.assertGreater(len(tasks), 2, "expected the worker threads too")
        for task in tasks:
            status = proc_status(fd.pid, task)
            self.assertEqual(status["Uid"], ids, (task, status["Uid"]))
            self.assertEqual(status["Gid"], "%d\t%d\t%d\t%d" % ((self.nobody.pw_gid,) * 4))
            self.assertEqual(int(status["CapEff"], 16), CAP_NET_BIND_SERVICE, task)
            self.assertEqual(int(status["CapPrm"], 16), CAP_NET_BIND_SERVICE, task)
        for path in (storage, os.path.join(storage, "old")):
            st = os.stat(path)
            self.assertEqual((st.st_uid, st.st_gid), (self.nobody.pw_uid, self.nobody.pw_gid), path)
        self.assertEqual(os.stat(storage).st_mode & 0o777, 0o700)
        self.assertIn('"running as"', fd.log_text())

        # The kept capability lets a reload open a port below 1024 as nobody.
        low = free_low_port()
        cfg = self.config(port, up, storage)
        cfg["listen"].append({"address": "127.0.0.1:%d" % low, "tls": True})
        fd.reload(cfg, 2)
        self.assertEqual(self.get(low, "/low-port").status, 200)

    def test_key_only_root_can_read_stops_the_start(self):
        up = self.upstream("priv2")
        port = harness.free_port()
        fd = self.frontdoor(self.config(port, up, self.tmp.join("acme2")), start=False)
        fd.ok_codes = {2}
        fd.launch()
        code = fd.wait_exit(10 * SLOW)
        self.assertEqual(code, 2, fd.tail())
        self.assertRegex(fd.log_text(), r"cannot load key .*Permission denied|cannot load key")


if __name__ == "__main__":
    unittest.main()
