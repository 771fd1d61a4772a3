"""The transfer engine without a lab: URLs refused before any I/O, a failure before the task ran."""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path

import pytest

from mptop.core.transfer import (
    Transfer,
    TransferManager,
    TransferOptions,
    run_transfers,
)


@pytest.mark.parametrize("url, error", [
    ("http://", "malformed URL: http:// (no host)"),
    ("http:///x", "malformed URL: http:///x (no host)"),
    ("http://h:99999/", "malformed URL: http://h:99999/ (port out of range 0-65535)"),
    ("example.com/x", "no scheme: did you mean http://example.com/x?"),
    ("10.78.1.2:8080/x", "no scheme: did you mean http://10.78.1.2:8080/x?"),
    ("localhost:8080", "no scheme: did you mean http://localhost:8080?"),
    ("mailto:a@b.c", "unsupported URL scheme 'mailto' in mailto:a@b.c (http and https only)"),
    ("", "malformed URL: (empty) (no http:// or https://)"),
    ("file:///etc/passwd", "unsupported URL scheme 'file' in file:///etc/passwd (http and https only)"),
])
async def test_urls_refused_before_any_io(url: str, error: str, tmp_path: Path) -> None:
    started: list[Transfer] = []
    [t] = await run_transfers([url], TransferOptions(output=f"{tmp_path}/"), on_start=started.append)
    assert (t.state, t.error, t.target, t.sockets, started) == ("failed", error, None, [], [])
    assert os.listdir(tmp_path) == []


async def test_fail_before_the_task_ran_still_fails_the_transfer(tmp_path: Path) -> None:
    """A stop right after start (quitting at once): the cancelled task never ran its own bookkeeping."""
    async with TransferManager(["http://192.0.2.1/bytes/10"], TransferOptions(output=f"{tmp_path}/")) as m:
        run = asyncio.create_task(m.run())
        await asyncio.sleep(0)              # run() made the transfer's task; it has not started
        [t] = m.transfers
        assert t._task is not None and t.started_at is None
        t.fail("stopped")
        with contextlib.suppress(asyncio.CancelledError):
            await run
    assert (t.state, t.error) == ("failed", "stopped")
    assert os.listdir(tmp_path) == []
