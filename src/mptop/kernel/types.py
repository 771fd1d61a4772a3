"""What the kernel tells about MPTCP connections, as typed values.

Every reader in :mod:`mptop.kernel` returns these: immutable named tuples.  One is built per
connection or subflow on every poll, and a tuple is built in one C call; a named tuple is also
defined in a fifth of a frozen dataclass's time, which every start-up pays for each class
(bench/startup.py).  Nothing above this layer touches raw structs or netlink.  Fields that an older
kernel does not fill are ``None`` (the structs grow between versions and we only trust the length
the kernel returned).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType
from typing import NamedTuple

Address = tuple[str, int]
"""An (ip, port) pair; IPv6 addresses without brackets."""


class KernelParseError(ValueError):
    """A buffer from the kernel was truncated or malformed and could not be decoded."""


class NeedsNetAdmin(PermissionError):
    """The operation needs CAP_NET_ADMIN in the network namespace's user namespace."""

    def __init__(self, what: str) -> None:
        super().__init__(f"{what} needs CAP_NET_ADMIN (run as root, or inside a user namespace you own)")
        self.what = what


class MptcpUnavailable(OSError):
    """An MPTCP socket cannot be created on this host; ``reason`` says why in plain words."""

    def __init__(self, errno_: int, reason: str) -> None:
        super().__init__(errno_, reason)
        self.reason = reason


class SocketStatus(enum.Enum):
    MPTCP = "mptcp"          # an MPTCP connection that still speaks MPTCP
    FALLBACK = "fallback"    # an MPTCP socket whose connection fell back to plain TCP
    TCP = "tcp"              # a plain TCP socket (MPTCP could not be used at all)


class _MptcpInfoFields(NamedTuple):
    """The fields of :class:`MptcpInfo`, in ``struct mptcp_info`` order."""

    subflows: int                      # additional subflows only
    add_addr_signal: int
    add_addr_accepted: int
    subflows_max: int
    add_addr_signal_max: int
    add_addr_accepted_max: int
    flags: int
    token: int
    write_seq: int
    snd_una: int
    rcv_nxt: int
    local_addr_used: int | None = None
    local_addr_max: int | None = None
    csum_enabled: bool | None = None
    retransmits: int | None = None
    bytes_retrans: int | None = None
    bytes_sent: int | None = None
    bytes_received: int | None = None
    bytes_acked: int | None = None
    subflows_total: int | None = None  # including the initial subflow (6.8+)
    last_data_sent_ms: int | None = None
    last_data_recv_ms: int | None = None
    last_ack_recv_ms: int | None = None


class MptcpInfo(_MptcpInfoFields):
    """``struct mptcp_info`` (connection level).  ``None`` = not filled by this kernel.

    An immutable named tuple, not a dataclass: the system-wide reader builds one per connection
    and poll (its ``last_*_ms`` fields move even on idle connections), and a tuple is built in
    one C call, about ten times faster than setting 23 slots.  ``._replace(...)`` copies one.
    """

    __slots__ = ()
    FLAG_FALLBACK = 1 << 0
    FLAG_REMOTE_KEY_RECEIVED = 1 << 1

    @property
    def fallback(self) -> bool:
        return bool(self.flags & self.FLAG_FALLBACK)

    @property
    def remote_key_received(self) -> bool:
        return bool(self.flags & self.FLAG_REMOTE_KEY_RECEIVED)


class TcpInfo(NamedTuple):
    """The ``struct tcp_info`` fields mptop uses.  Times in microseconds as the kernel gives them.

    A named tuple like :class:`MptcpInfo`: every read of every subflow builds one, and a tuple
    costs 0.35 µs where a frozen 14-slot dataclass costs 2.5 µs (measured).
    """

    state: int
    retransmits: int
    rtt_us: int
    rttvar_us: int
    snd_cwnd: int
    total_retrans: int
    rcv_rtt_us: int | None = None
    pacing_rate: int | None = None       # bytes/s
    bytes_acked: int | None = None
    bytes_received: int | None = None
    min_rtt_us: int | None = None
    delivery_rate: int | None = None     # bytes/s
    bytes_sent: int | None = None
    bytes_retrans: int | None = None


class SubflowReading(NamedTuple):
    """One subflow of a socket we own (``MPTCP_FULL_INFO`` or the pre-6.5 trio); a named tuple
    for the same reason as :class:`TcpInfo`."""

    id: int                  # the kernel's per-connection subflow id (not the PM endpoint id)
    local: Address
    remote: Address
    tcp: TcpInfo | None


