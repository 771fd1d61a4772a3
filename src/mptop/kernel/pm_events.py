"""Path-manager events (``mptcp_pm_events`` multicast group), decoded and fed into asyncio.

Subscribing needs CAP_NET_ADMIN (the group is ``GENL_MCAST_CAP_NET_ADMIN``): without it
:class:`~mptop.kernel.types.NeedsNetAdmin` is raised when :class:`PmEvents` is created.  The
subscription lives in the network namespace of the thread that creates it.

The decoder is ours (pyroute2 has no message class for these events); it is strict: a malformed
buffer raises :class:`~mptop.kernel.types.KernelParseError` and nothing else.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import struct
from collections.abc import AsyncIterator, Callable
from typing import Any

from mptop.kernel.genl import NETLINK_ADD_MEMBERSHIP, SOL_NETLINK, iter_attrs, iter_messages, split_genl
from mptop.kernel.pm import EVENTS_GROUP, open_pm
from mptop.kernel.types import KernelParseError, NeedsNetAdmin, PmEvent, PmEventKind

log = logging.getLogger(__name__)

EV_FLAG_SERVER_SIDE = 1 << 1   # MPTCP_PM_EV_FLAG_SERVER_SIDE in MPTCP_ATTR_FLAGS (6.18)
_NLMSG_MIN_TYPE = 0x10         # below: NLMSG_NOOP/ERROR/DONE/OVERRUN control messages


def _ipv4(raw: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET, raw)


def _ipv6(raw: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET6, raw)


def _unpacker(fmt: str) -> tuple[int, Callable[[bytes], Any]]:
    codec = struct.Struct(fmt)
    return codec.size, lambda raw: codec.unpack(raw)[0]


_U8, _U16, _U32 = _unpacker("=B"), _unpacker("=H"), _unpacker("=I")
_BE16, _S32 = _unpacker("!H"), _unpacker("=i")
_BOOL = (1, lambda raw: bool(raw[0]))
_IN4, _IN6 = (4, _ipv4), (16, _ipv6)

# MPTCP_ATTR_* number -> (PmEvent field, expected size, decoder)   (uapi/linux/mptcp_pm.h)
ATTRS: dict[int, tuple[str, int, Callable[[bytes], Any]]] = {
    1: ("token", *_U32),
    2: ("family", *_U16),
    3: ("local_id", *_U8),
    4: ("remote_id", *_U8),
    5: ("saddr", *_IN4),
    6: ("saddr", *_IN6),
    7: ("daddr", *_IN4),
    8: ("daddr", *_IN6),
    9: ("sport", *_BE16),
    10: ("dport", *_BE16),
    11: ("backup", *_BOOL),
    12: ("error", *_U8),
    13: ("flags", *_U16),
    14: ("timeout", *_U32),
    15: ("ifindex", *_S32),      # u32 in the yaml; the kernel puts sk_bound_dev_if (an int), as `ip` reads it
    16: ("reset_reason", *_U32),
    17: ("reset_flags", *_U32),
    18: ("server_side", *_BOOL),
}
_KINDS = {k.value: k for k in PmEventKind}


def decode_event(cmd: int, attrs: bytes) -> PmEvent | None:
    """One event from its genl ``cmd`` and attribute bytes; ``None`` for an event type we do not know.

    Unknown attributes go to ``extra``; a known one with the wrong size raises KernelParseError.
    """
    fields: dict[str, Any] = {}
    extra: dict[int, bytes] = {}
    for kind, raw in iter_attrs(attrs):
        spec = ATTRS.get(kind)
        if spec is None:
            extra[kind] = raw
            continue
        name, size, decode = spec
        if len(raw) != size:
            raise KernelParseError(f"MPTCP event attribute {kind} ({name}): {len(raw)} bytes, expected {size}")
        fields[name] = decode(raw)
    if "server_side" not in fields and "flags" in fields:
        fields["server_side"] = bool(fields["flags"] & EV_FLAG_SERVER_SIDE)
    event_kind = _KINDS.get(cmd)
    if event_kind is None:
        return None
    return PmEvent(kind=event_kind, extra=extra, **fields)


def decode_datagram(buf: bytes, family_id: int) -> list[PmEvent]:
    """Every event in one datagram from the events socket (other message types are skipped)."""
    events = []
    for msg in iter_messages(buf):
        if msg.type != family_id:
            continue
        cmd, _version, attrs = split_genl(msg.payload)
        event = decode_event(cmd, attrs)
        if event is not None:
            events.append(event)
    return events


class PmEvents:
    """A subscription to path-manager events in the calling thread's netns.

    Iterate with ``async for`` (the socket is watched with ``loop.add_reader``; each wakeup drains
    every pending message), or call :meth:`read_pending` without an event loop.  When the kernel
    drops events because we were too slow (ENOBUFS), ``overruns`` grows, ``on_overrun`` is
    called and the stream goes on: the consumer should then re-read state it derives from events.
    """

    def __init__(self, *, on_overrun: Callable[[int], None] | None = None, rcvbuf: int = 1 << 20) -> None:
        channel, family = open_pm(rcvbuf)
        self._sock = channel.sock
        self._family_id = family.id
        self.on_overrun = on_overrun
        self.overruns = 0            # ENOBUFS reports: events were lost
        self.malformed = 0           # datagrams that did not decode (logged and skipped)
        self._queue: asyncio.Queue[PmEvent | None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        group = family.groups.get(EVENTS_GROUP)
        if group is None:            # 5.6-5.11: the family is there, its events group is not
            self._sock.close()
            raise OSError(errno.ENOENT, "this kernel's path manager sends no events (Linux < 5.12)")
        try:
            self._sock.setsockopt(SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, group)
        except PermissionError:
            self._sock.close()
            raise NeedsNetAdmin("subscribing to MPTCP path-manager events") from None
        except BaseException:
            self._sock.close()
            raise
        self._sock.setblocking(False)

    def fileno(self) -> int:
        return self._sock.fileno()

    @property
    def closed(self) -> bool:
        return self._closed

    def read_pending(self) -> list[PmEvent]:
        """Every event already received, without blocking."""
        events: list[PmEvent] = []
        while not self._closed:
            try:
                data = self._sock.recv(65536)
            except BlockingIOError:
                break
            except OSError as e:
                if e.errno != errno.ENOBUFS:
                    raise
                self._overrun()
                continue
            try:
                events.extend(decode_datagram(data, self._family_id))
            except KernelParseError as e:
                self.malformed += 1
                log.warning("skipping a malformed MPTCP event: %s", e)
        return events

    def _overrun(self) -> None:
        self.overruns += 1
        log.warning("MPTCP path-manager events were lost (receive buffer overrun #%d)", self.overruns)
        if self.on_overrun is not None:
            self.on_overrun(self.overruns)

    def _on_readable(self) -> None:
        assert self._queue is not None
        try:
            events = self.read_pending()
        except OSError as e:   # the socket broke: end the stream rather than spin on a dead fd
            log.warning("MPTCP event socket failed: %s", e)
            self.close()
            return
        for event in events:
            self._queue.put_nowait(event)

    def _attach(self) -> asyncio.Queue[PmEvent | None]:
        if self._queue is None:
            self._loop = asyncio.get_running_loop()
            self._queue = asyncio.Queue()
            if self._closed:
                self._queue.put_nowait(None)
            else:
                self._loop.add_reader(self._sock.fileno(), self._on_readable)
        return self._queue

    def __aiter__(self) -> PmEvents:
        return self

    async def __anext__(self) -> PmEvent:
        queue = self._attach()
        event = await queue.get()
        if event is None:
            queue.put_nowait(None)   # every later call ends too
            raise StopAsyncIteration
        return event

    def close(self) -> None:
        """Unsubscribe; a pending ``async for`` ends.  Call from the loop's thread; idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(self._sock.fileno())
        self._sock.close()
        if self._queue is not None:
            self._queue.put_nowait(None)

    def __enter__(self) -> PmEvents:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> PmEvents:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()


async def pm_events(*, on_overrun: Callable[[int], None] | None = None) -> AsyncIterator[PmEvent]:
    """Path-manager events until the consumer stops iterating (``aclose()`` unsubscribes).

    Being a generator, it subscribes at the first ``anext()``, in the netns of the loop's thread at
    that moment; create :class:`PmEvents` directly to subscribe (and fail) right away.
    """
    with PmEvents(on_overrun=on_overrun) as events:
        async for event in events:
            yield event
