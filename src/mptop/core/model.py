"""What the core produces for views: samples, events and summaries.

These are the NDJSON records of ``mptop get --json`` / ``--record`` / ``watch --json`` and what
``mptop replay`` reads back, so :meth:`to_json` and :func:`record_from_json` are exact inverses.
Rates are bits per second; times are seconds since the run started (monotonic clock).

Directions: ``rx`` is what the kernel received (``tcpi_bytes_received``), ``tx`` what it sent *and the
peer acknowledged* (``tcpi_bytes_acked``: payload that arrived, retransmissions not counted twice).
Subflows, paths, transfers and connections carry both (``rx_bps``/``tx_bps``,
``bytes_received``/``bytes_acked``); ``rate_bps`` and a path's ``bytes`` are the direction that carries
the run: received for downloads, acknowledged for uploads (``TransferSample.direction``), both summed
for ``watch``'s connections.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal, Union

from mptop.kernel.linktype import LinkType

Status = Literal["mptcp", "fallback", "tcp", "connecting"]
Direction = Literal["download", "upload"]
CompareSide = Literal["mptcp", "tcp"]   # which download of a ``--compare-tcp`` pair (the same URL twice)

EVENT_KINDS = (
    "subflow_up", "subflow_down", "path_stalled", "path_recovered", "fallback",
    "link_down", "link_up", "address_announced", "address_removed",
    "transfer_done", "transfer_failed",
    "transfer_note",       # a transfer's one-line remark, e.g. a .part it could not resume
    "transfer_stalled", "transfer_resumed",   # every path of a transfer down or stalled; bytes again
    "connection_closed",   # watch mode: a connection left the dump
    "subflow_missing",     # a live connection lost its subflow on a path that is up and has an endpoint
    "subflow_stalled", "subflow_recovered",   # one subflow quiet while another on its path moves bytes; back
    "scenario",            # demo: a scripted lab step (link down, rate change, …)
    "user_action",         # demo: what a key the user pressed did to the lab (w, c, b, r)
    "comparison",          # --compare-tcp: MPTCP against plain TCP in words, with the run's numbers
)


@dataclass(slots=True)
class SubflowSample:
    id: int
    local: str                 # "ip:port" ("[v6]:port" for IPv6)
    remote: str
    iface: str                 # the path key: local interface name (or local address if unknown)
    path: str                  # the path's label: Wi-Fi, Cellular, Ethernet, or the interface
    bytes_received: int
    rate_bps: float            # the direction the owner carries (see the module docstring)
    rtt_ms: float | None       # a download's receive-side RTT (tcpi_rcv_rtt), else tcpi_rtt
    backup: bool
    bytes_sent: int = 0        # tcpi_bytes_sent: retransmissions included
    cwnd: int | None = None
    retransmits: int | None = None
    join: bool = False         # False: the initial subflow (MP_CAPABLE); True: an MP_JOIN subflow
    age_s: float = 0.0
    closed: bool = False
    bytes_acked: int = 0       # tcpi_bytes_acked: sent and acknowledged (counted across counter resets)
    rx_bps: float = 0.0
    tx_bps: float = 0.0        # of acknowledged bytes
    bytes_retrans: int | None = None   # tcpi_bytes_retrans


@dataclass(slots=True)
class TransferSample:
    id: int
    url: str
    bytes: int
    total: int | None
    rate_bps: float
    status: Status
    reason: str | None = None
    subflows: list[SubflowSample] = field(default_factory=list)
    eta_s: float | None = None
    state: Literal["connecting", "running", "done", "failed"] = "running"
    error: str | None = None
    avg_bps: float | None = None     # once finished: bits/s fetched over the whole transfer (start to end)
    direction: Direction = "download"
    rx_bps: float = 0.0
    tx_bps: float = 0.0
    bytes_received: int = 0          # the subflows' totals, as the kernel counted them
    bytes_acked: int = 0
    compare: CompareSide | None = None   # --compare-tcp: this is the MPTCP or the plain-TCP download
    duration_s: float | None = None  # once finished: its start to its end


@dataclass(slots=True)
class ConnectionSample:
    """A connection seen system-wide (``mptop watch``), not started by mptop."""

    token: int
    local: str
    remote: str
    process: str | None
    status: Status
    rate_bps: float
    subflows: list[SubflowSample] = field(default_factory=list)
    bytes: int = 0
    age_s: float = 0.0
    pid: int | None = None
    rx_bps: float = 0.0
    tx_bps: float = 0.0
    bytes_received: int = 0
    bytes_acked: int = 0
    closed: bool = False       # its last listing, once it is gone: final bytes, rate 0


@dataclass(slots=True)
class PathSample:
    label: str
    rate_bps: float
    bytes: int
    share: float = 0.0          # of the current total rate, 0..1
    link_up: bool | None = None
    subflows: int = 0
    stalled: bool = False
    link_type: LinkType = "other"   # from the kernel's evidence (mptop.kernel.linktype)
    no_subflow_s: float | None = None   # up, has an endpoint, lost its subflow this long ago (core.missing)
    waiting_on: str | None = None  # quiet with its link up while the transfer moves on these paths (labels)
    rx_bps: float = 0.0
    tx_bps: float = 0.0
    bytes_received: int = 0
    bytes_acked: int = 0


@dataclass(slots=True)
class Sample:
    t: float
    transfers: list[TransferSample] = field(default_factory=list)
    paths: dict[str, PathSample] = field(default_factory=dict)      # keyed by interface
    connections: list[ConnectionSample] | None = None               # watch mode only
    type: Literal["sample"] = "sample"

    def transfers_ended(self) -> bool:
        """Every transfer of this run is done or failed (views then show totals, not rates)."""
        return bool(self.transfers) and all(t.state in ("done", "failed") for t in self.transfers)

    def byte_shares(self) -> dict[str, float]:
        """Each path's share of the bytes carried so far (the rate shares are in ``paths``)."""
        total = sum(p.bytes for p in self.paths.values())
        return {iface: p.bytes / total if total else 0.0 for iface, p in self.paths.items()}


