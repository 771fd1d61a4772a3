"""Unit tests for the struct decoders: exact round trips at known offsets, and fuzzing.

The offsets below are written out independently of the decoder's format strings
(from linux/tcp.h and linux/mptcp.h, checked with offsetof()), so a layout slip in
:mod:`mptop.kernel.structs` shows up here.
"""

from __future__ import annotations

import socket
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mptop.kernel.structs import (
    MPTCP_INFO_MIN,
    MPTCP_INFO_SIZE,
    TCP_INFO_MIN,
    TCP_INFO_SIZE,
    parse_mptcp_info,
    parse_mptcp_info_from,
    parse_sockaddr,
    parse_tcp_info,
    parse_tcp_info_from,
)
from mptop.kernel.types import KernelParseError

# field -> (offset, struct code, value); values chosen so each field is distinct
MPTCP_FIELDS = {
    "subflows": (0, "B", 3), "add_addr_signal": (1, "B", 4), "add_addr_accepted": (2, "B", 5),
    "subflows_max": (3, "B", 6), "add_addr_signal_max": (4, "B", 7), "add_addr_accepted_max": (5, "B", 8),
    "flags": (8, "I", 2), "token": (12, "I", 0xDEADBEEF), "write_seq": (16, "Q", 2**63 + 11),
    "snd_una": (24, "Q", 2**40 + 12), "rcv_nxt": (32, "Q", 2**50 + 13),
    "local_addr_used": (40, "B", 9), "local_addr_max": (41, "B", 10), "csum_enabled": (42, "B", 1),
    "retransmits": (44, "I", 14), "bytes_retrans": (48, "Q", 15), "bytes_sent": (56, "Q", 16),
    "bytes_received": (64, "Q", 2**33 + 17), "bytes_acked": (72, "Q", 18), "subflows_total": (80, "B", 4),
    "last_data_sent_ms": (84, "I", 19), "last_data_recv_ms": (88, "I", 20), "last_ack_recv_ms": (92, "I", 21),
}
TCP_FIELDS = {
    "state": (0, "B", 1), "retransmits": (2, "B", 2), "rtt_us": (68, "I", 12345), "rttvar_us": (72, "I", 678),
    "snd_cwnd": (80, "I", 42), "rcv_rtt_us": (92, "I", 999), "total_retrans": (100, "I", 7),
    "pacing_rate": (104, "Q", 2**35 + 1), "bytes_acked": (120, "Q", 2**34 + 2),
    "bytes_received": (128, "Q", 2**36 + 3), "min_rtt_us": (148, "I", 321),
    "delivery_rate": (160, "Q", 2**37 + 4), "bytes_sent": (200, "Q", 2**38 + 5),
    "bytes_retrans": (208, "Q", 2**39 + 6),
}
# Poison in the bytes no decoded field covers (holes, padding, fields we skip).
POISON = 0xA5


def build(fields: dict[str, tuple[int, str, int]], size: int) -> bytearray:
    buf = bytearray([POISON]) * size
    for offset, code, value in fields.values():
        struct.pack_into("=" + code, buf, offset, value)
    return buf


def expected(fields: dict[str, tuple[int, str, int]], length: int, groups: list[tuple[int, list[str]]]
             ) -> dict[str, int | None]:
    """Field values a decoder must give for a buffer of ``length`` bytes."""
    out: dict[str, int | None] = {name: value for name, (_, _, value) in fields.items()}
    for end, names in groups:
        if length < end:
            out.update(dict.fromkeys(names))
    return out


MPTCP_GROUPS = [
    (43, ["local_addr_used", "local_addr_max", "csum_enabled"]),
    (80, ["retransmits", "bytes_retrans", "bytes_sent", "bytes_received", "bytes_acked"]),
    (81, ["subflows_total"]),
    (96, ["last_data_sent_ms", "last_data_recv_ms", "last_ack_recv_ms"]),
]
TCP_GROUPS = [(offset + struct.calcsize(code), [name]) for name, (offset, code, _) in TCP_FIELDS.items()
              if offset >= 104]


@pytest.mark.parametrize("length", [40, 43, 48, 80, 88, 96, 136])
def test_mptcp_info_round_trip(length: int) -> None:
    buf = build(MPTCP_FIELDS, max(length, 96))[:length]
    info = parse_mptcp_info(bytes(buf))
    want = expected(MPTCP_FIELDS, length, MPTCP_GROUPS)
    got = {name: getattr(info, name) for name in MPTCP_FIELDS}
    if want["csum_enabled"] is not None:
        want["csum_enabled"] = True
        assert got["csum_enabled"] is True
    assert got == want
    assert info.fallback is False and info.remote_key_received is True   # flags = 2


def test_mptcp_info_padding_of_older_kernels_is_not_read_as_fields() -> None:
    # A 5.12-6.4 kernel returns 48 bytes: bytes 44-47 are zeroed padding, not retransmits.
    info = parse_mptcp_info(bytes(build(MPTCP_FIELDS, 96)[:48]))
    assert info.local_addr_used == 9 and info.retransmits is None
    # A 6.8/6.9 kernel returns 88 bytes: subflows_total yes, last_* (84-87 = padding) no.
    info = parse_mptcp_info(bytes(build(MPTCP_FIELDS, 96)[:88]))
    assert info.subflows_total == 4 and info.last_data_sent_ms is None


