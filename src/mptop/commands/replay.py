"""`mptop replay FILE`: play a recording (``--record``) in the TUI at its own pace."""

from __future__ import annotations

import argparse
import sys

from mptop.commands.options import add_display_arguments, positive_float


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", help="a recording: NDJSON written by --record")
    parser.add_argument("--speed", type=positive_float, default=1.0, metavar="X",
                        help="play X times faster than recorded (default 1; 0.5 = half speed)")
    add_display_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from mptop.core.model import Sample
    from mptop.core.recording import RecordingError, read_recording

    try:
        records = read_recording(args.file)
    except RecordingError as exc:
        print(f"mptop replay: {exc}", file=sys.stderr)
        return 2
    from mptop.commands.tty import interactive, no_terminal

    if not interactive():
        return no_terminal("replay", "the recording is NDJSON: read it with any JSON tool")
    from mptop.tui.app import MptopApp, run_app
    from mptop.tui.sources import ReplaySource

    watch = any(isinstance(r, Sample) and r.connections is not None for r in records)
    app = MptopApp(ReplaySource(records, speed=args.speed), mode="watch" if watch else "transfers",
                   finished_text="replay finished")
    app.units = args.unit
    return run_app(app, theme=args.theme)
