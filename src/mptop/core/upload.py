"""Uploads over MPTCP sockets: ``mptop put FILE|- URL…`` on the download engine.

::

    manager = UploadManager(urls, TransferOptions(require_mptcp=True), source="big.iso", method="PUT")
    async with manager:                      # the same life cycle as TransferManager
        await manager.run()                  # every URL at once; each Upload's error says why it failed

:class:`UploadManager` is a :class:`~mptop.core.transfer.TransferManager` whose per-transfer work sends
a body instead of fetching one: the same aiohttp session per transfer, the same MPTCP socket factory
(fallback with its reason, ``require_mptcp``), the same socket handles for the sampler, the same
one-line failures.  An :class:`Upload` is a :class:`~mptop.core.transfer.Transfer` with
``direction = "upload"``: the sampler then counts each subflow's acknowledged bytes
(``tcpi_bytes_acked``) as what the transfer carries.

The body streams from disk with back-pressure: aiohttp asks for the next chunk only after its
transport drained below its high-water mark, and the file is read (and hashed: ``Upload.sha256`` is
the sha256 of what was sent) on a worker thread, one chunk ahead of the network.  A regular file is
sent with a ``Content-Length``; standard input (``-``) with chunked transfer coding.  Redirects are
not followed (the body cannot be replayed).  No bytes taken by the connection for ``idle_timeout``
seconds fails the upload; so does a 2xx answer whose JSON names a ``sha256`` other than the one sent
(the lab server's ``/upload`` answers ``{"bytes": N, "sha256": "…"}``).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import stat
import sys
import time
from collections.abc import AsyncIterator, Sequence
from typing import BinaryIO, Literal

import aiohttp

from mptop.core.failures import TransferError
from mptop.core.resolver import NetnsResolver
from mptop.core.safe_text import escape_controls
from mptop.core.threads import on_daemon_thread
from mptop.core.transfer import CHUNK, Transfer, TransferManager, TransferOptions
from mptop.core.urls import parse_url
from mptop.kernel.sockets import limit_unsent
from mptop.kernel.sockopt import socket_status
from mptop.kernel.types import SocketStatus

REPLY_MAX = 4096          # bytes of the server's answer kept (and shown)
# Unsent bytes the socket may hold.  Unlimited, asyncio fills the MPTCP socket's whole send buffer at
# each writable event; the scheduler then queues ~1 MB on a slow path and the fast one idles behind it
# (data-level head-of-line).  64 KiB, like curl's 64 KiB writes per poll: 0.93x -> 1.00x of curl's
# goodput shaped 40 + 10 Mbit/s (docs/measured.md).
UNSENT_LOWAT = 64 * 1024
Method = Literal["PUT", "POST"]


class Upload(Transfer):
    """One URL's upload.  ``received`` counts the bytes handed to the connection (the progress), ``total``
    is the file's size (None for standard input), ``file`` the file sent (None for standard input)."""

    direction = "upload"

    def __init__(self, id_: int, url: str, source: str) -> None:
        super().__init__(id_, url, None)
        self.source = source
        self.file = None if source == "-" else source
        self.reply: str | None = None       # the start of the server's answer, escaped
        self.last_taken = time.monotonic()  # when the connection last took a chunk (idle timeout)
        self.body_sent = False              # aiohttp wrote the whole body: the answer's timeout takes over

    @property
    def bytes_done(self) -> int:
        return self.received


def check_source(source: str, url_count: int) -> int | None:
    """Before anything starts: the file can be read (its size; None for standard input or a pipe),
    else :class:`TransferError` with one line naming the cause."""
    if source == "-":
        if url_count > 1:
            raise TransferError(f"standard input can be sent once: {url_count} URLs need a file")
        return None
    try:
        st = os.stat(source)
        if stat.S_ISDIR(st.st_mode):
            raise TransferError(f"{source} is a directory")
        with open(source, "rb"):
            pass
    except OSError as exc:
        raise TransferError(f"cannot read {source}: {(exc.strerror or str(exc)).lower()}") from None
    return st.st_size if stat.S_ISREG(st.st_mode) else None


class _Reader:
    """A file read and hashed off the event loop, one chunk ahead of whoever iterates :meth:`chunks`;
    at most ``limit`` bytes (the size announced in Content-Length).

    Each read runs on a daemon thread of its own (about 100 per second at 1 Gbit/s): a read that
    blocks (standard input from a terminal) never keeps the process from exiting."""

    def __init__(self, source: str, limit: int | None) -> None:
        self._file: BinaryIO = os.fdopen(os.dup(sys.stdin.fileno()), "rb") if source == "-" \
            else open(source, "rb")
        self._left = limit
        self.hash = hashlib.sha256()

    def _read(self) -> bytes:
        want = CHUNK if self._left is None else min(CHUNK, self._left)
        chunk = self._file.read(want) if want else b""
        self.hash.update(chunk)
        if self._left is not None:
            self._left -= len(chunk)
        return chunk

    async def chunks(self) -> AsyncIterator[bytes]:
        ahead = on_daemon_thread(self._read, name="mptop-upload-read")
        try:
            while chunk := await ahead:
                ahead = on_daemon_thread(self._read, name="mptop-upload-read")
                yield chunk
        finally:
            if ahead.done():
                self._file.close()
            else:                 # the thread still reads: it closes nothing; the handle goes with it
                ahead.add_done_callback(lambda _: self._file.close())


