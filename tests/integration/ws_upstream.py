"""A WebSocket upstream for the integration tests (Debian's python3-websockets, asyncio API).

  /ws       echoes every text and binary message; the text "close-me" makes it close (1000)
  /headers  sends the upgrade request's headers as one JSON text message
  /flood    sends N binary messages of 64 KiB (N from the first message, a decimal text)
  /sink     waits 2 s before reading, then answers the total byte count of the messages it got
            until the text "end"
  /nows     refuses the upgrade with a plain 404
  other     refused with 404 too

Prints "listening PORT" on stdout once it listens, like upstream.py.
"""

import argparse
import asyncio
import http
import json
import sys

import websockets


async def handler(ws):
    if ws.path == "/headers":
        await ws.send(json.dumps([[k, v] for k, v in ws.request_headers.raw_items()]))
        await ws.wait_closed()
        return
    if ws.path == "/flood":
        count = int(await ws.recv())
        piece = bytes(range(256)) * 256
        for _ in range(count):
            await ws.send(piece)
        await ws.send("done")
        await ws.wait_closed()
        return
    if ws.path == "/sink":
        await asyncio.sleep(2)
        total = 0
        async for message in ws:
            if message == "end":
                break
            total += len(message)
        await ws.send(str(total))
        await ws.wait_closed()
        return
    async for message in ws:
        if message == "close-me":
            await ws.close(1000, "asked to")
            return
        await ws.send(message)


async def process_request(path, headers):
    if path in ("/ws", "/headers", "/flood", "/sink"):
        return None
    body = b"no websocket here\n"
    return http.HTTPStatus.NOT_FOUND, [("Content-Type", "text/plain"),
                                       ("Content-Length", str(len(body)))], body


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args()
    server = await websockets.serve(handler, args.host, args.port, process_request=process_request,
                                    max_size=None, ping_interval=None, compression=None)
    port = server.sockets[0].getsockname()[1]
    sys.stdout.write("listening %d\n" % port)
    sys.stdout.flush()
    await asyncio.Future()


if __name__ == "__main__":
    asyncio.run(main())
