"""Per-transfer bookkeeping between polls: socket readings → TransferSample, path bytes, subflow events.

The sampler owns one :class:`TransferTrack` per transfer.  Subflows are tracked per socket by their
addresses.  A subflow that disappears is kept (closed, rate 0, its bytes still in its path's
totals), at most :data:`CLOSED_KEPT` per transfer.
"""

from __future__ import annotations

import socket
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from mptop.core.events import SubflowLedger, describe_subflow
from mptop.core.model import Event, Status, SubflowSample, TransferSample
from mptop.core.paths import InterfaceMap, PathBook
from mptop.core.rates import CounterRate, Ewma
from mptop.kernel.types import TCP_CLOSE, Address, SocketReading, SocketStatus, SubflowReading, TcpInfo

CLOSED_KEPT = 8
# A reset initial subflow stays attached to the connection (as msk->first) in TCP_CLOSE, with its
# local address zeroed and its counters reset: it is gone, not a new subflow from 0.0.0.0.


class TransferLike(Protocol):
    """What the sampler needs from a :class:`mptop.core.transfer.Transfer`: it reads these, releases the
    sockets after the final read, and fails a transfer that must use MPTCP but fell back.

    Read-only properties, so a class whose attribute is computed (``Transfer.bytes_done``) or narrower
    (``Transfer.state`` is a Literal) satisfies it.
    """

    @property
    def id(self) -> int: ...
    @property
    def url(self) -> str: ...
    @property
    def total(self) -> int | None: ...
    @property
    def bytes_done(self) -> int: ...
    @property
    def resumed(self) -> int: ...                 # of bytes_done, a resumed .part's (not fetched by this run)
    @property
    def state(self) -> str: ...                   # connecting / running / done / failed
    @property
    def error(self) -> str | None: ...
    @property
    def mptcp_unavailable(self) -> str | None: ...
    @property
    def sockets(self) -> Sequence[socket.socket]: ...
    @property
    def active_socket(self) -> socket.socket | None: ...   # the one carrying the response, once known
    @property
    def file(self) -> str | None: ...                     # final path; None for stdout or a failure
    @property
    def sha256(self) -> str | None: ...
    @property
    def blake3(self) -> str | None: ...
    @property
    def started_at(self) -> float | None: ...
    @property
    def ended_at(self) -> float | None: ...

    def release_sockets(self) -> None: ...
    def fail(self, reason: str) -> None: ...


def format_address(addr: Address | tuple[str, int] | None) -> str:
    """``ip:port``, ``[v6]:port`` for IPv6 (as SubflowSample.local/remote are spelled)."""
    if not addr:
        return "?"
    ip, port = addr[0], addr[1]
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def plain_subflow(sock: socket.socket, reading: SocketReading) -> SubflowReading | None:
    """The one "subflow" of a plain TCP or fallen-back socket, which MPTCP_FULL_INFO no longer lists."""
    try:
        return SubflowReading(id=0, local=sock.getsockname()[:2], remote=sock.getpeername()[:2], tcp=reading.tcp)
    except OSError:
        return None


def rtt_ms(sf: SubflowReading, sending: bool = False) -> float | None:
    """The receive-side RTT (tcpi_rcv_rtt): on the client of a download tcpi_rtt says little
    (docs/measured.md); fall back to tcpi_rtt while no rcv_rtt estimate exists yet (0).  A sender
    (``sending``: an upload) has the real one, tcpi_rtt, from its own data's ACKs."""
    if sf.tcp is None:
        return None
    us = sf.tcp.rtt_us if sending else sf.tcp.rcv_rtt_us or sf.tcp.rtt_us
    return us / 1000.0 if us else None


