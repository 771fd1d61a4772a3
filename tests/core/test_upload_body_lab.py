"""An upload's body against the lab server: the file is read on one long-lived thread (not a thread per
chunk), a plain-HTTP body goes to the socket without waking the event loop for each slice the socket
takes, and whichever way it goes (the socket thread, aiohttp's writer with copies of reused buffers,
``sendfile`` without a hash, a file that shrinks) the server's sha256 of what arrived is the file's.
Ground truth: the lab server's own sha256 and byte count of the body it received."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from mptop.core import upload as upload_module
from mptop.core.transfer import TransferOptions
from mptop.core.upload import Upload, UploadManager
from mptop.lab import Lab

pytestmark = pytest.mark.lab

SIZE = 64 << 20          # 64 MiB: 64 chunks of 1 MiB, about 1000 slices of 64 KiB for the socket


def body_file(tmp_path: Path, size: int = SIZE) -> tuple[Path, str]:
    path = tmp_path / "body.bin"
    data = os.urandom(size)
    path.write_bytes(data)
    return path, hashlib.sha256(data).hexdigest()


async def send(lab: Lab, path: Path, sha256: bool = True) -> Upload:
    with lab.client.entered():
        options = TransferOptions(digest="sha256" if sha256 else None)
        manager = UploadManager([lab.upload_url()], options, source=str(path))
        async with manager:
            [t] = await manager.run()
    assert isinstance(t, Upload)
    return t


def assert_arrived(t: Upload, size: int, sha: str, hashed: bool = True) -> None:
    assert t.state == "done", t.error
    assert t.received == size and t.sha256 == (sha if hashed else None)
    assert t.reply is not None and json.loads(t.reply) == {"bytes": size, "sha256": sha}


@contextmanager
def threads_started() -> Iterator[list[str]]:
    """The names of the threads started while the block runs."""
    names: list[str] = []
    original = threading.Thread.start

    def start(self: threading.Thread) -> None:
        names.append(self.name)
        original(self)

    with mock.patch.object(threading.Thread, "start", start):
        yield names


async def test_the_file_is_read_on_one_thread_not_one_per_chunk(lab: Lab, tmp_path: Path) -> None:
    path, sha = body_file(tmp_path)
    with threads_started() as names:
        t = await send(lab, path)
    assert_arrived(t, SIZE, sha)
    readers = [n for n in names if "read" in n]
    assert len(readers) == 1, names
    assert len(names) <= 4, names        # the reader, the sender, a DNS lookup at most: none per chunk


async def test_a_plain_http_body_wakes_the_event_loop_for_no_slice_of_it(lab: Lab, tmp_path: Path) -> None:
    path, sha = body_file(tmp_path)
    loop = asyncio.get_running_loop()
    selector = loop._selector            # type: ignore[attr-defined]
    wakeups = 0
    original = selector.select

    def select(timeout: float | None = None) -> Any:
        nonlocal wakeups
        wakeups += 1
        return original(timeout)

    with mock.patch.object(selector, "select", select):
        t = await send(lab, path)
    assert_arrived(t, SIZE, sha)
    # Through the loop, each 64 KiB the socket takes (TCP_NOTSENT_LOWAT) is a wake-up: about 1000 here.
    assert wakeups < 200, wakeups


async def test_reused_buffers_handed_to_aiohttp_arrive_intact(lab: Lab, tmp_path: Path) -> None:
    """When the body cannot go to the socket directly, aiohttp's writer gets copies of the buffers the
    reader fills again: the server still gets every byte as it is in the file."""
    path, sha = body_file(tmp_path, 20 << 20)

    async def headers_only(writer: Any) -> None:
        await writer.write(b"")
        return None

    with mock.patch.object(upload_module, "_headers_sent", headers_only):
        t = await send(lab, path)
    assert_arrived(t, 20 << 20, sha)


async def test_without_a_hash_the_kernel_sends_the_file_and_every_byte_arrives(lab: Lab, tmp_path: Path) -> None:
    path, sha = body_file(tmp_path)
    with threads_started() as names:
        t = await send(lab, path, sha256=False)
    assert_arrived(t, SIZE, sha, hashed=False)      # the server's sha256 is the file's
    assert not [n for n in names if "read" in n], names


@pytest.mark.parametrize("sha256", [True, False], ids=["hashed", "sendfile"])
async def test_a_file_that_shrinks_while_it_is_sent_fails_in_one_line(lab: Lab, tmp_path: Path, sha256: bool) -> None:
    path, _ = body_file(tmp_path, 8 << 20)
    original = upload_module.FileChunks.__init__

    def then_shrink(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        os.truncate(path, 3 << 20)       # after the size went into Content-Length

    with mock.patch.object(upload_module.FileChunks, "__init__", then_shrink):
        t = await send(lab, path, sha256=sha256)
    assert t.state == "failed"
    assert t.error == f"{path} shrank while it was sent: {3 << 20} of {8 << 20} bytes"
