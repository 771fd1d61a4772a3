"""SYNTHETIC development recording for the TUI: made-up numbers, not a measurement.

A plausible 45 s two-path run (Wi-Fi 40 Mbit/s + Cellular 10 Mbit/s): one MPTCP download with an
initial subflow on wlan0 and a join on wwan0, one download that falls back to TCP (Wi-Fi only),
and a Wi-Fi outage from 14 s to 19 s.  It exists to develop and unit-test the views before real
recordings of ``mptop demo`` land in assets/; real recordings replace it for anything user-facing.

    python tests/make_dev_recording.py OUT.ndjson
"""

from __future__ import annotations

import random
import sys
from dataclasses import dataclass, field

from mptop.core.model import (
    Event, HostInfo, PathSample, Record, Sample, Summary, SubflowSample, TransferSample, TransferSummary,
)
from mptop.core.recording import write_record

STEP = 0.25
DURATION = 45.0
CAPACITY = {"wlan0": 40e6, "wwan0": 10e6}           # bit/s
LABELS = {"wlan0": "Wi-Fi", "wwan0": "Cellular"}
RTT = {"wlan0": 12.0, "wwan0": 48.0}
OUTAGE = (14.0, 19.0)                                  # Wi-Fi link down .. up
STALL_SEEN, RECOVERY_SEEN = 14.5, 19.7                 # when a sampler would notice


@dataclass
class _Flow:
    id: int
    iface: str
    local: str
    remote: str
    start: float
    join: bool
    bytes: int = 0
    retransmits: int = 0
    rate: float = 0.0


@dataclass
class _Transfer:
    id: int
    url: str
    total: int
    start: float
    status: str
    reason: str | None
    flows: list[_Flow] = field(default_factory=list)
    done_at: float | None = None

    @property
    def bytes(self) -> int:
        return sum(f.bytes for f in self.flows)


def _wifi_up(t: float) -> bool:
    return not OUTAGE[0] <= t < OUTAGE[1] + 0.6   # the subflow resumes ~0.6 s after link up


def _transfers() -> list[_Transfer]:
    mp = _Transfer(1, "http://192.0.2.1/bytes/200000000", 200_000_000, 0.0, "mptcp", None, [
        _Flow(1, "wlan0", "192.0.2.2:40312", "192.0.2.1:80", 0.0, False),
        _Flow(2, "wwan0", "198.51.100.2:51724", "198.51.100.1:80", 0.5, True),
    ])
    tcp = _Transfer(2, "http://192.0.2.1:8080/bytes/30000000", 30_000_000, 4.0, "fallback",
                    "server does not speak MPTCP",
                    [_Flow(1, "wlan0", "192.0.2.2:40326", "192.0.2.1:8080", 4.0, False)])
    return [mp, tcp]


def _step(t: float, transfers: list[_Transfer], rng: random.Random) -> None:
    """Advance every flow by one step: each path's capacity is split among its active flows."""
    active = [f for tr in transfers if tr.done_at is None and t >= tr.start for f in tr.flows if t >= f.start]
    for iface, capacity in CAPACITY.items():
        flows = [f for f in active if f.iface == iface]
        up = iface != "wlan0" or _wifi_up(t)
        for f in flows:
            ramp = min(1.0, (t - f.start) / 1.5 + 0.2)
            f.rate = capacity / len(flows) * ramp * rng.uniform(0.93, 1.03) if up else 0.0
            f.bytes += int(f.rate * STEP / 8)
            if not up and rng.random() < 0.3:
                f.retransmits += 1
    for tr in transfers:
        if tr.done_at is None and tr.bytes >= tr.total:
            excess = tr.bytes - tr.total
            tr.flows[0].bytes -= excess
            tr.done_at = t


