"""An HTTPS shim in front of Pebble 2.4.0 that adds ACME Renewal Information (RFC 9773).

Pebble 2.4.0 has no renewalInfo. The shim serves Pebble's directory with an added "renewalInfo"
URL that points at the shim, answers GET <renewalInfo>/<certID> with a suggestedWindow chosen by
the test, and records every request (time, certID, window; JWS url and payload of POSTs).

Two modes:
  "ari-only"  GET /dir returns Pebble's own directory (every URL points straight at Pebble) plus
              renewalInfo; nothing else is forwarded. The client talks to two origins.
  "proxy"     everything is forwarded to Pebble, byte for byte, with the client's Host header
              kept. Pebble builds its URLs from the Host header and checks the JWS "url" and
              the "kid" prefix against it, so to the client the shim *is* the CA (every URL in
              the directory, Location, Link and bodies is the shim's) and the JWS signatures stay
              valid. This is what lets a test read the newOrder payload ("replaces"). Forwarding
              only newOrder cannot work: its JWS "url" names the shim, while Pebble checks it
              against its own URL, and the account URL ("kid") must use the same host spelling.

Run by the tests in-process (AriShim(...).start()); `python3 ari_shim.py --help` runs it alone.
Loopback only; the shim's certificate (127.0.0.1, localhost) comes from a throw-away test CA.
"""

import argparse
import base64
import http.client
import http.server
import json
import os
import re
import ssl
import sys
import threading
import time
import traceback
import urllib.parse

import harness

RENEWAL_INFO_PATH = "/ari-shim/renewal-info"
# Hop-by-hop or recomputed headers that are not copied between the two connections.
_SKIP_REQUEST = {"connection", "keep-alive", "proxy-connection", "te", "trailer",
                 "transfer-encoding", "upgrade", "expect", "content-length"}
_SKIP_RESPONSE = {"connection", "keep-alive", "proxy-connection", "te", "trailer",
                  "transfer-encoding", "upgrade", "content-length"}
_CERT_ID = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$")
DAY = 86400


def _b64url_decode(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _rfc3339(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(t)))


class WindowPlan:
    """Which suggestedWindow each certID gets, fixed when the shim first sees that certID.

    The n-th distinct certID (0-based) gets windows[n] = (start offset s, length s) from the time
    of that first request, whole seconds; later ones get the last entry. retry_after: the
    Retry-After header (seconds) of every answer, or None for none.
    """

    def __init__(self, windows=((30 * DAY, DAY),), retry_after=None):
        self.windows = list(windows)
        self.retry_after = retry_after


