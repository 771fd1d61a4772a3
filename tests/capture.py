"""Ground truth by packet capture: what each TCP flow on the client's lab interfaces carried, counted
once per byte, as TCP does.

Why not the interface counters alone: ``rx_bytes − 94 × rx_packets`` estimates payload from a mean
header size, and counts what no socket took: a segment that arrives twice (a spurious re-send from
a server whose ACKs a loaded machine delayed), and segments still in flight on a subflow its client
had already closed (answered by resets; 237 kB of them once, when the server had re-sent that data
on the other path).  In the lab under two CPU burners all of it happens: one of eight back-to-back
downloads had ~90 kB re-sent over cellular (the server's RetransSegs +183), and another run's header
mix put the estimate 19 kB (0.5 %) under what the subflows really received.  tcpdump sees every
segment, so a flow's bytes are what its receiver acknowledged: the highest ACK number it sent.

``tcpdump`` writes headers only (128 B snap), each packet as it comes, into a pcap per interface;
:func:`flow_bytes` reads it (Ethernet, IPv4, TCP: the pcap format is 24 + 16 B of headers per file
and per record).  At the block's end a marker goes out on every path — a SYN to a closed port of the
server (:data:`MARK_PORT`), refused — and tcpdump stops only once the marker is in its file, so every
packet before it is too (a loaded machine's tcpdump had not yet read the last 3 when stopped at
once).  A capture the kernel dropped packets from fails the test: its count would be short.  ::

    with capture(lab) as cap:
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
_SYN, _ACK = 0x02, 0x10
MARK_PORT = 9                     # discard: nothing listens there in the lab


@dataclass
class Capture:
    flows: dict[str, dict[Flow, int]] = field(default_factory=dict)   # iface -> flow -> bytes


@contextlib.contextmanager
def capture(lab: Lab) -> Iterator[Capture]:
    """tcpdump on every lab path in the client's netns while the block runs; then each flow's bytes."""
    out = Capture()
    with tempfile.TemporaryDirectory(prefix="mptop-capture-") as tmp:
        pcap = {p.iface: os.path.join(tmp, f"{p.iface}.pcap") for p in lab.paths}
        procs = {}
        try:
            for iface, path in pcap.items():
                with open(f"{path}.log", "w") as log:
                    procs[iface] = lab.popen(lab.client, ["tcpdump", "-i", iface, "-n", "-s", "128", "-B", "32768",
                                                          "--immediate-mode", "-U", "-w", path, "tcp"],
                                             stdout=subprocess.DEVNULL, stderr=log)
            for iface, proc in procs.items():
                wait_for(functools.partial(_ready, pcap[iface], proc), timeout=30)
                assert proc.poll() is None, f"tcpdump on {iface}: {_said(pcap[iface])}"
            yield out
            for p in lab.paths:
                _mark(lab, p.server_addr)
                wait_for(functools.partial(_marked, pcap[p.iface], procs[p.iface]), timeout=30)
        finally:
            for proc in procs.values():
                proc.send_signal(signal.SIGINT)
            for proc in procs.values():
                proc.wait(timeout=30)
        for iface, path in pcap.items():
            report = _said(path)
            assert re.search(r"^0 packets dropped by kernel$", report, re.M), f"tcpdump on {iface}: {report}"
            out.flows[iface] = flow_bytes(path)


def flow(source: tuple[str, int], destination: tuple[str, int]) -> Flow:
    """The key of :attr:`Capture.flows` for these addresses (IPv4)."""
    return f"{source[0]}:{source[1]}", f"{destination[0]}:{destination[1]}"


def from_port(flows: dict[Flow, int], port: int = 80) -> list[int]:
    """The bytes of each flow sent from ``port``: from the lab's server, what a download received."""
    return [n for (source, _), n in flows.items() if source.endswith(f":{port}")]


def _mark(lab: Lab, server: str) -> None:
    with lab.client.entered(), socket.socket() as sock:
        sock.settimeout(10)
        with contextlib.suppress(ConnectionRefusedError):
            sock.connect((server, MARK_PORT))


def _marked(path: str, proc: subprocess.Popen[bytes]) -> bool:
    return any(dst.endswith(f":{MARK_PORT}") for (_, dst), *_ in _segments(path)) or proc.poll() is not None


def _ready(path: str, proc: subprocess.Popen[bytes]) -> bool:
    return "listening on" in _said(path) or proc.poll() is not None


def _said(path: str) -> str:
    with open(f"{path}.log") as f:
        return f.read()


def flow_bytes(path: str) -> dict[Flow, int]:
    """Each TCP flow's bytes in a pcap: what its receiver acknowledged (the highest ACK number it sent,
    less the sender's first sequence number), as ``tcpi_bytes_received`` / ``bytes_acked`` count them
    — a FIN counts one; a segment sent twice counts once; a segment that came after the receiver
    closed (answered by a reset) not at all.  Addresses used again by a later connection (a SYN with
    another first sequence number: a reset subflow leaves no TIME-WAIT, and a join's port is random)
    make another flow: the earlier one's destination gets ``#1``, ``#2``, ...."""
    base: dict[Flow, int] = {}
    acked: dict[Flow, int] = {}
    earlier: dict[Flow, int] = {}
    for key, flags, seq, ack in _segments(path):
        if flags & _SYN:
            if key in base and base[key] != seq + 1:         # the same addresses, a new connection
                n = sum(1 for k in earlier if k[0] == key[0] and k[1].startswith(f"{key[1]}#")) + 1
                earlier[(key[0], f"{key[1]}#{n}")] = acked.pop(key, 0)
            base[key] = seq + 1
        back = (key[1], key[0])            # the flow this segment acknowledges
        if flags & _ACK and back in base:
            acked[back] = max(acked.get(back, 0), (ack - base[back]) % (1 << 32))
    return {key: n for key, n in {**earlier, **acked}.items() if n}


def _segments(path: str) -> Iterator[tuple[Flow, int, int, int]]:
    """(flow, TCP flags, sequence number, acknowledgement number) of each IPv4 TCP packet in a pcap
    (one that tcpdump is still writing too: a record cut short ends it)."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < _PCAP.size:
        return
    magic, _, _, _, _, _, linktype = _PCAP.unpack_from(data)
    assert magic in (0xA1B2C3D4, 0xA1B23C4D) and linktype == 1, (hex(magic), linktype)   # Ethernet, native order
    pos = _PCAP.size
    while pos + _RECORD.size <= len(data):
        _, _, incl, _ = _RECORD.unpack_from(data, pos)
        frame = data[pos + _RECORD.size: pos + _RECORD.size + incl]
        pos += _RECORD.size + incl
        if len(frame) < incl or frame[12:14] != b"\x08\x00" or frame[23] != socket.IPPROTO_TCP:
            continue
        tcp = 14 + (frame[14] & 0x0F) * 4
        sport, dport, seq, ack = struct.unpack_from("!HHII", frame, tcp)
        key = (f"{socket.inet_ntoa(frame[26:30])}:{sport}", f"{socket.inet_ntoa(frame[30:34])}:{dport}")
        yield key, frame[tcp + 13], seq, ack