def count_directions(t: float, rx: CounterRate, tx: CounterRate, tcp: TcpInfo | None) -> tuple[int, int]:
    """Feed a subflow's received (tcpi_bytes_received) and acknowledged (tcpi_bytes_acked, not
    tcpi_bytes_sent, which counts retransmissions again) counters; the bytes each gained."""
    if tcp is None:
        return 0, 0
    got = rx.update(t, tcp.bytes_received) if tcp.bytes_received is not None else 0
    acked = tx.update(t, tcp.bytes_acked) if tcp.bytes_acked is not None else 0
    return got, acked


def final_directions(rx: CounterRate, tx: CounterRate, tcp: TcpInfo) -> tuple[int, int]:
    """A destroyed subflow's last word (its final ``tcp_info``): the bytes each direction gained
    since its last reading, counted in, no rate (shared by our transfers' and watch's trackers)."""
    got = rx.final(tcp.bytes_received) if tcp.bytes_received is not None else 0
    acked = tx.final(tcp.bytes_acked) if tcp.bytes_acked is not None else 0
    return got, acked


def direction_sample(st: SubflowIdentity, id_: int, tcp: TcpInfo | None, rx: CounterRate, tx: CounterRate,
                     *, t: float, rate_bps: float, rtt: float | None, backup: bool) -> SubflowSample:
    """A subflow's record with both directions (shared by our transfers' and watch's trackers)."""
    return SubflowSample(
        id=id_, local=st.local, remote=st.remote, iface=st.iface, path=st.label,
        bytes_received=rx.total, rate_bps=rate_bps, rtt_ms=rtt, backup=backup,
        bytes_sent=(tcp.bytes_sent or 0) if tcp else 0,
        cwnd=tcp.snd_cwnd if tcp else None, retransmits=tcp.total_retrans if tcp else None,
        join=st.join, age_s=t - st.first_seen, bytes_acked=tx.total, rx_bps=rx.rate * 8, tx_bps=tx.rate * 8,
        bytes_retrans=tcp.bytes_retrans if tcp else None,
    )


@dataclass(slots=True)
class SubflowIdentity:
    """What a tracked subflow is (shared by our transfers' and watch's trackers): its addresses and path."""

    local: str
    remote: str
    iface: str
    label: str
    join: bool
    first_seen: float


@dataclass(slots=True)
class SubflowTrack(SubflowIdentity):
    rx: CounterRate = field(default_factory=CounterRate)
    tx: CounterRate = field(default_factory=CounterRate)
    last: SubflowSample | None = None


@dataclass(slots=True)
class SocketTrack:
    subflows: dict[tuple[str, str], SubflowTrack] = field(default_factory=dict)   # by (local, remote)
    initial: tuple[str, str] | None = None   # the lowest-id subflow of the first reading with subflows
    goodput: CounterRate = field(default_factory=CounterRate)
    goodput_source: str | None = None    # "mptcp" / "tcp": a switch restarts the counter
    seen_mptcp: bool = False             # the MPTCP handshake completed (remote key received)


@dataclass(slots=True)
class TransferTrack:
    id: int
    sockets: dict[int, SocketTrack] = field(default_factory=dict)
    closed: deque[SubflowSample] = field(default_factory=lambda: deque(maxlen=CLOSED_KEPT))
    path_bytes: dict[str, int] = field(default_factory=dict)
    backup: dict[tuple[str, str], bool] = field(default_factory=dict)   # (local, remote) → flag, from PM events
    born: dict[tuple[str, str], float] = field(default_factory=dict)    # (local, remote) → PM "up" time
    app_bytes: CounterRate = field(default_factory=CounterRate)
    smoothed: Ewma = field(default_factory=lambda: Ewma(tau_s=2.0))    # for the ETA
    status: Status = "connecting"
    reason: str | None = None
    reported: Status | None = None       # the fallback/tcp status a `fallback` event was sent for
    last: TransferSample | None = None   # set once finished: the frozen sample after the final read

    @property
    def finished(self) -> bool:
        return self.last is not None

    def socket_track(self, index: int) -> SocketTrack:
        return self.sockets.setdefault(index, SocketTrack())


