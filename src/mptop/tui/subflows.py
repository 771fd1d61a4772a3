"""Subflows of the selected transfer (or connection): a DataTable with keyed rows.

Updates go through ``update_cell`` (only cells whose text changed), rows are added and removed by
key, so scroll position survives every sample.  Columns have fixed widths (numbers do not make
the layout jump) and the least useful ones are left out when the table is narrow.  An upload's
table has the sender's columns (:data:`UPLOAD_COLUMNS`): acknowledged bytes, congestion window and
retransmitted bytes, and the RTT is the sender's (tcpi_rtt).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from rich.style import Style
from rich.text import Text
from textual.widgets import DataTable

from mptop.tui import format as fmt
from mptop.tui.style import muted, path_style

if TYPE_CHECKING:
    from mptop.core.model import SubflowSample
    from mptop.tui.format import Units


@dataclass(frozen=True, slots=True)
class Col:
    key: str
    label: str
    width: int
    priority: int                     # 0 = always shown; higher ones go first when space is short
    justify: Literal["left", "right"] = "right"


COLUMNS = (
    Col("id", "id", 2, 0),
    Col("path", "path", 10, 0, "left"),
    Col("ends", "local → remote", 36, 3, "left"),
    Col("rate", "rate", 11, 0),
    Col("share", "share", 5, 0),
    Col("rtt", "RTT", 8, 1),
    Col("recv", "received", 8, 4),     # what a receiver's subflow did (cwnd/retx of a download never move)
    Col("sent", "sent", 8, 5),         # sent and acknowledged (tcpi_bytes_acked)
    Col("flags", "flags", 11, 2, "left"),
    Col("age", "age", 5, 6),
)
UPLOAD_COLUMNS = (                    # a sender's: cwnd and resent bytes before the share (the Paths panel has it)
    *COLUMNS[:4],
    Col("share", "share", 5, 5),
    COLUMNS[5],
    Col("sent", "sent", 8, 3),
    Col("cwnd", "cwnd", 5, 4),
    Col("retx", "resent", 8, 3),       # tcpi_bytes_retrans: bytes this subflow had to send again
    Col("recv", "received", 8, 7),
    *COLUMNS[8:],
)
PADDING = 1                          # DataTable cell_padding, on each side of every cell


def fit_columns(width: int, columns: tuple[Col, ...] = COLUMNS) -> tuple[Col, ...]:
    """The columns that fit in ``width`` cells, most important first, in display order."""
    chosen: set[str] = set()
    used = 0
    for col in sorted(columns, key=lambda c: c.priority):
        need = col.width + 2 * PADDING
        if col.priority == 0 or used + need <= width:   # a wide column skipped, narrower ones may fit
            chosen.add(col.key)
            used += need
    return tuple(c for c in columns if c.key in chosen)


def _same(a: Text, b: Text) -> bool:
    # Text equality ignores the base style (a closed subflow turns dim without changing its text)
    return a.plain == b.plain and a.style == b.style and a.spans == b.spans


class SubflowsTable(DataTable[Text]):
    DEFAULT_CSS = """
    SubflowsTable { height: auto; max-height: 10; background: transparent; }
    SubflowsTable > .datatable--header { text-style: bold; color: $text-muted; background: transparent; }
    """

    def __init__(self, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="none", zebra_stripes=True, cell_padding=PADDING)
        self.can_focus = False           # ↑/↓ always select transfers; the wheel still scrolls this
        self._columns: tuple[Col, ...] = ()
        self._cells: dict[str, dict[str, Text]] = {}
        self._last: tuple[list[SubflowSample], str, dict[str, int], Units, bool, bool] | None = None
        self._upload = False

    def on_resize(self) -> None:
        columns = fit_columns(self.size.width, UPLOAD_COLUMNS if self._upload else COLUMNS)
        if columns != self._columns:
            # A different column set is a different table: rebuild once, then resume keyed updates.
            self._columns = columns
            self.clear(columns=True)
            self._cells.clear()
            for col in columns:
                self.add_column(Text(col.label, justify=col.justify), width=col.width, key=col.key)
            if self._last is not None:
                self.show(*self._last)

    def _row(self, sub: SubflowSample, total_rate: float, slot: int, units: Units, plain: bool) -> dict[str, Text]:
        style = muted(self.app) if sub.closed else Style()
        share = sub.rate_bps / total_rate if total_rate > 0 else 0.0
        cells = {
            "id": str(sub.id),
            "ends": f"{sub.local} → {sub.remote}",
            "rate": fmt.rate(sub.rate_bps, units),
            "share": fmt.percent(share),
            "rtt": fmt.rtt(None if sub.closed else sub.rtt_ms),
            "recv": fmt.size(sub.bytes_received),
            "sent": fmt.size(sub.bytes_acked),
            "cwnd": "—" if sub.cwnd is None else str(sub.cwnd),
            "retx": "—" if sub.bytes_retrans is None else fmt.size(sub.bytes_retrans),
            "flags": "plain TCP" if plain else fmt.subflow_flags(sub),
            "age": fmt.duration(sub.age_s),
        }
        out = {key: Text(fmt.clip(value, self._width(key)), style) for key, value in cells.items()}
        out["path"] = Text.assemble(("● ", path_style(slot)), (sub.path, path_style(slot) if not sub.closed else style))
        for col in UPLOAD_COLUMNS:
            out[col.key].justify = col.justify
            out[col.key].no_wrap = True
        return out

    @staticmethod
    def _width(key: str) -> int:
        return next(c.width for c in UPLOAD_COLUMNS if c.key == key)

    def show(
        self, subflows: list[SubflowSample], owner: str, slots: dict[str, int], units: Units, plain: bool = False,
        upload: bool = False,
    ) -> None:
        """Show ``subflows`` of the transfer/connection ``owner``, keyed ``owner:id``.

        ``plain``: the owner is not MPTCP (fallback or TCP), so its one flow is a plain TCP connection.
        ``upload``: the owner sends, so the sender's columns are shown.
        """
        self._last = (subflows, owner, slots, units, plain, upload)
        if upload != self._upload:
            self._upload = upload
            self._columns = ()
            if self.size.width:
                self.on_resize()             # the other column set: rebuilt, then drawn from _last
                return
        if not self._columns:
            return                       # not laid out yet: on_resize draws it
        total = sum(s.rate_bps for s in subflows if not s.closed)
        wanted = {f"{owner}:{s.id}": s for s in subflows}
        for key in [k for k in self._cells if k not in wanted]:
            self.remove_row(key)
            del self._cells[key]
        for key, sub in wanted.items():
            row = self._row(sub, total, slots.get(sub.iface, 0), units, plain)
            shown = self._cells.get(key)
            if shown is None:
                self.add_row(*(row[c.key] for c in self._columns), key=key)
            else:
                for col in self._columns:
                    if not _same(shown[col.key], row[col.key]):
                        self.update_cell(key, col.key, row[col.key])
            self._cells[key] = row
