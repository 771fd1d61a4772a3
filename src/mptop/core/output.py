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

:class:`Sink` is the writer; its blocking methods run on the transfer's worker thread (never on the
event loop) and feed the sha256 in the same pass.
"""

from __future__ import annotations

import hashlib
import os
import stat
import sys
import unicodedata
from dataclasses import dataclass
from collections.abc import Mapping
from typing import BinaryIO, Literal
from urllib.parse import unquote

from aiohttp.multipart import content_disposition_filename
from yarl import URL

from mptop.core.failures import TransferError

PART_SUFFIX = ".part"
INDEX_NAME = "index.html"      # the URL names a directory (path empty or ending in "/")
FALLBACK_NAME = "download"     # the URL's or server's name had nothing usable left
_NAME_MAX_BYTES = 255 - len(PART_SUFFIX)
_HASH_READ = 1 << 20


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

    @property
    def display(self) -> str:
        return self.path if self.path is not None else "-"


def plan_output(output: str | None, url_count: int) -> OutputPlan:
    """Decide what ``-o OUTPUT`` means for ``url_count`` URLs; raises :class:`TransferError`."""
    if output is None:
        return OutputPlan("dir", "")
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
    the server names the file otherwise, :meth:`Sink.open` moves that ``.part`` to the new name.
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
        st = os.stat(part)
    except OSError:
        return 0
    return st.st_size if stat.S_ISREG(st.st_mode) else 0


class Sink:
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
            os.makedirs(os.path.dirname(t.part) or ".", exist_ok=True)
            if offset:
                if t.resume_from and t.resume_from != t.part:
                    os.replace(t.resume_from, t.part)    # the server renamed the file
                self._file = open(t.part, "r+b")
                self._hash_prefix(offset)
                self._file.truncate(offset)
            else:
                self._file = open(t.part, "wb")
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
