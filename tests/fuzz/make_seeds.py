#!/usr/bin/env python3
"""Writes the fuzz targets' seed corpora into tests/fuzz/corpus/, from what the tests and the
deploy files already hold: the hostile requests and responses of the smuggling test, ordinary
messages, the shipped configs, and scripted ACME conversations. Run it again after changing
those; the files it writes are committed."""

import hashlib
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent
CORPUS = HERE / "corpus"

sys.path.insert(0, str(ROOT / "tests" / "integration"))
import test_smuggling  # noqa: E402  (its tables of hostile messages)


def write(target, data):
    directory = CORPUS / target
    directory.mkdir(parents=True, exist_ok=True)
    (directory / hashlib.sha1(data).hexdigest()).write_bytes(data)


GOOD_REQUESTS = [
    b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
    b"GET /a?b=1 HTTP/1.1\r\nHost: a.test:8443\r\nAccept: */*\r\nX-Request-Id: abc.1\r\n"
    b"X-Forwarded-For: 203.0.113.9\r\nForwarded: for=203.0.113.9\r\n\r\n",
    b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
    b"POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n"
    b"\r\n5;ext=1\r\nhello\r\n0\r\nTrailer-A: b\r\n\r\n",
    b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    b"GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n\x81\x00",
    b"GET / HTTP/1.0\r\n\r\n",
    b"GET http://a.test/x?y HTTP/1.1\r\nHost: a.test\r\n\r\n",
    b"OPTIONS * HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\n"
    b"Keep-Alive: timeout=5\r\nTE: trailers\r\nProxy-Authorization: x\r\n\r\n",
]

GOOD_RESPONSES = [
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive, X-Hop\r\n"
    b"X-Hop: 1\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    b"HTTP/1.0 200 OK\r\nServer: old\r\n\r\nbody until the close",
    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nLocation: /x\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\n",
    b"HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n",
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n\x81\x00",
    b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nStrict-Transport-Security: max-age=1\r\n"
    b"Content-Length: 3\r\n\r\nno\n",
]


def http1_seeds():
    requests = GOOD_REQUESTS + [bad + test_smuggling.SMUGGLED for _, bad in test_smuggling.BAD_REQUESTS]
    for request in requests:
        write("http1_request", b"\x00" + request)  # all at once
    for request in GOOD_REQUESTS[:4]:
        write("http1_request", b"\x03" + request)  # three bytes per read
    responses = GOOD_RESPONSES + [r for _, r in test_smuggling.BAD_RESPONSES] + \
        [r for _, r in test_smuggling.BAD_RESPONSE_BODIES]
    for response in responses:
        write("http1_response", b"\x00\x00" + response)
    write("http1_response", b"\x00\x01" + GOOD_RESPONSES[0])  # to a HEAD request
    write("http1_response", b"\x02\x06" + GOOD_RESPONSES[1])  # HTTP/1.0 client, closing


def config_seeds():
    for path in ["deploy/frontdoor.yaml", "deploy/config/frontdoor.yaml"]:
        write("config", (ROOT / path).read_bytes())
    configmap = (ROOT / "deploy/kubernetes/configmap.yaml").read_text()
    embedded = configmap.split("frontdoor.yaml: |\n", 1)[1]
    write("config", "".join(line[4:] + "\n" for line in embedded.splitlines()
                            if line.startswith("    ") or not line.strip()).encode())
    write("config", b"""listen:
  - address: "127.0.0.1:${FUZZ_PORT}"
    tls: true
    hsts: 365d
  - address: "[::1]:8080"
    redirect_https: true
    https_port: 443
workers: 2
user: nobody
shutdown_delay: 5s
shutdown_timeout: 30s
log: {level: debug, access: true}
tls:
  min_version: "1.3"
  certificates:
    - {cert: /nonexistent/cert.pem, key: /nonexistent/key.pem}
  acme:
    directory: "https://127.0.0.1:14000/dir"
    email: "${FUZZ_EMPTY}"
    domains: [a.test, "b.test"]
    challenge: tls-alpn-01
    eab_kid: kid
    eab_hmac_key: c2VjcmV0
    renew: 30d
upstreams:
  app:
    balance: round_robin
    resolve_interval: 5s
    max_fails: 3
    fail_window: 10s
    fail_timeout: 30s
    retries: 1
    retry_timeout: 2s
    connect_timeout: 1s
    response_timeout: 60s
    max_idle_connections: 32
    idle_timeout: 60s
    servers:
      - {address: "${FUZZ_HOST:-localhost}:8000", weight: 3}
      - "127.0.0.1:8001"
    health_check: {path: /healthz, interval: 2s, timeout: 1s, healthy_after: 2, unhealthy_after: 3}
routes:
  - match: {host: "a.test", path_prefix: /api}
    upstream: app
  - match: {path_prefix: /}
    upstream: app
limits:
  max_connections: 10000
  max_header_bytes: 32KiB
  max_headers: 100
  max_body_bytes: 10MiB
  max_requests_per_connection: 1000
  header_timeout: 10s
  body_min_rate: 1KiB
  body_timeout: 60s
admin:
  address: "127.0.0.1:9901"
""")


ACME = "https://ca.test"


