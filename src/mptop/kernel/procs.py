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

import psutil

Owner = tuple[int, str]          # (pid, process name)


def _process_name(pid: int) -> str | None:
    try:
        return psutil.Process(pid).name()
    except (psutil.Error, OSError):
        return None


def scan_socket_owners(proc: str = "/proc") -> dict[int, int]:
    """Socket inode -> pid for every fd this process may read (the first pid found wins)."""
    owners: dict[int, int] = {}
    try:
        pids = [int(name) for name in os.listdir(proc) if name.isdigit()]
    except OSError:
        return owners
    for pid in pids:
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
    """A cache of :func:`scan_socket_owners`: rescans only when an inode shows up that it has not
    looked for yet, at most every ``min_interval`` seconds (a scan reads every fd link of the host,
    milliseconds).  ``named`` holds every owner found so far (inode -> (pid, name))."""

    def __init__(self, min_interval: float = 0.5, proc: str = "/proc",
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.min_interval = min_interval
        self.proc = proc
        self.clock = clock
        self.scans = 0
        self.named: dict[int, Owner] = {}
        self._pids: dict[int, int] = {}           # inode -> pid, from the last scan
        self._names: dict[int, str | None] = {}   # pid -> name, since the last scan
        self._unowned: set[int] = set()           # wanted at the last scan, not found
        self._last_scan = float("-inf")

    def lookup(self, inodes: Iterable[int]) -> dict[int, Owner]:
        """(pid, name) for each inode whose owner is known or readable; others are left out."""
        wanted = [i for i in inodes if i]
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
        self._pids = pids = scan_socket_owners(self.proc)
        self._names = {}
        self._unowned = {i for i in wanted if i not in pids}
        self.named = {i: owner for i, owner in self.named.items() if pids.get(i) == owner[0]}
