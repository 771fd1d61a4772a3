"""Record sinks: everything that consumes the records of a run, outside the TUI.

A :data:`~mptop.core.model.Sink` takes one record at a time.  The ones here:

* :class:`NdjsonOut`: NDJSON on a stream, one :func:`~mptop.core.model.to_ndjson` line per record,
  flushed, so a pipe sees each as it happens.  ``get --json``, ``demo --json`` and ``watch --json``
  write it to stdout; ``--record`` (:func:`open_recording`) writes the very same lines to a file.
* :class:`ConsoleView`: `mptop get` without the TUI, on stderr (stdout stays free for ``-o -`` or
  ``--json``): a live Rich display on a terminal (:mod:`mptop.sinks.live`), plain lines (<= 1/s)
  otherwise — without importing Rich, which a script or ``--json`` never needs.
* :func:`fan_out`: one sink feeding several.

A reader of stdout that goes away (`| head -1`) is not an error of ours: the stream stops quietly,
the fd is pointed at /dev/null so nothing (Python's flush at exit included) raises again, and
``on_reader_gone`` lets the command stop its work.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from typing import IO, TYPE_CHECKING

from mptop.core.badge import badge
from mptop.core.compare import ended_verdict, pairs, side_name
from mptop.core.model import Event, Record, Sample, Sink, Summary, TransferSample, TransferSummary, to_ndjson
from mptop.core.rates import RATE_LABEL
from mptop.core.safe_text import escape_controls
from mptop.core.units import format_bytes, format_duration, format_rate

if TYPE_CHECKING:
    from mptop.sinks.live import RichConsole


def fan_out(*sinks: Sink | None) -> Sink:
    """One sink that feeds each of ``sinks`` (None: left out) in turn."""
    live = [s for s in sinks if s is not None]

    def write(record: Record) -> None:
        for sink in live:
            sink(record)
    return write


class NdjsonOut:
    """Writes each record as its NDJSON line to ``stream`` and flushes it."""

    def __init__(self, stream: IO[str], on_reader_gone: Callable[[], None] | None = None) -> None:
        self.stream = stream
        self.on_reader_gone = on_reader_gone
        self.reader_gone = False

    def __call__(self, record: Record) -> None:
        if self.reader_gone:
            return
        try:
            self.stream.write(to_ndjson(record))
            self.stream.flush()
        except BrokenPipeError:
            self.reader_gone = True
            os.dup2(os.open(os.devnull, os.O_WRONLY), self.stream.fileno())
            if self.on_reader_gone is not None:
                self.on_reader_gone()

    def close(self, summary: Summary | None = None) -> None:
        """Nothing left to write: the summary was the last record (a view's ``close`` prints it)."""


class RecordingUnwritable(Exception):
    """``--record FILE`` cannot be opened for writing; the message is one line naming the cause."""


def open_recording(path: str | None, stack: ExitStack) -> NdjsonOut | None:
    """The ``--record`` sink writing to ``path`` (closed with ``stack``), or None without a path."""
    if not path:
        return None
    try:
        fp = stack.enter_context(open(path, "w", encoding="utf-8"))
    except OSError as exc:
        raise RecordingUnwritable(f"cannot write the recording {path}: {exc.strerror}") from None
    return NdjsonOut(fp)


REINJECTED_MIN = 64 * 1024      # paths carrying this much more than the file fetched: say why


def done_line(t: TransferSummary, took: float | None) -> str:
    """A finished transfer in one line: where it went, how much, how long, per path, its hash (unless --no-hash).

    A resumed download says from where; bytes per path that add up to more than this run fetched
    are explained (MPTCP sends data again on another path after a loss or an outage: reinjection).
    """
    fetched = t.bytes - t.resumed
    resumed = f", resumed from {format_bytes(t.resumed)}" if t.resumed else ""
    paths = ", ".join(f"{k} {format_bytes(v)}" for k, v in t.path_bytes.items()) or "no path counted"
    carried = sum(t.path_bytes.values())
    extra = carried - fetched
    if extra > max(REINJECTED_MIN, 0.005 * fetched):
        paths += f"; {format_bytes(extra)} more than fetched: sent again on another path (reinjection)"
    digest = "".join(f" {name} {value}" for name, value in (("sha256", t.sha256), ("blake3", t.blake3))
                     if value is not None)     # none with --no-hash
    if t.direction == "upload":      # FILE → URL, and what the server answered
        reply = f"; the server answered: {_clip(t.reply, 200)}" if t.reply else ""
        return (f"{escape_controls(t.file or '(stdin)')} → {escape_controls(t.url)}: {format_bytes(t.bytes)} in "
                f"{format_duration(took)} ({paths}){digest}{reply}")
    where = escape_controls(t.file or "(stdout)")
    return (f"{escape_controls(t.url)} → {where}: {format_bytes(t.bytes)} in {format_duration(took)}{resumed} "
            f"({paths}){digest}")


def _clip(text: str, width: int) -> str:
    line = " ".join(escape_controls(text).split())
    return line if len(line) <= width else line[: width - 1] + "…"


def console_url(url: str, width: int = 40) -> str:
    url = escape_controls(url.split("://", 1)[-1])
    return url if len(url) <= width else "…" + url[-(width - 1):]


def progress_text(t: TransferSample) -> str:
    if t.total:
        return f"{100.0 * t.bytes / t.total:5.1f}% {format_bytes(t.bytes)}/{format_bytes(t.total)}"
    return format_bytes(t.bytes)


def shown_rate(t: TransferSample, unit: str) -> str:
    """The live rate; once done, what the transfer averaged (its last moments say little)."""
    up = "↑ " if t.direction == "upload" else ""          # an upload's rate is what it sent
    if t.state == "done" and t.avg_bps is not None:
        return f"{up}avg {format_rate(t.avg_bps, unit)}"
    return up + format_rate(t.rate_bps, unit)


def transfer_name(t: TransferSample | TransferSummary) -> str:
    """``#1``, or ``#1 MPTCP`` / ``#2 TCP`` for the two sides of a --compare-tcp run."""
    side = side_name(t)
    return f"#{t.id} {side}" if side else f"#{t.id}"


def plain_line(sample: Sample, unit: str = "bits") -> str:
    """One line per sample for logs and pipes, like wget/aria2c print when not on a terminal."""
    parts = [f"[{sample.t:6.1f}s]"]
    for t in sample.transfers:
        parts.append(f"{transfer_name(t)} {console_url(t.url, 30)} {progress_text(t)} {shown_rate(t, unit)}"
                     f" ({badge(t)[0]}; ETA {format_duration(t.eta_s)})")
    if sample.paths:
        parts.append("| " + "  ".join(f"{iface} {format_rate(p.rate_bps, unit)}" for iface, p in sample.paths.items()))
    if not sample.transfers_ended():
        parts.append(f"(rates {RATE_LABEL})")
    return " ".join(parts)


class ConsoleView:
    """The console as a sink: samples and events to the terminal; `close(summary)` prints the final lines."""

    def __init__(self, stream: IO[str], unit: str = "bits", interactive: bool | None = None) -> None:
        self.stream = stream
        terminal = _is_terminal(stream)
        self.interactive = terminal if interactive is None else interactive
        self.unit = unit
        self._last_line = time.monotonic()   # the first line after a second: a quick failure is one line
        self._sample: Sample | None = None   # the newest
        self.verdict: str | None = None      # --compare-tcp: the comparison's last word, for the end
        self._rich: RichConsole | None = None
        if terminal or self.interactive:
            # Rich only for a terminal (colours, the live display): its import is the largest part
            # of a headless get's start-up after aiohttp's (docs/measured.md "Import costs").
            from mptop.sinks.live import RichConsole

            self._rich = RichConsole(stream, unit, live=self.interactive)

    def __call__(self, record: Record) -> None:
        if isinstance(record, Sample):
            self.sample(record)
        elif isinstance(record, Event):
            self.event(record)

    def sample(self, sample: Sample) -> None:
        self._sample = sample
        if self._rich is not None and self._rich.live:
            self._rich.show(sample)
        elif time.monotonic() - self._last_line >= 1.0:
            self._last_line = time.monotonic()
            self._print((plain_line(sample, self.unit), ""))

    def event(self, event: Event) -> None:
        # A failure gets its one line from the command ("mptop: URL: cause"); a success its ✓ line at the end,
        # and so does the comparison's final word (its word when TCP fails is told as it happens).
        if event.kind == "comparison" and event.transfer is None:
            self.verdict = event.detail
        if event.kind == "transfer_failed" or (event.kind == "transfer_done" and not self.interactive) \
                or (event.kind == "comparison" and event.transfer is None):
            return
        text = f" {self._side(event)}{escape_controls(event.detail or event.kind)}"
        self._print((f"{event.t:6.1f}s", "dim"), (text, ""))

    def _side(self, event: Event) -> str:
        """``#2 TCP `` before an event of one side of a --compare-tcp run: both fetch the same URL."""
        sample = self._sample
        transfer = next((t for t in sample.transfers if t.id == event.transfer), None) if sample else None
        shown = transfer is not None and transfer.compare and event.kind != "comparison"
        return f"{transfer_name(transfer)} " if shown and transfer is not None else ""

    def close(self, summary: Summary | None = None) -> None:
        if self._rich is not None:
            self._rich.stop()
        if summary is None:
            return
        for t in summary.transfers:
            if t.ok:
                took = t.duration_s if t.duration_s is not None else summary.duration_s
                side = f"{side_name(t)} " if side_name(t) else ""
                self._print(("✓", "green"), (f" {side}{done_line(t, took)}", ""))
        if pairs(summary.transfers):
            self._print((f"MPTCP vs TCP: {escape_controls(self.verdict or ended_verdict(summary))}", ""))

    def _print(self, *parts: tuple[str, str]) -> None:
        """One line of (text, Rich style) parts: styled on a terminal, plain text otherwise."""
        if self._rich is not None:
            self._rich.print(*parts)
        else:
            self.stream.write("".join(text for text, _ in parts) + "\n")
            self.stream.flush()


def _is_terminal(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError, OSError):
        return False


def headless_view(json: bool, unit: str, on_reader_gone: Callable[[], None]) -> NdjsonOut | ConsoleView:
    """What a run without the TUI shows: NDJSON on stdout with ``--json``, else the console on stderr."""
    if json:
        return NdjsonOut(sys.stdout, on_reader_gone=on_reader_gone)
    return ConsoleView(sys.stderr, unit=unit)
