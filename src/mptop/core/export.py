"""``mptop export``: the MPTCP state of this network namespace as Prometheus metrics.

::

    exporter = Exporter(per_connection=0)
    exporter.open()                       # MptcpDiagUnavailable: this kernel cannot list connections
    text = exporter.scrape()              # the kernel read now; the text exposition format
    async with exporter.events():         # count path-manager events while the block runs
        ...

Everything is read at scrape time in the netns of the calling thread: one sock_diag dump (listeners
included, no /proc owner scan), the interfaces, ``net.mptcp.*``, MPTcpExt and the path manager's
endpoints and limits.  The only state kept between scrapes is what keeps counters monotonic (see
:mod:`mptop.core.export_paths`) and the path-manager events counted as they arrive.

Cardinality: no address or port labels except listening ports (at most :data:`MAX_LISTEN_PORTS`);
every enum label has a closed value set; interfaces as in :class:`PathLedger`; per-connection
series only for the top ``per_connection`` connections by bytes, named by a short hash of the token.
The metric names and their meaning are listed in docs/export.md.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Final

from mptop import __version__
from mptop.core.events import STALL_AFTER_S
from mptop.core.export_paths import MAX_INTERFACES, OTHER, RTT_BUCKETS_S, PathLedger, PathView
from mptop.core.exposition import Exposition
from mptop.core.paths import InterfaceMap
from mptop.core.polling import PmFeed
from mptop.kernel import host
from mptop.kernel.diag import TCP_LISTEN, DiagReader
from mptop.kernel.linktype import link_kind
from mptop.kernel.pm import get_limits, list_endpoints
from mptop.kernel.types import DiagConnection, EndpointFlag, KernelParseError, PmEvent, PmEventKind
from mptop.kernel.types import MptcpUnavailable as MptcpUnavailable  # what open() raises, for the command

MAX_PER_CONNECTION: Final = 50
MAX_LISTEN_PORTS: Final = 16
TCP_STATES: Final = {1: "established", 2: "syn_sent", 3: "syn_recv", 4: "fin_wait1", 5: "fin_wait2",
                     6: "time_wait", 7: "close", 8: "close_wait", 9: "last_ack", 11: "closing"}
# MPTcpExt counters by what they count (docs/export.md says why each belongs where it is).
FALLBACK_STAGES: Final = {
    "syn": ("MPCapableSYNTXDrop",),
    "synack": ("MPCapableFallbackSYNACK",),
    "ack": ("MPCapableFallbackACK",),
    "data": ("MPCapableDataFallback", "DssFallback", "DSSCorruptionFallback"),
    "other": ("MPFallbackTokenInit", "MD5SigFallback", "SimultConnectFallback"),
}
JOINS: Final = {
    ("in", "ok"): ("MPJoinAckRx",),
    ("in", "hmac_failure"): ("MPJoinAckHMacFailure",),
    ("in", "no_token"): ("MPJoinNoTokenFound",),
    ("in", "rejected"): ("MPJoinRejected",),
    ("out", "ok"): ("MPJoinSynAckRx",),
    ("out", "hmac_failure"): ("MPJoinSynAckHMacFailure",),
    ("out", "error"): ("MPJoinSynTxCreatSkErr", "MPJoinSynTxBindErr", "MPJoinSynTxConnectErr"),
}
JOIN_ATTEMPTS: Final = {"in": ("MPJoinSynRx",), "out": ("MPJoinSynTx",)}
SINGLE_COUNTERS: Final = {
    "mptcp_subflows_stale_total": ("SubflowStale", "Subflows the kernel marked stale (no progress, others moving)."),
    "mptcp_subflows_recovered_total": ("SubflowRecover", "Stale subflows that became usable again."),
    "mptcp_blackholes_total": ("Blackhole", "MPTCP blackholes detected (SYNs with MPTCP options dropped on the way)."),
}
PM_KINDS: Final = tuple(k.name.lower() for k in PmEventKind)
_FLAG_ORDER: Final = ("signal", "subflow", "backup", "fullmesh", "implicit", "laminar")


def connection_id(token: int) -> str:
    """A connection's label: 8 hex digits of a hash of its token (never an address)."""
    return hashlib.blake2b(token.to_bytes(8, "little"), digest_size=4).hexdigest()


