"""Downloads over MPTCP sockets: the transfer engine.

Public API::

    options = TransferOptions(output="out/", require_mptcp=False)
    async with TransferManager(urls, options) as manager:   # raises TransferError for a bad -o
        sampler.watch(manager.transfers)                   # Transfer objects exist before any I/O
        await manager.run(on_start=callback)               # every URL at once, one task each
    # leaving the block releases every socket handle that is still held

    transfers = await run_transfers(urls, options)          # the same, sockets released at the end

Each :class:`Transfer` uses its own aiohttp session and ``TCPConnector`` whose ``socket_factory``
creates MPTCP sockets (plain TCP when the host cannot, with the reason in
``Transfer.mptcp_unavailable``; an error instead with ``require_mptcp``).  One connector per
transfer is what attributes every socket to its transfer: the factory keeps a second handle (an
``os.dup``) of each socket in ``Transfer.sockets``, so the sampler can read the kernel's status and
final counters even when the transfer ended between two polls.  Those handles keep the kernel
sockets open: the sampler calls :meth:`Transfer.release_sockets` after its final read, and
:class:`TransferManager` (leaving ``async with``, or :meth:`TransferManager.release_sockets`)
closes whatever is left.

With ``require_mptcp`` a fallback seen on the connection carrying the response (checked when the
headers arrive) fails the transfer; the sampler, which sees fallbacks later, calls
:meth:`Transfer.fail` with its reason.

A body goes to one writer thread per transfer (:class:`mptop.core.writer.WriterThread`) that
writes it and hashes it (``digest``: sha256 by default, blake3, or None) while the next bytes are received.  A
body of known length (HTTP or HTTPS) is read from the socket by a thread of its own into
preallocated buffers (:mod:`mptop.core.sockbody`); any other (chunked, no length) comes from
aiohttp's ``iter_any``, its chunks as they arrive, never re-chunked.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import aiohttp
from aiohttp.multipart import BadContentDispositionHeader, BadContentDispositionParam
from yarl import URL

from mptop.core.digest import DEFAULT_DIGEST
from mptop.core.failures import FailureContext, TransferError, describe
from mptop.core.model import CompareSide
from mptop.core.output import (
    OutputPlan,
    OutputTarget,
    check_final,
    disposition_name,
    part_size,
    plan_output,
    prepare_directory,
    rename_from_server,
    target_for,
)
from mptop.core.partfile import content_range, not_resumed, partial_mismatch, recorded_validator, validator_of
from mptop.core.resolver import NetnsResolver
from mptop.core.sockbody import SocketBody, pass_on, take_over
from mptop.core.urls import parse_url
from mptop.core.writer import FileWriter, WriterThread
from mptop.kernel.sockets import create_mptcp_socket, dup_handle
from mptop.kernel.sockopt import socket_status
from mptop.kernel.types import MptcpUnavailable, SocketStatus

COMPARED = "compared with MPTCP"      # why a --compare-tcp twin is plain TCP
CHUNK = 1 << 20          # bytes per read at most: few enough chunks/s that per-chunk overhead is noise

State = Literal["connecting", "running", "done", "failed"]


@dataclass(slots=True)
class TransferOptions:
    output: str | None = None          # see mptop.core.output: FILE, DIR/, "-", /dev/null, None
    force: bool = False                # replace an existing final file
    insecure: bool = False             # skip TLS certificate verification
    require_mptcp: bool = False        # a transfer that cannot use MPTCP (or falls back) fails
    connect_timeout: float = 15.0      # seconds for DNS + TCP/TLS handshake
    idle_timeout: float = 30.0         # seconds without a byte from the server
    max_redirects: int = 10
    resume: bool = True                # continue an existing NAME.part with Range
    compare_tcp: bool = False          # each URL once more over plain TCP, discarded (hashed), for comparison
    digest: str | None = DEFAULT_DIGEST  # each body's hash (off the event loop): sha256, blake3; None: --no-hash


class Transfer:
    """One URL's download, as the sampler and the views see it."""

    def __init__(self, id_: int, url: str, target: OutputTarget | None) -> None:
        self.id = id_
        self.url = url
        self.target = target                      # None when the URL could not be parsed
        self.total: int | None = None             # length of the whole file (Range-aware)
        self.state: State = "connecting"
        self.error: str | None = None             # one plain line
        self.mptcp_unavailable: str | None = None  # why plain TCP sockets were made, else None
        self.sockets: list[socket.socket] = []     # a handle on every socket the factory made
        self.active_socket: socket.socket | None = None   # the one carrying the response
        self.started_at: float | None = None      # time.monotonic()
        self.ended_at: float | None = None
        self.sha256: str | None = None            # the body's hash, by --hash (None: another or none)
        self.blake3: str | None = None
        self.file: str | None = None              # final path; None for stdout or a failure
        self.received = 0                         # bytes of the file received (incl. resumed prefix)
        self.resumed = 0                          # of those, a kept .part's: not fetched by this run
        self.notes: list[str] = []                # one line each, for the views (the sampler takes them)
        self._writer: WriterThread | None = None
        self._fd_handles: dict[int, socket.socket] = {}
        self._task: asyncio.Task[None] | None = None
        self._abort: str | None = None
        self.compare: CompareSide | None = None   # one of a --compare-tcp pair (see TransferManager)

    @property
    def bytes_done(self) -> int:
        """Body bytes written so far, including a resumed ``.part``'s size."""
        return self._writer.file.written if self._writer is not None else 0

    @property
    def finished(self) -> bool:
        return self.state in ("done", "failed")

    def fail(self, reason: str) -> None:
        """Stop this transfer with ``reason`` as its error (e.g. the sampler saw a fallback)."""
        if self.finished:
            return
        self._abort = reason
        if self._task is not None:
            self._task.cancel()
        if self.started_at is None:     # its task never ran (or never will): nothing else says so
            self.state, self.error = "failed", reason

    def count_received(self, n: int) -> None:
        """``n`` more bytes of the body arrived (called by the thread that reads them)."""
        self.received += n

    def release_sockets(self) -> None:
        """Close the handles on this transfer's sockets (the kernel sockets may then go away)."""
        handles, self.sockets = self.sockets, []
        self._fd_handles.clear()
        self.active_socket = None
        for handle in handles:
            handle.close()

    def make_socket(self, addr_info: tuple[Any, ...], require_mptcp: bool) -> socket.socket:
        """The connector's socket factory: MPTCP if possible, and a handle kept for the sampler."""
        family, type_, proto = addr_info[0], addr_info[1], addr_info[2]
        if self.compare == "tcp":           # plain TCP on purpose: the comparison's other side
            self.mptcp_unavailable = COMPARED
            sock = socket.socket(family, type_, proto)
        else:
            try:
                sock = create_mptcp_socket(family, type_)
            except MptcpUnavailable as exc:
                if require_mptcp:
                    raise
                self.mptcp_unavailable = exc.reason
                sock = socket.socket(family, type_, proto)
        handle = dup_handle(sock)
        self.sockets.append(handle)
        self._fd_handles[sock.fileno()] = handle   # the latest socket on an fd number wins
        return sock

    def _note_active(self, resp: aiohttp.ClientResponse) -> None:
        transport = resp.connection.transport if resp.connection else None
        sock = transport.get_extra_info("socket") if transport else None
        self.active_socket = self._fd_handles.get(sock.fileno()) if sock is not None else None

    def __repr__(self) -> str:
        return f"Transfer(#{self.id} {self.url} {self.state} {self.bytes_done}/{self.total})"


