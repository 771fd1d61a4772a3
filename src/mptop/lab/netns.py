"""Anonymous network namespaces held by a child process, and entering them from a thread.

A :class:`Namespace` is created by a holder process
(``setpriv --pdeathsig KILL -- unshare --net -- sleep infinity``): the namespace lives exactly
as long as the holder, and the holder gets SIGKILL when the *thread* that started it exits
(PR_SET_PDEATHSIG is per thread), so start labs from a long-lived thread (the main thread).
Nothing is ever named in ``ip netns``; nothing ever appears in the root namespace.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import shutil
import signal
import subprocess
import time
import weakref
from collections.abc import Iterator
from typing import Any

from mptop.kernel.descendants import PR_SET_PDEATHSIG

CLONE_NEWNET = 0x40000000
CLONE_NEWUSER = 0x10000000

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def libc_call(name: str, *args: int) -> None:
    """Call a libc function that returns -1 and sets errno on failure; raise OSError then."""
    if getattr(_libc, name)(*args) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{name}: {os.strerror(err)}")


def setns(fd: int, nstype: int = CLONE_NEWNET) -> None:
    """Move the calling *thread* into the namespace referred to by ``fd``."""
    libc_call("setns", fd, nstype)


def set_pdeathsig(sig: int = signal.SIGKILL) -> None:
    """Ask the kernel to send ``sig`` to this process when its parent thread exits."""
    libc_call("prctl", PR_SET_PDEATHSIG, int(sig), 0, 0, 0)


def _holder_argv() -> list[str]:
    for tool in ("setpriv", "unshare", "sleep"):
        if shutil.which(tool) is None:
            raise FileNotFoundError(f"{tool} not found (install util-linux and coreutils)")
    return ["setpriv", "--pdeathsig", "KILL", "--", "unshare", "--net", "--", "sleep", "infinity"]


class Namespace:
    """A network namespace that lives as long as its holder process (``pid``)."""

    def __init__(self, name: str, holder: subprocess.Popen[bytes]) -> None:
        self.name = name
        self._holder = holder
        self.pid = holder.pid
        self.path = f"/proc/{self.pid}/ns/net"
        # A Namespace dropped without close() (or left at interpreter exit) still goes away.
        weakref.finalize(self, kill_quietly, holder)

    @classmethod
    def create(cls, name: str, timeout: float = 5.0) -> Namespace:
        """Start a holder in a fresh netns; return once the namespace exists."""
        own = os.stat("/proc/thread-self/ns/net").st_ino
        holder = subprocess.Popen(_holder_argv(), stdin=subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        ns = cls(name, holder)
        deadline = time.monotonic() + timeout
        # The holder is ours from the fork; its netns changes when unshare has run.
        while True:
            if holder.poll() is not None:
                err = holder.stderr.read().decode(errors="replace").strip() if holder.stderr else ""
                raise OSError(f"cannot create a network namespace: {err or 'unshare failed'}")
            with contextlib.suppress(OSError):
                if os.stat(ns.path).st_ino != own and _comm(ns.pid) == "sleep":
                    return ns
            if time.monotonic() > deadline:
                ns.close()
                raise TimeoutError("network namespace holder did not start in time")
            time.sleep(0.002)

    def open_fd(self) -> int:
        return os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)

    @contextlib.contextmanager
    def entered(self) -> Iterator[Namespace]:
        """Run the body with the current thread inside this netns; restore the old one after.

        Sockets created and processes spawned from this thread meanwhile live in this netns.
        """
        original = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            target = self.open_fd()
            try:
                setns(target)
            finally:
                os.close(target)
            try:
                yield self
            finally:
                setns(original)
        finally:
            os.close(original)

    def close(self, timeout: float = 2.0) -> None:
        """Kill the holder: the namespace disappears once nothing else lives in it."""
        kill_quietly(self._holder, timeout)
        if self._holder.stderr:
            self._holder.stderr.close()

    def __repr__(self) -> str:
        return f"Namespace({self.name!r}, pid={self.pid})"


def kill_quietly(proc: Any, timeout: float = 2.0) -> None:
    """SIGKILL a Popen-like child and reap it; never raises."""
    with contextlib.suppress(Exception):
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout)


def _comm(pid: int) -> str:
    with open(f"/proc/{pid}/comm") as f:
        return f.read().strip()
