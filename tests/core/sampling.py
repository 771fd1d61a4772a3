"""A download sampled in the lab, and the ground truth to check it against (interface counters).

Shared by the sampler's and the fallback verdicts' lab tests.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from mptop.core.model import Event, HostInfo, Record, Sample, Summary
from mptop.core.sampler import Sampler
from mptop.core.transfer import Transfer, TransferManager, TransferOptions
from mptop.lab import Lab

# What the client's interface counts per received skb besides payload: Ethernet 14 + IPv4 20 +
# TCP 20 + timestamps 12, and on MPTCP data a DSS option with data ACK and mapping (28).  GSO
# batches vary with load (one header per skb), so rx bytes alone differ from payload by 0.4-4 %.
SHAPED = {"wlan0": 40, "wwan0": 10}     # Mbit/s: the lab's 80/20 split, like Wi-Fi beside cellular
TCP_HEADERS = 66
MPTCP_HEADERS = TCP_HEADERS + 28
# A plain-TCP server and a middlebox stripping MP_CAPABLE look the same from the client.
SYNACK = "no MPTCP option in the server's SYN-ACK (the server does not speak MPTCP, or a middlebox removes it)"


def rx_counters(lab: Lab) -> dict[str, tuple[int, int]]:
    """(rx bytes, rx packets) of the client's lab interfaces."""
    names = {p.iface for p in lab.paths}
    out = {}
    with open(f"/proc/{lab.client.pid}/net/dev") as f:      # the holder's netns: the client's
        for line in f:
            dev, sep, rest = line.partition(":")
            if sep and dev.strip() in names:
                fields = rest.split()
                out[dev.strip()] = (int(fields[0]), int(fields[1]))
    return out


# Called with each sample; a step that returns a reason stops the transfer with it (Transfer.fail).
Step = Callable[[Sample], str | None]


@dataclass
class Run:
    sampler: Sampler
    host: HostInfo
    transfer: Transfer
    samples: list[Sample]
    events: list[Event]
    summary: Summary
    rx: dict[str, tuple[int, int]]    # each lab path's (rx bytes, rx packets) over the download

    def payload(self, iface: str, headers: int = MPTCP_HEADERS) -> int:
        """Payload bytes the interface received: its rx bytes less one set of headers per skb."""
        nbytes, packets = self.rx[iface]
        return nbytes - packets * headers


async def sample_download(lab: Lab, url: str, step: Step | None = None, require_mptcp: bool = False,
                          deadline_s: float = 30.0, insecure: bool = False, **kwargs: object) -> Run:
    """Download ``url`` with the transfer engine while sampling, through the sampler's record stream."""
    rx0 = rx_counters(lab)
    records: list[Record] = []
    options = TransferOptions(output="/dev/null", require_mptcp=require_mptcp, insecure=insecure)
    async with TransferManager([url], options) as manager:
        sampler = Sampler(manager.transfers, interval=0.25, require_mptcp=require_mptcp,
                          **kwargs)  # type: ignore[arg-type]
        downloads = None
        async for record in sampler.records(until_done=True):
            records.append(record)
            if isinstance(record, HostInfo):
                # Like `mptop get`: the header (and the PM subscription) before any connection.
                downloads = asyncio.create_task(manager.run())
            elif isinstance(record, Sample):
                assert record.t < deadline_s, "the download did not finish"
                stop = step(record) if step is not None else None
                if stop is not None:
                    manager.transfers[0].fail(stop)
        assert downloads is not None
        await downloads
        transfer = manager.transfers[0]
        assert transfer.sockets == []          # released by the sampler after its final read
    rx = {i: (b - rx0[i][0], p - rx0[i][1]) for i, (b, p) in rx_counters(lab).items()}
    host, summary = records[0], records[-1]
    assert isinstance(host, HostInfo) and isinstance(summary, Summary)
    samples = [r for r in records if isinstance(r, Sample)]
    events = [r for r in records if isinstance(r, Event)]
    assert len(samples) + len(events) + 2 == len(records)
    # Each poll's events come just before its sample, none later than it.
    pending: list[Event] = []
    for r in records[1:-1]:
        if isinstance(r, Event):
            pending.append(r)
        else:
            assert isinstance(r, Sample) and all(e.t <= r.t for e in pending)
            pending = []
    assert pending == []
    return Run(sampler, host, transfer, samples, events, summary, rx)
