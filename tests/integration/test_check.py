"""Command line: --check with good and bad configs (FILE:LINE:COL diagnostics), ${VAR:-default}
expansion, --version, unknown flags and the exit code for a port already in use."""

import os
import re
import socket
import time
import unittest

import harness
from harness import BIN, SLOW


def config_text(port, cert, key, upstream, extra_limits="", route_upstream="app",
                address=None):
    """A hand-written config; the line numbers below are relied upon by the tests."""
    address = address or "127.0.0.1:%d" % port
    return (
        "listen:\n"                                      # 1
        "  - address: \"%s\"\n"                          # 2
        "    tls: true\n"                                # 3
        "tls:\n"                                         # 4
        "  certificates:\n"                              # 5
        "    - cert: \"%s\"\n"                           # 6
        "      key: \"%s\"\n"                            # 7
        "upstreams:\n"                                   # 8
        "  app:\n"                                       # 9
        "    servers: [\"%s\"]\n"                        # 10
        "    connect_timeout: 2s\n"                      # 11
        "routes:\n"                                      # 12
        "  - match: {path_prefix: \"/\"}\n"              # 13
        "    upstream: %s\n"                             # 14
        "limits:\n"                                      # 15
        "  header_timeout: 5s\n"                         # 16
        "%s"                                             # 17...
        "log:\n"
        "  level: info\n"
        "  access: true\n"
        "workers: 1\n"
    ) % (address, cert, key, upstream, route_upstream, extra_limits)


