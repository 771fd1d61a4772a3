"""Below 60×20 the panels cannot say anything true: the app says so instead, until the terminal grows."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.geometry import Size
from textual.screen import ModalScreen
from textual.widgets import Static

MIN_WIDTH, MIN_HEIGHT = 60, 20


def too_small(size: Size) -> bool:
    return size.width < MIN_WIDTH or size.height < MIN_HEIGHT


class TooSmallScreen(ModalScreen[None]):
    """Covers every screen while the terminal is below the minimum; q and Ctrl-C still quit."""

    DEFAULT_CSS = """
    TooSmallScreen { align: center middle; background: $background; }
    TooSmallScreen Static { width: 100%; text-align: center; }
    """
    BINDINGS = [Binding("q", "app.quit", "Quit")]

    def compose(self) -> ComposeResult:
        yield Static(self._words(self.app.size), id="too-small")

    def show(self, size: Size) -> None:
        if self.is_mounted:
            self.query_one(Static).update(self._words(size))

    @staticmethod
    def _words(size: Size) -> str:
        return f"terminal too small (need {MIN_WIDTH}×{MIN_HEIGHT})\nit is {size.width}×{size.height} · q quits"
