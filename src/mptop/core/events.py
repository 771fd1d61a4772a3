"""Events as small state machines fed with observations (no I/O, no clock of their own).

- :class:`StallWatch`: a path that was carrying data gets no new bytes for ``threshold_s`` while a
  transfer still needs it → stalled; bytes again → recovered, with the outage length.  A link
  that goes down raises no kernel event at all (docs/measured.md, "Handover"), so this is the only way to see it.
- :class:`LinkWatch`: interface up/down changes between two listings.
- :class:`SubflowLedger`: at most one ``subflow_up`` and one ``subflow_down`` per subflow, whether
  the path-manager events or the polls see it first.
- :func:`fallback_reason`, :func:`describe_*`: the short sentences the TUI shows.
"""

from __future__ import annotations

import os
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Literal, NamedTuple

from mptop.core.units import format_bytes, format_duration
from mptop.kernel import host
from mptop.kernel.types import KernelParseError, PmEvent

STALL_AFTER_S = 1.0       # a path's default quiet time before it counts as stalled (watch's default)
STALL_TICKS = 2           # the sampler: stalled on the 2nd poll without bytes …
STALL_MIN_S = 0.4         # … but never sooner than this (at --interval 0.1 one slow RTO is no outage)
# A quiet path, link up, while the connection moves on another: "waiting" this long before it stalls.
# A 40 Mbit path waiting on a 1 Mbit one was quiet for over 5 s in CI (load 4-5; 1.8 MB held behind a
# hole on the slow path, which drains at 125 kB/s), so the limit is 15 s (docs/measured.md).
WAIT_LIMIT_S = 15.0


def stall_threshold(interval: float) -> float:
    """Quiet time after which a path stalls: the second poll after its last byte (a poll may
    come a little early, so 1.75 intervals count as two), at least :data:`STALL_MIN_S`."""
    return max((STALL_TICKS - 0.25) * interval, STALL_MIN_S)


class StallChange(NamedTuple):
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

    ``patient``: the path's link is up and the connection still moves bytes on another path.
    A fast path then often waits for a slow one (the shared receive window is full of data that
    waits for the slow path's bytes: 1-4.5 s gaps measured on a healthy 40 + 1 Mbit pair), so it
    is only :attr:`waiting` — and stalls after ``patience_s`` without a byte.
    """

    threshold_s: float = STALL_AFTER_S
    patience_s: float = WAIT_LIMIT_S
    stalled: bool = False
    waiting: bool = False
    _bytes: int | None = None
    _last_progress: float | None = None

    def observe(self, t: float, total_bytes: int, active: bool, patient: bool = False) -> StallChange | None:
        progressed = self._bytes is not None and total_bytes > self._bytes
        self._bytes = total_bytes
        self.waiting = False
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
            if quiet >= (self.patience_s if patient else self.threshold_s):
                self.stalled = True
                return StallChange("path_stalled", quiet)
            self.waiting = patient and quiet >= self.threshold_s
        return None


class LinkWatch:
    """Interface oper-state changes between listings; the first listing reports nothing."""

    def __init__(self) -> None:
        self._up: dict[str, bool] = {}

    def observe(self, link_up: Mapping[str, bool]) -> list[tuple[str, bool]]:
        changes = [(i, up) for i, up in link_up.items() if i in self._up and self._up[i] != up]
        self._up.update(link_up)
        return changes

    def down(self) -> list[str]:
        """The interfaces down at the last listing."""
        return [iface for iface, up in self._up.items() if not up]


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


# MPTcpExt counters (this netns) that say why a connection fell back, in the order they are trusted.
# Measured (docs/measured.md, "Fallback signals"): an MPTCP option stripped on the server's ingress or egress, or a
# plain-TCP server, all grow MPCapableFallbackSYNACK on the client — from the client these are one
# case; options stripped only after the handshake grow MPCapableSYNACKRX then MPCapableDataFallback.
FALLBACK_COUNTERS: tuple[tuple[str, str], ...] = (
    ("MPCapableFallbackSYNACK",
     "no MPTCP option in the server's SYN-ACK (the server does not speak MPTCP, or a middlebox removes it)"),
    ("MPCapableDataFallback",
     "after the MPTCP handshake, data came without MPTCP options (a middlebox removes them)"),
    ("DSSCorruptionFallback", "after the MPTCP handshake, MPTCP data mappings arrived corrupted"),
    ("InfiniteMapRx", "after the MPTCP handshake, the server fell back to TCP"),
    ("SimultConnectFallback", "a simultaneous connect (MPTCP cannot do those)"),
    ("MD5SigFallback", "the socket uses TCP MD5 signatures (MPTCP cannot)"),
)
HANDSHAKE_COUNTER = "MPCapableSYNACKRX"      # a SYN-ACK with MP_CAPABLE arrived: the handshake was MPTCP
UNKNOWN_AFTER_HANDSHAKE = "after the MPTCP handshake (cause unknown)"
UNKNOWN_CAUSE = "cause unknown"


def fallback_reason(*, mptcp_unavailable: str | None, seen_mptcp: bool,
                    grown: frozenset[str] | None = None) -> str:
    """Why a transfer does not use MPTCP, from the evidence the client has — never a guess.

    ``seen_mptcp``: the connection was seen speaking MPTCP before it fell back.
    ``grown``: the MPTcpExt counters that grew while this connection was made / fell back
    (:class:`FallbackCounters`); ``None`` when they cannot be read.  The client cannot tell a
    plain-TCP server from a middlebox that strips the option on either side, so that case names both.
    """
    if mptcp_unavailable:
        return mptcp_unavailable
    grown = grown or frozenset()
    for counter, reason in FALLBACK_COUNTERS:
        if counter in grown and (counter != "MPCapableFallbackSYNACK" or not seen_mptcp):
            return reason
    if seen_mptcp or HANDSHAKE_COUNTER in grown:
        return UNKNOWN_AFTER_HANDSHAKE
    return UNKNOWN_CAUSE


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


class FallbackCounters:
    """This netns's MPTcpExt counters that explain fallbacks (:data:`FALLBACK_COUNTERS` and the
    handshake's).  Read at creation; :meth:`grew` names those that grew since the previous read
    (None when /proc/net/netstat cannot be read).  They count every connection of the netns."""

    NAMES = frozenset([HANDSHAKE_COUNTER, *(name for name, _ in FALLBACK_COUNTERS)])

    def __init__(self) -> None:
        self._counts = self._read()

    @classmethod
    def _read(cls) -> dict[str, int] | None:
        try:
            counters = host.mptcp_counters()
        except (OSError, KernelParseError):
            return None
        return {name: counters[name] for name in cls.NAMES if name in counters} or None

    def grew(self) -> frozenset[str] | None:
        counts, before = self._read(), self._counts
        self._counts = counts
        if counts is None or before is None:
            return None
        return frozenset(name for name, n in counts.items() if n > before.get(name, n))
