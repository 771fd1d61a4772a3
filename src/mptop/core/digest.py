"""Which hash of a body mptop computes: sha256 (the default), blake3, or none (``--hash``).

sha256 is what download pages publish (``SHA256SUMS``), so it stays the default.  blake3 costs a
quarter of sha256's CPU here (0.15 against 0.55 CPU-s per GB on one core, docs/measured.md "Hash
cost"), for a body hashed at wire speed; it comes from the ``blake3`` package (the BLAKE3 team's own
binding of their Rust crate), an optional dependency: ``pip install 'mptop[blake3]'``.  Both let go of
the GIL while they hash a large buffer; only sha256 is worth a thread of its own (:func:`costs_a_thread`).
"""

from __future__ import annotations

import hashlib
import importlib.util
from typing import Protocol

DIGESTS = ("sha256", "blake3")     # --hash's choices, besides "none"
DEFAULT_DIGEST = "sha256"


class Hasher(Protocol):
    def update(self, data: bytes | memoryview, /) -> object: ...
    def hexdigest(self) -> str: ...


def costs_a_thread(name: str) -> bool:
    """Whether hashing with ``name`` is worth a thread of its own beside the writing of a file.
    sha256 is (0.55 CPU-s/GB, as much as the writes); blake3 (0.15) is not: on its own thread it
    adds a hand-off per buffer for little overlap (docs/measured.md "Hash cost")."""
    return name == "sha256"


def missing(name: str) -> str | None:
    """Why ``name`` cannot hash here (one line), or None when it can."""
    if name not in DIGESTS:
        return f"unknown hash {name!r} (choose {', '.join(DIGESTS)} or none)"
    if name == "blake3" and importlib.util.find_spec("blake3") is None:
        return "--hash blake3 needs the blake3 package: pip install 'mptop[blake3]'"
    return None


def new_hasher(name: str) -> Hasher:
    """A fresh hash object for ``name`` (checked with :func:`missing` first)."""
    if name == "sha256":
        return hashlib.sha256()
    if name == "blake3":
        import blake3  # only when chosen: start-up stays cheap

        return blake3.blake3()
    raise ValueError(missing(name) or name)
