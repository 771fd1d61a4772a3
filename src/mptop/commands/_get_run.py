"""What `mptop get` does once its arguments are parsed, and the pieces `mptop URL…` (the TUI) shares."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from contextlib import ExitStack

from mptop.commands.get import checked_labels, digest_of, usage_error
from mptop.core.compare import counts_for_exit, side_name
from mptop.core.failures import TransferError
from mptop.core.model import Sink, Summary
from mptop.core.safe_text import escape_controls
from mptop.core.session import Session
from mptop.core.transfer import TransferOptions
from mptop.sinks import NdjsonOut, RecordingUnwritable, fan_out, headless_view, open_recording


def options_from(args: argparse.Namespace) -> TransferOptions:
    return TransferOptions(output=args.output, force=args.force, insecure=args.insecure,
                           require_mptcp=args.require_mptcp, connect_timeout=args.connect_timeout,
                           idle_timeout=args.idle_timeout, max_redirects=args.max_redirects,
                           compare_tcp=args.compare_tcp,
                           digest=digest_of(args))


def report_failures(summary: Summary) -> int:
    """One line per failed transfer on stderr; the exit code for the run.  The plain-TCP side of a
    --compare-tcp run failing is what the comparison measured: its "MPTCP vs TCP" line says why."""
    failed = [t for t in summary.transfers if not t.ok and counts_for_exit(t)]
    for t in failed:
        side = f" ({side_name(t)})" if side_name(t) else ""
        print(f"mptop: {escape_controls(t.url)}{side}: {escape_controls(t.error or 'failed')}", file=sys.stderr)
    return 1 if failed else 0


def make_session(args: argparse.Namespace) -> Session | int:
    """The session for these arguments, or an exit code after a one-line usage error."""
    labels = checked_labels(args)
    if isinstance(labels, int):
        return labels
    try:
        return Session(args.urls, options_from(args), interval=args.interval, labels=labels,
                       upload=getattr(args, "source", None), method=getattr(args, "method", "PUT"))
    except TransferError as exc:
        return usage_error(str(exc))


def open_run(args: argparse.Namespace, stack: ExitStack) -> tuple[Sink | None, Session] | int:
    """The recording sink (or None) and the session for these arguments, or an exit code after one line."""
    try:
        record = open_recording(args.record, stack)
    except RecordingUnwritable as exc:
        return usage_error(str(exc))
    session = make_session(args)
    return session if isinstance(session, int) else (record, session)


async def _run_until_interrupted(session: Session, sink: Sink, interrupted: list[bool]) -> Summary:
    """The session, with Ctrl-C stopping it the way the end of a run does (the summary record is
    still written, the .parts kept); a second Ctrl-C interrupts at once."""
    loop = asyncio.get_running_loop()

    def on_interrupt() -> None:
        interrupted.append(True)
        loop.remove_signal_handler(signal.SIGINT)
        session.stop()

    loop.add_signal_handler(signal.SIGINT, on_interrupt)
    try:
        return await session.run(sink)
    finally:
        loop.remove_signal_handler(signal.SIGINT)


def run_headless(args: argparse.Namespace) -> int:
    """The headless get: NDJSON on stdout with --json, else the console view on stderr."""
    with ExitStack() as stack:
        opened = open_run(args, stack)
        if isinstance(opened, int):
            return opened
        record, session = opened
        view = headless_view(args.json, args.unit, on_reader_gone=session.stop)
        summary: Summary | None = None
        interrupted: list[bool] = []
        try:
            summary = asyncio.run(_run_until_interrupted(session, fan_out(view, record), interrupted))
        finally:
            view.close(summary)
        if interrupted:
            stopped = sum(not t.ok for t in summary.transfers)
            print(f"mptop: interrupted: {stopped} of {len(summary.transfers)} transfers stopped "
                  "(run the same command to resume)", file=sys.stderr)
            return 130
        if isinstance(view, NdjsonOut) and view.reader_gone:
            print("mptop: the reader of the NDJSON output went away (broken pipe); downloads stopped",
                  file=sys.stderr)
            return 1
        return report_failures(summary)
