"""Events as small state machines fed with observations (no I/O, no clock of their own).

- :class:`StallWatch`: a path that was carrying data gets no new bytes for ``threshold_s`` while a
  transfer still needs it → stalled; bytes again → recovered, with the outage length.  A link
  that goes down raises no kernel event at all (measured.md), so this is the only way to see it.
- :class:`LinkWatch`: interface up/down changes between two listings.
- :class:`SubflowLedger`: at most one ``subflow_up`` and one ``subflow_down`` per subflow, whether
  the path-manager events or the polls see it first.
- :func:`fallback_reason`, :func:`describe_*`: the short sentences the TUI shows.
"""

from __future__ import annotations

import os
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Literal

from mptop.core.units import format_bytes, format_duration
from mptop.kernel import host
from mptop.kernel.types import KernelParseError, PmEvent

STALL_AFTER_S = 1.0


@dataclass(frozen=True, slots=True)
class StallChange:
    kind: Literal["path_stalled", "path_recovered"]
    outage_s: float          # stalled: time without bytes so far; recovered: the whole outage


@dataclass(slots=True)
class StallWatch:
    """One path's stall state.  Exactly one stalled/recovered pair per outage.

    ``active`` says a running transfer still needs this path (it has a live, non-backup subflow
    of an unfinished transfer).  A path that is not active cannot stall and forgets its last
    progress, so a finished transfer, a path that turned backup, or a new transfer still in its
    handshake is not taken for an outage.  A stall that ends because the path stops being needed
    clears without a ``path_recovered`` (no bytes came back).
    """

    threshold_s: float = STALL_AFTER_S
    stalled: bool = False
    _bytes: int | None = None
    _last_progress: float | None = None

    def observe(self, t: float, total_bytes: int, active: bool) -> StallChange | None:
        progressed = self._bytes is not None and total_bytes > self._bytes
        self._bytes = total_bytes
        if progressed:
            change = None
            if self.stalled and self._last_progress is not None:
                change = StallChange("path_recovered", t - self._last_progress)
            self.stalled = False
            self._last_progress = t
            return change
        if not active:
            self.stalled = False
            self._last_progress = None
            return None
        if not self.stalled and self._last_progress is not None:
            quiet = t - self._last_progress
            if quiet >= self.threshold_s:
                self.stalled = True
                return StallChange("path_stalled", quiet)
        return None


class LinkWatch:
    """Interface oper-state changes between listings; the first listing reports nothing."""

    def __init__(self) -> None:
        self._up: dict[str, bool] = {}

    def observe(self, link_up: Mapping[str, bool]) -> list[tuple[str, bool]]:
        changes = [(i, up) for i, up in link_up.items() if i in self._up and self._up[i] != up]
        self._up.update(link_up)
        return changes


class SubflowLedger:
    """Which subflows were announced up and down.  A subflow goes unseen → up → down, once.

    Keys are whatever identifies a subflow for both sources: the sampler uses
    ``(transfer id, local address, remote address)``, which PM events carry too.
    """

    def __init__(self) -> None:
        self._state: dict[Hashable, bool] = {}   # True: up, False: down (final)

    def up(self, key: Hashable) -> bool:
        """True when this is news (the subflow was never seen)."""
        if key in self._state:
            return False
        self._state[key] = True
        return True

    def down(self, key: Hashable) -> bool:
        """True when the subflow was up and is now down."""
        if self._state.get(key) is not True:
            return False
        self._state[key] = False
        return True

    def forget(self, belongs: object) -> None:
        """Drop the keys whose first element is ``belongs`` (a finished transfer's id)."""
        for key in [k for k in self._state if isinstance(k, tuple) and k and k[0] == belongs]:
            del self._state[key]


def fallback_reason(
    *, mptcp_unavailable: str | None, seen_mptcp: bool, synack_fallback: bool | None = None
) -> str:
    """Why a transfer does not use MPTCP, as far as the client can know.

    ``seen_mptcp``: the connection was seen speaking MPTCP before it fell back.
    ``synack_fallback``: the host's MPTcpExt MPCapableFallbackSYNACK counter grew while this
    connection was made (the SYN-ACK had no MP_CAPABLE); ``None`` when that counter is unknown.
    "option stripped on the way" would need the server's view, so it is never claimed here.
    """
    if mptcp_unavailable:
        return mptcp_unavailable
    if seen_mptcp:
        return "fell back to TCP after the MPTCP handshake"
    if synack_fallback:
        return "peer does not speak MPTCP"
    return "the handshake ended without MPTCP"


def describe_fallback(status: str, reason: str) -> str:
    return f"plain TCP: {reason}" if status == "tcp" else f"fell back to TCP: {reason}"


def describe_subflow(label: str, local: str, remote: str, up: bool, backup: bool = False,
                     error: int | None = None) -> str:
    role = " (backup)" if backup else ""
    if up:
        return f"{label} subflow{role} up: {local} → {remote}"
    why = f" ({os.strerror(error).lower()})" if error else ""
    return f"{label} subflow{role} closed{why}: {local} → {remote}"


def describe_stall(label: str, change: StallChange) -> str:
    if change.kind == "path_stalled":
        return f"{label} stalled: no data for {format_duration(change.outage_s)}"
    return f"{label} back after {format_duration(change.outage_s)}"


def describe_link(label: str, iface: str, up: bool) -> str:
    name = iface if label == iface else f"{label} ({iface})"
    return f"{name} link {'up' if up else 'down'}"


def describe_address(ev: PmEvent, announced: bool) -> str:
    if announced:
        where = ev.daddr or "an address"
        port = f" port {ev.dport}" if ev.dport else ""
        return f"server announced {where}{port} (id {ev.remote_id})"
    return f"server removed address id {ev.remote_id}"


def describe_transfer(state: str, nbytes: int, seconds: float | None, error: str | None) -> str:
    took = f" in {format_duration(seconds)}" if seconds is not None else ""
    if state == "done":
        return f"done: {format_bytes(nbytes)}{took}"
    return f"failed after {format_bytes(nbytes)}{took}: {error or 'unknown error'}"


class SynackFallbacks:
    """This netns's MPTcpExt ``MPCapableFallbackSYNACK``: it grows when a SYN-ACK came back without
    MP_CAPABLE (the peer, or something on the way, does not do MPTCP).  Read at creation, then
    :meth:`grew` tells whether it grew since the last read (None when it cannot be read)."""

    def __init__(self) -> None:
        self._count = self._read()

    @staticmethod
    def _read() -> int | None:
        try:
            return host.mptcp_counters().get("MPCapableFallbackSYNACK")
        except (OSError, KernelParseError):
            return None

    def grew(self) -> bool | None:
        count, before = self._read(), self._count
        self._count = count
        return None if count is None or before is None else count > before
