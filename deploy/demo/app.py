"""Demo upstream for frontdoor: a plain ASGI app, no framework.

    WORKER_ID=1 /usr/bin/python3 -m uvicorn app:app --app-dir deploy/demo \
        --host 127.0.0.1 --port 8001

Every path answers 200 "hello from worker <WORKER_ID>" with an X-Worker header, so repeated
requests through the proxy show the balancing. GET /healthz answers "ok". /echo answers the
request (method, path, headers as the upstream received them, body size) as JSON, to show
what the proxy added (X-Forwarded-For, Forwarded, X-Request-Id, ...).
WORKER_ID defaults to host name/process id: in a container the host name is the container's
own, so compose replicas tell themselves apart without per-replica settings.
"""

import json
import os
import socket

WORKER_ID = os.environ.get("WORKER_ID") or "%s/%d" % (socket.gethostname(), os.getpid())


async def _read_body(receive):
    """Drains the request body; returns its size in bytes, or None if the client went away."""
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        size += len(message.get("body", b""))
        if not message.get("more_body", False):
            return size


async def _respond(send, status, body, content_type):
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", content_type),
            (b"content-length", str(len(body)).encode()),
            (b"x-worker", WORKER_ID.encode()),
            (b"cache-control", b"no-store"),
        ],
    })
    await send({"type": "http.response.body", "body": body})


def _echo(scope, body_size):
    headers = {}
    header_list = []
    for raw_name, raw_value in scope["headers"]:
        name = raw_name.decode("latin-1")
        value = raw_value.decode("latin-1")
        header_list.append(f"{name}: {value}")
        if name in headers:
            headers[name] += ("; " if name == "cookie" else ", ") + value
        else:
            headers[name] = value
    document = {
        "worker": WORKER_ID,
        "method": scope["method"],
        "path": scope["path"],
        "raw_path": scope.get("raw_path", b"").decode("latin-1") or None,
        "query": scope["query_string"].decode("latin-1"),
        "http_version": scope["http_version"],
        "headers": headers,           # repeated headers joined, like a proxy would see them
        "header_list": header_list,   # in order, as received
        "body_bytes": body_size,
    }
    return (json.dumps(document, indent=2) + "\n").encode()


async def _lifespan(receive, send):
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    if scope["type"] != "http":
        # WebSocket and anything else: refuse.
        if scope["type"] == "websocket":
            await receive()
            await send({"type": "websocket.close", "code": 1008})
        return

    body_size = await _read_body(receive)
    if body_size is None:
        return

    path = scope["path"]
    if path == "/healthz":
        await _respond(send, 200, b"ok\n", b"text/plain; charset=utf-8")
    elif path == "/echo":
        await _respond(send, 200, _echo(scope, body_size), b"application/json")
    else:
        body = f"hello from worker {WORKER_ID}\n".encode()
        await _respond(send, 200, body, b"text/plain; charset=utf-8")
