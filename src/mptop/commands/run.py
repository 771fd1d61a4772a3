"""`mptop run [--no-force] -- CMD [ARGS…]`: start CMD and show, live, exactly its MPTCP connections."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from mptop.commands import fail
from mptop.commands.options import add_display_arguments

if TYPE_CHECKING:
    from mptop.core.launch import RunSession
    from mptop.core.model import Summary

RUN_HELP = """\
Start CMD with its TCP sockets made MPTCP (mptcpize's LD_PRELOAD library) and show, live, the MPTCP
connections of CMD and every process it starts: per path, per connection, fallbacks and their
reasons, stalls and handovers. When CMD ends, a summary (bytes per path per connection, fallbacks,
outages), and mptop exits with CMD's exit code. Ctrl-C goes to CMD first.
In the TUI, CMD's output goes to a panel (or --output-log FILE) and it reads no input; with --json or
--headless it keeps the terminal (with --json its stdout goes to stderr: stdout carries the NDJSON)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = RUN_HELP
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--no-force", dest="force", action="store_false",
                        help="do not preload mptcpize's library: watch a program that opens MPTCP sockets "
                             "itself (curl --mptcp)")
    parser.add_argument("--json", action="store_true",
                        help="NDJSON on stdout: a host record, samples and events, the summary last")
    parser.add_argument("--headless", action="store_true",
                        help="no TUI: a line per connection and event on stderr, then the summary")
    parser.add_argument("--output-log", metavar="FILE", help="write CMD's stdout and stderr to FILE")
    add_display_arguments(parser, interval=1.0)
    parser.add_argument("--label", action="append", default=[], metavar="IFACE=NAME",
                        help="name a path, e.g. --label eth1=Starlink (repeatable)")
    parser.add_argument("cmd", nargs=argparse.REMAINDER, metavar="-- CMD [ARGS…]", help="the command to run")


def run(args: argparse.Namespace) -> int:
    import subprocess
    from contextlib import ExitStack

    from mptop.commands.tty import interactive, no_terminal
    from mptop.core.launch import CommandUnavailable, MptcpDisabled, PreloadMissing, RunSession, Stdio
    from mptop.core.paths import parse_labels
    from mptop.core.watch import MptcpUnavailable

    argv = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not argv:
        return fail("run", "no command given: mptop run [--no-force] -- CMD [ARGS…]", 2)
    try:
        labels = parse_labels(args.label)
    except ValueError as e:
        return fail("run", str(e), 2)
    tui = not (args.json or args.headless)
    if tui and not interactive():
        return no_terminal("run", "use `mptop run --headless -- CMD` (or --json)")
    with ExitStack() as stack:
        log = None
        if args.output_log:
            try:
                log = stack.enter_context(open(args.output_log, "wb"))
            except OSError as e:
                return fail("run", f"cannot write {args.output_log}: {e.strerror or e}", 2)
        stdio: Stdio = (None, log or (sys.stderr.fileno() if args.json else None), log)
        if tui:
            stdio = (subprocess.DEVNULL, log or subprocess.PIPE, log or subprocess.STDOUT)
        session = RunSession(argv, force=args.force, interval=args.interval, labels=labels, own_session=tui,
                             stdio=stdio)
        try:
            session.start()
        except (PreloadMissing, MptcpDisabled) as e:
            return fail("run", str(e))
        except CommandUnavailable as e:
            return fail("run", str(e), e.code)
        except MptcpUnavailable as e:
            return fail("run", f"cannot list MPTCP connections: {e.reason}")
        except OSError as e:
            return fail("run", f"cannot list MPTCP connections: {e.strerror or e}")
        if tui:
            return _watch_in_tui(args, session)
        return _watch_headless(args, session)


def _watch_headless(args: argparse.Namespace, session: RunSession) -> int:
    import asyncio
    import signal

    from mptop.commands._run_view import EventLines
    from mptop.core.launch import terminal_delivers
    from mptop.sinks import NdjsonOut

    sink = NdjsonOut(sys.stdout) if args.json else EventLines(sys.stderr)
    command = session.command

    def on_signal(sig: int) -> None:
        if terminal_delivers(sig):     # Ctrl-C reached CMD (same process group) already
            command.interrupts += 1
            if command.interrupts >= 3:
                command.send(signal.SIGKILL)
        else:
            command.send(sig)

    async def main() -> Summary:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
            loop.add_signal_handler(sig, on_signal, sig)
        return await session.run(sink)

    try:
        summary = asyncio.run(main())
    except OSError as e:
        return fail("run", f"reading MPTCP connections failed: {e.strerror or e}")
    finally:
        session.close()              # CMD's cgroup is gone whatever happened
    _print_summary(summary, session)
    return summary.exit_code or 0


def _print_summary(summary: Summary, session: RunSession) -> None:
    from mptop.commands._run_view import summary_lines

    try:
        print("\n".join(summary_lines(summary, session.tally.labels)), file=sys.stderr, flush=True)
    except (BrokenPipeError, ValueError):
        pass


def _watch_in_tui(args: argparse.Namespace, session: RunSession) -> int:
    from mptop.tui.app import run_app
    from mptop.tui.run_app import RunApp

    app = RunApp(session, output_log=args.output_log)
    app.units = args.unit
    try:
        crashed = run_app(app, theme=args.theme)
    finally:
        session.command.stop()
        session.close()
    summary = app.summary or session.summary()
    _print_summary(summary, session)
    return summary.exit_code if summary.exit_code is not None else crashed
