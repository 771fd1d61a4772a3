"""The tracks of watched connections and their subflows, and where a destroyed subflow belongs: its
final counters (sock_diag destroy broadcasts) matched to the subflow track that polls or path-manager
events made for its address pair.

Pure (no I/O, no clock).  A destroy message names a subflow by its address pair only (no token, no
inode: docs/kernel-interfaces.md §3), so every subflow a poll or a PM event showed is registered here
under ``(local, remote)``.  A message that matches nothing yet (its PM event not read yet) waits up
to :data:`END_WAIT_S`; a plain TCP socket's never matches and is dropped then.  A subflow of a
connection that is gone keeps its registration :data:`LATE_END_S` (a subflow may be freed long after
its connection left the dump, e.g. FIN retransmits to a dead path), then it is forgotten.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field

from mptop.core.events import StallWatch
from mptop.core.model import Status, SubflowSample
from mptop.core.rates import CounterRate
from mptop.core.tracking import CLOSED_KEPT, SubflowIdentity
from mptop.kernel.diag_destroy import SubflowEnd

SubflowKey = tuple[str, str]            # (local "ip:port", remote "ip:port")

END_WAIT_S = 5.0
LATE_END_S = 120.0
HOMES_MAX = 1 << 16
ENDS_MAX = 4096


@dataclass(slots=True)
class ConnectionSubflowTrack(SubflowIdentity):
    id: int = 0
    rx: CounterRate = field(default_factory=CounterRate)
    tx: CounterRate = field(default_factory=CounterRate)
    last: SubflowSample | None = None


@dataclass(slots=True)
class ConnectionTrack:
    token: int
    first_seen: float
    subflows: dict[SubflowKey, ConnectionSubflowTrack] = field(default_factory=dict)
    closed: deque[SubflowSample] = field(default_factory=lambda: deque(maxlen=CLOSED_KEPT))
    next_id: int = 1
    counter: CounterRate = field(default_factory=CounterRate)
    counter_source: str | None = None   # "mptcp" (mptcpi_bytes_*) or "subflows": a switch restarts it
    subflow_bytes: int = 0              # rx + tx of every subflow ever seen (live and closed)
    path_bytes: dict[str, int] = field(default_factory=dict)
    stalls: dict[str, StallWatch] = field(default_factory=dict)
    stalled_since: dict[str, float] = field(default_factory=dict)   # iface → last progress before the stall
    seen_mptcp: bool = False
    fallback_reported: bool = False
    name: str = ""                      # who(): for event details
    local: str = "?"
    remote: str = "?"
    process: str | None = None
    pid: int | None = None
    status: Status = "connecting"
    in_dump: bool = False               # a poll listed it (else known from PM events only)
    pm_closed: bool = False             # its CLOSED event arrived
    closing: float | None = None        # when it left the dump: waiting for its subflows' final counters
    pending: set[SubflowKey] = field(default_factory=set)   # subflows whose final counters are due
    tail: int = 0                       # bytes from final counters since the last poll that listed it


class SubflowHomes:
    """``(local, remote)`` → ``(token, subflow track)``, and the destroy messages waiting for one."""

    def __init__(self) -> None:
        self._homes: dict[SubflowKey, tuple[int, ConnectionSubflowTrack]] = {}
        self._expiry: dict[SubflowKey, float] = {}     # homes of gone connections: forgotten then
        self._ends: deque[tuple[float, SubflowKey, SubflowEnd]] = deque(maxlen=ENDS_MAX)
        self._told: dict[SubflowKey, tuple[float, tuple[int | None, int | None]]] = {}   # key -> (t, counts) matched

    def register(self, key: SubflowKey, token: int, track: ConnectionSubflowTrack) -> None:
        self._homes[key] = (token, track)
        self._expiry.pop(key, None)
        if len(self._homes) > HOMES_MAX:
            oldest = next(iter(self._homes))
            del self._homes[oldest]
            self._expiry.pop(oldest, None)

    def ended(self, t: float, key: SubflowKey, end: SubflowEnd) -> None:
        """A destroy message received at ``t``; matched at the next :meth:`matched`."""
        self._ends.append((t, key, end))

    def matched(self, now: float) -> Iterator[tuple[int, ConnectionSubflowTrack, SubflowEnd]]:
        """Each waiting message whose subflow is known, once (its registration goes with it).  The
        same end told twice (``mptop run`` hears it from the cgroup's BPF program and from the
        destroy broadcast) counts once: the second copy, same address pair and same counters, is
        dropped rather than left waiting for the next subflow that gets those addresses."""
        waiting: deque[tuple[float, SubflowKey, SubflowEnd]] = deque(maxlen=ENDS_MAX)
        ends, self._ends = self._ends, waiting
        self._told = {k: told for k, told in self._told.items() if now - told[0] < END_WAIT_S}
        for t, key, end in ends:
            counts = (end.tcp.bytes_received, end.tcp.bytes_acked)
            told = self._told.get(key)
            if told is not None and told[1] == counts:
                continue
            home = self._homes.pop(key, None)
            if home is not None:
                self._expiry.pop(key, None)
                self._told[key] = (now, counts)
                yield home[0], home[1], end
            elif now - t < END_WAIT_S:
                waiting.append((t, key, end))
        for key in [k for k, deadline in self._expiry.items() if deadline <= now]:
            del self._expiry[key]
            self._homes.pop(key, None)

    def retire(self, keys: Iterator[SubflowKey] | list[SubflowKey], now: float) -> None:
        """The connection of these subflows is gone: a late destroy message still counts, for a while."""
        for key in keys:
            if key in self._homes:
                self._expiry[key] = now + LATE_END_S

    def __contains__(self, key: SubflowKey) -> bool:
        return key in self._homes
