#!/usr/bin/python3
"""A small HTTP/1.1 upstream for frontdoor's integration tests (standard library only).

    upstream.py --port PORT --id ID [--host ADDR] [--hang-all] [--reset-all] [--delay-ms N]
                [--healthz-status N] [--healthz-hang]

Prints "listening PORT" on stdout (one line, flushed) once the socket is bound and listening,
so the harness can wait for readiness without opening a TCP connection of its own (which would
show up in /stats). Request logs go to stderr.

Endpoints (any method unless noted; every response has Content-Length or is chunked, so
keep-alive works, and carries X-Upstream: ID):
  /echo                JSON {id, conn, method, path, headers: [[name, value], ...] (received order),
                       body_len, body_sha256}; the body may be Content-Length or chunked
  /stats               JSON {connections, requests}: TCP connections accepted (including the one
                       carrying this /stats request) and requests other than /stats
  /sleep?ms=N          waits N ms, then 200 "slept"
  /hang                never answers; returns (closing) once the peer closes, at most after 600 s
  /chunked?n=K         Transfer-Encoding: chunked, K chunks "chunk i\\n" (i = 0..K-1)
  /big?bytes=N         N bytes of bytes(range(256)) repeated, Content-Length, written in 1 MiB pieces
  /bigchunked?bytes=N  the same, chunked (one chunk per 1 MiB piece)
  /upload              POST/PUT: reads the body in pieces (never whole), JSON {id, body_len, body_sha256}
  /status/NNN          answers with status NNN and a short body
  /healthz             200 "ok" (or the status set by --healthz-status / /control); counted in
                       /stats as health_checks (not in requests), with the last one's method,
                       target and headers kept as last_health_check
  /reset-after-body    reads the whole request body, then resets the connection (RST, SO_LINGER 0)
                       without answering
  /control?K=V&...     changes the modes below at run time (hang_all, reset_all, healthz_hang:
                       0/1; delay_ms, healthz_status: integers); answers JSON of the modes
  anything else        200 "upstream ID PATH\\n" (PATH = request target as received)

/stats also has "paths" ({path: count} of every request other than /stats and /control,
health checks included) and "health_checks". /stats and /control are never affected by a mode.

Modes (command line flags, or /control at run time):
  --hang-all           every request (/healthz too) is read, then never answered, like /hang
  --reset-all          every request (/healthz too) is read with its body, then reset
  --delay-ms N         every request other than /healthz waits N ms before being handled
  --healthz-status N   /healthz answers N
  --healthz-hang       /healthz never answers (other paths are unaffected)
"""

import argparse
import hashlib
import http.server
import itertools
import json
import os
import select
import signal
import socket
import struct
import sys
import threading
import time
import urllib.parse

