"""Snapshots of the main screen at chosen moments of real recordings (pytest-textual-snapshot).

The recordings in assets/ are real `mptop demo` runs (made by assets/record.py); the moments are found by
what happens in them (mptop.core.moments: both paths busy, Wi-Fi stalled, a fallback transfer), not by
hard-coded times.  No clock is shown, so the pictures are deterministic.  After a deliberate change of the
look: ``pytest tests/tui/test_snapshots.py --snapshot-update`` and review the SVGs.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from mptop.core import moments
from mptop.core.model import HostInfo, Record, Sample
from mptop.core.recording import read_recording
from mptop.tui.app import MptopApp
from mptop.tui.toplist import TopList
from tests import ASSETS

# Real `mptop demo` recordings (see the module docstring for how they were made).
HANDOVER: list[Record] = read_recording(ASSETS / "handover.ndjson")
FALLBACK: list[Record] = read_recording(ASSETS / "fallback.ndjson")


@pytest.fixture(autouse=True)
def plain_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pictures must not depend on the caller's NO_COLOR or Textual filters."""
    for name in ("NO_COLOR", "TEXTUAL_FILTERS", "TEXTUAL_COLOR_SYSTEM", "TEXTUAL_ANIMATIONS"):
        monkeypatch.delenv(name, raising=False)


def sharing_point() -> float:
    return moments.sharing(HANDOVER)


def stalled_point() -> float:
    return moments.stalled(HANDOVER)


def fallback_point() -> float:
    return moments.fallback(FALLBACK)


def at(t: float, select: Callable[[Sample], int] | None = None, recording: list[Record] = HANDOVER):  # type: ignore[no-untyped-def]
    """A ``run_before`` that feeds ``recording`` up to ``t`` and optionally highlights a transfer."""
    async def run_before(pilot) -> None:  # type: ignore[no-untyped-def]
        last = None
        for record in moments.until(recording, t):
            if isinstance(record, Sample):
                last = record
            pilot.app.feed(record)
        await pilot.pause()
        if select is not None and last is not None:
            pilot.app.query_one(TopList).highlighted = select(last)
        await pilot.pause()
    return run_before


def fallback_index(sample: Sample) -> int:
    return next(i for i, t in enumerate(sample.transfers) if t.status == "fallback")


def test_two_paths_sharing(snap_compare) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(MptopApp(clock=False), terminal_size=(100, 30), run_before=at(sharing_point()))


def test_wifi_stalled(snap_compare) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(MptopApp(clock=False), terminal_size=(100, 30), run_before=at(stalled_point()))


def test_fallback_transfer_selected(snap_compare) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(MptopApp(clock=False), terminal_size=(100, 30),
                        run_before=at(fallback_point() + 2.0, select=fallback_index, recording=FALLBACK))


def test_80x24(snap_compare) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(MptopApp(clock=False), terminal_size=(80, 24), run_before=at(stalled_point()))


def test_narrow_terminal(snap_compare) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(MptopApp(clock=False), terminal_size=(60, 20), run_before=at(sharing_point()))


def test_points_exist_in_the_recordings() -> None:
    assert sharing_point() < stalled_point()
    assert fallback_point() > 0
    for asset in sorted(ASSETS.glob("*.ndjson")):      # recordings shipped for replay must load
        assert isinstance(read_recording(asset)[0], HostInfo)
