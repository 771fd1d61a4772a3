"""`mptop demo`'s TUI with a real lab built after the first frame: the download runs in the lab's client
namespace once the lab is up, the keys act on it, and quitting tears it down."""

from __future__ import annotations

import os
import threading

import pytest

from mptop.demo.player import lab_config
from mptop.demo.scenario import load
from mptop.demo.tui import TuiDemo
from mptop.lab import Lab
from tests.demo.test_tui_lab import link_is_up
from tests.tui.pilot import screen_text, wait_for

pytestmark = pytest.mark.lab


async def test_the_lab_built_after_the_first_frame_carries_the_download_and_goes_with_the_app() -> None:
    scenario = load("aggregate")            # its script changes nothing before 10 s
    release = threading.Event()
    labs: list[Lab] = []

    def build() -> Lab:
        release.wait(60)
        labs.append(Lab(lab_config(scenario)).start())
        return labs[0]

    demo = TuiDemo(scenario, build, clock=False)
    netns_before = os.readlink("/proc/thread-self/ns/net")
    async with demo.app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: "building the two-path lab" in screen_text(demo.app))
        release.set()
        app = demo.app
        await wait_for(pilot, lambda: app.state.sample is not None and bool(app.state.sample.transfers)
                       and app.state.sample.transfers[0].status == "mptcp" and app.state.sample.transfers[0].bytes > 0,
                       lambda: f"sample: {app.state.sample}", timeout=60)
        assert set(app.state.sample.paths) == {"wlan0", "wwan0"}      # the lab's client interfaces
        assert "building the two-path lab" not in screen_text(app)
        await pilot.press("w")
        await wait_for(pilot, lambda: not link_is_up(labs[0], "wlan0"))
        holders = labs[0].holder_pids
        await pilot.press("q")
    assert os.readlink("/proc/thread-self/ns/net") == netns_before     # the test's thread is back home
    assert holders and not any(os.path.exists(f"/proc/{pid}") for pid in holders)   # the lab went with the app
