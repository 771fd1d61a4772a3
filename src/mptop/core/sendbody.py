"""An upload's body: read and hashed on one long-lived thread, sent by another straight to the socket.

:class:`FileChunks` reads the source (a file, or standard input) on a daemon thread of its own, at most
``limit`` bytes, a few chunks ahead of the sending, and feeds each chunk to the sha256 as it is read
(hashlib lets go of the GIL for large buffers, so hashing overlaps the sending on another core).  With
``reuse`` it reads into :data:`BUFFERS` preallocated buffers that the sender gives back once sent (no
bytes object per chunk); without, each chunk is a new ``bytes`` that whoever sends it may keep (asyncio's
transports keep what they could not send yet).  A thread takes chunks with :meth:`FileChunks.take`, the
event loop with :meth:`FileChunks.next_chunk`; the read never blocks the loop, and a read that blocks
(standard input from a terminal) never keeps the process from exiting.

:class:`SocketSend` sends a plain-HTTP body of known length on the connection's socket from a thread of
its own, once aiohttp has written the request's headers: ``send`` of each buffer's slices as the socket
takes them (it takes at most ``TCP_NOTSENT_LOWAT`` unsent bytes), waiting in ``poll``, so the event loop
wakes for no part of the body and no byte is copied into a transport's buffer.  Cancelling
:meth:`SocketSend.run` wakes the thread through an eventfd and waits until it has let go of the socket
and the buffers.  HTTPS and chunked bodies stay with aiohttp (its TLS state lives on the loop).
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import queue
import select
import socket
import sys
import threading
from collections.abc import Callable

from mptop.core.sockbody import BUFFER_SIZE, BUFFERS
from mptop.core.threads import ThreadStopped, on_stoppable_thread, wait_or_stop


class SourceError(Exception):
    """Reading the source failed; ``error`` says why."""

    def __init__(self, error: OSError) -> None:
        super().__init__(str(error))
        self.error = error


# A chunk and the buffer it lies in (None when it is a bytes object of its own), None at the end,
# or the error that ended the reading.
_Item = tuple[memoryview | bytes, memoryview | None] | OSError | None


def open_source(source: str) -> io.FileIO | io.BufferedReader:
    """The file to send (unbuffered: each read lands in the caller's buffer), or standard input (``-``:
    a handle of its own, buffered so that chunks are whole)."""
    if source == "-":
        return os.fdopen(os.dup(sys.stdin.fileno()), "rb")
    return open(source, "rb", buffering=0)


class FileChunks:
    """``source`` read (and hashed: :attr:`hash`) on a thread of its own, one chunk after another."""

    def __init__(self, source: str, limit: int | None, reuse: bool, name: str, digest: bool = True) -> None:
        self.reuse = reuse
        self.hash = hashlib.sha256() if digest else None      # None: ``--no-hash``
        self.limit = limit
        self._file = open_source(source)
        self._left = limit
        self._name = name
        self._free: queue.SimpleQueue[memoryview | None] = queue.SimpleQueue()
        self._filled: queue.SimpleQueue[_Item] = queue.SimpleQueue()
        self._stopped = False
        self._started = False
        self._wake: Callable[[], object] | None = None   # the loop's consumer: told of each chunk
        self._ready: asyncio.Event | None = None
        for _ in range(BUFFERS):
            self._free.put(memoryview(bytearray(BUFFER_SIZE)) if reuse else None)

    def _start(self) -> None:
        if not self._started:
            self._started = True
            threading.Thread(target=self._work, name=self._name, daemon=True).start()

    def _work(self) -> None:
        try:
            while True:
                slot = self._free.get()          # waits while the sender holds every buffer
                if self._stopped:
                    return
                item = self._read(slot)
                self._filled.put(item)
                if self._wake is not None:
                    self._wake()
                if not isinstance(item, tuple):
                    return
        finally:
            self._file.close()

    def _read(self, slot: memoryview | None) -> _Item:
        want = BUFFER_SIZE if self._left is None else min(BUFFER_SIZE, self._left)
        if not want:
            return None
        try:
            if slot is None:
                chunk: memoryview | bytes = self._file.read(want)
            else:
                chunk = slot[:self._file.readinto(slot[:want]) or 0]
        except OSError as exc:
            return exc
        if not chunk:
            return None
        if self.hash is not None:
            self.hash.update(chunk)
        if self._left is not None:
            self._left -= len(chunk)
        return chunk, slot

    @property
    def whole_file(self) -> bool:
        """Nothing to hash and the source is a regular file: the kernel may send it (``sendfile``)."""
        return self.hash is None and self.reuse

    def fileno(self) -> int:
        return self._file.fileno()

    def take(self) -> tuple[memoryview | bytes, memoryview | None] | None:
        """From a thread: the next chunk and its buffer (for :meth:`give_back`), None at the end.
        Raises :class:`SourceError` when the reading failed."""
        self._start()
        return _unpack(self._filled.get())

    async def next_chunk(self) -> tuple[memoryview | bytes, memoryview | None] | None:
        """From the event loop: :meth:`take`, awaited."""
        if self._ready is None:
            self._ready = ready = asyncio.Event()
            loop = asyncio.get_running_loop()
            self._wake = lambda: loop.call_soon_threadsafe(ready.set)
        self._start()
        while True:
            try:
                return _unpack(self._filled.get_nowait())
            except queue.Empty:
                pass
            self._ready.clear()
            if self._filled.empty():
                await self._ready.wait()

    def give_back(self, slot: memoryview | None) -> None:
        """A chunk was sent: its buffer (``slot``, None for a bytes chunk) may be read into again."""
        self._free.put(slot)

    def interrupt(self) -> None:
        """Wake a thread waiting in :meth:`take` (it gets the end)."""
        self._filled.put(None)

    def close(self) -> None:
        """Stop reading; the thread closes the file when its current read returns."""
        self._stopped = True
        if not self._started:
            self._file.close()
            return
        self._free.put(None)


def _unpack(item: _Item) -> tuple[memoryview | bytes, memoryview | None] | None:
    if isinstance(item, OSError):
        raise SourceError(item)
    return item


class SocketSend:
    """Sends what ``chunks`` reads on the socket ``fd`` (non-blocking; a handle of its own is made) from
    a thread, or, for a :attr:`FileChunks.whole_file`, the file itself with ``sendfile`` (no copy through
    user space, no reader thread); ``on_sent(n)`` is called (on that thread) as the socket takes bytes.
    ``stall_s`` without the socket taking any raises ``TimeoutError`` (a backstop: the upload's own idle
    timeout is shorter)."""

    def __init__(self, fd: int, chunks: FileChunks, on_sent: Callable[[int], None], stall_s: float,
                 name: str) -> None:
        self._sock = socket.socket(fileno=os.dup(fd))   # the loop may close its fd meanwhile
        self._sock.setblocking(False)
        self._chunks = chunks
        self._on_sent = on_sent
        self._stall_ms = max(1, round(stall_s * 1000))
        self._name = name
        self._wake = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        self._stopping = False
        self._file = os.dup(chunks.fileno()) if chunks.whole_file else None   # closed here, not under us

    async def run(self) -> None:
        """Send until the source ends; raises the sending's error or :class:`SourceError`.
        Cancelled, it stops the thread before giving up."""
        await on_stoppable_thread(self._pump, self._name, self._stop, self._close)

    def _stop(self) -> None:
        self._stopping = True
        os.eventfd_write(self._wake, 1)           # a wait for the socket ends
        self._chunks.interrupt()                  # so does a wait for the next chunk

    def _close(self) -> None:
        self._sock.close()
        os.close(self._wake)
        if self._file is not None:
            os.close(self._file)

    def _pump(self) -> None:
        poller = select.poll()
        poller.register(self._sock, select.POLLOUT)
        poller.register(self._wake, select.POLLIN)
        if self._file is not None:
            self._send_file(poller, self._file)
            return
        send, on_sent = self._sock.send, self._on_sent
        while (item := self._chunks.take()) is not None:
            chunk, slot = item
            view, n = memoryview(chunk), 0
            while n < len(view):
                try:
                    k = send(view[n:])
                except BlockingIOError:
                    k = 0
                if k:
                    n += k
                    on_sent(k)
                if n < len(view):
                    self._writable(poller)
            self._chunks.give_back(slot)
        if self._stopping:                        # take() was interrupted: the body is not complete
            raise ThreadStopped

    def _writable(self, poller: select.poll) -> None:
        """Wait until the socket says it takes more.  Sending again at once after it took part of a
        buffer fills the MPTCP socket's send buffer to the brim, as asyncio did; waiting for POLLOUT
        (as curl does) keeps it at the kernel's writability threshold, and a fast path is not left
        idle behind a slow one's queue (docs/measured.md, the upload's send path)."""
        wait_or_stop(poller, self._stall_ms, self._wake, "the connection took no data")

    def _send_file(self, poller: select.poll, file: int) -> None:
        """The file's first ``limit`` bytes (fewer if it shrank meanwhile), page cache to socket."""
        out, offset, left = self._sock.fileno(), 0, self._chunks.limit
        assert left is not None
        while left > 0:
            try:
                k = os.sendfile(out, file, offset, min(left, BUFFER_SIZE))
            except BlockingIOError:
                k = -1
            if not k:
                return                            # the file ended early: the caller says it shrank
            if k > 0:
                offset, left = offset + k, left - k
                self._on_sent(k)
            if left > 0:
                self._writable(poller)