def answer(status, body="", **headers):
    lines = [str(status)] + [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    return "\n".join(lines) + "\n\n" + body


def order(status, authzs=(f"{ACME}/authz/1", f"{ACME}/authz/2")):
    authz_list = ",".join(f'"{a}"' for a in authzs)
    certificate = f',"certificate":"{ACME}/cert/1"' if status == "valid" else ""
    return (f'{{"status":"{status}","expires":"2030-01-01T00:00:00Z",'
            f'"identifiers":[{{"type":"dns","value":"a.test"}},{{"type":"dns","value":"b.test"}}],'
            f'"authorizations":[{authz_list}],"finalize":"{ACME}/finalize/1"{certificate}}}')


def authz(name, status, n):
    return (f'{{"status":"{status}","identifier":{{"type":"dns","value":"{name}"}},'
            f'"challenges":[{{"type":"http-01","url":"{ACME}/chal/{n}h","token":"tok{n}",'
            f'"status":"pending"}},{{"type":"tls-alpn-01","url":"{ACME}/chal/{n}t",'
            f'"token":"tok{n}","status":"pending"}}]}}')


def test_chain():
    """A throwaway two-certificate chain, so that the ARI id of a real leaf is computed."""
    with tempfile.TemporaryDirectory() as tmp:
        def openssl(*args):
            subprocess.run(["openssl", *args], cwd=tmp, check=True, capture_output=True)
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", "ca.key", "-out", "ca.pem", "-subj", "/CN=fuzz CA", "-days", "3650")
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", "leaf.key", "-out", "leaf.csr", "-subj", "/CN=a.test")
        with open(os.path.join(tmp, "ext"), "w") as ext:
            ext.write("subjectAltName=DNS:a.test,DNS:b.test\nauthorityKeyIdentifier=keyid\n")
        openssl("x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-out", "leaf.pem", "-days", "90", "-extfile", "ext")
        return (pathlib.Path(tmp, "leaf.pem").read_text() + pathlib.Path(tmp, "ca.pem").read_text())


def acme_seeds():
    directory = (f'{{"newNonce":"{ACME}/nonce","newAccount":"{ACME}/account","newOrder":"{ACME}/order",'
                 f'"renewalInfo":"{ACME}/ari","meta":{{"externalAccountRequired":false,'
                 f'"termsOfService":"{ACME}/tos"}}}}')
    account = [
        answer(200, directory, content_type="application/json"),
        answer(200, replay_nonce="n1"),
        answer(201, '{"status":"valid","contact":["mailto:ops@example.test"]}',
               replay_nonce="n2", location=f"{ACME}/acct/1"),
    ]
    chain = test_chain()
    happy = account + [
        answer(201, order("pending"), replay_nonce="n3", location=f"{ACME}/order/1"),
        answer(200, authz("a.test", "pending", 1), replay_nonce="n4"),
        answer(200, '{"type":"http-01","status":"processing","token":"tok1"}', replay_nonce="n5",
               link=f'<{ACME}/authz/1>;rel="up"'),
        answer(200, authz("a.test", "valid", 1), replay_nonce="n6", retry_after="1"),
        answer(200, authz("b.test", "valid", 2), replay_nonce="n7"),
        answer(200, order("ready"), replay_nonce="n8"),
        answer(200, order("processing"), replay_nonce="n9", retry_after="Wed, 21 Oct 2015 07:28:00 GMT"),
        answer(200, order("valid"), replay_nonce="n10"),
        answer(200, chain, replay_nonce="n11", content_type="application/pem-certificate-chain"),
        answer(200, '{"suggestedWindow":{"start":"2030-01-01T00:00:00Z","end":"2030-01-02T00:00:00Z"}}',
               retry_after="21600"),
    ]
    write("acme", ("http-01\n" + "\n%%\n".join(happy)).encode())
    write("acme", ("tls-alpn-01 eab\n" + "\n%%\n".join(happy)).encode())
    bad_nonce = account[:2] + [
        answer(400, '{"type":"urn:ietf:params:acme:error:badNonce","detail":"stale","status":400}',
               replay_nonce="n9", content_type="application/problem+json"),
    ] + account[2:] + [
        answer(403, '{"type":"urn:ietf:params:acme:error:rejectedIdentifier","detail":"no",'
               '"subproblems":[{"type":"urn:ietf:params:acme:error:caa","detail":"caa",'
               '"identifier":{"type":"dns","value":"b.test"}}]}',
               content_type="application/problem+json"),
    ]
    write("acme", ("http-01\n" + "\n%%\n".join(bad_nonce)).encode())
    invalid = account + [
        answer(201, order("pending"), replay_nonce="n3", location=f"{ACME}/order/1"),
        answer(200, authz("a.test", "pending", 1), replay_nonce="n4"),
        answer(200, '{"type":"http-01","status":"pending"}', replay_nonce="n5"),
        answer(200, authz("a.test", "invalid", 1).replace(
            '"status":"pending"}]', '"status":"invalid","error":{"type":'
            '"urn:ietf:params:acme:error:connection","detail":"refused"}}]'), replay_nonce="n6"),
    ]
    write("acme", ("http-01\n" + "\n%%\n".join(invalid)).encode())
    write("acme", ("http-01\n" + "\n%%\n".join([account[0], "0"])).encode())


def main():
    if CORPUS.exists():
        for child in CORPUS.iterdir():
            if child.is_dir():
                shutil.rmtree(child)
    http1_seeds()
    config_seeds()
    acme_seeds()
    for target in sorted(p.name for p in CORPUS.iterdir() if p.is_dir()):
        print(f"{target}: {len(list((CORPUS / target).iterdir()))} seeds")


if __name__ == "__main__":
    main()
