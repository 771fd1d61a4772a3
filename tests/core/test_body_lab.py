"""The body path against the lab: a plain-HTTP body read from the socket on a thread of its own
(aiohttp's reader sees only the first bytes), HTTPS through aiohttp, every byte accounted for and
checked with sha256 against the lab's content, the sha256 never computed on the event loop's
thread, and none at all with ``digest=None`` (``--no-hash``)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from aiohttp import streams

from mptop.core.partfile import VALIDATOR_XATTR
from mptop.core.transfer import Transfer, TransferOptions, run_transfers
from mptop.core.writer import FileWriter
from mptop.lab import Lab
from mptop.lab import content as lab_content
from mptop.lab.server import listener
from tests.core.tls import https_lab_routes

pytestmark = pytest.mark.lab

SIZES = [0, 1, 65_535, 65_536, 262_145, 3_000_001, 40_000_000]
REAL_SHA256 = hashlib.sha256


async def fetch(lab: Lab, url: str, **options: Any) -> Transfer:
    with lab.client.entered():
        [t] = await run_transfers([url], TransferOptions(**options))
    return t


def file_sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, REAL_SHA256).hexdigest()


def assert_whole(t: Transfer, path: Path, size: int) -> None:
    assert t.state == "done", t.error
    assert t.received == t.bytes_done == t.total == size
    assert t.sha256 == lab_content.sha256(size) == file_sha256(path)


@contextmanager
def fed_to_aiohttp() -> Iterator[list[int]]:
    """Every length aiohttp's stream reader is fed, while the block runs."""
    fed: list[int] = []
    original = streams.StreamReader.feed_data

    def counting(self: streams.StreamReader, data: bytes, *args: Any) -> Any:
        fed.append(len(data))
        return original(self, data, *args)

    with mock.patch.object(streams.StreamReader, "feed_data", counting):
        yield fed


@pytest.mark.parametrize("size", SIZES)
async def test_plain_http_bodies_arrive_whole(lab: Lab, tmp_path: Path, size: int) -> None:
    t = await fetch(lab, lab.url(size), output=f"{tmp_path}/")
    assert_whole(t, tmp_path / str(size), size)


async def test_aiohttp_reads_only_the_start_of_a_plain_http_body(lab: Lab, tmp_path: Path) -> None:
    size = 60_000_000
    with fed_to_aiohttp() as fed:
        t = await fetch(lab, lab.url(size), output=f"{tmp_path}/")
    assert_whole(t, tmp_path / str(size), size)
    assert sum(fed) < 8 << 20, f"aiohttp's reader was fed {sum(fed)} of {size} bytes"


async def test_the_socket_is_read_on_a_thread_named_after_the_transfer(lab: Lab, tmp_path: Path) -> None:
    size = 600_000
    with lab.client.entered():
        task = asyncio.create_task(run_transfers([f"{lab.base_url()}/slow/{size}?bps=300000"],
                                                 TransferOptions(output=f"{tmp_path}/")))
        deadline = asyncio.get_running_loop().time() + 20
        while "mptop-reader-1" not in {th.name for th in threading.enumerate()}:
            assert not task.done() and asyncio.get_running_loop().time() < deadline, "no reader thread"
            await asyncio.sleep(0.01)
        [t] = await task
    assert_whole(t, tmp_path / str(size), size)


@asynccontextmanager
async def tls_lab_server(lab: Lab, tmp_path: Path) -> AsyncIterator[str]:
    """The lab server's routes over HTTPS, on loopback in the client namespace: its base URL."""
    async with https_lab_routes(listener(0, mptcp=False, host="127.0.0.1"), tmp_path) as port:
        yield f"https://127.0.0.1:{port}"


async def test_https_bodies_arrive_whole_and_aiohttp_reads_only_their_start(lab: Lab, tmp_path: Path) -> None:
    with lab.client.entered():
        async with tls_lab_server(lab, tmp_path) as base:
            for size in (0, 70_000, 5_000_001, 40_000_000):
                with fed_to_aiohttp() as fed:
                    [t] = await run_transfers([f"{base}/bytes/{size}"],
                                              TransferOptions(output=f"{tmp_path}/out/", insecure=True))
                assert_whole(t, tmp_path / "out" / str(size), size)
                assert sum(fed) < 8 << 20, f"aiohttp's reader was fed {sum(fed)} of {size} bytes"


@pytest.mark.parametrize("path, error", [
    ("/truncated/2000000", "connection closed after"),
    ("/reset/2000000", "connection reset by the server after"),
    ("/fault/stall?n=2000000", "no data from the server for 1 s (idle timeout) after"),
])
async def test_https_failures_read_as_they_do_over_http(lab: Lab, tmp_path: Path, path: str, error: str) -> None:
    with lab.client.entered():
        async with tls_lab_server(lab, tmp_path) as base:
            [t] = await asyncio.wait_for(run_transfers([base + path], TransferOptions(
                output=f"{tmp_path}/out/", insecure=True, idle_timeout=1)), 30)
    assert t.state == "failed" and t.error is not None and t.error.startswith(error), t.error
    assert t.error.endswith(" of 2000000 bytes"), t.error
    assert not [n for n in os.listdir(tmp_path / "out") if not n.endswith(".part")]


