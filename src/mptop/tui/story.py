"""The event log told as stories: an outage is one line that grows as it unfolds.

"Wi-Fi link down — Cellular carried 100 % — Wi-Fi back after 5.7 s (link up after 5.0 s)"

Pure Python (no Textual): the log widget renders :attr:`Narrator.entries`; a path's name is kept
as its own part so the view can paint it in that path's colour.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Literal

from mptop.core.compare import side_name
from mptop.core.model import ConnectionSummary, Event, Sample, Summary, TransferSummary, bytes_per_path
from mptop.core.safe_text import escape_controls
from mptop.tui import format as fmt

Severity = Literal["info", "good", "warn", "bad"]
Part = tuple[str, str | None]          # (text, iface to colour it by, or None)

MAX_ENTRIES = 300
_VERDICTS = ("fell back to TCP", "plain TCP")     # how the core's fallback details begin (describe_fallback)

_PHRASES: dict[str, tuple[str, Severity]] = {
    "subflow_up": ("subflow up on", "good"),
    "subflow_down": ("subflow closed on", "bad"),
    "subflow_missing": ("missing subflow on", "warn"),
    "subflow_stalled": ("subflow stalled on", "bad"),
    "subflow_recovered": ("subflow back on", "good"),
    "fallback": ("fell back to TCP", "warn"),
    "address_announced": ("peer announced", "info"),
    "address_removed": ("peer removed", "warn"),
    "transfer_failed": ("failed", "bad"),
    "transfer_note": ("note", "warn"),
    "connection_closed": ("connection closed", "info"),
    "comparison": ("MPTCP vs TCP", "good"),
}


@dataclass(slots=True)
class LogEntry:
    key: int
    t: float
    parts: list[Part]
    severity: Severity = "info"

    @property
    def text(self) -> str:
        return "".join(text for text, _ in self.parts)


@dataclass(slots=True)
class _Outage:
    """One path out of service, from the first sign (link down or stall) until traffic is back."""

    entry: LogEntry
    iface: str
    start: float
    # Every path's byte counter when the outage began: the sample before the event, unless the next
    # sample belongs to the same poll as the event (the sampler writes a poll's events just before its
    # sample) — then that one, or the bytes the failing path carried before it failed would count.
    path_bytes: dict[str, int]
    settled: bool = False
    link_down: bool = False
    stalled: bool = False
    link_up_after: float | None = None
    carried: dict[str, int] = field(default_factory=dict)   # bytes per path since the start
    now: float = 0.0


@dataclass(slots=True)
class _Stall:
    """A transfer that no path moves ("no path up"), until its bytes flow again."""

    entry: LogEntry
    transfer: int
    start: float
    why: str


class Narrator:
    """Turns events (and the samples between them) into log entries, updated in place."""

    def __init__(self, label: Callable[[str], str]) -> None:
        self._label = label
        self.entries: deque[LogEntry] = deque(maxlen=MAX_ENTRIES)
        self._next_key = 0
        self._outages: dict[str, _Outage] = {}
        self._stalls: dict[int, _Stall] = {}
        self._spans: deque[tuple[str, float, float]] = deque(maxlen=MAX_ENTRIES)   # ended outages
        self._path_bytes: dict[str, int] = {}
        self._transfer_paths: dict[int, dict[str, int]] = {}
        self._transfer_bytes: dict[int, int] = {}
        self._done: dict[int, tuple[Event, LogEntry]] = {}   # told again with the next sample's totals
        self._sides: dict[int, str] = {}      # --compare-tcp: transfer id -> "MPTCP" / "TCP"
        self.version = 0                  # bumped on every change, so views redraw only when needed

    # -- input ---------------------------------------------------------------------------------
    def on_sample(self, sample: Sample) -> None:
        self._path_bytes = {iface: p.bytes for iface, p in sample.paths.items()}
        for transfer in sample.transfers:
            if transfer.compare:
                self._sides[transfer.id] = side_name(transfer) or ""
            self._transfer_paths[transfer.id] = bytes_per_path(transfer.subflows, transfer.direction == "upload")
            self._transfer_bytes[transfer.id] = transfer.bytes
        for event, entry in self._done.values():
            entry.parts = self._transfer_done(event)
            self.version += 1
        self._done.clear()
        for outage in self._outages.values():
            outage.now = sample.t
            if not outage.settled:
                outage.settled = True
                if abs(sample.t - outage.start) < 1e-6:
                    outage.path_bytes = dict(self._path_bytes)
            outage.carried = {
                iface: count - outage.path_bytes.get(iface, count)
                for iface, count in self._path_bytes.items()
            }
            self._tell(outage)
        for stall in self._stalls.values():
            self._tell_stall(stall, sample.t)

    def on_event(self, event: Event) -> None:
        if event.kind in ("link_down", "path_stalled") and event.iface:
            self._outage_begins(event)
        elif event.kind in ("link_up", "path_recovered") and event.iface:
            self._outage_ends(event)
        elif event.kind in ("transfer_stalled", "transfer_resumed") and event.transfer is not None:
            self._transfer_stall(event, event.transfer)
        elif event.kind == "transfer_done":
            entry = self._add(event.t, self._transfer_done(event), "good")
            if event.transfer is not None:
                self._done[event.transfer] = (event, entry)
        else:
            if event.kind == "transfer_failed" and event.transfer in self._stalls:   # the stall ends with it
                stall = self._stalls.pop(event.transfer)
                self._tell_stall(stall, event.t, resumed="then it failed")   # how long: the failure's own line
            self._add(event.t, self._sentence(event), _PHRASES.get(event.kind, ("", "info"))[1])

    def _sentence(self, event: Event) -> list[Part]:
        """One line for an ordinary event: who, what, where, then the core's detail.

        The core's details are often whole sentences ("Wi-Fi subflow up: a → b"): where ours
        already says the first half, only what follows the colon is kept.
        """
        detail = escape_controls(event.detail)
        if event.kind == "scenario":                  # a step of `mptop demo`'s script
            return [("scenario · ", None), (detail, None)]
        if event.kind == "user_action":               # a key the user pressed in `mptop demo`
            return [("you · ", None), (detail, None)]
        if event.kind == "comparison":                # --compare-tcp: what happened, in words
            return [("MPTCP vs TCP · ", None), (detail, None)]
        parts: list[Part] = [(f"{self._who(event.transfer)} ", None)] if event.transfer is not None else []
        if event.kind.startswith("address_") or (event.kind == "fallback" and detail.startswith(_VERDICTS)):
            # the detail, when there is one, is the sentence ("plain TCP: MPTCP is disabled…" is no fallback)
            phrase = _PHRASES[event.kind][0]
            return parts + [(detail or f"{phrase} an address", None)]
        phrase = _PHRASES.get(event.kind, (event.kind.replace("_", " "), "info"))[0]
        parts.append((phrase, None))
        if event.kind.startswith("subflow_"):
            parts += [(" ", None), self._path(event.iface)]
        elif event.iface:
            parts += [(" (", None), self._path(event.iface), (")", None)]
        if event.kind == "subflow_missing":            # the key that re-adds it, not the shell command
            from mptop.core.missing import for_tui  # the path manager's client: not before the first frame

            detail = for_tui(detail)
        if ": " in detail and event.kind in _PHRASES:
            detail = detail.split(": ", 1)[1]
        if detail:
            parts.append((f" — {detail}", None))
        return parts

    def on_summary(self, summary: Summary) -> None:
        """The run's last line: how long, how much, and which path carried it."""
        per_path: dict[str, int] = {}
        carriers: list[TransferSummary | ConnectionSummary] = [*summary.transfers, *(summary.connections or [])]
        for carrier in carriers:
            for iface, count in carrier.path_bytes.items():
                per_path[iface] = per_path.get(iface, 0) + count
        total = sum(c.bytes for c in carriers)
        parts: list[Part] = [(f"run ended after {fmt.duration(summary.duration_s)} — {fmt.size(total)}", None)]
        carried = sum(per_path.values())
        for iface, count in sorted(per_path.items(), key=lambda kv: -kv[1]):
            if carried:
                parts += [(" · ", None), self._path(iface), (f" {fmt.percent(count / carried)}", None)]
        stopped = [t for t in summary.transfers if not t.ok and t.error == "stopped"]   # quit, --duration
        failed = [t for t in summary.transfers if not t.ok and t not in stopped]
        if stopped:
            parts.append((f" · {len(stopped)} stopped", None))
        if failed:
            parts.append((f" · {len(failed)} of {len(summary.transfers)} failed", None))
        if summary.exit_code is not None:
            parts.append((f" · exit code {summary.exit_code}", None))
        self._add(summary.duration_s, parts, "bad" if failed or summary.exit_code else "good")

    # -- outages -------------------------------------------------------------------------------
    def _outage_begins(self, event: Event) -> None:
        iface = event.iface or ""
        outage = self._outages.get(iface)
        if outage is None:
            entry = self._add(event.t, [], "warn")
            outage = _Outage(entry, iface, event.t, dict(self._path_bytes), now=event.t)
            self._outages[iface] = outage
        if event.kind == "link_down":
            outage.link_down = True
        else:
            outage.stalled = True
        self._tell(outage)

    def _outage_ends(self, event: Event) -> None:
        outage = self._outages.get(event.iface or "")
        if outage is None:
            if event.kind == "link_up":   # a link coming up that we never saw go down
                self._add(event.t, [self._path(event.iface), (" link up", None)], "good")
            return
        outage.now = event.t
        if event.kind == "link_up":
            outage.link_up_after = event.t - outage.start       # "back" only once bytes flow again
            if not outage.stalled:                              # the path carried nothing: it never stalled
                del self._outages[outage.iface]
                self._spans.append((outage.iface, outage.start, event.t))
            self._tell(outage)
            return
        del self._outages[outage.iface]
        self._spans.append((outage.iface, outage.start, event.t))
        self._tell(outage, back_after=event.t - outage.start)
        outage.entry.severity = "good"

    def _tell(self, outage: _Outage, back_after: float | None = None) -> None:
        iface = outage.iface
        parts: list[Part] = [self._path(iface), (" link down" if outage.link_down else " stalled", None)]
        over = back_after is not None or outage.iface not in self._outages
        parts += self._carriers(outage, ongoing=not over)
        if back_after is None and over:                                    # link up, no byte since
            parts.append((f" — link up after {outage.link_up_after or 0.0:.1f} s", None))
        elif back_after is None:
            parts.append((f" — for {outage.now - outage.start:.1f} s", None))
        else:
            parts += [(" — ", None), self._path(iface), (f" back after {back_after:.1f} s", None)]
            if outage.link_up_after is not None:
                parts.append((f" (link up after {outage.link_up_after:.1f} s)", None))
        if parts != outage.entry.parts:
            outage.entry.parts = parts
            self.version += 1

    def _carriers(self, outage: _Outage, ongoing: bool) -> list[Part]:
        """Who carried the bytes since the outage began (shares of the bytes actually carried).
        While it lasts, only paths that are not out themselves are "carrying"; afterwards a path
        that was out for part of the time says so."""
        total = sum(max(0, n) for n in outage.carried.values())
        others = sorted(
            ((n, i) for i, n in outage.carried.items() if i != outage.iface and n > 0), reverse=True
        )
        if ongoing:
            others = [(n, i) for n, i in others if i not in self._outages]
            if not others and len(self._outages) > 1:
                return [(" — no path carrying", None)]
        if not total:
            return []
        verb = " carrying " if ongoing else " carried "
        parts: list[Part] = []
        for index, (count, other) in enumerate(others):
            parts += [(" — " if index == 0 else ", ", None), self._path(other),
                      (f"{verb}{fmt.percent(count / total)}", None)]
            out = self._time_out(other, outage.start, outage.now)
            if not ongoing and out >= 0.05:
                parts.append((f" (itself out {out:.1f} s)", None))
        return parts

    def _time_out(self, iface: str, start: float, end: float) -> float:
        """Seconds ``iface`` was out itself (an outage of its own) between ``start`` and ``end``."""
        spans = [(a, b) for i, a, b in self._spans if i == iface]
        if iface in self._outages:
            spans.append((self._outages[iface].start, end))
        return sum(max(0.0, min(b, end) - max(a, start)) for a, b in spans)

    # -- transfer stalls -----------------------------------------------------------------------
    def _transfer_stall(self, event: Event, transfer: int) -> None:
        stall = self._stalls.get(transfer)
        if event.kind == "transfer_stalled" and stall is None:
            why = event.detail.split(" — ", 1)[1] if " — " in event.detail else ""
            stall = self._stalls[transfer] = _Stall(self._add(event.t, [], "bad"), transfer, event.t, why)
            self._tell_stall(stall, event.t)
        elif event.kind == "transfer_resumed" and stall is not None:
            del self._stalls[transfer]
            self._tell_stall(stall, event.t, resumed=event.detail or "resumed")
            stall.entry.severity = "good"

    def _tell_stall(self, stall: _Stall, now: float, resumed: str | None = None) -> None:
        """"#1 stalled — no path up (10.0 s)", then "#1 stalled — no path up — resumed after 10.3 s"
        (the core's detail: measured from the last byte)."""
        why = f" — {stall.why}" if stall.why else ""
        tail = f" — {resumed}" if resumed else f" ({now - stall.start:.1f} s)"
        parts: list[Part] = [(f"{self._who(stall.transfer)} stalled{why}{tail}", None)]
        if parts != stall.entry.parts:
            stall.entry.parts = parts
            self.version += 1

    # -- helpers -------------------------------------------------------------------------------
    def _transfer_done(self, event: Event) -> list[Part]:
        parts: list[Part] = [(f"{self._who(event.transfer)} done", None)]
        per_path = self._transfer_paths.get(event.transfer or -1)
        if not per_path:
            return parts + ([(f" — {escape_controls(event.detail)}", None)] if event.detail else [])
        parts.append((f" — {fmt.size(self._transfer_bytes.get(event.transfer or -1, 0))}", None))
        total = sum(per_path.values()) or 1
        for iface, count in sorted(per_path.items(), key=lambda kv: -kv[1]):
            parts += [(" · ", None), self._path(iface), (f" {fmt.percent(count / total)}", None)]
        return parts

    def _who(self, transfer: int | None) -> str:
        """``#2``, or ``#2 TCP`` for a side of a --compare-tcp run (both fetch the same URL)."""
        side = self._sides.get(transfer or -1)
        return f"#{transfer} {side}" if side else f"#{transfer}"

    def _path(self, iface: str | None) -> Part:
        return (self._label(iface), iface) if iface else ("?", None)

    def _add(self, t: float, parts: list[Part], severity: Severity) -> LogEntry:
        entry = LogEntry(self._next_key, t, parts, severity)
        self._next_key += 1
        self.entries.append(entry)
        self.version += 1
        return entry
