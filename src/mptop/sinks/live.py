"""The console view on a terminal: a live Rich display of the newest sample, and styled lines.

Imported only when stderr is a terminal (:class:`mptop.sinks.ConsoleView`): a script, a pipe or
``--json`` never loads Rich.
"""

from __future__ import annotations

from typing import IO

from rich.console import Console, Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from mptop.core.badge import badge
from mptop.core.model import Sample, TransferSample
from mptop.core.rates import RATE_LABEL
from mptop.core.safe_text import escape_controls
from mptop.core.units import format_bytes, format_duration, format_rate
from mptop.sinks import console_url, progress_text, shown_rate, transfer_name

PATH_STYLES = ("cyan", "magenta", "green", "yellow", "blue", "red")


class RichConsole:
    """Styled lines on ``stream``, and with ``live`` the newest sample redrawn 4 times a second."""

    def __init__(self, stream: IO[str], unit: str, live: bool) -> None:
        self.console = Console(file=stream, highlight=False)
        self.screen = LiveScreen(unit)
        self._live: Live | None = None
        if live:
            self._live = Live(self.screen, console=self.console, refresh_per_second=4, transient=False)
            self._live.start()

    @property
    def live(self) -> bool:
        return self._live is not None

    def show(self, sample: Sample) -> None:
        self.screen.sample = sample

    def print(self, *parts: tuple[str, str]) -> None:
        self.console.print(Text.assemble(*parts), soft_wrap=True)

    def stop(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None


class LiveScreen:
    """The Rich renderable of the newest sample."""

    def __init__(self, unit: str) -> None:
        self.unit = unit
        self.sample: Sample | None = None
        self.styles: dict[str, str] = {}

    def style_for(self, iface: str) -> str:
        return self.styles.setdefault(iface, PATH_STYLES[len(self.styles) % len(PATH_STYLES)])

    def __rich__(self) -> Group | Text:
        if self.sample is None:
            return Text("connecting…", style="dim")
        return Group(*(self._transfer(t) for t in self.sample.transfers), self._paths(self.sample))

    def _transfer(self, t: TransferSample) -> Group:
        """Two lines: the URL with its status badge, then progress, rate and ETA."""
        head = Table.grid(expand=True)
        head.add_column(ratio=1, no_wrap=True, overflow="ellipsis")
        head.add_column(no_wrap=True, overflow="ellipsis", justify="right", max_width=60)
        badge_style = {"mptcp": "bold green", "fallback": "bold yellow", "tcp": "bold red"}.get(t.status, "dim")
        head.add_row(Text(f"{transfer_name(t)} {console_url(t.url, 60)}", style="bold"),
                     Text(escape_controls(t.error) if t.error else badge(t)[0],
                          style="red" if t.error else badge_style))
        body = Table.grid(padding=(0, 1))
        body.add_row(Text("  "), ProgressBar(total=t.total or None, completed=t.bytes, width=24, pulse=not t.total),
                     Text(progress_text(t)), Text(shown_rate(t, self.unit), style="bold"),
                     Text("✓ done", style="green") if t.state == "done" else
                     Text(f"ETA {format_duration(t.eta_s)}", style="dim"))
        return Group(head, body)

    def _paths(self, sample: Sample) -> Table:
        """One row per path: its share of the rate now; once every transfer ended, its share of
        the bytes (the rates of the last moments would tell little)."""
        ended, byte_shares = sample.transfers_ended(), sample.byte_shares()
        table = Table.grid(padding=(0, 1))
        if not ended:
            table.caption, table.caption_style, table.caption_justify = f"rates {RATE_LABEL}", "dim", "left"
        for iface, p in sample.paths.items():
            style = self.style_for(iface)
            state = "" if p.link_up in (None, True) else " link down"
            state += " stalled" if p.stalled else ""
            state += f" waiting on {p.waiting_on}" if p.waiting_on and not p.stalled else ""
            share = byte_shares[iface] if ended else p.share
            table.add_row(
                Text(f"  {p.label}", style=f"bold {style}"), Text(iface, style="dim"),
                ProgressBar(total=1.0, completed=share, width=20, complete_style=style),
                Text(f"{100 * share:3.0f}%"), Text("" if ended else format_rate(p.rate_bps, self.unit)),
                Text(format_bytes(p.bytes), style="dim"), Text(state.strip(), style="red"),
            )
        return table