@dataclass(slots=True)
class PollContext:
    """What one poll shares across transfers."""

    t: float
    interfaces: InterfaceMap
    paths: PathBook
    ledger: SubflowLedger
    events: list[Event]
    active_paths: set[str] = field(default_factory=set)
    # (local, remote) → the subflow's own backup flag (sock_diag's MPTCP_SUBFLOW_FLAG_BKUP_LOC/REM);
    # None when sock_diag cannot be read.  An address pair is unique in a netns.
    subflow_backup: dict[tuple[str, str], bool] | None = None
    flags_missing: bool = False          # a subflow was not in subflow_backup (too new): read again
    # When the transfer being accounted had its sockets read: its byte counters' timestamp.  On a
    # loaded machine the reads lag ``t`` by a varying 0-150 ms, which would make a 1 s window of
    # bytes read late look faster than the link (11.7 Mbit/s on a 10 Mbit path, seen in CI).
    read_t: float | None = None

    def backup(self, track: TransferTrack, key: tuple[str, str]) -> bool:
        """A subflow's backup flag: the subflow's own, else what the PM events said.

        The events are not enough: a backup subflow the client asked for (a ``backup`` endpoint)
        is announced by SUB_ESTABLISHED with backup=0, and the client's own endpoint change
        emits no event at all (docs: sock_diag shows both)."""
        own = self.subflow_backup.get(key) if self.subflow_backup is not None else None
        if own is None and self.subflow_backup is not None:
            self.flags_missing = True
        return own if own is not None else track.backup.get(key, False)


def account_socket(ctx: PollContext, track: TransferTrack, index: int, subflows: Sequence[SubflowReading],
                   running: bool, upload: bool = False) -> list[SubflowSample]:
    """Feed one socket's subflows: rates, path bytes, subflow_up/down; returns live samples.
    ``upload``: the transfer sends, so the acknowledged bytes are what its paths carry.

    Subflows are keyed by their addresses, not their id: a new subflow always has a new local
    port, while ids can be reused (and on pre-6.5 kernels are only positions in a list).
    """
    sock = track.socket_track(index)
    subflows = [sf for sf in subflows if sf.tcp is None or sf.tcp.state != TCP_CLOSE]
    if sock.initial is None and subflows:
        first = min(subflows, key=lambda sf: sf.id)
        sock.initial = (format_address(first.local), format_address(first.remote))
    seen: set[tuple[str, str]] = set()
    out: list[SubflowSample] = []
    for sf in subflows:
        key = (format_address(sf.local), format_address(sf.remote))
        seen.add(key)
        st = sock.subflows.get(key) or _open(ctx, track, sock, sf, key)
        out.append(_subflow_sample(ctx, track, st, sf, running, upload))
    for gone in [key for key in sock.subflows if key not in seen]:
        _close(ctx, track, sock.subflows.pop(gone))
    return out


def _open(ctx: PollContext, track: TransferTrack, sock: SocketTrack, sf: SubflowReading,
          key: tuple[str, str]) -> SubflowTrack:
    local, remote = key
    iface = ctx.interfaces.iface_for(sf.local[0])
    label = ctx.paths.path(iface).label
    born = min(track.born.get(key, ctx.t), ctx.t)
    st = sock.subflows[key] = SubflowTrack(local, remote, iface, label, join=key != sock.initial, first_seen=born)
    if ctx.ledger.up((track.id, local, remote)):
        backup = ctx.backup(track, key)
        ctx.events.append(Event(ctx.t, "subflow_up", iface, track.id,
                                describe_subflow(label, local, remote, True, backup)))
    return st


def _close(ctx: PollContext, track: TransferTrack, st: SubflowTrack) -> None:
    st.rx.idle()
    st.tx.idle()
    if st.last is not None:
        track.closed.append(replace(st.last, rate_bps=0.0, closed=True))
    if ctx.ledger.down((track.id, st.local, st.remote)):
        ctx.events.append(Event(ctx.t, "subflow_down", st.iface, track.id,
                                describe_subflow(st.label, st.local, st.remote, False)))


