"""The top list: one two-line card per transfer (or per connection in watch mode), keyed by id.

↑/↓, page keys and the mouse highlight a card; the subflows table below follows it.  A line-API
scroll view: only the visible cards are rendered, and a card is rendered again only when its
data, the width or the highlight changed, so `mptop watch` with hundreds of connections stays
cheap (an OptionList measures every option again whenever one prompt changes).  With no card,
the list shows the ``empty`` text it was given (why it is empty, what to do).
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import RenderableType
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding
from textual.geometry import Region, Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

CARD_HEIGHT = 2
EMPTY_HEIGHT = 2          # lines for the empty text (it wraps in narrow terminals)


class TopList(ScrollView, can_focus=True):
    DEFAULT_CSS = """
    TopList { height: auto; max-height: 12; background: transparent; padding: 0 1; }
    TopList > .toplist--highlight { background: $primary 12%; }
    TopList:focus > .toplist--highlight { background: $primary 25%; }
    """
    COMPONENT_CLASSES = {"toplist--highlight"}
    BINDINGS = [
        Binding("up", "cursor(-1)", "Select", key_display="↑↓",
                tooltip="select a transfer (or connection): its subflows show below"),
        Binding("down", "cursor(1)", "Select", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home", "jump(0)", "First", show=False),
        Binding("end", "jump(-1)", "Last", show=False),
    ]

    highlighted: reactive[int | None] = reactive(None)

    class Highlighted(Message):
        def __init__(self, key: str | None) -> None:
            super().__init__()
            self.key = key

    def __init__(self, id: str | None = None) -> None:
        super().__init__(id=id)
        self.keys: list[str] = []
        self._cards: dict[str, RenderableType] = {}
        self._rendered: dict[str, tuple[int, bool, list[Strip]]] = {}   # key -> (width, highlighted, strips)
        self.empty: RenderableType | None = None
        self._empty_strips: tuple[int, list[Strip]] | None = None      # (width, strips)

    # -- data ----------------------------------------------------------------------------------
    def sync(self, cards: Sequence[tuple[str, RenderableType]], empty: RenderableType | None = None) -> None:
        """Make the list match ``cards`` (key, card), in that order; the highlight follows its key.
        ``empty``: what to show when there is no card.

        Cards are compared by value (they are dataclasses), so an unchanged card is not redrawn.
        """
        selected = self.selected_id
        keys = [key for key, _ in cards]
        if keys != self.keys or empty != self.empty:
            self.keys, self.empty, self._empty_strips = keys, empty, None
            self.virtual_size = Size(self.size.width, self._height())
            self._rendered = {k: v for k, v in self._rendered.items() if k in set(keys)}
            self.refresh(layout=True)
        changed = False
        for key, card in cards:
            if self._cards.get(key) != card:
                self._cards[key] = card
                self._rendered.pop(key, None)
                changed = True
        if changed:
            self.refresh()
        self._cards = {key: self._cards[key] for key in keys}
        if selected in self._cards:
            self.highlighted = keys.index(selected)
        elif keys:
            self.highlighted = min(self.highlighted or 0, len(keys) - 1)
        else:
            self.highlighted = None

    @property
    def selected_id(self) -> str | None:
        index = self.highlighted
        return self.keys[index] if index is not None and index < len(self.keys) else None

    def _height(self) -> int:
        return CARD_HEIGHT * len(self.keys) or (EMPTY_HEIGHT if self.empty is not None else 0)

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return self._height()

    # -- selection -----------------------------------------------------------------------------
    def validate_highlighted(self, index: int | None) -> int | None:
        if index is None or not self.keys:
            return None
        return max(0, min(len(self.keys) - 1, index))

    def watch_highlighted(self, old: int | None, new: int | None) -> None:
        for index in (old, new):
            if index is not None and index < len(self.keys):
                self._rendered.pop(self.keys[index], None)
        if new is not None:
            self.scroll_to_region(self._card_region(new), animate=False)
        self.refresh()
        self.post_message(self.Highlighted(self.selected_id))

    def _card_region(self, index: int) -> Region:
        return Region(0, index * CARD_HEIGHT, self.size.width, CARD_HEIGHT)

    def move(self, delta: int) -> None:
        self.action_cursor(delta)

    def action_cursor(self, delta: int) -> None:
        self.highlighted = 0 if self.highlighted is None else self.highlighted + delta

    def action_page(self, direction: int) -> None:
        self.action_cursor(direction * max(1, self.size.height // CARD_HEIGHT))

    def action_jump(self, index: int) -> None:
        self.highlighted = index if index >= 0 else len(self.keys) - 1

    def on_click(self, event: events.Click) -> None:
        index = (event.y + int(self.scroll_y)) // CARD_HEIGHT
        if 0 <= index < len(self.keys):
            self.highlighted = index

    # -- drawing -------------------------------------------------------------------------------
    def _strips(self, index: int, width: int) -> list[Strip]:
        key = self.keys[index]
        lit = index == self.highlighted
        cached = self._rendered.get(key)
        if cached is not None and cached[:2] == (width, lit):
            return cached[2]
        base = self.rich_style + (self.get_component_rich_style("toplist--highlight") if lit else Style())
        console = self.app.console
        lines = console.render_lines(self._cards[key], console.options.update(width=width, height=CARD_HEIGHT),
                                     style=base, pad=True)
        strips = [Strip(Segment.adjust_line_length(line, width, style=base), width)
                  for line in lines[:CARD_HEIGHT]]
        strips += [Strip.blank(width, base)] * (CARD_HEIGHT - len(strips))
        self._rendered[key] = (width, lit, strips)
        return strips

    def _empty_line(self, y: int, width: int) -> Strip:
        if self._empty_strips is None or self._empty_strips[0] != width:
            console = self.app.console
            lines = console.render_lines(self.empty or "", console.options.update(width=width, height=EMPTY_HEIGHT),
                                         style=self.rich_style, pad=True)
            self._empty_strips = (width, [Strip(Segment.adjust_line_length(line, width, style=self.rich_style), width)
                                          for line in lines[:EMPTY_HEIGHT]])
        strips = self._empty_strips[1]
        return strips[y] if y < len(strips) else Strip.blank(width, self.rich_style)

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        line = y + int(self.scroll_y)
        index, offset = divmod(line, CARD_HEIGHT)
        if not self.keys and self.empty is not None and width > 0:
            return self._empty_line(y, width)
        if index >= len(self.keys) or width <= 0:
            return Strip.blank(width, self.rich_style)
        return self._strips(index, width)[offset]

    def on_resize(self) -> None:
        self.virtual_size = Size(self.size.width, self._height())
        self._rendered.clear()
        self._empty_strips = None

    def notify_style_update(self) -> None:
        # theme or focus changed: the highlight colour (and the cards' colours) change with it
        super().notify_style_update()
        self._rendered.clear()
        self._empty_strips = None
        self.refresh()

    def on_focus(self) -> None:
        self.notify_style_update()

    def on_blur(self) -> None:
        self.notify_style_update()
