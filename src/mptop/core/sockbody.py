"""The rest of a body of known length, read from the socket on a thread of its own.

aiohttp connects, does the TLS handshake, sends the request, follows redirects and parses the
headers.  Then, for a response whose length is known (``Content-Length``, no ``Transfer-Encoding``),
:func:`take_over` stops aiohttp's reading in one synchronous step on the event loop: it drains
what aiohttp had already buffered (in order, including bytes its paused parser still held) and
pauses the transport.  :class:`SocketBody` then reads the remaining bytes on its own thread into a
few preallocated buffers and hands each filled buffer to the writer thread
(:meth:`mptop.core.writer.WriterThread.write_buffer`), which writes and hashes it while the next
one is received, and gives it back: no bytes object per chunk, no re-chunking, no HTTP parser, no
event-loop wake-up per read.  It never reads past the body.

Plain HTTP: ``recv_into`` the buffer.  HTTPS: the same buffers, through the connection's own TLS
state, taken over from asyncio's SSL protocol (its ``SSLObject`` and incoming ``MemoryBIO``, with
its socket transport paused too): raw bytes are received into a buffer, written into the BIO and
decrypted with ``SSLObject.read`` straight into the writer's buffer; once done, asyncio's reading
resumes so the connection closes as usual.  When that state is not what this module expects (another
event loop or Python), the body stays with aiohttp (``iter_any``), as do chunked and length-less ones.

What aiohttp did around the body stays as it was: no byte for ``idle_timeout`` seconds raises
``TimeoutError`` (described as the idle timeout), a reset raises ``ConnectionResetError``, a close
before the end (or a TLS stream cut without close_notify) just stops (the caller's length check
says "connection closed after N of M bytes"), a failed write stops the reading (the caller raises
the writer's error), and cancelling :meth:`SocketBody.run` wakes the thread through an eventfd and
waits until it has let go of the socket and the buffers.
"""

from __future__ import annotations

import asyncio
import os
import queue
import select
import socket
import ssl
from asyncio.sslproto import SSLProtocolState
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import aiohttp

from mptop.core.threads import on_stoppable_thread, wait_or_stop
from mptop.core.writer import WriterThread

BUFFER_SIZE = 1 << 20     # bytes per read at most
BUFFERS = 4               # in flight between this thread and the writer's
RAW_SIZE = 256 << 10      # TLS: encrypted bytes per recv_into


@dataclass(slots=True)
class TlsState:
    """The TLS state of a connection, taken from asyncio's SSL protocol while the thread reads."""

    sslobj: ssl.SSLObject
    incoming: ssl.MemoryBIO
    raw: asyncio.Transport           # the socket's own transport: paused meanwhile, resumed after


@dataclass(slots=True)
class TakenBody:
    """A body taken from aiohttp: see :func:`take_over`."""

    head: list[bytes]                # what aiohttp had buffered, in order
    remaining: int                   # bytes the socket still owes (0: nothing to read)
    fd: int                          # the socket
    tls: TlsState | None             # HTTPS: the connection's TLS state
    cut: aiohttp.ClientPayloadError | None = None   # the body failed before it was taken (head: what came)


def take_over(resp: aiohttp.ClientResponse) -> TakenBody | None:
    """Take ``resp``'s body away from aiohttp, or None when it stays there (chunked, no length,
    no socket, a TLS transport this module does not know).  Raises what aiohttp would have (e.g.
    its payload error)."""
    conn, length = resp.connection, resp.content_length
    transport, protocol = (conn.transport, conn.protocol) if conn is not None else (None, None)
    if transport is None or protocol is None or length is None or "Transfer-Encoding" in resp.headers:
        return None
    sock = transport.get_extra_info("socket")
    tls = _tls_state(transport) if transport.get_extra_info("sslcontext") is not None else None
    if sock is None or (tls is None and transport.get_extra_info("sslcontext") is not None):
        return None
    content, head = resp.content, []
    # Each read may resume aiohttp's parser, which feeds what it held back into the buffer:
    # read until the buffer stays empty.  Nothing else runs meanwhile (no await).
    try:
        while data := content.read_nowait():
            head.append(data)
    except aiohttp.ClientPayloadError as exc:
        return TakenBody(head + salvage(content), 0, sock.fileno(), None, cut=exc)
    remaining = max(length - sum(map(len, head)), 0) if not content.is_eof() else 0  # at EOF, none comes
    if remaining:
        protocol.pause_reading()            # no more reads; drops aiohttp's read timeout
        if tls is not None:
            tls.raw.pause_reading()         # asyncio's SSL protocol must not resume it: it no longer
            ssl_protocol = transport._ssl_protocol  # type: ignore[attr-defined]
            ssl_protocol._ssl_reading_paused = False    # thinks it paused it (its flow control)
    return TakenBody(head, remaining, sock.fileno(), tls)


def _tls_state(transport: asyncio.BaseTransport) -> TlsState | None:
    """The TLS state behind asyncio's SSL transport (CPython ≥ 3.11), None if not as expected."""
    proto = getattr(transport, "_ssl_protocol", None)
    sslobj, incoming, raw = (getattr(proto, name, None) for name in ("_sslobj", "_incoming", "_transport"))
    if (not isinstance(sslobj, ssl.SSLObject) or not isinstance(incoming, ssl.MemoryBIO)
            or not isinstance(raw, asyncio.Transport) or not hasattr(proto, "_ssl_reading_paused")
            or getattr(proto, "_state", None) is not SSLProtocolState.WRAPPED
            or getattr(proto, "_app_protocol_is_buffer", True)):
        return None
    return TlsState(sslobj, incoming, raw)


