"""A server that misbehaves on request: the ``/fault/NAME`` routes of the lab's HTTP server.

The safety suite (``tests/lab/test_faults_lab.py``) runs ``mptop get`` against each fault with a
healthy download beside it.  Most faults write a hand-made HTTP response straight to the socket
(aiohttp's own writer would refuse to send what a hostile server sends), then close it.

Query parameters: ``n`` body size (default 100000), ``to`` a Location, ``r`` a reason phrase,
``cd`` a Content-Disposition value, ``v`` an entity version.  Bodies are :mod:`mptop.lab.content`
(``/fault/entity`` and ``/fault/liar`` shift it by the version, so versions differ from byte 0).

Faults: ``location`` (302 to ``to``, sent raw: other schemes, control characters), ``loop``
(redirects to itself), ``reason`` (500 with ``r`` as the reason phrase), ``stall`` (half the body,
then silence), ``silent`` (never answers), ``entity`` (version ``v`` with its ETag; Range and
If-Range as RFC 9110 says), ``liar`` (answers any Range with 206 of its own version, ignoring
If-Range), ``wrong-range`` (206 whose Content-Range starts at 0 whatever was asked),
``range-ignored`` (200 to a Range request), ``disposition`` (``cd`` sent raw), ``gzip``
(Content-Encoding gzip although identity was asked), ``chunked``, ``chunked-cut`` (no final
chunk), ``garbage`` (not HTTP), ``huge-header``, ``bad-length`` (Content-Length -5), ``overlong``
(more bytes than Content-Length), ``no-length`` (ends by closing).
"""

from __future__ import annotations

import asyncio
import gzip
import re
from collections.abc import Awaitable, Callable, Iterable
from typing import NoReturn

from aiohttp import web

from mptop.lab import content

HOLD = 120.0              # seconds a stalled response waits at most for the client to go away
_RANGE = re.compile(r"bytes=(\d+)-$")

Fault = Callable[[web.Request], Awaitable[None]]


def entity_body(n: int, version: int) -> bytes:
    """The body of ``/fault/entity?n=N&v=V`` (and ``liar``): the lab content shifted by the version."""
    return content.content(n, start=version * 7919)


def entity_etag(n: int, version: int) -> str:
    return f'"entity-{version}-{n}"'


def gzip_body(n: int) -> bytes:
    """The bytes ``/fault/gzip?n=N`` sends (what a client that does not decompress must store)."""
    return gzip.compress(content.content(n), mtime=0)


def _head(status: str, headers: Iterable[tuple[str, str]] = ()) -> bytes:
    lines = [f"HTTP/1.1 {status}", *(f"{k}: {v}" for k, v in headers), "Connection: close", "", ""]
    return "\r\n".join(lines).encode("utf-8", "surrogateescape")


