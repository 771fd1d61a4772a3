"""``mptop run``: which MPTCP connections belong to the command's process tree, and what they did.

::

    tree = ProcessTree()                          # this process's descendants: CMD and all it forks
    sampler = WatchSampler(interval, keep=tree.select)   # watch's tracking, only those connections
    tally = RunTally()
    ... tally(record) for every record ...
    tally.summary(command, exit_code, duration_s) # Summary with connections, path bytes, outages

A connection is the tree's when the inode sock_diag gives for it is one of the sockets a process of
the tree holds (``/proc/PID/fd``).  Only the tree's fd tables are read — a few processes, every poll
that shows a connection not yet decided — so a connection is attributed in the very poll that first
lists it.  The decision is kept per token: once the command's, always (its process may close the
socket or exit before the connection's last poll; a closed socket has inode 0).  Processes are
followed as they fork because the tree is walked each time; mptop is their subreaper
(:func:`~mptop.kernel.descendants.become_subreaper`), so what a daemonising child orphans stays in it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from mptop.core.model import ConnectionSample, ConnectionSummary, Event, Outage, Record, Sample, Summary
from mptop.kernel.descendants import descendants, reap_zombies, tree_socket_owners
from mptop.kernel.procs import Owner
from mptop.kernel.types import DiagConnection

SubflowKey = tuple[str, str]          # (local, remote) of one subflow of a connection


class ProcessTree:
    """Selects the connections of ``root``'s descendants (default: this process's, i.e. what it
    started); ``keep`` is a child someone else waits for (never reaped here)."""

    def __init__(self, root: int | None = None, proc: str = "/proc") -> None:
        self.root = os.getpid() if root is None else root
        self.proc = proc
        self.keep: set[int] = set()
        self.members: dict[int, Owner] = {}        # token -> the process that held it when first seen
        self.scans = 0

    def pids(self) -> set[int]:
        """The tree as it is now; orphans that ended (our zombies, nobody else's to wait for) are reaped."""
        pids = descendants(self.root, self.proc)
        if self.root == os.getpid():
            reap_zombies(pids - self.keep, self.proc)
        return pids

    def select(self, conns: Iterable[DiagConnection]) -> list[DiagConnection]:
        """Those of ``conns`` that are the tree's, each named by the tree's process that holds it."""
        conns = list(conns)
        fresh = [c for c in conns if c.token and c.token not in self.members and c.inode]
        if fresh:
            self.scans += 1
            owners = tree_socket_owners(self.pids(), self.proc)
            for conn in fresh:
                owner = owners.get(conn.inode)
                if owner is not None and conn.token:
                    self.members[conn.token] = owner
        out = []
        for conn in conns:
            owner = self.members.get(conn.token or 0)
            if owner is not None:
                out.append(conn if conn.pid == owner[0] else conn._replace(pid=owner[0], process=owner[1]))
        return out


class RunTally:
    """A sink that keeps what a run's summary says: per connection its bytes per path (each
    subflow's last totals, closed ones included), its fallback reason; each path's outages."""

    def __init__(self) -> None:
        self._last: dict[int, ConnectionSample] = {}
        self._subflows: dict[int, dict[SubflowKey, tuple[str, int]]] = {}   # token -> key -> (iface, bytes)
        self._fallback: dict[int, str] = {}
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
                total = sf.bytes_received + sf.bytes_sent
                _, before = book.get((sf.local, sf.remote), (sf.iface, 0))
                book[(sf.local, sf.remote)] = (sf.iface, max(before, total))

    def _event(self, event: Event) -> None:
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
