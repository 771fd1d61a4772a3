"""The Endpoints screen (key e): the in-kernel path manager's endpoints and limits, and changes to them.

It draws the :class:`~mptop.core.endpoints.PathManagerView` the core hands it and changes things
only through planned :class:`~mptop.core.endpoints.Change`\\ s, each confirmed with its exact
``ip mptcp …`` command first.  Kernel calls (~0.2 ms) run on the event loop's thread on purpose:
they act on the calling thread's netns, and that thread is the one the app was started in (the
lab's client netns in the demo); a worker thread could live in another namespace.
"""

from __future__ import annotations

from collections.abc import Callable

from rich.cells import cell_len
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Footer, Static

from mptop.core.endpoints import Change, EndpointError, EndpointManager, EndpointRow, Limits, PathManagerView
from mptop.tui.endpoints_forms import AddEndpointForm, AddRequest, ConfirmChange, LimitsForm
from mptop.tui.style import kind_style

WRITE_ACTIONS = {"add", "delete", "backup", "fullmesh", "limits", "readd"}
NEEDS_ROW = {"delete", "backup", "fullmesh", "readd"}
LEGEND = ("subflow: open subflows from this address · signal: announce it to the peer · backup: "
          "use only when the other paths fail · fullmesh: a subflow to every peer address · "
          "new subflow (n): re-add the endpoint, as the kernel never reopens a subflow it closed")
REFRESH_S = 2.0     # endpoints may change behind our back (ip, the demo's keys): re-read this often


class EndpointsScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    EndpointsScreen { background: $background; }
    EndpointsScreen > Vertical {
        border: round $primary; border-title-color: $text-primary; border-title-style: bold;
        border-subtitle-color: $text-muted; height: 1fr; padding: 0 1;
    }
    EndpointsScreen #pm-info { height: auto; margin-bottom: 1; }
    EndpointsScreen #pm-legend { height: auto; color: $text-muted; }
    EndpointsScreen #pm-banner { height: auto; margin-bottom: 1; }
    EndpointsScreen #pm-banner.-empty { display: none; }
    EndpointsScreen DataTable { height: 1fr; background: transparent; }
    EndpointsScreen DataTable > .datatable--header { text-style: bold; color: $text-muted; background: transparent; }
    """
    BINDINGS = [
        Binding("escape,e", "close", "Close", key_display="e/Esc"),
        Binding("a", "add", "Add", tooltip="add an endpoint"),
        Binding("d", "delete", "Delete", tooltip="delete the selected endpoint"),
        Binding("b", "backup", "Backup", tooltip="toggle backup on the selected endpoint"),
        Binding("f", "fullmesh", "Fullmesh", tooltip="toggle fullmesh on the selected endpoint"),
        Binding("n", "readd", "New subflow", tooltip="re-add the selected endpoint: a new subflow from it"),
        Binding("l", "limits", "Limits", tooltip="set the subflows / add_addr_accepted limits"),
    ]

    def __init__(self, manager: EndpointManager | None = None) -> None:
        super().__init__()
        self.manager = manager or EndpointManager()
        self.view: PathManagerView | None = None

    def compose(self) -> ComposeResult:
        with Vertical(id="pm-box") as box:
            box.border_title = "Endpoints — the MPTCP path manager"
            yield Static(id="pm-banner")
            yield Static(id="pm-info")
            table: DataTable[str | Text] = DataTable(cursor_type="row", zebra_stripes=False, id="pm-table")
            table.add_column("id", key="id")
            table.add_column("address", key="address")
            table.add_column("interface", key="interface")
            table.add_column("flags", key="flags")
            yield table
            yield Static(Text(LEGEND), id="pm-legend")
        yield Footer()

    def on_mount(self) -> None:
        self.reload()
        self.query_one(DataTable).focus()
        self.set_interval(REFRESH_S, self.reload)

    # -- drawing -------------------------------------------------------------------------------
    def reload(self) -> None:
        """Read the kernel again and redraw (keeps the selected endpoint selected)."""
        view = self.manager.snapshot()
        writable_changed = self.view is None or self.view.writable != view.writable
        self.view = view
        self._draw_banner(view)
        self._draw_info(view)
        self._draw_table(view.endpoints)
        if writable_changed:
            self.refresh_bindings()

    def _draw_banner(self, view: PathManagerView) -> None:
        banner = self.query_one("#pm-banner", Static)
        lines: list[Text] = []
        if not view.writable:
            lines.append(Text.assemble(("read-only ", kind_style(self.app, "warn", pill=True)),
                                       f" {view.why_read_only}", style=kind_style(self.app, "warn")))
        lines += [Text(f"⚠ {w}", style=kind_style(self.app, "warn")) for w in view.warnings]
        banner.update(Text("\n").join(lines))
        banner.set_class(not lines, "-empty")

    def _draw_info(self, view: PathManagerView) -> None:
        limits = view.limits
        info = Text.assemble(
            ("path manager ", "dim"), (view.path_manager or "?", "bold"),
            ("  ·  scheduler ", "dim"), (view.scheduler or "?", "bold"),
            ("\nlimits  ", "dim"), ("subflows ", "dim"), (str(limits.subflows) if limits else "?", "bold"),
            ("  ·  add_addr_accepted ", "dim"), (str(limits.add_addr_accepted) if limits else "?", "bold"),
        )
        self.query_one("#pm-info", Static).update(info)
        count = len(view.endpoints)
        subtitle = f"{count} endpoint{'s' if count != 1 else ''}" if count else "no endpoints"
        self.query_one("#pm-box").border_subtitle = subtitle

    def _draw_table(self, endpoints: tuple[EndpointRow, ...]) -> None:
        table: DataTable[str | Text] = self.query_one(DataTable)
        rows = [(str(e.id), e.address + (f" port {e.port}" if e.port else ""), e.interface or "—",
                 " ".join(e.flags) or "—") for e in endpoints]
        shown = [tuple(str(c) for c in table.get_row_at(i)) for i in range(table.row_count)]
        if rows == shown:
            return                      # unchanged: keep the cursor and avoid a redraw
        selected = self.selected
        table.clear()
        # Widths now: DataTable measures new rows only once idle, and a frame drawn before that
        # stays cached at the old widths (the address cut to "198.51." until the next change).
        for column, cells in zip(table.ordered_columns, zip(*rows, strict=True), strict=bool(rows)):
            column.content_width = max(column.content_width, *map(cell_len, cells))
        for row in rows:
            table.add_row(*row, key=row[0])
        if selected is not None and (index := next((i for i, r in enumerate(rows) if r[0] == str(selected.id)),
                                                   None)) is not None:
            table.move_cursor(row=index)
        self.refresh_bindings()

    @property
    def selected(self) -> EndpointRow | None:
        table: DataTable[str | Text] = self.query_one(DataTable)
        if self.view is None or table.row_count == 0:
            return None
        return self.view.endpoint(int(str(table.get_row_at(table.cursor_row)[0])))   # the id cell

    # -- keys ----------------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in WRITE_ACTIONS and (self.view is None or not self.view.writable):
            return False                # hidden from the footer, key ignored
        if action in NEEDS_ROW and self.is_mounted and self.selected is None:
            return None                 # shown greyed out: there is nothing to act on
        return True

    def action_close(self) -> None:
        self.dismiss(None)

    def action_add(self) -> None:
        view = self.view
        assert view is not None
        interfaces = tuple(dict.fromkeys(a.interface for a in view.addresses))
        self.app.push_screen(AddEndpointForm(view.addresses, interfaces), self._added)

    def _added(self, request: AddRequest | None) -> None:
        if request is not None:
            self._propose(lambda: self.manager.plan_add(request.address, request.interface, request.flags))

    def action_delete(self) -> None:
        if (row := self.selected) is not None:
            self._propose(lambda: self.manager.plan_delete(row.id))

    def action_backup(self) -> None:
        if (row := self.selected) is not None:
            self._propose(lambda: self.manager.plan_flags(row.id, backup=not row.backup))

    def action_fullmesh(self) -> None:
        if (row := self.selected) is not None:
            self._propose(lambda: self.manager.plan_flags(row.id, fullmesh=not row.fullmesh))

    def action_readd(self) -> None:
        if (row := self.selected) is not None:
            self._propose(lambda: self.manager.plan_readd(row.id))

    def action_limits(self) -> None:
        self.app.push_screen(LimitsForm(self.view.limits if self.view else None), self._limits_chosen)

    def _limits_chosen(self, limits: Limits | None) -> None:
        if limits is not None:
            self._propose(lambda: self.manager.plan_limits(subflows=limits.subflows,
                                                           add_addr_accepted=limits.add_addr_accepted))

    # -- plan, confirm, apply --------------------------------------------------------------------
    def _propose(self, plan: Callable[[], Change]) -> None:
        try:
            change = plan()
        except EndpointError as e:
            self.notify(str(e), severity="error", timeout=8)
            return
        self.app.push_screen(ConfirmChange(change), lambda ok: self._apply(change) if ok else None)

    def _apply(self, change: Change) -> None:
        try:
            done = change.apply()
        except EndpointError as e:
            self.notify(str(e), title="not changed", severity="error", timeout=10)
        else:
            self.notify(done, title="applied")
        self.reload()
