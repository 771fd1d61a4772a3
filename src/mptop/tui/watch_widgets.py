"""The watch screen's header and event log: the main screen's, worded and lit for ``mptop watch``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.style import Style
from rich.text import Span, Text
from textual.app import App

from mptop.tui.eventlog import EventLog
from mptop.tui.header import HostBar
from mptop.tui.style import theme_colour

if TYPE_CHECKING:
    from mptop.tui.header import Fact
    from mptop.tui.state import ViewState
    from mptop.tui.story import LogEntry

INFERRED = "events inferred (no CAP_NET_ADMIN)"
DIMMED = 0.4              # how far other connections' events fade towards the background


def faded(app: App, amount: float) -> Style:
    """The theme's muted text colour taken ``amount`` (0..1) of the way to the background."""
    colour = theme_colour(app, "foreground-darken-3", "grey50")
    return Style(color=colour.blend(theme_colour(app, "background", "black"), amount).rich_color)


class WatchHostBar(HostBar):
    """Says where subflow events come from: the path manager's netlink events (they need
    CAP_NET_ADMIN), or what changed between two polls (then an event's time is the poll's)."""

    def _host_facts(self) -> list[Fact]:
        facts = super()._host_facts()
        if self.host is not None and self.host.events == "inferred":
            facts = [(INFERRED, style) if text == "events inferred" else (text, style) for text, style in facts]
        return facts


class WatchEventLog(EventLog):
    """The event log with one connection in focus: its events as usual, other connections' events
    dimmed; events about the host, a path or an address stay lit."""

    def __init__(self, id: str | None = None) -> None:
        super().__init__(id=id)
        self.focus_token: int | None = None

    def focus_on(self, token: int | None, state: ViewState) -> None:
        if token != self.focus_token:
            self.focus_token = token
            self._version = -1            # every line is drawn again, lit or dimmed
            self.show(state)

    def _line(self, entry: LogEntry, state: ViewState) -> Text:
        line = super()._line(entry, state)
        owner = getattr(state, "owner", None)
        token = owner(entry) if owner is not None and self.focus_token is not None else None
        if token is None or token == self.focus_token:
            return line
        return Text(line.plain, spans=[Span(0, len(line.plain), faded(self.app, DIMMED))])
