"""``mptop watch``: every MPTCP connection of the current network namespace, live.

::

    sampler = WatchSampler(interval=1.0, labels={"eth1": "Starlink"}, only=ConnectionFilter(process="curl"))
    sampler.open()                                # MptcpDiagUnavailable: this kernel cannot list them
    host = sampler.host_info()                    # HostInfo record (events: "netlink" / "inferred")
    async with contextlib.aclosing(sampler.run()) as stream:
        async for sample, events in stream:       # Sample(connections=[...], paths={...}) per poll
            ...
    sampler.records()                             # the same as one record stream (a TUI source)

The system-wide sibling of :class:`mptop.core.sampler.Sampler`: same records, same event kinds and
sentences (plus ``connection_closed``), ``transfer`` left empty.  Each poll is one dump through a
long-lived :class:`~mptop.kernel.diag.DiagReader` (no privileges needed); the arithmetic lives in
:class:`~mptop.core.watch_track.WatchTracker`.  The poll re-arms after each fetch, so polls never
overlap.  Path-manager events are subscribed when permitted (CAP_NET_ADMIN); otherwise subflow
events are inferred from the polls.  The kernel's destroy broadcasts (any user) give each subflow's
final counters, so a connection's last interval counts; a gone connection is listed once more,
``closed``.  Everything is read in the netns of the thread running the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, Callable, Mapping

from mptop.core.events import FallbackCounters
from mptop.core.hostinfo import read_host_info, wall_clock_now
from mptop.core.missing import MissingSubflows
from mptop.core.model import Event, HostInfo, Record, Sample
from mptop.core.paths import InterfaceMap
from mptop.core.polling import PmFeed, rearming, sleep_unless
from mptop.core.watch_filter import ConnectionFilter
from mptop.core.watch_open import open_listing
from mptop.core.watch_track import WatchTracker
from mptop.kernel import host
from mptop.kernel.diag import DiagReader
from mptop.kernel.diag_destroy import SubflowEnds
from mptop.kernel.linktype import link_kind
from mptop.kernel.types import DiagConnection, PmEvent, PmEventKind
from mptop.kernel.types import MptcpUnavailable as MptcpUnavailable  # what open() raises, for views

WATCH_INTERVAL_S = 1.0
# CREATED first: a poll right then still finds a short connection's socket open, so its owner is found.
WAKE_ON = (PmEventKind.CREATED, PmEventKind.ESTABLISHED, PmEventKind.SUB_ESTABLISHED, PmEventKind.SUB_CLOSED)


# -- the sampler ---------------------------------------------------------------------------------
class WatchSampler:
    """See the module docstring.  ``labels``: ``{iface: name}`` from ``--label``; ``only``: which
    connections to track (paths and events then cover those only); ``keep``: picks them from each
    dump instead (``mptop run``: :meth:`mptop.core.proctree.ProcessTree.select`)."""

    def __init__(self, interval: float = WATCH_INTERVAL_S, labels: Mapping[str, str] | None = None, *,
                 only: ConnectionFilter | None = None, pm_events: bool = True,
                 keep: Callable[[list[DiagConnection]], list[DiagConnection]] | None = None,
                 stall_after_s: float | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        if interval <= 0:
            raise ValueError("the sampling interval must be > 0")
        self.interval = interval
        self.labels = dict(labels or {})
        self.only = only if only is not None and not only.empty else None
        self.keep = keep
        # Connections known only from their destroy broadcast (shorter than a poll) cannot be matched
        # against a filter: shown only when nothing is filtered.
        self.tracker = WatchTracker(self.labels, stall_after_s, unseen=self.only is None and keep is None)
        self._clock = clock
        self._t0 = clock()
        self.started = wall_clock_now()
        self._pm = PmFeed(self._pm_event, enabled=pm_events)
        self._woken: asyncio.Event | None = None     # made in run(): an Event belongs to one loop
        self._reader: DiagReader | None = None
        self._ends: SubflowEnds | None = None
        self._fallback_counters = FallbackCounters()
        self._missing = MissingSubflows()

    def now(self) -> float:
        return self._clock() - self._t0

    def _pm_event(self, event: PmEvent) -> None:
        """A path-manager event; a connection or subflow coming or going also polls right away, so a
        connection shorter than the interval is still seen, with the bytes it had by then."""
        self.tracker.pm_event(self.now(), event)
        if event.kind is PmEventKind.CREATED and event.token and not event.server_side:
            self._owner_at_birth(event.token)
        if event.kind in WAKE_ON and self._woken is not None:
            self._woken.set()

    def _owner_at_birth(self, token: int) -> None:
        """Who owns a connection that was just created, found right away (its socket is open now; a
        short one may be closed before the next poll): the young processes' sockets, and the
        connection's inode asked for by token."""
        owners = self._reader.owners if self._reader is not None else None
        if self._reader is None or owners is None or not self.tracker.unseen:
            return
        owners.prefetch()
        inode = self._reader.inode_of(token)
        owner = (owners.cached(inode) or owners.lookup([inode]).get(inode)) if inode else None
        if owner is not None:
            self.tracker.owned(self.now(), token, *owner)

    # -- lifecycle -----------------------------------------------------------------------------
    def open(self, listing: DiagReader | None = None) -> None:
        """Open the diag reader in the calling thread's netns and dump once, so that a kernel that
        cannot list MPTCP connections fails here (MptcpDiagUnavailable) rather than mid-stream;
        ``listing``: a reader :func:`~mptop.core.watch_open.open_listing` made (this sampler closes it)."""
        if self._reader is None:
            self._reader = listing or open_listing()
            try:
                self._ends = SubflowEnds()
            except OSError:               # no destroy broadcasts: a connection's last interval is lost
                self._ends = None
            self.tracker.ends_subscribed = self._ends is not None

    def start_events(self) -> bool:
        """Subscribe to path-manager events (done by :meth:`run`, once); False when not permitted."""
        return self._pm.start()

    def close(self) -> None:
        self._pm.close()
        if self._ends is not None:
            self._ends.close()
            self._ends = None
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    # -- polling -------------------------------------------------------------------------------
    def poll(self) -> tuple[Sample, list[Event]]:
        """One poll, synchronously: dump, interfaces, arithmetic (PM events received so far first)."""
        self.open()
        assert self._reader is not None
        if self._ends is not None:        # before the dump: a subflow ended here is not in it
            ended = self.now()
            for end in self._ends.read_pending():
                self.tracker.subflow_end(ended, end)
        conns = self._reader.connections()
        t = self.now()
        if self.only is not None:
            conns = [c for c in conns if self.only.matches_diag(c)]
        if self.keep is not None:
            conns = self.keep(conns)
        itfs = InterfaceMap.from_interfaces(host.interfaces(), link_kind)
        connections, events = self.tracker.observe(t, conns, itfs, self._fallback_counters.grew())
        sample = Sample(t=t, paths=self.tracker.paths.samples(), connections=connections)
        live = {c.token: {s.iface for s in c.subflows if not s.closed} for c in connections
                if c.status == "mptcp" and not c.closed}
        events += self._missing.poll(t, live, itfs, self.tracker.paths.label, sample.paths)
        return sample, events

    async def run(self) -> AsyncGenerator[tuple[Sample, list[Event]], None]:
        """Poll until the consumer stops; yields ``(sample, events)``.  Use
        ``contextlib.aclosing`` when breaking out early."""
        self.open()
        self.start_events()
        self._woken = woken = asyncio.Event()
        polls = rearming(self.poll, self.interval, self._clock, lambda seconds: sleep_unless(woken, seconds))
        try:
            async with self._pm.consuming(), contextlib.aclosing(polls):
                async for result in polls:
                    yield result
        finally:
            self.close()

    async def records(self, count: int | None = None) -> AsyncGenerator[Record, None]:
        """The host record, then each poll's events and sample (``count`` samples, or forever)."""
        self.open()
        self.start_events()
        yield self.host_info()
        samples = 0
        async with contextlib.aclosing(self.run()) as stream:
            async for sample, events in stream:
                for event in events:
                    yield event
                yield sample
                samples += 1
                if count is not None and samples >= count:
                    return

    # -- records for views ---------------------------------------------------------------------
    def host_info(self) -> HostInfo:
        """MPTCP on this host (the calling thread's netns); ``events`` tells whether PM events are
        subscribed ("netlink") or inferred from polls."""
        return read_host_info(self.labels, self._pm.mode, self.started)
