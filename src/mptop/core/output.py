"""Where downloaded bytes go: naming, ``NAME.part`` files, resume, and the writer.

``-o`` is decided once per run by :func:`plan_output`:

* no ``-o``: like wget, into the current directory, named from the URL path, or from the
  server's ``Content-Disposition`` when it sends one (sanitised: last path component only, no
  control characters, no leading dots; an empty name becomes ``index.html`` for a URL ending in
  ``/`` and ``download`` otherwise);
* ``-o DIR/`` (or an existing directory): the same names, in DIR (created if missing);
* ``-o FILE``: exactly that file, for one URL only;
* ``-o -``: standard output, one URL only.

A regular file is written as ``NAME.part`` and renamed to NAME only when complete and its length
checks out; on failure the ``.part`` stays so the next run resumes it with ``Range``.  A target that
is not a regular file (``-``, ``/dev/null``, a pipe, a device) is written directly: no ``.part``, no
rename, no refusal.  An existing final file is never replaced without ``force`` (the rename uses
``link()``, so a file that appears during the download is not clobbered either).  No fsync before
the rename, as wget and curl: the rename makes a complete file appear atomically, which is what a
reader of the directory needs; durability across a power cut is left to the filesystem.

:class:`FileWriter` is the writer; it feeds the sha256 in the same pass.  :class:`WriterThread` runs it on
the transfer's own thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import hashlib
import os
import queue
import stat
import sys
import threading
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO, Literal, TypeVar
from urllib.parse import unquote

from aiohttp.multipart import content_disposition_filename
from yarl import URL

from mptop.core.failures import TransferError
from mptop.core.partfile import open_part, record_validator

PART_SUFFIX = ".part"
INDEX_NAME = "index.html"      # the URL names a directory (path empty or ending in "/")
FALLBACK_NAME = "download"     # the URL's or server's name had nothing usable left
_NAME_MAX_BYTES = 255 - len(PART_SUFFIX)
_HASH_READ = 1 << 20
PIPELINE_DEPTH = 8       # chunks queued for the writer thread before the event loop waits

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class OutputPlan:
    """What ``-o`` asked for, for every URL of the run."""

    kind: Literal["dir", "file", "stdout"]
    path: str          # the directory ("" = current) or the file; "-" for stdout
    shared_ok: bool = True   # several transfers may use it (dirs, /dev/null)


@dataclass(slots=True)
class OutputTarget:
    """Where one transfer's bytes go.  ``path`` may be renamed once the response names the file."""

    kind: Literal["file", "direct"]   # file: via .part and rename; direct: written as is
    path: str | None                  # the final path; None for standard output
    part: str | None = None           # the .part written meanwhile (kind "file"): path + ".part"
    named_by_url: bool = False        # the name may still come from Content-Disposition
    resume_from: str | None = None    # the .part a resume continues (found before the response)
    validator: str | None = None      # the entity's ETag or Last-Modified (mptop.core.partfile)

    @property
    def display(self) -> str:
        return self.path if self.path is not None else "-"


def plan_output(output: str | None, url_count: int) -> OutputPlan:
    """Decide what ``-o OUTPUT`` means for ``url_count`` URLs; raises :class:`TransferError`."""
    if output is None:
        return OutputPlan("dir", "")
    if not output:
        raise TransferError("-o needs a file, a directory, or - for standard output")
    if output == "-":
        plan = OutputPlan("stdout", "-", shared_ok=False)
    elif output.endswith("/") or os.path.isdir(output):
        return OutputPlan("dir", output)
    else:
        plan = OutputPlan("file", output, shared_ok=_is_devnull(output))
    if url_count > 1 and not plan.shared_ok:
        shown = "standard output" if plan.kind == "stdout" else output
        raise TransferError(f"-o {output}: {url_count} URLs cannot all go to {shown} — use -o DIR/")
    return plan


def _is_devnull(path: str) -> bool:
    try:
        return os.path.samefile(path, os.devnull)
    except OSError:
        return False


def sanitize_name(raw: str) -> str | None:
    """A safe file name from a server- or URL-supplied one, or None if nothing usable is left.

    Keeps only the last path component (no traversal, nothing absolute), drops control
    characters, strips leading dots (no hidden files, no ``..``) and surrounding spaces, and
    shortens it to fit NAME.part in 255 bytes, keeping a short extension.
    """
    name = unicodedata.normalize("NFC", raw).replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch.isprintable()).strip().lstrip(".").strip()
    if not name:
        return None
    if len(name.encode()) > _NAME_MAX_BYTES:
        stem, dot, ext = name.rpartition(".")
        keep = f".{ext}" if dot and stem and len(ext) <= 16 else ""
        room = _NAME_MAX_BYTES - len(keep.encode())
        base = name[: len(name) - len(keep)]
        name = base.encode()[:room].decode(errors="ignore") + keep
    return name


