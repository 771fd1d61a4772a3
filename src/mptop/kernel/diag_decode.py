"""Decoding sock_diag dumps of MPTCP connections (msk) and their TCP subflows, fast.

:class:`DiagDecoder` turns the datagrams of one poll (the TCP dumps first, then the MPTCP dumps)
into :class:`~mptop.kernel.types.DiagConnection` objects with their subflows joined by token;
:mod:`mptop.kernel.diag` runs the dumps.

Speed: Python decoding dominates a poll (5-12 us a record when each attribute is walked).
Records of one kind nearly always share one *shape* (the same attributes with the same lengths,
hence the same record length), so the first record of a shape is walked and compiled into one
``struct.Struct`` that reads every wanted field *and* every attribute header in a single call;
later records of that length are checked against the compiled headers instead of walked (any
mismatch: walk it).  A subflow whose bytes, the volatile ones aside, equal the previous poll's
(matched by socket cookie) gets its previous, immutable objects back.  Records of an older
kernel (a shorter tcp_info or mptcp_info) are decoded by :mod:`mptop.kernel.structs`.
Malformed input raises :class:`KernelParseError` (a netlink error message: OSError).
"""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import fields
from operator import itemgetter
from typing import Any

from mptop.kernel import structs
from mptop.kernel.types import Address, DiagConnection, DiagSubflow, KernelParseError, MptcpInfo, TcpInfo

SOCK_DIAG_BY_FAMILY = 20
NLMSG_ERROR, NLMSG_DONE = 2, 3
IPPROTO_MPTCP = 262
INET_DIAG_INFO, INET_DIAG_ULP_INFO = 2, 19
INET_ULP_INFO_NAME, INET_ULP_INFO_MPTCP = 1, 3
# MPTCP_SUBFLOW_ATTR_* a DiagSubflow carries, with their payload formats, in the order it wants them.
SUBFLOW_ATTRS = {2: "I", 1: "I", 10: "B", 9: "B", 8: "I"}  # TOKEN_LOC, TOKEN_REM, ID_LOC, ID_REM, FLAGS

NLMSG_HEADER = struct.Struct("=IHHII")        # nlmsghdr: len, type, flags, seq, pid
_NLA = struct.Struct("=HH")                   # rtattr: len, type
_NLA_TYPE_MASK = 0x3FFF
_ERRNO = struct.Struct("=i")
# nlmsghdr + inet_diag_msg, skipping what changes without meaning anything to us (seq, pid, timers,
# queues), so that equal values mean an unchanged socket.  Ports are big-endian: swapped later.
_HDR_FMT = "IH10xBB2xHH16s16sIQ12xII"
_HDR = struct.Struct("=" + _HDR_FMT)
_HDR_VALUES = 12
_FAMILY, _STATE, _SPORT, _DPORT, _SRC, _DST, _IFINDEX, _COOKIE, _UID, _INODE = 2, 3, 4, 5, 6, 7, 8, 9, 10, 11
_SF_FIELDS = (_FAMILY, _SPORT, _DPORT, _SRC, _DST, _IFINDEX, _INODE, _UID)
_MAX_SHAPES = 8                                # per record length; past that, records are walked

# Local fast-path copies of the layouts in mptop.kernel.structs (which decodes every other case):
# read in place inside a record-wide Struct, csum_enabled as a bool ("?").  tests/test_diag.py
# checks both against structs.parse_tcp_info / parse_mptcp_info on real kernel records.
_TCP_INFO_FMT = "BxB65xII4xI8xI4xIQ8xQQ12xI8xQ32xQQ"     # structs.TCP_INFO_SIZE bytes
_TCP_ORDER = (0, 1, 2, 3, 4, 6, 5, *range(7, 14))       # layout order -> TcpInfo field order
_TCP_VOLATILE = (44, 60)          # tcpi_last_data_sent .. tcpi_last_ack_recv: "ms ago", not in TcpInfo
_MPTCP_INFO_FMT = "6B2x2I3Q2B?xI4QB3x3I"                # structs.MPTCP_INFO_SIZE bytes, MptcpInfo order
# Bytes of nlmsghdr + inet_diag_msg that change without the socket changing: the header (seq, pid),
# idiag_timer/retrans, idiag_expires/rqueue/wqueue.  The cookie (60..68) identifies the socket.
_HEADER_VOLATILE = ((0, 16), (18, 20), (68, 80))
_COOKIE_SPAN = (60, 68)


