"""`mptop demo` in the TUI: the first frame (header, empty panels) comes first; the lab is built
meanwhile, off the event loop (:func:`mptop.lab.background.lab_in_thread`), then the scenario and the
download start in the lab's client namespace."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

from mptop.demo.app import DemoApp
from mptop.demo.player import ScenarioPlayer, lab_config
from mptop.lab import LabError
from mptop.lab.background import lab_in_thread
from mptop.tui.app import run_app

if TYPE_CHECKING:
    from mptop.core.model import Sink, Summary
    from mptop.demo.scenario import Scenario
    from mptop.lab import Lab


def tui_demo(args: argparse.Namespace, scenario: Scenario, record: Sink | None) -> int:
    demo = TuiDemo(scenario, lambda: build_lab(scenario), interval=args.interval,
                   duration=args.duration, record=record)
    demo.app.units = args.unit
    crashed = run_app(demo.app, theme=args.theme)
    if demo.lab_error is not None:
        raise demo.lab_error
    if demo.summary is None:            # quit before the end (or before the lab was up): not a failure
        return crashed
    from mptop.demo.run import exit_code  # loaded by the run already; it prints the failures, now that the TUI is gone

    return exit_code(demo.summary) or crashed


def build_lab(scenario: Scenario) -> Lab:
    """The scenario's lab, started; in the lab's thread, once the first frame is drawn (the lab's
    modules load then too)."""
    from mptop.lab import Lab

    return Lab(lab_config(scenario)).start()


class TuiDemo:
    """The app, and the run it feeds once ``build`` (called in a thread that then holds the lab until
    the app ends) has made the lab.  A lab that cannot be built ends the app: ``lab_error`` says why."""

    def __init__(self, scenario: Scenario, build: Callable[[], Lab], *, interval: float = 0.25,
                 duration: float | None = None, record: Sink | None = None, clock: bool = True) -> None:
        self.scenario, self.build = scenario, build
        self.interval, self.duration, self.record = interval, duration, record
        self.summary: Summary | None = None
        self.lab_error: LabError | None = None
        self.app = DemoApp(scenario, runner=self.run, clock=clock, finished_text="demo finished — q to quit")

    async def run(self, feed: Sink) -> None:
        # The download engine (aiohttp, ~0.2 s to import) once the first frame is up, not before it.
        from mptop.demo.run import demo_session, play
        from mptop.sinks import fan_out

        try:
            async with lab_in_thread(self.build) as lab:
                player = ScenarioPlayer(lab, self.scenario)
                await asyncio.to_thread(player.setup)
                self.app.lab_ready(player)
                with lab.client.entered():      # this (the loop's) thread: the download's sockets live there
                    session = demo_session(lab, self.scenario, self.interval)
                    self.summary = await play(session, player, fan_out(feed, self.record), self.duration)
        except LabError as exc:
            self.lab_error = exc
            self.app.exit()
