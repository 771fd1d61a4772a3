"""Driving :class:`~mptop.tui.app.MptopApp` under Textual's Pilot: the recordings the tests feed it, and
reading what its screen shows."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from textual.pilot import Pilot

from mptop.core.model import Record
from mptop.core.recording import read_recording
from mptop.tui.app import MptopApp
from mptop.tui.toplist import TopList
from tests import ASSETS

# `mptop get` of an MPTCP download beside one from the server's plain-TCP port, Wi-Fi down for ~3 s
TWO: list[Record] = read_recording(ASSETS / "two-transfers.ndjson")
HANDOVER: list[Record] = read_recording(ASSETS / "handover.ndjson")     # `mptop demo`, 30 s
FALLBACK: list[Record] = read_recording(ASSETS / "fallback.ndjson")     # `mptop demo --scenario fallback`, 8 s


def screen_text(app: MptopApp) -> str:
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


def widget_text(widget: object) -> str:
    region = widget.region  # type: ignore[attr-defined]
    lines = screen_text(widget.app).splitlines()[region.y: region.bottom]  # type: ignore[attr-defined]
    return "\n".join(line[region.x: region.right] for line in lines)


def without_scheme(url: str) -> str:
    return url.split("://", 1)[-1]


async def wait_for(pilot: Pilot, condition: Callable[[], bool], why: Callable[[], str] = lambda: "",
                   timeout: float = 20.0) -> None:
    """Let the app run until ``condition`` holds (bounded: the machine is shared and busy); ``why``
    says what failed when it never does."""
    deadline = time.monotonic() + timeout
    while not condition():
        if pilot.app._exception is not None:    # the app crashed: nothing will change any more
            raise pilot.app._exception
        assert time.monotonic() < deadline, f"condition not met in {timeout:g} s: {why()}"
        await pilot.pause(0.05)


async def feed(pilot: Pilot, records: Sequence[Record]) -> None:
    """Hand the app ``records`` and let it ingest them all and draw."""
    app = pilot.app
    assert isinstance(app, MptopApp)
    target = app.state.records + len(records)
    for record in records:
        app.feed(record)
    await wait_for(pilot, lambda: app.state.records >= target)
    await pilot.pause()


async def select(pilot: Pilot, app: MptopApp, token: int) -> None:
    top = app.query_one(TopList)
    while top.selected_id != f"c{token}":
        await pilot.press("down")
        assert top.highlighted is not None and top.highlighted < len(top.keys)
