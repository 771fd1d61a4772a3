"""`mptop demo` in the TUI draws its first frame (header, empty panels) while its lab is still being
built: the build runs in a thread of its own, and a lab that cannot be built ends the app with why."""

from __future__ import annotations

import threading

from mptop.demo.scenario import load
from mptop.demo.tui import TuiDemo
from mptop.lab import Lab, LabError
from tests.tui.pilot import screen_text, wait_for

BUILD_WAIT_S = 60.0      # the test releases the build long before (a bound, not a pause)


async def test_the_first_frame_comes_while_the_lab_is_still_building() -> None:
    building, release = threading.Event(), threading.Event()

    def build() -> Lab:
        building.set()
        release.wait(BUILD_WAIT_S)
        raise LabError("cannot build the lab: a test that has none")

    demo = TuiDemo(load("handover"), build, clock=False)
    async with demo.app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, building.is_set)
        await wait_for(pilot, lambda: "building the two-path lab" in screen_text(demo.app))
        text = screen_text(demo.app)
        assert not release.is_set() and demo.app.is_running       # the lab is not there yet...
        assert text.lstrip().startswith("mptop")                   # ...but the header is,
        for panel in ("Transfers", "Paths", "Subflows", "Events"):  # and the empty panels
            assert f"─ {panel} ─" in text
        assert demo.app.check_action("toggle_link", ("wlan0",)) is None   # the lab's keys wait (greyed)
        release.set()
        await wait_for(pilot, lambda: demo.lab_error is not None)
    assert str(demo.lab_error) == "cannot build the lab: a test that has none"
    assert demo.summary is None
