"""``mptop run``: a process of its own that lists CMD's cgroup's MPTCP connections the moment the
path manager announces one, before CMD can close it and the kernel free it.

A download of 16 KiB lasts a few milliseconds; its socket (and with it the cgroup id sock_diag gives)
is gone within milliseconds of ``close()``.  The event loop reads the same announcement only after
the poll or probe it is busy with (~20 ms each at load 9), and a thread of mptop's waits for the
interpreter lock as long: both too late for one connection in five (docs/measured.md).  This
process, forked before anything else runs, does one thing — asks sock_diag the new connection's
cgroup, ~8 us — at real-time priority where permitted, so it runs while the connection
still exists.  ::

    lookout = CgroupLookout(cgroup_id)       # OSError / NeedsNetAdmin: no events, nothing started
    lookout.pid                              # not one of CMD's processes
    lookout.take()                           # tokens it found since the last take
    lookout.close()                          # SIGKILL and wait (it also dies with mptop)
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import struct

from mptop.kernel.cgroups import CgroupConnections
from mptop.kernel.descendants import die_with_parent
from mptop.kernel.pm_events import PmEvents
from mptop.kernel.types import PmEventKind

_TOKEN = struct.Struct("=I")


class CgroupLookout:
    """See the module docstring.  Created in the thread whose netns is watched, before threads run."""

    def __init__(self, cgroup_id: int) -> None:
        events = PmEvents()
        try:
            group = CgroupConnections(cgroup_id)
        except OSError:
            events.close()
            raise
        self._r, w = os.pipe2(os.O_CLOEXEC)
        parent = os.getpid()
        self.pid = os.fork()
        if self.pid == 0:                  # the child: never returns
            try:
                os.close(self._r)
                _watch(events, group, w, parent)
            finally:
                os._exit(0)
        os.close(w)
        events.close()
        group.close()
        os.set_blocking(self._r, False)
        self._rest = b""

    def take(self) -> set[int]:
        data = self._rest
        with contextlib.suppress(BlockingIOError, OSError):
            while chunk := os.read(self._r, 1 << 16):
                data += chunk
        whole = len(data) - len(data) % _TOKEN.size
        self._rest = data[whole:]
        return {t for (t,) in _TOKEN.iter_unpack(data[:whole])}

    def close(self) -> None:
        if self.pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(self.pid, 0)
            self.pid = 0
            os.close(self._r)


def _watch(events: PmEvents, group: CgroupConnections, out: int, parent: int) -> None:
    die_with_parent()
    if os.getppid() != parent:
        return
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):                   # nobody waits on mptop's stdout for this process
        os.dup2(devnull, fd)
    with contextlib.suppress(OSError, AttributeError):   # root: scheduled at once when an event comes
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
    while True:
        select.select([events.fileno()], [], [])
        born = [e.token for e in events.read_pending()
                if e.kind is PmEventKind.CREATED and not e.server_side and e.token]
        ours = [t for t in born if group.cgroup_of(t) == group.cgroup_id]
        if ours:
            os.write(out, b"".join(_TOKEN.pack(t) for t in ours))
