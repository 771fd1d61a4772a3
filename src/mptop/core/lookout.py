"""``mptop run``: a process of its own that lists CMD's cgroup's MPTCP connections the moment the
path manager announces one, before CMD can close it and the kernel free it.

A download of 16 KiB lasts a few milliseconds; its socket (and with it the cgroup id sock_diag gives)
is gone within milliseconds of ``close()``.  The event loop reads the same announcement only after
the poll or probe it is busy with (~20 ms each at load 9), and a thread of mptop's waits for the
interpreter lock as long: both too late for one connection in five (docs/measured.md).  This
process, forked before anything else runs, does one thing — asks sock_diag the new connection's
cgroup, ~8 us — at real-time priority where permitted, so it runs while the connection
still exists.

It also reads the last counters of each of those connections: at its CLOSED event it dumps the
connection once more.  The destroy broadcasts cannot give the initial subflow's: MPTCP
``tcp_disconnect()``s it before freeing it, which zeroes its byte counters and its addresses
(docs/kernel-interfaces.md §3), and the event loop's own dump at that event comes after the
connection is gone (the kernel frees it within a round trip; this dump usually wins that race, and
where BPF is permitted the cgroup's sock_ops program, :mod:`mptop.kernel.sockops`, has each
subflow's final counts whatever the race's outcome).  ::

    lookout = CgroupLookout(cgroup_id)       # OSError / NeedsNetAdmin: no events, nothing started
    lookout.pid                              # not one of CMD's processes
    tokens, finals = lookout.take()          # tokens found, and readings at CLOSED, since the last take
    lookout.close()                          # SIGKILL and wait (it also dies with mptop)
"""

from __future__ import annotations

import contextlib
import os
import pickle
import select
import signal
import struct

from mptop.kernel.cgroups import CgroupConnections
from mptop.kernel.descendants import die_with_parent
from mptop.kernel.diag import DiagReader
from mptop.kernel.pm_events import PmEvents
from mptop.kernel.types import DiagConnection, PmEventKind

_FRAME = struct.Struct("=cI")            # kind (b"T": tokens, b"C": a closing connection's reading), length


class CgroupLookout:
    """See the module docstring.  Created in the thread whose netns is watched, before threads run."""

    def __init__(self, cgroup_id: int) -> None:
        events = PmEvents()
        try:
            group = CgroupConnections(cgroup_id)
        except OSError:
            events.close()
            raise
        try:
            reader = DiagReader(processes=False)
        except OSError:
            events.close()
            group.close()
            raise
        self._r, w = os.pipe2(os.O_CLOEXEC)
        parent = os.getpid()
        self.pid = os.fork()
        if self.pid == 0:                  # the child: never returns
            try:
                os.close(self._r)
                _watch(events, group, reader, w, parent)
            finally:
                os._exit(0)
        os.close(w)
        events.close()
        group.close()
        reader.close()
        os.set_blocking(self._r, False)
        self._rest = b""

    def take(self) -> tuple[set[int], list[DiagConnection]]:
        """The tokens found in the cgroup, and the readings of those connections at their CLOSED
        event, since the last take."""
        data = self._rest
        with contextlib.suppress(BlockingIOError, OSError):
            while chunk := os.read(self._r, 1 << 16):
                data += chunk
        tokens: set[int] = set()
        finals: list[DiagConnection] = []
        off = 0
        while len(data) - off >= _FRAME.size:
            kind, length = _FRAME.unpack_from(data, off)
            if len(data) - off - _FRAME.size < length:
                break
            payload = data[off + _FRAME.size:off + _FRAME.size + length]
            off += _FRAME.size + length
            if kind == b"T":
                tokens.update(t for (t,) in struct.iter_unpack("=I", payload))
            else:                          # our own child's pickle (forked from this process)
                finals.extend(pickle.loads(payload))
        self._rest = data[off:]
        return tokens, finals

    def close(self) -> None:
        if self.pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(self.pid, 0)
            self.pid = 0
            os.close(self._r)


def _frame_out(out: int, kind: bytes, payload: bytes) -> None:
    os.write(out, _FRAME.pack(kind, len(payload)) + payload)


def _watch(events: PmEvents, group: CgroupConnections, reader: DiagReader, out: int, parent: int) -> None:
    die_with_parent()
    if os.getppid() != parent:
        return
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):                   # nobody waits on mptop's stdout for this process
        os.dup2(devnull, fd)
    with contextlib.suppress(OSError, AttributeError):   # root: scheduled at once when an event comes
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
    mine: set[int] = set()
    while True:
        select.select([events.fileno()], [], [])
        pending = [e for e in events.read_pending() if not e.server_side and e.token]
        born = [e.token for e in pending if e.kind is PmEventKind.CREATED and e.token]
        ours = [t for t in born if group.cgroup_of(t) == group.cgroup_id]
        if ours:
            mine.update(ours)
            _frame_out(out, b"T", b"".join(struct.pack("=I", t) for t in ours))
        closing = {e.token for e in pending if e.kind is PmEventKind.CLOSED and e.token in mine}
        if closing:                        # its subflows' counters are final: all data was read
            mine -= closing
            with contextlib.suppress(OSError):
                got = [c for c in reader.connections() if c.token in closing]
                _frame_out(out, b"C", pickle.dumps(got))
