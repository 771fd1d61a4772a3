"""An upload keeps little unsent data in its MPTCP socket (TCP_NOTSENT_LOWAT), so the scheduler cannot
pile a slow path's queue up behind the fast one (docs/measured.md, upload goodput against curl -T)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import time

import pytest

from mptop.core.transfer import TransferOptions
from mptop.core.upload import UNSENT_LOWAT, UploadManager

pytestmark = pytest.mark.lab


def test_an_upload_socket_holds_at_most_64_kib_unsent_and_every_byte_arrives(make_lab, tmp_path):
    lab = make_lab(upload_rate_mbit={"wlan0": 40, "wwan0": 10})
    data = os.urandom(12_000_000)                     # about 2 s at 50 Mbit/s
    path = tmp_path / "body.bin"
    path.write_bytes(data)

    async def upload() -> tuple[int, str | None, str | None]:
        manager = UploadManager([lab.upload_url()], TransferOptions(require_mptcp=True), source=str(path))
        async with manager:
            run = asyncio.create_task(manager.run())
            t = manager.transfers[0]
            deadline = time.monotonic() + 60
            while (t.active_socket is None or t.received == 0) and not run.done() and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            assert t.active_socket is not None and not run.done(), "the upload never got going while it ran"
            lowat = t.active_socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NOTSENT_LOWAT)
            await run
            assert t.error is None, t.error
            return lowat, t.sha256, t.reply

    with lab.client.entered():
        lowat, sha256, reply = asyncio.run(upload())
    assert UNSENT_LOWAT == 64 * 1024
    assert lowat == UNSENT_LOWAT
    assert sha256 == hashlib.sha256(data).hexdigest()
    assert reply is not None and sha256 in reply          # the server's own sha256 of what it got
