"""The demo's download and scenario, played together; and the headless demo (the TUI's is :mod:`mptop.demo.tui`)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from typing import Any

from mptop.core.compare import counts_for_exit
from mptop.core.model import Sink, Summary
from mptop.core.session import Session
from mptop.core.transfer import TransferOptions
from mptop.demo.player import ScenarioPlayer, lab_config
from mptop.demo.scenario import Scenario
from mptop.lab import Lab
from mptop.sinks import fan_out, headless_view

LABELS = {"wlan0": "Wi-Fi", "wwan0": "Cellular"}


def demo_url(lab: Lab, scenario: Scenario) -> str:
    if scenario.download_size:
        return lab.url(scenario.download_size, tcp=scenario.download_tcp)
    return lab.base_url(tcp=scenario.download_tcp) + "/forever"


def demo_options(scenario: Scenario) -> TransferOptions:
    """The download's options: nothing kept, and what the scenario says (plain TCP beside it, an idle timeout)."""
    options = TransferOptions(output="/dev/null", compare_tcp=scenario.compare_tcp)
    if scenario.idle_timeout_s is not None:
        options.idle_timeout = scenario.idle_timeout_s
    return options


def demo_session(lab: Lab, scenario: Scenario, interval: float) -> Session:
    """The demo's download; make it, and run it, in the lab's client namespace."""
    return Session([demo_url(lab, scenario)], demo_options(scenario), interval=interval, labels=LABELS)


def headless_demo(args: argparse.Namespace, scenario: Scenario, record: Sink | None, stack: ExitStack) -> int:
    """The demo without the TUI: the lab up first, then a line per second (or NDJSON)."""
    lab = stack.enter_context(Lab(lab_config(scenario)))
    player = ScenarioPlayer(lab, scenario)
    player.setup()
    # The whole run lives in the client namespace: sockets, interfaces, sysctls, counters.
    stack.enter_context(lab.client.entered())
    return _headless(args, demo_session(lab, scenario, args.interval), player, record)


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