class SocketReading(NamedTuple):
    """Everything one call learns about a socket we own."""

    status: SocketStatus
    info: MptcpInfo | None                      # None after fallback / for plain TCP
    subflows: tuple[SubflowReading, ...] = ()
    tcp: TcpInfo | None = None                  # plain TCP_INFO (the only subflow after fallback)


TCP_CLOSE = 7            # the TCP state a closed or reset socket is in (include/net/tcp_states.h)

# Subflow flag bits (MPTCP_SUBFLOW_FLAG_*) as carried in the diag ULP info.
SUBFLOW_FLAG_MCAP_REM = 1 << 0
SUBFLOW_FLAG_MCAP_LOC = 1 << 1
SUBFLOW_FLAG_JOIN_REM = 1 << 2
SUBFLOW_FLAG_JOIN_LOC = 1 << 3
SUBFLOW_FLAG_BKUP_REM = 1 << 4
SUBFLOW_FLAG_BKUP_LOC = 1 << 5
SUBFLOW_FLAG_FULLY_ESTABLISHED = 1 << 6
SUBFLOW_FLAG_CONNECTED = 1 << 7
SUBFLOW_FLAG_MAPVALID = 1 << 8


class DiagSubflow(NamedTuple):
    """A TCP socket carrying the ``mptcp`` ULP, as sock_diag dumps it (any process)."""

    local: Address
    remote: Address
    ifindex: int             # idiag_if: 0 unless the subflow is bound to a device
    inode: int
    uid: int
    tcp: TcpInfo | None
    token_local: int         # equals the connection's mptcpi_token: the join key
    token_remote: int
    id_local: int            # PM endpoint id of the local end (0 = initial subflow)
    id_remote: int
    flags: int               # SUBFLOW_FLAG_*

    @property
    def backup(self) -> bool:
        return bool(self.flags & (SUBFLOW_FLAG_BKUP_LOC | SUBFLOW_FLAG_BKUP_REM))

    @property
    def is_join(self) -> bool:
        return bool(self.flags & (SUBFLOW_FLAG_JOIN_LOC | SUBFLOW_FLAG_JOIN_REM))


class DiagConnection(NamedTuple):
    """An MPTCP connection (msk) from a sock_diag dump, with its subflows joined by token.

    An immutable named tuple like :class:`MptcpInfo` (new every poll, so built in one C call)."""

    local: Address
    remote: Address
    state: int
    inode: int
    uid: int
    info: MptcpInfo | None
    subflows: tuple[DiagSubflow, ...] = ()
    pid: int | None = None
    process: str | None = None

    @property
    def token(self) -> int | None:
        return self.info.token if self.info else None


class EndpointFlag(enum.IntFlag):
    SIGNAL = 1 << 0
    SUBFLOW = 1 << 1
    BACKUP = 1 << 2
    FULLMESH = 1 << 3
    IMPLICIT = 1 << 4
    LAMINAR = 1 << 5


class Endpoint(NamedTuple):
    """A path-manager endpoint (``ip mptcp endpoint show``)."""

    id: int
    address: str
    flags: EndpointFlag
    ifindex: int = 0
    ifname: str | None = None
    port: int = 0


class Limits(NamedTuple):
    subflows: int
    add_addr_accepted: int


class PmEventKind(enum.Enum):
    CREATED = 1
    ESTABLISHED = 2
    CLOSED = 3
    ANNOUNCED = 6
    REMOVED = 7
    SUB_ESTABLISHED = 10
    SUB_CLOSED = 11
    SUB_PRIORITY = 13
    LISTENER_CREATED = 15
    LISTENER_CLOSED = 16


class PmEvent(NamedTuple):
    """One path-manager event from the ``mptcp_pm_events`` multicast group."""

    kind: PmEventKind
    token: int | None = None
    family: int | None = None
    local_id: int | None = None
    remote_id: int | None = None
    saddr: str | None = None
    daddr: str | None = None
    sport: int | None = None
    dport: int | None = None
    backup: bool | None = None
    error: int | None = None
    flags: int | None = None
    timeout: int | None = None
    ifindex: int | None = None
    reset_reason: int | None = None
    reset_flags: int | None = None
    server_side: bool | None = None
    extra: Mapping[int, bytes] = MappingProxyType({})   # attributes this version does not know
