"""System-wide tracking for ``mptop watch``: each poll's DiagConnection list → ConnectionSamples, paths, events.

Pure (no I/O, no clock): :class:`WatchTracker` is fed ``(t, connections, interfaces)`` once per poll and
path-manager events as they arrive.  Keys:

* a connection is its token (``mptcpi_token``, unique in a netns; subflows carry it as TOKEN_LOC);
* a subflow is its ``(local, remote)`` address pair within the connection — never an id: sock_diag
  gives PM endpoint ids (shared by the subflows of one endpoint, 0 for every initial subflow), not
  the kernel's subflow ids.  The ``id`` shown is ours: 1, 2, … in the order subflows were first seen.

Rates count both directions (received + acknowledged, ``tcpi_bytes_acked``: ``tcpi_bytes_sent`` counts
retransmissions again): a watched connection may be a download or an upload; each direction is also
kept apart (``rx_bps``/``tx_bps``, ``bytes_received``/``bytes_acked``).  Connection bytes come from
``mptcpi_bytes_received + mptcpi_bytes_acked`` when the kernel fills them, else from the sum of its
subflows.  A path is the local interface a subflow leaves from; a closed
subflow's (or connection's) bytes stay in its path's totals.

Stalls are judged per (connection, path) with :class:`StallWatch`: the path carried data of that
connection and then nothing for ≥ 1 s, while the connection still moved bytes on another path or the
path's link is down.  An idle connection (no bytes anywhere, link up) never stalls.  Path-level
``path_stalled`` / ``path_recovered`` events come once per outage of the path, however many
connections it hit.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from mptop.core.events import (
    STALL_AFTER_S,
    LinkWatch,
    StallChange,
    StallWatch,
    SubflowLedger,
    describe_address,
    describe_fallback,
    describe_link,
    describe_stall,
    describe_subflow,
    fallback_reason,
)
from mptop.core.model import ConnectionSample, Event, Status, SubflowSample
from mptop.core.paths import InterfaceMap, PathBook
from mptop.core.rates import CounterRate
from mptop.core.tracking import (
    CLOSED_KEPT,
    SubflowIdentity,
    count_directions,
    direction_sample,
    format_address,
    rtt_ms,
)
from mptop.kernel.types import DiagConnection, DiagSubflow, MptcpInfo, PmEvent, PmEventKind

SubflowKey = tuple[str, str]            # (local "ip:port", remote "ip:port")
TCP_SYN_SENT, TCP_SYN_RECV = 2, 3
PM_WAIT_S = 5.0                         # an event whose connection no poll has shown yet waits this long
PM_INBOX_MAX = 4096

_PM_UP = (PmEventKind.ESTABLISHED, PmEventKind.SUB_ESTABLISHED)   # ESTABLISHED: the initial subflow


def connection_status(conn: DiagConnection) -> Status:
    """mptcp / fallback from the connection's mptcp_info; "connecting" during the handshake."""
    if conn.info is None:
        return "connecting"
    if conn.info.fallback:
        return "fallback"
    if conn.state in (TCP_SYN_SENT, TCP_SYN_RECV):
        return "connecting"
    return "mptcp"


def who(process: str | None, local: str, remote: str) -> str:
    """How events name a connection: ``curl 192.0.2.2:44866 → 192.0.2.1:80``."""
    return f"{process + ' ' if process else ''}{local} → {remote}"


@dataclass(slots=True)
class ConnectionSubflowTrack(SubflowIdentity):
    id: int = 0
    rx: CounterRate = field(default_factory=CounterRate)
    tx: CounterRate = field(default_factory=CounterRate)
    last: SubflowSample | None = None


@dataclass(slots=True)
class ConnectionTrack:
    token: int
    first_seen: float
    subflows: dict[SubflowKey, ConnectionSubflowTrack] = field(default_factory=dict)
    closed: deque[SubflowSample] = field(default_factory=lambda: deque(maxlen=CLOSED_KEPT))
    next_id: int = 1
    counter: CounterRate = field(default_factory=CounterRate)
    counter_source: str | None = None   # "mptcp" (mptcpi_bytes_*) or "subflows": a switch restarts it
    subflow_bytes: int = 0              # rx + tx of every subflow ever seen (live and closed)
    path_bytes: dict[str, int] = field(default_factory=dict)
    stalls: dict[str, StallWatch] = field(default_factory=dict)
    stalled_since: dict[str, float] = field(default_factory=dict)   # iface → last progress before the stall
    seen_mptcp: bool = False
    fallback_reported: bool = False
    name: str = ""                      # who(): for event details


