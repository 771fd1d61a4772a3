"""The top list: one card per transfer (or per connection in watch mode), keyed by id.

↑/↓ and the mouse highlight a card; the subflows table below follows the highlighted one.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import RenderableType
from textual.binding import Binding
from textual.widgets import OptionList
from textual.widgets.option_list import Option


class TopList(OptionList):
    DEFAULT_CSS = """
    TopList, TopList:focus { height: auto; max-height: 12; border: none; padding: 0; background: transparent; }
    TopList > .option-list--option { padding: 0 1; }
    """

    BINDINGS = [
        Binding("up", "cursor_up", "Select", key_display="↑↓", tooltip="select a transfer: its subflows show below"),
        Binding("down", "cursor_down", "Select", show=False),
    ]

    def sync(self, cards: Sequence[tuple[str, RenderableType]]) -> None:
        """Make the options match ``cards`` (id, card): replace changed prompts, add new, drop gone.

        Never clears the list, so the highlight and scroll position stay where the user left them.
        """
        wanted = {key for key, _ in cards}
        for option in list(self.options):
            if option.id not in wanted:
                self.remove_option(option.id or "")
        present = {option.id: option for option in self.options}
        for key, card in cards:
            option = present.get(key)
            if option is None:
                self.add_option(Option(card, id=key))
            elif option.prompt != card:          # cards are dataclasses: equal data, no redraw
                self.replace_option_prompt(key, card)
        if self.highlighted is None and self.option_count:
            self.highlighted = 0

    @property
    def selected_id(self) -> str | None:
        option = self.highlighted_option
        return option.id if option is not None else None

    def move(self, delta: int) -> None:
        if delta < 0:
            self.action_cursor_up()
        else:
            self.action_cursor_down()
