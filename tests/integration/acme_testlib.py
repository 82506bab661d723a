"""Helpers for test_acme_outage.py and test_acme_ari.py (standard library + openssl CLI).

They run against the acme_lab CTest fixture (tests/CMakeLists.txt): a loopback Pebble started by
tests/tools/pebble.sh, whose KEY=VALUE env file is $ACME_LAB_STATE_DIR/env.
"""

import base64
import datetime
import os
import re
import ssl
import subprocess

import harness

LAB_SCRIPT = os.path.join(harness.SOURCE_DIR, "tests", "tools", "pebble.sh")
LAB_CMAKE = os.path.join(harness.SOURCE_DIR, "tests", "CMakeLists.txt")
DEFAULT_START_ARGS = ["--authz-reuse", "0"]

# frontdoor's ACME log messages (JSON lines on stdout).
MSG_ORDER = "acme order"
MSG_ISSUED = "acme certificate issued"
MSG_FAILED = "acme order failed; the current certificate stays in service"


def lab_state_dir():
    """$ACME_LAB_STATE_DIR, set by CTest for every integration test; None outside CTest."""
    return os.environ.get("ACME_LAB_STATE_DIR") or None


def read_lab_env():
    """The fixture's env file as a dict ({} when it is missing: Pebble is not running)."""
    state = lab_state_dir()
    if not state:
        return {}
    out = {}
    try:
        with open(os.path.join(state, "env")) as f:
            for line in f:
                line = line.rstrip("\n")
                if "=" in line:
                    key, _, value = line.partition("=")
                    out[key] = value
    except OSError:
        return {}
    return out


def lab_start_args():
    """The options the fixture's acme_lab_start passes to pebble.sh start, read from
    tests/CMakeLists.txt (set(ACME_LAB_START_ARGS ...)) so a restart uses the same settings."""
    try:
        with open(LAB_CMAKE) as f:
            text = f.read()
    except OSError:
        return list(DEFAULT_START_ARGS)
    m = re.search(r"set\(\s*ACME_LAB_START_ARGS\s+([^)]*)\)", text)
    return m.group(1).split() if m else list(DEFAULT_START_ARGS)


