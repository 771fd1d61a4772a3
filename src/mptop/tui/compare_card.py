"""A ``--compare-tcp`` run's two transfers as cards made to be read side by side (one above the other,
columns aligned): which side, its paths, its stalls; then its progress and how it ended::

    #1 MPTCP  ● Wi-Fi 0 bit/s  ● Cellular 9.6 Mbit/s   no stall                    MPTCP · 2 subflows
       ━━━━━━━━━━━━━━━━━━━━╸━━━━━━━━━━━━━━━━━━━━━━━━   45 %   43.0 MiB / 95.4 MiB   9.6 Mbit/s   ETA 0:23
    #2 TCP    ● Wi-Fi 0 bit/s                          stalled 12 s                          TCP only
       ━━━━━━━━━╸━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━   21 %   20.0 MiB / 95.4 MiB      0 bit/s   ETA –

TCP's one path is a path like MPTCP's: the same dot, colour and rate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from rich.console import Console, ConsoleOptions, RenderResult
from rich.style import Style
from rich.text import Text

from mptop.core.compare import SideState, path_bytes
from mptop.core.safe_text import escape_controls
from mptop.tui import format as fmt
from mptop.tui.cards import INDENT, TransferCard, _bar_line, split_bar
from mptop.tui.state import ViewState

NAME_WIDTH = 6           # "MPTCP " / "TCP   ": both sides' paths start in the same column
STALL_WIDTH = 14         # "stalled 1m02s" / "no stall": the badge column starts at the same place too
FAILED_BAR = 8           # the bar a failed side keeps beside its reason


@dataclass(slots=True)
class CompareCard:
    card: TransferCard          # the transfer, units and colours, as for any card
    side: SideState
    now: float
    paths_width: int = 0        # the widest side's paths text: both cards align their stall column

    def paths(self, short: bool = False) -> Text:
        """``● Wi-Fi 9.6 Mbit/s  ● Cellular 0 bit/s`` (live) or ``● Wi-Fi 52 %  ● Cellular 48 %`` (ended);
        ``short`` leaves the names out (the colours say which path)."""
        tr, styles = self.card.transfer, self.card.styles
        ended = tr.state in ("done", "failed")
        carried = path_bytes(tr)
        rates = self.side.path_rates()
        total = sum(carried.values())
        text = Text()
        for iface in sorted(carried):          # the same order on both cards, all along
            if ended:
                value = fmt.percent(carried[iface] / total) if total else "–"
            else:
                value = fmt.rate(rates.get(iface, 0.0), self.card.units)
            name = "" if short else f"{self.side.labels.get(iface, iface)} "
            text.append("  " if text else "")
            text.append(f"● {name}{value}", styles.path.get(iface, styles.dim))
        return text or Text("no path yet", styles.dim)

    def stall(self) -> tuple[str, Style]:
        """Stalled now (for how long), how long it stalled in all, or none."""
        styles = self.card.styles
        now = self.side.stalled_for(self.now)
        if now is not None and self.card.transfer.state == "running":
            return f"stalled {fmt.duration(now)}", styles.error
        total = self.side.stalled_total(self.now)
        if total > 0:
            return f"stalled {fmt.duration(total)}", styles.error if self.card.transfer.state == "failed" else Style()
        return "no stall", styles.dim

    def _head(self, width: int) -> Text:
        tr, styles = self.card.transfer, self.card.styles
        name = Text.assemble((f"#{tr.id} ", Style(bold=True)), (f"{self.side.name:<{NAME_WIDTH}}", Style(bold=True)))
        stall, stall_style = self.stall()
        badge = fmt.badge(tr, short=True)[0]
        for short, with_badge in ((False, True), (False, False), (True, False)):
            paths = self.paths(short)
            room = width - name.cell_len - 2 - (STALL_WIDTH + len(badge) + 3 if with_badge else len(stall))
            if paths.cell_len <= room:
                break
        column = self.paths_width if not short and self.paths_width <= room else paths.cell_len
        line = name.copy()
        line.append(" ")
        line.append_text(paths)
        line.append(" " * (max(column, paths.cell_len) - paths.cell_len + 2))
        line.append(f"{stall:<{STALL_WIDTH}}", stall_style)
        if with_badge:
            line.append(" " * max(1, width - line.cell_len - len(badge) - 2))
            line.append(f" {badge} ", styles.badge)
        line.truncate(width)
        return line

    def _stats(self, width: int) -> list[tuple[str, Style]]:
        tr, styles = self.card.transfer, self.card.styles
        if tr.state == "done":
            took = self.side.took()
            stats = self.card._stats(width)
            return stats[:-1] + [(f"✓ in {fmt.duration(took)}", styles.badge)]
        if tr.state == "failed":
            pct = fmt.percent(tr.bytes / tr.total) if tr.total else "–"
            room = max(8, width - INDENT - FAILED_BAR - 2 - 7 - 2 - 11)
            error = fmt.clip(f"✗ {escape_controls(tr.error or 'failed')}", room)
            return [(f"{pct:>5}", Style(bold=True)), (f"{fmt.size(tr.bytes):>9}", Style()), (error, styles.error)]
        return self.card._stats(width)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width, tr = options.max_width, self.card.transfer
        yield self._head(width)
        stats = self._stats(width)
        bar_width = max(0, width - INDENT - sum(len(s) + 2 for s, _ in stats))
        per_path = path_bytes(tr)
        fraction = (1.0 if tr.state == "done" else tr.bytes / tr.total) if tr.total else float(any(per_path.values()))
        bar = split_bar(bar_width, fraction, per_path, self.card.styles, glyph="━" if tr.total else "┅")
        yield _bar_line(bar, stats, width)


def compare_cards(cards: Sequence[tuple[str, TransferCard]], state: ViewState
                  ) -> list[tuple[str, CompareCard | TransferCard]]:
    """The top list's cards with the comparison's two sides drawn as :class:`CompareCard`s, aligned."""
    comparison = state.comparison
    made: dict[str, CompareCard] = {}
    for key, card in cards:
        side = card.transfer.compare
        if side is not None:
            # A copy: a card is compared with the last one drawn, so it must not change under it.
            state_now = comparison.sides[side]
            snapshot = replace(state_now, stalls=list(state_now.stalls), labels=dict(state_now.labels))
            made[key] = CompareCard(card, snapshot, comparison.now)
    widest = max((c.paths().cell_len for c in made.values()), default=0)
    for made_card in made.values():
        made_card.paths_width = widest
    return [(key, made.get(key, card)) for key, card in cards]