@pytest.mark.parametrize("length", [104, 112, 128, 136, 152, 168, 208, 216, 232, 280])
def test_tcp_info_round_trip(length: int) -> None:
    buf = build(TCP_FIELDS, max(length, 280))[:length]
    info = parse_tcp_info(memoryview(buf))
    assert {name: getattr(info, name) for name in TCP_FIELDS} == expected(TCP_FIELDS, length, TCP_GROUPS)


def test_decoding_at_an_offset_with_a_kernel_length() -> None:
    tcp = build(TCP_FIELDS, 280)
    mptcp = build(MPTCP_FIELDS, 96)
    blob = bytes(7) + mptcp + tcp + bytes(5)
    info = parse_mptcp_info_from(blob, 7, 80)
    assert info.bytes_received == 2**33 + 17 and info.subflows_total is None
    assert parse_tcp_info_from(blob, 7 + 96, 136).bytes_received == 2**36 + 3
    # a kernel length beyond the buffer is clipped to the buffer, never read past it
    assert parse_tcp_info_from(blob[:7 + 96 + 150], 7 + 96, 280).min_rtt_us is None


def test_too_short_is_a_parse_error() -> None:
    with pytest.raises(KernelParseError):
        parse_mptcp_info(bytes(MPTCP_INFO_MIN - 1))
    with pytest.raises(KernelParseError):
        parse_tcp_info(bytes(TCP_INFO_MIN - 1))
    with pytest.raises(KernelParseError):
        parse_tcp_info_from(bytes(300), 250)
    with pytest.raises(KernelParseError):
        parse_mptcp_info_from(bytes(100), -1)


def sockaddr_in(ip: str, port: int) -> bytes:
    return struct.pack("=H", socket.AF_INET) + struct.pack(">H", port) + socket.inet_aton(ip) + bytes(8)


def sockaddr_in6(ip: str, port: int) -> bytes:
    return (struct.pack("=H", socket.AF_INET6) + struct.pack(">HI", port, 0)
            + socket.inet_pton(socket.AF_INET6, ip) + struct.pack("=I", 0))


@pytest.mark.parametrize(("raw", "want"), [
    (sockaddr_in("192.0.2.2", 40001) + bytes(112), ("192.0.2.2", 40001)),
    (sockaddr_in("198.51.100.1", 80), ("198.51.100.1", 80)),
    (sockaddr_in6("2001:db8::2", 443) + bytes(100), ("2001:db8::2", 443)),
    (sockaddr_in6("::ffff:192.0.2.1", 8080), ("192.0.2.1", 8080)),
    (sockaddr_in6("::1", 65535), ("::1", 65535)),
])
def test_sockaddr(raw: bytes, want: tuple[str, int]) -> None:
    assert parse_sockaddr(raw) == want


@pytest.mark.parametrize("raw", [b"", b"\x02", sockaddr_in("1.2.3.4", 1)[:7], sockaddr_in6("::1", 1)[:23],
                                 struct.pack("=H", socket.AF_UNIX) + bytes(126), bytes(128)])
def test_bad_sockaddr_is_a_parse_error(raw: bytes) -> None:
    with pytest.raises(KernelParseError):
        parse_sockaddr(raw)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=320))
def test_random_buffers_only_raise_parse_errors(raw: bytes) -> None:
    for parse, minimum in ((parse_mptcp_info, MPTCP_INFO_MIN), (parse_tcp_info, TCP_INFO_MIN),
                           (parse_sockaddr, None)):
        try:
            parse(raw)
        except KernelParseError:
            assert minimum is None or len(raw) < minimum
        # any other exception type fails the test


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=MPTCP_INFO_SIZE, max_size=MPTCP_INFO_SIZE + 64),
       st.binary(min_size=TCP_INFO_SIZE, max_size=300))
def test_full_length_random_buffers_always_parse(mptcp_raw: bytes, tcp_raw: bytes) -> None:
    info = parse_mptcp_info(mptcp_raw)
    assert info.token == struct.unpack_from("=I", mptcp_raw, 12)[0]
    assert info.last_ack_recv_ms == struct.unpack_from("=I", mptcp_raw, 92)[0]
    assert info.csum_enabled is (mptcp_raw[42] != 0)
    tcp = parse_tcp_info(tcp_raw)
    assert tcp.state == tcp_raw[0]
    assert tcp.bytes_retrans == struct.unpack_from("=Q", tcp_raw, 208)[0]


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=0, max_size=400), st.integers(-8, 420), st.integers(-8, 420))
def test_random_offsets_and_lengths_only_raise_parse_errors(raw: bytes, offset: int, length: int) -> None:
    usable = min(length, len(raw) - offset)
    for parse, minimum in ((parse_mptcp_info_from, MPTCP_INFO_MIN), (parse_tcp_info_from, TCP_INFO_MIN)):
        try:
            parse(raw, offset, length)
        except KernelParseError:
            assert offset < 0 or length < 0 or usable < minimum
        else:
            assert offset >= 0 and usable >= minimum
