"""MPTCP beside plain TCP (``--compare-tcp``): the two downloads of one URL, side by side and in words.

:class:`Comparison` follows a run's records and keeps, for each side, what the views put next to each
other — bytes, rate, rate per path, stalls, and at the end how long it took or why it failed — and
says what happened in one line with the run's own numbers (:meth:`Comparison.verdict`)::

    TCP stalled 20 s and failed; MPTCP kept 9.6 Mbit/s over Cellular

:meth:`Comparison.narrating` wraps a sink so that the run's stream carries that line as a
``comparison`` event when the TCP side fails and once both sides ended: NDJSON readers, recordings
and every view get the same words.  Pure: records in, records out.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from mptop.core.model import CompareSide, Event, Record, Sample, Sink, Summary, TransferSample, TransferSummary
from mptop.core.units import format_bytes, format_duration, format_rate

STALL_S = 2.0            # no byte (by the kernel's count or the app's) for this long while running: stalled
CARRIER_SHARE = 0.1      # a path that carried at least this share of a side's bytes is named as carrying it
NAMES: dict[CompareSide, str] = {"mptcp": "MPTCP", "tcp": "TCP"}
SIDES: tuple[CompareSide, ...] = ("mptcp", "tcp")


def side_name(transfer: TransferSample | TransferSummary) -> str | None:
    """``MPTCP`` or ``TCP`` for a transfer of a ``--compare-tcp`` pair, None for any other."""
    return NAMES[transfer.compare] if transfer.compare else None


def counts_for_exit(transfer: TransferSummary) -> bool:
    """Whether a transfer's failure fails the run: the plain-TCP side's failure is what the
    comparison measured (and reports), not an error of the run."""
    return transfer.compare != "tcp"


def path_bytes(transfer: TransferSample) -> dict[str, int]:
    """Bytes carried per path (interface), closed subflows included: received for a download,
    sent and acknowledged for an upload."""
    out: dict[str, int] = {}
    for sub in transfer.subflows:
        count = sub.bytes_acked if transfer.direction == "upload" else sub.bytes_received
        out[sub.iface] = out.get(sub.iface, 0) + count
    return out


@dataclass(slots=True)
class SideState:
    """One side of the comparison, as of the latest sample."""

    side: CompareSide
    transfer: TransferSample | None = None
    first_t: float | None = None             # first sample that had it
    progress_t: float | None = None          # last sample in which its bytes grew (or it started running)
    other_bytes: dict[str, int] = field(default_factory=dict)   # the other side's path bytes then
    other_end_bytes: dict[str, int] | None = None   # and when this side ended
    stalls: list[tuple[float, float]] = field(default_factory=list)   # ended stalls (from, to)
    stalled_from: float | None = None        # the current stall began (its last byte) here
    ended_t: float | None = None
    labels: dict[str, str] = field(default_factory=dict)   # iface -> path label

    @property
    def name(self) -> str:
        return NAMES[self.side]

    @property
    def ended(self) -> bool:
        return self.transfer is not None and self.transfer.state in ("done", "failed")

    def stalled_for(self, now: float) -> float | None:
        """How long it has been stalled, None when it is not."""
        return None if self.stalled_from is None else now - self.stalled_from

    def stalled_total(self, now: float) -> float:
        """Every stall's length so far, the current one included."""
        return sum(b - a for a, b in self.stalls) + (self.stalled_for(now) or 0.0)

    def took(self) -> float | None:
        """Start to end, once ended."""
        tr = self.transfer
        if tr is None or not self.ended:
            return None
        if tr.duration_s is not None:
            return tr.duration_s
        return None if self.ended_t is None or self.first_t is None else self.ended_t - self.first_t

    def path_rates(self) -> dict[str, float]:
        """Live rate per path (interface) of its open subflows; a path it uses shows even at 0."""
        rates: dict[str, float] = {}
        for sub in self.transfer.subflows if self.transfer else []:
            if not sub.closed:
                rates[sub.iface] = rates.get(sub.iface, 0.0) + sub.rate_bps
        return rates

    def observe(self, t: float, transfer: TransferSample, other: TransferSample | None) -> None:
        was = self.transfer
        self.transfer = transfer
        for sub in transfer.subflows:
            self.labels[sub.iface] = sub.path
        if self.first_t is None:
            self.first_t = t
        ended = transfer.state in ("done", "failed")
        if ended and self.ended_t is None:
            self.ended_t = t
            self.other_end_bytes = path_bytes(other) if other is not None else {}
        started = transfer.state == "running" and (was is None or was.state != "running")
        # Bytes the kernel counted on its paths, or the app's: a busy machine can leave one behind.
        moved = was is not None and (transfer.bytes > was.bytes
                                     or sum(path_bytes(transfer).values()) > sum(path_bytes(was).values()))
        if started or moved:
            if self.stalled_from is not None:
                self.stalls.append((self.stalled_from, t))
                self.stalled_from = None
            self.progress_t = t
            self.other_bytes = path_bytes(other) if other is not None else {}
        elif transfer.state == "running" and self.progress_t is not None and self.stalled_from is None \
                and t - self.progress_t >= STALL_S:
            self.stalled_from = self.progress_t
        if ended and self.stalled_from is not None:     # a failure ends its stall (a done one resumed)
            self.stalls.append((self.stalled_from, t))
            self.stalled_from = None


