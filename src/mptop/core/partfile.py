"""``NAME.part`` files: opened without following links.

A ``.part`` that is a symbolic link is refused (``O_NOFOLLOW``): following it would write outside
the download directory, wherever the link points.
"""

from __future__ import annotations

import errno
import os
from typing import BinaryIO

from mptop.core.failures import TransferError


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