async def _hold(transport: asyncio.BaseTransport) -> None:
    """Keep the connection open, silent, until the client leaves (bounded by HOLD)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + HOLD
    while not transport.is_closing() and loop.time() < deadline:
        await asyncio.sleep(0.05)


async def _send_raw(request: web.Request, *parts: bytes, hold: bool = False) -> NoReturn:
    transport = request.transport
    assert transport is not None
    for part in parts:
        transport.write(part)
    if hold:
        await _hold(transport)
    transport.close()        # flushes what was written, then FIN
    raise asyncio.CancelledError


def _n(request: web.Request) -> int:
    return int(request.query.get("n", "100000"))


def _asked_from(request: web.Request) -> int | None:
    m = _RANGE.match(request.headers.get("Range", ""))
    return int(m.group(1)) if m else None


def _body_head(n: int, status: str = "200 OK", extra: Iterable[tuple[str, str]] = ()) -> bytes:
    return _head(status, [("Content-Length", str(n)), ("Content-Type", "application/octet-stream"), *extra])


async def location(request: web.Request) -> None:
    await _send_raw(request, _head("302 Found", [("Location", request.query.get("to", "ftp://192.0.2.1/x")),
                                                  ("Content-Length", "0")]))


async def loop(request: web.Request) -> None:
    await _send_raw(request, _head("302 Found", [("Location", "/fault/loop"), ("Content-Length", "0")]))


async def reason(request: web.Request) -> None:
    phrase = request.query.get("r", "\x1b[2J\x1b]2;pwned\x07Oops\x9b31m")
    await _send_raw(request, _head(f"500 {phrase}", [("Content-Length", "0")]))


async def stall(request: web.Request) -> None:
    n = _n(request)
    await _send_raw(request, _body_head(n), content.content(n // 2), hold=True)


async def silent(request: web.Request) -> None:
    await _send_raw(request, hold=True)


async def _versioned(request: web.Request, honest: bool) -> None:
    n, version = _n(request), int(request.query.get("v", "0"))
    body, etag = entity_body(n, version), entity_etag(n, version)
    start = _asked_from(request)
    if honest and request.headers.get("If-Range", etag) != etag:
        start = None                         # another entity than the client has: all of it
    if start is None or start >= n:
        await _send_raw(request, _body_head(n, extra=[("ETag", etag)]), body)
    await _send_raw(request, _body_head(n - start, "206 Partial Content",
                                        [("ETag", etag), ("Content-Range", f"bytes {start}-{n - 1}/{n}")]),
                    body[start:])


async def entity(request: web.Request) -> None:
    await _versioned(request, honest=True)


async def liar(request: web.Request) -> None:
    await _versioned(request, honest=False)


async def wrong_range(request: web.Request) -> None:
    n = _n(request)
    if _asked_from(request) is None:
        await _send_raw(request, _body_head(n), content.content(n))
    await _send_raw(request, _body_head(n, "206 Partial Content", [("Content-Range", f"bytes 0-{n - 1}/{n}")]),
                    content.content(n))


async def range_ignored(request: web.Request) -> None:
    n = _n(request)
    await _send_raw(request, _body_head(n, extra=[("ETag", '"same"')]), content.content(n))


async def raw_disposition(request: web.Request) -> None:
    n = _n(request)
    cd = request.query.get("cd", 'attachment; filename="../../evil"')
    await _send_raw(request, _body_head(n, extra=[("Content-Disposition", cd)]), content.content(n))


async def gzipped(request: web.Request) -> None:
    body = gzip_body(_n(request))
    await _send_raw(request, _body_head(len(body), extra=[("Content-Encoding", "gzip")]), body)


def _chunked(data: bytes, piece: int = 7000) -> list[bytes]:
    return [b"%x\r\n%s\r\n" % (len(data[i:i + piece]), data[i:i + piece]) for i in range(0, len(data), piece)]


async def chunked(request: web.Request) -> None:
    head = _head("200 OK", [("Transfer-Encoding", "chunked")])
    await _send_raw(request, head, *_chunked(content.content(_n(request))), b"0\r\n\r\n")


async def chunked_cut(request: web.Request) -> None:
    pieces = _chunked(content.content(_n(request)))
    await _send_raw(request, _head("200 OK", [("Transfer-Encoding", "chunked")]), *pieces[: len(pieces) // 2])


async def garbage(request: web.Request) -> None:
    await _send_raw(request, b"SSH-2.0-OpenSSH_9.6\r\n\x1b[2Jnot http\r\n")


async def huge_header(request: web.Request) -> None:
    await _send_raw(request, _head("200 OK", [("X-Big", "a" * 200_000), ("Content-Length", "0")]))


async def bad_length(request: web.Request) -> None:
    await _send_raw(request, _head("200 OK", [("Content-Length", "-5")]), b"hello")


async def overlong(request: web.Request) -> None:
    n = _n(request)
    await _send_raw(request, _body_head(n), content.content(n + 1000))


async def no_length(request: web.Request) -> None:
    await _send_raw(request, _head("200 OK"), content.content(_n(request)))


FAULTS: dict[str, Fault] = {
    "location": location, "loop": loop, "reason": reason, "stall": stall, "silent": silent,
    "entity": entity, "liar": liar, "wrong-range": wrong_range, "range-ignored": range_ignored,
    "disposition": raw_disposition, "gzip": gzipped, "chunked": chunked, "chunked-cut": chunked_cut,
    "garbage": garbage, "huge-header": huge_header, "bad-length": bad_length, "overlong": overlong,
    "no-length": no_length,
}


async def handle_fault(request: web.Request) -> web.StreamResponse:
    fault = FAULTS.get(request.match_info["name"])
    if fault is None:
        raise web.HTTPNotFound(text=f"no such fault; faults: {', '.join(FAULTS)}\n")
    await fault(request)
    raise AssertionError("a fault closes the connection itself")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/fault/{name}", handle_fault)
