"""Command line entry point.  Start-up stays fast: only the command being run is imported (its
options are added to the parser), and each command imports its heavy parts in ``run``."""

from __future__ import annotations

import argparse
import importlib
import sys

from mptop import __version__

# name -> (module under mptop.commands, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "get": ("get", "download URLs over MPTCP without the TUI (--json for NDJSON)"),
    "put": ("put", "upload a file over MPTCP (PUT, or --post) and see each path's send rate"),
    "demo": ("demo", "a two-path lab with scripted handovers, in one command"),
    "watch": ("watch", "every MPTCP connection on this host, live"),
    "run": ("run", "start a command and watch its MPTCP connections live (mptcpize)"),
    "doctor": ("doctor", "is MPTCP really usable here, and how to fix it"),
    "replay": ("replay", "play a recording (--record) in the TUI"),
    "export": ("export", "Prometheus metrics of MPTCP connections and paths (/metrics)"),
    "serve": ("serve", "the TUI in a browser tab (watch, demo or URLs), one mptop per tab"),
}

USAGE = """\
mptop URL…              download URLs over Multipath TCP and watch every path live
mptop                   same as `mptop watch`
mptop get URL… [--json] headless download (NDJSON with --json)
mptop put FILE URL…     upload over MPTCP (mptop --upload FILE URL… in the TUI)
mptop demo              two-path lab with Wi-Fi/cellular handovers, one command
mptop watch             every MPTCP connection on this host
mptop run -- CMD…       run CMD over MPTCP (mptcpize) and watch its connections live
mptop doctor            is MPTCP really usable here, and how to fix it
mptop replay FILE       play a recording in the TUI
mptop export            Prometheus /metrics of MPTCP paths (or --textfile DIR)
mptop serve [demo|URL…] the TUI in a browser tab (http://127.0.0.1:8000/)"""


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command; with ``only``, the options of that command alone ("": of none),
    so that ``--version``, ``--help`` and each command import no other command's module.  With a
    command named, the others get no sub-parser at all (a parser costs ~0.3 ms of every start)."""
    parser = argparse.ArgumentParser(
        prog="mptop",
        description="See Multipath TCP work: per-path throughput, subflows, path-manager events, fallback.",
        usage=USAGE,
    )
    parser.add_argument("-V", "--version", action="version", version=f"mptop {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        if only and name != only:
            continue
        p = sub.add_parser(name, help=help_text, description=help_text, prog=f"mptop {name}")
        if only is None or only == name:
            cmd = importlib.import_module(f"mptop.commands.{module}")
            cmd.add_arguments(p)
            p.set_defaults(_module=cmd)
    return parser


BODY_COMMANDS = ("get", "put", "demo")     # the commands that move bodies through large buffers


def _tune_malloc() -> None:
    """Keep glibc from returning each 256 KiB-1 MiB read buffer to the kernel and faulting it back in.

    Measured (bench/throughput.py, 1 GiB unshaped): minor faults 74-165k -> 11.5k per GiB, system time
    0.92 -> 0.45 s/GiB, CPU per GB -14 to -20 %.  Both thresholds are needed; either alone does nothing.
    """
    if sys.platform != "linux":
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        libc.mallopt(-3, 4 << 20)    # M_MMAP_THRESHOLD: serve read buffers from the heap
        libc.mallopt(-1, 64 << 20)   # M_TRIM_THRESHOLD: and keep the heap's free top
    except (OSError, AttributeError):
        pass


def _unknown_command(word: str) -> int:
    import difflib

    close = difflib.get_close_matches(word, COMMANDS, n=1)
    hint = f"did you mean `mptop {close[0]}`? " if close else ""
    print(f"mptop: {word!r} is neither a command nor a URL; {hint}commands: {', '.join(COMMANDS)}; "
          "URLs start with http:// or https://", file=sys.stderr)
    return 2


def _unknown_options(parser: argparse.ArgumentParser, args: argparse.Namespace, extra: list[str]) -> int:
    """One line for options the command does not take, with the nearest one it does take."""
    import difflib

    module = getattr(args, "_module", None)
    ours = module.__name__.rsplit(".", 1)[-1] if module else None
    command = next((name for name, (mod, _) in COMMANDS.items() if mod == ours), None)
    known = [o for action in _subparser(parser, command)._actions for o in action.option_strings] if command else []
    where = f"mptop {command}" if command else "mptop"
    options = [w for w in extra if w.startswith("-")] or extra     # not the values that followed them
    hints = []
    for word in options:
        option = word.split("=", 1)[0]
        close = difflib.get_close_matches(option, known, n=1, cutoff=0.6) if option.startswith("-") else []
        hints.append(f"{word!r} (did you mean {close[0]}?)" if close else repr(word))
    print(f"{where}: unknown option{'s' if len(hints) > 1 else ''} {', '.join(hints)}; see `{where} --help`",
          file=sys.stderr)
    return 2


def _subparser(parser: argparse.ArgumentParser, command: str) -> argparse.ArgumentParser:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices[command]
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        argv = ["watch"]
    elif argv[0] not in COMMANDS and argv[0] not in ("-h", "--help", "-V", "--version"):
        if not argv[0].startswith("-") and "://" not in argv[0]:
            return _unknown_command(argv[0])   # not a URL either: a mistyped command, say so
        # `mptop URL… [get options]` opens the TUI on those downloads; with --json, or without a
        # terminal (cron, a script), it is the headless `get`.
        from mptop.commands.tty import interactive

        command = "get"
        if "--upload" in argv[:-1]:          # mptop --upload FILE URL…: the upload, in the TUI
            at = argv.index("--upload")
            command, argv = "put", [argv[at + 1], *argv[:at], *argv[at + 2:]]
        argv = [command, *argv] if "--json" in argv or not interactive() else [command, "--tui", *argv]
    parser = build_parser(only=argv[0] if argv[0] in COMMANDS else "")
    args, extra = parser.parse_known_args(argv)
    if extra:
        return _unknown_options(parser, args, extra)
    if args.command is None:
        parser.print_help()
        return 2
    from mptop import config

    if args.command in BODY_COMMANDS:
        _tune_malloc()
    config.apply(args, args.command)          # --theme/--units/--interval: given, else the file's, else defaults
    try:
        return int(args._module.run(args) or 0)
    except KeyboardInterrupt:
        return 130
