"""Bodies are streamed, never buffered whole: 1 GiB down and up through the proxy with the
proxy's resident memory sampled all along."""

import hashlib
import json
import os
import subprocess
import threading
import time
import unittest

import harness
from harness import MIB, SANITIZE, pattern_sha256, write_pattern

GIB = 1 << 30
HWM_LIMIT_KIB = (512 if SANITIZE else 64) * 1024
DEADLINE = 400 if SANITIZE else 120


class RssSampler:
    """Samples the proxy's VmRSS / VmHWM every 0.2 s in a thread."""

    def __init__(self, fd):
        self.fd = fd
        self.max_rss = 0
        self.max_hwm = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(0.2)

    def sample(self):
        rss, hwm = self.fd.rss_kib(), self.fd.hwm_kib()
        if rss is not None:
            self.max_rss = max(self.max_rss, rss)
            self.samples += 1
        if hwm is not None:
            self.max_hwm = max(self.max_hwm, hwm)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=5)
        self.sample()

    def describe(self):
        return "max VmRSS %d KiB, VmHWM %d KiB over %d samples" % (self.max_rss, self.max_hwm,
                                                                  self.samples)


class StreamingTest(harness.ProxyTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        try:
            cls.up = cls.class_upstream("big")
            cls.port = harness.free_port()
            cls.fd = cls.class_frontdoor(
                harness.tls_config(cls.port, cls.certs, {"app": [cls.up.address]}, workers=2,
                                   access=True),
                asan_extra="quarantine_size_mb=16")
        except BaseException:
            cls.tearDownClass()
            raise

    def setUp(self):
        self.fd.assert_running()

    def curl_cmd(self, path, *args):
        return (["curl", "-sS", "--http1.1", "--cacert", self.certs.ca,
                 "--resolve", "localhost:%d:127.0.0.1" % self.port, "--max-time", str(DEADLINE)]
                + list(args) + [self.url(self.port, path)])

    def assert_memory(self, sampler):
        self.assertGreater(sampler.samples, 0)
        self.assertLess(sampler.max_hwm, HWM_LIMIT_KIB,
                        "proxy memory grew with the body: " + sampler.describe())

    def download(self, path, nbytes):
        hdr = self.tmp.join("down.headers")
        err = self.tmp.join("down.stderr")
        with open(err, "wb") as errf:
            proc = subprocess.Popen(self.curl_cmd(path, "-D", hdr, "-o", "-"),
                                    stdout=subprocess.PIPE, stderr=errf, stdin=subprocess.DEVNULL)
        killer = threading.Timer(DEADLINE, proc.kill)
        killer.start()
        t0 = time.monotonic()
        h = hashlib.sha256()
        n = 0
        try:
            with RssSampler(self.fd) as sampler:
                while True:
                    piece = proc.stdout.read(MIB)
                    if not piece:
                        break
                    h.update(piece)
                    n += len(piece)
                rc = proc.wait(timeout=30)
        finally:
            killer.cancel()
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
            proc.stdout.close()
        elapsed = time.monotonic() - t0
        self.assertLess(elapsed, DEADLINE, "download did not finish in time")
        self.assertEqual(rc, 0, harness.read_text(err))
        status = harness._parse_header_blocks(harness.read_text(hdr))
        self.assertTrue(status and status[-1][0] == 200, status)
        self.assertEqual(n, nbytes, "received %d of %d bytes" % (n, nbytes))
        self.assertEqual(h.hexdigest(), pattern_sha256(nbytes))
        self.assert_memory(sampler)
        self.fd.assert_running()
        return elapsed, sampler

    def test_1_download_1gib(self):
        elapsed, sampler = self.download("/big?bytes=%d" % GIB, GIB)
        print("\n1 GiB download: %.1fs, %s" % (elapsed, sampler.describe()))

    def test_2_download_chunked_256mib(self):
        n = 256 * MIB + 12345
        self.download("/bigchunked?bytes=%d" % n, n)

    def test_3_upload_1gib_chunked(self):
        resp = self.tmp.join("up.json")
        hdr = self.tmp.join("up.headers")
        err = self.tmp.join("up.stderr")
        with open(err, "wb") as errf:
            proc = subprocess.Popen(self.curl_cmd("/upload", "-T", "-", "-D", hdr, "-o", resp),
                                    stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=errf)
        write_error = []

        def writer():
            try:
                write_pattern(proc.stdin, GIB)
            except (BrokenPipeError, OSError) as e:
                write_error.append(e)
            finally:
                try:
                    proc.stdin.close()
                except OSError:
                    pass

        t0 = time.monotonic()
        w = threading.Thread(target=writer, daemon=True)
        with RssSampler(self.fd) as sampler:
            w.start()
            try:
                rc = proc.wait(timeout=DEADLINE)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
                self.fail("upload did not finish in %ss; %s" % (DEADLINE, sampler.describe()))
            w.join(timeout=10)
        elapsed = time.monotonic() - t0
        print("\n1 GiB chunked upload: %.1fs, %s" % (elapsed, sampler.describe()))
        self.assertEqual(rc, 0, harness.read_text(err))
        self.assertEqual(write_error, [])
        status = harness._parse_header_blocks(harness.read_text(hdr))
        self.assertTrue(status and status[-1][0] == 200, (status, harness.read_text(resp, 500)))
        with open(resp) as f:
            body = json.load(f)
        self.assertEqual(body["body_len"], GIB)
        self.assertEqual(body["body_sha256"], pattern_sha256(GIB))
        self.assert_memory(sampler)

    def test_4_upload_256mib_content_length(self):
        n = 256 * MIB + 3
        with RssSampler(self.fd) as sampler:
            with harness.tls_connect(self.port, ca=self.certs.ca, timeout=DEADLINE) as s:
                s.sendall(b"PUT /upload HTTP/1.1\r\nHost: localhost:%d\r\n"
                          b"Content-Length: %d\r\nContent-Type: application/octet-stream\r\n\r\n"
                          % (self.port, n))

                deadline = time.monotonic() + DEADLINE

                class W:
                    def write(self, data):
                        if time.monotonic() > deadline:
                            raise AssertionError("upload did not finish in %ss" % DEADLINE)
                        s.sendall(data)

                write_pattern(W(), n)
                status, headers, body = harness.read_response(s, timeout=DEADLINE)
        self.assertEqual(status, 200, body)
        reply = json.loads(body)
        self.assertEqual(reply["body_len"], n)
        self.assertEqual(reply["body_sha256"], pattern_sha256(n))
        self.assert_memory(sampler)


if __name__ == "__main__":
    unittest.main()