class UploadManager(TransferManager):
    """Sends ``source`` (a file, or ``-`` for standard input) to every URL at once with ``method``."""

    def __init__(self, urls: Sequence[str], options: TransferOptions, source: str, method: Method = "PUT") -> None:
        self.source, self.method = source, method
        self.size = check_source(source, len(urls))
        super().__init__(urls, TransferOptions(
            output=None, insecure=options.insecure, require_mptcp=options.require_mptcp,
            connect_timeout=options.connect_timeout, idle_timeout=options.idle_timeout,
            max_redirects=0, resume=False, compare_tcp=options.compare_tcp))

    def _new_transfer(self, id_: int, url: str) -> Transfer:
        t = Upload(id_, url, self.source)
        try:
            parse_url(url)
        except TransferError as exc:
            t.state, t.error = "failed", str(exc)
        return t

    async def _download(self, t: Transfer, resolver: NetnsResolver) -> None:
        """The per-transfer work of the engine: here, the upload."""
        assert isinstance(t, Upload)
        t.total = self.size
        reader = _Reader(self.source, self.size)
        headers = {"Content-Type": "application/octet-stream"}
        if self.size is not None:
            headers["Content-Length"] = str(self.size)
        async with self._session(t, resolver) as session:
            watchdog = asyncio.create_task(self._watch_idle(t), name=f"upload-idle-{t.id}")
            try:
                async with session.request(self.method, t.url, data=self._sent(t, reader), headers=headers,
                                           allow_redirects=False) as resp:
                    t._note_active(resp)
                    await self._answer(t, resp, reader.hash.hexdigest())
            finally:
                watchdog.cancel()

    async def _sent(self, t: Upload, reader: _Reader) -> AsyncIterator[bytes]:
        """The body aiohttp sends; a failure here ends the transfer through :meth:`Transfer.fail`
        (aiohttp would wrap an exception raised from a body into a line that names no cause)."""
        t.state = "running"       # connected, headers sent: the connection is MPTCP or it is not
        self._check_mptcp(t)
        try:
            async for chunk in reader.chunks():
                if t.finished or t._abort is not None:
                    return
                t.last_taken = time.monotonic()
                t.received += len(chunk)
                yield chunk
        except OSError as exc:
            t.fail(f"cannot read {t.file or 'standard input'}: {(exc.strerror or str(exc)).lower()}")
            return
        t.last_taken = time.monotonic()
        t.body_sent = True          # aiohttp asks for more only once the last chunk went to the socket
        if t.total is not None and t.received != t.total:
            t.fail(f"{t.file} shrank while it was sent: {t.received} of {t.total} bytes")

    def _check_mptcp(self, t: Upload) -> None:
        active = t.sockets[-1] if t.sockets else None   # one connection per transfer: the newest socket
        t.active_socket = active
        if active is not None:
            limit_unsent(active, UNSENT_LOWAT)
        if self.options.require_mptcp and active is not None and socket_status(active) is not SocketStatus.MPTCP:
            t.fail("the server does not speak MPTCP (connection fell back to TCP)")

    async def _watch_idle(self, t: Upload) -> None:
        """Fail an upload whose connection takes no bytes for ``idle_timeout`` s while it sends."""
        idle = self.options.idle_timeout
        while True:
            await asyncio.sleep(min(1.0, idle / 4))
            if t.state == "running" and not t.body_sent and time.monotonic() - t.last_taken > idle:
                t.fail(f"the connection took no data for {idle:g} s (idle timeout) after {t.received} of "
                       f"{t.total if t.total is not None else '?'} bytes")
                return

    @staticmethod
    async def _answer(t: Upload, resp: aiohttp.ClientResponse, sent_sha256: str) -> None:
        body = await resp.content.read(REPLY_MAX)
        t.reply = escape_controls(body.decode("utf-8", "replace").strip()) or None
        if not 200 <= resp.status < 300:
            where = f" to {escape_controls(resp.headers.get('Location', ''))}" if 300 <= resp.status < 400 else ""
            raise TransferError(f"HTTP {resp.status} {resp.reason or ''}".rstrip() + where)
        t.sha256 = sent_sha256
        theirs = _reply_sha256(body)
        if theirs is not None and theirs != sent_sha256:
            raise TransferError(f"the server received other bytes: its sha256 {escape_controls(theirs)}, "
                                f"sent {sent_sha256}")


def _reply_sha256(body: bytes) -> str | None:
    """The ``sha256`` a JSON answer names (the lab server's), else None."""
    try:
        data = json.loads(body)
    except ValueError:
        return None
    value = data.get("sha256") if isinstance(data, dict) else None
    return value.lower() if isinstance(value, str) else None
