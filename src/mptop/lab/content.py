"""Deterministic content of any size, shared by the lab server and the tests.

The body of ``/bytes/N`` is the first N bytes of :data:`PATTERN` (1 MiB of SHAKE-256 output)
repeated forever; a range is the same stream sliced.  :func:`hexdigest` (:func:`sha256`) is
computed once per hash and size, and cached.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterator

from mptop.core.digest import new_hasher

PATTERN_SIZE = 1 << 20
PATTERN = hashlib.shake_256(b"mptop lab content v1").digest(PATTERN_SIZE)
# Twice the pattern, so a full pattern-length chunk can be sliced from any offset without copying.
_DOUBLE = memoryview(PATTERN + PATTERN)


def chunks(start: int, length: int, chunk_size: int = PATTERN_SIZE) -> Iterator[memoryview]:
    """The bytes ``[start, start + length)`` of the stream, as views of at most ``chunk_size``."""
    chunk_size = min(chunk_size, PATTERN_SIZE)
    offset, end = start, start + length
    while offset < end:
        n = min(chunk_size, end - offset)
        at = offset % PATTERN_SIZE
        yield _DOUBLE[at:at + n]
        offset += n


def content(length: int, start: int = 0) -> bytes:
    """The bytes ``[start, start + length)`` as one bytes object (for small sizes / tests)."""
    return b"".join(chunks(start, length))


@functools.cache
def hexdigest(name: str, size: int) -> str:
    """The ``name`` hash (:mod:`mptop.core.digest`: sha256, blake3) of the first ``size`` bytes of the
    stream (= body of /bytes/size)."""
    h = new_hasher(name)
    for view in chunks(0, size):
        h.update(view)
    return h.hexdigest()


def sha256(size: int) -> str:
    return hexdigest("sha256", size)


def etag(size: int) -> str:
    return f'"mptop-{size}"'
