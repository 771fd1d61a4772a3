"""``NAME.part`` files: opened without following links, and which entity they hold.

A ``.part`` that is a symbolic link is refused (``O_NOFOLLOW``): following it would write outside
the download directory, wherever the link points.

A resume must splice the rest of *the same* file onto the ``.part``.  The validator the server
sent with the bytes (a strong ``ETag``, else ``Last-Modified``) is kept in the ``.part``'s extended
attribute ``user.mptop.validator``: on the inode itself, so it is written with the file, follows
every rename and link, and needs no second file to clean up, to move along or to race with.  A
resume sends it as ``If-Range`` and accepts a 206 only when its ``Content-Range`` starts at the
``.part``'s end and runs to the end of the file, and its ``ETag`` (if any) is the recorded one;
anything else starts over, with a note saying why.  A ``.part`` without a validator (a filesystem
without user xattrs, another tool's file, a server that sent none) is downloaded again rather
than trusted.
"""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Mapping
from typing import BinaryIO

from mptop.core.failures import TransferError

VALIDATOR_XATTR = "user.mptop.validator"
_CONTENT_RANGE = re.compile(r"bytes\s+(?:(\d+)-(\d+)|\*)/(\d+|\*)")


def open_part(path: str, keep: bool) -> BinaryIO:
    """Open ``path`` to write, keeping its bytes (``keep``) or truncating it; never through a link."""
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | (0 if keep else os.O_TRUNC)
    try:
        fd = os.open(path, flags, 0o666)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise TransferError(f"{path} is a symbolic link: not following it (remove it to download)") from None
        raise
    return os.fdopen(fd, "r+b")


def validator_of(headers: Mapping[str, str]) -> str | None:
    """What proves a later response is the same entity: a strong ETag, else Last-Modified."""
    etag = headers.get("ETag", "")
    value = etag if etag and not etag.startswith("W/") else headers.get("Last-Modified", "")
    return value if value and value.isprintable() else None


def record_validator(f: BinaryIO, validator: str | None) -> None:
    """Keep ``validator`` on the open ``.part`` (or clear an old one); silently skipped on a
    filesystem without user xattrs (a later resume then starts over)."""
    try:
        if validator is not None:
            os.setxattr(f.fileno(), VALIDATOR_XATTR, validator.encode())
        else:
            os.removexattr(f.fileno(), VALIDATOR_XATTR)
    except OSError:
        pass


def recorded_validator(part: str) -> str | None:
    try:
        value = os.getxattr(part, VALIDATOR_XATTR, follow_symlinks=False).decode("utf-8", "replace")
    except OSError:
        return None
    return value if value and value.isprintable() else None


def content_range(header: str | None) -> tuple[int | None, int | None, int | None]:
    """(first, last, total) of ``Content-Range: bytes A-B/T`` (``*`` parts are None)."""
    m = _CONTENT_RANGE.fullmatch(header.strip()) if header else None
    if m is None:
        return None, None, None
    first, last, total = m.groups()
    as_int = lambda s: int(s) if s and s != "*" else None   # noqa: E731
    return as_int(first), as_int(last), as_int(total)


def partial_mismatch(headers: Mapping[str, str], offset: int, validator: str | None) -> str | None:
    """Why a 206 answering ``Range: bytes=OFFSET-`` cannot continue the ``.part`` (None: it can)."""
    first, last, total = content_range(headers.get("Content-Range"))
    if first != offset or total is None or last != total - 1:
        return "the server's partial answer does not continue it"
    etag = headers.get("ETag")
    if etag is not None and validator is not None and validator.startswith('"') and etag != validator:
        return "the server's file changed since it was written"
    return None


def not_resumed(part: str, why: str) -> str:
    return f"{part} not resumed ({why}): downloading the whole file again"
