"""Ground truth by packet capture: what each TCP flow on the client's lab interfaces carried, counted
once per byte, as TCP does.

Why not the interface counters alone: ``rx_bytes − 94 × rx_packets`` estimates payload from a mean
header size, and it counts a segment that arrives twice (a spurious re-send from a server whose
ACKs a loaded machine delayed) twice, where ``tcpi_bytes_received`` counts it once.  In the lab under
two CPU burners both happen: one of eight back-to-back downloads had ~90 kB re-sent over cellular
(the server's RetransSegs +183), and another run's header mix put the estimate 19 kB (0.5 %) under
what the subflows really received.  tcpdump sees every segment with its sequence numbers, so a
flow's bytes are the union of its sequence ranges: re-sends count once, headers not at all.

``tcpdump`` writes headers only (128 B snap) into a pcap per interface; :func:`flow_bytes` reads it
(Ethernet, IPv4, TCP: the pcap format is 24 + 16 B of headers per file and per record).  A capture
that dropped packets says so and fails the test: its count would be short.  ::

    with capture(lab, ["wlan0", "wwan0"]) as cap:
        ...                                  # the traffic
    cap.flows["wlan0"]                       # {(src "ip:port", dst "ip:port"): bytes, ...}
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import signal
import socket
import struct
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field

from mptop.lab import Lab
from tests.support import wait_for

Flow = tuple[str, str]            # (source "ip:port", destination "ip:port")
_PCAP = struct.Struct("=IHHiIII")
_RECORD = struct.Struct("=IIII")
_SYN, _FIN = 0x02, 0x01


@dataclass
class Capture:
    flows: dict[str, dict[Flow, int]] = field(default_factory=dict)   # iface -> flow -> bytes


@contextlib.contextmanager
def capture(lab: Lab, ifaces: list[str]) -> Iterator[Capture]:
    """tcpdump on ``ifaces`` in the client's netns while the block runs; then each flow's bytes."""
    out = Capture()
    with tempfile.TemporaryDirectory(prefix="mptop-capture-") as tmp:
        procs = {}
        try:
            for iface in ifaces:
                with open(os.path.join(tmp, f"{iface}.log"), "w") as log:
                    procs[iface] = lab.popen(lab.client, ["tcpdump", "-i", iface, "-n", "-s", "128", "-B", "32768",
                                                          "--immediate-mode",
                                                          "-w", os.path.join(tmp, f"{iface}.pcap"), "tcp"],
                                             stdout=subprocess.DEVNULL, stderr=log)
            for iface, proc in procs.items():
                wait_for(functools.partial(_ready, tmp, iface, proc), timeout=30)
                assert proc.poll() is None, f"tcpdump on {iface}: {_said(tmp, iface)}"
            yield out
        finally:
            for proc in procs.values():
                proc.send_signal(signal.SIGINT)
            for proc in procs.values():
                proc.wait(timeout=30)
        for iface in ifaces:
            report = _said(tmp, iface)
            counts = re.findall(r"^(\d+) packets (captured|received by filter|dropped by kernel)$", report, re.M)
            got = {what: int(n) for n, what in counts}
            # A packet or two may arrive as tcpdump stops (a download beside): never the block's own,
            # which ended first.  A capture short of the block's packets would fail the byte checks.
            late = got.get("received by filter", 0) - got.get("captured", 0)
            assert len(got) == 3 and late <= 2 and not got["dropped by kernel"], \
                f"tcpdump on {iface} did not write every packet: {report}"
            out.flows[iface] = flow_bytes(os.path.join(tmp, f"{iface}.pcap"))


def _ready(tmp: str, iface: str, proc: subprocess.Popen[bytes]) -> bool:
    return "listening on" in _said(tmp, iface) or proc.poll() is not None


def _said(tmp: str, iface: str) -> str:
    with open(os.path.join(tmp, f"{iface}.log")) as f:
        return f.read()


def flow_bytes(path: str) -> dict[Flow, int]:
    """Each TCP flow's bytes in a pcap: the union of its segments' sequence ranges, a FIN counting
    one (as ``tcpi_bytes_received`` / ``bytes_acked`` count it); the SYN's sequence number is the base."""
    with open(path, "rb") as f:
        data = f.read()
    magic, _, _, _, _, _, linktype = _PCAP.unpack_from(data)
    assert magic in (0xA1B2C3D4, 0xA1B23C4D) and linktype == 1, (hex(magic), linktype)   # Ethernet, native order
    ranges: dict[Flow, list[tuple[int, int]]] = {}
    base: dict[Flow, int] = {}
    pos = _PCAP.size
    while pos + _RECORD.size <= len(data):
        _, _, incl, orig = _RECORD.unpack_from(data, pos)
        frame = data[pos + _RECORD.size: pos + _RECORD.size + incl]
        pos += _RECORD.size + incl
        if frame[12:14] != b"\x08\x00" or frame[23] != socket.IPPROTO_TCP:
            continue
        ihl = (frame[14] & 0x0F) * 4
        total = struct.unpack_from("!H", frame, 16)[0] or orig - 14     # 0: a GRO packet over 64 KiB
        tcp = 14 + ihl
        sport, dport, seq = struct.unpack_from("!HHI", frame, tcp)
        flags = frame[tcp + 13]
        length = total - ihl - (frame[tcp + 12] >> 4) * 4
        flow = (f"{socket.inet_ntoa(frame[26:30])}:{sport}", f"{socket.inet_ntoa(frame[30:34])}:{dport}")
        if flags & _SYN:
            base[flow] = seq + 1
            continue
        if flow not in base:          # began before the capture: not counted
            continue
        start = (seq - base[flow]) % (1 << 32)
        end = start + length + (1 if flags & _FIN else 0)
        if end > start:
            ranges.setdefault(flow, []).append((start, end))
    return {flow: _union(spans) for flow, spans in ranges.items()}


def _union(spans: list[tuple[int, int]]) -> int:
    total, reach = 0, 0
    for start, end in sorted(spans):
        if end > reach:
            total += end - max(start, reach)
            reach = end
    return total