@dataclass(slots=True)
class Event:
    t: float
    kind: str                   # one of EVENT_KINDS
    iface: str | None = None
    transfer: int | None = None
    detail: str = ""
    connection: int | None = None   # watch mode: the connection's token (its id in `mptop watch --json`)
    type: Literal["event"] = "event"


@dataclass(slots=True)
class TransferSummary:
    id: int
    url: str
    file: str | None
    bytes: int
    sha256: str | None
    status: Status
    reason: str | None
    ok: bool
    error: str | None
    path_bytes: dict[str, int] = field(default_factory=dict)
    duration_s: float | None = None      # this transfer's start to end
    resumed: int = 0                     # of ``bytes``, what a .part file already held (not fetched now)
    direction: Direction = "download"    # an upload's ``file`` is what was sent (None: standard input)
    reply: str | None = None             # an upload: the start of the server's answer, control characters escaped
    compare: CompareSide | None = None   # --compare-tcp: this is the MPTCP or the plain-TCP download
    blake3: str | None = None            # --hash blake3: the body's blake3 (``sha256`` is then None)


@dataclass(slots=True)
class ConnectionSummary:
    """``mptop run``: one connection of the command, at its end (or the run's)."""

    token: int
    local: str
    remote: str
    process: str | None
    pid: int | None
    status: Status
    bytes: int                           # both directions, at the MPTCP level (else its subflows' sum)
    path_bytes: dict[str, int] = field(default_factory=dict)   # iface -> bytes of its subflows there
    fallback: str | None = None          # why it fell back to TCP, as the fallback event said


@dataclass(slots=True)
class Outage:
    """``mptop run``: a path that stalled (``path_stalled``) or whose link went down, and for how long."""

    iface: str
    path: str
    kind: Literal["stalled", "link_down"]
    start_s: float
    duration_s: float | None = None      # None: not over when the run ended


