"""The rest of a plain-HTTP body, read straight from the socket on a thread of its own.

aiohttp connects, sends the request, follows redirects and parses the headers.  Then, for a
plain-HTTP response whose length is known (``Content-Length``, no ``Transfer-Encoding``),
:func:`take_over` stops aiohttp's reading in one synchronous step on the event loop: it drains
what aiohttp had already buffered (in order, including bytes its paused parser still held) and
pauses the transport.  :class:`SocketBody` then reads the remaining bytes with ``recv_into`` into
a few preallocated buffers on its own thread and hands each filled buffer to the writer thread
(:meth:`mptop.core.writer.WriterThread.write_buffer`), which writes and hashes it while the next
one is received, and gives it back: no bytes object per chunk, no re-chunking, no event-loop
wake-up per read.  It never reads past the body.

What aiohttp did around the body stays as it was: no byte for ``idle_timeout`` seconds raises
``TimeoutError`` (described as the idle timeout), a reset raises ``ConnectionResetError``, a close
before the end just stops (the caller's length check says "connection closed after N of M
bytes"), a failed write stops the reading (the caller raises the writer's error), and cancelling
:meth:`SocketBody.run` wakes the thread through an eventfd and waits until it has let go of the
socket and the buffers.  HTTPS bodies stay with aiohttp (``iter_any``: its chunks as they come).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import select
import socket
import threading
from collections.abc import Callable

import aiohttp

from mptop.core.writer import WriterThread

BUFFER_SIZE = 1 << 20     # bytes per recv_into at most
BUFFERS = 4               # in flight between this thread and the writer's


class _Stopped(Exception):
    """The event loop asked the reading thread to stop (cancellation)."""


def take_over(resp: aiohttp.ClientResponse) -> tuple[list[bytes], int, int] | None:
    """Take ``resp``'s body away from aiohttp: the bytes it had buffered, how many the socket still
    owes (0: nothing to read) and the socket's fd, or None when the body stays with aiohttp (HTTPS, chunked,
    no length, no socket).  Raises what aiohttp would have (e.g. its payload error)."""
    conn, length = resp.connection, resp.content_length
    transport, protocol = (conn.transport, conn.protocol) if conn is not None else (None, None)
    if transport is None or protocol is None or length is None or "Transfer-Encoding" in resp.headers:
        return None
    sock = transport.get_extra_info("socket")
    if sock is None or transport.get_extra_info("sslcontext") is not None:
        return None
    content, head = resp.content, []
    # Each read may resume aiohttp's parser, which feeds what it held back into the buffer:
    # read until the buffer stays empty.  Nothing else runs meanwhile (no await).
    while data := content.read_nowait():
        head.append(data)
    remaining = length - sum(map(len, head))
    if remaining > 0 and not content.is_eof():
        protocol.pause_reading()            # no more reads; drops aiohttp's read timeout
    return head, max(remaining, 0), sock.fileno()


def salvage(content: aiohttp.StreamReader) -> list[bytes]:
    """The bytes aiohttp had buffered when the body failed.  Its reads raise a cut body's error before
    handing those out, and a short body cut early arrives whole with the FIN before the first read:
    without this a download cut right after its headers kept nothing of what had arrived."""
    chunks = []
    while data := content._read_nowait(-1):     # the buffer as it is, the pending error left in place
        chunks.append(data)
    return chunks


class SocketBody:
    """Reads ``remaining`` bytes of the socket ``fd`` (non-blocking; a handle of its own is made)
    into :data:`BUFFERS` buffers on a thread and passes them to ``writer``; ``on_bytes(n)`` is called
    (on that thread) as bytes arrive."""

    def __init__(self, fd: int, remaining: int, writer: WriterThread,
                 on_bytes: Callable[[int], None], idle_timeout: float | None, name: str) -> None:
        self._sock = socket.socket(fileno=os.dup(fd))   # the loop may close its fd meanwhile
        self._sock.setblocking(False)
        self._remaining = remaining
        self._writer = writer
        self._on_bytes = on_bytes
        self._idle_ms = None if idle_timeout is None else max(1, round(idle_timeout * 1000))
        self._name = name
        self._wake = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        self._free: queue.SimpleQueue[memoryview] = queue.SimpleQueue()
        for _ in range(min(BUFFERS, -(-remaining // BUFFER_SIZE))):
            self._free.put(memoryview(bytearray(BUFFER_SIZE)))
        self._error: BaseException | None = None

    async def run(self) -> None:
        """Read until the body is complete, the peer closes, a write fails or an error; raises the
        error (or the writer's).  Cancelled, it stops the thread before giving up."""
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        done.add_done_callback(self._close)     # on the loop, once the thread has let go of both
        threading.Thread(target=self._main, args=(loop, done), name=self._name, daemon=True).start()
        try:
            await asyncio.shield(done)
        except asyncio.CancelledError:
            if not done.done():
                os.eventfd_write(self._wake, 1)
                await asyncio.wait([done])       # the thread lets go of the socket at once
            raise
        if self._error is not None:
            raise self._error
        self._writer.raise_error()

    def _close(self, _: object) -> None:
        self._sock.close()
        os.close(self._wake)

    def _main(self, loop: asyncio.AbstractEventLoop, done: asyncio.Future[None]) -> None:
        try:
            self._pump()
        except _Stopped:
            pass
        except BaseException as exc:
            self._error = exc
        with contextlib.suppress(RuntimeError):     # the loop is gone: nobody waits any more
            loop.call_soon_threadsafe(_mark_done, done)

    def _pump(self) -> None:
        poller = select.poll()
        poller.register(self._sock, select.POLLIN)
        poller.register(self._wake, select.POLLIN)
        while self._remaining > 0 and not self._writer.failed:
            view = self._free.get()               # waits while the writer holds every buffer
            n, eof = self._fill(view[:min(len(view), self._remaining)], poller)
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
                self._wait(poller)
                continue
            if not got:
                return n, True
            n += got
        return n, False

    def _wait(self, poller: select.poll) -> None:
        events = poller.poll(self._idle_ms)
        if not events:
            raise TimeoutError("no data from the server")
        if any(fd == self._wake for fd, _ in events):
            raise _Stopped


def _mark_done(done: asyncio.Future[None]) -> None:
    if not done.done():
        done.set_result(None)
