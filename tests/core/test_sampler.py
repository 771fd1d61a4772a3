"""The sampler's pieces that need no kernel: sample records round trip, the re-arming poll."""

from __future__ import annotations

import contextlib

import pytest

from mptop.core.model import (
    PathSample,
    Sample,
    TransferSample,
    record_from_json,
    to_json,
)
from mptop.core.polling import rearming


def _sample(t: float, rates: dict[str, float], transfer_rate: float, state: str = "running") -> Sample:
    return Sample(t=t, paths={i: PathSample(i, r, 0) for i, r in rates.items()},
                  transfers=[TransferSample(7, "u", 0, None, transfer_rate, "mptcp", state=state)])  # type: ignore[arg-type]


def test_sample_records_round_trip() -> None:
    sample = _sample(1.0, {"wlan0": 8e6}, 8e6)
    assert record_from_json(to_json(sample)) == sample


async def test_rearming_poll_never_overlaps_nor_catches_up() -> None:
    now, sleeps = [0.0], []
    durations = [0.1, 0.6, 0.1, 0.1]            # the second poll is slower than the interval

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds

    def poll() -> float:
        started = now[0]
        now[0] += durations[len(sleeps)]
        return started

    starts = []
    async with contextlib.aclosing(rearming(poll, 0.25, lambda: now[0], sleep)) as polls:
        async for started in polls:
            starts.append(started)
            if len(starts) == 4:
                break
    assert sleeps == pytest.approx([0.15, 0.0, 0.15])
    assert starts == pytest.approx([0.0, 0.25, 0.85, 1.1])   # late after the slow one, then on pace


def test_the_host_record_says_when_the_run_started_and_which_mptop() -> None:
    from datetime import datetime, timedelta, timezone

    from mptop import __version__
    from mptop.core.sampler import Sampler

    before = datetime.now(timezone.utc)
    host = Sampler(pm_events=False).host_info()
    started = datetime.fromisoformat(host.started or "")
    assert host.version == __version__ and started.tzinfo is not None
    assert before - timedelta(seconds=1) <= started <= datetime.now(timezone.utc)
    assert record_from_json(to_json(host)) == host
