"""Shared helpers for frontdoor's integration tests (standard library + curl + openssl CLI).

Environment (set by tests/CMakeLists.txt):
  FRONTDOOR_BIN         the frontdoor binary (default: $FRONTDOOR_SOURCE_DIR/build/frontdoor)
  FRONTDOOR_SOURCE_DIR  repository root (default: two levels above this file)
  FRONTDOOR_SANITIZE    "1"/"ON"/"TRUE"/"YES" when the binary is built with ASan/UBSan
  FRONTDOOR_KEEP_TMP    "1" keeps the temporary directories (configs, logs) for inspection

Everything runs on 127.0.0.1; every wait is bounded; only processes started here are stopped.
"""

import functools
import hashlib
import ipaddress
import json
import os
import re
import select
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.environ.get("FRONTDOOR_SOURCE_DIR") or os.path.dirname(os.path.dirname(HERE))
BIN = os.environ.get("FRONTDOOR_BIN") or os.path.join(SOURCE_DIR, "build", "frontdoor")
UPSTREAM_PY = os.path.join(HERE, "upstream.py")
PYTHON = sys.executable or "/usr/bin/python3"


def _truthy(value):
    return (value or "").strip().upper() in ("1", "ON", "TRUE", "YES", "Y")


SANITIZE = _truthy(os.environ.get("FRONTDOOR_SANITIZE"))
KEEP_TMP = _truthy(os.environ.get("FRONTDOOR_KEEP_TMP"))
# Multiplier for timeouts that depend on the proxy's speed (start-up, shutdown, transfers).
SLOW = 4 if SANITIZE else 1

