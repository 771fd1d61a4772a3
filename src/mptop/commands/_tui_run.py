"""The TUI run of `mptop URL…`: the downloads in the main screen.

The first frame (header, empty panels) comes before the download engine is imported: the arguments'
usage errors that need no engine are found first (one line, no TUI), then the app starts, and the
session (aiohttp and the sampler) is made once the frame is drawn (bench/startup.py).
"""

from __future__ import annotations

import argparse
import sys
from contextlib import ExitStack
from dataclasses import replace
from typing import TYPE_CHECKING

from mptop.commands import ImportsWithoutCollections
from mptop.commands.get import checked_labels, usage_error

if TYPE_CHECKING:
    from mptop.core.model import Sink, Summary
    from mptop.core.session import Session


def run_downloads(args: argparse.Namespace) -> int:
    with ImportsWithoutCollections():
        from mptop.tui.app import MptopApp, run_app

    with ExitStack() as stack:
        record: Sink | None = None
        if args.record:           # the sinks (and the records' module) are loaded after the first frame
            from mptop.sinks import RecordingUnwritable, open_recording

            try:
                record = open_recording(args.record, stack)
            except RecordingUnwritable as exc:
                return usage_error(str(exc))
        checked = checked_labels(args)
        if isinstance(checked, int):
            return checked
        made: list[Session] = []
        if getattr(args, "source", None) is not None:
            # An upload's file is opened now: a file it cannot read is one line, not a TUI.
            code = _make(args, made)
            if code:
                return code
        done: list[Summary] = []

        async def runner(feed: Sink) -> None:
            from mptop.sinks import fan_out

            if not made and _make(args, made):      # after the first frame: aiohttp, the sampler…
                raise RuntimeError("the transfers could not start (see the line below)")
            done.append(await made[0].run(fan_out(feed, record)))

        app = MptopApp(runner=runner, finished_text="all transfers finished — q to quit")
        app.units = args.unit
        crashed = run_app(app, theme=args.theme)
        code = _make(args, made) if not made else 0  # quit before the transfers were made
        if code:
            return code
        from mptop.commands._get_run import report_failures
        from mptop.sinks import ConsoleView

        session = made[0]
        # What `get` prints at the end, once the TUI has left the screen: a line per transfer.
        summary = with_resume_hint(done[0] if done else interrupted(session))
        view = ConsoleView(sys.stderr, unit=args.unit, interactive=False)
        if session.comparison is not None and session.comparison.told_end:
            view.verdict = session.comparison.verdict()
        view.close(summary)
        return report_failures(summary) or crashed


def _make(args: argparse.Namespace, made: list[Session]) -> int:
    """Make the session into ``made``; 0, else the exit code of its one-line usage error."""
    from mptop.commands._get_run import make_session

    session = make_session(args)
    if isinstance(session, int):
        return session
    made.append(session)
    return 0


def interrupted(session: Session) -> Summary:
    """What to report when the app ended before the run could (q, Ctrl-C): each transfer as it stands."""
    from mptop.core.model import Summary, TransferSummary

    if session.sampler is not None:
        return session.sampler.summary()
    transfers = [TransferSummary(id=t.id, url=t.url, file=t.file, bytes=t.bytes_done, sha256=t.sha256,
                                 blake3=t.blake3, status="connecting", reason=None, ok=t.state == "done",
                                 error=t.error or "stopped")
                 for t in session.transfers]
    return Summary(duration_s=0.0, transfers=transfers)


def with_resume_hint(summary: Summary) -> Summary:
    """A transfer the user's quit stopped says how to finish it (its .part stays for resume)."""
    summary.transfers = [replace(t, error="stopped before the end (run the same command to resume)")
                         if t.error == "stopped" else t for t in summary.transfers]
    return summary
