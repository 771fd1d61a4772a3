"""A Session (what `get`, the TUI and the demo run): transfers and their sampler side by side, in the lab."""

from __future__ import annotations

import asyncio
import time

import pytest

from mptop.core.model import Record, Sample
from mptop.core.session import Session
from mptop.core.transfer import TransferOptions
from mptop.lab import Lab


@pytest.mark.lab
async def test_session_ends_right_after_its_transfers_not_at_the_next_tick(lab: Lab) -> None:
    """The final read follows the last transfer's end at once: a small `get` does not wait out
    the interval (here 30 s, so the run would otherwise last 30 s)."""
    size = 100_000
    session = Session([lab.url(size)], TransferOptions(output="/dev/null"), interval=30.0)
    records: list[Record] = []
    started = time.monotonic()
    with lab.client.entered():
        summary = await asyncio.wait_for(session.run(records.append), 20)
    took = time.monotonic() - started
    [transfer] = summary.transfers
    assert (transfer.bytes, transfer.sha256) == (size, lab.content_sha256(size))
    samples = [r for r in records if isinstance(r, Sample)]
    assert len(samples) == 2 and samples[-1].transfers[0].state == "done"   # the first poll, the final read
    assert took < 10, took
    assert session.transfers[0].sockets == []                              # released after the final read


@pytest.mark.lab
async def test_session_stop_ends_the_run_without_waiting_out_the_interval(lab: Lab) -> None:
    session = Session([f"{lab.base_url()}/forever"], TransferOptions(output="/dev/null"), interval=30.0)
    records: list[Record] = []
    with lab.client.entered():
        run = asyncio.create_task(session.run(records.append))
        deadline = time.monotonic() + 10
        while not (session.transfers and session.transfers[0].bytes_done > 100_000):
            assert time.monotonic() < deadline and not run.done(), "no bytes came"
            await asyncio.sleep(0.02)
        session.stop()                      # the next tick is 30 s away
        summary = await asyncio.wait_for(run, 10)
    [transfer] = summary.transfers
    assert transfer.error == "stopped" and transfer.bytes > 100_000
    assert sum(transfer.path_bytes.values()) >= transfer.bytes      # the final read counted them
    assert len([r for r in records if isinstance(r, Sample)]) == 2
