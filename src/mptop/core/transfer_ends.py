"""Our transfers' subflows to their last byte: the final counters the kernel broadcasts as it frees them.

A poll reads a subflow's counters while the transfer's socket is open.  Bytes come after the last
read, and the paths did carry them:

- a subflow that closes mid-transfer (its path went away, a middlebox reset it) received bytes
  between the last poll that read it and its end — all of them if it lived between two polls;
- after the final read the socket is closed, and its subflows may still receive until the kernel
  frees them: after an outage MPTCP sends again, on the path that came back, what the other path
  already delivered (7–25 kB on Wi-Fi in the lab's compare test, docs/measured.md).

The sock_diag destroy broadcast (:class:`mptop.kernel.diag_destroy.SubflowEnds`, no privilege
needed) carries each TCP socket's final ``tcp_info`` and names it by its address pair only, so every
subflow of ours is registered here under ``(local, remote)``: those the polls read and those only
path-manager events told of.  An end that matches nothing yet (its subflow's event not dispatched
yet) waits ``END_WAIT_S`` (as watch's do).  A finished transfer is *settled* once each of its
subflows has had its end, or :data:`END_GRACE_S` after it finished (a subflow on a dead path may linger
for minutes, retransmitting its FIN; one whose link is down is not waited for: it receives nothing
more).  An initial subflow that MPTCP disconnected before freeing it (:attr:`SubflowEnd.disconnected`:
every HTTPS download with a join did so in the lab, docs/measured.md) ends with no local address and
its counters zeroed: it is known by its local port and its peer's address, and counts nothing — its
last poll's reading stands — but it has ended, so nothing waits for it.  No clock: the sampler
gives the times.  Without the subscription (:meth:`TransferEnds.subscribe` failed), subflows count to
their last poll and nothing waits.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, replace

from mptop.core.model import PathSample, Sample, SubflowSample, TransferSample
from mptop.core.tracking import (
    PollContext,
    SubflowTrack,
    TransferTrack,
    direction_sample,
    final_directions,
    format_address,
)
from mptop.core.watch_ends import END_WAIT_S, ENDS_MAX, SubflowKey
from mptop.kernel.diag_destroy import SubflowEnd, SubflowEnds

END_GRACE_S = 1.0


@dataclass(slots=True)
class _Home:
    track: TransferTrack
    subflow: SubflowTrack | None        # None: known from a PM event only, never read
    upload: bool


class TransferEnds:
    """Where each subflow of our transfers belongs, and which finished transfers still wait for ends."""

    def __init__(self, grace_s: float = END_GRACE_S) -> None:
        self.grace_s = grace_s
        self._homes: dict[SubflowKey, _Home] = {}
        self._ended: deque[tuple[float, SubflowEnd]] = deque(maxlen=ENDS_MAX)   # not matched yet
        self._waiting: dict[int, float] = {}        # finished transfer id -> when it stops waiting
        self._feed: SubflowEnds | None = None
        self._tried = False

    # -- the subscription ------------------------------------------------------------------------
    def subscribe(self) -> None:
        """Listen for destroy broadcasts in the calling thread's netns (the first call only)."""
        if not self._tried:
            self._tried = True
            try:
                self._feed = SubflowEnds()
            except OSError:
                self._feed = None

    def fileno(self) -> int | None:
        """What to wait on for ends (None without a subscription)."""
        return self._feed.fileno() if self._feed is not None else None

    def take(self, t: float) -> None:
        """Keep what the kernel broadcast since the last call (arrived by ``t``) for :meth:`match`."""
        if self._feed is not None:
            self.arrived(t, self._feed.read_pending())

    def arrived(self, t: float, ends: Iterable[SubflowEnd]) -> None:
        """Keep these ends, come by ``t``, for :meth:`match` (what :meth:`take` reads)."""
        self._ended.extend((t, end) for end in ends)

    def close(self) -> None:
        if self._feed is not None:
            self._feed.close()
            self._feed = None

    # -- bookkeeping -----------------------------------------------------------------------------
    def register(self, track: TransferTrack, upload: bool) -> None:
        """Every subflow this transfer's polls read and its PM events named (call after each poll of it);
        nothing without the subscription (no end would come for them)."""
        if self._feed is None:
            return
        for sock in track.sockets.values():
            for key, st in sock.subflows.items():
                home = self._homes.get(key)
                if home is None or (home.subflow is None and home.track is track):
                    self._homes[key] = _Home(track, st, upload)
        for key in track.born:
            self._homes.setdefault(key, _Home(track, None, upload))

    def finished(self, t: float, track: TransferTrack) -> None:
        """The transfer had its final read at ``t``: wait for its subflows' ends until the grace is over."""
        if self._feed is not None and any(home.track is track for home in self._homes.values()):
            self._waiting[track.id] = t + self.grace_s

    @property
    def waiting(self) -> bool:
        """Some finished transfer still waits for an end (then the caller should poll when one comes)."""
        return bool(self._waiting)

    def settled(self, t: float, track_id: int, down: Collection[str] = ()) -> bool:
        """The transfer has every end it waited for, or waited long enough; forgets it then.  A subflow
        on a path whose link is ``down`` is not waited for: it can receive nothing more."""
        until = self._waiting.get(track_id)
        if until is None:
            return True
        if t < until and any(home.track.id == track_id and (home.subflow is None or home.subflow.iface not in down)
                             for home in self._homes.values()):
            return False
        self._forget(track_id)
        return True

    def _forget(self, track_id: int) -> None:
        self._waiting.pop(track_id, None)
        for key in [k for k, home in self._homes.items() if home.track.id == track_id]:
            del self._homes[key]

    def match(self, ctx: PollContext) -> None:
        """Count each of our subflows' last bytes into its path and its transfer, once; an end that
        belongs to nothing known waits, at most END_WAIT_S.  A finished transfer whose grace is over
        is forgotten here too (a TUI never asks :meth:`settled`)."""
        for track_id in [tid for tid, until in self._waiting.items() if ctx.t >= until]:
            self._forget(track_id)
        kept: deque[tuple[float, SubflowEnd]] = deque(maxlen=ENDS_MAX)
        for arrived, end in self._ended:
            home = self._homes.pop((format_address(end.local), format_address(end.remote)), None)
            if home is not None:
                _count(ctx, home, end)
            elif not (end.disconnected and self._forget_disconnected(end)) and ctx.t - arrived < END_WAIT_S:
                kept.append((arrived, end))
        self._ended = kept

    def _forget_disconnected(self, end: SubflowEnd) -> bool:
        """Forget the subflow of ours with this disconnected end's local port and peer address, counting
        nothing (its counters are zeroed); False if none is ours."""
        port, remote = f":{end.local[1]}", format_address((end.remote[0], 0)).removesuffix(":0")
        for key in self._homes:
            if key[0].endswith(port) and key[1].rpartition(":")[0] == remote:
                del self._homes[key]
                return True
        return False


