"""What `mptop get` (and `mptop URL…`) does once its arguments are parsed."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable
from contextlib import ExitStack
from typing import TYPE_CHECKING

from mptop.commands.ndjson import NdjsonOut
from mptop.core.failures import TransferError
from mptop.core.model import Event, Record, Sample, Summary
from mptop.core.paths import parse_labels
from mptop.core.recording import write_record
from mptop.core.safe_text import escape_controls
from mptop.core.session import Session, Sink
from mptop.core.transfer import TransferOptions

if TYPE_CHECKING:                       # Rich's Live display is imported only when it is used
    from mptop.console import ConsoleView


def options_from(args: argparse.Namespace) -> TransferOptions:
    return TransferOptions(output=args.output, force=args.force, insecure=args.insecure,
                           require_mptcp=args.require_mptcp, connect_timeout=args.connect_timeout,
                           idle_timeout=args.idle_timeout, max_redirects=args.max_redirects)


def usage_error(message: str) -> int:
    print(f"mptop: {message}", file=sys.stderr)
    return 2


def fan_out(*sinks: Sink | None) -> Sink:
    live = [s for s in sinks if s is not None]

    def write(record: Record) -> None:
        for sink in live:
            sink(record)
    return write


def console_sink(view: ConsoleView) -> Sink:
    def write(record: Record) -> None:
        if isinstance(record, Sample):
            view.sample(record)
        elif isinstance(record, Event):
            view.event(record)
    return write


def report_failures(summary: Summary) -> int:
    """One line per failed transfer on stderr; the exit code for the run."""
    for t in summary.transfers:
        if not t.ok:
            print(f"mptop: {escape_controls(t.url)}: {escape_controls(t.error or 'failed')}", file=sys.stderr)
    return 0 if all(t.ok for t in summary.transfers) else 1


def make_session(args: argparse.Namespace) -> Session | int:
    """The session for these arguments, or an exit code after a one-line usage error."""
    try:
        labels = parse_labels(args.label)
    except ValueError as exc:
        return usage_error(str(exc))
    try:
        return Session(args.urls, options_from(args), interval=args.interval, labels=labels)
    except TransferError as exc:
        return usage_error(str(exc))


def open_record(path: str | None, stack: ExitStack) -> Sink | None | int:
    if not path:
        return None
    try:
        fp = stack.enter_context(open(path, "w", encoding="utf-8"))
    except OSError as exc:
        return usage_error(f"cannot write the recording {path}: {exc.strerror}")

    def write(record: Record) -> None:
        write_record(fp, record)
    return write


def open_run(args: argparse.Namespace, stack: ExitStack) -> tuple[Sink | None, Session] | int:
    """The recording sink (or None) and the session for these arguments, or an exit code after one line."""
    record = open_record(args.record, stack)
    if isinstance(record, int):
        return record
    session = make_session(args)
    return session if isinstance(session, int) else (record, session)


def run(args: argparse.Namespace) -> int:
    if args.json and args.output == "-":
        return usage_error("--json writes NDJSON to stdout: choose another -o than -")
    if args.tui:
        from mptop.commands._tui_run import run_downloads

        return run_downloads(args)
    with ExitStack() as stack:
        opened = open_run(args, stack)
        if isinstance(opened, int):
            return opened
        record, session = opened
        view_sink: Sink | None = None
        close: Callable[[Summary | None], None] = lambda summary: None
        if args.json:
            view_sink = out = NdjsonOut(sys.stdout, on_reader_gone=session.stop)
        else:
            from mptop.console import ConsoleView

            view = ConsoleView(sys.stderr, unit=args.unit)
            view_sink, close = console_sink(view), view.close
        summary: Summary | None = None
        try:
            summary = asyncio.run(session.run(fan_out(view_sink, record)))
        finally:
            close(summary)
        if args.json and out.reader_gone:
            print("mptop: the reader of the NDJSON output went away (broken pipe); downloads stopped",
                  file=sys.stderr)
            return 1
        return report_failures(summary)