class Comparison:
    """Both sides of a ``--compare-tcp`` run (the first pair in the records; see the module docstring)."""

    def __init__(self) -> None:
        self.sides: dict[CompareSide, SideState] = {s: SideState(s) for s in SIDES}
        self.now = 0.0
        self.told_tcp_failure = False
        self.told_end = False

    @property
    def active(self) -> bool:
        """Whether the records are of a comparison at all."""
        return self.sides["tcp"].transfer is not None

    @property
    def mptcp(self) -> SideState:
        return self.sides["mptcp"]

    @property
    def tcp(self) -> SideState:
        return self.sides["tcp"]

    def ingest(self, record: Record) -> list[Event]:
        """Take one record; the ``comparison`` events it calls for (after a sample only)."""
        if not isinstance(record, Sample):
            return []
        pair = {t.compare: t for t in record.transfers if t.compare is not None}
        if not pair:
            return []
        self.now = record.t
        for side in SIDES:
            if side in pair:
                self.sides[side].observe(record.t, pair[side], pair.get("mptcp" if side == "tcp" else "tcp"))
        events = []
        if not self.told_tcp_failure and self._failed(self.tcp) and not self.mptcp.ended:
            self.told_tcp_failure = True
            events.append(Event(record.t, "comparison", None, self.tcp.transfer.id if self.tcp.transfer else None,
                                self.verdict()))
        if not self.told_end and self.mptcp.ended and self.tcp.ended:
            self.told_end = True
            events.append(Event(record.t, "comparison", None, None, self.verdict()))
        return events

    def narrating(self, sink: Sink) -> Sink:
        """``sink``, with this comparison's ``comparison`` events added to the stream after the
        sample that called for them."""
        def write(record: Record) -> None:
            sink(record)
            for event in self.ingest(record):
                sink(event)
        return write

    # -- words ---------------------------------------------------------------------------------
    def verdict(self) -> str:
        """What happened so far, in one line with the run's numbers."""
        mptcp, tcp = self.mptcp, self.tcp
        if mptcp.ended and tcp.ended:
            return self._final()
        if self._failed(tcp):
            return f"{self._tcp_failed()}; {self._kept(tcp)}"
        if self._failed(mptcp):
            return f"MPTCP failed: {_error(mptcp)}; TCP {self._live(tcp)}"
        stalled = tcp.stalled_for(self.now)
        if stalled is not None:
            return f"TCP stalled {format_duration(stalled)}; {self._kept(tcp)}"
        return f"MPTCP {self._live(mptcp)} · TCP {self._live(tcp)}"

    def _final(self) -> str:
        mptcp, tcp = self.mptcp, self.tcp
        if self._failed(mptcp) and self._failed(tcp):
            return f"both failed — MPTCP: {_error(mptcp)}; TCP: {_error(tcp)}"
        if self._failed(mptcp):
            return f"MPTCP failed: {_error(mptcp)}; TCP took {format_duration(tcp.took())}"
        took = f"MPTCP took {format_duration(mptcp.took())}"
        if self._failed(tcp):
            failed = self._tcp_failed()
            return f"{took}; {failed}" + ("" if failed.startswith("TCP failed:") else f": {_error(tcp)}")
        a, b = mptcp.took(), tcp.took()
        ratio = f" (MPTCP {b / a:.1f}× faster)" if a and b and b / a >= 1.05 else \
            f" (TCP {a / b:.1f}× faster)" if a and b and a / b >= 1.05 else " (about the same)"
        stalls = [f"{s.name} stalled {format_duration(s.stalled_total(self.now))}"
                  for s in (tcp, mptcp) if s.stalls]
        return f"{took}, TCP {format_duration(b)}{ratio}" + "".join(f"; {s}" for s in stalls)

    def _tcp_failed(self) -> str:
        tcp = self.tcp
        stall = _last_stall_before_end(tcp)
        if stall is not None:
            return f"TCP stalled {format_duration(stall)} and failed"
        return f"TCP failed: {_error(tcp)}"

    def _kept(self, stalled: SideState) -> str:
        """What the MPTCP side did since the TCP side's last byte: its rate and the paths that carried it."""
        mptcp = self.mptcp
        if mptcp.transfer is None or stalled.progress_t is None:
            return f"MPTCP {self._live(mptcp)}"
        now = mptcp.ended_t if mptcp.ended_t is not None else self.now
        end = stalled.ended_t if stalled.ended_t is not None else now
        span = min(end, now) - stalled.progress_t
        until = stalled.other_end_bytes if stalled.other_end_bytes is not None else path_bytes(mptcp.transfer)
        carried = {iface: n - stalled.other_bytes.get(iface, 0) for iface, n in until.items()}
        total = sum(v for v in carried.values() if v > 0)
        if span <= 0 or total <= 0:
            return "MPTCP stalled too" if not mptcp.ended else f"MPTCP {self._live(mptcp)}"
        ranked = sorted(carried.items(), key=lambda kv: -kv[1])
        over = " and ".join(mptcp.labels.get(iface, iface) for iface, n in ranked if n >= CARRIER_SHARE * total)
        return f"MPTCP kept {format_rate(total * 8 / span)} over {over}"

    def _live(self, side: SideState) -> str:
        tr = side.transfer
        if tr is None:
            return "not started"
        if tr.state == "done":
            return f"took {format_duration(side.took())}"
        if tr.state == "failed":
            return f"failed: {_error(side)}"
        return format_rate(tr.rate_bps)

    @staticmethod
    def _failed(side: SideState) -> bool:
        return side.transfer is not None and side.transfer.state == "failed"


