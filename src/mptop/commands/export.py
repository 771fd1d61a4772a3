"""`mptop export`: MPTCP connections and paths of this network namespace as Prometheus metrics."""

from __future__ import annotations

import argparse
from pathlib import Path

from mptop.commands.options import positive_float

DEFAULT_LISTEN = "127.0.0.1:9464"
TEXTFILE_NAME = "mptop.prom"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

EPILOG = """\
Every value is read from the kernel when Prometheus scrapes (no timer of its own) in the current
network namespace.  Cardinality guard: no address or port labels except listening ports (at most
16, the rest as port="other"); closed value sets for every enum label; at most 16 interfaces, in
the order first seen (the rest as interface="other", counted by mptcp_exporter_folded_interfaces);
per-connection series only with --per-connection N (default 0, at most 50).  Path byte counters
stay monotonic across closed subflows, but the bytes a subflow moved after the last scrape that
saw it are lost when it closes: scrape often (1-15 s).  Path-manager events are counted only with
CAP_NET_ADMIN (mptcp_exporter_pm_events_subscribed says which)."""


def listen_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[V6]:PORT`` (argparse type: one-line errors)."""
    host, sep, port = text.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or not port.isdigit() or not 0 < int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"want HOST:PORT (e.g. {DEFAULT_LISTEN}), got {text!r}")
    return host, int(port)


def per_connection(text: str) -> int:
    from mptop.core.export import MAX_PER_CONNECTION

    if not text.isdigit() or int(text) > MAX_PER_CONNECTION:
        raise argparse.ArgumentTypeError(f"want 0 to {MAX_PER_CONNECTION}, got {text!r}")
    return int(text)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--listen", type=listen_address, default=listen_address(DEFAULT_LISTEN),
                        metavar="HOST:PORT", help=f"serve /metrics here (default {DEFAULT_LISTEN})")
    parser.add_argument("--textfile", type=Path, metavar="DIR",
                        help=f"instead of serving, write DIR/{TEXTFILE_NAME} for node_exporter's textfile "
                             "collector (atomically: a temporary file, then rename), once")
    # dest "every": mptop.config keeps the display commands' --interval (args.interval) for next time;
    # this one is not a display option.
    parser.add_argument("--interval", dest="every", type=positive_float, metavar="S",
                        help="with --textfile: rewrite the file every S seconds until stopped")
    parser.add_argument("--per-connection", type=per_connection, default=0, metavar="N",
                        help="also export the top N connections by bytes, by a short hash of their token "
                             "(default 0, at most 50)")


def run(args: argparse.Namespace) -> int:
    from mptop.commands._export_run import run_export

    return run_export(args)
