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

import contextlib
import ctypes
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
        for inode in _socket_inodes(proc, pid):
            owners.setdefault(inode, pid)
    return owners


def _socket_inodes(proc: str, pid: int) -> list[int]:
    """The inodes of the sockets among ``pid``'s open fds (none if it is gone or unreadable)."""
    try:
        entries = os.scandir(f"{proc}/{pid}/fd")
    except OSError:          # gone, or another user's process
        return []
    inodes = []
    with entries:
        for entry in entries:
            try:
                target = os.readlink(entry.path)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.append(int(target[8:-1]))
    return inodes


def tree_socket_owners(pids: Iterable[int], proc: str = "/proc") -> dict[int, Owner]:
    """Socket inode -> (pid, name) for the sockets these processes hold: a scan of a few fd tables,
    not the host's (for ``mptop run``, whose processes are known)."""
    owners: dict[int, Owner] = {}
    for pid in pids:
        inodes = _socket_inodes(proc, pid)
        name = _process_name(pid) if inodes else None
        if name is not None:
            for inode in inodes:
                owners.setdefault(inode, (pid, name))
    return owners


def descendants(pid: int, proc: str = "/proc") -> set[int]:
    """Every descendant of ``pid`` (children, their children…; zombies until reaped), from each
    thread's ``/proc/PID/task/TID/children`` (CONFIG_PROC_CHILDREN), else from each process's parent
    in ``/proc/PID/stat``."""
    found: set[int] = set()
    todo = [pid]
    while todo:
        parent = todo.pop()
        kids = _children(proc, parent)
        if kids is None:
            return _descendants_by_stat(pid, proc)
        for kid in kids:
            if kid not in found:
                found.add(kid)
                todo.append(kid)
    return found


def _children(proc: str, pid: int) -> list[int] | None:
    """``pid``'s children ([] if it is gone), None when the kernel has no children files."""
    try:
        tasks = os.listdir(f"{proc}/{pid}/task")
    except OSError:
        return []
    kids: list[int] = []
    for tid in tasks:
        try:
            with open(f"{proc}/{pid}/task/{tid}/children", "rb") as f:
                kids += [int(word) for word in f.read().split()]
        except FileNotFoundError:
            if not os.path.exists(f"{proc}/{pid}/task/{tid}"):
                continue                  # the thread ended
            return None
        except OSError:
            continue
    return kids


def _descendants_by_stat(root: int, proc: str) -> set[int]:
    parents: dict[int, list[int]] = {}
    for name in os.listdir(proc):
        if name.isdigit():
            parent = parent_pid(int(name), proc)
            if parent is not None:
                parents.setdefault(parent, []).append(int(name))
    found: set[int] = set()
    todo = [root]
    while todo:
        for kid in parents.get(todo.pop(), []):
            if kid not in found:
                found.add(kid)
                todo.append(kid)
    return found


def _stat_fields(pid: int, proc: str) -> list[bytes]:
    """``/proc/PID/stat`` from the state on ([] if gone); the name in parentheses may hold anything."""
    try:
        with open(f"{proc}/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return []
    return stat[stat.rfind(b")") + 2:].split()


def parent_pid(pid: int, proc: str = "/proc") -> int | None:
    fields = _stat_fields(pid, proc)
    return int(fields[1]) if len(fields) > 1 else None


PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> bool:
    """Make this process the one orphaned descendants are re-parented to (prctl
    PR_SET_CHILD_SUBREAPER, Linux >= 3.4, no privileges): a daemon CMD forks stays in the tree."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def reap_zombies(pids: Iterable[int], proc: str = "/proc") -> None:
    """Collect the exit status of those of our children in ``pids`` that have ended (orphans a
    subreaper inherited; nobody else waits for them)."""
    for pid in pids:
        fields = _stat_fields(pid, proc)
        if fields[:1] == [b"Z"] and int(fields[1]) == os.getpid():
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)


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
