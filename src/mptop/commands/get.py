"""`mptop get URL…`: download over MPTCP and report every path, headless (`--json` for NDJSON)."""

from __future__ import annotations

import argparse
import sys

from mptop.commands import ImportsWithoutCollections
from mptop.commands.options import add_display_arguments, count, positive_float
from mptop.core.digest import DEFAULT_DIGEST, DIGESTS, missing


def add_transfer_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared by `mptop get` and `mptop URL…` (the TUI)."""
    parser.add_argument("urls", nargs="+", metavar="URL", help="http:// or https:// URLs to download")
    parser.add_argument("-o", "--output", metavar="PATH",
                        help="FILE (one URL), DIR/, - for stdout, or /dev/null (default: the URL's name here)")
    parser.add_argument("-f", "--force", action="store_true", help="overwrite an existing file")
    add_connection_arguments(parser)
    parser.add_argument("--max-redirects", type=count, default=10, metavar="N", help="follow at most N redirects")
    parser.add_argument("--hash", choices=(*DIGESTS, "none"), metavar="NAME",
                        help="each file's hash, computed off the event loop: sha256 (the default), blake3 (a "
                             "quarter of sha256's CPU; pip install 'mptop[blake3]') or none")
    parser.add_argument("--no-hash", action="store_true", help="the same as --hash none")
    add_display_arguments(parser, interval=0.25)


def add_connection_arguments(parser: argparse.ArgumentParser, idle: str = "no byte arrives") -> None:
    """Options every transfer takes, download (`get`) or upload (`put`)."""
    parser.add_argument("-k", "--insecure", action="store_true", help="do not verify TLS certificates")
    parser.add_argument("--require-mptcp", action="store_true",
                        help="fail a transfer that cannot use MPTCP or falls back to TCP")
    parser.add_argument("--compare-tcp", action="store_true",
                        help="the same transfer a second time at once over plain TCP (a download's copy is "
                             "discarded), both side by side; the exit code follows the MPTCP one")
    parser.add_argument("--label", action="append", default=[], metavar="IFACE=NAME",
                        help="name a path, e.g. --label eth1=Starlink (repeatable)")
    parser.add_argument("--record", metavar="FILE", help="also write the NDJSON stream to FILE (for mptop replay)")
    parser.add_argument("--connect-timeout", type=positive_float, default=15.0, metavar="S",
                        help="give up connecting after S seconds (default 15)")
    parser.add_argument("--idle-timeout", type=positive_float, default=30.0, metavar="S",
                        help=f"give up when {idle} for S seconds (default 30)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_transfer_arguments(parser)
    parser.add_argument("--json", action="store_true", help="NDJSON samples, events and a summary on stdout")
    parser.add_argument("--tui", action="store_true", help=argparse.SUPPRESS)


def usage_error(message: str) -> int:
    print(f"mptop: {message}", file=sys.stderr)
    return 2


def checked_labels(args: argparse.Namespace) -> dict[str, str] | int:
    """The --label names, once the arguments passed the checks that need no download engine (so the
    TUI makes them before its first frame); else an exit code after a one-line usage error."""
    from mptop.core.failures import TransferError
    from mptop.core.output import plan_output

    labels: dict[str, str] = {}
    if args.label:
        from mptop.core.paths import parse_labels  # the path book: not before the TUI's first frame

        try:
            labels = parse_labels(args.label)
        except ValueError as exc:
            return usage_error(str(exc))
    hash_error = digest_error(args)
    if hash_error is not None:
        return usage_error(hash_error)
    if args.compare_tcp and len(args.urls) != 1:
        return usage_error(f"--compare-tcp compares one URL over MPTCP and plain TCP (got {len(args.urls)})")
    if getattr(args, "source", None) is None:         # a download: where its bytes go (`put` has no -o)
        try:
            plan_output(args.output, len(args.urls))
        except TransferError as exc:
            return usage_error(str(exc))
    return labels


def digest_error(args: argparse.Namespace) -> str | None:
    """Why ``--hash``/``--no-hash`` cannot be as given (one line), or None."""
    chosen = getattr(args, "hash", None)
    if chosen is None or chosen == "none":
        return None
    if getattr(args, "no_hash", False):
        return f"--no-hash and --hash {chosen} contradict each other: choose one"
    return missing(chosen)


def digest_of(args: argparse.Namespace) -> str | None:
    """The hash these arguments ask for (:mod:`mptop.core.digest`), None for none."""
    chosen = getattr(args, "hash", None) or DEFAULT_DIGEST     # `put` has no --hash: its answer names a sha256
    return None if getattr(args, "no_hash", False) or chosen == "none" else chosen


def run(args: argparse.Namespace) -> int:
    if args.json and args.output == "-":
        print("mptop: --json writes NDJSON to stdout: choose another -o than -", file=sys.stderr)
        return 2
    if args.tui:
        from mptop.commands._tui_run import run_downloads

        return run_downloads(args)
    with ImportsWithoutCollections():
        from mptop.commands._get_run import run_headless
    return run_headless(args)
