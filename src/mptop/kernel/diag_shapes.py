"""Record shapes for :mod:`mptop.kernel.diag_decode`: sock_diag record layouts compiled into one Struct each.

The first record of a shape (the same attributes with the same lengths) is walked attribute by attribute and
compiled into a ``struct.Struct`` reading every wanted field and every attribute header in one call, plus a
*fingerprint* of every byte but the volatile ones, so an unchanged socket is recognised without decoding it.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable
from operator import itemgetter
from typing import Any

from mptop.kernel.structs import V4_MAPPED
from mptop.kernel.types import (
    DiagSubflow,
    KernelParseError,
    MptcpInfo,
    TcpInfo,
)

SOCK_DIAG_BY_FAMILY = 20
INET_DIAG_INFO, INET_DIAG_ULP_INFO = 2, 19
INET_ULP_INFO_NAME, INET_ULP_INFO_MPTCP = 1, 3
# MPTCP_SUBFLOW_ATTR_* a DiagSubflow carries, with their payload formats, in the order it wants them.
SUBFLOW_ATTRS = {2: "I", 1: "I", 10: "B", 9: "B", 8: "I"}  # TOKEN_LOC, TOKEN_REM, ID_LOC, ID_REM, FLAGS

_NLA = struct.Struct("=HH")                   # rtattr: len, type
_NLA_TYPE_MASK = 0x3FFF
_ERRNO = struct.Struct("=i")
_SEQ = struct.Struct("=I")                    # nlmsg_seq, at 8
# nlmsghdr + inet_diag_msg, skipping what changes without meaning anything to us (seq, pid, timers,
# queues), so that equal values mean an unchanged socket.  Ports are big-endian: swapped later.
_HDR_FMT = "IH10xBB2xHH16s16sIQ12xII"
_HDR = struct.Struct("=" + _HDR_FMT)
_HDR_VALUES = 12
_FAMILY, _STATE, _SPORT, _DPORT, _SRC, _DST, _IFINDEX, _COOKIE, _UID, _INODE = 2, 3, 4, 5, 6, 7, 8, 9, 10, 11
_SF_FIELDS = (_FAMILY, _SPORT, _DPORT, _SRC, _DST, _IFINDEX, _INODE, _UID)
_MAX_SHAPES = 8                                # per record length; past that, records are walked

# The layouts of mptop.kernel.structs (which decodes every other case), read in place inside a
# record-wide Struct.  tests/kernel/test_diag.py checks the two decodings agree on real kernel records.
_LAST = struct.Struct("=3I")              # mptcpi_last_data_sent, _recv, last_ack_recv
_STABLE_INFO = len(MptcpInfo._fields) - 3  # MptcpInfo's values before those three
_TOKEN = MptcpInfo._fields.index("token")
# Bytes of nlmsghdr + inet_diag_msg that change without the socket changing: nlmsg_seq/pid and
# idiag_expires/rqueue/wqueue.  The cookie (60..68) identifies the socket.  nlmsg_len/type/flags
# stay in a fingerprint (equal to a record's, it frames a record too), and so do idiag_timer and
# idiag_retrans, constant on an idle socket: fewer, longer spans are read faster.
_HEADER_VOLATILE = ((8, 16), (68, 80))
_COOKIE_SPAN = (60, 68)
_FP_COOKIE = 2           # the cookie's index in a fingerprint: after [0:8], [16:60]


_new_tcp_info = TcpInfo._make  # TcpInfo, MptcpInfo and DiagConnection are named tuples: one C call each
_new_subflow = DiagSubflow     # a named tuple too: its generated __new__ is one tuple.__new__ call
_tuple_new = tuple.__new__

_ip_cache: dict[tuple[int, bytes], str] = {}


def _ip(family: int, raw: bytes) -> str:
    """Text form of an inet_diag address (16 bytes); IPv4-mapped IPv6 comes back as IPv4 (as structs does)."""
    text = _ip_cache.get((family, raw))
    if text is None:
        if family == socket.AF_INET:
            text = socket.inet_ntop(socket.AF_INET, raw[:4])
        elif raw[:12] == V4_MAPPED:
            text = socket.inet_ntop(socket.AF_INET, raw[12:])
        else:
            text = socket.inet_ntop(socket.AF_INET6, raw)
        if len(_ip_cache) < 4096:     # a host has few addresses; bounded all the same
            _ip_cache[(family, raw)] = text
    return text


def _walk(buf: Any, start: int, end: int) -> list[tuple[int, int, int]]:
    """(offset, raw type, length) of each netlink attribute in buf[start:end]."""
    out = []
    while end - start >= _NLA.size:
        length, kind = _NLA.unpack_from(buf, start)
        if length < _NLA.size or length > end - start:
            raise KernelParseError(f"sock_diag attribute {kind & _NLA_TYPE_MASK}: length {length} out of range")
        out.append((start, kind, length))
        start += (length + 3) & ~3
    return out


class _Record:
    """What walking one record found; offsets are absolute in the buffer, (offset, length) of payloads."""

    def __init__(self, buf: Any, off: int, length: int, nested: bool) -> None:
        if length < _HDR.size:
            raise KernelParseError(f"sock_diag record of {length} bytes, need {_HDR.size}")
        self.headers = _walk(buf, off + _HDR.size, off + length)
        self.info: tuple[int, int] | None = None
        self.ulp: bytes | None = None
        self.ulp_at: tuple[int, int] | None = None
        self.sub: dict[int, tuple[int, int]] = {}
        for o, kind, n in list(self.headers):
            kind &= _NLA_TYPE_MASK
            if kind == INET_DIAG_INFO:
                self.info = (o + 4, n - 4)
            elif kind == INET_DIAG_ULP_INFO and nested:
                self._ulp(buf, o, n)

    def _ulp(self, buf: Any, o: int, n: int) -> None:
        inner = _walk(buf, o + 4, o + n)
        self.headers += inner
        for io, kind, k in inner:
            kind &= _NLA_TYPE_MASK
            if kind == INET_ULP_INFO_NAME:
                self.ulp_at = (io + 4, k - 4)
                self.ulp = bytes(buf[io + 4:io + k])
            elif kind == INET_ULP_INFO_MPTCP:
                nest = _walk(buf, io + 4, io + k)
                self.headers += nest
                self.sub.update({t & _NLA_TYPE_MASK: (no + 4, nn - 4) for no, t, nn in nest})

    @property
    def is_subflow(self) -> bool:
        return self.ulp is not None and self.ulp.rstrip(b"\0") == b"mptcp"

    def sub_value(self, buf: Any, kind: int) -> int:
        o, n = self.sub.get(kind, (0, 0))
        fmt = "=" + SUBFLOW_ATTRS[kind]
        return struct.unpack_from(fmt, buf, o)[0] if n >= struct.calcsize(fmt) else 0

    def sub_complete(self) -> bool:
        return all(self.sub.get(k, (0, 0))[1] == struct.calcsize(f) for k, f in SUBFLOW_ATTRS.items())


def _header_word(length: int, kind: int) -> int:
    """An attribute header (u16 length, u16 type) read as one u32, as a compiled shape reads it."""
    return struct.unpack("=I", _NLA.pack(length, kind))[0]


class _Shape:
    """A compiled record layout: one Struct over the whole record from its first byte.

    ``check(values) == expected`` holds when a record has exactly the walked attribute headers (and
    ULP name); ``relevant(values)`` picks the wanted fields (None: a record to skip).
    ``fingerprint(buf, off)`` (subflows only) reads the cookie and every byte of the record except
    the volatile ones: equal to the last poll's, the socket's previous objects still hold.
    """

    def __init__(self, length: int, rec: _Record, base: int, wanted: list[tuple[int, str]]) -> None:
        parts: list[tuple[int, str, Any]] = [(o - base, "I", _header_word(n, kind)) for o, kind, n in rec.headers]
        if rec.ulp_at is not None:
            parts.append((rec.ulp_at[0] - base, f"{rec.ulp_at[1]}s", rec.ulp))
        parts += [(o - base, fmt, None) for o, fmt in wanted]
        fmt, pos, count = "=" + _HDR_FMT, _HDR.size, _HDR_VALUES
        check_idx, expected, starts = [0, 1], [length, SOCK_DIAG_BY_FAMILY], [0] * len(parts)
        for i in sorted(range(len(parts)), key=lambda i: parts[i][0]):
            off, part, want = parts[i]
            if off < pos:
                raise KernelParseError("overlapping attributes in a sock_diag record")
            size = struct.calcsize("=" + part)
            fmt += (f"{off - pos}x" if off > pos else "") + part
            if want is not None:
                check_idx.append(count)
                expected.append(want)
            starts[i] = count
            pos, count = off + size, count + len(struct.unpack("=" + part, bytes(size)))
        self.length = length
        self.step = (length + 3) & ~3         # to the next message
        self.unpack_from = struct.Struct(fmt).unpack_from
        self.check = itemgetter(*check_idx)
        self.expected = tuple(expected)
        self.starts = starts[len(parts) - len(wanted):]   # first value index of each wanted part
        self.relevant: Callable[[tuple[Any, ...]], tuple[Any, ...]] | None = None
        self.fingerprint: Callable[[Any, int], tuple[Any, ...]] | None = None
        self.info = slice(0)          # connections: MptcpInfo's values but the last_* three,
        self.last_at = 0              # which are read apart, from here

    def set_fingerprint(self, info_at: int, last: tuple[int, int]) -> None:
        """Fingerprint every byte but the header's volatile ones and the ``last`` span (the "ms
        ago" words) of the info struct at ``info_at`` (record-relative).  The rest of that struct,
        even what mptop does not decode, changes only with traffic.

        Values: ``[0:8]`` (nlmsg_len, type, flags), ``[16:60]`` (family, state, timer, ports,
        addresses, ifindex), the cookie (index ``_FP_COOKIE``), then the rest, attribute headers
        included, so equal fingerprints also mean an equal layout."""
        fmt, pos = "=", 0
        volatile = [*_HEADER_VOLATILE, (info_at + last[0], info_at + last[1]), (self.length, self.length)]
        for start, end in sorted(volatile):
            if start > pos:
                if pos < _COOKIE_SPAN[1] <= start:
                    fmt += f"{_COOKIE_SPAN[0] - pos}sQ"
                    fmt += f"{start - _COOKIE_SPAN[1]}s" if start > _COOKIE_SPAN[1] else ""
                else:
                    fmt += f"{start - pos}s"
            if end > max(start, pos):
                fmt += f"{end - max(start, pos)}x"
            pos = max(pos, end)
        self.fingerprint = struct.Struct(fmt).unpack_from