def name_from_url(url: URL) -> str:
    """The file name wget would pick from the URL path (the query is ignored)."""
    path = url.path
    if not path or path.endswith("/"):
        return INDEX_NAME
    return sanitize_name(path.rsplit("/", 1)[-1]) or FALLBACK_NAME


def disposition_name(params: Mapping[str, str]) -> str | None:
    """The file name a ``Content-Disposition`` header's parameters suggest (not yet sanitised).

    ``filename*`` (RFC 8187) wins.  A plain ``filename`` is percent-decoded when that gives
    valid UTF-8, as browsers do: servers (aiohttp among them) percent-encode non-ASCII names there.
    """
    if any(key.startswith("filename*") for key in params):
        return content_disposition_filename(params, "filename")
    name = params.get("filename")
    if not name:
        return None
    try:
        return unquote(name, errors="strict")
    except UnicodeDecodeError:
        return name


def target_for(plan: OutputPlan, url: URL) -> OutputTarget:
    """The target before the response is seen (the name may change: :func:`rename_from_server`)."""
    if plan.kind == "stdout":
        return OutputTarget("direct", None)
    if plan.kind == "file":
        return _file_target(plan.path)
    target = _file_target(os.path.join(plan.path, name_from_url(url)))
    target.named_by_url = True
    return target


def rename_from_server(target: OutputTarget, filename: str | None) -> None:
    """Use the server's ``Content-Disposition`` file name, when the name was the URL's.

    A resume looks for the URL-named ``.part`` (the only name known before the response); when
    the server names the file otherwise, :meth:`FileWriter.open` moves that ``.part`` to the new name.
    """
    name = sanitize_name(filename) if filename else None
    if not target.named_by_url or name is None or target.path is None:
        return
    new = _file_target(os.path.join(os.path.dirname(target.path), name))
    target.kind, target.path, target.part = new.kind, new.path, new.part


def _file_target(path: str) -> OutputTarget:
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return OutputTarget("file", path, part=path + PART_SUFFIX)
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return OutputTarget("file", path, part=path + PART_SUFFIX)
    return OutputTarget("direct", path)      # /dev/null, a pipe, a device: write it as is


def check_final(target: OutputTarget, force: bool) -> None:
    """Refuse a final name that is a directory, or an existing file without ``force``."""
    if target.kind != "file" or target.path is None:
        return
    if os.path.isdir(target.path):
        raise TransferError(f"{target.path} is a directory")
    if os.path.lexists(target.path) and not force:
        raise TransferError(f"{target.path} exists — use --force")


def part_size(part: str | None) -> int:
    """Bytes already in a ``.part`` (what a resume asks the server for), else 0."""
    if part is None:
        return 0
    try:
        st = os.lstat(part)       # a link is no .part of ours (open_part refuses it)
    except OSError:
        return 0
    return st.st_size if stat.S_ISREG(st.st_mode) else 0


class FileWriter:
    """Writes one transfer's body and hashes it.  Every method but ``hexdigest`` blocks: call
    them from one worker thread, in order: :meth:`open`, :meth:`write`…, :meth:`commit` or
    :meth:`close`."""

    def __init__(self, target: OutputTarget, force: bool) -> None:
        self.target = target
        self.force = force
        self.written = 0                 # bytes of the file on disk so far (incl. a kept prefix)
        self._hash = hashlib.sha256()
        self._file: BinaryIO | None = None

    def hexdigest(self) -> str:
        return self._hash.hexdigest()

    def open(self, offset: int) -> None:
        """Start writing at ``offset``: keep (and hash) that many bytes of ``resume_from``."""
        t = self.target
        try:
            if t.kind == "direct":
                self._file = _open_direct(t.path)
                return
            assert t.part is not None
            _make_directory(os.path.dirname(t.part))
            if offset and t.resume_from and t.resume_from != t.part:
                os.replace(t.resume_from, t.part)    # the server renamed the file
            self._file = open_part(t.part, keep=bool(offset))
            if offset:
                self._hash_prefix(offset)
                self._file.truncate(offset)
            else:
                record_validator(self._file, t.validator)
        except OSError as exc:
            raise _with_filename(exc, t.part or t.display) from None

    def _hash_prefix(self, offset: int) -> None:
        assert self._file is not None
        while self.written < offset:
            block = self._file.read(min(_HASH_READ, offset - self.written))
            if not block:
                raise TransferError(f"{self.target.part} shrank while resuming it")
            self._hash.update(block)
            self.written += len(block)

    def write(self, chunk: bytes) -> None:
        assert self._file is not None
        try:
            self._file.write(chunk)
        except OSError as exc:
            raise _with_filename(exc, self.target.part or self.target.display) from None
        self._hash.update(chunk)
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
            raise _with_filename(exc, self.target.part or self.target.display) from None