class CheckTest(harness.ProxyTestCase):

    def write(self, name, text):
        path = self.tmp.join(name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def check(self, path, env=None):
        e = dict(os.environ)
        e.update(harness.sanitizer_env())
        if env:
            e.update(env)
        r = harness.run([BIN, "--check", "-c", path], timeout=20 * SLOW, env=e)
        return r.returncode, r.stdout.decode(errors="replace") + r.stderr.decode(errors="replace")

    def good(self, **kw):
        leaf = self.certs.leaves[0]
        return config_text(harness.free_port(), leaf.cert, leaf.key, "127.0.0.1:9", **kw)

    def assert_diag(self, out, path, line, col=None):
        name = re.escape(os.path.basename(path))
        col_re = str(col) if col is not None else r"\d+"
        pattern = r"(^|[\s/])%s:%d:%s: \S" % (name, line, col_re)
        self.assertRegex(out, re.compile(pattern, re.M),
                         "want a FILE:%d:%s: diagnostic" % (line, col if col else "COL"))

    def test_good_config(self):
        path = self.write("good.yaml", self.good())
        rc, out = self.check(path)
        self.assertEqual(rc, 0, out)

    def test_good_json_config(self):
        leaf = self.certs.leaves[0]
        cfg = harness.tls_config(harness.free_port(), self.certs, {"app": ["127.0.0.1:9"]})
        fd = harness.Frontdoor(self.tmp.path, cfg, name="json-check")
        fd.write_config()
        rc, out = self.check(fd.config_path)
        self.assertEqual(rc, 0, out)

    def test_unknown_key(self):
        path = self.write("unknown-key.yaml", self.good(extra_limits="  max_bodee_bytes: 10\n"))
        rc, out = self.check(path)
        self.assertEqual(rc, 1, out)
        self.assert_diag(out, path, 17, 3)
        self.assertIn("max_bodee_bytes", out)

    def test_unknown_top_level_key(self):
        path = self.write("unknown-top.yaml", self.good() + "colour: blue\n")
        rc, out = self.check(path)
        self.assertEqual(rc, 1, out)
        self.assert_diag(out, path, 21, 1)

    def test_bad_duration(self):
        text = self.good().replace("connect_timeout: 2s", "connect_timeout: 5 parsecs")
        path = self.write("bad-duration.yaml", text)
        rc, out = self.check(path)
        self.assertEqual(rc, 1, out)
        self.assert_diag(out, path, 11)

    def test_route_to_unknown_upstream(self):
        path = self.write("bad-route.yaml", self.good(route_upstream="nope"))
        rc, out = self.check(path)
        self.assertEqual(rc, 1, out)
        self.assertRegex(out, r"%s:(13|14):\d+: \S" % re.escape(os.path.basename(path)))
        self.assertIn("nope", out)

    def test_unreadable_cert_file(self):
        leaf = self.certs.leaves[0]
        text = config_text(harness.free_port(), self.tmp.join("missing.crt"), leaf.key,
                           "127.0.0.1:9")
        path = self.write("missing-cert.yaml", text)
        rc, out = self.check(path)
        self.assertEqual(rc, 1, out)
        self.assert_diag(out, path, 6)

    def test_cert_file_not_pem(self):
        leaf = self.certs.leaves[0]
        junk = self.write("junk.crt", "this is not a certificate\n")
        path = self.write("junk-cert.yaml", config_text(harness.free_port(), junk, leaf.key,
                                                       "127.0.0.1:9"))
        rc, out = self.check(path)
        self.assertEqual(rc, 1, out)
        self.assertRegex(out, r"%s:\d+:\d+: \S" % re.escape(os.path.basename(path)))

    def test_several_errors_reported(self):
        text = self.good(extra_limits="  bogus: 1\n", route_upstream="nope")
        text = text.replace("connect_timeout: 2s", "connect_timeout: 5 parsecs")
        path = self.write("many.yaml", text)
        rc, out = self.check(path)
        self.assertEqual(rc, 1, out)
        name = re.escape(os.path.basename(path))
        lines = set(re.findall(r"%s:(\d+):\d+: " % name, out))
        self.assertGreaterEqual(len(lines), 2, "expected every problem reported: %s" % out)

    def test_run_with_bad_config_exits_1(self):
        path = self.write("bad-run.yaml", self.good(route_upstream="nope"))
        e = dict(os.environ)
        e.update(harness.sanitizer_env())
        r = harness.run([BIN, "-c", path], timeout=20 * SLOW, env=e)
        self.assertEqual(r.returncode, 1, r)

    def test_missing_config_file(self):
        rc, out = self.check(self.tmp.join("does-not-exist.yaml"))
        self.assertEqual(rc, 1, out)

    def test_env_expansion(self):
        port = harness.free_port()
        up = self.upstream("env")
        leaf = self.certs.leaves[0]
        text = config_text(port, leaf.cert, leaf.key, up.address,
                           address="${FD_IT_HOST:-127.0.0.1}:${FD_IT_PORT}")
        text = text.replace("header_timeout: 5s", "header_timeout: ${FD_IT_HT:-5s}")
        path = self.write("env.yaml", text)
        env = {"FD_IT_PORT": str(port)}
        for k in ("FD_IT_HOST", "FD_IT_HT"):
            os.environ.pop(k, None)
        rc, out = self.check(path, env=env)
        self.assertEqual(rc, 0, out)
        # Without the variable the address has no port: an error.
        rc, out = self.check(path, env={"FD_IT_PORT": ""})
        self.assertEqual(rc, 1, out)
        self.frontdoor(text, env=env, wait=[("127.0.0.1", port)])
        r = self.get(port, "/env")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body, b"upstream env /env\n")

    def test_version(self):
        r = harness.run([BIN, "--version"], timeout=20 * SLOW,
                        env=dict(os.environ, **harness.sanitizer_env()))
        out = (r.stdout + r.stderr).decode(errors="replace")
        self.assertEqual(r.returncode, 0, out)
        for lib in ("openssl", "nghttp2", "libevent", "libcurl"):
            self.assertIn(lib, out.lower(), out)
        self.assertRegex(out, r"\d+\.\d+")

    def test_unknown_flag(self):
        r = harness.run([BIN, "--no-such-flag"], timeout=20 * SLOW,
                        env=dict(os.environ, **harness.sanitizer_env()))
        self.assertEqual(r.returncode, 1, r)

    def test_port_in_use_exits_2(self):
        blocker = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(blocker.close)
        blocker.bind(("127.0.0.1", 0))  # no SO_REUSEADDR / SO_REUSEPORT
        blocker.listen(8)
        port = blocker.getsockname()[1]
        up = self.upstream("busy")
        cfg = harness.tls_config(port, self.certs, {"app": [up.address]})
        fd = self.frontdoor(cfg, start=False)
        fd.ok_codes = {2}
        fd.launch()
        code = fd.wait_exit(10 * SLOW)
        if code is None:
            fd.kill()
            self.fail("frontdoor kept running although its port is taken\n%s" % fd.tail())
        self.assertEqual(code, 2, fd.tail())


if __name__ == "__main__":
    unittest.main()
