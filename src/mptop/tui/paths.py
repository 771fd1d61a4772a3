"""The paths panel: one row per path (label, interface, rate, share, link state) with its rate over
the last minute, all rows on one scale, and the total.  Below ~64 columns the chart is dropped,
then the interface column."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.style import Style
from rich.table import Table
from rich.text import Text
from textual.widget import Widget

from mptop.tui import format as fmt
from mptop.tui.chart import RateChart, robust_top
from mptop.tui.style import kind_style, muted, path_style, theme_style

if TYPE_CHECKING:
    from mptop.core.model import PathSample
    from mptop.tui.format import Units
    from mptop.tui.state import ViewState

CHART_MIN_WIDTH = 64
IFACE_MIN_WIDTH = 48
EIGHTHS = " ▏▎▍▌▋▊▉█"


def share_bar(fraction: float, width: int, style: Style, track: Style) -> Text:
    """A horizontal bar in eighths of a cell: how much of the total this path carries."""
    eighths = round(max(0.0, min(1.0, fraction)) * width * 8)
    full, part = divmod(eighths, 8)
    bar = Text()
    bar.append("█" * full, style)
    if full < width:
        bar.append(EIGHTHS[part], style)
        bar.append("·" * (width - full - 1), track)
    return bar


class PathsView(Widget):
    DEFAULT_CSS = """
    PathsView { height: auto; }
    """

    def __init__(self, id: str | None = None) -> None:
        super().__init__(id=id)
        self.state: ViewState | None = None
        self.units: Units = "bits"
        self.chart_height = 1
        self._shape: tuple[int, int] = (0, 1)

    def show(self, state: ViewState, units: Units, chart_height: int = 1) -> None:
        shape = (len(state.sample.paths) if state.sample else 0, chart_height)
        reshaped, self._shape = shape != self._shape, shape
        self.state, self.units, self.chart_height = state, units, chart_height
        if reshaped:                      # a path more or taller charts: our height changes
            self.clear_cached_dimensions()
        self.refresh(layout=reshaped)

    def scale(self) -> float:
        """The top of the chart: the total rate's robust top over the window (all rows share it)."""
        state = self.state
        if state is None:
            return 1.0
        start = state.now - state.chart_window
        return robust_top([v for t, v in state.total.points if t >= start]) or 1.0

    def _state_cell(self, path: PathSample) -> Text:
        app = self.app
        if path.link_up is False:
            return Text("down", kind_style(app, "bad") + Style(bold=True))
        if path.stalled:
            return Text("stalled", kind_style(app, "warn") + Style(bold=True))
        if path.no_subflow_s is not None:      # up, has an endpoint, lost its subflow: `e` re-adds it
            return Text(f"no subflow {path.no_subflow_s:.0f}s·e", kind_style(app, "warn") + Style(bold=True))
        if path.waiting_on:               # link up, quiet while the transfer moves on another path
            return Text("waiting", muted(app))
        if path.link_up:
            return Text("up", kind_style(app, "good"))
        return Text("—", muted(app))

    def render(self) -> Table | Text:
        state = self.state
        if state is None or state.sample is None:
            return Text(" waiting for the first sample…", muted(self.app))
        if not state.sample.paths:
            return Text(" no MPTCP traffic yet", muted(self.app))
        width = self.size.width
        chart, iface_col = width >= CHART_MIN_WIDTH, width >= IFACE_MIN_WIDTH
        dim, track = muted(self.app), theme_style(self.app, "panel-lighten-2", fallback="grey30")
        table = Table.grid(padding=(0, 1), expand=True)
        table.add_column(no_wrap=True, vertical="bottom")           # ● label
        if iface_col:
            table.add_column(no_wrap=True, vertical="bottom")       # interface
        table.add_column(justify="right", no_wrap=True, min_width=11, vertical="bottom")   # rate
        table.add_column(no_wrap=True, vertical="bottom")           # share
        table.add_column(no_wrap=True, min_width=7, vertical="bottom")   # state
        if chart:
            table.add_column(ratio=1, no_wrap=True)
        scale, height = self.scale(), self.chart_height if chart else 1
        # Once every transfer ended: what each path carried in all, not the rates of the last moments.
        ended, byte_shares = state.sample.transfers_ended(), state.sample.byte_shares()
        for iface, path in state.sample.paths.items():
            colour = path_style(state.slot(iface))
            share = byte_shares[iface] if ended else path.share
            row: list[Text | RateChart] = [Text.assemble(("● ", colour), (path.label, colour + Style(bold=True)))]
            if iface_col:
                row.append(Text(iface, dim))
            row += [Text(fmt.size(path.bytes) if ended else fmt.rate(path.rate_bps, self.units), Style(bold=True)),
                    share_bar(share, 6, colour, track).append(f" {fmt.percent(share):>5}", colour),
                    self._state_cell(path)]
            if chart:
                points = state.history[iface].points if iface in state.history else []
                row.append(RateChart(points, now=state.now, window=state.chart_window, scale=scale,
                                     style=colour, baseline=track, height=height))
            table.add_row(*row)
        row = [Text("  Total", Style(bold=True)), *([Text("")] if iface_col else [])]
        paths = state.sample.paths.values()
        total = fmt.size(sum(p.bytes for p in paths)) if ended else fmt.rate(sum(p.rate_bps for p in paths), self.units)
        row += [Text(total, Style(bold=True)), Text(""), Text("")]
        if chart:
            row.append(RateChart(state.total.points, now=state.now, window=state.chart_window, scale=scale,
                                 style=dim, baseline=track, height=1))
        table.add_row(*row)
        return table
