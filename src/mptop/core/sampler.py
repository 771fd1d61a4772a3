"""The sampler: every ``interval`` seconds, each transfer's sockets → a :class:`Sample` and new :class:`Event`s.

::

    sampler = Sampler(manager.transfers, interval=0.25, labels={"eth1": "Starlink"})
    sampler.watch(more_transfers)                  # transfers can be added at any time
    host = sampler.host_info()                     # HostInfo record (call inside the run's netns)
    async with contextlib.aclosing(sampler.run(until_done=True)) as stream:
        async for sample, events in stream:        # one Sample per poll + the events since the last
            ...
    async for record in sampler.records(until_done=True):   # or one flat stream: HostInfo,
        ...                                        # per poll its Events then its Sample, Summary
    summary = sampler.summary()                    # Summary with per-transfer path_bytes

``poll()`` does one poll synchronously (what ``run()`` calls; also handy in tests).  Times are
seconds since the sampler was made, on the monotonic clock.  The poll re-arms itself after each
fetch: polls never overlap, and a slow poll (or a slow consumer) delays the next one instead of
queueing up a backlog.  Everything is read in the netns of the thread running the loop.

Path-manager events are consumed concurrently (an asyncio task) when this process may subscribe
(CAP_NET_ADMIN); they are matched to transfers by the connection token (``mptcpi_token`` of a
transfer's socket).  Without them, ``subflow_up``/``subflow_down`` are inferred from subflow ids
appearing and disappearing between polls, and ``HostInfo.events`` says ``"inferred"``.
A finished transfer gets one final read of its sockets, and only then :meth:`Transfer.release_sockets`;
its subflows' last bytes (and those of a subflow that closed between polls) come with the kernel's
destroy broadcasts (:mod:`mptop.core.transfer_ends`), and ``run(until_done=True)`` waits for them
(at most ``END_GRACE_S``; its last sample is the final read's, with their bytes), so per-path
byte totals are complete.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncGenerator, Callable, Iterable, Mapping
from dataclasses import replace

from mptop.core.events import (
    FallbackCounters,
    LinkWatch,
    SubflowLedger,
    describe_fallback,
    describe_link,
    describe_transfer,
    fallback_reason,
)
from mptop.core.hostinfo import read_host_info, wall_clock_now
from mptop.core.missing import MissingSubflows
from mptop.core.model import (
    Direction,
    Event,
    HostInfo,
    Record,
    Sample,
    Status,
    Summary,
    TransferSample,
    TransferSummary,
)
from mptop.core.paths import InterfaceMap, PathBook
from mptop.core.pm_router import PmRouter
from mptop.core.polling import PmFeed, rearming, sleep_unless
from mptop.core.rates import eta_seconds
from mptop.core.stalls import StallJudge
from mptop.core.subflow_flags import SubflowFlags
from mptop.core.tracking import (
    PollContext,
    TransferLike,
    TransferTrack,
    account_goodput,
    account_socket,
    live_reading,
    mean_bps,
    plain_subflow,
    status_of,
)
from mptop.core.transfer_ends import END_GRACE_S, TransferEnds, with_ends
from mptop.kernel import host
from mptop.kernel.linktype import link_kind
from mptop.kernel.sockopt import read_socket
from mptop.kernel.types import KernelParseError, SocketReading, SocketStatus

TransfersSource = Iterable[TransferLike] | Callable[[], Iterable[TransferLike]]
FINISHED = ("done", "failed")
APP_BACKLOG = 4 << 20    # unread bytes in our socket beyond which quiet paths are waiting on mptop
class Sampler:
    """See the module docstring.  ``labels``: ``{iface: name}`` from ``--label``; ``end_grace_s``: how long
    a finished transfer waits at most for its subflows' ends (:mod:`mptop.core.transfer_ends`)."""

    def __init__(self, transfers: TransfersSource | None = None, interval: float = 0.25,
                 labels: Mapping[str, str] | None = None, *,
                 pm_events: bool = True, require_mptcp: bool = False, end_grace_s: float = END_GRACE_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if interval <= 0:
            raise ValueError("the sampling interval must be > 0")
        self.interval = interval
        self.labels = dict(labels or {})
        self.require_mptcp = require_mptcp
        self._sources: list[TransfersSource] = [] if transfers is None else [transfers]
        self._clock = clock
        self._t0 = clock()
        self.started = wall_clock_now()          # what t = 0 is, for the host record
        self._router = PmRouter()
        self._pm = PmFeed(lambda event: self._router.received(self.now(), event), enabled=pm_events)
        self._paths = PathBook(self.labels)
        self._stalls = StallJudge(interval)
        self._links = LinkWatch()
        self._missing = MissingSubflows()
        self._ledger = SubflowLedger()
        self._tracks: dict[int, TransferTrack] = {}
        self._fallback_counters = FallbackCounters()
        self._flags = SubflowFlags()
        self._ends = TransferEnds(end_grace_s)
        self._woken: asyncio.Event | None = None     # made in run(): an Event belongs to one loop

    # -- inputs --------------------------------------------------------------------------------
    def watch(self, transfers: TransfersSource) -> None:
        """Also sample these transfers (a list that may grow, or a callable returning them)."""
        self._sources.append(transfers)

    def transfers(self) -> list[TransferLike]:
        seen: dict[int, TransferLike] = {}
        for source in self._sources:
            for tr in source() if callable(source) else source:
                seen.setdefault(tr.id, tr)
        return list(seen.values())

    def now(self) -> float:
        return self._clock() - self._t0

    # -- running -------------------------------------------------------------------------------
    async def run(self, until_done: bool = False) -> AsyncGenerator[tuple[Sample, list[Event]], None]:
        """Poll forever (or, with ``until_done``, until every transfer finished and had its final
        read); yields ``(sample, events)``.  Use ``contextlib.aclosing`` when breaking out early."""
        self.start_events()
        self._woken = woken = asyncio.Event()
        polls = rearming(self.poll, self.interval, self._clock, lambda seconds: sleep_unless(woken, seconds))
        feed = self._ends.fileno()
        if feed is not None:
            asyncio.get_running_loop().add_reader(feed, self._ends_arrived)
        held: tuple[Sample, list[Event]] | None = None    # the final read's poll, while ends are due
        try:
            async with self._pm.consuming(), contextlib.aclosing(polls):
                async for sample, events in polls:
                    if held is not None:
                        held[1].extend(events)
                    if until_done and self._ends_due():
                        held = held or (sample, events)      # a poll woken by the ends tells when
                        continue
                    if held is not None:
                        sample, events = with_ends(held[0], self._tracks, self._paths.samples()), held[1]
                        held = None
                    yield sample, events
                    if until_done and self.all_finished():
                        return
        finally:
            if feed is not None:
                asyncio.get_running_loop().remove_reader(feed)
            self._flags.close()
            self._ends.close()

    def _ends_arrived(self) -> None:
        """Destroy broadcasts came: counted now; a poll at once if a finished transfer waits for them."""
        self._ends.take(self.now())
        if self._ends.waiting:
            self.wake()

    def wake(self) -> None:
        """Poll now rather than at the next tick (e.g. every transfer just ended: the final read,
        and with it the end of ``run(until_done=True)``, then does not wait out the interval)."""
        if self._woken is not None:
            self._woken.set()

    async def records(self, until_done: bool = False) -> AsyncGenerator[Record, None]:
        """The same as one flat record stream (what the TUI, ``--json`` and ``--record`` take):
        the HostInfo first, then each poll's events followed by its sample, and with
        ``until_done`` the Summary last."""
        yield self.host_info()
        async with contextlib.aclosing(self.run(until_done)) as polls:
            async for sample, events in polls:
                for event in events:
                    yield event
                yield sample
        if until_done:
            yield self.summary()

    def start_events(self) -> bool:
        """Subscribe to path-manager events and to subflows' destroy broadcasts (done by :meth:`run`
        and :meth:`host_info`, once); False when PM events are not permitted: subflow events are then
        inferred from the polls."""
        self._ends.subscribe()
        return self._pm.start()

    def close(self) -> None:
        """Drop the subscriptions (done when :meth:`run` ends) and the diag reader."""
        self._pm.close()
        self._flags.close()
        self._ends.close()

    def _finished(self, tr: TransferLike) -> bool:
        return tr.id in self._tracks and self._tracks[tr.id].finished

    def _ends_due(self) -> bool:
        """Every transfer had its final read; only their subflows' ends are still due."""
        transfers = self.transfers()
        return bool(transfers) and all(self._finished(tr) for tr in transfers) and not self.all_finished()

    def all_finished(self) -> bool:
        """Every transfer finished, had its final read and its subflows' ends (False while there is none)."""
        transfers = self.transfers()
        t = self.now()
        down = self._links.down()
        return bool(transfers) and all(tr.id in self._tracks and self._tracks[tr.id].finished
                                       and self._ends.settled(t, tr.id, down) for tr in transfers)

    # -- one poll ------------------------------------------------------------------------------
    def poll(self) -> tuple[Sample, list[Event]]:
        t = self.now()
        self._ends.take(t)                 # before the reads: a subflow ended now is not in them
        itfs = InterfaceMap.from_interfaces(host.interfaces(), link_kind)
        ctx = PollContext(t, itfs, self._paths, self._ledger, [])
        self._paths.begin_poll(itfs.link_up, itfs.kinds)
        for iface, up in self._links.observe(itfs.link_up):
            label = self._paths.label(iface)
            ctx.events.append(Event(t, "link_up" if up else "link_down", iface, None, describe_link(label, iface, up)))
        transfers = self.transfers()
        if any(tr.state != "connecting" and not self._finished(tr) for tr in transfers):
            ctx.subflow_backup = self._flags.read(t, force=self._router.pending)
        self._ends.match(ctx)             # the frozen samples of finished transfers get their ends first
        samples = [self._sample_transfer(ctx, tr) for tr in transfers]
        self._ends.match(ctx)             # ends of subflows this poll registered (PM events named them)
        self._flags.due = ctx.flags_missing
        ctx.events += self._stalls.paths(t, self._paths.paths, ctx.active_paths)
        ctx.events += self._stalls.subflows(t, samples)
        for ts in samples:
            ifaces = {s.iface for s in ts.subflows if not s.closed and not s.backup}
            needed = ts.state == "running" and bool(ifaces & ctx.active_paths)
            event = self._stalls.transfer(t, ts.id, ts.bytes, needed, ifaces, self._paths.paths)
            if event is not None:
                ctx.events.append(event)
        sample = Sample(t=t, transfers=samples, paths=self._paths.samples())
        live = {ts.id: {s.iface for s in ts.subflows if not s.closed} for ts in samples
                if ts.state == "running" and ts.status == "mptcp"}
        ctx.events += self._missing.poll(t, live, itfs, self._paths.label, sample.paths)
        ctx.events.sort(key=lambda e: e.t)
        return sample, ctx.events

    def _sample_transfer(self, ctx: PollContext, tr: TransferLike) -> TransferSample:
        track = self._tracks.get(tr.id)
        if track is None:
            track = self._tracks[tr.id] = TransferTrack(tr.id)
        if track.last is not None:
            return track.last                   # finished, final read done
        finishing = tr.state in FINISHED       # this poll is the final read
        running = tr.state == "running"
        upload = direction_of(tr) == "upload"   # then the acknowledged bytes are what it carries
        readings = [(i, sock, _socket_reading(sock)) for i, sock in enumerate(tr.sockets)]
        ctx.read_t = self.now()
        live = live_reading(tr, readings)
        for index, _sock, reading in readings:
            if reading is not None and reading.info is not None:
                sock_track = track.socket_track(index)
                sock_track.seen_mptcp |= reading.info.remote_key_received
                if reading.info.token:
                    self._router.bind(reading.info.token, tr.id)
        # PM events before this transfer's subflows are accounted: an event's own time and its
        # backup flag win over what the poll would infer (the ledger keeps one event per subflow).
        self._router.dispatch(ctx, self._tracks)
        goodputs: list[float] = []            # bytes/s of each socket read now that has a kernel counter
        for index, _sock, reading in readings:
            if reading is not None and account_goodput(ctx.t, track.socket_track(index), reading, upload):
                goodputs.append(track.socket_track(index).goodput.rate)
        # Bytes the kernel received that mptop has not read yet: with a full receive buffer the
        # paths go quiet because of us (a busy machine), which is no stall of theirs.
        unread = sum(track.sockets[i].goodput.total for i, _s, r in readings if r is not None) \
            - (tr.bytes_done - tr.resumed)
        needed = running and (upload or not goodputs or unread < APP_BACKLOG)
        subflows = []
        for index, sock, reading in readings:
            if reading is None:
                continue
            sfs = reading.subflows
            if not sfs and reading.tcp is not None:
                plain = plain_subflow(sock, reading)
                sfs = (plain,) if plain is not None else ()
            subflows += account_socket(ctx, track, index, sfs, needed, upload)
        self._ends.register(track, upload)
        self._update_status(ctx, tr, track, live)
        for note in _take_notes(tr):
            ctx.events.append(Event(ctx.t, "transfer_note", None, tr.id, note))
        track.app_bytes.update(ctx.t, tr.bytes_done)   # the rate when the kernel has no byte counters
        rate = sum(goodputs) if goodputs else track.app_bytes.rate
        smoothed = track.smoothed.update(ctx.t, rate)
        # The rate shown is the one definition of every rate on screen (1 s avg of bytes received on
        # the subflows), so the transfer's equals its paths' sum; in-order goodput only feeds the ETA.
        shown = sum(s.rate_bps for s in subflows) if subflows else rate * 8
        sample = TransferSample(
            id=tr.id, url=tr.url, bytes=tr.bytes_done, total=tr.total, rate_bps=shown,
            status=track.status, reason=track.reason, subflows=subflows + list(track.closed),
            eta_s=None if finishing else eta_seconds(tr.bytes_done, tr.total, smoothed),
            state=tr.state,  # type: ignore[arg-type]
            error=tr.error,
            avg_bps=mean_bps(tr) if finishing else None,
            direction="upload" if upload else "download",
            rx_bps=sum(s.rx_bps for s in subflows), tx_bps=sum(s.tx_bps for s in subflows),
            bytes_received=sum(s.bytes_received for s in subflows + list(track.closed)),
            bytes_acked=sum(s.bytes_acked for s in subflows + list(track.closed)),
            compare=getattr(tr, "compare", None),
            duration_s=_span([tr]) if finishing else None,
        )
        if finishing:
            self._finish(ctx, tr, track, sample)
            return track.last or sample      # the final read's sample: nothing live any more
        return sample

    def _update_status(self, ctx: PollContext, tr: TransferLike, track: TransferTrack,
                       live: tuple[int, SocketReading] | None) -> None:
        status: Status
        reason: str | None = None
        if tr.mptcp_unavailable:
            status, reason = "tcp", tr.mptcp_unavailable
        elif live is None:
            return                              # nothing readable yet: keep what we had
        else:
            index, reading = live
            status = status_of(reading)
            if reading.status is SocketStatus.FALLBACK:
                reason = track.reason if track.status == "fallback" else self._fallback_reason(track, index)
            elif status == "mptcp" and not (reading.info and reading.info.remote_key_received):
                status = "connecting"           # SYN sent: the SYN-ACK decides MPTCP or fallback
        track.status, track.reason = status, reason
        if status in ("fallback", "tcp") and track.reported != status:
            track.reported = status
            ctx.events.append(Event(ctx.t, "fallback", None, tr.id, describe_fallback(status, reason or "")))
            if self.require_mptcp and status == "fallback":
                tr.fail(f"MPTCP required, but the connection fell back to TCP ({reason})")

    def _fallback_reason(self, track: TransferTrack, index: int) -> str:
        seen = track.sockets[index].seen_mptcp if index in track.sockets else False
        return fallback_reason(mptcp_unavailable=None, seen_mptcp=seen, grown=self._fallback_counters.grew())

    def _finish(self, ctx: PollContext, tr: TransferLike, track: TransferTrack, sample: TransferSample) -> None:
        """After the final read: the transfer's event, its sockets released, a frozen last sample."""
        took = tr.ended_at - tr.started_at if tr.ended_at is not None and tr.started_at is not None else None
        kind = "transfer_done" if tr.state == "done" else "transfer_failed"
        ctx.events.append(Event(ctx.t, kind, None, tr.id, describe_transfer(tr.state, tr.bytes_done, took, tr.error)))
        tr.release_sockets()
        self._ledger.forget(tr.id)
        self._router.forget(tr.id)
        # After the end nothing is live: no rate, no RTT estimate (the bytes stay).
        ended = [replace(s, rate_bps=0.0, rx_bps=0.0, tx_bps=0.0, rtt_ms=None) for s in sample.subflows]
        track.last = replace(sample, rate_bps=0.0, rx_bps=0.0, tx_bps=0.0, eta_s=None, subflows=ended)
        self._ends.finished(ctx.t, track)

    # -- records for views ---------------------------------------------------------------------
    def host_info(self) -> HostInfo:
        """MPTCP on this host (the calling thread's netns) for the header.  Subscribes to the
        path-manager events (as :meth:`run` would) to tell whether ``events`` is "netlink"."""
        self.start_events()
        return read_host_info(self.labels, self._pm.mode, self.started)

    def summary(self) -> Summary:
        """Per-transfer results; ``duration_s`` runs from the first transfer's start to the last one's end."""
        out = []
        for tr in self.transfers():
            track = self._tracks.get(tr.id)
            out.append(TransferSummary(
                id=tr.id, url=tr.url, file=tr.file, bytes=tr.bytes_done, sha256=tr.sha256, blake3=tr.blake3,
                status=track.status if track else "connecting",
                reason=track.reason if track else None, ok=tr.state == "done", error=tr.error,
                path_bytes=dict(track.path_bytes) if track else {}, duration_s=_span([tr]),
                resumed=getattr(tr, "resumed", 0),
                direction=direction_of(tr), reply=getattr(tr, "reply", None),
                compare=getattr(tr, "compare", None),
            ))
        return Summary(duration_s=_span(self.transfers()) or self.now(), transfers=out)


def _span(transfers: Iterable[TransferLike]) -> float | None:
    starts = [t.started_at for t in transfers if t.started_at is not None]
    ends = [t.ended_at for t in transfers if t.ended_at is not None]
    return round(max(ends) - min(starts), 3) if starts and ends else None


def _socket_reading(sock: socket.socket) -> SocketReading | None:
    """A socket's reading; None when it cannot be read (closed handle, not connected yet)."""
    try:
        return read_socket(sock)
    except (OSError, KernelParseError):
        return None


def direction_of(tr: TransferLike) -> Direction:
    """``upload`` for an upload (:class:`mptop.core.upload.Upload`); other TransferLikes download."""
    return "upload" if getattr(tr, "direction", "download") == "upload" else "download"


def _take_notes(tr: TransferLike) -> list[str]:
    """The transfer's notes not reported yet (a Transfer's ``notes``; other TransferLikes have none)."""
    notes: list[str] | None = getattr(tr, "notes", None)
    if not notes:
        return []
    taken = notes[:]
    del notes[: len(taken)]
    return taken
