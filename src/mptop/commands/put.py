"""`mptop put FILE|- URL…`: upload over MPTCP (PUT, or POST with --post) and report every path's send rate.

`mptop --upload FILE URL…` is the same in the TUI.  Everything else is `get`'s: the session, the sinks,
the exit codes (`mptop.commands._get_run`).
"""

from __future__ import annotations

import argparse

from mptop.commands.get import add_connection_arguments
from mptop.commands.options import add_display_arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", metavar="FILE", help="the file to send, or - for standard input")
    parser.add_argument("urls", nargs="+", metavar="URL", help="http:// or https:// URLs to send it to (at once)")
    parser.add_argument("--post", dest="method", action="store_const", const="POST", default="PUT",
                        help="send the file as a POST body (default: PUT)")
    parser.add_argument("--no-hash", action="store_true",
                        help="do not compute the sha256 of what is sent (nor check the server's): a file sent "
                             "over http:// then goes from the page cache to the socket (sendfile)")
    add_connection_arguments(parser, idle="the connection takes no byte (or the answer does not come)")
    add_display_arguments(parser, interval=0.25)
    parser.add_argument("--json", action="store_true", help="NDJSON samples, events and a summary on stdout")
    parser.add_argument("--tui", action="store_true", help=argparse.SUPPRESS)
    parser.set_defaults(output=None, force=False, max_redirects=0)


def run(args: argparse.Namespace) -> int:
    if args.tui:
        from mptop.commands._tui_run import run_downloads

        return run_downloads(args)
    from mptop.commands._get_run import run_headless

    return run_headless(args)
