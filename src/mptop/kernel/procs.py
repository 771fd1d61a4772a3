"""Which process owns a socket: socket inode -> (pid, process name), from ``/proc/*/fd``.

Why not psutil: ``psutil.net_connections()`` pairs ``/proc/net/tcp*`` lines with the same fd scan
done here.  It does see MPTCP connections, but only through their TCP subflows (the kernel grafts
every subflow onto the MPTCP socket, so they carry its inode; checked on 6.18) and only in the
netns of the *process* (``/proc/self/net``), not of the thread that made the diag socket; and it
parses a text line per TCP socket of the host on every call.  sock_diag already gives the inode,
so a cached fd scan is all that is missing.  Process names do come from psutil (its ``name()``
completes the 15-character ``comm`` from the command line).

Other users' ``/proc/PID/fd`` is unreadable without privileges: their sockets stay unowned (None).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable

Owner = tuple[int, str]          # (pid, process name)
YOUNG_S = 2.0                    # a process this young is looked at first
# A full scan reads every fd link of the host (~4 ms idle, 20-45 ms at load 10 here): at most 10 a
# second, however many connections a busy host opens (each new one looks its owner up at once).
FULL_SCAN_EVERY_S = 0.1


def _process_name(pid: int) -> str | None:
    import psutil  # here, not at start: psutil is 7 ms of the TUI's first frame (bench/startup.py)

    try:
        return psutil.Process(pid).name()
    except (psutil.Error, OSError):
        return None


def process_ids(proc: str = "/proc") -> list[int]:
    """Every pid under ``proc`` (empty if unreadable)."""
    try:
        return [int(name) for name in os.listdir(proc) if name.isdigit()]
    except OSError:
        return []


def scan_socket_owners(proc: str = "/proc", pids: Iterable[int] | None = None) -> dict[int, int]:
    """Socket inode -> pid for every fd this process may read (the first pid found wins); only
    those of ``pids`` when given."""
    owners: dict[int, int] = {}
    for pid in process_ids(proc) if pids is None else pids:
        try:
            entries = os.scandir(f"{proc}/{pid}/fd")
        except OSError:          # gone, or another user's process
            continue
        with entries:
            for entry in entries:
                try:
                    target = os.readlink(entry.path)
                except OSError:
                    continue
                if target.startswith("socket:["):
                    owners.setdefault(int(target[8:-1]), pid)
    return owners


class SocketOwners:
    """A cache of :func:`scan_socket_owners`, looked up at once for an inode it has not looked for
    yet: first the fds of the processes first seen less than :data:`YOUNG_S` ago (~0.1 ms), then, if
    some inode is still unknown, every process's, newest first (a few ms; at most every
    ``min_interval`` seconds).  ``named`` holds every owner found so far (inode ->
    (pid, name)); ``scans`` counts full scans."""

    def __init__(self, min_interval: float = FULL_SCAN_EVERY_S, proc: str = "/proc",
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.min_interval = min_interval
        self.proc = proc
        self.clock = clock
        self.scans = 0
        self.named: dict[int, Owner] = {}
        self._pids: dict[int, int] = {}           # inode -> pid, from the last scan
        self._names: dict[int, str | None] = {}   # pid -> name, since the last scan
        self._unowned: set[int] = set()           # wanted at the last scan, not found
        self._born: dict[int, float] = {}         # pid -> when a scan first saw it
        self._last_scan = float("-inf")

    def lookup(self, inodes: Iterable[int]) -> dict[int, Owner]:
        """(pid, name) for each inode whose owner is known or readable; others are left out."""
        wanted = [i for i in inodes if i]
        if any(i not in self._pids and i not in self._unowned for i in wanted):
            self._scan_young_processes()
            if self.clock() - self._last_scan >= self.min_interval and \
                    any(i not in self._pids and i not in self._unowned for i in wanted):
                self.rescan(wanted)
        out: dict[int, Owner] = {}
        pids, names = self._pids, self._names
        for inode in wanted:
            pid = pids.get(inode)
            if pid is None:
                continue
            if pid not in names:
                names[pid] = _process_name(pid)
            name = names[pid]
            if name is not None:
                out[inode] = (pid, name)
        self.named.update(out)
        return out

    def rescan(self, wanted: Iterable[int] = ()) -> None:
        """Read every readable fd table again (forgets owners that went away)."""
        self._last_scan = self.clock()
        self.scans += 1
        self._pids = pids = scan_socket_owners(self.proc, sorted(process_ids(self.proc), reverse=True))
        self._names = {}
        self._unowned = {i for i in wanted if i not in pids}
        self.named = {i: owner for i, owner in self.named.items() if pids.get(i) == owner[0]}

    def _scan_young_processes(self) -> None:
        """Read the fds of the processes first seen less than YOUNG_S ago (newest first) into the
        cache: a short connection is usually a young process's (a pid seen before it exec'd curl
        included), and its fd may be closed a few milliseconds later."""
        now = self.clock()
        born = self._born
        pids = process_ids(self.proc)
        first = now if born else float("-inf")       # what was there when we started is not young
        self._born = {pid: born.get(pid, first) for pid in pids}
        young = sorted((pid for pid in pids if now - self._born[pid] < YOUNG_S), reverse=True)
        for pid in young:
            if pid not in born:     # a pid used again: its old name is stale
                self._names.pop(pid, None)
        for inode, pid in scan_socket_owners(self.proc, young).items():
            if self._pids.get(inode) != pid:
                self._pids[inode] = pid
                if pid not in self._names:      # now: the process may be gone by the next poll
                    self._names[pid] = _process_name(pid)

    def cached(self, inode: int) -> Owner | None:
        """The owner of ``inode`` if a scan already found it (no scan now)."""
        pid = self._pids.get(inode)
        name = self._names.get(pid) if pid is not None else None
        return (pid, name) if pid is not None and name is not None else None

    def prefetch(self) -> None:
        """Read the young processes' sockets now (a connection was just created: its owner is
        likely young, and its fd may be closed before a poll lists the connection)."""
        self._scan_young_processes()
