"""Per-path counters for ``mptop export``, monotonic across closed subflows and connections.

Pure (no I/O, no clock): :class:`PathLedger` is fed one sock_diag dump per scrape.  A path is the
local interface a subflow leaves from (as in ``watch``).  Each subflow, keyed by its address
pair, keeps the counters it had at the last scrape; a path's totals are the running sum of its
subflows' growth between scrapes, so a subflow that goes away leaves its bytes in them and the
totals never go down.  A subflow whose counters went back is a new socket (all its bytes count).

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
from dataclasses import dataclass, field, replace

from mptop.core.events import STALL_AFTER_S, StallWatch
from mptop.core.paths import InterfaceMap
from mptop.core.tracking import rtt_ms
from mptop.kernel.diag import TCP_LISTEN
from mptop.kernel.linktype import LinkType, by_name
from mptop.kernel.types import Address, DiagConnection, DiagSubflow

OTHER = "other"
MAX_INTERFACES = 16
RTT_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

SubflowKey = tuple[Address, Address]      # (local, remote): not the inode, 0 for every accepted subflow

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
    seen: int = 0                        # the scrape that last saw it
    reading: object = None               # the DiagSubflow last read: the decoder hands an idle one back
    rtt_bucket: int | None = None        # as it is, so its bucket and backup flag are reused
    rtt_s: float = 0.0
    backup: bool = False


@dataclass(slots=True)
class _Connection:
    subflows: dict[SubflowKey, _Subflow] = field(default_factory=dict)
    path_bytes: dict[str, int] = field(default_factory=dict)        # bytes it moved on each path
    stalls: dict[str, StallWatch] = field(default_factory=dict)
    settled: bool = False                # idle, links up at the last judgement: every StallWatch is clear
    seen: int = 0


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
        self._paths: dict[str, PathTotals] = {}  # running totals, closed subflows included
        self._connections: dict[int, _Connection] = {}
        self._stalled: set[str] = set()
        self._scrape = 0

    @property
    def names(self) -> tuple[str, ...]:
        """The interfaces that are labels of their own (at most ``max_interfaces``)."""
        return tuple(self._names)

    def path_name(self, iface: str, interfaces: InterfaceMap) -> str:
        """The label of a subflow's path: its interface, or ``other`` (see the module docstring)."""
        if iface in self._names:
            return iface
        if iface not in interfaces.link_up:
            self._paths.setdefault(OTHER, PathTotals())
            return OTHER                         # an address no interface owns (being removed)
        if len(self._names) < self.max_interfaces:
            self._names.append(iface)
            self._types[iface] = (interfaces.kinds.get(iface) or by_name(iface)).type
            self._paths[iface] = PathTotals()
            return iface
        self.folded.add(iface)
        self._paths.setdefault(OTHER, PathTotals())
        return OTHER

    def observe(self, t: float, connections: Iterable[DiagConnection], interfaces: InterfaceMap) -> list[PathView]:
        """One scrape's dump → every path seen so far, with this scrape's totals."""
        self._scrape += 1
        counts: dict[str, dict[bool, int]] = {}
        moved: dict[str, int] = {}
        for conn in connections:
            token = conn.token
            if not token or conn.state == TCP_LISTEN:
                continue
            track = self._connections.get(token)
            if track is None:
                track = self._connections[token] = _Connection()
            track.seen = self._scrape
            self._connection(t, conn, track, interfaces, counts, moved)
        for token in [k for k, c in self._connections.items() if c.seen != self._scrape]:
            for sf in self._connections.pop(token).subflows.values():
                self._paths[sf.path].subflows_closed += 1
        return self._views(counts, moved, interfaces)

    def _connection(self, t: float, conn: DiagConnection, track: _Connection, interfaces: InterfaceMap,
                    counts: dict[str, dict[bool, int]], moved: dict[str, int]) -> None:
        """Each subflow's growth since the last scrape goes into its path's running totals (a
        subflow whose counters went back is a new socket: all of its bytes are new)."""
        scrape, subflows, paths = self._scrape, track.subflows, self._paths
        deltas: dict[str, int] = {}
        busy: set[str] = set()
        for sf in conn.subflows:
            state = subflows.get((sf.local, sf.remote))
            if state is None or state.reading is not sf:
                state = self._reading(sf, state, subflows, interfaces, track, deltas)
            state.seen = scrape
            path = state.path
            if state.rtt_bucket is not None:
                totals = paths[path]
                totals.rtt_counts[state.rtt_bucket] += 1
                totals.rtt_sum_s += state.rtt_s
            by_backup = counts.get(path)
            if by_backup is None:
                by_backup = counts[path] = {False: 0, True: 0}
            by_backup[state.backup] += 1
            if not state.backup:
                busy.add(path)
        if len(subflows) > len(conn.subflows):
            for key in [k for k, sf in subflows.items() if sf.seen != scrape]:
                paths[subflows.pop(key).path].subflows_closed += 1
        for path, delta in deltas.items():
            moved[path] = moved.get(path, 0) + delta
        self._connection_stalls(t, track, deltas, busy, interfaces)

    def _reading(self, sf: DiagSubflow, state: _Subflow | None, subflows: dict[SubflowKey, _Subflow],
                 interfaces: InterfaceMap, track: _Connection, deltas: dict[str, int]) -> _Subflow:
        """A subflow that is new, or whose reading changed: its growth goes into its path's totals."""
        tcp = sf.tcp
        if tcp is None:
            rx = tx = rtx = 0
        else:
            rx, tx, rtx = tcp.bytes_received or 0, tcp.bytes_acked or 0, tcp.bytes_retrans or 0
        if state is None or rx < state.received or tx < state.sent or rtx < state.retransmitted:
            if state is not None:
                self._paths[state.path].subflows_closed += 1
            path = self.path_name(interfaces.iface_for(sf.local[0]), interfaces)
            state = subflows[sf.local, sf.remote] = _Subflow(path)
        path, totals = state.path, self._paths[state.path]
        d_rx, d_tx = rx - state.received, tx - state.sent
        totals.received += d_rx
        totals.sent += d_tx
        totals.retransmitted += rtx - state.retransmitted
        state.received, state.sent, state.retransmitted = rx, tx, rtx
        if d_rx or d_tx:
            deltas[path] = deltas.get(path, 0) + d_rx + d_tx
            track.path_bytes[path] = track.path_bytes.get(path, 0) + d_rx + d_tx
        rtt = rtt_ms(sf)  # type: ignore[arg-type]   # reads only .tcp, which DiagSubflow has
        state.rtt_bucket = None if rtt is None else bisect.bisect_left(RTT_BUCKETS_S, rtt / 1000)
        state.rtt_s = 0.0 if rtt is None else rtt / 1000
        state.reading, state.backup = sf, sf.backup
        return state

    def _connection_stalls(self, t: float, track: _Connection, deltas: dict[str, int], busy: set[str],
                           interfaces: InterfaceMap) -> None:
        """As ``watch`` judges them: the path carried this connection's data, then nothing for
        ``stall_after_s`` while the connection moved bytes elsewhere or the path's link is down.
        An idle connection with its links up whose watches are already clear is skipped (most of
        a server's connections, most of the time)."""
        link_down = {path for path in track.path_bytes if interfaces.link_up.get(path) is False}
        if not deltas and not link_down and track.settled:
            return
        track.settled = not deltas and not link_down
        moving = set(deltas)
        for path, total in track.path_bytes.items():
            watch = track.stalls.get(path)
            if watch is None:
                watch = track.stalls[path] = StallWatch(threshold_s=self._stall_after)
            watch.observe(t, total, path in busy and (bool(moving - {path}) or path in link_down))

    def _views(self, counts: dict[str, dict[bool, int]], moved: dict[str, int],
               interfaces: InterfaceMap) -> list[PathView]:
        stalled_now = {path for track in self._connections.values()
                       for path, watch in track.stalls.items() if watch.stalled}
        views = []
        for path in sorted(self._paths):
            totals = self._paths[path]
            up = interfaces.link_up.get(path)
            stalled = path in stalled_now and (moved.get(path, 0) == 0 or up is False)
            if stalled and path not in self._stalled:
                totals.stalls += 1
            views.append(PathView(path, self._types[path], replace(totals, rtt_counts=list(totals.rtt_counts)),
                                  counts.get(path, {False: 0, True: 0}), up if path != OTHER else None, stalled))
        self._stalled = {v.name for v in views if v.stalled}
        return views
