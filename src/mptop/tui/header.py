"""The top bar: MPTCP on this host (from HostInfo) on the left, run status and clock on the right."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from rich.style import Style
from rich.text import Text
from textual.widget import Widget

from mptop.tui import format as fmt
from mptop.tui.style import kind_style, muted, theme_style

if TYPE_CHECKING:
    from mptop.core.model import HostInfo

Fact = tuple[str, Style]


class HostBar(Widget):
    """One line; facts that do not fit are dropped from the right of the host part."""

    DEFAULT_CSS = """
    HostBar { height: auto; background: $panel; }
    """

    def __init__(self, *, clock: bool = True, id: str | None = None) -> None:
        super().__init__(id=id)
        self.clock = clock
        self.host: HostInfo | None = None
        self.run_time: float | None = None
        self.status: list[tuple[str, str]] = []        # (text, kind) pills: paused, replay state

    def show(self, host: HostInfo | None, run_time: float | None, status: list[tuple[str, str]]) -> None:
        if (host, run_time, status) != (self.host, self.run_time, self.status):
            relayout = host != self.host or status != self.status      # may need one line more or less
            self.host, self.run_time, self.status = host, run_time, list(status)
            if relayout:
                self.clear_cached_dimensions()
            self.refresh(layout=relayout)

    def on_resize(self) -> None:
        self.clear_cached_dimensions()
        self.refresh(layout=True)

    def on_mount(self) -> None:
        if self.clock:
            self.set_interval(1.0, self.refresh)

    def _host_facts(self) -> list[Fact]:
        host, dim, app = self.host, muted(self.app), self.app
        if host is None:
            return [("waiting for host info…", dim)]
        if host.enabled:
            facts = [("MPTCP on", kind_style(app, "good") + Style(bold=True))]
        elif host.enabled is False:
            facts = [("MPTCP off", kind_style(app, "bad") + Style(bold=True))]
        else:
            facts = [("MPTCP ?", kind_style(app, "warn"))]
        plain = Style()
        facts.append((f"kernel {host.kernel}", plain))
        if host.path_manager:
            facts.append((f"pm {host.path_manager}", plain))
        if host.scheduler:
            facts.append((f"sched {host.scheduler}", plain))
        if host.subflows_limit is not None:
            facts.append((f"subflows ≤{host.subflows_limit}", plain))
        if host.add_addr_accepted_limit is not None:
            facts.append((f"add_addr ≤{host.add_addr_accepted_limit}", plain))
        facts.append((f"events {host.events}", plain if host.events == "netlink" else dim))
        return facts

    def _right(self) -> Text:
        right = Text()
        for text, kind in self.status:
            right.append(f" {text} ", kind_style(self.app, kind, pill=True))
            right.append(" ")
        if self.run_time is not None:
            right.append(f"run {fmt.duration(self.run_time)}", muted(self.app))
        if self.clock:
            right.append(f"  {datetime.now():%H:%M:%S}", Style(bold=True))
        return right

    def render(self) -> Text:
        """Line 1: brand, as many host facts as fit, status on the right; the rest on line 2."""
        width, dim = self.size.width, muted(self.app)
        right = self._right()
        brand = Text.assemble((" mptop ", theme_style(self.app, "foreground", "primary", bold=True)))
        indent = brand.cell_len + 1
        lines = [brand + Text(" "), Text(" " * indent)]
        rooms = [width - indent - right.cell_len - 1, width - indent - 1]
        row = 0
        for text, style in self._host_facts():
            while row < 2:
                sep = " · " if lines[row].cell_len > indent else ""
                if len(sep) + len(text) <= rooms[row]:
                    lines[row].append(sep, dim)
                    lines[row].append(text, style)
                    rooms[row] -= len(sep) + len(text)
                    break
                row += 1
        first = lines[0]
        first.append(" " * max(1, width - first.cell_len - right.cell_len))
        first.append_text(right)
        first.truncate(width)
        if lines[1].cell_len > indent:
            first.append("\n")
            first.append_text(lines[1])
        return first
