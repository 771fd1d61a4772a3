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

The body streams from disk with back-pressure (:mod:`mptop.core.sendbody`): one long-lived thread reads it a
few chunks ahead and hashes it (``Upload.sha256`` is the sha256 of what was sent); a regular file over plain
HTTP goes from preallocated buffers to the socket on another thread, as fast as the socket takes it, once
aiohttp has sent the headers; HTTPS and standard input go through aiohttp's writer, which asks for the next
chunk once its transport drained.  Without a hash (``digest=None``, ``--no-hash``) a regular file over plain
HTTP is sent by the kernel from the page cache (``sendfile``).  A regular file is sent with a
``Content-Length``; standard input (``-``) with chunked transfer coding.  Redirects are not followed (the body
cannot be replayed).  No bytes taken by the connection for ``idle_timeout`` seconds fails the upload; so does a 2xx
answer whose JSON names a ``sha256`` other than the one sent (the lab server's ``/upload`` answers
``{"bytes": N, "sha256": "…"}``).
"""

from __future__ import annotations

import asyncio
import json
import os
import stat
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Literal

import aiohttp
import aiohttp.payload
from aiohttp.abc import AbstractStreamWriter
from yarl import URL

from mptop.core.failures import TransferError
from mptop.core.resolver import NetnsResolver
from mptop.core.safe_text import escape_controls
from mptop.core.sendbody import FileChunks, SocketSend, SourceError
from mptop.core.transfer import Transfer, TransferManager, TransferOptions
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

    def count_taken(self, n: int) -> None:
        """The connection took ``n`` more bytes of the body (called by the thread that sends them)."""
        self.received += n
        self.last_taken = time.monotonic()


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


class _Body(aiohttp.payload.Payload):
    """The request body: aiohttp hands its stream writer to ``send`` once the headers are ready."""

    def __init__(self, send: Callable[[AbstractStreamWriter], Awaitable[None]], size: int | None) -> None:
        super().__init__(None, content_type="application/octet-stream")
        self._size = size
        self._send = send

    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        raise TypeError("an upload's body is streamed from its source")

    async def write(self, writer: AbstractStreamWriter) -> None:
        await self._send(writer)

    async def write_with_length(self, writer: AbstractStreamWriter, content_length: int | None) -> None:
        await self._send(writer)


class UploadManager(TransferManager):
    """Sends ``source`` (a file, or ``-`` for standard input) to every URL at once with ``method``."""

    def __init__(self, urls: Sequence[str], options: TransferOptions, source: str, method: Method = "PUT") -> None:
        self.source, self.method = source, method
        self.size = check_source(source, len(urls))
        super().__init__(urls, TransferOptions(
            output=None, insecure=options.insecure, require_mptcp=options.require_mptcp,
            connect_timeout=options.connect_timeout, idle_timeout=options.idle_timeout,
            max_redirects=0, resume=False, compare_tcp=options.compare_tcp, digest=options.digest))

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
        # A regular file over plain HTTP goes from its buffers to the socket on a thread (SocketSend).
        chunks = FileChunks(self.source, self.size, reuse=self.size is not None and URL(t.url).scheme == "http",
                            name=f"mptop-upload-read-{t.id}", digest=self.options.digest is not None)
        headers = {"Content-Type": "application/octet-stream"}
        if self.size is not None:
            headers["Content-Length"] = str(self.size)
        body = _Body(lambda writer: self._send_body(t, chunks, writer), self.size)
        try:
            async with self._session(t, resolver) as session:
                watchdog = asyncio.create_task(self._watch_idle(t), name=f"upload-idle-{t.id}")
                try:
                    async with session.request(self.method, t.url, data=body, headers=headers,
                                               allow_redirects=False) as resp:
                        t._note_active(resp)
                        await self._answer(t, resp, chunks.hash.hexdigest() if chunks.hash is not None else None)
                finally:
                    watchdog.cancel()
        finally:
            chunks.close()

    async def _send_body(self, t: Upload, chunks: FileChunks, writer: AbstractStreamWriter) -> None:
        """Send the body (aiohttp awaits this once the headers are ready); a failure to read ends the
        transfer through :meth:`Transfer.fail` (aiohttp would wrap an exception raised from a body into
        a line that names no cause)."""
        t.state = "running"       # connected, headers ready: the connection is MPTCP or it is not
        self._check_mptcp(t)
        if t.finished or t._abort is not None:
            return
        try:
            fd = await _headers_sent(writer) if chunks.reuse else None
            if fd is not None:
                await SocketSend(fd, chunks, t.count_taken, 2 * self.options.idle_timeout + 1,
                                 f"mptop-upload-send-{t.id}").run()
            else:
                while (item := await chunks.next_chunk()) is not None:
                    if t.finished or t._abort is not None:
                        return
                    chunk, slot = item
                    t.count_taken(len(chunk))
                    # A transport keeps what it could not send yet: a reused buffer goes as a copy.
                    await writer.write(chunk if slot is None else bytes(chunk))
                    chunks.give_back(slot)
        except SourceError as exc:
            err = exc.error
            t.fail(f"cannot read {t.file or 'standard input'}: {(err.strerror or str(err)).lower()}")
            return
        t.last_taken = time.monotonic()
        t.body_sent = True          # the whole body went to the socket: the answer's timeout takes over
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
    async def _answer(t: Upload, resp: aiohttp.ClientResponse, sent_sha256: str | None) -> None:
        """The server's answer; with ``sent_sha256`` (None: ``--no-hash``), the sha256 it names must match."""
        body = await resp.content.read(REPLY_MAX)
        t.reply = escape_controls(body.decode("utf-8", "replace").strip()) or None
        if not 200 <= resp.status < 300:
            where = f" to {escape_controls(resp.headers.get('Location', ''))}" if 300 <= resp.status < 400 else ""
            raise TransferError(f"HTTP {resp.status} {resp.reason or ''}".rstrip() + where)
        t.sha256 = sent_sha256
        theirs = _reply_sha256(body)
        if theirs is not None and sent_sha256 is not None and theirs != sent_sha256:
            raise TransferError(f"the server received other bytes: its sha256 {escape_controls(theirs)}, "
                                f"sent {sent_sha256}")


async def _headers_sent(writer: AbstractStreamWriter) -> int | None:
    """Send the request's headers (aiohttp holds them for the first chunk); the socket to send the
    body on, or None when the body stays with aiohttp (TLS, or the headers are not all out yet)."""
    await writer.write(b"")
    transport = writer.transport
    if transport is None or transport.get_extra_info("sslcontext") is not None \
            or transport.get_write_buffer_size():
        return None
    sock = transport.get_extra_info("socket")
    return sock.fileno() if sock is not None else None


def _reply_sha256(body: bytes) -> str | None:
    """The ``sha256`` a JSON answer names (the lab server's), else None."""
    try:
        data = json.loads(body)
    except ValueError:
        return None
    value = data.get("sha256") if isinstance(data, dict) else None
    return value.lower() if isinstance(value, str) else None
