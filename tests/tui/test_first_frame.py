"""The first frame (header, empty panels) comes before the source starts: a slow start of the data —
the demo's lab, the first kernel poll, a name lookup — never keeps the screen blank."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest

from mptop.core.model import Record, Sink
from mptop.tui.app import FIRST_FRAME_SWITCH_S, MptopApp
from tests.tui.pilot import wait_for


def counting_frames(app: MptopApp) -> list[int]:
    """[frames the app has written to its terminal so far], kept up to date."""
    written = [0]
    display = app._display

    def counted(screen: Any, update: Any) -> None:
        if update is not None:
            written[0] += 1
        display(screen, update)

    app._display = counted  # type: ignore[method-assign]
    return written


@pytest.mark.parametrize("way", ["source", "runner"])
async def test_the_data_starts_after_the_first_frame(way: str) -> None:
    frames_at_start: list[int] = []

    async def source() -> AsyncIterator[Record]:
        frames_at_start.append(written[0])
        return
        yield

    async def runner(feed: Sink) -> None:
        frames_at_start.append(written[0])

    app = MptopApp(source() if way == "source" else None, runner=runner if way == "runner" else None, clock=False)
    written = counting_frames(app)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: bool(frames_at_start))
    assert frames_at_start[0] >= 1


async def test_the_first_frame_gets_the_gil_sooner_then_the_switch_interval_is_back() -> None:
    # Textual's writer thread puts each frame on the terminal; after the first one the main thread goes
    # on with the layout, and with Python's 5 ms switch interval the frame would wait that long.
    before = sys.getswitchinterval()
    at_frames: list[float] = []
    app = MptopApp(clock=False)
    display = app._display

    def recorded(screen: Any, update: Any) -> None:
        if update is not None:
            at_frames.append(sys.getswitchinterval())
        display(screen, update)

    app._display = recorded  # type: ignore[method-assign]
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: len(at_frames) >= 2 and sys.getswitchinterval() == before,
                       lambda: f"switch intervals at the frames {at_frames}, now {sys.getswitchinterval()}")
    assert at_frames[0] == FIRST_FRAME_SWITCH_S < before
