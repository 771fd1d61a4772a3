"""Where downloaded bytes go: naming, ``-o``, ``NAME.part`` files and resume.

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

The bytes themselves are written (and hashed) by :mod:`mptop.core.writer`.
"""

from __future__ import annotations

import contextlib
import os
import stat
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, NamedTuple
from urllib.parse import unquote

from mptop.core.failures import TransferError

if TYPE_CHECKING:
    from yarl import URL

PART_SUFFIX = ".part"
INDEX_NAME = "index.html"      # the URL names a directory (path empty or ending in "/")
FALLBACK_NAME = "download"     # the URL's or server's name had nothing usable left
_NAME_MAX_BYTES = 255 - len(PART_SUFFIX)


class OutputPlan(NamedTuple):
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
        from aiohttp.multipart import content_disposition_filename  # with a response: aiohttp is loaded

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
    the server names the file otherwise, the writer (``mptop.core.writer.FileWriter.open``) moves
    that ``.part`` to the new name.
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


def make_directory(directory: str) -> None:
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
        make_directory(directory)
        if not os.access(directory, os.W_OK | os.X_OK):
            raise TransferError(f"permission denied: {directory}")
    except OSError as exc:
        raise with_filename(exc, directory) from None
    finally:
        for made in missing:                 # deepest first
            with contextlib.suppress(OSError):
                os.rmdir(made)


def with_filename(exc: OSError, filename: str) -> OSError:
    if exc.filename:
        return exc
    return type(exc)(exc.errno, exc.strerror, filename)


