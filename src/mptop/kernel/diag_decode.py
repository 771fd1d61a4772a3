"""Decoding sock_diag dumps of MPTCP connections (msk) and their TCP subflows, fast.

:class:`DiagDecoder` turns the datagrams of one poll (the TCP dumps first, then the MPTCP dumps)
into :class:`~mptop.kernel.types.DiagConnection` objects with their subflows joined by token;
:mod:`mptop.kernel.diag` runs the dumps.

Speed: Python decoding dominates a poll (5-12 us a record when each attribute is walked).
Records of one kind nearly always share one *shape* (the same attributes with the same lengths,
hence the same record length), so the first record of a shape is walked and compiled into one
``struct.Struct`` that reads every wanted field *and* every attribute header in a single call,
and into a *fingerprint*: every byte of the record but the volatile ones (nlmsg_seq, timers,
queues, the "ms ago" ``last_*`` words).  Most sockets of a poll are idle: each record is first
fingerprinted with the shape of the record before it, which also frames it (its length and type
are fingerprinted), and a socket whose fingerprint equals the previous poll's (by cookie) takes
its previous decoding back: a subflow its immutable objects, a connection its addresses and
MptcpInfo values, only its ``last_*`` words read anew (~0.4 and ~1 us a record).  Anything else
is framed and decoded in full.  Records of an older kernel (a shorter tcp_info or mptcp_info)
are decoded by :mod:`mptop.kernel.structs`.  Malformed input raises :class:`KernelParseError`
(a netlink error message: OSError).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterable, Mapping
from operator import itemgetter
from typing import Any

from mptop.kernel import structs
from mptop.kernel.diag_shapes import (
    _DPORT,
    _DST,
    _ERRNO,
    _FAMILY,
    _FP_COOKIE,
    _HDR,
    _IFINDEX,
    _INODE,
    _LAST,
    _MAX_SHAPES,
    _SEQ,
    _SF_FIELDS,
    _SPORT,
    _SRC,
    _STABLE_INFO,
    _STATE,
    _TOKEN,
    _UID,
    SOCK_DIAG_BY_FAMILY,
    SUBFLOW_ATTRS,
    _ip,
    _new_subflow,
    _new_tcp_info,
    _Record,
    _Shape,
    _tuple_new,
)
from mptop.kernel.structs import NLMSG_DONE, NLMSG_ERROR, NLMSG_HEADER
from mptop.kernel.types import (
    Address,
    DiagConnection,
    DiagSubflow,
    KernelParseError,
    MptcpInfo,
)

# A connection's decoded record, by cookie: (shape, fingerprint, MptcpInfo values but last_*,
# local, remote, state, inode, uid).
_MskEntry = tuple[_Shape, tuple[Any, ...], tuple[Any, ...], Address, Address, int, int, int]
# A subflow's, by cookie: (shape, fingerprint, subflow, its token, (subflow,)).
_SubflowEntry = tuple[_Shape, tuple[Any, ...], DiagSubflow, int, tuple[DiagSubflow]]


MAX_ERRNO = 4095    # the kernel's own bound (include/linux/err.h)


class DiagDecoder:
    """Decodes a poll's dump datagrams (TCP dumps first, then MPTCP) into connections.

    Keeps the compiled shapes and the previous poll's objects.  ``owners`` (inode -> (pid, name))
    names the connections; ``unnamed`` lists the positions of those it could not name.
    """

    def __init__(self, *, fast: bool = True) -> None:
        self.fast = fast           # False: walk every record, decode with mptop.kernel.structs
        self._msk_shapes: dict[int, list[_Shape]] = {}
        self._tcp_shapes: dict[int, list[_Shape]] = {}
        self._prev_msks: dict[int, _MskEntry] = {}
        self._prev_subflows: dict[int, _SubflowEntry] = {}
        self._tcp_guess: _Shape | None = None     # the shape of the last record: the next one's, likely
        self._msk_guess: _Shape | None = None
        self.begin()

    def begin(self, owners: Mapping[int, tuple[int, str]] | None = None) -> None:
        """Start a poll."""
        self._owners = owners if owners is not None else {}
        self._msks: dict[int, _MskEntry] = {}
        self._subflows: dict[int, _SubflowEntry] = {}
        # token -> the subflows so far, as the tuple a DiagConnection takes (most connections have
        # one or two subflows: growing a tuple is cheaper than a list and its copy, and leaves the
        # cyclic GC fewer new objects to trace per poll)
        self._by_token: dict[int, tuple[DiagSubflow, ...]] = {}
        self.connections: list[DiagConnection] = []
        self.unnamed: list[int] = []

    def feed(self, buf: Any, n: int, seq: int | None, protocol: int) -> bool:
        """Decode ``buf[:n]`` (one datagram) of a dump of ``protocol``; True once the dump is done.

        Messages of another ``seq`` are skipped (``None``: take all).  A netlink error raises OSError.
        """
        self._done = False
        # One datagram holds the messages of one dump, hence one seq: checked on its first message,
        # the fast paths below skip the per-message header.
        fast = seq is None or (n >= NLMSG_HEADER.size and _SEQ.unpack_from(buf, 8)[0] == seq)
        if protocol == socket.IPPROTO_MPTCP:
            self._msk_datagram(buf, n, seq, fast)
        else:
            self._tcp_datagram(buf, n, seq, fast)
        return self._done

    def _message(self, buf: Any, off: int, n: int, seq: int | None) -> tuple[int, bool]:
        """(length, is a record of this dump) of the message at ``off``; length 0: the dump is done."""
        if n - off < NLMSG_HEADER.size:
            raise KernelParseError(f"netlink header truncated: {n - off} bytes left")
        length, kind, _flags, mseq, _pid = NLMSG_HEADER.unpack_from(buf, off)
        if length < NLMSG_HEADER.size or length > n - off:
            raise KernelParseError(f"netlink message length {length} out of range ({n - off} bytes left)")
        if mseq == seq or seq is None:
            if kind == SOCK_DIAG_BY_FAMILY:
                return length, True
            if (kind == NLMSG_DONE or kind == NLMSG_ERROR) and self._control(buf, off, length, kind):
                self._done = True
                return 0, False
        return length, False

    @staticmethod
    def _control(buf: Any, off: int, length: int, kind: int) -> bool:
        """NLMSG_DONE (True) or NLMSG_ERROR (an ACK: False); a negative code raises OSError."""
        if length < NLMSG_HEADER.size + 4:
            raise KernelParseError(f"netlink {'error' if kind == NLMSG_ERROR else 'done'} message truncated")
        code = -_ERRNO.unpack_from(buf, off + NLMSG_HEADER.size)[0]
        if code > MAX_ERRNO:        # no errno is that large (INT_MIN would overflow strerror)
            raise KernelParseError(f"netlink error code {-code} is not an errno")
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
    def _unpack(shapes: dict[int, list[_Shape]], compile_: Callable[[Any, int, int], _Shape | None], buf: Any,
                off: int, length: int) -> tuple[_Shape | None, tuple[Any, ...]]:
        """A record's values by the known shape it matches, else by a shape compiled for it (None:
        ``compile_`` decoded it the slow way)."""
        for shape in shapes.get(length, ()):
            values = shape.unpack_from(buf, off)
            if shape.check(values) == shape.expected:
                return shape, values
        compiled = compile_(buf, off, length)
        return (compiled, compiled.unpack_from(buf, off)) if compiled is not None else (None, ())

    @staticmethod
    def _learn(shapes: dict[int, list[_Shape]], shape: _Shape) -> _Shape:
        known = shapes.setdefault(shape.length, [])
        if len(known) < _MAX_SHAPES:
            known.append(shape)
        return shape

    @staticmethod
    def _known(shapes: dict[int, list[_Shape]], prev: Mapping[int, Any], buf: Any, off: int, length: int) -> Any:
        """The previous poll's entry of an unchanged socket (same shape, same fingerprint), else None."""
        first = shapes.get(length, (None,))[0]
        if first is None or first.fingerprint is None:
            return None
        fingerprint = first.fingerprint(buf, off)
        entry = prev.get(fingerprint[_FP_COOKIE])
        return entry if entry is not None and entry[1] == fingerprint and entry[0] is first else None

    # -- subflows (TCP dump) -------------------------------------------------------------------
    def _tcp_datagram(self, buf: Any, n: int, seq: int | None, fast: bool) -> None:
        """Each record: first taken for an unchanged subflow of the shape of the record before it
        (nearly all are, in an idle poll: one Struct call, no header parsing), else framed, decoded."""
        prev_of, current, by_token, group_of = self._prev_subflows.get, self._subflows, self._by_token, \
            self._by_token.get
        shape, off, cookie_at = self._tcp_guess if fast else None, 0, _FP_COOKIE
        fingerprint_of, size, step = (shape.fingerprint, shape.length, shape.step) if shape is not None else \
            (None, 0, 0)
        while off < n:
            if fingerprint_of is not None and off + size <= n:
                fingerprint = fingerprint_of(buf, off)
                entry = prev_of(fingerprint[cookie_at])
                if entry is not None and entry[1] == fingerprint and entry[0] is shape:
                    current[fingerprint[cookie_at]] = entry
                    by_token[entry[3]] = group_of(entry[3], ()) + entry[4]
                    off += step
                    continue
            length, is_record = self._message(buf, off, n, seq)
            if not length:
                return
            if is_record:
                entry = self._known(self._tcp_shapes, self._prev_subflows, buf, off, length) \
                    or self._tcp_record(buf, off, length)
                if entry is not None:
                    current[entry[1][cookie_at]] = entry
                    by_token[entry[3]] = group_of(entry[3], ()) + entry[4]
                    if fast:
                        shape = self._tcp_guess = entry[0]
                        fingerprint_of, size, step = shape.fingerprint, shape.length, shape.step
            off += (length + 3) & ~3

    def _tcp_record(self, buf: Any, off: int, length: int) -> _SubflowEntry | None:
        """A subflow that is new or changed (None: another TCP socket, or decoded the slow way)."""
        shape, values = self._unpack(self._tcp_shapes, self._tcp_shape, buf, off, length)
        if shape is None or shape.relevant is None or shape.fingerprint is None:  # plain TCP, another ULP
            return None
        family, sport, dport, src, dst, *v = shape.relevant(values)
        subflow = _new_subflow((_ip(family, src), socket.ntohs(sport)), (_ip(family, dst), socket.ntohs(dport)),
                               v[0], v[1], v[2], _new_tcp_info(v[8:]), v[3], v[4], v[5], v[6], v[7])
        return shape, shape.fingerprint(buf, off), subflow, subflow.token_local, (subflow,)

    def _tcp_shape(self, buf: Any, off: int, length: int) -> _Shape | None:
        """Walk a record of a new shape; compile it, or decode it the slow way (returns None)."""
        rec = _Record(buf, off, length, nested=True)
        if not rec.is_subflow:
            return self._learn(self._tcp_shapes, _Shape(length, rec, off, [])) if self.fast else None
        if self.fast and rec.info is not None and rec.info[1] >= structs.TCP_INFO_SIZE and rec.sub_complete():
            wanted = [(rec.info[0], structs.TCP_INFO_FORMAT)] + [(rec.sub[k][0], f) for k, f in SUBFLOW_ATTRS.items()]
            shape = _Shape(length, rec, off, wanted)
            info, *sub = shape.starts
            relevant = (*_SF_FIELDS, *sub, *(info + i for i in structs.TCP_INFO_ORDER))
            shape.relevant = itemgetter(*relevant)
            shape.set_fingerprint(rec.info[0] - off, structs.TCP_INFO_LAST_SPAN)
            return self._learn(self._tcp_shapes, shape)
        # An older kernel's short tcp_info, or missing subflow attributes.
        h = _HDR.unpack_from(buf, off)
        tcp = structs.parse_tcp_info_from(buf, *rec.info) if rec.info else None
        token, *rest = (rec.sub_value(buf, k) for k in SUBFLOW_ATTRS)
        subflow = DiagSubflow(*_endpoints(h), h[_IFINDEX], h[_INODE], h[_UID], tcp, token, *rest)
        self._by_token[token] = self._by_token.get(token, ()) + (subflow,)
        return None

    # -- connections (MPTCP dump) --------------------------------------------------------------
    def _msk_datagram(self, buf: Any, n: int, seq: int | None, fast: bool) -> None:
        """As :meth:`_tcp_datagram`.  An unchanged connection (its ``last_*`` "ms ago" words aside,
        read anew) reuses its addresses and MptcpInfo values: only two tuples are built for it."""
        prev_of, msks, by_token, owners, out = self._prev_msks.get, self._msks, self._by_token, self._owners, \
            self.connections
        new, last_of, cookie_at, token_at = _tuple_new, _LAST.unpack_from, _FP_COOKIE, _TOKEN
        shape, off = self._msk_guess if fast else None, 0
        fingerprint_of, size = (shape.fingerprint, shape.length) if shape is not None else (None, 0)
        while off < n:
            entry: _MskEntry | None = None
            if fingerprint_of is not None and off + size <= n:
                fingerprint = fingerprint_of(buf, off)
                entry = prev_of(fingerprint[cookie_at])
                if entry is not None and (entry[1] != fingerprint or entry[0] is not shape):
                    entry = None
                step = shape.step  # type: ignore[union-attr]
            if entry is None:
                length, is_record = self._message(buf, off, n, seq)
                if not length:
                    return
                step = (length + 3) & ~3
                if is_record:
                    entry = self._known(self._msk_shapes, self._prev_msks, buf, off, length) \
                        or self._msk_record(buf, off, length)
                    if entry is not None and fast:
                        shape = self._msk_guess = entry[0]
                        fingerprint_of, size = shape.fingerprint, shape.length
                if entry is None:
                    off += step
                    continue
            rec_shape, fingerprint, stable, local, remote, state, inode, uid = entry
            msks[fingerprint[cookie_at]] = entry
            info = new(MptcpInfo, stable + last_of(buf, off + rec_shape.last_at))
            token = info[token_at]
            owner = owners.get(inode)
            if owner is None:
                self._add_connection(local, remote, state, inode, uid, info)
            else:
                out.append(new(DiagConnection, (local, remote, state, inode, uid, info,
                                                by_token.get(token, ()) if token else (), owner[0], owner[1])))
            off += step

    def _msk_record(self, buf: Any, off: int, length: int) -> _MskEntry | None:
        """A connection that is new or changed (None: decoded the slow way)."""
        shape, values = self._unpack(self._msk_shapes, self._msk_shape, buf, off, length)
        if shape is None:
            return None
        local, remote = _endpoints(values)
        return (shape, shape.fingerprint(buf, off), values[shape.info], local, remote,  # type: ignore[misc]
                values[_STATE], values[_INODE], values[_UID])

    def _add_connection(self, local: Address, remote: Address, state: int, inode: int, uid: int,
                        info: MptcpInfo | None) -> None:
        subflows = self._by_token.get(info.token, ()) if info is not None and info.token else ()
        owner = self._owners.get(inode)
        if owner is None and inode:
            self.unnamed.append(len(self.connections))
        pid, process = owner if owner is not None else (None, None)
        self.connections.append(DiagConnection(local, remote, state, inode, uid, info, subflows, pid, process))

    def _msk_shape(self, buf: Any, off: int, length: int) -> _Shape | None:
        rec = _Record(buf, off, length, nested=False)
        if self.fast and rec.info is not None and rec.info[1] >= structs.MPTCP_INFO_SIZE:
            shape = _Shape(length, rec, off, [(rec.info[0], structs.MPTCP_INFO_FORMAT)])
            first = shape.starts[0]   # MptcpInfo's values, in field order: the stable ones in one slice
            shape.info = slice(first, first + _STABLE_INFO)
            at = rec.info[0] - off
            shape.last_at = at + structs.MPTCP_INFO_LAST_SPAN[0]
            shape.set_fingerprint(at, structs.MPTCP_INFO_LAST_SPAN)
            return self._learn(self._msk_shapes, shape)
        h = _HDR.unpack_from(buf, off)   # an older kernel's short mptcp_info, or none at all
        info = structs.parse_mptcp_info_from(buf, *rec.info) if rec.info else None
        self._add_connection(*_endpoints(h), h[_STATE], h[_INODE], h[_UID], info)
        return None


def _endpoints(h: tuple[Any, ...]) -> tuple[Address, Address]:
    family = h[_FAMILY]
    return (_ip(family, h[_SRC]), socket.ntohs(h[_SPORT])), (_ip(family, h[_DST]), socket.ntohs(h[_DPORT]))