class TransferManager:
    """Runs every URL at once; see the module docstring."""

    def __init__(self, urls: Sequence[str], options: TransferOptions) -> None:
        # Compared downloads fetch the same bytes: a kept .part would spare the MPTCP one some.
        self.options = replace(options, resume=False) if options.compare_tcp else options
        self.plan: OutputPlan = plan_output(options.output, len(urls))
        self.transfers: list[Transfer] = []
        self._claimed: dict[str, int] = {}      # final path -> transfer id, within this run
        for i, url in enumerate(urls, start=1):
            self.transfers.append(self._new_transfer(i, url))
        if options.compare_tcp:
            self._add_tcp_twins()

    def _add_tcp_twins(self) -> None:
        """--compare-tcp: each URL again over plain TCP; a download's body is hashed and discarded
        (the MPTCP download is the one that lands where ``-o`` says), an upload is sent twice."""
        for t in list(self.transfers):
            twin = self._new_transfer(len(self.transfers) + 1, t.url)
            if twin.target is not None:
                twin.target = OutputTarget("direct", os.devnull)
            t.compare, twin.compare = "mptcp", "tcp"
            twin.state, twin.error = t.state, t.error      # a URL that cannot be parsed fails twice
            self.transfers.append(twin)

    def _new_transfer(self, id_: int, url: str) -> Transfer:
        try:
            parsed = parse_url(url)
        except TransferError as exc:
            t = Transfer(id_, url, None)
            t.state, t.error = "failed", str(exc)
            return t
        return Transfer(id_, url, target_for(self.plan, parsed))

    async def __aenter__(self) -> TransferManager:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.release_sockets()

    def release_sockets(self) -> None:
        for t in self.transfers:
            t.release_sockets()

    async def run(self, on_start: Callable[[Transfer], object] | None = None) -> list[Transfer]:
        """Download every URL concurrently; returns when all are done or failed (never raises
        for a failed transfer: see ``Transfer.error``)."""
        resolver = NetnsResolver()
        tasks = []
        for t in self.transfers:
            if t.finished:              # a URL that could not even be parsed, or failed early
                t.started_at = t.ended_at = t.started_at or time.monotonic()
                continue
            t._task = asyncio.create_task(self._run_one(t, resolver, on_start), name=f"transfer-{t.id}")
            tasks.append(t._task)
        await asyncio.gather(*tasks)
        return self.transfers

    async def _run_one(self, t: Transfer, resolver: NetnsResolver,
                       on_start: Callable[[Transfer], object] | None) -> None:
        t.started_at = time.monotonic()
        try:
            if on_start is not None:
                on_start(t)
            await self._download(t, resolver)
            t.state = "done"
        except asyncio.CancelledError:
            t.state, t.error = "failed", t._abort or "interrupted"
            await self._close_writer(t)
            if t._abort is None:
                raise
        except Exception as exc:  # every failure ends as one plain line on the transfer
            t.state, t.error = "failed", describe(exc, self._context(t))
            await self._close_writer(t)
        finally:
            t.ended_at = time.monotonic()
            if t._writer is not None:
                t._writer.stop()

    @staticmethod
    async def _close_writer(t: Transfer) -> None:
        if t._writer is not None:
            await t._writer.close()

    def _context(self, t: Transfer) -> FailureContext:
        o = self.options
        return FailureContext(host=URL(t.url).host or "", received=t.received, total=t.total,
                              connect_timeout=o.connect_timeout, idle_timeout=o.idle_timeout,
                              max_redirects=o.max_redirects)

    def _session(self, t: Transfer, resolver: NetnsResolver) -> aiohttp.ClientSession:
        o = self.options
        connector = aiohttp.TCPConnector(
            ssl=not o.insecure,
            resolver=resolver,
            socket_factory=lambda info: t.make_socket(info, o.require_mptcp),
            limit_per_host=1,
        )
        timeout = aiohttp.ClientTimeout(total=None, connect=o.connect_timeout,
                                        sock_connect=o.connect_timeout, sock_read=o.idle_timeout)
        # Bytes as the server stores them: no transparent decompression, so lengths, Range
        # offsets and the sha256 all refer to the same bytes.
        return aiohttp.ClientSession(connector=connector, timeout=timeout, auto_decompress=False,
                                     headers={"Accept-Encoding": "identity"})

    async def _download(self, t: Transfer, resolver: NetnsResolver) -> None:
        target, o = t.target, self.options
        assert target is not None
        prepare_directory(target)      # an unusable -o fails before connecting
        if not target.named_by_url:    # the name is final already: refuse before connecting
            self._claim_target(t)
            check_final(target, o.force)
        offset = part_size(target.part) if o.resume and target.kind == "file" else 0
        if offset and self._claim(t, target.part):   # a .part two URLs share is resumed once
            target.resume_from, target.validator = target.part, recorded_validator(target.part or "")
            if target.validator is None:
                t.notes.append(not_resumed(target.part or "", "nothing records which version of the file it holds"))
                offset = 0
        else:
            offset = 0
        async with self._session(t, resolver) as session:
            for attempt_offset in (offset, 0) if offset else (0,):
                headers = {"Range": f"bytes={attempt_offset}-", "If-Range": target.validator or ""} \
                    if attempt_offset else None
                async with session.get(t.url, headers=headers, max_redirects=o.max_redirects) as resp:
                    t._note_active(resp)
                    start = self._check_response(t, resp, attempt_offset)
                    if start is None:
                        continue            # the server cannot resume this .part: start over
                    await self._receive(t, resp, start)
                    return

    def _check_response(self, t: Transfer, resp: aiohttp.ClientResponse, offset: int) -> int | None:
        """Validate the response; the file offset its body starts at (None: retry from 0)."""
        assert t.target is not None
        active = t.active_socket
        if self.options.require_mptcp and t.compare != "tcp" and active is not None \
                and socket_status(active) is not SocketStatus.MPTCP:
            raise TransferError("the server does not speak MPTCP (connection fell back to TCP)")
        if resp.status == 416 and offset:       # If-Range matched (or the server would have sent 200)
            total = content_range(resp.headers.get("Content-Range"))[2]
            if total == offset:           # the .part already holds the whole file
                t.total = total
                return offset
            return None
        if not 200 <= resp.status < 300:   # redirects were followed: a 3xx here has no Location
            raise TransferError(f"HTTP {resp.status} {resp.reason or ''}".rstrip())
        with warnings.catch_warnings():     # a malformed header just names nothing: no warning on stderr
            warnings.simplefilter("ignore", BadContentDispositionHeader)
            warnings.simplefilter("ignore", BadContentDispositionParam)
            disposition = resp.content_disposition
        rename_from_server(t.target, disposition_name(disposition.parameters) if disposition else None)
        self._claim_target(t)
        check_final(t.target, self.options.force)
        start, part = 0, t.target.resume_from or t.target.part or ""
        if resp.status == 206 and offset:
            why = partial_mismatch(resp.headers, offset, t.target.validator)
            if why is not None:
                t.notes.append(not_resumed(part, why))
                return None
            start, t.total = offset, content_range(resp.headers.get("Content-Range"))[2]
        elif offset:
            t.notes.append(not_resumed(part, "the server sent the whole file: it changed, or cannot resume"))
        if start == 0:
            t.target.validator = validator_of(resp.headers)
        if start == 0 and resp.content_length is not None:
            t.total = resp.content_length
        return start

    async def _receive(self, t: Transfer, resp: aiohttp.ClientResponse, start: int) -> None:
        assert t.target is not None
        t.received = t.resumed = start
        taken = take_over(resp) if resp.status != 416 else None   # before any await: aiohttp reads no more
        file = FileWriter(t.target, self.options.force, digest=self.options.digest)
        t._writer = writer = WriterThread(file, f"mptop-writer-{t.id}")
        await writer.open(start)
        t.state = "running"
        if resp.status != 416:
            await pass_on(resp, taken, writer, t.count_received)
        if taken is not None and taken.remaining:
            await SocketBody(taken, writer, t.count_received, self.options.idle_timeout,
                             f"mptop-reader-{t.id}").run()
        if t.total is not None and t.received != t.total:
            raise TransferError(f"connection closed after {t.received} of {t.total} bytes")
        t.file = await writer.commit()
        if file.digest == "sha256":
            t.sha256 = writer.hexdigest
        elif file.digest == "blake3":
            t.blake3 = writer.hexdigest

    def _claim(self, t: Transfer, path: str | None) -> bool:
        """Whether ``path`` is ``t``'s to write (first come, within this run)."""
        if path is None:
            return True
        return self._claimed.setdefault(os.path.abspath(path), t.id) == t.id

    def _claim_target(self, t: Transfer) -> None:
        """Two transfers of one run must not write the same file."""
        target = t.target
        if target is None or target.kind != "file":
            return
        for path in (target.path, target.part):
            if not self._claim(t, path):
                owner = self._claimed[os.path.abspath(path or "")]
                hint = ("both URLs name this file: fetch one with -o FILE in another run" if self.plan.kind == "dir"
                        else "use -o DIR/")
                raise TransferError(f"{target.path} is also the target of transfer #{owner} — {hint}")


async def run_transfers(urls: Sequence[str], options: TransferOptions,
                        on_start: Callable[[Transfer], object] | None = None) -> list[Transfer]:
    """Download ``urls`` at once; every socket handle is released before returning."""
    async with TransferManager(urls, options) as manager:
        return await manager.run(on_start)
