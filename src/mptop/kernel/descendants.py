"""A process tree, for ``mptop run``: a process's descendants, the sockets they hold, and the
subreaper that keeps what they orphan in the tree.

Only the tree's own ``/proc/PID/fd`` tables are read (a few processes), never the host's, so the
scan can run in every poll that shows a new connection: a connection is attributed while its
process still holds the socket.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
from collections.abc import Iterable

from mptop.kernel.procs import Owner, _process_name


def _socket_inodes(proc: str, pid: int) -> list[int]:
    """The inodes of the sockets among ``pid``'s open fds (none if it is gone or unreadable)."""
    try:
        entries = os.scandir(f"{proc}/{pid}/fd")
    except OSError:
        return []
    inodes = []
    with entries:
        for entry in entries:
            with contextlib.suppress(OSError):
                target = os.readlink(entry.path)
                if target.startswith("socket:["):
                    inodes.append(int(target[8:-1]))
    return inodes


def tree_socket_owners(pids: Iterable[int], proc: str = "/proc") -> dict[int, Owner]:
    """Socket inode -> (pid, name) for the sockets these processes hold: a scan of a few fd tables,
    not the host's (for ``mptop run``, whose processes are known)."""
    owners: dict[int, Owner] = {}
    for pid in sorted(pids):      # a socket a child inherited is named by its parent (the older pid)
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
PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """SIGKILL for the calling process when its parent (thread) ends (prctl PR_SET_PDEATHSIG)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, 9, 0, 0, 0)
    except (OSError, AttributeError):
        pass


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