def _last_stall_before_end(side: SideState) -> float | None:
    """The stall a side ended in (its last byte to its end), if it was one."""
    if side.ended_t is None or side.progress_t is None:
        return None
    quiet = side.ended_t - side.progress_t
    return quiet if quiet >= STALL_S else None


def _error(side: SideState) -> str:
    return (side.transfer.error if side.transfer else None) or "failed"


def pairs(transfers: Iterable[TransferSummary]) -> dict[CompareSide, TransferSummary]:
    """The sides of a comparison among a summary's transfers (empty: no comparison)."""
    return {t.compare: t for t in transfers if t.compare is not None}


def ended_verdict(summary: Summary) -> str:
    """Each side's end from a summary alone (a run stopped early, or whose stream was not followed)."""
    sides = pairs(summary.transfers)
    words = []
    for side in SIDES:
        t = sides.get(side)
        if t is None:
            continue
        if t.ok:
            words.append(f"{NAMES[side]} took {format_duration(t.duration_s)}")
        elif (t.error or "").startswith("stopped"):
            words.append(f"{NAMES[side]} stopped after {format_bytes(t.bytes)}")
        else:
            words.append(f"{NAMES[side]} failed after {format_bytes(t.bytes)}: {t.error or 'failed'}")
    return "; ".join(words)
