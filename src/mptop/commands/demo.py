"""`mptop demo`: builds the two-path lab, starts a download over both paths and plays a handover scenario."""

from __future__ import annotations

import argparse

from mptop.commands.options import add_display_arguments, positive_float


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scenario", default="handover", metavar="NAME",
                        help="handover (default), aggregate, backup, compare, fallback, flaky — or a .toml file")
    parser.add_argument("--headless", action="store_true", help="no TUI: a line per second (or --json)")
    parser.add_argument("--duration", type=positive_float, metavar="S",
                        help="stop after S seconds (default: run until q / Ctrl-C)")
    parser.add_argument("--json", action="store_true", help="with --headless: NDJSON like `mptop get --json`")
    parser.add_argument("--record", metavar="FILE", help="also write the NDJSON stream to FILE")
    add_display_arguments(parser, interval=0.25)


def run(args: argparse.Namespace) -> int:
    import os
    import sys

    from mptop.commands.tty import interactive, no_terminal
    from mptop.demo.scenario import ScenarioError, load
    from mptop.lab import LabUnavailable

    try:
        scenario = load(args.scenario)
    except ScenarioError as exc:
        print(f"mptop demo: {exc}", file=sys.stderr)
        return 2
    if not args.headless and not interactive():
        return no_terminal("demo", "use `mptop demo --headless` (add --json for NDJSON)")
    if os.geteuid() != 0:
        # Before any thread exists: an ordinary user becomes root of a fresh user namespace.
        from mptop.lab.userns import enter_user_namespace

        try:
            enter_user_namespace()
        except LabUnavailable as exc:
            print(f"mptop demo: {exc}", file=sys.stderr)
            return 1
    from mptop.demo.launch import launch

    if args.headless:
        from mptop.demo.run import headless_demo

        return launch(args, lambda record, stack: headless_demo(args, scenario, record, stack))
    # The TUI's first frame does not wait for the download engine nor the lab (mptop.demo.tui).
    from mptop.commands import ImportsWithoutCollections

    with ImportsWithoutCollections():
        from mptop.demo.tui import tui_demo

    return launch(args, lambda record, _stack: tui_demo(args, scenario, record))
