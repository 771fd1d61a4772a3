"""The event log: one Static per story entry, keyed, so a growing outage line updates in place.

The log stays anchored to its newest line until the user scrolls up.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.style import Style
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from mptop.tui import format as fmt
from mptop.tui.style import kind_style, muted, path_style

if TYPE_CHECKING:
    from mptop.tui.state import ViewState
    from mptop.tui.story import LogEntry


class EventLog(VerticalScroll):
    DEFAULT_CSS = """
    EventLog { height: 1fr; min-height: 2; scrollbar-size-vertical: 1; }
    EventLog > Static { height: auto; padding: 0 1; }
    EventLog > .-empty { color: $text-muted; }
    """

    def __init__(self, id: str | None = None) -> None:
        super().__init__(id=id, can_focus=False)
        self._shown: dict[int, tuple[Static, Text]] = {}
        self._version = -1

    def compose(self) -> ComposeResult:
        yield Static("no events yet", classes="-empty")   # composed: an app quitting at once has nothing to mount

    def _line(self, entry: LogEntry, state: ViewState) -> Text:
        line = Text.assemble(("▍", kind_style(self.app, entry.severity)))
        for text, iface in entry.parts:
            line.append(text, path_style(state.slot(iface), bold=True) if iface else Style())
        return line

    def _row(self, entry: LogEntry, line: Text) -> Table:
        # a grid, so that a long story wraps under its text, not under the time stamp
        row = Table.grid(padding=(0, 1), expand=True)
        row.add_column(no_wrap=True)
        row.add_column(ratio=1)
        row.add_row(Text(fmt.stamp(entry.t), muted(self.app)), line)
        return row

    def show(self, state: ViewState) -> None:
        story = state.story
        if story.version == self._version:
            return
        self._version = story.version
        keys = {entry.key for entry in story.entries}
        for key in [k for k in self._shown if k not in keys]:
            self._shown.pop(key)[0].remove()
        new: list[Static] = []
        for entry in story.entries:
            line = self._line(entry, state)
            shown = self._shown.get(entry.key)
            if shown is None:
                widget = Static(self._row(entry, line))
                self._shown[entry.key] = (widget, line)
                new.append(widget)
            elif shown[1] != line:
                shown[0].update(self._row(entry, line))
                self._shown[entry.key] = (shown[0], line)
        if new:
            self.query(".-empty").remove()
            self.mount_all(new)
            if not self.is_anchored:
                self.call_after_refresh(self._anchor_when_full)

    def _anchor_when_full(self) -> None:
        # Anchoring an unfilled log would push its few lines to the bottom; wait until it scrolls.
        if self.max_scroll_y > 0:
            self.anchor()
