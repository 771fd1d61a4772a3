"""Every MPTCP connection of a network namespace, from sock_diag: ``ss -M`` plus ``ss -ti`` in one poll.

One NETLINK_SOCK_DIAG socket, four ``inet_diag_req_v2`` dumps (AF_INET and AF_INET6 each):

* IPPROTO_MPTCP with INET_DIAG_INFO = ``struct mptcp_info``: the connections (msk).  262 does not
  fit ``sdiag_protocol`` (a u8), so the request carries it in INET_DIAG_REQ_PROTOCOL;
* IPPROTO_TCP with INET_DIAG_INFO = ``struct tcp_info``: subflows are the TCP sockets whose
  INET_DIAG_ULP_INFO names the ``mptcp`` ULP; its INET_ULP_INFO_MPTCP nest carries the tokens,
  endpoint ids and flags.  A subflow joins its connection by token (TOKEN_LOC == mptcpi_token).

Why our own codec, not pyroute2 (0.9.7, see measured.md): it packs sdiag_protocol as a u8 (262 is a
struct.error), sends no INET_DIAG_REQ_PROTOCOL, decodes every INET_DIAG_INFO as tcp_info, hands the
ULP info back as hex, and its TCP dump alone takes ~140 ms for 2,000 subflows.

Speed: the kernel side of a poll is cheap; Python decoding dominates (5-12 us a record when each
attribute is walked).  Records of one kind nearly always share one *shape* (same attributes, same
lengths, hence the same record length), so the first record of a shape is walked and compiled into
one ``struct.Struct`` that reads every wanted field *and* every attribute header in a single call.
Later records of that length are checked against the compiled headers (a mismatch means: walk it)
instead of walked.  A socket whose wanted fields did not change since the previous poll (matched by
its socket cookie) gets its previous, immutable objects back.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
from collections.abc import Callable, Iterable
from dataclasses import fields
from operator import itemgetter
from typing import Any

from mptop.kernel import structs
from mptop.kernel.procs import SocketOwners
from mptop.kernel.types import DiagConnection, DiagSubflow, KernelParseError, MptcpInfo, MptcpUnavailable, TcpInfo

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
NLMSG_ERROR, NLMSG_DONE = 2, 3
IPPROTO_MPTCP = 262
INET_DIAG_INFO, INET_DIAG_ULP_INFO, INET_DIAG_REQ_PROTOCOL = 2, 19, 3
INET_ULP_INFO_NAME, INET_ULP_INFO_MPTCP = 1, 3
# MPTCP_SUBFLOW_ATTR_* a DiagSubflow carries, with their payload formats, in the order it wants them.
SUBFLOW_ATTRS = {2: "I", 1: "I", 10: "B", 9: "B", 8: "I"}  # TOKEN_LOC, TOKEN_REM, ID_LOC, ID_REM, FLAGS
TCP_LISTEN = 10
# Kernel-side state filter for the TCP dump: subflows never LISTEN, and TIME_WAIT / SYN_RECV /
# NEW_SYN_RECV entries are minisocks without a ULP, so the kernel may skip them unformatted.
TCP_DUMP_STATES = 0xFFFFFFFF & ~((1 << 3) | (1 << 6) | (1 << TCP_LISTEN) | (1 << 12))

_NLH = struct.Struct("=IHHII")                # nlmsghdr: len, type, flags, seq, pid
_NLA = struct.Struct("=HH")                   # rtattr: len, type
_NLA_TYPE_MASK = 0x3FFF
_REQ = struct.Struct("=IHHIIBBBxI48x")        # nlmsghdr + inet_diag_req_v2 with a zero sockid
_REQ_PROTO = struct.Struct("=HHI")            # the INET_DIAG_REQ_PROTOCOL attribute
_ERRNO = struct.Struct("=i")
# nlmsghdr + inet_diag_msg, skipping what changes without meaning anything to us (seq, pid, timers,
# queues), so that equal values mean an unchanged socket.  Ports are big-endian: swapped later.
_HDR_FMT = "IH10xBB2xHH16s16sIQ12xII"
_HDR = struct.Struct("=" + _HDR_FMT)
_HDR_VALUES = 12
_FAMILY, _STATE, _SPORT, _DPORT, _SRC, _DST, _IFINDEX, _COOKIE, _UID, _INODE = 2, 3, 4, 5, 6, 7, 8, 9, 10, 11
_MSK_FIELDS = (_FAMILY, _SPORT, _DPORT, _SRC, _DST, _STATE, _INODE, _UID)
_SF_FIELDS = (_FAMILY, _SPORT, _DPORT, _SRC, _DST, _IFINDEX, _INODE, _UID)
_BUFSIZE = 1 << 20
_MAX_SHAPES = 8                                # per record length; past that, records are walked

# The struct layouts come from mptop.kernel.structs (one table); the compiled shapes read them in
# place.  Only these two orderings are repeated here, and tests/test_diag.py checks both against
# structs.parse_tcp_info / parse_mptcp_info on real kernel records.
_TCP_INFO_FMT = structs._TCP_INFO.full.format.lstrip("=")
_MPTCP_INFO_FMT = structs._MPTCP_INFO.full.format.lstrip("=")
_TCP_ORDER = (0, 1, 2, 3, 4, 6, 5, *range(7, 14))    # tcp_info layout order -> TcpInfo field order
_CSUM = 13                                           # MptcpInfo.csum_enabled is a bool


class MptcpDiagUnavailable(MptcpUnavailable):
    """This kernel cannot list MPTCP connections through sock_diag; ``reason`` says why."""


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
    ULP name); ``relevant(values)`` picks the wanted fields (None: a record to skip).  Values hold
    nothing volatile, so equal values mean an unchanged socket.
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
        self.unpack_from = struct.Struct(fmt).unpack_from
        self.check = itemgetter(*check_idx)
        self.expected = tuple(expected)
        self.starts = starts[len(parts) - len(wanted):]   # first value index of each wanted part
        self.relevant: Callable[[tuple[Any, ...]], tuple[Any, ...]] | None = None


class DiagDecoder:
    """Decodes one poll's dump datagrams into connections; keeps compiled shapes and last poll's objects."""

    def __init__(self) -> None:
        self._msk_shapes: dict[int, list[_Shape]] = {}
        self._tcp_shapes: dict[int, list[_Shape]] = {}
        self._prev: dict[int, tuple[tuple[Any, ...], Any]] = {}
        self.begin()

    def begin(self) -> None:
        """Start a poll."""
        self._next: dict[int, tuple[tuple[Any, ...], Any]] = {}
        self._msks: list[tuple[Any, ...]] = []
        self._by_token: dict[int, list[DiagSubflow]] = {}

    def feed(self, buf: Any, n: int, seq: int | None, protocol: int) -> bool:
        """Decode ``buf[:n]`` (one datagram) of a dump of ``protocol``; True once the dump is done.

        Messages of another ``seq`` are skipped (``None``: take all).  A netlink error raises OSError.
        """
        record = self._msk_record if protocol == IPPROTO_MPTCP else self._tcp_record
        off = 0
        while off < n:
            if n - off < _NLH.size:
                raise KernelParseError(f"netlink header truncated: {n - off} bytes left")
            length, kind, _flags, mseq, _pid = _NLH.unpack_from(buf, off)
            if length < _NLH.size or length > n - off:
                raise KernelParseError(f"netlink message length {length} out of range ({n - off} bytes left)")
            if seq is None or mseq == seq:
                if kind == SOCK_DIAG_BY_FAMILY:
                    record(buf, off, length)
                elif kind in (NLMSG_DONE, NLMSG_ERROR):
                    if length < _NLH.size + 4:
                        raise KernelParseError(f"netlink {'error' if kind == NLMSG_ERROR else 'done'} truncated")
                    code = -_ERRNO.unpack_from(buf, off + _NLH.size)[0]
                    if code > 0:
                        raise OSError(code, f"sock_diag dump: {os.strerror(code)}")
                    if kind == NLMSG_DONE:
                        return True
            off += (length + 3) & ~3
        return False

    @staticmethod
    def _learn(shapes: dict[int, list[_Shape]], length: int, shape: _Shape) -> _Shape:
        known = shapes.setdefault(length, [])
        if len(known) < _MAX_SHAPES:
            known.append(shape)
        return shape

    # -- subflows (TCP dump) -------------------------------------------------------------------
    def _tcp_record(self, buf: Any, off: int, length: int) -> None:
        for shape in self._tcp_shapes.get(length, ()):
            values = shape.unpack_from(buf, off)
            if shape.check(values) == shape.expected:
                break
        else:
            learnt = self._tcp_shape(buf, off, length)
            if learnt is None:
                return
            shape, values = learnt, learnt.unpack_from(buf, off)
        if shape.relevant is None:      # a plain TCP socket, or another ULP
            return
        cookie = values[_COOKIE]
        prev = self._prev.get(cookie)
        if prev is not None and prev[0] == values:
            subflow = prev[1]
        else:
            family, sport, dport, src, dst, *v = shape.relevant(values)
            subflow = _new_subflow((_ip(family, src), socket.ntohs(sport)), (_ip(family, dst), socket.ntohs(dport)),
                                   v[0], v[1], v[2], _new_tcp_info(*v[8:]), v[3], v[4], v[5], v[6], v[7])
        self._next[cookie] = (values, subflow)
        token = subflow.token_local
        subflows = self._by_token.get(token)
        if subflows is None:
            self._by_token[token] = [subflow]
        else:
            subflows.append(subflow)

    def _tcp_shape(self, buf: Any, off: int, length: int) -> _Shape | None:
        """Walk a record of a new shape; compile it, or decode it the slow way (returns None)."""
        rec = _Record(buf, off, length, nested=True)
        if not rec.is_subflow:
            return self._learn(self._tcp_shapes, length, _Shape(length, rec, off, []))
        if rec.info is not None and rec.info[1] >= structs.TCP_INFO_SIZE and rec.sub_complete():
            wanted = [(rec.info[0], _TCP_INFO_FMT)] + [(rec.sub[k][0], f) for k, f in SUBFLOW_ATTRS.items()]
            shape = _Shape(length, rec, off, wanted)
            info, *sub = shape.starts
            shape.relevant = itemgetter(*_SF_FIELDS, *sub, *(info + i for i in _TCP_ORDER))
            return self._learn(self._tcp_shapes, length, shape)
        # An older kernel's short tcp_info, or missing subflow attributes.
        h = _HDR.unpack_from(buf, off)
        tcp = structs.parse_tcp_info_from(buf, *rec.info) if rec.info else None
        token, *rest = (rec.sub_value(buf, k) for k in SUBFLOW_ATTRS)
        local, remote = _endpoints(h)
        self._by_token.setdefault(token, []).append(
            DiagSubflow(local, remote, h[_IFINDEX], h[_INODE], h[_UID], tcp, token, *rest))
        return None

    # -- connections (MPTCP dump) --------------------------------------------------------------
    def _msk_record(self, buf: Any, off: int, length: int) -> None:
        for shape in self._msk_shapes.get(length, ()):
            values = shape.unpack_from(buf, off)
            if shape.check(values) == shape.expected:
                break
        else:
            learnt = self._msk_shape(buf, off, length)
            if learnt is None:
                return
            shape, values = learnt, learnt.unpack_from(buf, off)
        cookie = values[_COOKIE]
        prev = self._prev.get(cookie)
        if prev is not None and prev[0] == values:
            msk = prev[1]
        else:
            v = shape.relevant(values)  # type: ignore[misc]
            info = _new_mptcp_info(*v[8:8 + _CSUM], bool(v[8 + _CSUM]), *v[9 + _CSUM:])
            local, remote = _endpoints(values)
            msk = (local, remote, values[_STATE], values[_INODE], values[_UID], info)
        self._next[cookie] = (values, msk)
        self._msks.append(msk)

    def _msk_shape(self, buf: Any, off: int, length: int) -> _Shape | None:
        rec = _Record(buf, off, length, nested=False)
        if rec.info is not None and rec.info[1] >= structs.MPTCP_INFO_SIZE:
            shape = _Shape(length, rec, off, [(rec.info[0], _MPTCP_INFO_FMT)])
            first = shape.starts[0]
            shape.relevant = itemgetter(*_MSK_FIELDS, *range(first, first + len(fields(MptcpInfo))))
            return self._learn(self._msk_shapes, length, shape)
        h = _HDR.unpack_from(buf, off)   # an older kernel's short mptcp_info, or none at all
        info = structs.parse_mptcp_info_from(buf, *rec.info) if rec.info else None
        self._msks.append((*_endpoints(h), h[_STATE], h[_INODE], h[_UID], info))
        return None

    # -- the poll's result ---------------------------------------------------------------------
    def inodes(self) -> list[int]:
        return [m[3] for m in self._msks if m[3]]

    def finish(self, owners: dict[int, tuple[int, str]] | None = None) -> list[DiagConnection]:
        """Join subflows to their connections by token; this poll's objects become the previous ones."""
        self._prev, self._next = self._next, {}
        owners = owners or {}
        by_token, out, nobody = self._by_token, [], (None, None)
        for local, remote, state, inode, uid, info in self._msks:
            subflows = by_token.get(info.token) if info is not None and info.token else None
            pid, process = owners.get(inode, nobody)
            out.append(_new_connection(local, remote, state, inode, uid, info,
                                       tuple(subflows) if subflows else (), pid, process))
        self._msks, self._by_token = [], {}
        return out


