"""The lab's HTTP server: aiohttp.web on an MPTCP listener (port 80) and a plain-TCP one (8080).

Run as ``python -m mptop.lab.server --netns /proc/PID/ns/net`` (the lab does this); it enters
that netns before binding, dies with its parent (PR_SET_PDEATHSIG), and prints ``ready`` once
both listeners accept.

Paths: ``/bytes/N`` (Content-Length, Range -> 206, HEAD, ETag), ``/status/CODE``,
``/redirect/K`` (K hops, then /bytes/1000), ``/truncated/N`` (declares N, sends half, closes),
``/reset/N`` (sends half, then RST via SO_LINGER 0), ``/disposition/N?name=F``
(Content-Disposition filename), ``/slow/N?bps=B``, ``/forever[?bps=B]`` (endless, chunked),
``/fault/NAME`` (a server misbehaving on purpose: :mod:`mptop.lab.faults`), and ``PUT``/``POST``
``/upload[/NAME]`` (reads the body, discards it, answers ``{"bytes": N, "sha256": "…"}`` as JSON:
what arrived, so a test checks every byte of an upload).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import hashlib
import os
import signal
import socket
import struct
import sys
import termios
import time
from email.utils import encode_rfc2231
from typing import Any

from aiohttp import web
from aiohttp.helpers import content_disposition_header

from mptop.lab import content, faults
from mptop.lab.netns import set_pdeathsig, setns

SEND_CHUNK = 1 << 20  # large writes: the server must not be the bottleneck of an unshaped lab
SLOW_TICK = 0.05


def listener(port: int, mptcp: bool, host: str = "0.0.0.0") -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_MPTCP if mptcp else 0)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.setblocking(False)
    return sock


def _size(request: web.Request, key: str = "n") -> int:
    try:
        n = int(request.match_info[key])
    except ValueError:
        raise web.HTTPBadRequest(text=f"not a number: {request.match_info[key]}") from None
    if n < 0:
        raise web.HTTPBadRequest(text="negative size")
    return n


async def _send(resp: web.StreamResponse, start: int, length: int) -> None:
    for view in content.chunks(start, length, SEND_CHUNK):
        await resp.write(view)


async def _send_paced(resp: web.StreamResponse, length: int | None, bps: float) -> None:
    """Send ``length`` bytes (None = forever) at about ``bps`` bytes per second."""
    loop = asyncio.get_running_loop()
    sent, began = 0, loop.time()
    while length is None or sent < length:
        due = int(bps * (loop.time() - began + SLOW_TICK)) - sent
        n = max(1, due if length is None else min(due, length - sent))
        await _send(resp, sent, n)
        sent += n
        await asyncio.sleep(SLOW_TICK)


def _range(request: web.Request, size: int) -> tuple[int, int] | None:
    """(start, length) of a satisfiable single Range, None without one (or with an If-Range that
    names another entity: then the whole body); 416 otherwise."""
    if "Range" not in request.headers or request.headers.get("If-Range", content.etag(size)) != content.etag(size):
        return None
    try:
        rng = request.http_range
    except ValueError:
        rng = None
    if rng is not None and rng.start is not None and rng.start < 0:   # suffix range "-N"
        rng = slice(max(0, size + rng.start), size)
    start = 0 if rng is None or rng.start is None else rng.start
    stop = size if rng is None or rng.stop is None else min(rng.stop, size)
    if rng is None or start >= size or stop <= start:
        raise web.HTTPRequestRangeNotSatisfiable(headers={"Content-Range": f"bytes */{size}"})
    return start, stop - start


def disposition(name: str) -> str:
    """RFC 6266: quoted ``filename`` (ASCII), plus ``filename*`` (RFC 5987) for other names."""
    fallback = name.encode("ascii", "replace").decode().replace("?", "_")
    try:
        value = content_disposition_header("attachment", quote_fields=False, filename=fallback)
    except ValueError:
        raise web.HTTPBadRequest(text="unusable file name") from None
    return value if name.isascii() else f"{value}; filename*={encode_rfc2231(name, 'utf-8')}"


async def handle_bytes(request: web.Request) -> web.StreamResponse:
    size = _size(request)
    resp = web.StreamResponse(headers={"ETag": content.etag(size), "Accept-Ranges": "bytes",
                                       "Content-Type": "application/octet-stream"})
    start, length = 0, size
    rng = _range(request, size)
    if rng is not None:
        start, length = rng
        resp.set_status(206)
        resp.headers["Content-Range"] = f"bytes {start}-{start + length - 1}/{size}"
    name = request.query.get("name")
    if name is not None:
        resp.headers["Content-Disposition"] = disposition(name)
    resp.content_length = length
    await resp.prepare(request)
    if request.method != "HEAD":
        await _send(resp, start, length)
    await resp.write_eof()
    return resp


async def handle_status(request: web.Request) -> web.Response:
    code = _size(request, "code")
    if not 200 <= code <= 599:
        raise web.HTTPBadRequest(text="status must be 200..599")
    return web.Response(status=code, text=f"status {code}\n")


async def handle_redirect(request: web.Request) -> web.StreamResponse:
    hops = _size(request, "k")
    raise web.HTTPFound(f"/redirect/{hops - 1}" if hops > 1 else "/bytes/1000")


async def _send_half_then(request: web.Request, size: int) -> asyncio.Transport:
    resp = web.StreamResponse(headers={"Content-Type": "application/octet-stream", "ETag": content.etag(size)})
    resp.content_length = size
    await resp.prepare(request)
    await _send(resp, 0, size // 2)
    transport = request.transport
    assert transport is not None
    return transport


def _wait_sent(sock: socket.socket | None) -> None:
    """Wait (bounded) until the kernel send queue is empty, so the bytes really went out."""
    if sock is None:
        return
    buf = bytearray(4)
    for _ in range(200):
        try:
            fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, buf)
        except OSError:
            return
        if struct.unpack("i", buf)[0] == 0:
            return
        time.sleep(0.005)


async def handle_truncated(request: web.Request) -> web.StreamResponse:
    transport = await _send_half_then(request, _size(request))
    transport.close()  # flushes what was written, then FIN: the body ends early
    raise asyncio.CancelledError


async def handle_reset(request: web.Request) -> web.StreamResponse:
    transport = await _send_half_then(request, _size(request))
    while transport.get_write_buffer_size():
        await asyncio.sleep(0.005)
    sock = transport.get_extra_info("socket")
    await asyncio.get_running_loop().run_in_executor(None, _wait_sent, sock)
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()  # close with linger 0: RST (MP_FASTCLOSE on an MPTCP connection)
    raise asyncio.CancelledError


async def handle_slow(request: web.Request) -> web.StreamResponse:
    size = _size(request)
    bps = float(request.query.get("bps", "100000"))
    resp = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
    resp.content_length = size
    await resp.prepare(request)
    await _send_paced(resp, size, bps)
    await resp.write_eof()
    return resp


async def handle_forever(request: web.Request) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
    await resp.prepare(request)  # no Content-Length: chunked, endless
    bps = request.query.get("bps")
    if bps is not None:
        await _send_paced(resp, None, float(bps))
    offset = 0
    while True:
        await _send(resp, offset, SEND_CHUNK)
        offset += SEND_CHUNK


async def handle_upload(request: web.Request) -> web.Response:
    """Take the whole body (any length, chunked or not), keep nothing but its sha256 and size."""
    digest, size = hashlib.sha256(), 0
    async for chunk in request.content.iter_any():
        digest.update(chunk)
        size += len(chunk)
    return web.json_response({"bytes": size, "sha256": digest.hexdigest()})


@web.middleware
async def quiet_disconnects(request: web.Request, handler: Any) -> web.StreamResponse:
    """A client that goes away mid-body is normal in a lab: end the handler without a log."""
    try:
        return await handler(request)
    except ConnectionError:
        raise asyncio.CancelledError from None


def make_app() -> web.Application:
    app = web.Application(middlewares=[quiet_disconnects])
    app.router.add_get("/bytes/{n}", handle_bytes)  # add_get also answers HEAD
    app.router.add_get("/status/{code}", handle_status)
    app.router.add_get("/redirect/{k}", handle_redirect)
    app.router.add_get("/truncated/{n}", handle_truncated)
    app.router.add_get("/reset/{n}", handle_reset)
    app.router.add_get("/disposition/{n}", handle_bytes)      # ?name=F: handle_bytes names it
    app.router.add_get("/slow/{n}", handle_slow)
    app.router.add_get("/forever", handle_forever)
    for method in ("PUT", "POST"):
        app.router.add_route(method, "/upload", handle_upload)
        app.router.add_route(method, "/upload/{name}", handle_upload)
    faults.add_routes(app)                                    # /fault/NAME: see mptop.lab.faults
    return app


async def serve(mptcp_port: int, tcp_port: int) -> None:
    runner = web.AppRunner(make_app(), access_log=None, handle_signals=False)
    await runner.setup()
    # Both ports listen before either is served: the lab is ready once the MPTCP port accepts, and
    # the plain-TCP one must not refuse a connection a moment later (seen under load).
    for sock in [listener(mptcp_port, True), listener(tcp_port, False)]:
        await web.SockSite(runner, sock).start()
    print("ready", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None, parent_pid: int | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mptop.lab.server")
    parser.add_argument("--netns", help="enter this netns (/proc/PID/ns/net) before binding")
    parser.add_argument("--parent-pid", type=int, default=parent_pid,
                        help="exit at once if this is no longer our parent (PDEATHSIG race)")
    parser.add_argument("--mptcp-port", type=int, default=80)
    parser.add_argument("--tcp-port", type=int, default=8080)
    args = parser.parse_args(argv)
    set_pdeathsig()
    if args.parent_pid is not None and os.getppid() != args.parent_pid:
        return 1
    if args.netns:
        fd = os.open(args.netns, os.O_RDONLY)
        setns(fd)
        os.close(fd)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.mptcp_port, args.tcp_port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
