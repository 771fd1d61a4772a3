"""The TUI run of `mptop URL…`: the downloads in the main screen."""

from __future__ import annotations

import argparse
import sys
from contextlib import ExitStack
from dataclasses import replace

from mptop.commands._get_run import open_run, report_failures
from mptop.core.model import Sink, Summary, TransferSummary
from mptop.core.session import Session
from mptop.sinks import ConsoleView, fan_out
from mptop.tui.app import MptopApp, run_app


def run_downloads(args: argparse.Namespace) -> int:
    with ExitStack() as stack:
        opened = open_run(args, stack)
        if isinstance(opened, int):
            return opened
        record, session = opened
        done: list[Summary] = []

        async def runner(feed: Sink) -> None:
            done.append(await session.run(fan_out(feed, record)))

        app = MptopApp(runner=runner, finished_text="all transfers finished — q to quit")
        app.units = args.unit
        crashed = run_app(app, theme=args.theme)
        # What `get` prints at the end, once the TUI has left the screen: a line per transfer.
        summary = with_resume_hint(done[0] if done else interrupted(session))
        view = ConsoleView(sys.stderr, unit=args.unit, interactive=False)
        if session.comparison is not None and session.comparison.told_end:
            view.verdict = session.comparison.verdict()
        view.close(summary)
        return report_failures(summary) or crashed


def interrupted(session: Session) -> Summary:
    """What to report when the app ended before the run could (q, Ctrl-C): each transfer as it stands."""
    if session.sampler is not None:
        return session.sampler.summary()
    transfers = [TransferSummary(id=t.id, url=t.url, file=t.file, bytes=t.bytes_done, sha256=t.sha256,
                                 status="connecting", reason=None, ok=t.state == "done", error=t.error or "stopped")
                 for t in session.transfers]
    return Summary(duration_s=0.0, transfers=transfers)


def with_resume_hint(summary: Summary) -> Summary:
    """A transfer the user's quit stopped says how to finish it (its .part stays for resume)."""
    summary.transfers = [replace(t, error="stopped before the end (run the same command to resume)")
                         if t.error == "stopped" else t for t in summary.transfers]
    return summary