def _endpoints(h: tuple[Any, ...]) -> tuple[tuple[str, int], tuple[str, int]]:
    family = h[_FAMILY]
    return (_ip(family, h[_SRC]), socket.ntohs(h[_SPORT])), (_ip(family, h[_DST]), socket.ntohs(h[_DPORT]))


class DiagReader:
    """A sock_diag reader for the network namespace of the thread that creates it.

    ``connections()`` runs one poll.  The netlink socket, its 1 MiB receive buffer, the compiled
    record shapes and the owner cache live as long as the reader (a context manager).
    """

    def __init__(self, *, include_listeners: bool = False, processes: bool = True,
                 families: Iterable[int] = (socket.AF_INET, socket.AF_INET6), timeout: float = 5.0) -> None:
        try:
            self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_SOCK_DIAG)
            self._sock.bind((0, 0))
        except OSError as e:
            raise MptcpDiagUnavailable(e.errno or 0, f"no sock_diag netlink socket: {e.strerror}") from None
        self._sock.settimeout(timeout)
        self._buf = bytearray(_BUFSIZE)
        self._seq = 0
        self._dirty = False
        self._families = tuple(families)
        self._msk_states = 0xFFFFFFFF if include_listeners else 0xFFFFFFFF & ~(1 << TCP_LISTEN)
        self._decoder = DiagDecoder()
        self.owners = SocketOwners() if processes else None

    def __enter__(self) -> DiagReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._sock.close()

    def connections(self) -> list[DiagConnection]:
        """Every MPTCP connection of the namespace with its subflows (in dump order) and owner."""
        decoder = self._decoder
        decoder.begin()
        for family in self._families:
            try:
                self._dump(family, IPPROTO_MPTCP, self._msk_states)
            except OSError as e:
                raise _unavailable(e) from None
        for family in self._families:
            self._dump(family, socket.IPPROTO_TCP, TCP_DUMP_STATES)
        owners = self.owners.lookup(decoder.inodes()) if self.owners is not None else None
        return decoder.finish(owners)

    def _dump(self, family: int, protocol: int, states: int) -> None:
        if self._dirty:
            self._drain()
        self._seq = seq = (self._seq + 1) & 0xFFFFFFFF
        attr = _REQ_PROTO.pack(_REQ_PROTO.size, INET_DIAG_REQ_PROTOCOL, protocol) if protocol > 0xFF else b""
        # With the protocol in the attribute, the u8 is 0: a kernel that ignores the attribute then
        # fails (no handler for protocol 0) instead of dumping TCP sockets as if they were MPTCP.
        self._sock.send(_REQ.pack(_REQ.size + len(attr), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP, seq, 0,
                                  family, protocol if protocol <= 0xFF else 0, 1 << (INET_DIAG_INFO - 1), states) + attr)
        self._dirty = True
        buf, recv, feed = self._buf, self._sock.recv_into, self._decoder.feed
        while not feed(buf, recv(buf), seq, protocol):
            pass
        self._dirty = False

    def _drain(self) -> None:
        """Read what an interrupted dump left (each read lets the kernel produce the next part)."""
        try:
            while self._sock.recv_into(self._buf, 0, socket.MSG_DONTWAIT):
                pass
        except (BlockingIOError, InterruptedError):
            pass
        self._dirty = False


def _unavailable(e: OSError) -> OSError:
    reasons = {
        errno.EINVAL: "kernel too old to dump MPTCP sockets (no INET_DIAG_REQ_PROTOCOL)",
        errno.ENOENT: "kernel built without MPTCP socket diagnostics (CONFIG_INET_MPTCP_DIAG)",
        errno.EOPNOTSUPP: "kernel cannot dump MPTCP sockets",
    }
    reason = reasons.get(e.errno or 0)
    return MptcpDiagUnavailable(e.errno or 0, reason) if reason else e


def dump_connections(*, include_listeners: bool = False, processes: bool = True) -> list[DiagConnection]:
    """One poll with a throwaway :class:`DiagReader` (prefer a long-lived reader for repeated polls)."""
    with DiagReader(include_listeners=include_listeners, processes=processes) as reader:
        return reader.connections()
