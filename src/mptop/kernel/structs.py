"""Decoders for the kernel structs mptop reads: ``mptcp_info``, ``tcp_info`` and sockaddrs.

Both socket options and sock_diag hand us these structs with the length *this* kernel
filled.  The structs grow between kernel versions, so a field is decoded only when the
buffer covers it; newer fields come back as ``None``.

Bad input (too short, unknown address family) raises :class:`KernelParseError` and
nothing else.  The ``*_from`` variants decode from an offset inside a larger buffer
without slicing it (the socket-option reader uses them on its preallocated buffers).
"""

from __future__ import annotations

import socket
import struct
from bisect import bisect_right
from collections.abc import Sequence
from operator import itemgetter
from typing import TYPE_CHECKING

from mptop.kernel.types import Address, KernelParseError, MptcpInfo, TcpInfo

if TYPE_CHECKING:        # ctypes itself: not on `mptop watch`'s way to its first frame (bench/startup.py)
    import ctypes

    # The socket-option reader hands its preallocated ctypes buffers over as they are.
    Buffer = bytes | bytearray | memoryview | ctypes.Array[ctypes.c_char]

__all__ = [
    "MPTCP_INFO_MIN",
    "MPTCP_INFO_SIZE",
    "TCP_INFO_MIN",
    "TCP_INFO_SIZE",
    "SOCKADDR_SIZE",
    "MPTCP_INFO_FORMAT",
    "MPTCP_INFO_LAST_SPAN",
    "TCP_INFO_FORMAT",
    "TCP_INFO_LAST_SPAN",
    "TCP_INFO_ORDER",
    "parse_mptcp_info",
    "parse_mptcp_info_from",
    "parse_tcp_info",
    "parse_tcp_info_from",
    "parse_sockaddr",
    "parse_sockaddr_from",
]


class _GrowingStruct:
    """A struct that gained fields over kernel versions.

    ``parts`` are ``(format fragment, end offset)`` pairs in layout order; the first part
    is mandatory.  The fields of a part are decoded only when the buffer reaches its end
    offset, so fields that lay in an older kernel's tail padding (zero-filled, not
    meaningful) stay ``None`` instead of reading as 0.
    """

    def __init__(self, parts: Sequence[tuple[str, int]]) -> None:
        fmt = "="
        self.ends: list[int] = []
        self.prefixes: list[struct.Struct] = []
        for fragment, end in parts:
            fmt += fragment
            prefix = struct.Struct(fmt)
            if prefix.size != end:  # the layout table itself is wrong: fail at import
                raise AssertionError(f"{fmt!r} is {prefix.size} bytes, expected {end}")
            self.ends.append(end)
            self.prefixes.append(prefix)
        self.full = self.prefixes[-1]
        self.format = fmt[1:]      # the whole layout without the byte-order prefix
        self.size = self.full.size
        self.minimum = self.ends[0]
        total = len(self.full.unpack(bytes(self.size)))
        self.padding = [(None,) * (total - len(p.unpack(bytes(p.size)))) for p in self.prefixes]

    def unpack(self, buf: Buffer, offset: int, length: int | None, what: str) -> tuple[int | None, ...]:
        """Decode at ``offset``; ``length`` = bytes the kernel filled (None: up to the buffer's end)."""
        n = _room(buf, offset, length)
        if n >= self.size:
            return self.full.unpack_from(buf, offset)
        if n < self.minimum:
            raise KernelParseError(f"{what}: {max(n, 0)} bytes at offset {offset}, need at least {self.minimum}")
        i = bisect_right(self.ends, n) - 1
        return self.prefixes[i].unpack_from(buf, offset) + self.padding[i]


# struct mptcp_info (include/uapi/linux/mptcp.h), grouped by the kernel release that added
# the fields.  Values come out in MptcpInfo's field order, csum_enabled as a bool ("?").
_MPTCP_INFO = _GrowingStruct([
    ("6B2x2I3Q", 40),   # 5.9: counters, flags, token, sequence numbers
    ("2B?", 43),        # 5.12/5.14: local_addr_used, local_addr_max, csum_enabled
    ("xI4Q", 80),       # 6.5: retransmits, bytes_retrans/sent/received/acked
    ("B", 81),          # 6.8: subflows_total
    ("3x3I", 96),       # 6.10: last_data_sent/recv, last_ack_recv (81-83: 6.18+ maxima, reserved)
])
MPTCP_INFO_MIN = _MPTCP_INFO.minimum
MPTCP_INFO_SIZE = _MPTCP_INFO.size
MPTCP_INFO_FORMAT = _MPTCP_INFO.format   # MPTCP_INFO_SIZE bytes, values in MptcpInfo order
# mptcpi_last_data_sent .. mptcpi_last_ack_recv: "ms ago", they move on an idle connection.
MPTCP_INFO_LAST_SPAN = (84, 96)

