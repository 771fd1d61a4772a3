"""`mptop watch`: every MPTCP connection of this network namespace, live (TUI, or NDJSON with --json)."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, TextIO

from mptop.commands import ImportsWithoutCollections, fail
from mptop.commands.options import add_display_arguments, port, positive_int

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from mptop.core.model import Record
    from mptop.core.watch import WatchSampler
    from mptop.core.watch_open import DiagReader


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true",
                        help="NDJSON on stdout: a host record, then samples and events")
    parser.add_argument("--count", type=positive_int, metavar="N", help="stop after N samples")
    add_display_arguments(parser, interval=1.0)
    parser.add_argument("--process", metavar="NAME",
                        help="only connections of this process (name, shell pattern such as 'fire*', or pid)")
    parser.add_argument("--port", type=port, metavar="N", help="only connections with this local or remote port")
    parser.add_argument("--label", action="append", default=[], metavar="IFACE=NAME",
                        help="name a path, e.g. --label eth1=Starlink (repeatable)")


def run(args: argparse.Namespace) -> int:
    from mptop.commands.tty import interactive, no_terminal
    from mptop.core.watch_open import MptcpUnavailable, open_listing

    labels: dict[str, str] = {}
    if args.label:
        from mptop.core.paths import parse_labels  # the path book: not before the TUI's first frame

        try:
            labels = parse_labels(args.label)
        except ValueError as e:
            return fail("watch", str(e))
    if not args.json and not interactive():
        return no_terminal("watch", "use `mptop watch --json` (NDJSON; --count N to stop)")
    # The one check before anything is drawn; the sampler (records, trackers) comes after the TUI's
    # first frame (bench/startup.py) and takes this reader over.
    try:
        listing = open_listing()
    except MptcpUnavailable as e:
        return fail("watch", f"cannot list MPTCP connections: {e.reason}")
    except OSError as e:
        return fail("watch", f"cannot list MPTCP connections: {e.strerror or e}")
    if args.json:
        import asyncio

        from mptop.core.watch import WatchSampler
        from mptop.core.watch_filter import ConnectionFilter

        # --json filters in the sampler; the TUI filters in view (shown, and cleared with Esc).
        sampler = WatchSampler(args.interval, labels, only=ConnectionFilter(process=args.process, port=args.port))
        try:
            sampler.open(listing)
            return asyncio.run(_json_stream(sampler, args.count, sys.stdout))
        finally:
            sampler.close()
    try:
        return _tui(args, _records(args, labels, listing), _filter_text(args.process, args.port))
    finally:
        listing.close()        # the sampler closed it too, unless the TUI ended before it started


async def _records(args: argparse.Namespace, labels: dict[str, str], listing: DiagReader) -> AsyncIterator[Record]:
    """The watch sampler's records, made once the TUI has drawn its first frame."""
    from mptop.core.watch import WatchSampler

    sampler = WatchSampler(args.interval, labels)
    try:
        sampler.open(listing)
        async for record in sampler.records(args.count):
            yield record
    finally:
        sampler.close()


async def _json_stream(sampler: WatchSampler, count: int | None, out: TextIO) -> int:
    from mptop.sinks import NdjsonOut

    write = NdjsonOut(out)
    try:
        async for record in sampler.records(count):
            write(record)
            if write.reader_gone:       # `| head`: stop quietly
                break
    except OSError as e:
        return fail("watch", f"reading MPTCP connections failed: {e.strerror or e}")
    return 0


def _filter_text(process: str | None, port: int | None) -> str:
    """--process/--port as the TUI's filter box says them (``process:curl port:443``)."""
    terms = ([f"process:{process}"] if process else []) + ([f"port:{port}"] if port else [])
    return " ".join(terms)


def _tui(args: argparse.Namespace, records: AsyncIterator[Record], query: str = "") -> int:
    with ImportsWithoutCollections():
        from mptop.tui.app import MptopApp, run_app
        from mptop.tui.watch_screen import WatchScreen
    app = MptopApp(records, mode="watch", finished_text="stopped")
    app.units = args.unit
    if isinstance(app.main, WatchScreen):
        app.main.set_filter(query)
    return run_app(app, theme=args.theme)