MIB = 1 << 20
PATTERN_PIECE = bytes(range(256)) * (MIB // 256)  # what upstream.py streams, 1 MiB at a time


def require_binary():
    """Raises AssertionError (so the test fails, not skips) when FRONTDOOR_BIN is unusable."""
    if not (os.path.isfile(BIN) and os.access(BIN, os.X_OK)):
        raise AssertionError("FRONTDOOR_BIN=%r is not an executable file (build frontdoor first)" % BIN)


# --- small utilities -------------------------------------------------------------------------


_ports_handed_out = set()


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago, and never one this process handed out
    before: the kernel can pick the same ephemeral port for two binds in a row, and a config
    would then name one port for two listeners."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _ports_handed_out:
            _ports_handed_out.add(port)
            return port
    raise AssertionError("no fresh free port in 100 tries")


def wait_for(predicate, timeout, interval=0.05, what="condition"):
    """Polls predicate() until it returns a truthy value (returned) or raises AssertionError."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %.1fs waiting for %s" % (timeout, what))
        time.sleep(interval)


def tcp_accepts(host, port, timeout=0.5):
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


@functools.lru_cache(maxsize=16)
def pattern_sha256(nbytes):
    """sha256 hex of the first nbytes of upstream.py's pattern (bytes(range(256)) repeated)."""
    h = hashlib.sha256()
    full, rest = divmod(nbytes, MIB)
    for _ in range(full):
        h.update(PATTERN_PIECE)
    h.update(PATTERN_PIECE[:rest])
    return h.hexdigest()


def write_pattern(fileobj, nbytes):
    """Writes nbytes of the pattern to fileobj in 1 MiB pieces."""
    left = nbytes
    while left > 0:
        piece = PATTERN_PIECE if left >= MIB else PATTERN_PIECE[:left]
        fileobj.write(piece)
        left -= len(piece)


def read_text(path, limit=None):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return ""
    if limit is not None and len(data) > limit:
        data = b"...\n" + data[-limit:]
    return data.decode("utf-8", "replace")


def run(cmd, timeout=30, env=None, input=None, cwd=None):
    """subprocess.run with captured text output and a bound on time (TimeoutExpired -> fail)."""
    try:
        return subprocess.run(cmd, capture_output=True, timeout=timeout, env=env, input=input,
                              cwd=cwd)
    except subprocess.TimeoutExpired as e:
        raise AssertionError("command did not finish in %ss: %r\nstdout: %r\nstderr: %r"
                             % (timeout, cmd, e.stdout, e.stderr))


class TempDir:
    """A temporary directory removed on cleanup() unless FRONTDOOR_KEEP_TMP is set."""

    def __init__(self, prefix="fd-it-"):
        self.path = tempfile.mkdtemp(prefix=prefix)

    def join(self, *parts):
        return os.path.join(self.path, *parts)

    def cleanup(self):
        if KEEP_TMP:
            sys.stderr.write("keeping %s\n" % self.path)
            return
        shutil.rmtree(self.path, ignore_errors=True)


# --- certificates ----------------------------------------------------------------------------


class Leaf:
    def __init__(self, cert, key, cn, sans):
        self.cert = cert
        self.key = key
        self.cn = cn
        self.sans = sans

    def __repr__(self):
        return "Leaf(cn=%r, sans=%r)" % (self.cn, self.sans)


class Certs:
    def __init__(self, ca_cert, ca_key, leaves):
        self.ca = ca_cert
        self.ca_key = ca_key
        self.leaves = leaves

    def config_list(self):
        """The tls.certificates list for a config, in the given order (first = default)."""
        return [{"cert": leaf.cert, "key": leaf.key} for leaf in self.leaves]


def _openssl(args, timeout=30):
    r = run(["openssl"] + args, timeout=timeout)
    if r.returncode != 0:
        raise AssertionError("openssl %s failed: %s" % (" ".join(args), r.stderr.decode(errors="replace")))
    return r


def make_certs(directory, names, basenames=None):
    """Creates a test CA (P-256) and one leaf per SAN list in |names| with the openssl CLI.

    names: e.g. [["localhost", "IP:127.0.0.1"], ["a.test"], ["*.b.test"]]; plain entries are DNS
    names, "IP:..." entries IP addresses. Each leaf's CN is its first DNS name (distinct per
    leaf). basenames: optional file base names (e.g. ["localhost"] -> localhost.crt/.key).
    Keys are written 0600. Returns Certs(ca, ca_key, [Leaf(cert, key, cn, sans), ...]).
    """
    os.makedirs(directory, exist_ok=True)
    ca_key = os.path.join(directory, "test-ca.key")
    ca_cert = os.path.join(directory, "test-ca.crt")
    _openssl(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", ca_key])
    os.chmod(ca_key, 0o600)
    _openssl(["req", "-x509", "-new", "-key", ca_key, "-sha256", "-days", "30",
              "-subj", "/CN=frontdoor integration test CA %d" % os.getpid(),
              "-addext", "basicConstraints=critical,CA:TRUE",
              "-addext", "keyUsage=critical,keyCertSign,cRLSign",
              "-addext", "subjectKeyIdentifier=hash",
              "-out", ca_cert])
    leaves = []
    used_cns = set()
    for i, sans in enumerate(names):
        base = basenames[i] if basenames else "leaf%d" % i
        key = os.path.join(directory, base + ".key")
        cert = os.path.join(directory, base + ".crt")
        csr = os.path.join(directory, base + ".csr")
        ext = os.path.join(directory, base + ".ext")
        san_entries = []
        dns = []
        for name in sans:
            if name.startswith("IP:"):
                san_entries.append(name)
            else:
                name = name[4:] if name.startswith("DNS:") else name
                san_entries.append("DNS:" + name)
                dns.append(name)
        cn = dns[0] if dns else sans[0][3:]
        if cn in used_cns:
            cn = "%s #%d" % (cn, i)
        used_cns.add(cn)
        _openssl(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", key])
        os.chmod(key, 0o600)
        _openssl(["req", "-new", "-key", key, "-subj", "/CN=" + cn, "-out", csr])
        with open(ext, "w") as f:
            f.write("basicConstraints=critical,CA:FALSE\n"
                    "keyUsage=critical,digitalSignature\n"
                    "extendedKeyUsage=serverAuth\n"
                    "subjectKeyIdentifier=hash\n"
                    "authorityKeyIdentifier=keyid\n"
                    "subjectAltName=%s\n" % ",".join(san_entries))
        _openssl(["x509", "-req", "-in", csr, "-CA", ca_cert, "-CAkey", ca_key,
                  "-CAcreateserial", "-days", "30", "-sha256", "-extfile", ext, "-out", cert])
        leaves.append(Leaf(cert, key, cn, list(sans)))
    return Certs(ca_cert, ca_key, leaves)


# --- upstream servers ------------------------------------------------------------------------


class Upstream:
    """tests/integration/upstream.py as a subprocess on 127.0.0.1 (or |host|, any 127.0.0.0/8
    address on Linux).

    port=0 (default) lets the kernel pick a free port; upstream.py announces it with
    "listening PORT" once it listens, so readiness needs no TCP connection of ours (which
    would count in /stats). args: extra upstream.py flags, e.g. ["--hang-all"].
    """

    def __init__(self, uid, port=0, log_dir=None, host="127.0.0.1", args=()):
        self.id = uid
        self.port = port
        self.log_dir = log_dir
        self.host = host
        self.args = list(args)
        self.proc = None
        self.log_path = None

    @property
    def address(self):
        return "%s:%d" % (self.host, self.port)

    def start(self, timeout=10):
        if self.log_dir:
            self.log_path = os.path.join(self.log_dir, "upstream-%s.log" % self.id)
            err = open(self.log_path, "ab")
        else:
            err = subprocess.DEVNULL
        try:
            self.proc = subprocess.Popen(
                [PYTHON, UPSTREAM_PY, "--port", str(self.port), "--id", self.id,
                 "--host", self.host] + self.args,
                stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL)
        finally:
            if err is not subprocess.DEVNULL:
                err.close()
        deadline = time.monotonic() + timeout
        line = b""
        fd = self.proc.stdout.fileno()
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0:
                self.stop()
                raise AssertionError("upstream %s did not start in %ss" % (self.id, timeout))
            r, _, _ = select.select([fd], [], [], left)
            if r:
                chunk = os.read(fd, 256)
                if not chunk:
                    code = self.proc.wait(timeout=5)
                    raise AssertionError("upstream %s exited with %s before listening: %s"
                                         % (self.id, code, read_text(self.log_path or "", 2000)))
                line += chunk
        m = re.match(rb"listening (\d+)", line)
        if not m:
            self.stop()
            raise AssertionError("upstream %s said %r" % (self.id, line))
        self.port = int(m.group(1))
        return self

    def request(self, path, method="GET", timeout=10):
        """A direct request (new connection, Connection: close): (status, headers dict, body)."""
        with socket.create_connection((self.host, self.port), timeout=timeout) as s:
            s.sendall(("%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n"
                       % (method, path, self.address)).encode())
            return read_response(s, timeout=timeout)

    def stats(self):
        """{"connections": N, "requests": M}; the connection carrying this query counts in N."""
        status, _, body = self.request("/stats")
        assert status == 200, (status, body)
        return json.loads(body)

    def control(self, **modes):
        """Sets upstream.py modes at run time (hang_all, reset_all, healthz_hang: bool;
        delay_ms, healthz_status: int); returns the modes now in force."""
        query = urllib.parse.urlencode({k: int(v) for k, v in modes.items()})
        status, _, body = self.request("/control?" + query)
        assert status == 200, (status, body)
        return json.loads(body)

    def path_count(self, path):
        """How many requests for |path| (health checks included) this upstream has received."""
        return self.stats()["paths"].get(path, 0)

    def kill(self, timeout=5):
        """SIGKILL (no clean shutdown) and reap; the port is free again afterwards."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=timeout)
        if self.proc.stdout:
            self.proc.stdout.close()
        return self.proc.returncode

    def stop(self, timeout=5):
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=timeout)
        if self.proc.stdout:
            self.proc.stdout.close()
        return self.proc.returncode


# --- the proxy -------------------------------------------------------------------------------


def sanitizer_env(extra_asan=""):
    """Environment additions so that an ASan/LSan/UBSan report makes the process fail."""
    if not SANITIZE:
        return {}
    asan = "abort_on_error=1:halt_on_error=1:detect_leaks=1:detect_stack_use_after_return=0"
    if extra_asan:
        asan += ":" + extra_asan
    prior = os.environ.get("ASAN_OPTIONS")
    return {
        "ASAN_OPTIONS": (prior + ":" + asan) if prior else asan,
        "UBSAN_OPTIONS": "halt_on_error=1:abort_on_error=1:print_stacktrace=1",
        "LSAN_OPTIONS": os.environ.get("LSAN_OPTIONS", "") or "report_objects=0",
    }


def listen_ports(config):
    """[(host, port)] to probe for each listener of a config dict."""
    out = []
    for listener in config.get("listen", []):
        host, _, port = listener["address"].rpartition(":")
        host = host.strip("[]")
        if host in ("", "*", "0.0.0.0"):
            host = "127.0.0.1"
        elif host == "::":
            host = "::1"
        out.append((host, int(port)))
    return out


class Frontdoor:
    """One frontdoor process.

    config: a dict (written as JSON, which is YAML) or a str (written verbatim as YAML);
    args: the command line after the binary (default: ["-c", <config file>]);
    wait: [(host, port)] that must accept TCP before start() returns (default: every listener).
    stdout (JSON log lines) and stderr are captured to files in workdir.
    """

    _seq = 0

    def __init__(self, workdir, config=None, args=None, env=None, wait=None, name=None,
                 asan_extra=""):
        Frontdoor._seq += 1
        self.name = name or "frontdoor%d" % Frontdoor._seq
        self.workdir = workdir
        self.config = config
        self.config_path = os.path.join(workdir, self.name + ".yaml")
        self.stdout_path = os.path.join(workdir, self.name + ".stdout")
        self.stderr_path = os.path.join(workdir, self.name + ".stderr")
        self.args = args
        self.env = dict(os.environ)
        self.env.update(sanitizer_env(asan_extra))
        if env:
            self.env.update(env)
        if wait is None:
            wait = listen_ports(config) if isinstance(config, dict) else []
        self.wait = wait
        self.proc = None
        self.exit_code = None
        # Exit codes close() accepts under sanitizers (a test expecting e.g. 2 changes this).
        self.ok_codes = {0}

    @property
    def pid(self):
        return self.proc.pid

    def write_config(self):
        if self.config is None:
            return
        with open(self.config_path, "w") as f:
            if isinstance(self.config, str):
                f.write(self.config)
            else:
                json.dump(self.config, f, indent=2)
                f.write("\n")

    def launch(self):
        """Writes the config and starts the process without waiting for readiness."""
        require_binary()
        self.write_config()
        args = self.args if self.args is not None else ["-c", self.config_path]
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen([BIN] + list(args), stdout=out, stderr=err,
                                         stdin=subprocess.DEVNULL, env=self.env)
        return self

    def start(self, timeout=10):
        """launch() and wait (timeout s, times SLOW) until every listener accepts TCP."""
        self.launch()
        self.wait_ready(timeout * SLOW)
        return self

    def wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        pending = list(self.wait)
        while pending:
            code = self.proc.poll()
            if code is not None:
                self.exit_code = code
                raise AssertionError("frontdoor exited with %s during start-up\n%s"
                                     % (code, self.tail()))
            host, port = pending[0]
            if tcp_accepts(host, port, timeout=0.5):
                pending.pop(0)
                continue
            if time.monotonic() >= deadline:
                self.kill()
                raise AssertionError("frontdoor did not accept on %s:%d within %ss\n%s"
                                     % (host, port, timeout, self.tail()))
            time.sleep(0.05)

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def assert_running(self):
        if not self.running():
            raise AssertionError("frontdoor is not running (exit %s)\n%s"
                                 % (self.proc.poll() if self.proc else None, self.tail()))

    # --- output ---

    def log_text(self):
        return read_text(self.stdout_path)

    def stderr_text(self):
        return read_text(self.stderr_path)

    def log_lines(self):
        """Parsed JSON objects, one per stdout line (lines that are not JSON are skipped)."""
        out = []
        for line in self.log_text().splitlines():
            line = line.strip()
            if not line:
                continue
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if isinstance(obj, dict):
                out.append(obj)
        return out

    def non_json_lines(self):
        bad = []
        for line in self.log_text().splitlines():
            if not line.strip():
                continue
            try:
                if not isinstance(json.loads(line), dict):
                    bad.append(line)
            except ValueError:
                bad.append(line)
        return bad

    def access_lines(self):
        return [o for o in self.log_lines() if o.get("msg") == "access"]

    def tail(self, limit=3000):
        return ("--- %s stdout (tail) ---\n%s\n--- %s stderr (tail) ---\n%s"
                % (self.name, read_text(self.stdout_path, limit), self.name,
                   read_text(self.stderr_path, limit)))

    def sanitizer_report(self):
        err = self.stderr_text()
        for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                       "ERROR: ThreadSanitizer"):
            if marker in err:
                return err
        return None

    # --- /proc ---

    def _proc_status(self, field):
        try:
            with open("/proc/%d/status" % self.proc.pid) as f:
                for line in f:
                    if line.startswith(field + ":"):
                        return int(line.split()[1])
        except OSError:
            return None
        return None

    def rss_kib(self):
        return self._proc_status("VmRSS")

    def hwm_kib(self):
        return self._proc_status("VmHWM")

    def threads(self):
        return self._proc_status("Threads")

    # --- lifetime ---

    def send_signal(self, sig):
        if self.running():
            self.proc.send_signal(sig)

    def reload(self, config, generation):
        """Writes |config| as the config file, sends SIGHUP and waits (10 s, times SLOW) for the
        "configuration reloaded" line of |generation|."""
        self.config = config
        self.write_config()
        self.send_signal(signal.SIGHUP)
        wait_for(lambda: any(l.get("msg") == "configuration reloaded" and
                             l.get("generation") == generation for l in self.log_lines()),
                 10 * SLOW, what="reload to generation %d" % generation)

    def wait_exit(self, timeout):
        """Exit code, or None if still running after timeout."""
        try:
            self.exit_code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        return self.exit_code

    def stop(self, sig=signal.SIGTERM, timeout=15):
        """Sends sig and waits; returns the exit code. If it does not exit within timeout*SLOW,
        kills it and raises AssertionError."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            code = self.wait_exit(timeout * SLOW)
            if code is None:
                self.kill()
                raise AssertionError("frontdoor did not exit within %ss of signal %s\n%s"
                                     % (timeout * SLOW, sig, self.tail()))
        self.exit_code = self.proc.returncode
        return self.exit_code

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass

    def close(self):
        """Cleanup: stop if still running. Under sanitizers a non-zero exit or a sanitizer
        report fails the test (leaks are only reported at exit)."""
        if self.proc is None:
            return
        try:
            code = self.stop(timeout=15)
        except AssertionError:
            if SANITIZE:
                raise
            return
        if SANITIZE:
            report = self.sanitizer_report()
            if report or (code is not None and code not in self.ok_codes):
                raise AssertionError("frontdoor (sanitized) exited with %s\n%s" % (code, self.tail(8000)))


def tls_config(port, certs, upstreams, routes=None, workers=2, access=True, level="info",
               **extra):
    """A config dict: one TLS listener on 127.0.0.1:port, all of certs' leaves, upstream groups
    (name -> list of "host:port", or name -> dict of upstream keys) and routes (default: "/" to
    the first group). Extra top-level keys (limits, shutdown_timeout, ...) pass through."""
    groups = {}
    for name, value in upstreams.items():
        groups[name] = {"servers": list(value)} if isinstance(value, (list, tuple)) else value
    if routes is None:
        routes = [{"match": {"path_prefix": "/"}, "upstream": next(iter(groups))}]
    cfg = {
        "listen": [{"address": "127.0.0.1:%d" % port, "tls": True}],
        "tls": {"certificates": certs.config_list()},
        "upstreams": groups,
        "routes": routes,
        "log": {"level": level, "access": access},
        "workers": workers,
    }
    cfg.update(extra)
    return cfg


# --- clients ---------------------------------------------------------------------------------


class CurlResult:
    """One transfer: status (0 when no response), headers (lowercase name -> value, repeated
    names joined with ", "), header_list [(name, value)], body bytes, plus rc/stderr of curl,
    num_connects and http_version. Unpacks as (status, headers, body)."""

    def __init__(self, status, header_list, body, rc=0, stderr="", num_connects=None,
                 http_version=None, size_download=None):
        self.status = status
        self.header_list = header_list
        self.headers = {}
        for name, value in header_list:
            key = name.lower()
            self.headers[key] = self.headers[key] + ", " + value if key in self.headers else value
        self.body = body
        self.rc = rc
        self.stderr = stderr
        self.num_connects = num_connects
        self.http_version = http_version
        self.size_download = size_download

    def __iter__(self):
        return iter((self.status, self.headers, self.body))

    def __repr__(self):
        return ("CurlResult(status=%r, rc=%r, headers=%r, body=%r, stderr=%r)"
                % (self.status, self.rc, self.headers, self.body[:300], self.stderr[-500:]))


def _parse_header_blocks(text):
    """Splits curl -D output into [(status, [(name, value)])], one per response head."""
    blocks = []
    cur = None
    for line in text.split("\n"):
        line = line.rstrip("\r")
        if line.startswith("HTTP/"):
            parts = line.split(" ", 2)
            try:
                status = int(parts[1])
            except (IndexError, ValueError):
                status = 0
            cur = (status, [])
            blocks.append(cur)
        elif line == "":
            cur = None
        elif cur is not None and ":" in line:
            name, _, value = line.partition(":")
            cur[1].append((name.strip(), value.strip()))
    return blocks


def _resolve_args(url):
    u = urllib.parse.urlsplit(url)
    host = u.hostname
    try:
        ipaddress.ip_address(host)
        return []
    except ValueError:
        pass
    port = u.port or (443 if u.scheme == "https" else 80)
    return ["--resolve", "%s:%d:127.0.0.1" % (host, port)]


_WRITE_OUT = "%{http_code} %{num_connects} %{http_version} %{size_download}\\n"


def curl_many(urls, *args, ca=None, http="1.1", timeout=30, input=None, env=None):
    """Runs ONE curl process fetching every URL in order (so they share a keep-alive
    connection when possible); returns [CurlResult] per URL. Host names resolve to 127.0.0.1.
    http: "1.1", "2" or None (curl's default negotiation). Extra args go before the URLs."""
    tmp = tempfile.mkdtemp(prefix="fd-curl-")
    try:
        headers_path = os.path.join(tmp, "headers")
        cmd = ["curl", "-sS", "-D", headers_path, "-w", _WRITE_OUT, "--max-time", str(timeout)]
        if ca:
            cmd += ["--cacert", ca]
        if http == "1.1":
            cmd.append("--http1.1")
        elif http == "2":
            cmd.append("--http2")
        seen = set()
        for url in urls:
            resolve = _resolve_args(url)
            if resolve and resolve[1] not in seen:
                seen.add(resolve[1])
                cmd += resolve
        cmd += list(args)
        bodies = []
        for i, url in enumerate(urls):
            body_path = os.path.join(tmp, "body%d" % i)
            bodies.append(body_path)
            cmd += ["-o", body_path, url]
        r = run(cmd, timeout=timeout + 10, input=input, env=env)
        stderr = r.stderr.decode(errors="replace")
        infos = [line.split() for line in r.stdout.decode(errors="replace").splitlines() if line.strip()]
        blocks = _parse_header_blocks(read_text(headers_path))
        finals = []
        for status, hl in blocks:
            if status >= 200 or status == 0:
                finals.append((status, hl))
        results = []
        for i, url in enumerate(urls):
            info = infos[i] if i < len(infos) else ["000", "0", "0", "0"]
            status = int(info[0]) if info[0].isdigit() else 0
            hl = finals[i][1] if i < len(finals) and status else []
            try:
                with open(bodies[i], "rb") as f:
                    body = f.read()
            except OSError:
                body = b""
            results.append(CurlResult(status, hl, body, rc=r.returncode, stderr=stderr,
                                      num_connects=int(info[1]) if len(info) > 1 else None,
                                      http_version=info[2] if len(info) > 2 else None,
                                      size_download=int(info[3]) if len(info) > 3 else None))
        return results
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def curl(url, *args, ca=None, http="1.1", timeout=30, input=None, env=None):
    """One request with curl; returns CurlResult, which unpacks as (status, headers, body).
    Equivalent to curl -sS --cacert CA --resolve host:port:127.0.0.1 -D headerfile -o bodyfile
    -w '%{http_code}' URL."""
    return curl_many([url], *args, ca=ca, http=http, timeout=timeout, input=input, env=env)[0]


def client_context(ca=None, alpn=None, min_version=None, max_version=None):
    ctx = ssl.create_default_context(cafile=ca) if ca else ssl._create_unverified_context()
    if alpn:
        ctx.set_alpn_protocols(alpn)
    if min_version:
        ctx.minimum_version = min_version
    if max_version:
        ctx.maximum_version = max_version
    return ctx


def tls_connect(port, server_hostname="localhost", ca=None, timeout=5, alpn=("http/1.1",),
                host="127.0.0.1"):
    """A connected, handshaken TLS socket to host:port verified against ca (if given)."""
    ctx = client_context(ca, list(alpn) if alpn else None)
    raw = socket.create_connection((host, port), timeout=timeout)
    try:
        s = ctx.wrap_socket(raw, server_hostname=server_hostname)
    except Exception:
        raw.close()
        raise
    s.settimeout(timeout)
    return s


def read_until_close(sock, timeout=5):
    """Reads until EOF, a reset or timeout: returns (data, closed) where closed is True when
    the peer closed (EOF, reset, TLS close) and False on timeout."""
    deadline = time.monotonic() + timeout
    data = b""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return data, False
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except (socket.timeout, TimeoutError):
            return data, False
        except ssl.SSLWantReadError:
            continue
        except (ConnectionError, ssl.SSLError, OSError):
            return data, True
        if not chunk:
            return data, True
        data += chunk


def raw_tls_exchange(port, payload, server_hostname="localhost", ca=None, timeout=5):
    """Opens a TLS connection, sends payload bytes, reads until close or timeout.
    Returns (response bytes, closed)."""
    with tls_connect(port, server_hostname, ca, timeout) as s:
        s.sendall(payload)
        return read_until_close(s, timeout)


class _Reader:
    def __init__(self, sock, deadline):
        self.sock = sock
        self.buf = b""
        self.deadline = deadline

    def _fill(self):
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("timed out reading a response")
        self.sock.settimeout(left)
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed mid-response (have %r)" % self.buf[:200])
        self.buf += chunk

    def line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def exact(self, n):
        while len(self.buf) < n:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def rest(self):
        while True:
            try:
                self._fill()
            except ConnectionError:
                break
        data, self.buf = self.buf, b""
        return data


def read_response(sock, timeout=10, head_only=False):
    """Reads one HTTP/1.x response from a (TLS) socket: (status, headers dict lowercased, body).
    Handles Content-Length, chunked and read-to-close bodies; skips 1xx heads."""
    r = _Reader(sock, time.monotonic() + timeout)
    while True:
        status_line = r.line()
        parts = status_line.split(b" ", 2)
        status = int(parts[1])
        headers = {}
        while True:
            line = r.line()
            if not line:
                break
            name, _, value = line.partition(b":")
            key = name.strip().lower().decode()
            value = value.strip().decode("latin-1")
            headers[key] = headers[key] + ", " + value if key in headers else value
        if 100 <= status < 200:
            continue
        break
    if head_only or status in (204, 304):
        return status, headers, b""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = b""
        while True:
            size = int(r.line().split(b";")[0].strip(), 16)
            if size == 0:
                while r.line():
                    pass
                break
            body += r.exact(size)
            r.line()
        return status, headers, body
    if "content-length" in headers:
        return status, headers, r.exact(int(headers["content-length"]))
    return status, headers, r.rest()


def s_client(port, *args, timeout=15, stdin=b""):
    """openssl s_client -connect 127.0.0.1:port ARGS </dev/null -> (returncode, stdout+stderr)."""
    r = run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port] + list(args),
            timeout=timeout, input=stdin)
    out = r.stdout.decode(errors="replace") + r.stderr.decode(errors="replace")
    # Drop the PEM block so failure messages stay readable.
    out = re.sub(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----\n?", "[PEM]\n", out,
                 flags=re.S)
    out = re.sub(r"(?m)^\s+[0-9a-f]{4} - .*\n", "", out)  # session ticket hex dumps
    return r.returncode, out


def peer_cn(s_client_output):
    """The peer certificate's CN from s_client output ("subject=CN = a.test"), or None."""
    m = re.search(r"^subject=.*?CN\s*=\s*([^,/\n]+)", s_client_output, re.M)
    return m.group(1).strip() if m else None


def echo_headers(echo, name):
    """Values of header |name| (case-insensitive) in an /echo JSON reply, in received order."""
    return [v for k, v in echo["headers"] if k.lower() == name.lower()]


# --- test case base --------------------------------------------------------------------------


class ProxyTestCase(unittest.TestCase):
    """Per-class temp dir and helpers to start upstreams and proxies that are cleaned up."""

    cert_names = [["localhost", "IP:127.0.0.1"]]

    @classmethod
    def setUpClass(cls):
        require_binary()
        cls.tmp = TempDir()
        cls._fd_cleanups = []
        try:
            cls.certs = make_certs(cls.tmp.join("certs"), cls.cert_names)
        except Exception:
            cls.tmp.cleanup()
            raise

    @classmethod
    def tearDownClass(cls):
        errors = []
        for fn in reversed(cls._fd_cleanups):
            try:
                fn()
            except Exception as e:  # keep cleaning up
                errors.append(e)
        cls.tmp.cleanup()
        if errors:
            raise errors[0]

    @classmethod
    def class_upstream(cls, uid, **kw):
        up = Upstream(uid, log_dir=cls.tmp.path, **kw).start()
        cls._fd_cleanups.append(up.stop)
        return up

    @classmethod
    def class_frontdoor(cls, config, **kw):
        fd = Frontdoor(cls.tmp.path, config, **kw)
        cls._fd_cleanups.append(fd.close)
        fd.start()
        return fd

    def upstream(self, uid, **kw):
        up = Upstream(uid, log_dir=self.tmp.path, **kw).start()
        self.addCleanup(up.stop)
        return up

    def frontdoor(self, config, start=True, **kw):
        fd = Frontdoor(self.tmp.path, config, **kw)
        self.addCleanup(fd.close)
        if start:
            fd.start()
        return fd

    def frontdoor_with_admin(self, upstreams, routes=None, admin_host="127.0.0.1",
                             admin_port=None, env=None, **extra):
        """Starts frontdoor with tls_config(...) plus an admin listener on admin_host (a free
        port unless given); returns (public port, Frontdoor, AdminClient) once both accept."""
        port = free_port()
        if admin_port is None:
            admin_port = free_port_on([admin_host])
        admin_address = "%s:%d" % (admin_host, admin_port)
        cfg = tls_config(port, self.certs, upstreams, routes=routes,
                         admin={"address": admin_address}, **extra)
        fd = self.frontdoor(cfg, env=env)
        admin = AdminClient(admin_address)
        try:
            admin.wait_listening()
        except AssertionError as e:
            raise AssertionError("%s\n%s" % (e, fd.tail()))
        return port, fd, admin

    def url(self, port, path="/", host="localhost"):
        return "https://%s:%d%s" % (host, port, path)

    def get(self, port, path="/", host="localhost", *args, **kw):
        kw.setdefault("ca", self.certs.ca)
        return curl(self.url(port, path, host), *args, **kw)


# --- health, balancing, admin and resolution helpers ------------------------------------------


@functools.lru_cache(maxsize=1)
def frontdoor_version():
    """The version frontdoor reports ("0.1.0" from a first line "frontdoor 0.1.0")."""
    require_binary()
    r = run([BIN, "--version"], timeout=10)
    first = r.stdout.decode(errors="replace").strip().splitlines()[:1]
    if r.returncode != 0 or not first:
        raise AssertionError("frontdoor --version failed: %r %r" % (r.stdout, r.stderr))
    return first[0].split()[-1]


def free_port_on(hosts, attempts=50):
    """A TCP port that was free a moment ago on every address in |hosts| (127.0.0.0/8)."""
    for _ in range(attempts):
        port = free_port()
        ok = True
        for host in hosts:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                try:
                    s.bind((host, port))
                except OSError:
                    ok = False
                    break
        if ok:
            return port
    raise AssertionError("no port free on all of %r" % (hosts,))


def write_hosts_file(path, entries, comment="frontdoor integration test"):
    """Atomically (rename) writes an /etc/hosts-format file: entries = [(ip, name), ...]."""
    tmp_path = path + ".tmp"
    with open(tmp_path, "w") as f:
        f.write("# %s\n" % comment)
        for ip, name in entries:
            f.write("%s %s\n" % (ip, name))
    os.replace(tmp_path, path)


class AdminClient:
    """Plain-HTTP client for frontdoor's admin listener (GET /status, /metrics, /ready)."""

    def __init__(self, address, timeout=5):
        host, _, port = address.rpartition(":")
        self.host = host.strip("[]")
        self.port = int(port)
        self.timeout = timeout * SLOW

    @property
    def address(self):
        return "%s:%d" % (self.host, self.port)

    def wait_listening(self, timeout=10):
        wait_for(lambda: tcp_accepts(self.host, self.port), timeout * SLOW,
                 what="admin listener on %s" % self.address)
        return self

    def get(self, path, method="GET"):
        """(status, headers dict lowercased, body bytes) over a new connection."""
        with socket.create_connection((self.host, self.port), timeout=self.timeout) as s:
            s.sendall(("%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n"
                       % (method, path, self.address)).encode())
            return read_response(s, timeout=self.timeout, head_only=(method == "HEAD"))

    def status(self):
        code, headers, body = self.get("/status")
        if code != 200:
            raise AssertionError("admin /status answered %s: %r" % (code, body[:500]))
        try:
            return json.loads(body)
        except ValueError:
            raise AssertionError("admin /status is not JSON: %r" % body[:500])

    def metrics(self):
        code, headers, body = self.get("/metrics")
        if code != 200:
            raise AssertionError("admin /metrics answered %s: %r" % (code, body[:500]))
        return body.decode("utf-8")

    def upstream(self, name, status=None):
        status = status if status is not None else self.status()
        for u in status.get("upstreams", []):
            if u.get("name") == name:
                return u
        return None

    def servers(self, upstream, status=None):
        u = self.upstream(upstream, status)
        return list(u.get("servers", [])) if u else []

    def server(self, upstream, address, status=None):
        for srv in self.servers(upstream, status):
            if srv.get("address") == address:
                return srv
        return None

    def wait_server(self, upstream, address, predicate, timeout, what, interval=0.05):
        """Polls /status until predicate(server dict) is true; returns that server dict."""
        last = [None]

        def probe():
            srv = self.server(upstream, address)
            last[0] = srv
            return srv if srv is not None and predicate(srv) else None

        try:
            return wait_for(probe, timeout, interval=interval, what=what)
        except AssertionError as e:
            raise AssertionError("%s; last seen: %r" % (e, last[0]))

    def wait_health(self, upstream, address, health, timeout, interval=0.05):
        return self.wait_server(upstream, address, lambda s: s.get("health") == health, timeout,
                                "%s %s health %r" % (upstream, address, health), interval)


_METRIC_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+(-?\d+))?\s*$")
_LABEL_PAIR = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(,|$)')


