"""The demo's run: lab up, scenario player and download started, records to the TUI or the console."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from typing import Any

from mptop.commands._get_run import console_sink, fan_out, open_record
from mptop.commands.ndjson import NdjsonOut
from mptop.core.model import Summary
from mptop.core.session import Session, Sink
from mptop.core.transfer import TransferOptions
from mptop.demo.player import ScenarioPlayer
from mptop.demo.scenario import Scenario
from mptop.lab import Lab, LabConfig, LabError
from mptop.lab.signals import exit_on_signals

LABELS = {"wlan0": "Wi-Fi", "wwan0": "Cellular"}


def demo_url(lab: Lab, scenario: Scenario) -> str:
    if scenario.download_size:
        return lab.url(scenario.download_size, tcp=scenario.download_tcp)
    return lab.base_url(tcp=scenario.download_tcp) + "/forever"


def run_demo(args: argparse.Namespace, scenario: Scenario) -> int:
    config = LabConfig(rate_mbit=dict(scenario.rate_mbit), client_endpoints=scenario.client_endpoints)  # type: ignore[arg-type]
    try:
        with exit_on_signals(), ExitStack() as stack:
            record = open_record(args.record, stack)
            if isinstance(record, int):
                return record
            lab = stack.enter_context(Lab(config))
            player = ScenarioPlayer(lab, scenario)
            player.setup()
            # The whole run lives in the client namespace: sockets, interfaces, sysctls, counters.
            stack.enter_context(lab.client.entered())
            session = Session([demo_url(lab, scenario)], TransferOptions(output="/dev/null"),
                              interval=args.interval, labels=LABELS)
            if args.headless:
                return _headless(args, session, player, record)
            from mptop.commands._tui_run import run_demo_tui

            return run_demo_tui(args, session, player, record)
    except LabError as exc:
        print(f"mptop demo: {exc}", file=sys.stderr)
        return 1


def _headless(args: argparse.Namespace, session: Session, player: ScenarioPlayer, record: Sink | None) -> int:
    close: Callable[[Summary | None], None] | None = None     # the console view's
    if args.json:
        view: Sink = NdjsonOut(sys.stdout, on_reader_gone=session.stop)
    else:
        from mptop.console import ConsoleView

        console = ConsoleView(sys.stderr, unit=args.unit)
        view, close = console_sink(console), console.close
    sink = fan_out(view, record)
    summary = None
    try:
        summary = asyncio.run(play(session, player, sink, args.duration))
    except KeyboardInterrupt:
        pass
    finally:
        if close is not None:
            close(summary)
    return exit_code(summary)


async def play(session: Session, player: ScenarioPlayer, sink: Sink, duration: float | None,
               until: Callable[[], Awaitable[object]] | None = None) -> Summary:
    """Run the download and the scenario together until ``duration`` passes, ``until`` returns, or the
    download ends; scenario steps appear in the stream as ``scenario`` events."""
    player.on_note = lambda note: session.note(sink, "scenario", note)
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
    """0 unless the download failed by itself (stopping the endless demo download is not a failure)."""
    if summary is None:
        return 0
    failed = [t for t in summary.transfers if not t.ok and t.error != "stopped"]
    for t in failed:
        print(f"mptop demo: {t.url}: {t.error}", file=sys.stderr)
    return 1 if failed else 0