def endpoint_flags(flags: EndpointFlag) -> str:
    names = [name for name in _FLAG_ORDER if flags & EndpointFlag[name.upper()]]
    return ",".join(names) or "none"


def _summed(counters: dict[str, int], names: Iterable[str]) -> int | None:
    present = [counters[n] for n in names if n in counters]
    return sum(present) if present else None


def _connection_bytes(conn: DiagConnection) -> tuple[int, int]:
    """(received, sent-and-acked) at the MPTCP level, else summed over its live subflows."""
    info = conn.info
    if info is not None and info.bytes_received is not None and info.bytes_acked is not None:
        return info.bytes_received, info.bytes_acked
    rx = sum((sf.tcp.bytes_received or 0) for sf in conn.subflows if sf.tcp is not None)
    tx = sum((sf.tcp.bytes_acked or 0) for sf in conn.subflows if sf.tcp is not None)
    return rx, tx


class Exporter:
    """See the module docstring."""

    def __init__(self, *, per_connection: int = 0, max_interfaces: int = MAX_INTERFACES,
                 stall_after_s: float = STALL_AFTER_S, clock: Callable[[], float] = time.monotonic) -> None:
        if not 0 <= per_connection <= MAX_PER_CONNECTION:
            raise ValueError(f"--per-connection must be 0 to {MAX_PER_CONNECTION}")
        self.per_connection = per_connection
        self.ledger = PathLedger(max_interfaces, stall_after_s)
        self._clock = clock
        self._reader: DiagReader | None = None
        self._pm_counts = dict.fromkeys(PM_KINDS, 0)
        self._pm = PmFeed(self._pm_event)
        self.last_series = 0
        self._interfaces = InterfaceMap()      # as read at the last scrape that could read them

    # -- lifecycle -----------------------------------------------------------------------------
    def open(self) -> None:
        """Open the sock_diag reader in the calling thread's netns and dump once (fails here, not
        at the first scrape, on a kernel that cannot list MPTCP connections)."""
        if self._reader is None:
            self._reader = DiagReader(include_listeners=True, processes=False)
            self._reader.connections()

    def close(self) -> None:
        self._pm.close()
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    @contextlib.asynccontextmanager
    async def events(self) -> AsyncIterator[bool]:
        """Count path-manager events while the block runs; yields whether subscribed."""
        subscribed = self._pm.start()
        async with self._pm.consuming():
            yield subscribed

    def _pm_event(self, event: PmEvent) -> None:
        self._pm_counts[event.kind.name.lower()] += 1

    # -- one scrape ----------------------------------------------------------------------------
    def scrape(self) -> str:
        out = Exposition()
        started = self._clock()
        ok = self._connections(out, started)
        self._host(out)
        self._kernel_counters(out)
        self._self_metrics(out, ok, started)
        self.last_series = out.series()
        return out.render()

    def _connections(self, out: Exposition, t: float) -> bool:
        states = out.family("mptcp_connections", "gauge", "MPTCP connections by TCP state (listeners apart).")
        fallback = out.family("mptcp_connections_fallback", "gauge", "MPTCP connections that fell back to TCP.")
        listeners = out.family("mptcp_listener_connections", "gauge",
                               "MPTCP connections accepted on each listening port (the port is the label).")
        try:
            self.open()
            assert self._reader is not None
            conns = self._reader.connections()
            interfaces = self._interfaces = InterfaceMap.from_interfaces(host.interfaces(), link_kind)
        except (OSError, KernelParseError):
            self._paths(out, [], None)
            return False
        by_state = dict.fromkeys(TCP_STATES.values(), 0)
        listening: set[int] = set()
        local_ports: dict[int, int] = {}           # accepted-side candidates: local port -> connections
        fell_back = 0
        for conn in conns:
            state = conn.state
            if state == TCP_LISTEN:
                listening.add(conn.local[1])
                continue
            by_state[TCP_STATES.get(state, "close")] += 1
            port = conn.local[1]
            local_ports[port] = local_ports.get(port, 0) + 1
            info = conn.info
            if info is not None and info.flags & info.FLAG_FALLBACK:
                fell_back += 1
        ports = sorted(listening)
        per_port = {str(p): local_ports.get(p, 0) for p in ports[:MAX_LISTEN_PORTS]}
        if len(ports) > MAX_LISTEN_PORTS:
            per_port[OTHER] = sum(local_ports.get(p, 0) for p in ports[MAX_LISTEN_PORTS:])
        for name, count in by_state.items():
            states.add(count, state=name)
        fallback.add(fell_back)
        for port_label, count in per_port.items():
            listeners.add(count, port=port_label)
        self._paths(out, self.ledger.observe(t, conns, interfaces), interfaces)
        self._per_connection(out, conns)
        return True

    def _paths(self, out: Exposition, views: list[PathView], interfaces: InterfaceMap | None) -> None:
        subflows = out.family("mptcp_subflows", "gauge", "Live subflows by local interface and backup flag.")
        up = out.family("mptcp_path_up", "gauge", "1 if the path's interface is up with carrier, else 0.")
        families = [
            (out.family("mptcp_path_received_bytes_total", "counter",
                        "Payload bytes received on the path's subflows (closed subflows included)."), "received"),
            (out.family("mptcp_path_sent_bytes_total", "counter",
                        "Payload bytes sent on the path's subflows and acknowledged by the peer."), "sent"),
            (out.family("mptcp_path_retransmitted_bytes_total", "counter",
                        "Payload bytes retransmitted on the path's subflows."), "retransmitted"),
            (out.family("mptcp_path_stalls_total", "counter",
                        "Outages seen on the path: it carried a connection's data, then nothing while the "
                        "connection moved bytes elsewhere or the link was down (judged at each scrape)."), "stalls"),
            (out.family("mptcp_path_subflows_closed_total", "counter", "Subflows on the path that closed."),
             "subflows_closed"),
        ]
        rtt = out.family("mptcp_path_rtt_seconds", "histogram",
                         "Smoothed RTT of each live subflow on the path, one observation per subflow per scrape.")
        for view in views:
            labels = {"interface": view.name, "link_type": view.link_type}
            for backup, count in sorted(view.subflows.items()):
                subflows.add(count, **labels, backup=str(backup).lower())
            if view.up is not None:
                up.add(int(view.up), **labels)
            for family, attr in families:
                family.add(getattr(view.totals, attr), **labels)
            rtt.add_histogram(RTT_BUCKETS_S, view.totals.rtt_cumulative(), view.totals.rtt_sum_s, **labels)

    def _per_connection(self, out: Exposition, conns: list[DiagConnection]) -> None:
        if not self.per_connection:
            return
        rx = out.family("mptcp_connection_received_bytes_total", "counter",
                        "Bytes received by one of the top connections by bytes (--per-connection).")
        tx = out.family("mptcp_connection_sent_bytes_total", "counter",
                        "Bytes sent and acknowledged by one of the top connections by bytes (--per-connection).")
        subflows = out.family("mptcp_connection_subflows", "gauge", "Live subflows of one of the top connections.")
        ranked = sorted(((_connection_bytes(c), c) for c in conns if c.token and c.state != TCP_LISTEN),
                        key=lambda pair: -sum(pair[0]))
        for (received, sent), conn in ranked[:self.per_connection]:
            label = connection_id(conn.token or 0)
            rx.add(received, connection=label)
            tx.add(sent, connection=label)
            subflows.add(len(conn.subflows), connection=label)

    def _host(self, out: Exposition) -> None:
        sysctls = host.mptcp_sysctls()
        out.family("mptcp_enabled", "gauge", "1 if net.mptcp.enabled is 1 in this network namespace.").add(
            int(sysctls.get("enabled") == "1"))
        out.family("mptcp_pm_info", "gauge", "The path manager and packet scheduler in use (value 1).").add(
            1, pm_type=host.path_manager(sysctls) or "unknown", scheduler=sysctls.get("scheduler", "unknown"))
        limit_subflows = out.family("mptcp_limit_subflows", "gauge", "Path-manager limit: subflows per connection.")
        limit_addrs = out.family("mptcp_limit_add_addr_accepted", "gauge",
                                 "Path-manager limit: ADD_ADDRs accepted per connection.")
        endpoints = out.family("mptcp_endpoints", "gauge", "Path-manager endpoints by interface and flags.")
        with contextlib.suppress(OSError):
            limits = get_limits()
            limit_subflows.add(limits.subflows)
            limit_addrs.add(limits.add_addr_accepted)
        with contextlib.suppress(OSError):
            counts: dict[tuple[str, str], int] = {}
            for ep in list_endpoints():
                # An endpoint's interface takes a path label (the same 16, first come) or "other".
                iface = "any" if ep.ifname is None else self.ledger.path_name(ep.ifname, self._interfaces)
                key = (iface, endpoint_flags(ep.flags))
                counts[key] = counts.get(key, 0) + 1
            for (iface, flags), count in sorted(counts.items()):
                endpoints.add(count, interface=iface, flags=flags)

    def _kernel_counters(self, out: Exposition) -> None:
        try:
            counters = host.mptcp_counters()
        except (OSError, KernelParseError):
            counters = {}
        fallbacks = out.family("mptcp_fallbacks_total", "counter",
                               "Connections that fell back to TCP, by handshake stage (MPTcpExt).")
        for stage, names in FALLBACK_STAGES.items():
            if (value := _summed(counters, names)) is not None:
                fallbacks.add(value, stage=stage)
        attempts = out.family("mptcp_join_attempts_total", "counter",
                              "MP_JOIN handshakes begun: in = SYN received, out = SYN sent (MPTcpExt).")
        for direction, names in JOIN_ATTEMPTS.items():
            if (value := _summed(counters, names)) is not None:
                attempts.add(value, direction=direction)
        joins = out.family("mptcp_joins_total", "counter",
                           "MP_JOIN handshakes by direction and result; ok = reached its last step (MPTcpExt).")
        for (direction, result), names in JOINS.items():
            if (value := _summed(counters, names)) is not None:
                joins.add(value, direction=direction, result=result)
        for metric, (name, help_text) in SINGLE_COUNTERS.items():
            family = out.family(metric, "counter", help_text)
            if name in counters:
                family.add(counters[name])
        events = out.family("mptcp_pm_events_total", "counter",
                            "Path-manager events received since the exporter started, by kind.")
        if self._pm.mode == "netlink":
            for kind, count in self._pm_counts.items():
                events.add(count, kind=kind)

    def _self_metrics(self, out: Exposition, ok: bool, started: float) -> None:
        out.family("mptcp_exporter_scrape_success", "gauge",
                   "1 if the MPTCP connections could be read at this scrape.").add(int(ok))
        out.family("mptcp_exporter_pm_events_subscribed", "gauge",
                   "1 if path-manager events are counted (needs CAP_NET_ADMIN), else 0.").add(
            int(self._pm.mode == "netlink"))
        out.family("mptcp_exporter_folded_interfaces", "gauge",
                   f"Interfaces beyond the first {self.ledger.max_interfaces} counted as interface=\"other\".").add(
            len(self.ledger.folded))
        out.family("mptcp_exporter_info", "gauge", "The exporter's version (value 1).").add(1, version=__version__)
        out.family("mptcp_exporter_scrape_duration_seconds", "gauge", "How long this scrape's reads took.").add(
            round(self._clock() - started, 6))
