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

A connection's last interval comes from the kernel's destroy broadcast of each subflow
(:meth:`WatchTracker.subflow_end`, matched by address pair in :mod:`mptop.core.watch_ends`): when a
connection leaves the dump it is listed once more, ``closed``, with its final bytes (as soon as each
of its subflows' final counters arrived, at most :data:`CLOSE_WAIT_S` later).  A connection shorter
than a poll is known from its path-manager events (token and addresses) and listed the same way.

Stalls are judged per (connection, path) with :class:`StallWatch`: the path carried data of that
connection and then nothing for ≥ 1 s, while the connection still moved bytes on another path or the
path's link is down.  An idle connection (no bytes anywhere, link up) never stalls.  Path-level
``path_stalled`` / ``path_recovered`` events come once per outage of the path, however many
connections it hit.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, replace

from mptop.core.events import (
    STALL_AFTER_S,
    LinkWatch,
    SubflowLedger,
    describe_address,
    describe_fallback,
    describe_link,
    describe_subflow,
    fallback_reason,
)
from mptop.core.model import ConnectionSample, Event, Status, SubflowSample
from mptop.core.paths import InterfaceMap, PathBook
from mptop.core.rates import CounterRate
from mptop.core.stalls import SubflowStalls, WatchStalls
from mptop.core.tracking import (
    count_directions,
    direction_sample,
    final_directions,
    format_address,
    rtt_ms,
)
from mptop.core.watch_ends import ConnectionSubflowTrack, ConnectionTrack, SubflowHomes, SubflowKey
from mptop.kernel.diag_destroy import SubflowEnd
from mptop.kernel.types import DiagConnection, DiagSubflow, MptcpInfo, PmEvent, PmEventKind

TCP_SYN_SENT, TCP_SYN_RECV = 2, 3
PM_WAIT_S = 5.0                         # an event whose connection no poll has shown yet waits this long
PM_INBOX_MAX = 4096
CLOSE_WAIT_S = 1.0                      # a gone connection waits this long for its subflows' final counters

_PM_UP = (PmEventKind.ESTABLISHED, PmEventKind.SUB_ESTABLISHED)   # ESTABLISHED: the initial subflow
_PM_NEW = (PmEventKind.CREATED, PmEventKind.ESTABLISHED)


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
class _Poll:
    t: float
    interfaces: InterfaceMap
    events: list[Event]
    baseline: bool                      # the first poll: what is already there did not just happen
    fallback_counters: frozenset[str] | None


class WatchTracker:
    """See the module docstring.  ``paths`` holds the per-path totals of every connection seen."""

    def __init__(self, labels: dict[str, str] | None = None, stall_after_s: float | None = None, *,
                 unseen: bool = True) -> None:
        self.paths = PathBook(labels)
        self.unseen = unseen                # list connections known from PM events only (no filter on)
        self.ends_subscribed = False        # destroy messages come: a gone connection waits for them
        self._homes: SubflowHomes = SubflowHomes()
        self._stalls = WatchStalls(STALL_AFTER_S if stall_after_s is None else stall_after_s)
        self._subflow_stalls = SubflowStalls(self._stalls.stall_after_s)
        self._tracks: dict[int, ConnectionTrack] = {}
        self._links = LinkWatch()
        self._ledger = SubflowLedger()
        self._inbox: deque[tuple[float, PmEvent]] = deque(maxlen=PM_INBOX_MAX)
        self._polls = 0

    # -- inputs --------------------------------------------------------------------------------
    def pm_event(self, t: float, event: PmEvent) -> None:
        """A path-manager event received at ``t``; applied at the next :meth:`observe`."""
        self._inbox.append((t, event))

    def owned(self, t: float, token: int, pid: int, process: str) -> None:
        """Who owns the connection with this token, found when it was created (its socket may be
        closed before a poll lists it): listed and named with it."""
        track = self._tracks.get(token)
        if track is None:
            track = self._tracks[token] = ConnectionTrack(token, t)   # its CREATED event follows
        track.process, track.pid = track.process or process, track.pid or pid

    def subflow_end(self, t: float, end: SubflowEnd) -> None:
        """A TCP socket's final counters (destroy broadcast) received at ``t``; applied at the next
        :meth:`observe` if it was a subflow of a tracked connection."""
        self._homes.ended(t, (format_address(end.local), format_address(end.remote)), end)

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
        self._apply_ends(poll)
        samples = [self._connection(poll, conn) for conn in current.values()]
        for track in [tr for token, tr in self._tracks.items() if token not in current]:
            self._leaving(poll, track)
        owners = [(c.token, c.subflows) for c in samples if c.status == "mptcp"]
        poll.events += [replace(e, connection=token) for token, e in self._subflow_stalls.observe(poll.t, owners)]
        samples += self._finished(poll)
        poll.events += self._stalls.paths(poll.t, (tr.stalled_since for tr in self._tracks.values()), self.paths)
        poll.events.sort(key=lambda e: e.t)
        return samples, poll.events

    # -- one connection ------------------------------------------------------------------------
    def _connection(self, poll: _Poll, conn: DiagConnection) -> ConnectionSample:
        token = conn.token or 0
        track = self._tracks.get(token)
        local, remote = format_address(conn.local), format_address(conn.remote)
        if track is None:
            track = self._tracks[token] = ConnectionTrack(token, poll.t)
        track.local, track.remote, track.in_dump, track.closing, track.tail = local, remote, True, None, 0
        track.process, track.pid = conn.process or track.process, conn.pid or track.pid
        track.name = who(track.process, local, remote)
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
        status = track.status = connection_status(conn)
        self._fallback(poll, track, conn, status)
        self._stalls.connection(poll.t, track.stalls, track.stalled_since, track.path_bytes, deltas, busy_paths,
                                poll.interfaces.link_up)
        live.sort(key=lambda s: s.id)
        received, acked = _direction_totals(conn.info, live + list(track.closed))
        return ConnectionSample(
            # One rate definition on screen (1 s avg of subflow bytes): a card's rate is its paths' sum.
            token=token, local=local, remote=remote, process=track.process, status=status,
            rate_bps=sum(s.rate_bps for s in live) if live else rate * 8,
            subflows=live + list(track.closed), bytes=track.counter.total, age_s=poll.t - track.first_seen,
            pid=track.pid, rx_bps=sum(s.rx_bps for s in live), tx_bps=sum(s.tx_bps for s in live),
            bytes_received=received, bytes_acked=acked,
        )

    def _open(self, poll: _Poll, track: ConnectionTrack, key: SubflowKey, sf: DiagSubflow) -> ConnectionSubflowTrack:
        st = self._subflow_track(poll.t, track, key, poll.interfaces.iface_for(sf.local[0]), sf.is_join)
        if self._ledger.up((track.token, *key)) and not poll.baseline:
            detail = describe_subflow(st.label, key[0], key[1], True, sf.backup)
            poll.events.append(Event(poll.t, "subflow_up", st.iface, None, detail, connection=track.token))
        return st

    def _subflow_track(self, t: float, track: ConnectionTrack, key: SubflowKey, iface: str,
                       join: bool) -> ConnectionSubflowTrack:
        """A new subflow of ``track`` (seen in a poll or announced by a PM event), waiting for its end."""
        st = ConnectionSubflowTrack(key[0], key[1], iface, self.paths.path(iface).label, join, t, id=track.next_id)
        track.next_id += 1
        track.subflows[key] = st
        self._homes.register(key, track.token, st)
        track.pending.add(key)
        return st

    def _close(self, poll: _Poll, track: ConnectionTrack, key: SubflowKey, quiet: bool = False) -> None:
        st = track.subflows.pop(key)
        st.rx.idle()
        st.tx.idle()
        if st.last is not None:
            track.closed.append(replace(st.last, rate_bps=0.0, closed=True))
        if self._ledger.down((track.token, *key)) and not quiet:
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

    # -- the end of a connection --------------------------------------------------------------
    def _apply_ends(self, poll: _Poll) -> None:
        """Final counters of destroyed subflows: the bytes since the last poll that listed them."""
        for token, st, end in self._homes.matched(poll.t):
            tcp = end.tcp
            got, acked = final_directions(st.rx, st.tx, tcp)
            delta = got + acked
            self.paths.add_bytes(st.iface, delta)
            self.paths.add_directions(st.iface, got, acked)
            track = self._tracks.get(token)
            if track is None:
                continue
            key = (st.local, st.remote)
            track.pending.discard(key)
            track.path_bytes[st.iface] = track.path_bytes.get(st.iface, 0) + delta
            track.subflow_bytes += delta
            track.tail += delta
            final = direction_sample(st, st.id, tcp, st.rx, st.tx, t=poll.t, rate_bps=0.0, rtt=None, backup=False)
            if st.last is not None:
                final = replace(st.last, bytes_received=st.rx.total, bytes_acked=st.tx.total,
                                bytes_sent=tcp.bytes_sent or st.last.bytes_sent, rate_bps=0.0, rx_bps=0.0, tx_bps=0.0)
            if key in track.subflows:        # not closed yet: _close files it
                st.last = final
            else:
                kept = [s for s in track.closed if s.id != st.id]
                track.closed.clear()
                track.closed.extend(sorted([*kept, replace(final, closed=True)], key=lambda s: s.id))

    def _leaving(self, poll: _Poll, track: ConnectionTrack) -> None:
        """A connection not in this poll's dump: it closes (a connection known from PM events only,
        once its CLOSED event came; never listed if that does not come within PM_WAIT_S)."""
        if track.closing is not None:
            return
        if track.in_dump or track.pm_closed:
            track.closing = poll.t
            for key in list(track.subflows):
                self._close(poll, track, key, quiet=True)
        elif poll.t - track.first_seen > PM_WAIT_S:
            self._drop(poll, track)

    def _finished(self, poll: _Poll) -> list[ConnectionSample]:
        """Closing connections whose subflows' final counters all came (or CLOSE_WAIT_S passed):
        listed once more, ``closed``, with their final bytes (if they carried any)."""
        out: list[ConnectionSample] = []
        for track in list(self._tracks.values()):
            if track.closing is None:
                continue
            if track.pending and self.ends_subscribed and poll.t - track.closing < CLOSE_WAIT_S:
                continue
            # What its subflows carried (the paths' bytes): the MPTCP-level count of the last poll
            # lags it by what was held out of order then, and the final counts are the subflows'.
            total = track.subflow_bytes or track.counter.total + track.tail
            if track.in_dump or total:
                received, acked = _direction_totals(None, list(track.closed))
                out.append(ConnectionSample(
                    token=track.token, local=track.local, remote=track.remote, process=track.process,
                    status=track.status, rate_bps=0.0, subflows=list(track.closed), bytes=total,
                    age_s=poll.t - track.first_seen, pid=track.pid, closed=True,
                    bytes_received=received, bytes_acked=acked,
                ))
                poll.events.append(Event(poll.t, "connection_closed", None, None,
                                         f"connection closed: {track.name}", connection=track.token))
            self._drop(poll, track)
        return out

    def _drop(self, poll: _Poll, track: ConnectionTrack) -> None:
        """Forget a connection (its bytes stay in the path totals; a late final count still adds there)."""
        del self._tracks[track.token]
        self._ledger.forget(track.token)
        self._homes.retire(list(track.pending), poll.t)

    # -- path-manager events -------------------------------------------------------------------
    def _apply_pm(self, poll: _Poll, current: dict[int, DiagConnection]) -> None:
        waiting: deque[tuple[float, PmEvent]] = deque(maxlen=PM_INBOX_MAX)
        for t, ev in self._inbox:
            if self.unseen and ev.kind in _PM_NEW and ev.token is not None and ev.token not in self._tracks \
                    and not ev.server_side:
                self._tracks[ev.token] = ConnectionTrack(ev.token, t)   # maybe shorter than a poll
            known = ev.token is not None and (ev.token in current or ev.token in self._tracks)
            if known:
                self._pm(poll, t, ev)
            elif ev.token is not None and poll.t - t < PM_WAIT_S:
                waiting.append((t, ev))   # its connection may show up in a later poll (or be filtered out)
        self._inbox = waiting

    def _pm(self, poll: _Poll, t: float, ev: PmEvent) -> None:
        track = self._tracks.get(ev.token or 0)
        if track is not None and ev.kind is PmEventKind.CLOSED:
            track.pm_closed = True
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
        if track is not None and not track.in_dump and ev.kind in _PM_NEW:
            track.local, track.remote = local, remote
            track.name = who(track.process, local, remote)
            track.status = "mptcp" if ev.kind is PmEventKind.ESTABLISHED else "connecting"
        if track is not None and ev.kind in _PM_UP and (local, remote) not in track.subflows \
                and (local, remote) not in self._homes:
            self._subflow_track(t, track, (local, remote), iface, ev.kind is PmEventKind.SUB_ESTABLISHED)
        if ev.kind in _PM_UP and self._ledger.up(key):
            detail = describe_subflow(label, local, remote, True, bool(ev.backup))
            poll.events.append(Event(t, "subflow_up", iface, None, detail, connection=ev.token))
        elif ev.kind is PmEventKind.SUB_CLOSED and self._ledger.down(key):
            detail = describe_subflow(label, local, remote, False, error=ev.error)
            poll.events.append(Event(t, "subflow_down", iface, None, detail, connection=ev.token))


def _direction_totals(info: MptcpInfo | None, subflows: list[SubflowSample]) -> tuple[int, int]:
    """A connection's bytes by direction: the MPTCP-level counters when the kernel fills them (a
    byte sent again on another path counts once), else its subflows' (live and the closed kept)."""
    if info is not None and info.bytes_received is not None and info.bytes_acked is not None:
        return info.bytes_received, info.bytes_acked
    return sum(s.bytes_received for s in subflows), sum(s.bytes_acked for s in subflows)
