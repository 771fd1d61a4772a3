"""The main screen: host bar, transfers (or connections), paths, subflows, event log, footer.

It draws a :class:`ViewState` it is handed; the app decides which state (live or frozen) and
when.  Queries go through this screen, so drawing works while the help screen is on top.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import Footer

from mptop.tui import format as fmt
from mptop.tui.eventlog import EventLog
from mptop.tui.header import HostBar
from mptop.tui.paths import PathsView
from mptop.tui.style import kind_style, muted, path_style
from mptop.tui.toplist import TopList

if TYPE_CHECKING:
    from mptop.tui.cards import CardStyles
    from mptop.tui.state import ViewState
    from mptop.tui.subflows import SubflowsTable

Mode = Literal["transfers", "watch"]
TALL = 30          # from this many rows the path charts are two lines high
NARROW = 80        # below this many columns the footer leaves out the command palette's hint


class MainScreen(Screen[None]):
    HEADER: type[HostBar] = HostBar          # subclasses (watch) word some things their way
    EVENT_LOG: type[EventLog] = EventLog

    def __init__(self, mode: Mode = "transfers", clock: bool = True) -> None:
        super().__init__()
        self.mode: Mode = mode
        self.clock = clock
        self._subflows: SubflowsTable | None = None

    def compose(self) -> ComposeResult:
        yield self.HEADER(clock=self.clock, id="host")
        with Vertical(id="top-panel", classes="panel"):
            yield TopList(id="top")
        yield PathsView(id="paths")
        # Its table comes after the first frame (subflows_table()); an empty table shows no row anyway.
        yield Vertical(id="subflows-panel", classes="panel")
        yield self.EVENT_LOG(id="events")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#top-panel").border_title = "Connections" if self.mode == "watch" else "Transfers"
        self.query_one("#paths").border_title = "Paths"
        self.query_one("#subflows-panel").border_title = "Subflows"
        self.query_one("#events").border_title = "Events"
        self.top.focus()
        self.call_after_refresh(self._first_draw)

    def _first_draw(self) -> None:
        self.subflows_table()           # mounted now, drawn below
        # records may have arrived before this screen was mounted: draw what is there by now
        redraw = getattr(self.app, "redraw", None)
        if redraw is not None:
            redraw()

    def on_resize(self) -> None:
        # Compact (less padding) where the footer would not show every key otherwise; below 80 columns
        # the keys need the palette hint's room too (`?` and the help list ctrl+p).
        footer = self.query_one(Footer)
        footer.compact = self.size.width < getattr(self.app, "FOOTER_FULL_WIDTH", 80)
        footer.show_command_palette = self.size.width >= NARROW

    @property
    def top(self) -> TopList:
        return self.query_one(TopList)

    def subflows_table(self) -> SubflowsTable:
        """The subflows table, mounted in its panel at first use: once the first frame is drawn, as
        Textual's DataTable (its module, its CSS, its mount) is ~6 ms of start-up (bench/startup.py)."""
        if self._subflows is None:
            from mptop.tui.subflows import SubflowsTable

            self._subflows = SubflowsTable(id="subflows")
            self.query_one("#subflows-panel").mount(self._subflows)
        return self._subflows

    def _card_styles(self, state: ViewState) -> dict[str, CardStyles]:
        """Card colours per badge kind, resolved once a frame (watch mode has hundreds of cards)."""
        # The cards draw live data: loaded with the view model, after the first frame (bench/startup.py).
        from mptop.tui.cards import CardStyles

        app = self.app
        paths = {iface: path_style(slot) for iface, slot in state.slots.items()}
        return {
            kind: CardStyles(badge=kind_style(app, kind, pill=True), dim=muted(app),
                             track=kind_style(app, "info") + muted(app), error=kind_style(app, "bad"), path=paths)
            for kind in ("mptcp", "fallback", "tcp", "connecting")
        }

    def draw_header(self, live: ViewState, status: list[tuple[str, str]]) -> None:
        """The header always shows the live run (time, host), even while the panels are frozen."""
        self.query_one(HostBar).show(live.host, live.now if live.sample else None, status)

    def draw_top(self, state: ViewState, units: fmt.Units) -> None:
        from mptop.tui.cards import TransferCard
        from mptop.tui.compare_card import compare_cards

        styles = self._card_styles(state)
        cards = [(f"t{t.id}", TransferCard(t, units, styles[t.status])) for t in state.transfers]
        self.top.sync(compare_cards(cards, state) if state.comparison.active else cards)
        if state.comparison.active:
            panel = self.query_one("#top-panel")
            panel.border_title = f"MPTCP vs TCP · {fmt.short_url(state.transfers[0].url, 40)}" \
                if state.transfers else "MPTCP vs TCP"
            panel.border_subtitle = fmt.clip(state.comparison.verdict(), max(10, self.size.width - 6))

    def draw(self, state: ViewState, units: fmt.Units) -> None:
        from mptop.core.rates import RATE_LABEL  # loaded with the records by now, not for the first frame

        self.draw_top(state, units)
        paths = self.query_one(PathsView)
        paths.show(state, units, chart_height=2 if self.size.height >= TALL else 1)
        uploads = bool(state.transfers) and all(t.direction == "upload" for t in state.transfers)
        paths.border_title = "Paths · ↑ sent" if uploads else "Paths"      # the chart too: send rates
        paths.border_subtitle = (
            f"rates {RATE_LABEL} · last {state.chart_window:.0f} s · top {fmt.rate(paths.scale(), units)}"
            if state.sample and state.sample.paths else ""
        )
        self.draw_subflows(state, units)
        self.query_one(EventLog).show(state)

    def draw_subflows(self, state: ViewState, units: fmt.Units) -> None:
        key = self.top.selected_id
        subflows, title, plain, upload = [], "Subflows", False, False
        if key and key.startswith("t") and (transfer := state.transfer(int(key[1:]))):
            subflows, plain = transfer.subflows, transfer.status in ("fallback", "tcp")
            upload = transfer.direction == "upload"
            title = f"Subflows of #{transfer.id}" + (" · sending" if upload else "")
            if transfer.status != "mptcp":
                title += f" · {fmt.badge(transfer)[0]}"
        self.query_one("#subflows-panel").border_title = title
        self.subflows_table().show(subflows, key or "", state.slots, units, plain, upload)