def _fast_constructor(cls: type) -> Callable[..., Any]:
    """A positional constructor for a frozen, slotted dataclass that sets each slot directly.

    A frozen dataclass's ``__init__`` looks up and calls ``object.__setattr__`` per field; calling
    the slot descriptors is about twice as fast, and a poll of 1,000 connections sets ~80,000
    fields.  Same object as ``cls(*values)`` (the types define no ``__post_init__``).
    """
    names = [f.name for f in fields(cls)]
    env: dict[str, Any] = {"_new": object.__new__, "_cls": cls}
    env.update({f"_set_{n}": getattr(cls, n).__set__ for n in names})
    body = "".join(f"    _set_{n}(o, {n})\n" for n in names)
    exec(f"def build({', '.join(names)}):\n    o = _new(_cls)\n{body}    return o\n", env)
    return env["build"]  # type: ignore[no-any-return]


_new_tcp_info = _fast_constructor(TcpInfo)
_new_mptcp_info = _fast_constructor(MptcpInfo)
_new_subflow = _fast_constructor(DiagSubflow)
_new_connection = _fast_constructor(DiagConnection)

_V4_MAPPED = b"\0" * 10 + b"\xff\xff"
_ip_cache: dict[tuple[int, bytes], str] = {}


def _ip(family: int, raw: bytes) -> str:
    """Text form of an inet_diag address (16 bytes); IPv4-mapped IPv6 comes back as IPv4 (as structs does)."""
    text = _ip_cache.get((family, raw))
    if text is None:
        if family == socket.AF_INET:
            text = socket.inet_ntop(socket.AF_INET, raw[:4])
        elif raw[:12] == _V4_MAPPED:
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
    return struct.unpack("=I", _NLA.pack(length, kind))[0]  # type: ignore[no-any-return]


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
        self.unpack_from = struct.Struct(fmt).unpack_from
        self.check = itemgetter(*check_idx)
        self.expected = tuple(expected)
        self.starts = starts[len(parts) - len(wanted):]   # first value index of each wanted part
        self.relevant: Callable[[tuple[Any, ...]], tuple[Any, ...]] | None = None
        self.fingerprint: Callable[[Any, int], tuple[Any, ...]] | None = None
        self.info = slice(0)

    def set_fingerprint(self, volatile: Iterable[tuple[int, int]]) -> None:
        """Fingerprint every byte but the ``volatile`` spans (record-relative, inside payloads).

        Values: ``[16:18]`` (family, state), ``[20:60]`` (ports, addresses, ifindex), the cookie
        (index 2), then the rest, attribute headers included, so equal fingerprints also mean
        an equal layout."""
        fmt, pos = "=", 0
        for start, end in sorted([*_HEADER_VOLATILE, *volatile, (self.length, self.length)]):
            if start > pos:
                if pos < _COOKIE_SPAN[1] <= start:
                    fmt += f"{_COOKIE_SPAN[0] - pos}sQ" + (f"{start - _COOKIE_SPAN[1]}s" if start > _COOKIE_SPAN[1] else "")
                else:
                    fmt += f"{start - pos}s"
            if end > max(start, pos):
                fmt += f"{end - max(start, pos)}x"
            pos = max(pos, end)
        self.fingerprint = struct.Struct(fmt).unpack_from