PIECE = 1 << 20
PATTERN = bytes(range(256)) * (PIECE // 256)  # 1 MiB; every piece of the stream starts at 0 mod 256

UPSTREAM_ID = "?"
_lock = threading.Lock()
_stats = {"connections": 0, "requests": 0}
_paths = {}
_health = {"count": 0, "last": None}
_modes = {"hang_all": False, "reset_all": False, "delay_ms": 0, "healthz_status": 200,
          "healthz_hang": False}
_MODE_TYPES = {"hang_all": bool, "reset_all": bool, "delay_ms": int, "healthz_status": int,
               "healthz_hang": bool}
_conn_ids = itertools.count(1)


class BodyError(Exception):
    pass


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256
    block_on_close = False

    def get_request(self):
        conn, addr = super().get_request()
        with _lock:
            _stats["connections"] += 1
        return conn, addr


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fd-test-upstream"
    sys_version = ""

    def version_string(self):
        return self.server_version

    def setup(self):
        super().setup()
        self.conn_id = next(_conn_ids)
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, fmt, *args):
        sys.stderr.write("upstream %s conn %d: %s\n" % (UPSTREAM_ID, self.conn_id, fmt % args))

    # --- request body -------------------------------------------------------------------------

    def read_body(self, sink):
        """Reads the request body (Content-Length or chunked) in pieces, passing each to sink."""
        te = self.headers.get("Transfer-Encoding")
        if te is not None:
            if te.strip().lower().split(",")[-1].strip() != "chunked":
                raise BodyError("unsupported Transfer-Encoding %r" % te)
            self._read_chunked(sink)
            return
        cl = self.headers.get("Content-Length")
        if cl is None:
            return
        try:
            remaining = int(cl)
        except ValueError:
            raise BodyError("bad Content-Length %r" % cl)
        while remaining > 0:
            data = self.rfile.read(min(remaining, PIECE))
            if not data:
                raise BodyError("body truncated")
            sink(data)
            remaining -= len(data)

    def _read_chunked(self, sink):
        while True:
            line = self.rfile.readline(65537)
            if not line.endswith(b"\n"):
                raise BodyError("chunk size line truncated")
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise BodyError("bad chunk size %r" % line)
            if size == 0:
                while True:  # trailers up to the empty line
                    trailer = self.rfile.readline(65537)
                    if not trailer:
                        raise BodyError("trailers truncated")
                    if trailer in (b"\r\n", b"\n"):
                        return
            remaining = size
            while remaining > 0:
                data = self.rfile.read(min(remaining, PIECE))
                if not data:
                    raise BodyError("chunk truncated")
                sink(data)
                remaining -= len(data)
            if self.rfile.readline(3) not in (b"\r\n", b"\n"):
                raise BodyError("chunk not followed by CRLF")

    def drain(self):
        self.read_body(lambda data: None)

    # --- responses ----------------------------------------------------------------------------

    def send_head(self, status, headers):
        self.send_response(status)
        self.send_header("X-Upstream", UPSTREAM_ID)
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()

    def send_body(self, status, body, ctype="text/plain"):
        if isinstance(body, str):
            body = body.encode()
        self.send_head(status, [("Content-Type", ctype), ("Content-Length", str(len(body)))])
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_json(self, obj, status=200):
        self.send_body(status, json.dumps(obj) + "\n", "application/json")

    def write_chunk(self, data):
        self.wfile.write(b"%x\r\n" % len(data))
        self.wfile.write(data)
        self.wfile.write(b"\r\n")

    # --- dispatch -----------------------------------------------------------------------------

    def do_any(self):
        try:
            self.dispatch()
        except BodyError as e:
            self.log_message("bad request body: %s", e)
            self.close_connection = True
            try:
                self.send_body(400, "bad body: %s\n" % e)
            except OSError:
                pass
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            self.close_connection = True

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_any

    def dispatch(self):
        url = urllib.parse.urlsplit(self.path)
        path = url.path
        query = urllib.parse.parse_qs(url.query)

        def qint(name, default):
            try:
                return int(query.get(name, [default])[0])
            except ValueError:
                return default

        if path == "/control":
            self.drain()
            self.control(query)
            return
        if path != "/stats":
            with _lock:
                _paths[path] = _paths.get(path, 0) + 1
                if path == "/healthz":
                    _health["count"] += 1
                    _health["last"] = {"method": self.command, "target": self.path,
                                       "headers": [[k, v] for k, v in self.headers.items()]}
                else:
                    _stats["requests"] += 1
            with _lock:
                modes = dict(_modes)
            if modes["hang_all"]:
                self.drain()
                self.hang()
                return
            if modes["reset_all"]:
                self.drain()
                self.reset()
                return
            if path == "/healthz" and modes["healthz_hang"]:
                self.drain()
                self.hang()
                return
            if path != "/healthz" and modes["delay_ms"] > 0:
                time.sleep(modes["delay_ms"] / 1000.0)

        if path == "/echo":
            h = hashlib.sha256()
            n = [0]

            def sink(data):
                h.update(data)
                n[0] += len(data)

            self.read_body(sink)
            self.send_json({
                "id": UPSTREAM_ID,
                "conn": self.conn_id,
                "method": self.command,
                "path": self.path,
                "version": self.request_version,
                "headers": [[k, v] for k, v in self.headers.items()],
                "body_len": n[0],
                "body_sha256": h.hexdigest(),
            })
        elif path == "/upload":
            if self.command not in ("POST", "PUT"):
                self.drain()
                self.send_body(405, "method not allowed\n")
                return
            h = hashlib.sha256()
            n = [0]

            def sink(data):
                h.update(data)
                n[0] += len(data)

            self.read_body(sink)
            self.send_json({"id": UPSTREAM_ID, "body_len": n[0], "body_sha256": h.hexdigest()})
        elif path == "/stats":
            self.drain()
            with _lock:
                snapshot = dict(_stats)
                snapshot["paths"] = dict(_paths)
                snapshot["health_checks"] = _health["count"]
                snapshot["last_health_check"] = _health["last"]
            snapshot["id"] = UPSTREAM_ID
            self.send_json(snapshot)
        elif path == "/healthz":
            self.drain()
            with _lock:
                code = _modes["healthz_status"]
            self.send_body(code, "ok" if 200 <= code < 300 else "status %d" % code)
        elif path == "/reset-after-body":
            self.drain()
            self.reset()
        elif path == "/sleep":
            self.drain()
            time.sleep(max(0, qint("ms", 1000)) / 1000.0)
            self.send_body(200, "slept")
        elif path == "/hang":
            self.drain()
            self.hang()
        elif path == "/chunked":
            self.drain()
            n = max(0, qint("n", 10))
            self.send_head(200, [("Content-Type", "text/plain"), ("Transfer-Encoding", "chunked")])
            if self.command != "HEAD":
                for i in range(n):
                    self.write_chunk(b"chunk %d\n" % i)
                self.wfile.write(b"0\r\n\r\n")
        elif path in ("/big", "/bigchunked"):
            self.drain()
            total = max(0, qint("bytes", PIECE))
            chunked = path == "/bigchunked"
            if chunked:
                head = [("Transfer-Encoding", "chunked")]
            else:
                head = [("Content-Length", str(total))]
            self.send_head(200, [("Content-Type", "application/octet-stream")] + head)
            if self.command == "HEAD":
                return
            left = total
            while left > 0:
                piece = PATTERN if left >= PIECE else PATTERN[:left]
                if chunked:
                    self.write_chunk(piece)
                else:
                    self.wfile.write(piece)
                left -= len(piece)
            if chunked:
                self.wfile.write(b"0\r\n\r\n")
        elif path == "/secure-app":
            # What a well-configured application answers: its own security headers.
            self.drain()
            body = b"secure app\n"
            self.send_head(200, [("Content-Type", "text/plain; charset=utf-8"),
                                 ("Content-Length", str(len(body))),
                                 ("X-Content-Type-Options", "nosniff"),
                                 ("X-Frame-Options", "DENY"),
                                 ("Content-Security-Policy", "default-src 'none'"),
                                 ("Referrer-Policy", "no-referrer")])
            self.wfile.write(body)
        elif path == "/own-hsts":
            self.drain()
            body = b"own policy\n"
            self.send_head(200, [("Content-Type", "text/plain"), ("Content-Length", str(len(body))),
                                 ("Strict-Transport-Security", "max-age=60; includeSubDomains")])
            self.wfile.write(body)
        elif path.startswith("/status/"):
            self.drain()
            try:
                code = int(path[len("/status/"):])
            except ValueError:
                code = 400
            self.send_body(code, "status %d from %s\n" % (code, UPSTREAM_ID))
        else:
            self.drain()
            self.send_body(200, "upstream %s %s\n" % (UPSTREAM_ID, self.path))

    def control(self, query):
        with _lock:
            for name, values in query.items():
                kind = _MODE_TYPES.get(name)
                if kind is None:
                    continue
                try:
                    value = int(values[-1])
                except ValueError:
                    continue
                _modes[name] = bool(value) if kind is bool else value
            modes = dict(_modes)
        self.log_message("modes now %r", modes)
        self.send_json(modes)

    def reset(self):
        """Closes the connection with an RST (SO_LINGER 0) without answering."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            # rfile holds a reference to the socket; drop it so close() really closes (RST).
            self.rfile.close()
            self.connection.close()
        except OSError:
            pass

    def hang(self):
        """Never answers; returns when the peer closes (or after 600 s) and closes the connection."""
        self.close_connection = True
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            r, _, _ = select.select([self.connection], [], [], 1.0)
            if r:
                try:
                    if not self.connection.recv(4096):
                        return
                except OSError:
                    return


def main():
    global UPSTREAM_ID
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--id", default="u")
    ap.add_argument("--hang-all", action="store_true")
    ap.add_argument("--reset-all", action="store_true")
    ap.add_argument("--delay-ms", type=int, default=0)
    ap.add_argument("--healthz-status", type=int, default=200)
    ap.add_argument("--healthz-hang", action="store_true")
    args = ap.parse_args()
    UPSTREAM_ID = args.id
    _modes.update(hang_all=args.hang_all, reset_all=args.reset_all, delay_ms=args.delay_ms,
                  healthz_status=args.healthz_status, healthz_hang=args.healthz_hang)

    server = Server((args.host, args.port), Handler)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    signal.signal(signal.SIGINT, lambda *_: os._exit(0))
    sys.stdout.write("listening %d\n" % server.server_address[1])
    sys.stdout.flush()
    server.serve_forever(poll_interval=0.2)


if __name__ == "__main__":
    main()