def _make_directory(directory: str) -> None:
    if not directory:
        return
    try:
        os.makedirs(directory, exist_ok=True)
    except FileExistsError:     # a file where the directory should be
        raise TransferError(f"not a directory: {directory}") from None


def prepare_directory(target: OutputTarget) -> None:
    """Before connecting: the directory a file target goes to can be made and written, or
    :class:`TransferError`/``OSError`` says why (``-o /proc/nope/x`` fails at once).  Directories it
    had to make for the check are removed again: a transfer that fails later leaves nothing behind,
    and the writer makes them for real once the body starts."""
    if target.kind != "file" or target.part is None:
        return
    directory = os.path.dirname(target.part) or "."
    missing = []
    probe = directory
    while probe and not os.path.lexists(probe):
        missing.append(probe)
        probe = os.path.dirname(probe)
    try:
        _make_directory(directory)
        if not os.access(directory, os.W_OK | os.X_OK):
            raise TransferError(f"permission denied: {directory}")
    except OSError as exc:
        raise _with_filename(exc, directory) from None
    finally:
        for made in missing:                 # deepest first
            with contextlib.suppress(OSError):
                os.rmdir(made)


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


def _with_filename(exc: OSError, filename: str) -> OSError:
    if exc.filename:
        return exc
    return type(exc)(exc.errno, exc.strerror, filename)


class WriterThread:
    """Runs a :class:`FileWriter` on its own thread, in order, with the event loop never blocking on it.

    Chunks go through a ``SimpleQueue``: handing one over costs no wake-up of the event loop.
    The loop waits only when more than ``PIPELINE_DEPTH`` chunks are queued, and is woken once
    the writer has caught up halfway (one ``call_soon_threadsafe`` per wait, not per chunk: a
    future per chunk cost about a third more CPU per byte).  A failed write stops the writing;
    the error is raised by the next :meth:`write` or by :meth:`commit`.
    """

    def __init__(self, file: FileWriter, name: str) -> None:
        self.file = file
        self._loop = asyncio.get_running_loop()
        self._jobs: queue.SimpleQueue[tuple[Callable[..., Any], tuple[Any, ...],
                                            concurrent.futures.Future[Any] | None] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._queued = 0                              # chunks handed over and not written yet
        self._waiter: asyncio.Future[None] | None = None
        self._error: BaseException | None = None
        threading.Thread(target=self._work, name=name, daemon=True).start()

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            fn, args, done = job
            if done is None:
                self._write(args[0])
            elif done.set_running_or_notify_cancel():
                try:
                    done.set_result(fn(*args))
                except StopIteration as exc:     # an asyncio future refuses it: the awaiter would hang
                    done.set_exception(RuntimeError(f"StopIteration: {exc}"))
                except BaseException as exc:
                    done.set_exception(exc)

    def _write(self, chunk: bytes) -> None:
        if self._error is None:
            try:
                self.file.write(chunk)
            except BaseException as exc:
                self._error = exc
        with self._lock:
            self._queued -= 1
            waiter = self._waiter
            if waiter is None or (self._queued > PIPELINE_DEPTH // 2 and self._error is None):
                return
            self._waiter = None
        self._loop.call_soon_threadsafe(_wake, waiter)

    async def write(self, chunk: bytes) -> None:
        self._raise_error()
        waiter = None
        with self._lock:
            self._queued += 1
            if self._queued > PIPELINE_DEPTH:
                self._waiter = waiter = self._loop.create_future()
        self._jobs.put((self.file.write, (chunk,), None))
        if waiter is not None:
            await waiter
            self._raise_error()

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
        self._raise_error()
        return self.file.commit()

    async def close(self) -> None:
        """After a failure: close the file (keeping the .part); errors are ignored."""
        with contextlib.suppress(Exception):
            await self._run(self.file.close)

    def stop(self) -> None:
        """Let the thread end once its queue is empty."""
        self._jobs.put(None)

    def _raise_error(self) -> None:
        if self._error is not None:
            raise self._error


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
