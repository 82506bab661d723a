"""WebSocket over HTTP/1.1 through the proxy: the upgrade goes to a real WebSocket upstream
(python3-websockets), and after its 101 the proxy tunnels raw bytes both ways."""

import asyncio
import json
import os
import re
import select
import signal
import socket
import ssl
import subprocess
import time
import unittest

import harness

import websockets

WS_UPSTREAM_PY = os.path.join(harness.HERE, "ws_upstream.py")
SIZES = [1, 1024, 64 * 1024, harness.MIB]
# The proxy's VmHWM may grow by this much while 200 MiB cross a tunnel to a peer that stalls.
HWM_GROWTH_KIB = (128 if harness.SANITIZE else 48) * 1024
# ASan's quarantine would otherwise keep up to 256 MiB of freed buffers and hide what the proxy
# really holds.
SMALL_QUARANTINE = "quarantine_size_mb=16"


class WsUpstream(harness.Upstream):
    """ws_upstream.py as a subprocess, started and announced like harness.Upstream."""

    def start(self, timeout=10):
        err = open(os.path.join(self.log_dir, "ws-upstream-%s.log" % self.id), "ab")
        try:
            self.proc = subprocess.Popen(
                [harness.PYTHON, WS_UPSTREAM_PY, "--port", str(self.port), "--host", self.host],
                stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL)
        finally:
            err.close()
        fd = self.proc.stdout.fileno()
        line = b""
        deadline = time.monotonic() + timeout
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0:
                self.stop()
                raise AssertionError("ws upstream did not start")
            r, _, _ = select.select([fd], [], [], left)
            if r:
                chunk = os.read(fd, 256)
                if not chunk:
                    raise AssertionError("ws upstream exited before listening")
                line += chunk
        self.port = int(re.match(rb"listening (\d+)", line).group(1))
        return self


def run(coro, timeout=60):
    return asyncio.run(asyncio.wait_for(coro, timeout))


