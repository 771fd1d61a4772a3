"""The main screen for ``mptop watch``: every MPTCP connection of the network namespace.

Keys: ``s`` sorts by rate (smoothed over a few seconds), ↓ received, ↑ sent, bytes or age; ``/`` opens the filter
(:mod:`mptop.tui.watch_query`), which applies as one types; Enter keeps it, Escape clears it.
The selected connection's subflows fill the subflows table and its events stay lit in the event
log (other connections' are dimmed).  A closed connection's card fades out where it was.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from rich.text import Text
from textual.binding import Binding
from textual.widgets import Input

from mptop.tui import format as fmt
from mptop.tui.screen import MainScreen
from mptop.tui.style import muted, theme_style
from mptop.tui.toplist import CARD_HEIGHT
from mptop.tui.watch_query import EXAMPLE, WatchQuery
from mptop.tui.watch_widgets import WatchEventLog, WatchHostBar, faded

if TYPE_CHECKING:
    from mptop.tui.cards import CardStyles
    from mptop.tui.state import ViewState
    from mptop.tui.watch_state import SortKey

# The cards and the watch's view model (watch_state) draw live data: they are imported where it is drawn,
# after the first frame (bench/startup.py).

TOP_SHARE = 0.36         # of the screen's height, for the connection cards
FADE_STEPS = 3           # a closing card dims in this many steps (each one redraws it)
EMPTY = "No MPTCP connections in this network namespace yet — start one, e.g. `mptcpize run curl …`"
SORT_WORDS = {"rate": "rate ({:g} s mean)", "down": "↓ received", "up": "↑ sent", "bytes": "bytes",
              "age": "age (oldest first)"}


class WatchScreen(MainScreen):
    HEADER = WatchHostBar
    EVENT_LOG = WatchEventLog
    DEFAULT_CSS = """
    WatchScreen #filter { border: none; height: 1; padding: 0 1; margin: 0 1; background: $boost; }
    WatchScreen #filter.-bad { color: $text-warning; }
    """
    BINDINGS = [
        Binding("s", "sort", "Sort", tooltip="sort the connections by rate, ↓ received, ↑ sent, bytes or age"),
        Binding("slash", "filter", "Filter", key_display="/",
                tooltip=f"filter the connections: {EXAMPLE}; Enter keeps it, Esc clears it"),
        Binding("escape", "clear_filter", "Clear filter", show=False),
    ]

    def __init__(self, clock: bool = True) -> None:
        super().__init__("watch", clock)
        self.sort_key: SortKey = "rate"
        self.watch_query = WatchQuery()
        self._filter_box: Input | None = None

    def on_mount(self) -> None:        # after MainScreen.on_mount (Textual calls both)
        if self.watch_query.text:      # --process/--port: the first frame shows the filter
            self.filter_box()
        else:                          # hidden until `/`: an Input is ~3 ms of start-up (bench/startup.py)
            self.call_after_refresh(self.filter_box)
        self._fit_top()

    def filter_box(self) -> Input:
        """The filter's input box, mounted at first use above the list; hidden while the filter is empty."""
        if self._filter_box is None:
            box = Input(self.watch_query.text, placeholder=EXAMPLE, id="filter", select_on_focus=False)
            box.display = bool(self.watch_query.text)
            box.set_class(self.watch_query.error is not None, "-bad")
            self._filter_box = box
            self.query_one("#top-panel").mount(box, before=self.top)
            self._fit_top()
        return self._filter_box

    def on_resize(self) -> None:       # after MainScreen.on_resize
        self._fit_top()

    def _fit_top(self) -> None:
        """The list takes ~a third of the screen (the watch's main panel), the filter a line more."""
        rows = max(2 * CARD_HEIGHT, int(self.size.height * TOP_SHARE) // CARD_HEIGHT * CARD_HEIGHT)
        self.top.styles.max_height = rows
        shown = self._filter_box is not None and self._filter_box.display
        self.query_one("#top-panel").styles.max_height = rows + 2 + int(shown)

    # -- keys ----------------------------------------------------------------------------------
    def action_sort(self) -> None:
        from mptop.tui.watch_state import SORT_CYCLE

        self.sort_key = SORT_CYCLE[(SORT_CYCLE.index(self.sort_key) + 1) % len(SORT_CYCLE)]
        self._redraw()

    def action_filter(self) -> None:
        box = self.filter_box()
        box.display = True
        self._fit_top()
        box.focus()

    def action_clear_filter(self) -> None:
        box = self.filter_box()
        box.value = ""                    # Input.Changed applies it
        box.display = False
        self._fit_top()
        self.top.focus()
        self.set_filter("")

    def on_input_changed(self, event: Input.Changed) -> None:
        self.set_filter(event.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.input.display = bool(event.value.strip())
        self._fit_top()
        self.top.focus()

    def set_filter(self, text: str) -> None:
        """Show only the connections ``text`` matches (see :mod:`mptop.tui.watch_query`)."""
        query = WatchQuery.parse(text)
        if query != self.watch_query:
            self.watch_query = query
            if self.is_mounted:           # else the filter box is made from the query
                self.filter_box().set_class(query.error is not None, "-bad")
                self._redraw()

    def _redraw(self) -> None:
        redraw = getattr(self.app, "redraw", None)
        if redraw is not None:
            redraw()

    # -- drawing -------------------------------------------------------------------------------
    def _fading_styles(self, styles: CardStyles, closed_for: float) -> CardStyles:
        """``styles`` of a closed connection's card: every colour muted, fading more with each step."""
        from mptop.tui.watch_state import FADE_S

        step = min(FADE_STEPS, 1 + int(closed_for / FADE_S * FADE_STEPS))
        style = faded(self.app, 0.2 * step)
        return replace(styles, badge=style, dim=style, track=style, error=style,
                       spark=style, path={iface: style for iface in styles.path})

    def draw_top(self, state: ViewState, units: fmt.Units) -> None:
        from mptop.tui.cards import ConnectionCard
        from mptop.tui.watch_state import SMOOTH_S, SPARK_S, WatchState

        assert isinstance(state, WatchState)
        listing = state.rows(self.watch_query, self.sort_key)
        spark = theme_style(self.app, "foreground-darken-1", fallback="grey70")   # not a path colour
        styles = {kind: replace(s, spark=spark) for kind, s in self._card_styles(state).items()}
        rows = listing.rows
        peak = max((r.conn.rate_bps for r in rows if r.closed_for is None), default=0.0)
        window = min(SPARK_S, state.chart_window)     # a young run fills the sparklines, as the path charts
        trends = [state.trend(r.conn.token) for r in rows]
        spark_scale = max((trend.peak for trend in trends), default=0.0)
        cards = []
        for row, trend in zip(rows, trends, strict=True):
            style = styles[row.conn.status]
            if row.closed_for is not None:
                style = self._fading_styles(style, row.closed_for)
            cards.append((row.key, ConnectionCard(row.conn, units, style, peak, trend.points, state.now, window,
                                                  spark_scale, row.closed_for is not None)))
        self.top.sync(cards, empty=self._empty_text(state, listing.total))
        panel = self.query_one("#top-panel")
        count = f"{listing.shown} of {listing.total}" if not self.watch_query.empty else f"{listing.total}"
        panel.border_title = f"Connections · {count} · by {SORT_WORDS[self.sort_key].format(SMOOTH_S)}"
        panel.border_subtitle = self._filter_words()

    def _filter_words(self) -> str:
        if self.watch_query.error:
            return f"filter: {self.watch_query.error}"
        if not self.watch_query.empty:
            return f"filter {self.watch_query.text} · Esc clears"
        return "s sort · / filter"

    def _empty_text(self, state: ViewState, total: int) -> Text:
        dim = muted(self.app)
        if state.sample is None:
            return Text("waiting for the first poll…", dim)
        if total and not self.watch_query.empty:
            return Text(f"No connection matches {self.watch_query.text} ({total} hidden) — Esc clears the filter", dim)
        return Text(EMPTY, dim)

    def draw_subflows(self, state: ViewState, units: fmt.Units) -> None:
        from mptop.tui.cards import process_label
        from mptop.tui.watch_state import WatchState

        key = self.top.selected_id
        conn = state.find(int(key[1:])) if isinstance(state, WatchState) and key else None
        table = self.subflows_table()
        log = self.query_one(WatchEventLog)
        if conn is None or not isinstance(state, WatchState):
            self.query_one("#subflows-panel").border_title = "Subflows"
            table.show([], "", state.slots, units)
            log.border_subtitle = ""
            log.focus_on(None, state)
            return
        closed = conn.token in state.closed and state.connection(conn.token) is None
        title = f"Subflows of {process_label(conn)} · {conn.local} → {conn.remote}"
        if closed:
            title += " · closed"
        elif conn.status == "fallback":
            title += " · TCP fallback"
        subflows = [replace(s, rate_bps=0.0, closed=True) for s in conn.subflows] if closed else conn.subflows
        self.query_one("#subflows-panel").border_title = title
        table.show(subflows, key or "", state.slots, units, conn.status in ("fallback", "tcp"),
                   upload=conn.bytes_acked > conn.bytes_received)
        log.border_subtitle = f"{process_label(conn)} lit · other connections dimmed"
        log.focus_on(conn.token, state)
