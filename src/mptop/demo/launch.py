"""What every demo run shares, TUI or not: SIGTERM/SIGHUP unwind it (and the lab), ``--record`` is
opened first, and a lab that cannot be built ends it in one line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from contextlib import ExitStack
from typing import TYPE_CHECKING

from mptop.lab import LabError
from mptop.lab.signals import exit_on_signals

if TYPE_CHECKING:
    from mptop.core.model import Sink

Body = Callable[["Sink | None", ExitStack], int]     # (the --record sink or None, the run's stack) -> exit code


def launch(args: argparse.Namespace, body: Body) -> int:
    """``body``'s exit code; 2 when ``--record`` cannot be written, 1 when the lab cannot be built."""
    try:
        with exit_on_signals(), ExitStack() as stack:
            record: Sink | None = None
            if args.record:      # the sinks load the records' module: not before the TUI's first frame
                from mptop.sinks import RecordingUnwritable, open_recording

                try:
                    record = open_recording(args.record, stack)
                except RecordingUnwritable as exc:
                    print(f"mptop: {exc}", file=sys.stderr)
                    return 2
            return body(record, stack)
    except LabError as exc:
        print(f"mptop demo: {exc}", file=sys.stderr)
        return 1
