"""Which connections `mptop watch` shows: ``--process``/``--port`` and the TUI's ``/`` filter.

Apart from the sampler (:mod:`mptop.core.watch`) so that the TUI's view model can hold a filter without
loading the sampler and the kernel's readers before its first frame (bench/startup.py).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from mptop.core.model import ConnectionSample, Status
    from mptop.kernel.types import DiagConnection


class ConnectionFilter(NamedTuple):
    """Which connections to show.  ``process``: a name or shell pattern (``fire*``) or a pid;
    ``port``: a local or remote port of the connection or of any of its subflows; ``status``.
    (A named tuple: `mptop watch` defines it before its first frame, and a frozen dataclass costs
    ~0.5 ms to define, a named tuple ~0.1 ms.)"""

    process: str | None = None
    port: int | None = None
    status: Status | None = None

    def _match(self, process: str | None, pid: int | None, ports: Iterable[int], status: Status) -> bool:
        if self.process is not None:
            by_pid = self.process.isdigit() and pid == int(self.process)
            if not by_pid and not (process and fnmatch.fnmatchcase(process, self.process)):
                return False
        if self.port is not None and self.port not in set(ports):
            return False
        return self.status is None or status == self.status

    def matches(self, conn: ConnectionSample) -> bool:
        ends = [conn.local, conn.remote] + [a for s in conn.subflows for a in (s.local, s.remote)]
        return self._match(conn.process, conn.pid, (_port(a) for a in ends), conn.status)

    def matches_diag(self, conn: DiagConnection) -> bool:
        from mptop.core.watch_track import connection_status  # with the sampler: loaded by then

        ends = [conn.local, conn.remote] + [a for s in conn.subflows for a in (s.local, s.remote)]
        return self._match(conn.process, conn.pid, (a[1] for a in ends), connection_status(conn))

    @property
    def empty(self) -> bool:
        return self.process is None and self.port is None and self.status is None


def _port(address: str) -> int:
    """The port of an ``ip:port`` / ``[v6]:port`` string (-1 if there is none)."""
    _, _, port = address.rpartition(":")
    return int(port) if port.isdigit() else -1