def _unescape_label(value):
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "\\": "\\", '"': '"'}.get(m.group(1),
                                                                          "\\" + m.group(1)), value)


class Metrics:
    """Prometheus text exposition, parsed: types {family: type}, helps {family: text},
    samples [(name, labels dict, value float)]; errors lists lines that did not parse."""

    def __init__(self, text):
        self.text = text
        self.types = {}
        self.helps = {}
        self.samples = []
        self.errors = []
        for raw in text.splitlines():
            line = raw.strip()
            if not line:
                continue
            if line.startswith("#"):
                parts = line.split(None, 3)
                if len(parts) >= 3 and parts[1] == "TYPE":
                    self.types[parts[2]] = parts[3].strip() if len(parts) > 3 else ""
                elif len(parts) >= 3 and parts[1] == "HELP":
                    self.helps[parts[2]] = parts[3] if len(parts) > 3 else ""
                continue
            m = _METRIC_LINE.match(line)
            if not m:
                self.errors.append(raw)
                continue
            name, label_text, value_text = m.group(1), m.group(2) or "", m.group(3)
            labels = {}
            pos = 0
            bad = False
            while pos < len(label_text):
                lm = _LABEL_PAIR.match(label_text, pos)
                if not lm or lm.end() == pos:
                    bad = True
                    break
                labels[lm.group(1)] = _unescape_label(lm.group(2))
                pos = lm.end()
            try:
                value = float(value_text)
            except ValueError:
                bad = True
            if bad:
                self.errors.append(raw)
                continue
            self.samples.append((name, labels, value))

    def family_of(self, sample_name):
        if sample_name in self.types:
            return sample_name
        for suffix in ("_bucket", "_sum", "_count", "_total", "_created"):
            if sample_name.endswith(suffix) and sample_name[:-len(suffix)] in self.types:
                return sample_name[:-len(suffix)]
        return None

    def find(self, name, **labels):
        """Samples named |name| whose labels include |labels|: [(labels, value)]."""
        return [(l, v) for n, l, v in self.samples
                if n == name and all(l.get(k) == str(want) for k, want in labels.items())]

    def value(self, name, **labels):
        """The one sample matching, or None when there is none (AssertionError when several)."""
        found = self.find(name, **labels)
        if not found:
            return None
        if len(found) > 1:
            raise AssertionError("several %s samples match %r: %r" % (name, labels, found))
        return found[0][1]

    def total(self, name, **labels):
        return sum(v for _, v in self.find(name, **labels))