def run_lab(command, *args, timeout=90):
    """tests/tools/pebble.sh COMMAND ARGS with this process's environment (the fixture's
    ACME_LAB_* variables): a CompletedProcess with text output."""
    return subprocess.run([LAB_SCRIPT, command] + list(args), capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def lab_running():
    try:
        return run_lab("status", timeout=30).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def parse_time(text):
    """RFC 3339 (frontdoor's "ts", "retry_at", "not_after") -> POSIX seconds (float)."""
    text = text.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    return datetime.datetime.fromisoformat(text).timestamp()


def rfc3339(posix_seconds):
    """POSIX seconds -> 'YYYY-MM-DDTHH:MM:SSZ' (whole seconds, as CAs write them)."""
    return datetime.datetime.fromtimestamp(int(posix_seconds), datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ")


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# --- certificates ----------------------------------------------------------------------------


def _der_header(der, pos):
    """(tag, content start, content length) of the DER element at |pos|."""
    tag = der[pos]
    length = der[pos + 1]
    pos += 2
    if length & 0x80:
        n = length & 0x7F
        length = int.from_bytes(der[pos:pos + n], "big")
        pos += n
    return tag, pos, length


def serial_content_octets(der):
    """The DER content octets of a certificate's serialNumber INTEGER (RFC 9773 4.1: including
    the leading 0x00 that keeps a serial with its top bit set positive)."""
    tag, pos, _ = _der_header(der, 0)  # Certificate ::= SEQUENCE
    if tag != 0x30:
        raise AssertionError("not a DER certificate")
    tag, pos, _ = _der_header(der, pos)  # tbsCertificate ::= SEQUENCE
    if tag != 0x30:
        raise AssertionError("not a DER certificate (tbsCertificate)")
    tag, content, length = _der_header(der, pos)
    if tag == 0xA0:  # [0] EXPLICIT version
        tag, content, length = _der_header(der, content + length)
    if tag != 0x02:
        raise AssertionError("no serialNumber INTEGER where expected (tag %#x)" % tag)
    return der[content:content + length]


def serial_int(der):
    return int.from_bytes(serial_content_octets(der), "big")


def der_to_pem(der):
    return ssl.DER_cert_to_PEM_cert(der)


def openssl_text(der, *args):
    """openssl x509 -noout ARGS on a DER certificate: stdout text."""
    r = harness.run(["openssl", "x509", "-inform", "DER", "-noout"] + list(args), input=der,
                    timeout=15)
    if r.returncode != 0:
        raise AssertionError("openssl x509 %s failed: %s" % (" ".join(args), r.stderr.decode()))
    return r.stdout.decode()


def authority_key_id(der):
    """The keyIdentifier of the certificate's AKI extension, read with the openssl CLI."""
    text = openssl_text(der, "-ext", "authorityKeyIdentifier")
    body = text.split("Authority Key Identifier", 1)[-1]
    m = re.search(r"((?:[0-9A-Fa-f]{2}:)+[0-9A-Fa-f]{2})", body)
    if not m:
        raise AssertionError("no authority key identifier in %r" % text)
    return bytes.fromhex(m.group(1).replace(":", ""))


def openssl_serial(der):
    """The serial as openssl prints it (x509 -serial), as an int: a cross-check of the DER walk."""
    m = re.search(r"serial=([0-9A-Fa-f]+)", openssl_text(der, "-serial"))
    if not m:
        raise AssertionError("openssl printed no serial")
    return int(m.group(1), 16)


def ari_cert_id(der):
    """RFC 9773 4.1 CertID: base64url(AKI keyIdentifier) "." base64url(serial DER content)."""
    if openssl_serial(der) != serial_int(der):
        raise AssertionError("serial from DER %x != openssl's %x" % (serial_int(der),
                                                                      openssl_serial(der)))
    return b64url(authority_key_id(der)) + "." + b64url(serial_content_octets(der))


def served_certificate(port, name, ca, timeout=10):
    """The leaf frontdoor serves on 127.0.0.1:port for SNI |name| to a NEW handshake, verified
    against |ca| (chain and host name): DER bytes. Raises ssl.SSLError when it does not verify."""
    with harness.tls_connect(port, server_hostname=name, ca=ca, timeout=timeout) as s:
        return s.getpeercert(binary_form=True)


# --- frontdoor's log ---------------------------------------------------------------------------


def acme_lines(fd, msg, name=None):
    """frontdoor's JSON log lines with this msg (and "name", if given), in order."""
    return [o for o in fd.log_lines()
            if o.get("msg") == msg and (name is None or o.get("name") == name)]


def wait_line(fd, msg, timeout, name=None, after=0, predicate=None, what=None):
    """Waits until there are more than |after| lines with |msg| (and |name|) that satisfy
    |predicate|; returns the first one past |after|. Fails early when frontdoor exits."""
    def probe():
        fd.assert_running()
        lines = [o for o in acme_lines(fd, msg, name) if predicate is None or predicate(o)]
        return lines[after] if len(lines) > after else None

    try:
        return harness.wait_for(probe, timeout, interval=0.1, what=what or repr(msg))
    except AssertionError as e:
        raise AssertionError("%s\n%s" % (e, fd.tail(6000)))


def line_time(line):
    return parse_time(line["ts"])


def acme_config(tls_port, http01_port, admin_port, upstream, name, directory, storage, ca_bundle,
                renew):
    """A frontdoor config: TLS on 127.0.0.1:tls_port with one ACME-managed name, the http-01
    answerer on the plain listener 127.0.0.1:http01_port (Pebble's VA port), an admin listener."""
    return {
        "listen": [
            {"address": "127.0.0.1:%d" % tls_port, "tls": True},
            {"address": "127.0.0.1:%d" % http01_port, "redirect_https": True},
        ],
        "tls": {
            "acme": {
                "directory": directory,
                "domains": [name],
                "challenge": "http-01",
                "storage": storage,
                "ca_bundle": ca_bundle,
                "renew": renew,
            },
        },
        "admin": {"address": "127.0.0.1:%d" % admin_port},
        "upstreams": {"app": {"servers": [upstream.address]}},
        "routes": [{"match": {"path_prefix": "/"}, "upstream": "app"}],
        "log": {"level": "info", "access": False},
        "workers": 2,
    }


def status_certificate(admin, name):
    """/status certificates[] entry for |name|, or None."""
    for c in admin.status().get("certificates", []):
        if name in (c.get("names") or []):
            return c
    return None
