"""Path-manager events → the transfers they belong to (by connection token) → mptop events.

The netlink group carries every MPTCP connection of the namespace; an event counts only when its
token is the ``mptcpi_token`` of one of our transfers' sockets.  The kernel often reports a join
before the sampler's first read of that socket taught it the token, so events with an unknown
token wait in a bounded inbox for :data:`WAIT_S` seconds before they are dropped.
"""

from __future__ import annotations

from collections import deque

from mptop.core.events import describe_address, describe_subflow
from mptop.core.model import Event
from mptop.core.tracking import PollContext, TransferTrack, format_address
from mptop.kernel.types import PmEvent, PmEventKind

WAIT_S = 10.0
INBOX_MAX = 1024

_UP = (PmEventKind.ESTABLISHED, PmEventKind.SUB_ESTABLISHED)   # ESTABLISHED: the initial subflow
_BACKUP = (PmEventKind.SUB_ESTABLISHED, PmEventKind.SUB_PRIORITY)


class PmRouter:
    def __init__(self) -> None:
        self._tokens: dict[int, int] = {}                       # token → transfer id
        self._inbox: deque[tuple[float, PmEvent]] = deque(maxlen=INBOX_MAX)

    def received(self, t: float, event: PmEvent) -> None:
        self._inbox.append((t, event))

    def bind(self, token: int, transfer_id: int) -> None:
        self._tokens[token] = transfer_id

    def forget(self, transfer_id: int) -> None:
        for token in [k for k, v in self._tokens.items() if v == transfer_id]:
            del self._tokens[token]

    @property
    def pending(self) -> bool:
        """Events wait to be dispatched (a subflow may have come up or changed priority)."""
        return bool(self._inbox)

    def dispatch(self, ctx: PollContext, tracks: dict[int, TransferTrack]) -> None:
        """Turn every event whose transfer is known into mptop events; keep the rest waiting."""
        waiting: deque[tuple[float, PmEvent]] = deque(maxlen=INBOX_MAX)
        for t, event in self._inbox:
            tid = self._tokens.get(event.token) if event.token is not None else None
            if tid is None:
                if ctx.t - t < WAIT_S:
                    waiting.append((t, event))
                continue
            track = tracks.get(tid)
            if track is not None and not track.finished:
                _apply(ctx, t, event, track)
        self._inbox = waiting


def _apply(ctx: PollContext, t: float, ev: PmEvent, track: TransferTrack) -> None:
    if ev.kind is PmEventKind.ANNOUNCED:
        ctx.events.append(Event(t, "address_announced", None, track.id, describe_address(ev, True)))
        return
    if ev.kind is PmEventKind.REMOVED:
        ctx.events.append(Event(t, "address_removed", None, track.id, describe_address(ev, False)))
        return
    if ev.saddr is None or ev.daddr is None:
        return
    local, remote = format_address((ev.saddr, ev.sport or 0)), format_address((ev.daddr, ev.dport or 0))
    if ev.kind in _BACKUP and ev.backup is not None:
        track.backup[(local, remote)] = ev.backup
    key = (track.id, local, remote)
    iface = ctx.interfaces.iface_for(ev.saddr)
    label = ctx.paths.label(iface)
    if ev.kind in _UP:
        track.born[(local, remote)] = t
    if ev.kind in _UP and ctx.ledger.up(key):
        backup = ctx.backup(track, (local, remote))
        ctx.events.append(Event(t, "subflow_up", iface, track.id, describe_subflow(label, local, remote, True, backup)))
    elif ev.kind is PmEventKind.SUB_CLOSED and ctx.ledger.down(key):
        ctx.events.append(Event(t, "subflow_down", iface, track.id,
                                describe_subflow(label, local, remote, False, error=ev.error)))