class AriShim:
    def __init__(self, workdir, pebble_directory_url, pebble_ca, mode="ari-only", plan=None):
        if mode not in ("ari-only", "proxy"):
            raise ValueError("mode must be 'ari-only' or 'proxy'")
        self.workdir = workdir
        self.mode = mode
        self.plan = plan or WindowPlan()
        self.pebble_directory_url = pebble_directory_url
        u = urllib.parse.urlsplit(pebble_directory_url)
        self.pebble_host = u.hostname
        self.pebble_port = u.port or 443
        self.pebble_netloc = u.netloc
        self.pebble_dir_path = u.path or "/"
        self.pebble_ctx = ssl.create_default_context(cafile=pebble_ca)
        self.lock = threading.Lock()
        self.records = []  # dicts, in arrival order
        self.windows = {}  # certID -> (start, end) POSIX seconds, fixed at first sight
        self.log_path = os.path.join(workdir, "ari-shim.log")
        self.server = None
        self.thread = None
        self.port = None
        self.ca = None
        self.certs = None

    # --- lifetime ---

    def start(self):
        self.certs = harness.make_certs(os.path.join(self.workdir, "ari-shim-certs"),
                                        [["localhost", "IP:127.0.0.1"]], basenames=["shim"])
        self.ca = self.certs.ca
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.certs.leaves[0].cert, self.certs.leaves[0].key)
        ctx.set_alpn_protocols(["http/1.1"])
        shim = self

        class Handler(_Handler):
            pass

        Handler.shim = shim
        Handler.tls = ctx
        self.server = _Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.1}, name="ari-shim",
                                       daemon=True)
        self.thread.start()
        return self

    def stop(self):
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.thread.join(10)
            self.server = None

    # --- URLs ---

    @property
    def origin(self):
        return "https://127.0.0.1:%d" % self.port

    @property
    def directory_url(self):
        return self.origin + self.pebble_dir_path

    @property
    def renewal_info_url(self):
        return self.origin + RENEWAL_INFO_PATH

    # --- records ---

    def record(self, **fields):
        fields.setdefault("t", time.time())
        with self.lock:
            self.records.append(fields)
        with open(self.log_path, "a") as f:
            f.write(json.dumps(fields, default=repr) + "\n")

    def requests(self, kind=None):
        with self.lock:
            return [dict(r) for r in self.records if kind is None or r["kind"] == kind]

    def renewal_info_requests(self, cert_id=None):
        return [r for r in self.requests("renewalInfo")
                if cert_id is None or r["cert_id"] == cert_id]

    def new_orders(self):
        """Forwarded newOrder POSTs (proxy mode): dicts with "payload" (decoded JSON)."""
        return [r for r in self.requests("post") if r.get("jws_url", "").endswith("/order-plz")]

    def window_for(self, cert_id, now):
        with self.lock:
            if cert_id not in self.windows:
                index = min(len(self.windows), len(self.plan.windows) - 1)
                offset, length = self.plan.windows[index]
                start = int(now) + int(offset)
                self.windows[cert_id] = (start, start + int(length))
            return self.windows[cert_id]


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # A failed handshake or a dropped connection goes to the shim's log, not stderr.
        with open(self.RequestHandlerClass.shim.log_path, "a") as f:
            f.write("connection from %s: %s\n" % (client_address, traceback.format_exc(limit=2)))


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ari-shim"
    timeout = 60  # an idle keep-alive connection is dropped after this
    shim = None
    tls = None

    def setup(self):
        # The TLS handshake runs on the connection's own thread, not in the accept loop.
        self.request.settimeout(10)
        self.request = self.tls.wrap_socket(self.request, server_side=True)
        super().setup()

    def finish(self):
        try:
            super().finish()
        finally:
            self.request.close()  # the server closes only the socket it accepted

    def log_message(self, fmt, *args):
        with open(self.shim.log_path, "a") as f:
            f.write("%s %s\n" % (time.strftime("%H:%M:%S"), fmt % args))

    # --- responses ---

    def _send(self, status, body=b"", headers=(), head=False):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        if status not in (204, 304) and not head:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body and not head and status not in (204, 304):
            self.wfile.write(body)

    def _problem(self, status, detail, type_="urn:ietf:params:acme:error:malformed"):
        body = json.dumps({"type": type_, "detail": detail, "status": status}).encode()
        self._send(status, body, [("Content-Type", "application/problem+json")])

    # --- methods ---

    def do_GET(self):
        self._dispatch("GET")

    def do_HEAD(self):
        self._dispatch("HEAD")

    def do_POST(self):
        self._dispatch("POST")

    def _dispatch(self, method):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        path = urllib.parse.urlsplit(self.path).path
        try:
            if path.startswith(RENEWAL_INFO_PATH + "/") and method == "GET":
                return self._renewal_info(path[len(RENEWAL_INFO_PATH) + 1:])
            if path == self.shim.pebble_dir_path and method == "GET":
                return self._directory()
            if self.shim.mode == "proxy":
                return self._forward(method, body)
            self.shim.record(kind="refused", method=method, path=self.path)
            return self._problem(404, "ari-shim (ari-only mode) forwards nothing but the directory")
        except (OSError, http.client.HTTPException) as e:
            self.shim.record(kind="error", method=method, path=self.path, error=repr(e))
            return self._problem(502, "ari-shim: %r" % (e,),
                                 "urn:ietf:params:acme:error:serverInternal")

    def _renewal_info(self, cert_id):
        now = time.time()
        if not _CERT_ID.match(cert_id):
            self.shim.record(kind="renewalInfo", t=now, cert_id=cert_id, status=400)
            return self._problem(400, "malformed certID %r" % cert_id)
        start, end = self.shim.window_for(cert_id, now)
        self.shim.record(kind="renewalInfo", t=now, cert_id=cert_id, start=start, end=end,
                         status=200)
        body = json.dumps({"suggestedWindow": {"start": _rfc3339(start), "end": _rfc3339(end)}})
        headers = [("Content-Type", "application/json")]
        if self.shim.plan.retry_after is not None:
            headers.append(("Retry-After", str(int(self.shim.plan.retry_after))))
        self._send(200, body.encode(), headers)

    def _directory(self):
        # ari-only: Pebble's own URLs (Host = Pebble's); proxy: the client's Host, so the URLs
        # Pebble writes are the shim's.
        host = self.headers.get("Host") if self.shim.mode == "proxy" else self.shim.pebble_netloc
        status, headers, body = self._upstream("GET", self.shim.pebble_dir_path, b"",
                                               [("Host", host)])
        if status != 200:
            return self._send(status, body, headers)
        directory = json.loads(body)
        directory["renewalInfo"] = self.shim.renewal_info_url
        out = json.dumps(directory, indent=2).encode()
        self.shim.record(kind="directory", method="GET", path=self.path)
        self._send(200, out, [("Content-Type", "application/json")])

    def _forward(self, method, body):
        headers = [(k, v) for k, v in self.headers.items() if k.lower() not in _SKIP_REQUEST]
        status, out_headers, out_body = self._upstream(method, self.path, body, headers)
        rec = {"kind": method.lower(), "method": method, "path": self.path, "status": status}
        if method == "POST":
            try:
                jws = json.loads(body)
                protected = json.loads(_b64url_decode(jws["protected"]))
                rec["jws_url"] = protected.get("url", "")
                payload = _b64url_decode(jws["payload"])
                rec["payload"] = json.loads(payload) if payload else ""
            except (ValueError, KeyError, TypeError) as e:
                rec["decode_error"] = repr(e)
        self.shim.record(**rec)
        self._send(status, out_body, out_headers, head=(method == "HEAD"))

    def _upstream(self, method, path, body, headers):
        """One request to Pebble on a fresh connection: (status, [(name, value)], body)."""
        conn = http.client.HTTPSConnection(self.shim.pebble_host, self.shim.pebble_port,
                                           context=self.shim.pebble_ctx, timeout=30)
        try:
            conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
            for k, v in headers:
                conn.putheader(k, v)
            if method == "POST" or body:
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body if body else None)
            resp = conn.getresponse()
            data = resp.read()
            out = [(k, v) for k, v in resp.getheaders() if k.lower() not in _SKIP_RESPONSE]
            return resp.status, out, data
        finally:
            conn.close()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pebble-directory", required=True, help="e.g. https://127.0.0.1:14000/dir")
    p.add_argument("--pebble-ca", required=True,
                   help="CA bundle of Pebble's HTTPS (ACME_LAB_CA_BUNDLE)")
    p.add_argument("--mode", choices=("ari-only", "proxy"), default="ari-only")
    p.add_argument("--workdir", required=True, help="for the shim's certificate and log")
    p.add_argument("--window", action="append", default=[], metavar="OFFSET:LENGTH",
                   help="seconds, per distinct certID in order (repeat); default 30 days out")
    args = p.parse_args()
    windows = [tuple(int(x) for x in w.split(":")) for w in args.window] or [(30 * DAY, DAY)]
    os.makedirs(args.workdir, exist_ok=True)
    shim = AriShim(args.workdir, args.pebble_directory, args.pebble_ca, args.mode,
                   WindowPlan(windows)).start()
    print("listening %d directory %s ca %s" % (shim.port, shim.directory_url, shim.ca), flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        shim.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