@dataclass(slots=True)
class Summary:
    duration_s: float
    transfers: list[TransferSummary] = field(default_factory=list)
    type: Literal["summary"] = "summary"
    # `mptop run` only (left out of the NDJSON otherwise): the command, its exit code, its connections
    command: list[str] | None = None
    exit_code: int | None = None
    connections: list[ConnectionSummary] | None = None
    outages: list[Outage] | None = None


RUN_FIELDS = ("command", "exit_code", "connections", "outages")


@dataclass(slots=True)
class HostInfo:
    """MPTCP on the host at the start of a run: what the TUI header shows (and replays)."""

    kernel: str
    enabled: bool | None
    path_manager: str | None
    scheduler: str | None
    subflows_limit: int | None
    add_addr_accepted_limit: int | None
    events: Literal["netlink", "inferred"] = "inferred"
    labels: dict[str, str] = field(default_factory=dict)   # iface -> label
    link_types: dict[str, LinkType] = field(default_factory=dict)   # iface -> link type
    started: str | None = None     # wall-clock start of the run, UTC ISO 8601 (times are relative to it)
    version: str | None = None     # mptop's version
    type: Literal["host"] = "host"


def bytes_per_path(subflows: list[SubflowSample], upload: bool = False) -> dict[str, int]:
    """What each path carried of these subflows: received bytes, or for an upload the acknowledged ones."""
    out: dict[str, int] = {}
    for sub in subflows:
        out[sub.iface] = out.get(sub.iface, 0) + (sub.bytes_acked if upload else sub.bytes_received)
    return out


Record = Union[Sample, Event, Summary, HostInfo]

Sink = Callable[[Record], None]
"""Whatever consumes a run's records, one at a time (:mod:`mptop.sinks`, the TUI's feed)."""


def to_json(record: Record) -> dict[str, Any]:
    """The NDJSON object for a record; ``connections`` is left out of non-watch samples."""
    out = asdict(record)
    if isinstance(record, Sample) and record.connections is None:
        del out["connections"]
    if isinstance(record, Sample) and record.connections is not None and not record.transfers:
        del out["transfers"]
    if isinstance(record, Summary) and record.command is None:
        for name in RUN_FIELDS:
            del out[name]
    return out


def to_ndjson(record: Record) -> str:
    """The one spelling of a record on a line: compact JSON, non-ASCII escaped (``\\u2192``), newline-ended.

    ``--json`` and ``--record`` both write this, so one run gives byte-identical lines on either;
    ASCII also keeps a raw name from the network from reaching a terminal unescaped.
    """
    return json.dumps(to_json(record), separators=(",", ":")) + "\n"


def _build(cls: type, data: dict[str, Any]) -> Any:
    known = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in known})


def record_from_json(data: dict[str, Any]) -> Record:
    """Inverse of :func:`to_json`; unknown keys are ignored so newer recordings still load."""
    kind = data.get("type")
    if kind == "sample":
        transfers = [
            _build(TransferSample, {**t, "subflows": [_build(SubflowSample, s) for s in t.get("subflows", [])]})
            for t in data.get("transfers", [])
        ]
        conns = data.get("connections")
        if conns is not None:
            conns = [
                _build(ConnectionSample, {**c, "subflows": [_build(SubflowSample, s) for s in c.get("subflows", [])]})
                for c in conns
            ]
        paths = {k: _build(PathSample, v) for k, v in data.get("paths", {}).items()}
        return Sample(t=data["t"], transfers=transfers, paths=paths, connections=conns)
    if kind == "event":
        return _build(Event, data)
    if kind == "summary":
        conns, outages = data.get("connections"), data.get("outages")
        return Summary(
            duration_s=data["duration_s"],
            transfers=[_build(TransferSummary, t) for t in data.get("transfers", [])],
            command=data.get("command"), exit_code=data.get("exit_code"),
            connections=None if conns is None else [_build(ConnectionSummary, c) for c in conns],
            outages=None if outages is None else [_build(Outage, o) for o in outages],
        )
    if kind == "host":
        return _build(HostInfo, data)
    raise ValueError(f"unknown record type {kind!r}")