@dataclass(slots=True)
class _Poll:
    t: float
    interfaces: InterfaceMap
    events: list[Event]
    baseline: bool                      # the first poll: what is already there did not just happen
    fallback_counters: frozenset[str] | None


class WatchTracker:
    """See the module docstring.  ``paths`` holds the per-path totals of every connection seen."""

    def __init__(self, labels: dict[str, str] | None = None, stall_after_s: float | None = None) -> None:
        self.paths = PathBook(labels)
        self._stall_after = STALL_AFTER_S if stall_after_s is None else stall_after_s
        self._tracks: dict[int, ConnectionTrack] = {}
        self._links = LinkWatch()
        self._ledger = SubflowLedger()
        self._inbox: deque[tuple[float, PmEvent]] = deque(maxlen=PM_INBOX_MAX)
        self._path_stalled: dict[str, float] = {}   # iface → when its outage began
        self._recovered: set[str] = set()            # paths with a connection that got bytes back this poll
        self._polls = 0

    # -- inputs --------------------------------------------------------------------------------
    def pm_event(self, t: float, event: PmEvent) -> None:
        """A path-manager event received at ``t``; applied at the next :meth:`observe`."""
        self._inbox.append((t, event))

    def observe(self, t: float, connections: Iterable[DiagConnection], interfaces: InterfaceMap,
                fallback_counters: frozenset[str] | None = None) -> tuple[list[ConnectionSample], list[Event]]:
        """One poll.  ``fallback_counters``: the host's MPTcpExt counters that grew since the previous
        poll (:class:`FallbackCounters`; None: unknown); they explain fallbacks seen in this poll."""
        poll = _Poll(t, interfaces, [], self._polls == 0, fallback_counters)
        self._polls += 1
        self.paths.begin_poll(interfaces.link_up, interfaces.kinds)
        for iface, up in self._links.observe(interfaces.link_up):
            label = self.paths.label(iface)
            poll.events.append(Event(t, "link_up" if up else "link_down", iface, None, describe_link(label, iface, up)))
        current = {c.token: c for c in connections if c.token}
        self._apply_pm(poll, current)     # first: an event's own time wins over what the poll infers
        samples = [self._connection(poll, conn) for conn in current.values()]
        for token in [k for k in self._tracks if k not in current]:
            self._gone(poll, token)
        self._path_stalls(poll)
        poll.events.sort(key=lambda e: e.t)
        return samples, poll.events

    # -- one connection ------------------------------------------------------------------------
    def _connection(self, poll: _Poll, conn: DiagConnection) -> ConnectionSample:
        token = conn.token or 0
        track = self._tracks.get(token)
        local, remote = format_address(conn.local), format_address(conn.remote)
        if track is None:
            track = self._tracks[token] = ConnectionTrack(token, poll.t)
        track.name = who(conn.process, local, remote)
        # New subflows get ids initial-first; the dump order of one poll is arbitrary.
        ordered = sorted(conn.subflows, key=lambda sf: sf.is_join)
        seen: set[SubflowKey] = set()
        deltas: dict[str, int] = {}
        busy_paths: set[str] = set()            # a live, non-backup subflow leaves from there
        live: list[SubflowSample] = []
        for sf in ordered:
            key = (format_address(sf.local), format_address(sf.remote))
            seen.add(key)
            st = track.subflows.get(key) or self._open(poll, track, key, sf)
            sample, delta = self._subflow(poll, st, sf)
            deltas[st.iface] = deltas.get(st.iface, 0) + delta
            track.path_bytes[st.iface] = track.path_bytes.get(st.iface, 0) + delta
            track.subflow_bytes += delta
            if not sf.backup:
                busy_paths.add(st.iface)
            live.append(sample)
        for key in [k for k in track.subflows if k not in seen]:
            self._close(poll, track, key)
        rate = self._connection_rate(poll.t, track, conn.info)
        status = connection_status(conn)
        self._fallback(poll, track, conn, status)
        self._stalls(poll, track, deltas, busy_paths)
        live.sort(key=lambda s: s.id)
        return ConnectionSample(
            # One rate definition on screen (1 s avg of subflow bytes): a card's rate is its paths' sum.
            token=token, local=local, remote=remote, process=conn.process, status=status,
            rate_bps=sum(s.rate_bps for s in live) if live else rate * 8,
            subflows=live + list(track.closed), bytes=track.counter.total, age_s=poll.t - track.first_seen,
            pid=conn.pid, rx_bps=sum(s.rx_bps for s in live), tx_bps=sum(s.tx_bps for s in live),
            **_direction_totals(conn.info, live + list(track.closed)),
        )

    def _open(self, poll: _Poll, track: ConnectionTrack, key: SubflowKey, sf: DiagSubflow) -> ConnectionSubflowTrack:
        iface = poll.interfaces.iface_for(sf.local[0])
        label = self.paths.path(iface).label
        st = ConnectionSubflowTrack(key[0], key[1], iface, label, sf.is_join, poll.t, id=track.next_id)
        track.next_id += 1
        track.subflows[key] = st
        if self._ledger.up((track.token, *key)) and not poll.baseline:
            detail = describe_subflow(label, key[0], key[1], True, sf.backup)
            poll.events.append(Event(poll.t, "subflow_up", iface, None, detail, connection=track.token))
        return st

    def _close(self, poll: _Poll, track: ConnectionTrack, key: SubflowKey) -> None:
        st = track.subflows.pop(key)
        st.rx.idle()
        st.tx.idle()
        if st.last is not None:
            track.closed.append(replace(st.last, rate_bps=0.0, closed=True))
        if self._ledger.down((track.token, *key)):
            detail = describe_subflow(st.label, st.local, st.remote, False)
            poll.events.append(Event(poll.t, "subflow_down", st.iface, None, detail, connection=track.token))

    def _subflow(self, poll: _Poll, st: ConnectionSubflowTrack, sf: DiagSubflow) -> tuple[SubflowSample, int]:
        got, acked = count_directions(poll.t, st.rx, st.tx, sf.tcp)
        delta = got + acked
        self.paths.add_bytes(st.iface, delta)
        self.paths.add_directions(st.iface, got, acked)
        rate_bps = (st.rx.rate + st.tx.rate) * 8
        self.paths.add_live_subflow(st.iface, rate_bps, st.rx.rate * 8, st.tx.rate * 8)
        sending = st.tx.rate > st.rx.rate       # the RTT that means something: the sender's
        st.last = direction_sample(st, st.id, sf.tcp, st.rx, st.tx, t=poll.t, rate_bps=rate_bps,
                                   rtt=rtt_ms(sf, sending), backup=sf.backup)  # type: ignore[arg-type]
        return st.last, delta

    @staticmethod
    def _connection_rate(t: float, track: ConnectionTrack, info: MptcpInfo | None) -> float:
        """Bytes/s at the MPTCP level (both directions), else the sum of the subflows."""
        if info is not None and info.bytes_received is not None and info.bytes_acked is not None:
            source, value = "mptcp", info.bytes_received + info.bytes_acked
        else:
            source, value = "subflows", track.subflow_bytes
        if source != track.counter_source:     # two different counters: switching is no reset
            track.counter, track.counter_source = CounterRate(), source
        track.counter.update(t, value)
        return track.counter.rate

    def _fallback(self, poll: _Poll, track: ConnectionTrack, conn: DiagConnection, status: Status) -> None:
        info = conn.info
        if status == "mptcp" and info is not None and info.remote_key_received:
            track.seen_mptcp = True
        if status != "fallback" or track.fallback_reported:
            return
        track.fallback_reported = True
        if poll.baseline:
            return
        reason = fallback_reason(
            mptcp_unavailable=None, seen_mptcp=track.seen_mptcp or bool(info and info.remote_key_received),
            grown=poll.fallback_counters,
        )
        detail = f"{describe_fallback('fallback', reason)} — {track.name}"
        poll.events.append(Event(poll.t, "fallback", None, None, detail, connection=track.token))

    def _gone(self, poll: _Poll, token: int) -> None:
        """A connection no longer in the dump: it drops out (its bytes stay in the path totals)."""
        track = self._tracks.pop(token)
        self._ledger.forget(token)
        poll.events.append(Event(poll.t, "connection_closed", None, None, f"connection closed: {track.name}",
                                 connection=token))

    # -- stalls --------------------------------------------------------------------------------
    def _stalls(self, poll: _Poll, track: ConnectionTrack, deltas: dict[str, int], busy_paths: set[str]) -> None:
        moving = {iface for iface, d in deltas.items() if d > 0}
        for iface, total in track.path_bytes.items():
            watch = track.stalls.get(iface)
            if watch is None:
                watch = track.stalls[iface] = StallWatch(threshold_s=self._stall_after)
            link_down = poll.interfaces.link_up.get(iface) is False
            active = iface in busy_paths and (bool(moving - {iface}) or link_down)
            change = watch.observe(poll.t, total, active)
            if change is not None and change.kind == "path_stalled":
                track.stalled_since[iface] = poll.t - change.outage_s
            elif not watch.stalled:
                track.stalled_since.pop(iface, None)
                if change is not None:
                    self._recovered.add(iface)

    def _path_stalls(self, poll: _Poll) -> None:
        """Path-level events: stalled when a first connection stalls on it, recovered when the last
        one gets bytes again (cleared silently when the stalled connections went away)."""
        stalled_now: dict[str, float] = {}
        for track in self._tracks.values():
            for iface, since in track.stalled_since.items():
                stalled_now[iface] = min(since, stalled_now.get(iface, since))
        for iface, path in self.paths.paths.items():
            # One connection pausing on a path while the path as a whole still moves bytes (other
            # connections, or this one a moment later) is scheduling, not an outage of the path.
            was = iface in self._path_stalled
            now = iface in stalled_now and (path.rate_bps == 0 or path.link_up is False)
            path.stalled = now
            if now and not was:
                self._path_stalled[iface] = stalled_now[iface]
                change = StallChange("path_stalled", poll.t - stalled_now[iface])
                poll.events.append(Event(poll.t, "path_stalled", iface, None, describe_stall(path.label, change)))
            elif was and not now:
                start = self._path_stalled.pop(iface)
                if iface in self._recovered or path.rate_bps > 0:
                    change = StallChange("path_recovered", poll.t - start)
                    poll.events.append(Event(poll.t, "path_recovered", iface, None,
                                             describe_stall(path.label, change)))
        self._recovered = set()

    # -- path-manager events -------------------------------------------------------------------
    def _apply_pm(self, poll: _Poll, current: dict[int, DiagConnection]) -> None:
        waiting: deque[tuple[float, PmEvent]] = deque(maxlen=PM_INBOX_MAX)
        for t, ev in self._inbox:
            known = ev.token is not None and (ev.token in current or ev.token in self._tracks)
            if known:
                self._pm(poll, t, ev)
            elif ev.token is not None and poll.t - t < PM_WAIT_S:
                waiting.append((t, ev))   # its connection may show up in a later poll (or be filtered out)
        self._inbox = waiting

    def _pm(self, poll: _Poll, t: float, ev: PmEvent) -> None:
        if ev.kind in (PmEventKind.ANNOUNCED, PmEventKind.REMOVED):
            kind = "address_announced" if ev.kind is PmEventKind.ANNOUNCED else "address_removed"
            poll.events.append(Event(t, kind, None, None, describe_address(ev, ev.kind is PmEventKind.ANNOUNCED),
                                     connection=ev.token))
            return
        if ev.saddr is None or ev.daddr is None or ev.token is None:
            return
        local, remote = format_address((ev.saddr, ev.sport or 0)), format_address((ev.daddr, ev.dport or 0))
        iface = poll.interfaces.iface_for(ev.saddr)
        label = self.paths.label(iface)
        key = (ev.token, local, remote)
        if ev.kind in _PM_UP and self._ledger.up(key):
            detail = describe_subflow(label, local, remote, True, bool(ev.backup))
            poll.events.append(Event(t, "subflow_up", iface, None, detail, connection=ev.token))
        elif ev.kind is PmEventKind.SUB_CLOSED and self._ledger.down(key):
            detail = describe_subflow(label, local, remote, False, error=ev.error)
            poll.events.append(Event(t, "subflow_down", iface, None, detail, connection=ev.token))


def _direction_totals(info: MptcpInfo | None, subflows: list[SubflowSample]) -> dict[str, int]:
    """A connection's bytes by direction: the MPTCP-level counters when the kernel fills them (a
    byte sent again on another path counts once), else its subflows' (live and the closed kept)."""
    if info is not None and info.bytes_received is not None and info.bytes_acked is not None:
        return {"bytes_received": info.bytes_received, "bytes_acked": info.bytes_acked}
    return {"bytes_received": sum(s.bytes_received for s in subflows),
            "bytes_acked": sum(s.bytes_acked for s in subflows)}