class _Recorder:
    """A sha256 that notes the thread of every call."""

    threads: list[tuple[str, int]] = []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._h = REAL_SHA256(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._h, name)

        def noted(*args: Any) -> Any:
            _Recorder.threads.append((name, threading.get_ident()))
            return method(*args)
        return noted


async def test_no_sha256_work_on_the_event_loop_thread_even_when_resuming(lab: Lab, tmp_path: Path) -> None:
    size, kept = 5_000_000, 1_234_567
    expected = lab_content.sha256(size)
    part = tmp_path / f"{size}.part"
    part.write_bytes(lab_content.content(kept))
    os.setxattr(part, VALIDATOR_XATTR, lab_content.etag(size).encode())
    _Recorder.threads = []
    with mock.patch("hashlib.sha256", _Recorder):
        t = await fetch(lab, lab.url(size), output=f"{tmp_path}/")
    assert t.state == "done" and t.resumed == kept, t.error
    assert t.sha256 == expected
    calls = {name for name, _ in _Recorder.threads}
    assert {"update", "hexdigest"} <= calls
    on_loop = [name for name, ident in _Recorder.threads if ident == threading.get_ident()]
    assert on_loop == [], f"sha256 work on the event loop's thread: {on_loop}"


async def test_without_sha256_nothing_is_hashed_and_the_file_is_whole(lab: Lab, tmp_path: Path) -> None:
    size = 3_000_000
    with mock.patch("hashlib.sha256", side_effect=AssertionError("hashed")) as sha:
        t = await fetch(lab, lab.url(size), output=f"{tmp_path}/", digest=None)
    assert t.state == "done", t.error
    assert sha.call_count == 0 and t.sha256 is None
    assert t.received == t.bytes_done == t.total == size
    assert file_sha256(tmp_path / str(size)) == lab_content.sha256(size)


class _SlowRecorder(_Recorder):
    """A sha256 that notes its threads and hashes slowly: a buffer handed back to the reader before
    its hash is done would be overwritten under it, and the sha256 would not match."""

    def update(self, data: Any) -> None:
        _Recorder.threads.append(("update", threading.get_ident()))
        time.sleep(0.003)
        self._h.update(data)


@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_the_sha256_runs_beside_the_file_writes_not_after_them(lab: Lab, tmp_path: Path, scheme: str) -> None:
    size = 30_000_000
    writes: list[int] = []
    real_write = FileWriter.write

    def noted_write(self: FileWriter, chunk: Any) -> None:
        writes.append(threading.get_ident())
        real_write(self, chunk)

    _Recorder.threads = []
    with mock.patch("hashlib.sha256", _SlowRecorder), mock.patch.object(FileWriter, "write", noted_write):
        if scheme == "http":
            t = await fetch(lab, lab.url(size), output=f"{tmp_path}/out/")
        else:
            with lab.client.entered():
                async with tls_lab_server(lab, tmp_path) as base:
                    [t] = await run_transfers([f"{base}/bytes/{size}"],
                                              TransferOptions(output=f"{tmp_path}/out/", insecure=True))
    assert_whole(t, tmp_path / "out" / str(size), size)
    hashing = {ident for name, ident in _Recorder.threads if name == "update"}
    assert writes and hashing, (len(writes), len(hashing))
    assert not hashing & set(writes), "the sha256 ran on the thread that writes the file"


@pytest.mark.parametrize("digest", [None, "sha256", "blake3"])
async def test_into_dev_null_the_reader_hashes_and_writes_its_own_buffers(lab: Lab, digest: str | None) -> None:
    # docs/measured.md, "Idle time" and "Hash cost": a hand-off per buffer to another thread, with
    # nothing to write, made the lab's unshaped downloads stall far more often: the reader hashes too.
    size = 40_000_000
    written: dict[str, int] = {}
    real_write = FileWriter.write

    def noted_write(self: FileWriter, chunk: Any) -> None:
        name = threading.current_thread().name
        written[name] = written.get(name, 0) + len(chunk)
        real_write(self, chunk)

    with mock.patch.object(FileWriter, "write", noted_write):
        t = await fetch(lab, lab.url(size), output=os.devnull, digest=digest)
    assert t.state == "done", t.error
    assert t.received == t.bytes_done == t.total == sum(written.values()) == size
    assert t.sha256 == (lab_content.sha256(size) if digest == "sha256" else None)
    assert t.blake3 == (lab_content.hexdigest("blake3", size) if digest == "blake3" else None)
    # FileWriter.write hashes what it writes: all but what aiohttp had read, on the reader's thread
    assert written.get("mptop-reader-1", 0) > size - (8 << 20), written