class DiagDecoder:
    """Decodes a poll's dump datagrams (TCP dumps first, then MPTCP) into connections.

    Keeps the compiled shapes and the previous poll's objects.  ``owners`` (inode -> (pid, name))
    names the connections; ``unnamed`` lists the positions of those it could not name.
    """

    def __init__(self, *, fast: bool = True) -> None:
        self.fast = fast           # False: walk every record, decode with mptop.kernel.structs
        self._msk_shapes: dict[int, list[_Shape]] = {}
        self._tcp_shapes: dict[int, list[_Shape]] = {}
        self._prev_msks: dict[int, tuple[tuple[Any, ...], Address, Address]] = {}
        self._prev_subflows: dict[int, tuple[_Shape, tuple[Any, ...], DiagSubflow]] = {}
        self.begin()

    def begin(self, owners: Mapping[int, tuple[int, str]] | None = None) -> None:
        """Start a poll."""
        self._owners = owners if owners is not None else {}
        self._msks: dict[int, tuple[tuple[Any, ...], Address, Address]] = {}
        self._subflows: dict[int, tuple[_Shape, tuple[Any, ...], DiagSubflow]] = {}
        self._by_token: dict[int, list[DiagSubflow]] = {}
        self.connections: list[DiagConnection] = []
        self.unnamed: list[int] = []

    def feed(self, buf: Any, n: int, seq: int | None, protocol: int) -> bool:
        """Decode ``buf[:n]`` (one datagram) of a dump of ``protocol``; True once the dump is done.

        Messages of another ``seq`` are skipped (``None``: take all).  A netlink error raises OSError.
        """
        self._done = False
        records = self._records(buf, n, seq)
        if protocol == IPPROTO_MPTCP:
            self._msk_records(buf, records)
        else:
            self._tcp_records(buf, records)
        return self._done

    def _records(self, buf: Any, n: int, seq: int | None) -> Iterator[tuple[int, int]]:
        """(offset, length) of each sock_diag record in ``buf[:n]``; handles the control messages."""
        unpack, off = NLMSG_HEADER.unpack_from, 0
        while off < n:
            if n - off < 16:
                raise KernelParseError(f"netlink header truncated: {n - off} bytes left")
            length, kind, _flags, mseq, _pid = unpack(buf, off)
            if length < 16 or length > n - off:
                raise KernelParseError(f"netlink message length {length} out of range ({n - off} bytes left)")
            if mseq == seq or seq is None:
                if kind == SOCK_DIAG_BY_FAMILY:
                    yield off, length
                elif (kind == NLMSG_DONE or kind == NLMSG_ERROR) and self._control(buf, off, length, kind):
                    self._done = True
                    return
            off += (length + 3) & ~3

    @staticmethod
    def _control(buf: Any, off: int, length: int, kind: int) -> bool:
        """NLMSG_DONE (True) or NLMSG_ERROR (an ACK: False); a negative code raises OSError."""
        if length < NLMSG_HEADER.size + 4:
            raise KernelParseError(f"netlink {'error' if kind == NLMSG_ERROR else 'done'} message truncated")
        code = -_ERRNO.unpack_from(buf, off + NLMSG_HEADER.size)[0]
        if code > 0:
            raise OSError(code, f"sock_diag dump: {os.strerror(code)}")
        return kind == NLMSG_DONE

    def decode(self, datagrams: Iterable[tuple[int, bytes]],
               owners: Mapping[int, tuple[int, str]] | None = None) -> list[DiagConnection]:
        """One poll from recorded ``(protocol, datagram)`` pairs (see ``DiagReader.capture``)."""
        self.begin(owners)
        for protocol, data in datagrams:
            self.feed(data, len(data), None, protocol)
        return self.finish()

    def finish(self) -> list[DiagConnection]:
        """This poll's connections; its objects become the previous ones."""
        self._prev_msks, self._prev_subflows = self._msks, self._subflows
        out = self.connections
        self.begin()
        return out

    @staticmethod
    def _match(shapes: list[_Shape], buf: Any, off: int) -> tuple[_Shape | None, tuple[Any, ...]]:
        for shape in shapes:
            values = shape.unpack_from(buf, off)
            if shape.check(values) == shape.expected:
                return shape, values
        return None, ()

    @staticmethod
    def _learn(shapes: dict[int, list[_Shape]], shape: _Shape) -> _Shape:
        known = shapes.setdefault(shape.length, [])
        if len(known) < _MAX_SHAPES:
            known.append(shape)
        return shape

    # -- subflows (TCP dump) -------------------------------------------------------------------
    def _tcp_records(self, buf: Any, records: Iterable[tuple[int, int]]) -> None:
        shapes_of, prev_of, current, by_token = self._tcp_shapes.get, self._prev_subflows.get, self._subflows, \
            self._by_token
        for off, length in records:
            shapes = shapes_of(length)
            if shapes is not None and shapes[0].fingerprint is not None:
                first = shapes[0]                # the common case: an unchanged, idle subflow
                fingerprint = first.fingerprint(buf, off)  # type: ignore[misc]
                prev = prev_of(fingerprint[2])
                if prev is not None and prev[1] == fingerprint and prev[0] is first:
                    current[fingerprint[2]] = prev
                    by_token.setdefault(prev[2].token_local, []).append(prev[2])
                    continue
            self._tcp_record(buf, off, length, shapes)

    def _tcp_record(self, buf: Any, off: int, length: int, shapes: list[_Shape] | None) -> None:
        shape, values = self._match(shapes or (), buf, off)
        if shape is None:
            shape = self._tcp_shape(buf, off, length)
            if shape is None:
                return
            values = shape.unpack_from(buf, off)
        if shape.relevant is None or shape.fingerprint is None:    # plain TCP, or another ULP
            return
        family, sport, dport, src, dst, *v = shape.relevant(values)
        subflow = _new_subflow((_ip(family, src), socket.ntohs(sport)), (_ip(family, dst), socket.ntohs(dport)),
                               v[0], v[1], v[2], _new_tcp_info(*v[8:]), v[3], v[4], v[5], v[6], v[7])
        self._subflows[values[_COOKIE]] = (shape, shape.fingerprint(buf, off), subflow)
        self._by_token.setdefault(subflow.token_local, []).append(subflow)

    def _tcp_shape(self, buf: Any, off: int, length: int) -> _Shape | None:
        """Walk a record of a new shape; compile it, or decode it the slow way (returns None)."""
        rec = _Record(buf, off, length, nested=True)
        if not rec.is_subflow:
            return self._learn(self._tcp_shapes, _Shape(length, rec, off, [])) if self.fast else None
        if self.fast and rec.info is not None and rec.info[1] >= structs.TCP_INFO_SIZE and rec.sub_complete():
            wanted = [(rec.info[0], _TCP_INFO_FMT)] + [(rec.sub[k][0], f) for k, f in SUBFLOW_ATTRS.items()]
            shape = _Shape(length, rec, off, wanted)
            info, *sub = shape.starts
            shape.relevant = itemgetter(*_SF_FIELDS, *sub, *(info + i for i in _TCP_ORDER))
            at, size = rec.info[0] - off, rec.info[1]
            shape.set_fingerprint([(at + _TCP_VOLATILE[0], at + _TCP_VOLATILE[1]),
                                   (at + structs.TCP_INFO_SIZE, at + size)])
            return self._learn(self._tcp_shapes, shape)
        # An older kernel's short tcp_info, or missing subflow attributes.
        h = _HDR.unpack_from(buf, off)
        tcp = structs.parse_tcp_info_from(buf, *rec.info) if rec.info else None
        token, *rest = (rec.sub_value(buf, k) for k in SUBFLOW_ATTRS)
        self._by_token.setdefault(token, []).append(
            DiagSubflow(*_endpoints(h), h[_IFINDEX], h[_INODE], h[_UID], tcp, token, *rest))
        return None

    # -- connections (MPTCP dump) --------------------------------------------------------------
    def _msk_records(self, buf: Any, records: Iterable[tuple[int, int]]) -> None:
        shapes_of, prev_of, msks, by_token = self._msk_shapes.get, self._prev_msks.get, self._msks, self._by_token
        owners, out = self._owners, self.connections
        for off, length in records:
            shape, values = None, ()
            shapes = shapes_of(length)
            if shapes is not None:
                shape = shapes[0]
                values = shape.unpack_from(buf, off)
                if shape.check(values) != shape.expected:
                    shape, values = self._match(shapes[1:], buf, off)
            if shape is None:
                shape = self._msk_shape(buf, off, length)
                if shape is None:
                    continue
                values = shape.unpack_from(buf, off)
            # An idle connection's last_* ("ms ago") fields change between polls: its MptcpInfo is
            # new every time; only its addresses are reused.
            head, cookie, inode = values[:_HDR_VALUES], values[_COOKIE], values[_INODE]
            prev = prev_of(cookie)
            if prev is None or prev[0] != head:
                prev = (head, *_endpoints(values))
            msks[cookie] = prev
            info = _new_mptcp_info(*values[shape.info])
            owner = owners.get(inode)
            if owner is None:
                self._add_connection(prev[1], prev[2], values[_STATE], inode, values[_UID], info)
                continue
            subflows = by_token.get(info.token) if info.token else None
            out.append(_new_connection(prev[1], prev[2], values[_STATE], inode, values[_UID], info,
                                       tuple(subflows) if subflows else (), owner[0], owner[1]))

    def _add_connection(self, local: Address, remote: Address, state: int, inode: int, uid: int,
                        info: MptcpInfo | None) -> None:
        subflows = self._by_token.get(info.token) if info is not None and info.token else None
        owner = self._owners.get(inode)
        if owner is None:
            if inode:
                self.unnamed.append(len(self.connections))
            owner = (None, None)  # type: ignore[assignment]
        self.connections.append(_new_connection(local, remote, state, inode, uid, info,
                                                tuple(subflows) if subflows else (), owner[0], owner[1]))

    def _msk_shape(self, buf: Any, off: int, length: int) -> _Shape | None:
        rec = _Record(buf, off, length, nested=False)
        if self.fast and rec.info is not None and rec.info[1] >= structs.MPTCP_INFO_SIZE:
            shape = _Shape(length, rec, off, [(rec.info[0], _MPTCP_INFO_FMT)])
            first = shape.starts[0]   # MptcpInfo's values, in field order: one slice
            shape.info = slice(first, first + len(fields(MptcpInfo)))
            return self._learn(self._msk_shapes, shape)
        h = _HDR.unpack_from(buf, off)   # an older kernel's short mptcp_info, or none at all
        info = structs.parse_mptcp_info_from(buf, *rec.info) if rec.info else None
        self._add_connection(*_endpoints(h), h[_STATE], h[_INODE], h[_UID], info)
        return None


def _endpoints(h: tuple[Any, ...]) -> tuple[Address, Address]:
    family = h[_FAMILY]
    return (_ip(family, h[_SRC]), socket.ntohs(h[_SPORT])), (_ip(family, h[_DST]), socket.ntohs(h[_DPORT]))