class KeepAliveLoad:
    """Bounded HTTPS load: |threads| Python threads, each with its own keep-alive TLS
    connection to 127.0.0.1:port, sending GET |path| one after another until stop(), the
    duration or max_requests (over all threads) is reached, sleeping |pause| seconds after
    each request (0: none). Records one
    (t_sent, t_done, status, x_upstream, error) tuple per request (status 0 + error text when
    no response came; the connection is then re-opened)."""

    def __init__(self, port, ca, threads=4, path="/load", duration=6.0, max_requests=20000,
                 server_hostname="localhost", timeout=5, pause=0.0):
        self.port = port
        self.pause = pause
        self.ca = ca
        self.threads = threads
        self.path = path
        self.duration = duration
        self.max_per_thread = max(1, max_requests // threads)
        self.server_hostname = server_hostname
        self.timeout = timeout * SLOW
        self.records = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._workers = []
        self.t0 = None

    def start(self):
        self.t0 = time.monotonic()
        for i in range(self.threads):
            t = threading.Thread(target=self._run, args=(i,), daemon=True,
                                 name="load-%d" % i)
            t.start()
            self._workers.append(t)
        return self

    def _run(self, index):
        deadline = self.t0 + self.duration
        sock = None
        n = 0
        try:
            while not self._stop.is_set() and n < self.max_per_thread and time.monotonic() < deadline:
                n += 1
                t_sent = time.monotonic()
                try:
                    if sock is None:
                        sock = tls_connect(self.port, self.server_hostname, self.ca,
                                           timeout=self.timeout)
                    sock.sendall(("GET %s?c=%d&n=%d HTTP/1.1\r\nHost: %s\r\n\r\n"
                                  % (self.path, index, n, self.server_hostname)).encode())
                    status, headers, _ = read_response(sock, timeout=self.timeout)
                    rec = (t_sent, time.monotonic(), status, headers.get("x-upstream"), None)
                    if "close" in headers.get("connection", "").lower():
                        sock.close()
                        sock = None
                except Exception as e:  # recorded, then a fresh connection
                    rec = (t_sent, time.monotonic(), 0, None, repr(e))
                    if sock is not None:
                        try:
                            sock.close()
                        except OSError:
                            pass
                        sock = None
                with self._lock:
                    self.records.append(rec)
                if self.pause > 0:
                    self._stop.wait(self.pause)
        finally:
            if sock is not None:
                try:
                    sock.close()
                except OSError:
                    pass

    def stop(self, timeout=None):
        """Stops the threads (each finishes its current request) and returns the records
        sorted by send time. AssertionError if a thread is still busy after timeout."""
        self._stop.set()
        timeout = timeout if timeout is not None else self.timeout + 5
        deadline = time.monotonic() + timeout
        for t in self._workers:
            t.join(max(0.0, deadline - time.monotonic()))
        alive = [t.name for t in self._workers if t.is_alive()]
        if alive:
            raise AssertionError("load threads still running: %r" % alive)
        with self._lock:
            return sorted(self.records)

    def wait(self, timeout=None):
        """Lets the threads run out their duration / request budget, then stop()s them."""
        timeout = timeout if timeout is not None else self.duration + self.timeout + 5
        deadline = time.monotonic() + timeout
        for t in self._workers:
            t.join(max(0.0, deadline - time.monotonic()))
        return self.stop(timeout=max(0.0, deadline - time.monotonic()) + 1)

    def snapshot(self):
        with self._lock:
            return sorted(self.records)
