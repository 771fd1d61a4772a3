"""Per-path counters for ``mptop export``, monotonic across closed subflows and connections.

Pure (no I/O, no clock): :class:`PathLedger` is fed one sock_diag dump per scrape.  A path is the
local interface a subflow leaves from (as in ``watch``).  Each subflow, keyed by
``(token, local, remote)``, keeps the counters it had at the last scrape; a path's total is what
its closed subflows had at their last scrape plus what its live subflows have now.  A subflow
that went away folds its last values into its path's base, so the totals never go down.

What is lost: the bytes a subflow moved between the last scrape that saw it and its close (at
most one scrape interval of its traffic; none for a subflow that outlives the exporter's next
scrape).  The kernel keeps no per-subflow record of a closed subflow and the path-manager's
SUB_CLOSED event carries no byte counts, so nothing can recover them (docs/export.md).

Cardinality: a path label is one of at most ``max_interfaces`` interface names, given in the
order first seen and kept for the exporter's lifetime (so a path's counter series never
changes name); later interfaces, and local addresses no interface owns, count as ``other``.  A
path's ``link_type`` (:data:`mptop.kernel.linktype.LINK_TYPES`) is the one read when it was first
seen, kept for the same reason.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass, field

from mptop.core.events import STALL_AFTER_S, StallWatch
from mptop.core.paths import InterfaceMap
from mptop.core.tracking import rtt_ms
from mptop.kernel.linktype import LinkType, by_name
from mptop.kernel.types import Address, DiagConnection

OTHER = "other"
MAX_INTERFACES = 16
RTT_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
TCP_LISTEN = 10

SubflowKey = tuple[int, Address, Address]


@dataclass(slots=True)
class PathTotals:
    """One path's counters since the exporter started (bytes: TCP payload of its subflows)."""

    received: int = 0
    sent: int = 0                     # acked by the peer (tcpi_bytes_acked)
    retransmitted: int = 0
    stalls: int = 0
    subflows_closed: int = 0
    rtt_counts: list[int] = field(default_factory=lambda: [0] * (len(RTT_BUCKETS_S) + 1))
    rtt_sum_s: float = 0.0

    def rtt_cumulative(self) -> list[int]:
        out, running = [], 0
        for count in self.rtt_counts:
            running += count
            out.append(running)
        return out


@dataclass(slots=True)
class _Subflow:
    path: str
    received: int = 0
    sent: int = 0
    retransmitted: int = 0


@dataclass(slots=True)
class _Connection:
    subflows: dict[SubflowKey, _Subflow] = field(default_factory=dict)
    path_bytes: dict[str, int] = field(default_factory=dict)
    stalls: dict[str, StallWatch] = field(default_factory=dict)


@dataclass(slots=True)
class PathView:
    """A path at one scrape: totals (base + live), live subflows by backup flag, link state."""

    name: str
    link_type: LinkType
    totals: PathTotals
    subflows: dict[bool, int]
    up: bool | None
    stalled: bool


