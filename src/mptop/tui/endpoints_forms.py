"""The Endpoints screen's dialogs: add an endpoint, set the limits, confirm a change.

Each is a small modal returning what was asked (or None when cancelled); the Endpoints screen plans
the change through :mod:`mptop.core.endpoints` and confirms it with :class:`ConfirmChange`.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, Label, Select, Static

from mptop.core.endpoints import LIMIT_MAX, SETTABLE_FLAGS, Change, Limits, LocalAddress

DIALOG_CSS = """
{name} {{ align: center middle; }}
{name} > Vertical {{
    width: 76; max-width: 100%; height: auto; max-height: 100%;
    border: round $primary; border-title-color: $text-primary; border-title-style: bold;
    background: $surface; padding: 0 1;
}}
{name} > Vertical > Horizontal {{ height: auto; margin-top: 1; }}
{name} > Vertical > Horizontal > Label {{ width: 18; }}
{name} > Vertical > Horizontal > Input, {name} > Vertical > Horizontal > Select {{ width: 1fr; }}
{name} > Vertical > Horizontal > Checkbox {{ margin-right: 2; }}
{name} .buttons {{ align-horizontal: right; margin: 1 0; }}
{name} .buttons > Button {{ margin-left: 2; }}
{name} .command {{ margin-top: 1; color: $text-muted; }}
"""


@dataclass(frozen=True, slots=True)
class AddRequest:
    address: str
    interface: str | None
    flags: tuple[str, ...]


def add_preview(request: AddRequest) -> str:
    dev = f" dev {request.interface}" if request.interface else ""
    return f"ip mptcp endpoint add {request.address or 'ADDRESS'}{dev} {' '.join(request.flags)}".rstrip()


class AddEndpointForm(ModalScreen[AddRequest | None]):
    """Address (picked from the host's or typed), interface, flags."""

    DEFAULT_CSS = DIALOG_CSS.format(name="AddEndpointForm")
    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(self, addresses: tuple[LocalAddress, ...], interfaces: tuple[str, ...]) -> None:
        super().__init__()
        self.addresses = addresses
        self.interfaces = interfaces

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = "Add an MPTCP endpoint"
            with Horizontal():
                yield Label("host address")
                yield Select([(f"{a.address}  ({a.interface})", i) for i, a in enumerate(self.addresses)],
                             prompt="pick one, or type below", id="pick", compact=True)
            with Horizontal():
                yield Label("address")
                yield Input(placeholder="e.g. 198.51.100.2", id="address", compact=True)
            with Horizontal():
                yield Label("interface")
                yield Select([(name, name) for name in self.interfaces], prompt="none (any)", id="interface",
                             compact=True)
            with Horizontal():
                yield Label("flags")
                for word in SETTABLE_FLAGS:
                    yield Checkbox(word, value=word == "subflow", id=f"flag-{word}", compact=True)
            yield Static(id="preview", classes="command")
            with Horizontal(classes="buttons"):
                yield Button("Add…", variant="primary", id="ok", compact=True)
                yield Button("Cancel", id="cancel", compact=True)

    def on_mount(self) -> None:
        self.query_one("#pick", Select).focus()
        self._preview()

    def request(self) -> AddRequest:
        interface = self.query_one("#interface", Select).value
        return AddRequest(
            address=self.query_one("#address", Input).value.strip(),
            interface=interface if isinstance(interface, str) else None,
            flags=tuple(w for w in SETTABLE_FLAGS if self.query_one(f"#flag-{w}", Checkbox).value),
        )

    @on(Select.Changed, "#pick")
    def _picked(self, event: Select.Changed) -> None:
        if isinstance(event.value, int):
            chosen = self.addresses[event.value]
            self.query_one("#address", Input).value = chosen.address
            if chosen.interface in self.interfaces:
                self.query_one("#interface", Select).value = chosen.interface

    @on(Input.Changed)
    @on(Select.Changed, "#interface")
    @on(Checkbox.Changed)
    def _preview(self) -> None:
        self.query_one("#preview", Static).update(Text(add_preview(self.request())))

    @on(Input.Submitted)
    @on(Button.Pressed, "#ok")
    def _ok(self) -> None:
        self.dismiss(self.request())

    @on(Button.Pressed, "#cancel")
    def _cancel(self) -> None:
        self.dismiss(None)


class LimitsForm(ModalScreen[Limits | None]):
    """The two limits of the in-kernel path manager, pre-filled with the current values."""

    DEFAULT_CSS = DIALOG_CSS.format(name="LimitsForm")
    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(self, current: Limits | None) -> None:
        super().__init__()
        self.current = current

    def compose(self) -> ComposeResult:
        now = self.current
        with Vertical() as box:
            box.border_title = "MPTCP limits"
            with Horizontal():
                yield Label("subflows")
                yield Input(str(now.subflows) if now else "", type="integer", id="subflows", compact=True)
            with Horizontal():
                yield Label("add_addr_accepted")
                yield Input(str(now.add_addr_accepted) if now else "", type="integer", id="add_addr_accepted",
                            compact=True)
            yield Static(Text(f"extra subflows per connection, and ADD_ADDRs accepted from the peer "
                              f"(0–{LIMIT_MAX} each)"), classes="command")
            with Horizontal(classes="buttons"):
                yield Button("Set…", variant="primary", id="ok", compact=True)
                yield Button("Cancel", id="cancel", compact=True)

    def _value(self, name: str) -> int | None:
        text = self.query_one(f"#{name}", Input).value.strip()
        return int(text) if text.lstrip("-").isdigit() else None

    @on(Input.Submitted)
    @on(Button.Pressed, "#ok")
    def _ok(self) -> None:
        subflows, accepted = self._value("subflows"), self._value("add_addr_accepted")
        if subflows is None or accepted is None:
            self.notify("both limits must be whole numbers", severity="error")
            return
        self.dismiss(Limits(subflows=subflows, add_addr_accepted=accepted))

    @on(Button.Pressed, "#cancel")
    def _cancel(self) -> None:
        self.dismiss(None)


class ConfirmChange(ModalScreen[bool]):
    """What a change does and the exact equivalent command; y/Enter applies, n/Esc cancels."""

    DEFAULT_CSS = DIALOG_CSS.format(name="ConfirmChange") + """
    ConfirmChange #command { margin-top: 1; padding: 0 1; background: $boost; color: $text; }
    """
    BINDINGS = [
        Binding("y", "dismiss(True)", "Apply"),
        Binding("n,escape", "dismiss(False)", "Cancel"),
    ]

    def __init__(self, change: Change) -> None:
        super().__init__()
        self.change = change

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = "Apply this change?"
            yield Static(Text(self.change.summary[:1].upper() + self.change.summary[1:] + "."))
            yield Static(Text(self.change.command.replace(" && ", " &&\n")), id="command")   # a step a line
            with Horizontal(classes="buttons"):
                yield Button("Apply (y)", variant="warning", id="ok", compact=True)
                yield Button("Cancel (n)", id="cancel", compact=True)

    def on_mount(self) -> None:
        self.query_one("#ok", Button).focus()

    @on(Button.Pressed, "#ok")
    def _ok(self) -> None:
        self.dismiss(True)

    @on(Button.Pressed, "#cancel")
    def _cancel(self) -> None:
        self.dismiss(False)
