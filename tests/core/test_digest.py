"""The hashes `--hash` offers: the BLAKE3 team's published test vectors (input: bytes i % 251) and
FIPS 180-2's "abc" for sha256, fed in pieces as the writer thread feeds them; the one-line reasons a
hash cannot be used."""

from __future__ import annotations

import importlib.util

import pytest

from mptop.core.digest import DIGESTS, missing, new_hasher

VECTORS = {      # (name, input length) -> hex digest
    ("blake3", 0): "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262",
    ("blake3", 1): "2d3adedff11b61f14c886e35afa036736dcd87a74d27b5c1510225d0f592e213",
    ("blake3", 1025): "d00278ae47eb27b34faecf67b4fe263f82d5412916c1ffd97c8cb7fb814b8444",
}


@pytest.mark.parametrize(("name", "length"), list(VECTORS))
def test_blake3_matches_the_published_vectors_in_any_pieces(name: str, length: int) -> None:
    data = bytes(i % 251 for i in range(length))
    for piece in (1, 64, 1024, 4096):
        h = new_hasher(name)
        for at in range(0, length, piece):
            h.update(memoryview(data)[at:at + piece])
        assert h.hexdigest() == VECTORS[name, length], piece


def test_sha256_is_the_standard_one() -> None:
    h = new_hasher("sha256")
    h.update(b"ab")
    h.update(memoryview(b"c"))
    assert h.hexdigest() == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_every_offered_hash_is_usable_here_and_others_are_named() -> None:
    assert [name for name in DIGESTS if missing(name) is not None] == []
    assert missing("md5") == "unknown hash 'md5' (choose sha256, blake3 or none)"
    with pytest.raises(ValueError, match="unknown hash 'md5'"):
        new_hasher("md5")


def test_without_the_blake3_package_the_reason_says_how_to_get_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    assert missing("blake3") == "--hash blake3 needs the blake3 package: pip install 'mptop[blake3]'"
    assert missing("sha256") is None