def salvage(content: aiohttp.StreamReader) -> list[bytes]:
    """The bytes aiohttp had buffered when the body failed.  Its reads raise a cut body's error before
    handing those out, and a short body cut early arrives whole with the FIN before the first read:
    without this a download cut right after its headers kept nothing of what had arrived."""
    chunks = []
    while data := content._read_nowait(-1):     # the buffer as it is, the pending error left in place
        chunks.append(data)
    return chunks


async def pass_on(resp: aiohttp.ClientResponse, taken: TakenBody | None, writer: WriterThread,
                  count: Callable[[int], None]) -> None:
    """From the event loop to ``writer``: the taken body's head, or (nothing taken) aiohttp's chunks
    as they come (``iter_any``); ``count(n)`` for each.  A body cut short keeps what came before the
    cut (:func:`salvage`), then raises aiohttp's error."""
    try:
        async for chunk in resp.content.iter_any() if taken is None else _items(taken.head, taken.cut):
            count(len(chunk))
            await writer.write(chunk)
    except aiohttp.ClientPayloadError:
        for chunk in salvage(resp.content):      # what came before the cut: the .part keeps it
            count(len(chunk))
            await writer.write(chunk)
        raise


async def _items(items: list[bytes], error: BaseException | None) -> AsyncIterator[bytes]:
    for item in items:
        yield item
    if error is not None:
        raise error


class SocketBody:
    """Reads the rest of a :class:`TakenBody` (its socket is non-blocking; a handle of its own is
    made) into :data:`BUFFERS` buffers on a thread and passes them to ``writer``; ``on_bytes(n)`` is
    called (on that thread) as bytes arrive."""

    def __init__(self, body: TakenBody, writer: WriterThread,
                 on_bytes: Callable[[int], None], idle_timeout: float | None, name: str) -> None:
        self._sock = socket.socket(fileno=os.dup(body.fd))   # the loop may close its fd meanwhile
        self._sock.setblocking(False)
        self._tls = body.tls
        self._raw = memoryview(bytearray(RAW_SIZE if body.tls else 0))
        self._remaining = remaining = body.remaining
        self._writer = writer
        self._on_bytes = on_bytes
        self._idle_ms = None if idle_timeout is None else max(1, round(idle_timeout * 1000))
        self._name = name
        self._wake = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        self._free: queue.SimpleQueue[memoryview] = queue.SimpleQueue()
        for _ in range(min(BUFFERS, -(-remaining // BUFFER_SIZE))):
            self._free.put(memoryview(bytearray(BUFFER_SIZE)))

    async def run(self) -> None:
        """Read until the body is complete, the peer closes, a write fails or an error; raises the
        error (or the writer's).  Cancelled, it stops the thread before giving up."""
        await on_stoppable_thread(self._pump, self._name, lambda: os.eventfd_write(self._wake, 1), self._close)
        self._writer.raise_error()

    def _close(self) -> None:
        self._sock.close()
        os.close(self._wake)
        if self._tls is not None and not self._tls.raw.is_closing():
            self._tls.raw.resume_reading()       # asyncio's again: the connection closes as usual

    def _pump(self) -> None:
        poller = select.poll()
        poller.register(self._sock, select.POLLIN)
        poller.register(self._wake, select.POLLIN)
        fill = self._fill if self._tls is None else self._fill_tls
        while self._remaining > 0 and not self._writer.failed:
            view = self._free.get()               # waits while the writer holds every buffer
            n, eof = fill(view[:min(len(view), self._remaining)], poller)
            if n:
                self._remaining -= n
                self._on_bytes(n)
                self._writer.write_buffer(view[:n], self._free.put, view)
            else:
                self._free.put(view)
            if eof:
                return

    def _fill(self, view: memoryview, poller: select.poll) -> tuple[int, bool]:
        """Receive into ``view`` what is there; wait only while it is still empty.  (bytes, EOF)."""
        n, recv_into = 0, self._sock.recv_into
        while n < len(view):
            try:
                got = recv_into(view[n:])
            except BlockingIOError:
                if n:
                    return n, False
                wait_or_stop(poller, self._idle_ms, self._wake, "no data from the server")
                continue
            if not got:
                return n, True
            n += got
        return n, False

    def _fill_tls(self, view: memoryview, poller: select.poll) -> tuple[int, bool]:
        """Decrypt into ``view`` what is there, receiving more; wait only while it is still empty."""
        assert self._tls is not None
        # With a buffer, SSLObject.read returns a count (typeshed says bytes).
        read: Callable[[int, memoryview], int] = self._tls.sslobj.read  # type: ignore[assignment]
        n, incoming, raw = 0, self._tls.incoming, self._raw
        while n < len(view):
            try:
                got = read(len(view) - n, view[n:])
            except ssl.SSLWantReadError:
                got = -1                                  # the BIO ran dry: more from the socket
            except (ssl.SSLEOFError, ssl.SSLZeroReturnError):
                return n, True                            # cut without close_notify, or closed
            if got == 0:
                return n, True                            # close_notify
            if got > 0:
                n += got
                continue
            try:
                k = self._sock.recv_into(raw)
            except BlockingIOError:
                if n:
                    return n, False
                wait_or_stop(poller, self._idle_ms, self._wake, "no data from the server")
                continue
            if k:
                incoming.write(raw[:k])
            else:
                incoming.write_eof()                      # the next read says how the stream ended
        return n, False