class WebSocketTest(harness.ProxyTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        try:
            cls.ws = WsUpstream("ws", log_dir=cls.tmp.path).start()
            cls._fd_cleanups.append(cls.ws.stop)
            cls.plain = cls.class_upstream("plain")
            cls.port = harness.free_port()
            routes = [{"match": {"path_prefix": "/plain"}, "upstream": "plain"},
                      {"match": {"path_prefix": "/"}, "upstream": "ws"}]
            cls.fd = cls.class_frontdoor(harness.tls_config(
                cls.port, cls.certs, {"ws": [cls.ws.address], "plain": [cls.plain.address]},
                routes=routes, workers=1, access=True), asan_extra=SMALL_QUARANTINE)
            cls.idle_port = harness.free_port()
            cls.idle_fd = cls.class_frontdoor(harness.tls_config(
                cls.idle_port, cls.certs, {"ws": [cls.ws.address]}, workers=1, access=True,
                limits={"idle_timeout": "1s"}), name="idle")
        except BaseException:
            cls.tearDownClass()
            raise

    def setUp(self):
        self.fd.assert_running()

    def connect(self, path, port=None):
        ctx = ssl.create_default_context(cafile=self.certs.ca)
        sock = socket.create_connection(("127.0.0.1", port or self.port), timeout=10)
        return websockets.connect("wss://localhost:%d%s" % (port or self.port, path), ssl=ctx,
                                  sock=sock, server_hostname="localhost", max_size=None,
                                  ping_interval=None, compression=None, open_timeout=10)

    def access_for(self, fd, path, count=1):
        return harness.wait_for(
            lambda: [a for a in fd.access_lines() if a.get("path") == path][count - 1:],
            10, what="access line for " + path)[0]

    def test_echo_text_and_binary(self):
        async def go():
            async with self.connect("/ws") as ws:
                for n in SIZES:
                    data = bytes((i * 7 + n) % 256 for i in range(n))
                    await ws.send(data)
                    got = await ws.recv()
                    self.assertIsInstance(got, bytes)
                    self.assertEqual(got, data, "binary %d" % n)
                    text = ("é" * n)[:n] if n < 4 else ("abcé" * (n // 5 + 1))[:n]
                    await ws.send(text)
                    self.assertEqual(await ws.recv(), text, "text %d" % n)
        run(go())

    def test_forwarding_headers(self):
        async def go():
            async with self.connect("/headers") as ws:
                return json.loads(await ws.recv())
        headers = {k.lower(): v for k, v in run(go())}
        self.assertEqual(headers.get("x-forwarded-for"), "127.0.0.1")
        self.assertEqual(headers.get("x-forwarded-proto"), "https")
        self.assertEqual(headers.get("upgrade"), "websocket")
        self.assertIn("upgrade", headers.get("connection", "").lower())
        self.assertIn("sec-websocket-key", headers)

    def test_refused_upgrade_is_an_ordinary_response(self):
        async def go():
            async with self.connect("/nows"):
                pass
        with self.assertRaises(websockets.exceptions.InvalidStatusCode) as cm:
            run(go())
        self.assertEqual(cm.exception.status_code, 404)
        line = self.access_for(self.fd, "/nows")
        self.assertEqual(line["status"], 404)
        # A plain HTTP upstream ignores the Upgrade and answers 200: passed through as such.
        r = self.get(self.port, "/plain/x", "localhost", "-H", "Connection: Upgrade",
                     "-H", "Upgrade: websocket", "-H", "Sec-WebSocket-Version: 13",
                     "-H", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==")
        self.assertEqual(r.status, 200, r.stderr)

    def test_upstream_close_ends_tunnel(self):
        async def go():
            async with self.connect("/ws") as ws:
                await ws.send("hello")
                self.assertEqual(await ws.recv(), "hello")
                await ws.send("close-me")
                with self.assertRaises(websockets.exceptions.ConnectionClosedOK):
                    await ws.recv()
                return ws.close_code
        self.assertEqual(run(go()), 1000)
        line = self.access_for(self.fd, "/ws")
        self.assertEqual(line["status"], 101)

    def test_client_close_ends_tunnel_and_logs(self):
        before = len([a for a in self.fd.access_lines() if a.get("path") == "/ws"])
        payload = b"x" * 5000

        async def go():
            async with self.connect("/ws") as ws:
                await ws.send(payload)
                self.assertEqual(await ws.recv(), payload)
        run(go())
        line = self.access_for(self.fd, "/ws", before + 1)
        self.assertEqual(line["status"], 101)
        self.assertEqual(line["method"], "GET")
        self.assertGreater(line["bytes_in"], len(payload))
        self.assertGreater(line["bytes_out"], len(payload))
        self.assertIn("duration_ms", line)
        self.assertEqual(line.get("error", ""), "")

    def test_backpressure_to_a_slow_client(self):
        # 200 MiB from the upstream while the client reads nothing for 2 s: the proxy must stop
        # reading the upstream instead of buffering it.
        base = self.fd.hwm_kib()
        count = 3200

        async def go():
            async with self.connect("/flood") as ws:
                ws.max_queue = 1
                await ws.send(str(count))
                await asyncio.sleep(2)
                grown = self.fd.hwm_kib() - base
                n = 0
                while True:
                    m = await ws.recv()
                    if m == "done":
                        break
                    n += len(m)
                return n, grown
        n, grown = run(go(), timeout=120)
        self.assertEqual(n, count * 64 * 1024)
        self.assertLess(grown, HWM_GROWTH_KIB, "proxy buffered the tunnel")

    def test_backpressure_to_a_slow_upstream(self):
        # Its own proxy: VmHWM only grows, so another test's peak must not hide this one's.
        port = harness.free_port()
        fd = self.frontdoor(harness.tls_config(port, self.certs, {"ws": [self.ws.address]},
                                               workers=1), name="sink",
                                asan_extra=SMALL_QUARANTINE)
        base = fd.hwm_kib()
        piece = b"u" * (64 * 1024)
        count = 3200

        async def go():
            async with self.connect("/sink", port) as ws:
                for _ in range(count):
                    await ws.send(piece)
                await ws.send("end")
                return int(await ws.recv())
        self.assertEqual(run(go(), timeout=120), count * len(piece))
        self.assertLess(fd.hwm_kib() - base, HWM_GROWTH_KIB, "proxy buffered the tunnel")

    def test_idle_tunnel_is_closed(self):
        async def go():
            async with self.connect("/ws", self.idle_port) as ws:
                await ws.send("x")
                self.assertEqual(await ws.recv(), "x")
                t0 = time.monotonic()
                with self.assertRaises(websockets.exceptions.ConnectionClosed):
                    await ws.recv()
                return time.monotonic() - t0
        elapsed = run(go(), timeout=20)
        self.assertGreater(elapsed, 0.8)
        self.assertLess(elapsed, 5)
        line = self.access_for(self.idle_fd, "/ws")
        self.assertEqual(line["status"], 101)
        self.assertIn("idle", line.get("error", ""))


class WebSocketLifecycleTest(harness.ProxyTestCase):
    """Tunnels count as active requests, survive a reload that keeps their upstream, are cut
    by a reload that removes it and by shutdown once shutdown_timeout has passed."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        try:
            cls.ws = WsUpstream("ws", log_dir=cls.tmp.path).start()
            cls._fd_cleanups.append(cls.ws.stop)
        except BaseException:
            cls.tearDownClass()
            raise

    def config(self, port, upstreams, routes=None, **extra):
        return harness.tls_config(port, self.certs, upstreams, routes=routes, workers=1,
                                  shutdown_timeout="1s", **extra)

    connect = WebSocketTest.connect

    def test_tunnel_counts_as_active_request(self):
        port, fd, admin = self.frontdoor_with_admin({"ws": [self.ws.address]})
        self.port = port

        def active():
            return admin.status()["upstreams"][0]["servers"][0]["active"]

        async def go():
            async with self.connect("/ws") as ws:
                await ws.send("a")
                await ws.recv()
                during = active()
            return during
        self.assertEqual(run(go()), 1)
        harness.wait_for(lambda: active() == 0, 5, what="active back to 0")

    def test_reload_keeping_upstream_does_not_cut_tunnel(self):
        self.port = harness.free_port()
        fd = self.frontdoor(self.config(self.port, {"ws": [self.ws.address]}))

        async def go():
            async with self.connect("/ws") as ws:
                await ws.send("before")
                self.assertEqual(await ws.recv(), "before")
                routes = [{"match": {"path_prefix": "/extra/"}, "upstream": "ws"},
                          {"match": {"path_prefix": "/"}, "upstream": "ws"}]
                fd.reload(self.config(self.port, {"ws": [self.ws.address]}, routes), 2)
                time.sleep(2)  # past shutdown_timeout: the old generation is retired
                await ws.send("after")
                self.assertEqual(await ws.recv(), "after")
        run(go())
        self.assertFalse([l for l in fd.log_lines()
                          if l.get("msg") == "requests cut after a reload"], fd.tail())

    def test_reload_removing_upstream_cuts_tunnel(self):
        self.port = harness.free_port()
        fd = self.frontdoor(self.config(self.port, {"ws": [self.ws.address]}))

        async def go():
            async with self.connect("/ws") as ws:
                await ws.send("before")
                self.assertEqual(await ws.recv(), "before")
                fd.reload(self.config(self.port, {"other": [self.ws.address]}), 2)
                t0 = time.monotonic()
                with self.assertRaises(websockets.exceptions.ConnectionClosed):
                    await ws.recv()
                return time.monotonic() - t0
        self.assertLess(run(go()), 5 * harness.SLOW)

    def test_shutdown_cuts_tunnel_after_shutdown_timeout(self):
        self.port = harness.free_port()
        fd = self.frontdoor(self.config(self.port, {"ws": [self.ws.address]}))

        async def go():
            async with self.connect("/ws") as ws:
                await ws.send("x")
                self.assertEqual(await ws.recv(), "x")
                fd.send_signal(signal.SIGTERM)
                time.sleep(0.3)
                await ws.send("still")  # the tunnel runs on while draining
                self.assertEqual(await ws.recv(), "still")
                t0 = time.monotonic()
                with self.assertRaises(websockets.exceptions.ConnectionClosed):
                    await ws.recv()
                return time.monotonic() - t0
        elapsed = run(go())
        self.assertGreater(elapsed, 0.3, "cut before shutdown_timeout")
        self.assertLess(elapsed, 5 * harness.SLOW)
        self.assertIsNotNone(fd.wait_exit(10 * harness.SLOW), fd.tail())


if __name__ == "__main__":
    unittest.main()