def _subflow_sample(ctx: PollContext, track: TransferTrack, st: SubflowTrack, sf: SubflowReading,
                    running: bool, upload: bool) -> SubflowSample:
    got, acked = count_directions(ctx.t if ctx.read_t is None else ctx.read_t, st.rx, st.tx, sf.tcp)
    delta, carrying = (acked, st.tx) if upload else (got, st.rx)
    counted = sf.tcp is not None and (sf.tcp.bytes_acked if upload else sf.tcp.bytes_received) is not None
    if counted:                # a path whose subflow carried nothing yet still counts: 0 B, not absent
        ctx.paths.add_bytes(st.iface, delta)
        track.path_bytes[st.iface] = track.path_bytes.get(st.iface, 0) + delta
    ctx.paths.add_directions(st.iface, got, acked)
    rate_bps = carrying.rate * 8
    backup = ctx.backup(track, (st.local, st.remote))
    ctx.paths.add_live_subflow(st.iface, rate_bps, st.rx.rate * 8, st.tx.rate * 8)
    if running and not backup:
        ctx.active_paths.add(st.iface)
    st.last = direction_sample(st, sf.id, sf.tcp, st.rx, st.tx, t=ctx.t, rate_bps=rate_bps,
                               rtt=rtt_ms(sf, sending=upload), backup=backup)
    return st.last


def goodput_counter(reading: SocketReading, upload: bool = False) -> tuple[str, int] | None:
    """Connection-level bytes received: mptcpi_bytes_received, or tcpi_bytes_received after a
    fallback / on plain TCP (``upload``: acknowledged, mptcpi/tcpi_bytes_acked); ``None`` when this
    kernel fills neither."""
    info, tcp = reading.info, reading.tcp
    if info is not None and (mptcp := info.bytes_acked if upload else info.bytes_received) is not None:
        return "mptcp", mptcp
    if tcp is not None and (plain := tcp.bytes_acked if upload else tcp.bytes_received) is not None:
        return "tcp", plain
    return None


def account_goodput(t: float, sock: SocketTrack, reading: SocketReading, upload: bool = False) -> bool:
    """Update the socket's goodput counter; False when the kernel gives no counter for it."""
    counter = goodput_counter(reading, upload)
    if counter is None:
        return False
    source, value = counter
    if source != sock.goodput_source:
        # mptcpi_bytes_received and the fallback subflow's tcpi_bytes_received are different
        # counters: switching must not read as a reset (a jump) of one counter.
        sock.goodput, sock.goodput_source = CounterRate(), source
    sock.goodput.update(t, value)
    return True


_STATUS: dict[SocketStatus, Status] = {
    SocketStatus.MPTCP: "mptcp", SocketStatus.FALLBACK: "fallback", SocketStatus.TCP: "tcp",
}


def status_of(reading: SocketReading) -> Status:
    return _STATUS[reading.status]


def live_reading(tr: TransferLike, readings: Sequence[tuple[int, socket.socket, SocketReading | None]]
                  ) -> tuple[int, SocketReading] | None:
    """The reading of the socket carrying the response (else the newest socket that reads)."""
    active = tr.active_socket
    ordered = sorted(readings, key=lambda r: (r[1] is active, r[0]), reverse=True)
    for index, _sock, reading in ordered:
        if reading is not None:
            return index, reading
    return None


def mean_bps(tr: TransferLike) -> float | None:
    """Bits/s this run fetched, from the transfer's start (connecting included, as curl and wget
    count it) to its end; a resumed .part's bytes were not fetched, so they do not count."""
    if tr.started_at is None or tr.ended_at is None or tr.ended_at <= tr.started_at:
        return None
    return (tr.bytes_done - tr.resumed) * 8 / (tr.ended_at - tr.started_at)
