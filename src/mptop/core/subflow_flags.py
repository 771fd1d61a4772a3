"""Each subflow's own flags from sock_diag, for the sampler (our transfers' sockets).

``MPTCP_FULL_INFO`` on our own sockets carries no subflow flags, and the path-manager events are
not enough for the backup flag: a backup subflow the client asked for (a ``backup`` endpoint) is
announced with backup=0, and a client's own ``endpoint change … backup`` raises no event
(docs/measured.md, "Paths, endpoints and events").
"""

from __future__ import annotations

from mptop.core.tracking import format_address
from mptop.kernel.diag import DiagReader
from mptop.kernel.types import KernelParseError

FLAGS_EVERY_S = 1.0        # subflow flags are re-read at least this often while a transfer runs
FLAGS_KEPT = 4096          # flags of closed subflows are forgotten beyond this many


class SubflowFlags:
    """Each subflow's own backup flag, from sock_diag (the subflows' ULP info), by (local, remote).

    Read while a transfer runs: when path-manager events wait (a subflow came up or changed
    priority), when a subflow not read before shows up, and otherwise every :data:`FLAGS_EVERY_S`
    (a client's own ``endpoint change … backup`` raises no event).  ``None`` when this kernel or
    process cannot dump MPTCP sockets: the PM events' flags are then all there is.
    """

    def __init__(self) -> None:
        self._reader: DiagReader | None = None
        self._off = False
        self._flags: dict[tuple[str, str], bool] = {}
        self._at: float | None = None
        self.due = False                   # set by the sampler when a subflow was not in the last read

    def read(self, t: float, force: bool) -> dict[tuple[str, str], bool] | None:
        if self._off:
            return None
        if force or self.due or self._at is None or t - self._at >= FLAGS_EVERY_S:
            try:
                if self._reader is None:
                    self._reader = DiagReader(processes=False)
                conns = self._reader.connections()
            except (OSError, KernelParseError):
                self.close()
                self._off = True
                return None
            now = {(format_address(sf.local), format_address(sf.remote)): sf.backup
                   for conn in conns for sf in conn.subflows}
            # A subflow that just closed keeps its last flag (its transfer's final read still shows it).
            self._flags = now if len(self._flags) > FLAGS_KEPT else {**self._flags, **now}
            self._at, self.due = t, False
        return self._flags

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None