# struct tcp_info (include/uapi/linux/tcp.h), only the fields TcpInfo carries; offsets were
# checked with offsetof() against linux/tcp.h.  Unpack order is layout order.
_TCP_INFO = _GrowingStruct([
    ("BxB65xII4xI8xI4xI", 104),  # state@0 retransmits@2 rtt@68 rttvar@72 snd_cwnd@80 rcv_rtt@92 total_retrans@100
    ("Q", 112),                  # pacing_rate@104 (3.15)
    ("8xQ", 128),                # bytes_acked@120 (4.1)
    ("Q", 136),                  # bytes_received@128 (4.1)
    ("12xI", 152),               # min_rtt@148 (4.6)
    ("8xQ", 168),                # delivery_rate@160 (4.9)
    ("32xQ", 208),               # bytes_sent@200 (4.19)
    ("Q", 216),                  # bytes_retrans@208 (4.19)
])
TCP_INFO_MIN = _TCP_INFO.minimum
TCP_INFO_SIZE = _TCP_INFO.size  # how much of tcp_info mptop needs (the kernel's is larger)
TCP_INFO_FORMAT = _TCP_INFO.format      # TCP_INFO_SIZE bytes, values in layout order:
TCP_INFO_ORDER = (0, 1, 2, 3, 4, 6, 5, *range(7, 14))   # ...TcpInfo's i-th field is value TCP_INFO_ORDER[i]
# tcpi_last_data_sent .. tcpi_last_ack_recv: "ms ago" (not in TcpInfo), they move on an idle socket.
TCP_INFO_LAST_SPAN = (44, 60)
_tcp_info_fields = itemgetter(*TCP_INFO_ORDER)

SOCKADDR_SIZE = 128  # struct __kernel_sockaddr_storage
_FAMILY = struct.Struct("=H")
_INET = struct.Struct(">H4B")     # sin_port, sin_addr (network order), after the family
_PORT = struct.Struct(">H")
_IN6_ADDR = struct.Struct("16s")
V4_MAPPED = b"\0" * 10 + b"\xff\xff"      # ::ffff:a.b.c.d
NLMSG_HEADER = struct.Struct("=IHHII")       # nlmsghdr: len, type, flags, seq, pid
NLMSG_ERROR, NLMSG_DONE = 2, 3               # nlmsghdr types: an error (or ack), the end of a dump
NLM_F_REQUEST, NLM_F_ACK, NLM_F_DUMP = 0x1, 0x4, 0x300


def _room(buf: Buffer, offset: int, length: int | None) -> int:
    """The usable length at ``offset``: ``length`` clipped to what the buffer really holds."""
    room = (buf.nbytes if type(buf) is memoryview else len(buf)) - offset
    if offset < 0 or (length is not None and length < 0):
        raise KernelParseError(f"bad offset/length {offset}/{length}")
    return room if length is None or length > room else length


def parse_mptcp_info_from(buf: Buffer, offset: int = 0, length: int | None = None) -> MptcpInfo:
    """Decode ``struct mptcp_info`` at ``offset``; ``length`` = bytes the kernel filled."""
    return MptcpInfo._make(_MPTCP_INFO.unpack(buf, offset, length, "mptcp_info"))


def parse_mptcp_info(buf: Buffer) -> MptcpInfo:
    """Decode a ``struct mptcp_info`` as returned by ``MPTCP_INFO`` or sock_diag ``INET_DIAG_INFO``."""
    return parse_mptcp_info_from(buf, 0, None)


def parse_tcp_info_from(buf: Buffer, offset: int = 0, length: int | None = None) -> TcpInfo:
    """Decode the fields of ``struct tcp_info`` that :class:`TcpInfo` holds, at ``offset``."""
    return TcpInfo._make(_tcp_info_fields(_TCP_INFO.unpack(buf, offset, length, "tcp_info")))


def parse_tcp_info(buf: Buffer) -> TcpInfo:
    """Decode a ``struct tcp_info`` (``TCP_INFO``, ``MPTCP_TCPINFO``, ``MPTCP_FULL_INFO``, diag)."""
    return parse_tcp_info_from(buf, 0, None)


def parse_sockaddr_from(buf: Buffer, offset: int = 0, length: int | None = None) -> Address:
    """Decode a ``sockaddr_in``/``sockaddr_in6`` at ``offset`` into ``(ip, port)``.

    An IPv4-mapped IPv6 address (``::ffff:a.b.c.d``) comes back as plain IPv4, so that a
    dual-stack socket's paths group with their IPv4 interface addresses.
    """
    n = _room(buf, offset, length)
    if n < 2:
        raise KernelParseError(f"sockaddr: {n} bytes, no address family")
    family = _FAMILY.unpack_from(buf, offset)[0]
    if family == socket.AF_INET:
        if n < 8:
            raise KernelParseError(f"sockaddr_in: {n} bytes, need 8")
        port, a, b, c, d = _INET.unpack_from(buf, offset + 2)
        return f"{a}.{b}.{c}.{d}", port
    if family == socket.AF_INET6:
        if n < 24:
            raise KernelParseError(f"sockaddr_in6: {n} bytes, need 24")
        port = _PORT.unpack_from(buf, offset + 2)[0]
        raw = _IN6_ADDR.unpack_from(buf, offset + 8)[0]
        if raw[:12] == V4_MAPPED:
            return socket.inet_ntop(socket.AF_INET, raw[12:]), port
        return socket.inet_ntop(socket.AF_INET6, raw), port
    raise KernelParseError(f"sockaddr: unsupported address family {family}")


def parse_sockaddr(buf: Buffer) -> Address:
    """Decode a ``sockaddr_in``/``sockaddr_in6``/``sockaddr_storage`` into ``(ip, port)``."""
    return parse_sockaddr_from(buf, 0, None)
