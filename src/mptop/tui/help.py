"""The ? screen: every key the current screen answers to, and what the panels show."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

PANELS = (
    ("Transfers", "progress split by the path that carried the bytes; the badge says MPTCP or why not"),
    ("Paths", "rate per interface over the last minute, all rows on one scale; share of the total"),
    ("Subflows", "the TCP subflows of the highlighted transfer: rate, RTT, bytes received and sent, flags"),
    ("Events", "path-manager events and stalls, an outage told as one line from start to recovery"),
)


class HelpScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll {
        width: 84; max-width: 100%; height: auto; max-height: 100%;
        border: round $primary; border-title-color: $text-primary; border-title-style: bold;
        background: $surface; padding: 1 2;
    }
    HelpScreen Static { width: 1fr; }
    """
    BINDINGS = [
        Binding("escape,question_mark,q", "dismiss", "Close", show=True),
    ]

    def __init__(self, keys: list[tuple[str, str]]) -> None:
        super().__init__()
        self.keys = keys

    def compose(self) -> ComposeResult:
        keys = Table.grid(padding=(0, 2))
        keys.add_column(style="bold", no_wrap=True)
        keys.add_column()
        for key, description in self.keys:
            keys.add_row(key, description)
        panels = Table.grid(padding=(0, 2))
        panels.add_column(style="bold", no_wrap=True)
        panels.add_column()
        for name, description in PANELS:
            panels.add_row(name, description)
        with VerticalScroll() as box:   # scrolls in small terminals
            box.border_title = "mptop — keys"
            yield Static(keys)
            yield Static(Text(""))
            yield Static(panels)
            yield Static(Text("\nEsc or ? closes this help.", style="dim"))
