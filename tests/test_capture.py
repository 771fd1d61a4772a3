"""The capture's arithmetic (tests/capture.py), on a synthetic pcap: a flow's bytes are what its receiver
acknowledged, and a connection that uses the same addresses again is a flow of its own."""

from __future__ import annotations

import socket
import struct
from pathlib import Path

from tests.capture import flow_bytes

CLIENT, SERVER = ("10.0.0.2", 5000), ("10.0.0.1", 80)
SYN, SYN_ACK, ACK = 0x02, 0x12, 0x10


def packet(src: tuple[str, int], dst: tuple[str, int], seq: int, ack: int, flags: int) -> bytes:
    """One pcap record: Ethernet, IPv4, a 20-byte TCP header (no payload: only the numbers count)."""
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40, 0, 0, 64, socket.IPPROTO_TCP, 0,
                     socket.inet_aton(src[0]), socket.inet_aton(dst[0]))
    tcp = struct.pack("!HHIIBBHHH", src[1], dst[1], seq % (1 << 32), ack % (1 << 32), 0x50, flags, 0, 0, 0)
    frame = bytes(12) + b"\x08\x00" + ip + tcp
    return struct.pack("=IIII", 0, 0, len(frame), len(frame)) + frame


def download(client_isn: int, server_isn: int, size: int) -> bytes:
    """A handshake and the client's ACK of ``size`` bytes (one more: the server's FIN)."""
    return (packet(CLIENT, SERVER, client_isn, 0, SYN) + packet(SERVER, CLIENT, server_isn, client_isn + 1, SYN_ACK)
            + packet(CLIENT, SERVER, client_isn + 1, server_isn + 1 + size // 2, ACK)
            + packet(CLIENT, SERVER, client_isn + 1, server_isn + 1 + size, ACK)
            + packet(CLIENT, SERVER, client_isn + 1, server_isn + 1 + size // 2, ACK))     # an old ACK, late


def test_a_connection_on_the_same_addresses_again_is_counted_apart(tmp_path: Path) -> None:
    pcap = tmp_path / "wwan0.pcap"
    header = struct.pack("=IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    # The second one's sequence numbers wrap past 2**32: still its bytes.
    pcap.write_bytes(header + download(1_000, 50_000, 300_001) + download(90_000, (1 << 32) - 100, 120_001))
    assert flow_bytes(str(pcap)) == {("10.0.0.1:80", "10.0.0.2:5000#1"): 300_001,
                                     ("10.0.0.1:80", "10.0.0.2:5000"): 120_001}
