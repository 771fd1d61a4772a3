"""Writing a body: the file (or stream) and its hash, on a thread of the transfer's own.

:class:`FileWriter` writes one transfer's body to its :class:`~mptop.core.output.OutputTarget` and
feeds its hash in the same pass (``digest``: sha256 by default, or blake3, see :mod:`mptop.core.digest`;
None, ``--no-hash``, skips it).  :class:`WriterThread` runs it on its own thread, never on the event
loop's, and a file's sha256 on another one, so writing a buffer, hashing it and receiving the next
overlap (hashlib and file writes let go of the GIL); into /dev/null the reading thread does it all.
It is fed from the event loop (:meth:`WriterThread.write`: aiohttp's chunks) or from another
thread (:meth:`WriterThread.write_buffer`: a preallocated buffer that :mod:`mptop.core.sockbody`
filled, handed back once written and hashed), in order.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import queue
import sys
import threading
from collections.abc import Callable
from typing import Any, BinaryIO, TypeVar

from mptop.core.digest import DEFAULT_DIGEST, costs_a_thread, new_hasher
from mptop.core.failures import TransferError
from mptop.core.output import OutputTarget, make_directory, with_filename
from mptop.core.partfile import open_part, record_validator

_HASH_READ = 1 << 20
PIPELINE_DEPTH = 8       # chunks queued for the writer thread before the event loop waits

T = TypeVar("T")


class FileWriter:
    """Writes one transfer's body and hashes it.  Every method but ``hexdigest`` blocks: call
    them from one worker thread, in order: :meth:`open`, :meth:`write`…, :meth:`commit` or
    :meth:`close`."""

    def __init__(self, target: OutputTarget, force: bool, digest: str | None = DEFAULT_DIGEST) -> None:
        self.target = target
        self.force = force
        self.digest = digest             # the hash's name (mptop.core.digest), None for none
        self.written = 0                 # bytes of the file on disk so far (incl. a kept prefix)
        self._hash = new_hasher(digest) if digest is not None else None
        self._file: BinaryIO | None = None
        self.hash_update: Callable[[bytes | memoryview], object] | None = (
            self._hash.update if self._hash is not None else None)   # WriterThread defers it

    def hexdigest(self) -> str | None:
        """The hash (:attr:`digest`) of the bytes written so far; None without one (``--no-hash``)."""
        return self._hash.hexdigest() if self._hash is not None else None

    def open(self, offset: int) -> None:
        """Start writing at ``offset``: keep (and hash) that many bytes of ``resume_from``."""
        t = self.target
        try:
            if t.kind == "direct":
                self._file = _open_direct(t.path)
                return
            assert t.part is not None
            make_directory(os.path.dirname(t.part))
            if offset and t.resume_from and t.resume_from != t.part:
                os.replace(t.resume_from, t.part)    # the server renamed the file
            self._file = open_part(t.part, keep=bool(offset))
            if offset:
                self._skip_prefix(offset)
                self._file.truncate(offset)
            else:
                record_validator(self._file, t.validator)
        except OSError as exc:
            raise with_filename(exc, t.part or t.display) from None

    def _skip_prefix(self, offset: int) -> None:
        assert self._file is not None
        if self._hash is None:
            if os.fstat(self._file.fileno()).st_size < offset:
                raise TransferError(f"{self.target.part} shrank while resuming it")
            self._file.seek(offset)
            self.written = offset
            return
        while self.written < offset:
            block = self._file.read(min(_HASH_READ, offset - self.written))
            if not block:
                raise TransferError(f"{self.target.part} shrank while resuming it")
            assert self.hash_update is not None
            self.hash_update(block)
            self.written += len(block)

    def write(self, chunk: bytes | memoryview) -> None:
        assert self._file is not None
        if self.hash_update is not None:     # first: a deferred hash runs while the file is written
            self.hash_update(chunk)
        try:
            self._file.write(chunk)
        except OSError as exc:
            raise with_filename(exc, self.target.part or self.target.display) from None
        self.written += len(chunk)

    def commit(self) -> str | None:
        """Finish: flush, close and give the file its final name.  Returns the final path."""
        self.close()
        t = self.target
        if t.kind == "file":
            assert t.part is not None and t.path is not None
            _publish(t.part, t.path, self.force)
        return t.path

    def close(self) -> None:
        """Flush and close, leaving any ``.part`` for a later resume."""
        f, self._file = self._file, None
        if f is None:
            return
        try:
            f.close()
        except OSError as exc:    # ENOSPC can surface only here, when the buffer is flushed
            raise with_filename(exc, self.target.part or self.target.display) from None


def _open_direct(path: str | None) -> BinaryIO:
    if path is None:     # a dup, so closing it leaves the process's stdout alone
        return os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    return open(path, "wb")


def _publish(part: str, final: str, force: bool) -> None:
    if force:
        os.replace(part, final)
        return
    try:
        os.link(part, final)     # fails if the final name appeared meanwhile: never clobber it
    except FileExistsError:
        raise TransferError(f"{final} exists — use --force") from None
    except OSError:              # a filesystem without hard links
        if os.path.lexists(final):
            raise TransferError(f"{final} exists — use --force") from None
        os.rename(part, final)
        return
    os.unlink(part)


_Job = tuple[Callable[..., Any], tuple[Any, ...], concurrent.futures.Future[Any] | None]
_HashJob = tuple[bytes | memoryview | None, Callable[[], object] | None]   # (chunk, then)


class WriterThread:
    """Runs a :class:`FileWriter` on its own thread, in order, with the event loop never blocking on it.

    Jobs go through a ``SimpleQueue``: handing one over costs no wake-up of the event loop.
    The loop waits only when more than ``PIPELINE_DEPTH`` of its chunks are queued, and is woken
    once the writer has caught up halfway (one ``call_soon_threadsafe`` per wait, not per chunk: a
    future per chunk cost about a third more CPU per byte).  A failed write stops the writing;
    the error is raised by the next :meth:`write`, by :meth:`raise_error` or by :meth:`commit`.
    Into a file, a sha256 runs on a thread of its own (``NAME-sha256``), fed in order; a chunk counts
    as written, and a buffer is handed back, once it is both written and hashed.  :meth:`commit` waits
    for the last hash (:attr:`hexdigest`).  A blake3 costs too little for a thread
    (:func:`mptop.core.digest.costs_a_thread`): it runs with the writes.  Into /dev/null, which costs
    nothing to write, :meth:`write_buffer` writes and hashes on its caller's thread: no hand-off.
    """

    def __init__(self, file: FileWriter, name: str) -> None:
        self.file = file
        self.hexdigest: str | None = None    # once committed: the file's hash (FileWriter.digest)
        self._loop = asyncio.get_running_loop()
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._queued = 0                              # loop chunks handed over and not written yet
        self._waiter: asyncio.Future[None] | None = None
        self._error: BaseException | None = None
        self._hasher: queue.SimpleQueue[_HashJob | None] | None = None
        self._then: Callable[[], object] | None = None     # what the next queued hash must call
        # Writing /dev/null is free: the caller of write_buffer hashes and "writes" (see there).
        self._inline = file.target.path == os.devnull
        if file.digest is not None and costs_a_thread(file.digest) and not self._inline:
            assert file.hash_update is not None
            self._hasher = queue.SimpleQueue()
            threading.Thread(target=self._hash, args=(file.hash_update,), name=f"{name}-{file.digest}",
                             daemon=True).start()
            file.hash_update = self._queue_hash
        self._caught_up = False
        threading.Thread(target=self._work, name=name, daemon=True).start()

    @property
    def failed(self) -> bool:
        return self._error is not None

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            fn, args, done = job
            if done is None:
                fn(*args)                        # _write_chunk / _write_buffer: they never raise
            elif done.set_running_or_notify_cancel():
                try:
                    done.set_result(fn(*args))
                except StopIteration as exc:     # an asyncio future refuses it: the awaiter would hang
                    done.set_exception(RuntimeError(f"StopIteration: {exc}"))
                except BaseException as exc:
                    done.set_exception(exc)

    def _hash(self, update: Callable[[bytes | memoryview], object]) -> None:
        assert self._hasher is not None
        while (job := self._hasher.get()) is not None:
            chunk, then = job
            if chunk is not None:
                update(chunk)
            if then is not None:
                then()

    def _queue_hash(self, chunk: bytes | memoryview) -> None:
        assert self._hasher is not None
        then, self._then = self._then, None
        self._hasher.put((chunk, then))

    def _write(self, chunk: bytes | memoryview, done: Callable[[], object]) -> None:
        """Write ``chunk`` (hashed on the hash thread meanwhile); ``done()`` once both are over."""
        if self._hasher is not None:
            done = self._then = _Both(done)
        try:
            if self._error is None:
                try:
                    self.file.write(chunk)
                except BaseException as exc:
                    self._error = exc
        finally:
            if self._then is not None:      # not handed to the hash thread (writing had failed)
                self._then = None
                done()
            done()

    def _write_chunk(self, chunk: bytes) -> None:
        self._write(chunk, self._chunk_written)

    def _chunk_written(self) -> None:
        with self._lock:
            self._queued -= 1
            waiter = self._waiter
            if waiter is None or (self._queued > PIPELINE_DEPTH // 2 and self._error is None):
                return
            self._waiter = None
        self._loop.call_soon_threadsafe(_wake, waiter)

    def _write_buffer(self, view: memoryview, release: Callable[[T], object], token: T) -> None:
        self._write(view, lambda: release(token))

    async def write(self, chunk: bytes) -> None:
        """From the event loop: queue ``chunk`` (waits while the writer is far behind)."""
        self.raise_error()
        waiter = None
        with self._lock:
            self._queued += 1
            if self._queued > PIPELINE_DEPTH:
                self._waiter = waiter = self._loop.create_future()
        self._jobs.put((self._write_chunk, (chunk,), None))
        if waiter is not None:
            await waiter
            self.raise_error()

    def write_buffer(self, view: memoryview, release: Callable[[T], object], token: T) -> None:
        """From one other thread: queue ``view``; ``release(token)`` once it is written (or the writing
        failed), after which its memory may be reused.  Into /dev/null there is no write to overlap
        with: once the jobs queued before are done, ``view`` is hashed and "written" right here, on the
        caller's thread — a hand-off per buffer made the unshaped lab's downloads stall far more often
        (docs/measured.md, "Idle time", "Hash cost")."""
        if not self._inline:
            self._jobs.put((self._write_buffer, (view, release, token), None))
            return
        if not self._caught_up:            # the head's chunks first, in order
            done: concurrent.futures.Future[None] = concurrent.futures.Future()
            self._jobs.put((lambda: None, (), done))
            done.result()
            self._caught_up = True
        self._write_buffer(view, release, token)

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        done: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._jobs.put((fn, args, done))
        return await asyncio.wrap_future(done)

    async def open(self, offset: int) -> None:
        await self._run(self.file.open, offset)

    async def commit(self) -> str | None:
        """After every queued chunk: rename into place (or raise the first write error)."""
        return await self._run(self._commit)

    def _commit(self) -> str | None:
        self.raise_error()
        if self._hasher is not None:        # the last hash first, as when it ran on this thread
            hashed = threading.Event()
            self._hasher.put((None, hashed.set))
            hashed.wait()
        path = self.file.commit()
        self.hexdigest = self.file.hexdigest()
        return path

    async def close(self) -> None:
        """After a failure: close the file (keeping the .part); errors are ignored."""
        with contextlib.suppress(Exception):
            await self._run(self.file.close)

    def stop(self) -> None:
        """Let the threads end once their queues are empty."""
        self._jobs.put(None)
        if self._hasher is not None:
            self._hasher.put(None)

    def raise_error(self) -> None:
        if self._error is not None:
            raise self._error


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class _Both:
    """Calls ``then()`` on the second call (from either of two threads): written and hashed."""

    def __init__(self, then: Callable[[], object]) -> None:
        self._then = then
        self._calls = 0
        self._lock = threading.Lock()

    def __call__(self) -> None:
        with self._lock:
            self._calls += 1
            second = self._calls == 2
        if second:
            self._then()
