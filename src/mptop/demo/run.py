"""The demo's run: lab up, scenario player and download started, records to the TUI or the console.

In the TUI the first frame comes first: the lab is built meanwhile, off the event loop
(:func:`mptop.lab.background.lab_in_thread`), and the download and the scenario start once it is up.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

from mptop.core.compare import counts_for_exit
from mptop.core.model import Sink, Summary
from mptop.core.session import Session
from mptop.core.transfer import TransferOptions
from mptop.demo.player import ScenarioPlayer
from mptop.demo.scenario import Scenario
from mptop.lab import Lab, LabConfig, LabError
from mptop.lab.background import lab_in_thread
from mptop.lab.signals import exit_on_signals
from mptop.sinks import RecordingUnwritable, fan_out, headless_view, open_recording

if TYPE_CHECKING:
    from mptop.demo.app import DemoApp

LABELS = {"wlan0": "Wi-Fi", "wwan0": "Cellular"}


def demo_url(lab: Lab, scenario: Scenario) -> str:
    if scenario.download_size:
        return lab.url(scenario.download_size, tcp=scenario.download_tcp)
    return lab.base_url(tcp=scenario.download_tcp) + "/forever"


def lab_config(scenario: Scenario) -> LabConfig:
    return LabConfig(rate_mbit=dict(scenario.rate_mbit), client_endpoints=scenario.client_endpoints)  # type: ignore[arg-type]


def demo_options(scenario: Scenario) -> TransferOptions:
    """The download's options: nothing kept, and what the scenario says (plain TCP beside it, an idle timeout)."""
    options = TransferOptions(output="/dev/null", compare_tcp=scenario.compare_tcp)
    if scenario.idle_timeout_s is not None:
        options.idle_timeout = scenario.idle_timeout_s
    return options


def demo_session(lab: Lab, scenario: Scenario, interval: float) -> Session:
    """The demo's download; make it, and run it, in the lab's client namespace."""
    return Session([demo_url(lab, scenario)], demo_options(scenario), interval=interval, labels=LABELS)


def run_demo(args: argparse.Namespace, scenario: Scenario) -> int:
    try:
        with exit_on_signals(), ExitStack() as stack:
            try:
                record = open_recording(args.record, stack)
            except RecordingUnwritable as exc:
                print(f"mptop: {exc}", file=sys.stderr)
                return 2
            if not args.headless:
                return _run_tui(args, scenario, record)
            lab = stack.enter_context(Lab(lab_config(scenario)))
            player = ScenarioPlayer(lab, scenario)
            player.setup()
            # The whole run lives in the client namespace: sockets, interfaces, sysctls, counters.
            stack.enter_context(lab.client.entered())
            return _headless(args, demo_session(lab, scenario, args.interval), player, record)
    except LabError as exc:
        print(f"mptop demo: {exc}", file=sys.stderr)
        return 1


def _headless(args: argparse.Namespace, session: Session, player: ScenarioPlayer, record: Sink | None) -> int:
    view = headless_view(args.json, args.unit, on_reader_gone=session.stop)
    summary = None
    try:
        summary = asyncio.run(play(session, player, fan_out(view, record), args.duration))
    except KeyboardInterrupt:
        pass
    finally:
        view.close(summary)
    return exit_code(summary)


def _run_tui(args: argparse.Namespace, scenario: Scenario, record: Sink | None) -> int:
    from mptop.tui.app import run_app

    demo = TuiDemo(scenario, lambda: Lab(lab_config(scenario)).start(), interval=args.interval,
                   duration=args.duration, record=record)
    demo.app.units = args.unit
    crashed = run_app(demo.app, theme=args.theme)
    if demo.lab_error is not None:
        raise demo.lab_error
    return exit_code(demo.summary) or crashed


class TuiDemo:
    """The demo in the TUI: the app draws its first frame, ``build`` makes the lab meanwhile (in a
    thread that holds it until the app ends), then the scenario and the download start in the lab's
    client namespace.  A lab that cannot be built ends the app: ``lab_error`` says why."""

    def __init__(self, scenario: Scenario, build: Callable[[], Lab], *, interval: float = 0.25,
                 duration: float | None = None, record: Sink | None = None, clock: bool = True) -> None:
        from mptop.demo.app import DemoApp  # Textual only for the TUI run

        self.scenario, self.build = scenario, build
        self.interval, self.duration, self.record = interval, duration, record
        self.summary: Summary | None = None
        self.lab_error: LabError | None = None
        self.app: DemoApp = DemoApp(scenario, runner=self.run, clock=clock, finished_text="demo finished — q to quit")

    async def run(self, feed: Sink) -> None:
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


async def play(session: Session, player: ScenarioPlayer, sink: Sink, duration: float | None,
               until: Callable[[], Awaitable[object]] | None = None) -> Summary:
    """Run the download and the scenario together until ``duration`` passes, ``until`` returns, or the
    download ends; scenario steps appear in the stream as ``scenario`` events, what the demo's keys did
    as ``user_action`` events."""
    player.on_note = lambda kind, note: session.note(sink, kind, note)
    script = asyncio.create_task(player.run(), name="mptop-scenario")
    run = asyncio.create_task(session.run(sink), name="mptop-session")
    stoppers: list[asyncio.Future[Any]] = [asyncio.create_task(asyncio.sleep(duration))] if duration else []
    if until is not None:
        stoppers.append(asyncio.ensure_future(until()))
    try:
        await asyncio.wait([run, *stoppers], return_when=asyncio.FIRST_COMPLETED)
        session.stop()
        return await run
    finally:
        for task in (script, *stoppers):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def exit_code(summary: Summary | None) -> int:
    """0 unless the download failed by itself (stopping the endless demo download is not a failure, nor is
    the plain-TCP side of a comparison failing: that is what the scenario shows)."""
    if summary is None:
        return 0
    failed = [t for t in summary.transfers if not t.ok and t.error != "stopped" and counts_for_exit(t)]
    for t in failed:
        print(f"mptop demo: {t.url}: {t.error}", file=sys.stderr)
    return 1 if failed else 0
