"""``mptop run``: which MPTCP connections belong to the command's process tree, and what they did.

::

    tree = ProcessTree()                          # this process's descendants: CMD and all it forks
    sampler = RunSampler(tree, interval)          # watch's sampler and tracking, those connections only
    tally = RunTally()
    ... tally(record) for every record ...
    tally.summary(command, exit_code, duration_s) # Summary with connections, path bytes, outages

A connection is the tree's when its socket was created in CMD's cgroup (``group``: a
:class:`~mptop.kernel.cgroups.CgroupConnections`; sock_diag keeps that key after ``close()``, until the
socket is freed), or — where no cgroup could be made — when the inode sock_diag gives for it is one
of the sockets a process of the tree holds, or held when it was last looked at (``/proc/PID/fd``;
the fds also name the process either way).  Only the tree's fd tables are
read — a few processes, ~0.4 ms — in every poll that shows a connection not yet decided, and at each
path-manager event announcing a connection (:class:`RunSampler`).  The decision is kept per token:
once the command's, always (its process may close the socket or exit before the connection's last
poll; a closed socket has inode 0).  Processes are
followed as they fork because the tree is walked each time; mptop is their subreaper
(:func:`~mptop.kernel.descendants.become_subreaper`), so what a daemonising child orphans stays in it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

from mptop.core.lookout import CgroupLookout
from mptop.core.model import ConnectionSample, ConnectionSummary, Event, Outage, Record, Sample, Summary
from mptop.core.watch import WatchSampler
from mptop.kernel.cgroups import CgroupConnections
from mptop.kernel.descendants import descendants, reap_zombies, tree_socket_owners
from mptop.kernel.diag import DiagReader
from mptop.kernel.procs import Owner
from mptop.kernel.sockops import SubflowCloses
from mptop.kernel.types import DiagConnection, PmEvent, PmEventKind

SubflowKey = tuple[str, str]          # (local, remote) of one subflow of a connection
ANNOUNCING = (PmEventKind.CREATED, PmEventKind.ESTABLISHED)   # probe: whose is it?
ENDING = (PmEventKind.SUB_CLOSED, PmEventKind.CLOSED)         # probe: its last counters, if still listed
HELD_MAX = 1 << 16                    # socket inodes remembered (a socket inode is not reused soon)


class ProcessTree:
    """Selects the connections of ``root``'s descendants (default: this process's, i.e. what it
    started); ``keep`` is a child someone else waits for (never reaped here)."""

    def __init__(self, root: int | None = None, proc: str = "/proc") -> None:
        self.root = os.getpid() if root is None else root
        self.proc = proc
        self.keep: set[int] = set()
        self.group: CgroupConnections | None = None  # CMD's cgroup: membership by it, not by the fds
        self.lookout: CgroupLookout | None = None    # what the cgroup held at each connection's birth
        self.closes: SubflowCloses | None = None     # each subflow's counters as it closed (the cgroup's BPF)
        self.members: dict[int, Owner | None] = {}  # token -> the process that held it (None: not seen)
        self.others: set[int] = set()              # tokens the cgroup said are not the tree's
        self.joined: list[int] = []                # tokens that became members, not tracked yet
        self.held: dict[int, Owner] = {}           # socket inode -> the tree's process seen holding it
        self._probed: dict[int, DiagConnection] = {}   # token -> its reading by a probe since the last poll
        self.scans = 0

    def pids(self) -> set[int]:
        """The tree as it is now; orphans that ended (our zombies, nobody else's to wait for) are reaped."""
        pids = descendants(self.root, self.proc)
        if self.lookout is not None:
            pids.discard(self.lookout.pid)
        if self.root == os.getpid():
            reap_zombies(pids - self.keep, self.proc)
        return pids

    def scan(self) -> None:
        """Note every socket the tree holds now (a connection may be gone, or closed, by the time a
        dump lists it: a path-manager event saying it was created is the moment to look)."""
        self.scans += 1
        self.held.update(tree_socket_owners(self.pids(), self.proc))
        while len(self.held) > HELD_MAX:             # oldest first (dicts keep insertion order)
            del self.held[next(iter(self.held))]

    def read_group(self, tokens: Iterable[int] = ()) -> None:
        """The connections the lookout found in CMD's cgroup, and each of ``tokens`` asked about,
        become members (queued in ``joined``); tokens of other cgroups are remembered as not ours."""
        if self.group is None:
            return
        found, finals = self.lookout.take() if self.lookout is not None else (set(), [])
        for token in tokens:
            if token in found or token in self.members or token in self.others:
                continue
            try:
                cgroup = self.group.cgroup_of(token)
            except OSError:
                continue
            if cgroup == self.group.cgroup_id:
                found.add(token)
            elif cgroup is not None:
                self.others.add(token)
        for token in found:
            if token not in self.members:
                self.members[token] = None
                self.joined.append(token)
        if finals:                          # the lookout's reading at CLOSED: the last counts
            self.probe(finals)

    def _own(self, conns: Iterable[DiagConnection]) -> list[DiagConnection]:
        """Those of ``conns`` that are the tree's, each named by the tree's process that holds it."""
        conns = list(conns)
        undecided = [c.token for c in conns if c.token and c.token not in self.members and c.token not in self.others]
        if undecided and self.group is not None:
            self.read_group(undecided)
        fresh = [c for c in conns if c.token and c.inode and self.members.get(c.token) is None
                 and (self.group is None or c.token in self.members)]
        if any(c.inode not in self.held for c in fresh):
            self.scan()
        for conn in fresh:
            owner = self.held.get(conn.inode)
            if owner is not None and conn.token:
                if conn.token not in self.members:
                    self.joined.append(conn.token)
                self.members[conn.token] = owner
        out = []
        for conn in conns:
            if (conn.token or 0) not in self.members:
                continue
            owner = self.members[conn.token or 0]
            if owner is None or conn.pid == owner[0]:
                out.append(conn)
            else:
                out.append(conn._replace(pid=owner[0], process=owner[1]))
        return out

    def probe(self, conns: Iterable[DiagConnection]) -> None:
        """A dump taken between two polls (at a path-manager event): the tree's connections in it
        are decided, and each one's reading is kept for the next poll."""
        for conn in self._own(conns):
            self._probed[conn.token or 0] = conn

    def select(self, conns: Iterable[DiagConnection]) -> list[DiagConnection]:
        """The poll's dump: the tree's connections in it, plus those a probe saw since the last poll
        that are gone from it now (listed once, as the probe read them: a connection shorter than
        a poll is still counted; the lookout's reading at a connection's CLOSED is taken after
        the dump, so one that is gone from it is listed with its last counts)."""
        self.read_group()
        out = self._own(conns)
        listed = {c.token for c in out}
        out += [c for token, c in self._probed.items() if token not in listed]
        self._probed = {}
        return out


class RunTally:
    """A sink that keeps what a run's summary says: per connection its bytes per path (each
    subflow's last totals, closed ones included), its fallback reason; each path's outages."""

    def __init__(self) -> None:
        self._last: dict[int, ConnectionSample] = {}
        self._subflows: dict[int, dict[SubflowKey, tuple[str, int]]] = {}   # token -> key -> (iface, bytes)
        self._fallback: dict[int, str] = {}
        self._closed: set[int] = set()
        self.labels: dict[str, str] = {}
        self._outages: list[Outage] = []
        self._open: dict[tuple[str, str], Outage] = {}   # (iface, kind) -> the outage not over yet

    def __call__(self, record: Record) -> None:
        if isinstance(record, Sample):
            self._sample(record)
        elif isinstance(record, Event):
            self._event(record)

    def _sample(self, sample: Sample) -> None:
        self.labels.update({iface: p.label for iface, p in sample.paths.items()})
        for conn in sample.connections or []:
            self._last[conn.token] = conn
            book = self._subflows.setdefault(conn.token, {})
            for sf in conn.subflows:
                total = sf.bytes_received + sf.bytes_acked      # as the paths count: sent and acknowledged
                _, before = book.get((sf.local, sf.remote), (sf.iface, 0))
                book[(sf.local, sf.remote)] = (sf.iface, max(before, total))

    def open_connections(self) -> set[int]:
        """Tokens listed but not closed yet (their final listing, with the final counts, to come)."""
        return set(self._last) - self._closed

    def _event(self, event: Event) -> None:
        if event.kind == "connection_closed" and event.connection is not None:
            self._closed.add(event.connection)
        if event.kind == "fallback" and event.connection is not None:
            self._fallback.setdefault(event.connection, event.detail.split(" — ")[0])
        kinds = {"path_stalled": "stalled", "link_down": "link_down"}
        if event.kind in kinds and event.iface is not None:
            key = (event.iface, kinds[event.kind])
            if key not in self._open:
                label = self.labels.get(event.iface, event.iface)
                self._open[key] = outage = Outage(event.iface, label, kinds[event.kind], event.t)  # type: ignore[arg-type]
                self._outages.append(outage)
        ends = {"path_recovered": "stalled", "link_up": "link_down"}
        if event.kind in ends and event.iface is not None:
            ended = self._open.pop((event.iface, ends[event.kind]), None)
            if ended is not None:
                ended.duration_s = event.t - ended.start_s

    def connections(self) -> list[ConnectionSummary]:
        out = []
        for token, conn in self._last.items():
            paths: dict[str, int] = {}
            for iface, total in self._subflows.get(token, {}).values():
                paths[iface] = paths.get(iface, 0) + total
            out.append(ConnectionSummary(
                token=token, local=conn.local, remote=conn.remote, process=conn.process, pid=conn.pid,
                status=conn.status, bytes=conn.bytes,
                path_bytes=paths, fallback=self._fallback.get(token),
            ))
        return out

    def summary(self, command: list[str], exit_code: int | None, duration_s: float) -> Summary:
        return Summary(duration_s=duration_s, command=list(command), exit_code=exit_code,
                       connections=self.connections(), outages=list(self._outages))


class RunSampler(WatchSampler):
    """The watch's sampler over ``tree``'s connections.  A path-manager event announcing a connection
    makes it look at once — the tree's fds, then a dump of its own (:meth:`ProcessTree.probe`) —
    before the poll the event wakes: a short download has closed its socket (inode 0) or is gone by
    then.  A subflow or connection of the tree closing is probed too, for its latest counters.
    Each poll first takes the subflows ``tree.closes`` recorded as they closed (the initial one's
    final counts, which its destroy broadcast lacks) and hands them on like destroy broadcasts."""

    def __init__(self, tree: ProcessTree, interval: float, labels: Mapping[str, str] | None = None) -> None:
        super().__init__(interval, labels, keep=tree.select)
        self.tree = tree
        self._probe: DiagReader | None = None

    def _pm_event(self, event: PmEvent) -> None:
        tree, token = self.tree, event.token or 0
        member = token in tree.members
        if (event.kind in ANNOUNCING and not member) or (event.kind in ENDING and member):
            try:
                if self._probe is None:
                    self._probe = DiagReader(processes=False)
                if not member:         # first the key: the cgroup's connections, the tree's fds
                    tree.read_group([token])
                    tree.scan()        # a socket the dump then lists open was held now
                tree.probe(self._probe.connections())
                self._track_joined(self._probe)
            except OSError:
                pass                   # the poll will try again
        super()._pm_event(event)

    def poll(self) -> tuple[Sample, list[Event]]:
        if self.tree.closes is not None:   # before the dump, like the destroy broadcasts: final counts
            ended = self.now()
            for end in self.tree.closes.take():
                self.tracker.subflow_end(ended, end)
        self.tree.read_group()
        if self.tree.joined:
            try:
                if self._probe is None:
                    self._probe = DiagReader(processes=False)
                self._track_joined(self._probe)
            except OSError:
                pass
        return super().poll()

    def _track_joined(self, reader: DiagReader) -> None:
        """The watch tracks the tree's new connections from their path-manager events and their
        subflows' destroy broadcasts (listed even if no dump ever shows them: they may last a few
        milliseconds), each named by the tree's process holding it if one still does."""
        tree = self.tree
        while tree.joined:
            token = tree.joined.pop()
            owner = tree.members.get(token)
            if owner is None:
                owner = tree.held.get(reader.inode_of(token) or 0)
            if owner is not None:
                tree.members[token] = owner
            self.tracker.owned(self.now(), token, *(owner or (0, "")))

    def wake(self) -> None:
        """Poll now (CMD has ended: its connections' last listings are wanted soon)."""
        if self._woken is not None:
            self._woken.set()

    def close(self) -> None:
        if self._probe is not None:
            self._probe.close()
            self._probe = None
        super().close()
