"""Stalls of paths and transfers, judged once per poll from byte counters and link states.

A path stalls on the second poll without bytes (:func:`~mptop.core.events.stall_threshold`) while
a running transfer needs it — unless its link is up and the transfer still moves bytes on another
path: a fast path often waits for a slow one (the shared receive window is full of data waiting
for the slow path's bytes), so it is "waiting on" that path, and stalls only after
:data:`~mptop.core.events.WAIT_LIMIT_S`.  A transfer stalls when every path it uses is down or
stalled and no byte came for as long: "no path up", or "no data on any path".

A subflow stalls on its own when another subflow of its transfer on the *same* path keeps moving
bytes while it gets none for 2 polls, at least :data:`SUBFLOW_QUIET_MIN_S` (a path that carries
data is no slower path to wait on: that subflow's own route or middlebox is broken), and is back
when it gets bytes again.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from mptop.core.events import StallChange, StallWatch, describe_stall, stall_threshold
from mptop.core.model import Event, SubflowSample, TransferSample
from mptop.core.paths import PathBook, PathState
from mptop.core.units import format_duration

MOVING_S = 2.0
# A healthy subflow sharing its path with another goes quiet for a while now and then: the scheduler
# prefers the other one (up to 1.0 s measured), or a tail drop in the path's queue costs it an RTO or
# two with backoff (1.8 s seen in CI).  The sender itself gives up on a subflow only after 4 RTOs in a
# row (net.mptcp.stale_loss_cnt): 0.2 + 0.4 + 0.8 + 1.6 s at the minimum RTO.  So a subflow stalls
# after 2 polls but never sooner than that (docs/measured.md, "Two subflows on one path").
SUBFLOW_QUIET_MIN_S = 3.0


@dataclass(slots=True)
class _SubflowQuiet:
    bytes: int
    moved_at: float
    stalled: bool = False


@dataclass(slots=True)
class _TransferQuiet:
    bytes: int = 0
    last_progress: float | None = None
    stalled: bool = False


class StallJudge:
    """Path and transfer stalls for one sampler (``interval``: its poll interval)."""

    def __init__(self, interval: float) -> None:
        self.threshold_s = stall_threshold(interval)
        # "Still moving" looks further back: a slow path has short gaps of its own (0.5 s measured
        # at 1 Mbit on a loaded machine), and a fast path waiting on it is not stalled meanwhile.
        self.moving_s = max(MOVING_S, 2 * self.threshold_s)
        self._watches: dict[str, StallWatch] = {}
        self._moved_at: dict[str, float] = {}
        self._bytes: dict[str, int] = {}
        self._dropped: set[str] = set()             # paths whose link went down after carrying bytes
        self._transfers: dict[int, _TransferQuiet] = {}
        self._subflow_stalls = SubflowStalls(self.threshold_s)

    def paths(self, t: float, paths: Mapping[str, PathState], active: set[str]) -> list[Event]:
        """Judge every path; sets ``stalled`` / ``waiting_on`` on them; returns the events."""
        for iface, path in paths.items():
            if path.bytes > self._bytes.get(iface, 0):
                self._moved_at[iface] = t
            self._bytes[iface] = path.bytes
            if path.link_up is False and iface in self._moved_at:
                self._dropped.add(iface)
            elif path.link_up is not False:
                self._dropped.discard(iface)
        # A link that drops takes the data in flight on it along.  The sender re-sends it on the other
        # paths a piece per MPTCP retransmission timeout (0.2 s, backing off), and those get little or
        # nothing meanwhile: the receive window is full of what comes after the hole.  That lasts until
        # the sender marks the dropped subflow stale (1.0-2.3 s after the drop measured) or, in 2 runs
        # of 16, until the link came back (docs/measured.md, "Handover: the wait for lost bytes").  So a
        # path that is up waits on a dropped one while its link is down, and stalls after WAIT_LIMIT_S.
        moving = {i for i, at in self._moved_at.items() if t - at < self.moving_s} | self._dropped
        events = []
        for iface, path in paths.items():
            watch = self._watches.get(iface)
            if watch is None:
                watch = self._watches[iface] = StallWatch(threshold_s=self.threshold_s)
            others = sorted(paths[i].label for i in moving - {iface} if i in paths)
            patient = path.link_up is not False and bool(others)
            change = watch.observe(t, path.bytes, iface in active, patient)
            path.stalled = watch.stalled
            path.waiting_on = ", ".join(others) if watch.waiting else None
            if change is not None:
                events.append(Event(t, change.kind, iface, None, describe_stall(path.label, change)))
        return events

    def subflows(self, t: float, transfers: Iterable[TransferSample]) -> list[Event]:
        """Per-subflow stalls of the running transfers (see :class:`SubflowStalls`)."""
        running = [(ts.id, ts.subflows) for ts in transfers if ts.state == "running"]
        return [replace(e, transfer=owner) for owner, e in self._subflow_stalls.observe(t, running)]

    def transfer(self, t: float, transfer_id: int, nbytes: int, running: bool, ifaces: Iterable[str],
                 paths: Mapping[str, PathState]) -> Event | None:
        """A running transfer's stall (every path it uses down or stalled, no byte for the
        threshold) and its end when bytes flow again."""
        quiet = self._transfers.setdefault(transfer_id, _TransferQuiet(nbytes))
        if nbytes > quiet.bytes or not running:
            was, since = quiet.stalled, quiet.last_progress
            quiet.bytes, quiet.stalled = nbytes, False
            quiet.last_progress = t if running else None
            if was and running and since is not None:
                return Event(t, "transfer_resumed", None, transfer_id, f"resumed after {format_duration(t - since)}")
            return None
        if quiet.last_progress is None:
            quiet.last_progress = t                 # running, nothing yet: count from here
        used = [paths[i] for i in set(ifaces) if i in paths]
        if quiet.stalled or not used or t - quiet.last_progress < self.threshold_s:
            return None
        if all(p.link_up is False for p in used):
            why = "no path up"
        elif all(p.link_up is False or p.stalled for p in used):
            why = "no data on any path"
        else:
            return None
        quiet.stalled = True
        return Event(t, "transfer_stalled", None, transfer_id, f"stalled — {why}")


class SubflowStalls:
    """A subflow quiet while another subflow of its transfer or connection on the same path keeps
    moving bytes: stalled after ``threshold_s`` (2 polls), at least :data:`SUBFLOW_QUIET_MIN_S`; back
    at the first poll with its bytes.  A subflow that closes, turns backup or whose owner stops
    being observed is forgotten silently."""

    def __init__(self, threshold_s: float) -> None:
        self.threshold_s = threshold_s
        self.subflow_threshold_s = max(threshold_s, SUBFLOW_QUIET_MIN_S)
        self._quiet: dict[tuple[int, str, str], _SubflowQuiet] = {}

    def observe(self, t: float, owners: Iterable[tuple[int, Iterable[SubflowSample]]]) -> list[tuple[int, Event]]:
        """``owners``: (transfer id or connection token, its subflows) of every running one; returns
        each event with its owner (the caller files it as a transfer's or a connection's)."""
        events: list[tuple[int, Event]] = []
        quiet: dict[tuple[int, str, str], _SubflowQuiet] = {}
        for owner, subflows in owners:
            live = [s for s in subflows if not s.closed and not s.backup]
            for sub in live:
                key = (owner, sub.local, sub.remote)
                total = sub.bytes_received + sub.bytes_acked
                q = quiet[key] = self._quiet.get(key) or _SubflowQuiet(total, t)
                if total > q.bytes:
                    if q.stalled:
                        events.append((owner, _subflow_event(t, sub, "subflow_recovered", t - q.moved_at)))
                    q.bytes, q.moved_at, q.stalled = total, t, False
            for sub in live:
                q = quiet[(owner, sub.local, sub.remote)]
                siblings = [quiet[(owner, o.local, o.remote)] for o in live if o.iface == sub.iface and o is not sub]
                carried_on = any(t - o.moved_at < self.threshold_s for o in siblings)
                if not q.stalled and carried_on and t - q.moved_at >= self.subflow_threshold_s:
                    q.stalled = True
                    events.append((owner, _subflow_event(t, sub, "subflow_stalled", t - q.moved_at)))
        self._quiet = quiet
        return events


def _subflow_event(t: float, sub: SubflowSample, kind: str, quiet_s: float) -> Event:
    ends = f"{sub.local} → {sub.remote}"
    if kind == "subflow_stalled":
        detail = f"{sub.path} subflow stalled: {ends}, no data for {format_duration(quiet_s)} while another " \
                 f"{sub.path} subflow carries on"
    else:
        detail = f"{sub.path} subflow back: {ends}, after {format_duration(quiet_s)}"
    return Event(t, kind, sub.iface, None, detail)


class WatchStalls:
    """``mptop watch``'s stalls, judged per (connection, path): the path carried data of that
    connection and then nothing for ``stall_after_s``, while the connection still moved bytes on
    another path or the path's link is down.  Path-level events come once per outage of the path,
    however many connections it hit."""

    def __init__(self, stall_after_s: float) -> None:
        self.stall_after_s = stall_after_s
        self._path_stalled: dict[str, float] = {}   # iface → when its outage began
        self._recovered: set[str] = set()            # paths with a connection that got bytes back this poll

    def connection(self, t: float, watches: dict[str, StallWatch], stalled_since: dict[str, float],
                   path_bytes: Mapping[str, int], deltas: Mapping[str, int], busy_paths: set[str],
                   link_up: Mapping[str, bool]) -> None:
        """One connection's poll: ``watches`` and ``stalled_since`` (iface → last progress before
        its stall) are the connection's own, updated here."""
        moving = {iface for iface, d in deltas.items() if d > 0}
        for iface, total in path_bytes.items():
            watch = watches.get(iface)
            if watch is None:
                watch = watches[iface] = StallWatch(threshold_s=self.stall_after_s)
            active = iface in busy_paths and (bool(moving - {iface}) or link_up.get(iface) is False)
            change = watch.observe(t, total, active)
            if change is not None and change.kind == "path_stalled":
                stalled_since[iface] = t - change.outage_s
            elif not watch.stalled:
                stalled_since.pop(iface, None)
                if change is not None:
                    self._recovered.add(iface)

    def paths(self, t: float, stalled: Iterable[Mapping[str, float]], book: PathBook) -> list[Event]:
        """Path-level events: stalled when a first connection stalls on it, recovered when the last
        one gets bytes again (cleared silently when the stalled connections went away)."""
        stalled_now: dict[str, float] = {}
        for since_by_iface in stalled:
            for iface, since in since_by_iface.items():
                stalled_now[iface] = min(since, stalled_now.get(iface, since))
        events = []
        for iface, path in book.paths.items():
            # One connection pausing on a path while the path as a whole still moves bytes (other
            # connections, or this one a moment later) is scheduling, not an outage of the path.
            was = iface in self._path_stalled
            now = iface in stalled_now and (path.rate_bps == 0 or path.link_up is False)
            path.stalled = now
            if now and not was:
                self._path_stalled[iface] = stalled_now[iface]
                change = StallChange("path_stalled", t - stalled_now[iface])
                events.append(Event(t, "path_stalled", iface, None, describe_stall(path.label, change)))
            elif was and not now:
                start = self._path_stalled.pop(iface)
                if iface in self._recovered or path.rate_bps > 0:
                    change = StallChange("path_recovered", t - start)
                    events.append(Event(t, "path_recovered", iface, None, describe_stall(path.label, change)))
        self._recovered = set()
        return events