def _count(ctx: PollContext, home: _Home, end: SubflowEnd) -> None:
    track, st, tcp = home.track, home.subflow, end.tcp
    unseen = st is None
    if st is None:                        # never read: all its counters are new
        local, remote = format_address(end.local), format_address(end.remote)
        iface = ctx.interfaces.iface_for(end.local[0])
        st = SubflowTrack(local, remote, iface, ctx.paths.path(iface).label, join=True,
                          first_seen=track.born.get((local, remote), ctx.t))
    got, acked = final_directions(st.rx, st.tx, tcp)
    delta = acked if home.upload else got
    ctx.paths.add_bytes(st.iface, delta)
    ctx.paths.add_directions(st.iface, got, acked)
    track.path_bytes[st.iface] = track.path_bytes.get(st.iface, 0) + delta
    if unseen:
        gone = replace(direction_sample(st, 0, tcp, st.rx, st.tx, t=ctx.t, rate_bps=0.0, rtt=None, backup=False),
                       closed=True)
        track.closed.append(gone)
        if track.last is not None:
            track.last = _with_subflows(track.last, [*track.last.subflows, gone])
        return
    _restate(track, st)


def with_ends(sample: Sample, tracks: Mapping[int, TransferTrack], paths: Mapping[str, PathSample]) -> Sample:
    """The final read's sample with the bytes the subflows' ends added since: its finished transfers'
    restated samples, its paths' totals from ``paths`` (the path book's now)."""
    restated = {iface: replace(p, bytes=paths[iface].bytes, bytes_received=paths[iface].bytes_received,
                               bytes_acked=paths[iface].bytes_acked) if iface in paths else p
                for iface, p in sample.paths.items()}
    transfers = [track.last if (track := tracks.get(ts.id)) is not None and track.last else ts
                 for ts in sample.transfers]
    return replace(sample, transfers=transfers, paths=restated)


def _restate(track: TransferTrack, st: SubflowTrack) -> None:
    """The subflow's record (a live one's, a closed one's, the frozen last sample's) with its totals."""
    def totals(s: SubflowSample) -> SubflowSample:
        if (s.local, s.remote) != (st.local, st.remote):
            return s
        return replace(s, bytes_received=st.rx.total, bytes_acked=st.tx.total)

    if st.last is not None:
        st.last = totals(st.last)
    for i, closed in enumerate(track.closed):
        track.closed[i] = totals(closed)
    if track.last is not None:
        track.last = _with_subflows(track.last, [totals(s) for s in track.last.subflows])


def _with_subflows(sample: TransferSample, subflows: list[SubflowSample]) -> TransferSample:
    return replace(sample, subflows=subflows, bytes_received=sum(s.bytes_received for s in subflows),
                   bytes_acked=sum(s.bytes_acked for s in subflows))