def _sample(t: float, transfers: list[_Transfer], link: dict[str, bool]) -> Sample:
    out, per_path = [], {iface: [0.0, 0, 0] for iface in CAPACITY}
    for tr in transfers:
        if t < tr.start:
            continue
        running = tr.done_at is None
        subflows = []
        for f in tr.flows:
            if t < f.start:
                continue
            rate = f.rate if running else 0.0
            stalled_rtt = 0 if rate else 180.0
            subflows.append(SubflowSample(
                id=f.id, local=f.local, remote=f.remote, iface=f.iface, path=LABELS[f.iface],
                bytes_received=f.bytes, rate_bps=rate, rtt_ms=round(RTT[f.iface] + stalled_rtt, 1),
                backup=False, cwnd=10 if not rate else 38 + f.id * 3, retransmits=f.retransmits,
                join=f.join, age_s=round(t - f.start, 2), closed=not running,
            ))
            per_path[f.iface][0] += rate
            per_path[f.iface][1] += f.bytes
            per_path[f.iface][2] += running
        rate = sum(s.rate_bps for s in subflows)
        eta = (tr.total - tr.bytes) * 8 / rate if running and rate > 0 else None
        out.append(TransferSample(
            id=tr.id, url=tr.url, bytes=tr.bytes, total=tr.total, rate_bps=rate,
            status=tr.status, reason=tr.reason, subflows=subflows, eta_s=eta,
            state="running" if running else "done",
        ))
    total = sum(v[0] for v in per_path.values()) or 1.0
    paths = {
        iface: PathSample(label=LABELS[iface], rate_bps=v[0], bytes=v[1], share=v[0] / total,
                          link_up=link[iface], subflows=v[2],
                          stalled=iface == "wlan0" and STALL_SEEN <= t < RECOVERY_SEEN)
        for iface, v in per_path.items()
    }
    return Sample(t=round(t, 2), transfers=out, paths=paths)


SCRIPTED_EVENTS = [
    Event(0.1, "subflow_up", "wlan0", 1, "Wi-Fi subflow up: 192.0.2.2:40312 → 192.0.2.1:80"),
    Event(0.4, "address_announced", None, 1, "server announced 198.51.100.1 port 80 (id 2)"),
    Event(0.5, "subflow_up", "wwan0", 1, "Cellular subflow up: 198.51.100.2:51724 → 198.51.100.1:80"),
    Event(4.1, "fallback", "wlan0", 2, "server does not speak MPTCP"),
    Event(OUTAGE[0], "link_down", "wlan0"),
    Event(STALL_SEEN, "path_stalled", "wlan0"),
    Event(OUTAGE[1], "link_up", "wlan0"),
    Event(RECOVERY_SEEN, "path_recovered", "wlan0"),
]


def make_records(seed: int = 7) -> list[Record]:
    """The whole synthetic run as records (deterministic for a given seed)."""
    rng = random.Random(seed)
    transfers = _transfers()
    records: list[Record] = [HostInfo(
        kernel="6.18.0 (synthetic dev recording)", enabled=True, path_manager="in-kernel",
        scheduler="default", subflows_limit=2, add_addr_accepted_limit=2, events="netlink",
        labels=dict(LABELS),
    )]
    events = list(SCRIPTED_EVENTS)
    t = STEP
    while t <= DURATION + 1e-9:
        _step(t, transfers, rng)
        while events and events[0].t <= t:
            records.append(events.pop(0))
        for tr in transfers:
            if tr.done_at == t:
                records.append(Event(t, "transfer_done", None, tr.id, f"{tr.total} bytes"))
        records.append(_sample(t, transfers, {"wlan0": not OUTAGE[0] <= t < OUTAGE[1], "wwan0": True}))
        t = round(t + STEP, 2)
    records.append(Summary(duration_s=DURATION, transfers=[
        TransferSummary(id=tr.id, url=tr.url, file=None, bytes=tr.bytes, sha256=None, status=tr.status,
                        reason=tr.reason, ok=tr.done_at is not None, error=None,
                        path_bytes={f.iface: f.bytes for f in tr.flows})
        for tr in transfers
    ]))
    return records


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__.strip().splitlines()[-1].strip(), file=sys.stderr)
        return 2
    with open(argv[0], "w", encoding="utf-8") as fp:
        for record in make_records():
            write_record(fp, record)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
