"""Two-line cards for the top list: a transfer (``mptop URL…``/demo/replay) or a connection (watch).

Cards are Rich renderables laid out at render time, so they fit whatever width the list has:

    #1 192.0.2.1/bytes/200000000                                   MPTCP · 2 subflows
       ━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━╸━━━━━━━━━━━   45 %   90.0 MB / 200 MB   48.2 Mbit/s   ETA 0:23
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.console import Console, ConsoleOptions, RenderResult
from rich.style import Style
from rich.text import Text

from mptop.core.model import ConnectionSample, TransferSample, bytes_per_path
from mptop.core.safe_text import escape_controls
from mptop.tui import format as fmt
from mptop.tui.chart import RateChart
from mptop.tui.format import Units
from mptop.tui.watch_state import SPARK_S

INDENT = 3


@dataclass(slots=True)
class CardStyles:
    """Resolved colours (from the theme and the path slots) a card needs to draw itself."""

    badge: Style
    dim: Style
    track: Style
    error: Style
    path: dict[str, Style]            # iface -> colour
    spark: Style = Style()            # watch cards' rate history


def split_bar(width: int, fraction: float, per_path: dict[str, int], styles: CardStyles, glyph: str = "━") -> Text:
    """A progress bar whose filled part is split by path in proportion to the bytes each carried.

    With an unknown size the whole bar is that split, drawn dashed (``glyph="┅"``).
    """
    bar = Text()
    filled = max(0, min(width, round(fraction * width)))
    total = sum(per_path.values())
    used = 0
    paths = sorted(per_path.items(), key=lambda kv: -kv[1])
    for index, (iface, count) in enumerate(paths):
        cells = filled - used if index == len(paths) - 1 else round(filled * count / total) if total else 0
        cells = max(0, min(cells, filled - used))
        bar.append(glyph * cells, styles.path.get(iface, styles.dim))
        used += cells
    if used < filled:                      # bytes not yet attributed to a subflow
        bar.append(glyph * (filled - used), styles.dim)
    if filled < width:
        bar.append("╺" + "━" * (width - filled - 1), styles.track)
    return bar


URL_MIN = 30      # below this much room for the URL, the badge takes its short form


def _title_line(prefix: str, title: str, badge: str, width: int, styles: CardStyles) -> Text:
    badge = fmt.clip(badge, max(12, width - len(prefix) - 12))
    room = width - len(prefix) - len(badge) - 3
    line = Text.assemble((prefix, Style(bold=True)))
    line.append(fmt.short_url(title, max(4, room)), Style(bold=True))
    line.append(" " * max(1, width - line.cell_len - len(badge) - 2))
    line.append(f" {badge} ", styles.badge)
    line.truncate(width)
    return line


@dataclass(slots=True)
class TransferCard:
    transfer: TransferSample
    units: Units
    styles: CardStyles

    def _stats(self, width: int) -> list[tuple[str, Style]]:
        tr, dim = self.transfer, self.styles.dim
        fraction = tr.bytes / tr.total if tr.total else 0.0
        pct = fmt.percent(fraction) if tr.total else "–"
        done = fmt.size(tr.bytes) + (f" / {fmt.size(tr.total)}" if tr.total else "")
        if tr.state == "failed":
            return [(f"✗ {escape_controls(tr.error or 'failed')}", self.styles.error)]
        rate = ("↑ " if tr.direction == "upload" else "") + fmt.rate(tr.rate_bps, self.units)
        if tr.state == "done":
            end = ("✓ done", self.styles.badge)
            if tr.avg_bps is not None:      # what it averaged, not the rate of its last moments
                rate = f"avg {fmt.rate(tr.avg_bps, self.units)}"
        elif tr.state == "connecting":
            end = ("connecting…", dim)
        else:
            end = (f"ETA {fmt.duration(tr.eta_s)}", Style())
        stats = [(f"{pct:>5}", Style(bold=True)), (f"{done:>21}", Style()),
                 (f"{rate:>11}", Style(bold=True)), (f"{end[0]:>10}", end[1])]
        # narrow cards drop the byte counts first, then the ETA, to keep the bar readable
        for drop in (1, 2):
            if width - INDENT - sum(len(s) + 2 for s, _ in stats) >= 12:
                break
            stats.pop(drop if drop < len(stats) else -1)
        return stats

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width, tr = options.max_width, self.transfer
        label, _ = fmt.badge(tr)
        if width - len(label) - 8 < min(URL_MIN, len(fmt.short_url(tr.url, 999))):
            label, _ = fmt.badge(tr, short=True)
        yield _title_line(f"#{tr.id} ", tr.url, label, width, self.styles)
        stats = self._stats(width)
        bar_width = max(0, width - INDENT - sum(len(s) + 2 for s, _ in stats))
        per_path = bytes_per_path(tr.subflows, tr.direction == "upload")
        if tr.total:
            fraction = 1.0 if tr.state == "done" else tr.bytes / tr.total
            bar = split_bar(bar_width, fraction, per_path, self.styles)
        else:
            bar = split_bar(bar_width, 1.0 if any(per_path.values()) else 0.0, per_path, self.styles, glyph="┅")
        yield _bar_line(bar, stats, width)


def _bar_line(bar: Text, stats: Sequence[tuple[str | Text, Style]], width: int) -> Text:
    line = Text(" " * INDENT)
    line.append_text(bar)
    for text, style in stats:
        line.append("  ")
        line.append_text(text) if isinstance(text, Text) else line.append(text, style)
    line.truncate(width)
    return line


def process_label(conn: ConnectionSample) -> str:
    """``curl [4242]`` (``?`` when the kernel does not say which process owns the socket)."""
    return escape_controls(conn.process or "?") + (f" [{conn.pid}]" if conn.pid else "")


def _ends(conn: ConnectionSample, room: int) -> str:
    """``local → remote``; when narrow the local address goes first (its port last), as the remote
    end tells more about a connection."""
    port = conn.local.rsplit(":", 1)[-1]
    for ends in (f"{conn.local} → {conn.remote}", f":{port} → {conn.remote}", f"→ {conn.remote}"):
        if len(ends) <= room:
            return ends
    return f"→ {conn.remote}"


BAR_MIN, BAR_MAX = 6, 24            # a connection card's rate bar
SPARK_MIN, SPARK_MAX = 8, 30        # and its sparkline: one cell per second at most
PATHS_WIDTH = 26                    # the per-path rates of two paths: cards keep their columns aligned


@dataclass(slots=True)
class ConnectionCard:
    """A connection seen by ``mptop watch``::

        curl [4242]  192.0.2.2:43034 → 192.0.2.1:80                                        MPTCP · 2 subflows
           ━━━━━━━━━━╺━━━━━━  ▂▃▅▆▅▇█▆▅ ↓ 15.4 Mbit/s ↑ 120 kbit/s  ● 11.2 Mbit/s ● 4.2 Mbit/s   17.2 MiB  age 5.0 s

    The bar is its rate (both directions) against the busiest connection's, split by path; the
    sparkline its rate over the last ``spark_window`` seconds (``history``), on ``spark_scale`` shared
    by every card; then what it receives (↓) and sends (↑, acknowledged), and the rate per path.
    A ``closed`` connection keeps its card (the caller fades ``styles``) for a while.
    """

    connection: ConnectionSample
    units: Units
    styles: CardStyles
    peak_bps: float = 0.0
    history: tuple[tuple[float, float], ...] = ()
    now: float = 0.0
    spark_window: float = SPARK_S
    spark_scale: float = 0.0
    closed: bool = False

    def _path_rates(self) -> Text:
        """``● 11.2 Mbit/s ● 4.2 Mbit/s`` in path colours; ``● Wi-Fi`` for a connection on one path."""
        rates: dict[str, tuple[str, float]] = {}
        for sub in self.connection.subflows:
            if not sub.closed:
                label, rate = rates.get(sub.iface, (sub.path, 0.0))
                rates[sub.iface] = (label, rate + sub.rate_bps)
        text = Text()
        for iface, (label, rate) in rates.items():
            style = self.styles.path.get(iface, self.styles.dim)
            text.append(" " if text else "")
            text.append("● ", style)
            text.append(label if len(rates) == 1 or self.closed else fmt.rate(rate, self.units), style)
        text.pad_right(PATHS_WIDTH - text.cell_len)
        return text

    def _sparkline(self, console: Console, options: ConsoleOptions, width: int) -> Text:
        chart = RateChart(self.history, now=self.now, window=self.spark_window, scale=self.spark_scale or 1.0,
                          style=self.styles.spark, baseline=self.styles.track, height=1)
        line = Text()
        for segment in console.render(chart, options.update(width=width, height=1)):
            if segment.text != "\n":
                line.append(segment.text, segment.style)
        return line

    def _layout(self, width: int) -> tuple[int, int, list[tuple[str | Text, Style]]]:
        """(bar width, sparkline width, stats) for ``width`` cells: narrow cards drop the per-path
        rates, then the sparkline, the age and the bytes, in that order."""
        conn = self.connection
        stats: dict[str, tuple[str | Text, Style]] = {}
        if self.closed:
            stats["rate"] = (f"{'closed':>11}", Style(bold=True))
        elif not conn.rx_bps and not conn.tx_bps and conn.rate_bps:     # a recording older than directions
            stats["rate"] = (f"{fmt.rate(conn.rate_bps, self.units):>11}", Style(bold=True))
        else:
            stats["down"] = (f"↓{fmt.rate(conn.rx_bps, self.units):>12}", Style(bold=conn.rx_bps >= conn.tx_bps))
            stats["up"] = (f"↑{fmt.rate(conn.tx_bps, self.units):>12}", Style(bold=conn.tx_bps > conn.rx_bps))
        stats |= {
            "paths": (self._path_rates(), Style()),
            "bytes": (f"{fmt.size(conn.bytes):>9}", Style()),
            "age": (f"age {fmt.duration(conn.age_s):>7}", self.styles.dim),
        }
        spark = SPARK_MIN if self.history else 0

        def free() -> int:
            return width - INDENT - BAR_MIN - (spark + 2 if spark else 0) - sum(len(t) + 2 for t, _ in stats.values())

        for drop in ("paths", "spark", "age", "bytes"):
            if free() >= 0:
                break
            if drop == "spark":
                spark = 0
            else:
                stats.pop(drop)
        extra = max(0, free())
        bar = BAR_MIN + min(BAR_MAX - BAR_MIN, extra // 2 if spark else extra)
        if spark:
            spark += min(SPARK_MAX - SPARK_MIN, extra - (bar - BAR_MIN))
        return bar, spark, list(stats.values())

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width, conn = options.max_width, self.connection
        # short form: watch sees other programs' sockets and cannot tell why one is not MPTCP
        label, _ = fmt.badge(TransferSample(0, "", 0, None, 0.0, conn.status, subflows=conn.subflows), short=True)
        label = "closed" if self.closed else label
        prefix = f"{process_label(conn)}  "
        yield _title_line(prefix, _ends(conn, width - len(prefix) - len(label) - 3), label, width, self.styles)
        bar_width, spark, stats = self._layout(width)
        fraction = 0.0 if self.closed or self.peak_bps <= 0 else conn.rate_bps / self.peak_bps
        rates = {s.iface: int(s.rate_bps) for s in conn.subflows if not s.closed}
        bar = split_bar(bar_width, fraction, rates, self.styles)
        if spark:
            bar.append("  ")
            bar.append_text(self._sparkline(console, options, spark))
        yield _bar_line(bar, stats, width)