class PathLedger:
    """See the module docstring."""

    def __init__(self, max_interfaces: int = MAX_INTERFACES, stall_after_s: float = STALL_AFTER_S) -> None:
        self.max_interfaces = max_interfaces
        self.folded: set[str] = set()            # interfaces counted as "other" because of the limit
        self._stall_after = stall_after_s
        self._names: list[str] = []
        self._types: dict[str, LinkType] = {OTHER: "other"}
        self._base: dict[str, PathTotals] = {}   # closed subflows' last values (+ stalls, RTT)
        self._connections: dict[int, _Connection] = {}
        self._stalled: set[str] = set()

    @property
    def names(self) -> tuple[str, ...]:
        """The interfaces that are labels of their own (at most ``max_interfaces``)."""
        return tuple(self._names)

    def path_name(self, iface: str, interfaces: InterfaceMap) -> str:
        """The label of a subflow's path: its interface, or ``other`` (see the module docstring)."""
        if iface in self._names:
            return iface
        if iface not in interfaces.link_up:
            return OTHER                         # an address no interface owns (being removed)
        if len(self._names) < self.max_interfaces:
            self._names.append(iface)
            self._types[iface] = (interfaces.kinds.get(iface) or by_name(iface)).type
            return iface
        self.folded.add(iface)
        return OTHER

    def _totals(self, path: str) -> PathTotals:
        totals = self._base.get(path)
        if totals is None:
            totals = self._base[path] = PathTotals()
        return totals

    def observe(self, t: float, connections: Iterable[DiagConnection], interfaces: InterfaceMap) -> list[PathView]:
        """One scrape's dump → every path seen so far, with this scrape's totals."""
        live = {path: PathTotals() for path in self._base}
        counts: dict[str, dict[bool, int]] = {}
        seen: set[int] = set()
        moved: dict[str, int] = {}
        for conn in connections:
            token = conn.token
            if not token or conn.state == TCP_LISTEN:
                continue
            seen.add(token)
            track = self._connections.get(token)
            if track is None:
                track = self._connections[token] = _Connection()
            self._connection(t, token, conn, track, interfaces, live, counts, moved)
        for token in [k for k in self._connections if k not in seen]:
            for sf in self._connections.pop(token).subflows.values():
                self._fold(sf)
        return self._views(live, counts, moved, interfaces)

    def _connection(self, t: float, token: int, conn: DiagConnection, track: _Connection, interfaces: InterfaceMap,
                    live: dict[str, PathTotals], counts: dict[str, dict[bool, int]], moved: dict[str, int]) -> None:
        current: set[SubflowKey] = set()
        deltas: dict[str, int] = {}
        busy: set[str] = set()
        for sf in conn.subflows:
            key = (token, sf.local, sf.remote)
            current.add(key)
            tcp = sf.tcp
            rx = (tcp.bytes_received or 0) if tcp is not None else 0
            tx = (tcp.bytes_acked or 0) if tcp is not None else 0
            rtx = (tcp.bytes_retrans or 0) if tcp is not None else 0
            state = track.subflows.get(key)
            if state is not None and (rx < state.received or tx < state.sent or rtx < state.retransmitted):
                self._fold(track.subflows.pop(key))      # counters went back: a new socket, same addresses
                state = None
            if state is None:
                path = self.path_name(interfaces.iface_for(sf.local[0]), interfaces)
                state = track.subflows[key] = _Subflow(path)
                self._totals(path)
            delta = rx - state.received + tx - state.sent
            state.received, state.sent, state.retransmitted = rx, tx, rtx
            path_live = live.get(state.path)
            if path_live is None:
                path_live = live[state.path] = PathTotals()
            path_live.received += rx
            path_live.sent += tx
            path_live.retransmitted += rtx
            rtt = rtt_ms(sf)  # type: ignore[arg-type]   # reads only .tcp, which DiagSubflow has
            if rtt is not None:
                base = self._totals(state.path)
                base.rtt_counts[bisect.bisect_left(RTT_BUCKETS_S, rtt / 1000)] += 1
                base.rtt_sum_s += rtt / 1000
            by_backup = counts.setdefault(state.path, {False: 0, True: 0})
            by_backup[sf.backup] += 1
            deltas[state.path] = deltas.get(state.path, 0) + delta
            moved[state.path] = moved.get(state.path, 0) + delta
            track.path_bytes[state.path] = track.path_bytes.get(state.path, 0) + delta
            if not sf.backup:
                busy.add(state.path)
        for key in [k for k in track.subflows if k not in current]:
            self._fold(track.subflows.pop(key))
        self._connection_stalls(t, track, deltas, busy, interfaces)

    def _connection_stalls(self, t: float, track: _Connection, deltas: dict[str, int], busy: set[str],
                           interfaces: InterfaceMap) -> None:
        """As ``watch`` judges them: the path carried this connection's data, then nothing for
        ``stall_after_s`` while the connection moved bytes elsewhere or the path's link is down."""
        moving = {path for path, d in deltas.items() if d > 0}
        for path, total in track.path_bytes.items():
            watch = track.stalls.get(path)
            if watch is None:
                watch = track.stalls[path] = StallWatch(threshold_s=self._stall_after)
            link_down = interfaces.link_up.get(path) is False
            watch.observe(t, total, path in busy and (bool(moving - {path}) or link_down))

    def _fold(self, sf: _Subflow) -> None:
        base = self._totals(sf.path)
        base.received += sf.received
        base.sent += sf.sent
        base.retransmitted += sf.retransmitted
        base.subflows_closed += 1

    def _views(self, live: dict[str, PathTotals], counts: dict[str, dict[bool, int]], moved: dict[str, int],
               interfaces: InterfaceMap) -> list[PathView]:
        stalled_now = {path for track in self._connections.values()
                       for path, watch in track.stalls.items() if watch.stalled}
        views = []
        for path in sorted(set(live) | set(self._base)):
            base = self._totals(path)
            up = interfaces.link_up.get(path)
            stalled = path in stalled_now and (moved.get(path, 0) == 0 or up is False)
            if stalled and path not in self._stalled:
                base.stalls += 1
            extra = live.get(path, PathTotals())
            totals = PathTotals(
                received=base.received + extra.received, sent=base.sent + extra.sent,
                retransmitted=base.retransmitted + extra.retransmitted, stalls=base.stalls,
                subflows_closed=base.subflows_closed, rtt_counts=list(base.rtt_counts), rtt_sum_s=base.rtt_sum_s,
            )
            views.append(PathView(path, self._types[path], totals,
                                  counts.get(path, {False: 0, True: 0}), up if path != OTHER else None, stalled))
        self._stalled = {v.name for v in views if v.stalled}
        return views
