"""`mptop watch`: the tracker's arithmetic and keying on synthetic diag values, filters, one-line errors."""

from __future__ import annotations

import errno
from typing import Any

import pytest

from mptop import cli
from mptop.commands import tty
from mptop.core import watch_open
from mptop.core.model import ConnectionSample, Event, SubflowSample
from mptop.core.paths import InterfaceMap
from mptop.core.watch_filter import ConnectionFilter
from mptop.core.watch_track import PM_WAIT_S, WatchTracker
from mptop.kernel.diag import MptcpDiagUnavailable
from mptop.kernel.types import (
    SUBFLOW_FLAG_BKUP_LOC,
    SUBFLOW_FLAG_JOIN_LOC,
    DiagConnection,
    DiagSubflow,
    MptcpInfo,
    PmEvent,
    PmEventKind,
    TcpInfo,
)
from mptop.tui import app as tui_app

WLAN, WWAN = ("192.0.2.2", "192.0.2.1"), ("198.51.100.2", "198.51.100.1")


def matching(conns: list[ConnectionSample], only: ConnectionFilter) -> list[ConnectionSample]:
    return [c for c in conns if only.matches(c)]


# -- synthetic diag values ---------------------------------------------------------------------------
def subflow(path: tuple[str, str], port: int, rx: int, tx: int = 0, join: bool = False,
            backup: bool = False, token: int = 7) -> DiagSubflow:
    flags = (SUBFLOW_FLAG_JOIN_LOC if join else 0) | (SUBFLOW_FLAG_BKUP_LOC if backup else 0)
    tcp = TcpInfo(state=1, retransmits=0, rtt_us=20_000, rttvar_us=1_000, snd_cwnd=10, total_retrans=0,
                  rcv_rtt_us=15_000, bytes_received=rx, bytes_sent=tx, bytes_acked=tx)
    # id_local 0 for every subflow: tracking must not depend on ids.
    return DiagSubflow((path[0], port), (path[1], 80), 0, 0, 0, tcp, token, 99, 0, 0, flags)


def connection(token: int, subflows: list[DiagSubflow], rx: int | None = None, tx: int | None = None,
               fallback: bool = False, process: str | None = "curl", pid: int | None = 42) -> DiagConnection:
    flags = MptcpInfo.FLAG_FALLBACK if fallback else MptcpInfo.FLAG_REMOTE_KEY_RECEIVED
    info = MptcpInfo(len(subflows) - 1, 0, 0, 8, 0, 8, flags, token, 0, 0, 0, bytes_received=rx, bytes_sent=tx,
                     bytes_acked=tx)
    return DiagConnection((WLAN[0], 40000 + token), (WLAN[1], 80), 1, 1000 + token, 0, info,
                          tuple(subflows), pid, process)


def interfaces(wlan_up: bool = True) -> InterfaceMap:
    return InterfaceMap(by_address={WLAN[0]: "wlan0", WWAN[0]: "wwan0"}, link_up={"wlan0": wlan_up, "wwan0": True})


def two_paths(wlan: int, wwan: int, rx: int | None = None, token: int = 7) -> DiagConnection:
    return connection(token, [subflow(WLAN, 40000 + token, wlan, token=token),
                              subflow(WWAN, 50000 + token, wwan, join=True, token=token)], rx=rx, tx=0 if rx else None)


def kinds(events: list[Event]) -> list[tuple[str, str | None]]:
    return [(e.kind, e.iface) for e in events]


def by_iface(conn: ConnectionSample) -> dict[str, SubflowSample]:
    return {s.iface: s for s in conn.subflows if not s.closed}


# -- arithmetic and keying ------------------------------------------------------------------------
def test_subflows_keyed_by_addresses_with_rates_per_subflow_connection_and_path() -> None:
    tracker = WatchTracker()
    tracker.observe(0.0, [two_paths(1_000, 500, rx=1_200)], interfaces())
    c = two_paths(3_000, 1_500, rx=4_200)
    swapped = connection(7, [c.subflows[1], c.subflows[0]], rx=4_200, tx=0)    # dump order changed
    [conn], events = tracker.observe(0.5, [swapped], interfaces())
    wlan, wwan = by_iface(conn)["wlan0"], by_iface(conn)["wwan0"]
    assert (wlan.id, wlan.join, wwan.id, wwan.join) == (1, False, 2, True)
    assert wlan.rate_bps == pytest.approx(2_000 / 0.5 * 8) and wwan.rate_bps == pytest.approx(1_000 / 0.5 * 8)
    assert (wlan.bytes_received, wwan.bytes_received, wlan.rtt_ms) == (3_000, 1_500, 15.0)
    assert conn.rate_bps == pytest.approx(3_000 / 0.5 * 8)          # Δ mptcpi_bytes_received, not the sum
    assert (conn.status, conn.process, conn.pid, conn.bytes, conn.age_s) == ("mptcp", "curl", 42, 4_200, 0.5)
    paths = tracker.paths.samples()
    assert paths["wlan0"].bytes == 3_000 and paths["wwan0"].bytes == 1_500
    assert paths["wlan0"].share == pytest.approx(2 / 3) and paths["wwan0"].subflows == 1
    assert events == []


def test_connection_rate_without_mptcp_counters_is_the_subflow_sum_both_ways() -> None:
    tracker = WatchTracker()
    tracker.observe(0.0, [connection(7, [subflow(WLAN, 1, 100, tx=10), subflow(WWAN, 2, 0, join=True)])],
                    interfaces())
    [conn], _ = tracker.observe(
        1.0, [connection(7, [subflow(WLAN, 1, 600, tx=110), subflow(WWAN, 2, 300, join=True)])], interfaces())
    assert conn.rate_bps == pytest.approx((500 + 100 + 300) * 8)
    assert by_iface(conn)["wlan0"].rate_bps == pytest.approx(600 * 8)
    assert by_iface(conn)["wlan0"].bytes_sent == 110 and conn.bytes == 1_010


def test_directions_apart_and_sent_means_acknowledged_not_retransmitted() -> None:
    """An upload's subflow resent 40 % of its bytes: tcpi_bytes_sent counts them twice, the peer got
    tcpi_bytes_acked.  Each direction is kept apart, and what was sent is what was acknowledged."""
    def sending(sent: int, acked: int, rx: int) -> DiagConnection:
        tcp = TcpInfo(state=1, retransmits=0, rtt_us=20_000, rttvar_us=1_000, snd_cwnd=10, total_retrans=3,
                      rcv_rtt_us=0, bytes_received=rx, bytes_sent=sent, bytes_acked=acked, bytes_retrans=sent - acked)
        sf = DiagSubflow((WLAN[0], 40007), (WLAN[1], 80), 0, 0, 0, tcp, 7, 99, 0, 0, 0)
        return connection(7, [sf], rx=rx, tx=acked)

    tracker = WatchTracker()
    tracker.observe(0.0, [sending(0, 0, 0)], interfaces())
    [conn], _ = tracker.observe(1.0, [sending(14_000, 10_000, 500)], interfaces())
    [sub] = conn.subflows
    assert (sub.tx_bps, sub.rx_bps) == (pytest.approx(10_000 * 8), pytest.approx(500 * 8))
    assert (sub.bytes_acked, sub.bytes_sent, sub.bytes_retrans, sub.rtt_ms) == (10_000, 14_000, 4_000, 20.0)
    assert (conn.tx_bps, conn.rx_bps) == (pytest.approx(10_000 * 8), pytest.approx(500 * 8))
    assert (conn.bytes_acked, conn.bytes_received) == (10_000, 500)
    assert conn.rate_bps == pytest.approx(10_500 * 8)                  # both ways, never a resent byte twice
    wlan = tracker.paths.samples()["wlan0"]
    assert (wlan.bytes_acked, wlan.bytes_received, wlan.bytes) == (10_000, 500, 10_500)
    assert (wlan.tx_bps, wlan.rx_bps) == (pytest.approx(10_000 * 8), pytest.approx(500 * 8))


def test_closed_subflow_keeps_its_bytes_and_is_reported_once() -> None:
    tracker = WatchTracker()
    tracker.observe(0.0, [two_paths(1_000, 500)], interfaces())
    tracker.observe(1.0, [two_paths(2_000, 900)], interfaces())
    only_wlan = connection(7, [subflow(WLAN, 40007, 3_000)])
    [conn], events = tracker.observe(2.0, [only_wlan], interfaces())
    assert kinds(events) == [("subflow_down", "wwan0")]
    assert "Cellular subflow closed: 198.51.100.2:50007 → 198.51.100.1:80" == events[0].detail
    closed = [s for s in conn.subflows if s.closed]
    assert [(s.iface, s.bytes_received, s.rate_bps) for s in closed] == [("wwan0", 900, 0.0)]
    paths = tracker.paths.samples()
    assert (paths["wwan0"].bytes, paths["wwan0"].rate_bps, paths["wwan0"].subflows) == (900, 0.0, 0)
    _, events = tracker.observe(3.0, [connection(7, [subflow(WLAN, 40007, 4_000)])], interfaces())
    assert events == []
    back = connection(7, [subflow(WLAN, 40007, 5_000), subflow(WWAN, 50008, 10, join=True)])
    [conn], events = tracker.observe(4.0, [back], interfaces())
    assert kinds(events) == [("subflow_up", "wwan0")] and by_iface(conn)["wwan0"].id == 3
    assert tracker.paths.samples()["wwan0"].bytes == 910


def test_first_poll_is_a_baseline_and_later_arrivals_are_events() -> None:
    tracker = WatchTracker()
    old = connection(8, [subflow(WLAN, 2, 5)], fallback=True)
    _, events = tracker.observe(0.0, [two_paths(10, 10), old], interfaces())
    assert events == []                     # already there: nothing happened now
    fallback = connection(9, [subflow(WLAN, 3, 0)], fallback=True)
    conns, events = tracker.observe(1.0, [two_paths(10, 10), old, fallback], interfaces(),
                                   fallback_counters=frozenset({"MPCapableFallbackSYNACK"}))
    assert [c.status for c in conns] == ["mptcp", "fallback", "fallback"]
    assert kinds(events) == [("subflow_up", "wlan0"), ("fallback", None)]
    assert events[1].detail == ("fell back to TCP: no MPTCP option in the server's SYN-ACK (the server does not "
                                "speak MPTCP, or a middlebox removes it) — curl 192.0.2.2:40009 → 192.0.2.1:80")
    # NDJSON readers tell connections apart by the token each connection's event carries.
    assert [e.connection for e in events] == [9, 9]
    _, events = tracker.observe(2.0, [two_paths(10, 10), old], interfaces())
    assert [(e.kind, e.connection) for e in events] == [("connection_closed", 9)]


def test_a_connection_that_disappears_drops_out_and_its_bytes_stay_on_its_paths() -> None:
    tracker = WatchTracker()
    tracker.observe(0.0, [two_paths(1_000, 500), two_paths(0, 0, token=8)], interfaces())
    conns, events = tracker.observe(1.0, [two_paths(0, 0, token=8)], interfaces())
    assert [(c.token, c.closed) for c in conns] == [(8, False), (7, True)]     # listed once more, closed
    assert conns[1].bytes == 1_500 and conns[1].rate_bps == 0 and all(s.closed for s in conns[1].subflows)
    assert kinds(events) == [("connection_closed", None)] and "curl 192.0.2.2:40007" in events[0].detail
    assert tracker.paths.samples()["wlan0"].bytes == 1_000


# -- stalls ------------------------------------------------------------------------------------------
def run_polls(tracker: WatchTracker, steps: list[tuple[float, list[DiagConnection], bool]]) -> list[Event]:
    out = []
    for t, conns, wlan_up in steps:
        out += tracker.observe(t, conns, interfaces(wlan_up))[1]
    return out


def test_a_path_stalls_only_while_its_connection_is_busy_elsewhere() -> None:
    steps = [(t / 2, [two_paths(1_000 * t, 1_000 * t)], True) for t in range(4)]          # both carry
    steps += [(t / 2, [two_paths(3_000, 1_000 * t)], True) for t in range(4, 9)]          # Wi-Fi quiet
    steps += [(t / 2, [two_paths(3_000 + t, 1_000 * t)], True) for t in range(9, 11)]     # Wi-Fi back
    steps += [(t / 2, [two_paths(3_010, 10_000)], True) for t in range(11, 20)]           # idle: no stall
    events = run_polls(WatchTracker(), steps)
    assert kinds(events) == [("path_stalled", "wlan0"), ("path_recovered", "wlan0")]
    stalled, back = events
    assert (stalled.t, stalled.detail) == (2.5, "Wi-Fi stalled: no data for 1.0 s")
    assert (back.t, back.detail) == (4.5, "Wi-Fi back after 3.0 s")


def test_a_single_path_connection_stalls_when_its_link_goes_down_but_not_when_idle() -> None:
    def one(rx: int) -> list[DiagConnection]:
        return [connection(7, [subflow(WLAN, 1, rx)])]

    idle = [(t / 2, one(min(t, 3) * 1_000), True) for t in range(10)]
    assert run_polls(WatchTracker(), idle) == []
    down = [(t / 2, one(min(t, 3) * 1_000), t < 4) for t in range(10)]
    tracker = WatchTracker()
    events = run_polls(tracker, down)
    assert kinds(events) == [("link_down", "wlan0"), ("path_stalled", "wlan0")]
    assert tracker.paths.samples()["wlan0"].stalled


def test_one_path_event_however_many_connections_stall_on_it() -> None:
    def both(t: int, wlan: int) -> list[DiagConnection]:
        return [two_paths(wlan, 1_000 * t), two_paths(wlan, 1_000 * t, token=8)]

    steps = [(t / 2, both(t, 1_000 * t), True) for t in range(3)]
    steps += [(t / 2, both(t, 2_000), True) for t in range(3, 8)]
    events = run_polls(WatchTracker(), steps)
    assert kinds(events) == [("path_stalled", "wlan0")]


# -- path-manager events -----------------------------------------------------------------------------
def pm(kind: PmEventKind, token: int = 7, **kw: Any) -> PmEvent:
    return PmEvent(kind, token=token, saddr=WWAN[0], sport=50007, daddr=WWAN[1], dport=80, **kw)


def test_pm_events_keep_their_time_and_polls_do_not_repeat_them() -> None:
    tracker = WatchTracker()
    tracker.observe(0.0, [connection(7, [subflow(WLAN, 40007, 0)])], interfaces())
    tracker.pm_event(0.3, pm(PmEventKind.SUB_ESTABLISHED, backup=True))
    tracker.pm_event(0.35, PmEvent(PmEventKind.ANNOUNCED, token=7, daddr=WWAN[1], dport=80, remote_id=2))
    tracker.pm_event(0.4, pm(PmEventKind.SUB_ESTABLISHED, token=12345))        # a connection no poll showed
    _, events = tracker.observe(1.0, [two_paths(10, 10)], interfaces())
    assert [(e.t, e.kind, e.iface) for e in events] == [(0.3, "subflow_up", "wwan0"),
                                                        (0.35, "address_announced", None)]
    assert events[0].detail == "Cellular subflow (backup) up: 198.51.100.2:50007 → 198.51.100.1:80"
    tracker.pm_event(1.2, pm(PmEventKind.SUB_CLOSED, error=errno.ECONNRESET))
    _, events = tracker.observe(1.5, [connection(7, [subflow(WLAN, 40007, 20)])], interfaces())
    assert [(e.t, e.kind) for e in events] == [(1.2, "subflow_down")]
    assert "(connection reset by peer)" in events[0].detail
    _, events = tracker.observe(1.0 + PM_WAIT_S, [connection(7, [subflow(WLAN, 40007, 20)])], interfaces())
    assert events == []                     # the unknown connection's event expired unseen


# -- filters, sorting, history -------------------------------------------------------------------------
def sample_conn(token: int, process: str | None, rate: float, age: float, nbytes: int, port: int = 80,
                status: str = "mptcp") -> ConnectionSample:
    sub = SubflowSample(1, "10.0.0.2:5000", f"10.0.0.1:{port}", "eth0", "Ethernet", nbytes, rate, None, False)
    return ConnectionSample(token, "10.0.0.2:4000", "10.0.0.1:443", process, status, rate,  # type: ignore[arg-type]
                            [sub], nbytes, age, pid=100 + token)


def test_filters() -> None:
    conns = [sample_conn(1, "curl", 5.0, 3.0, 10), sample_conn(2, "firefox-bin", 9.0, 1.0, 30, port=8080),
             sample_conn(3, None, 1.0, 9.0, 20, status="fallback")]
    assert [c.token for c in matching(conns, ConnectionFilter(process="fire*"))] == [2]
    assert [c.token for c in matching(conns, ConnectionFilter(process="103"))] == [3]
    assert [c.token for c in matching(conns, ConnectionFilter(port=8080))] == [2]   # a subflow's port
    assert [c.token for c in matching(conns, ConnectionFilter(port=443))] == [1, 2, 3]
    assert [c.token for c in matching(conns, ConnectionFilter(status="fallback"))] == [3]
    assert ConnectionFilter(process="curl").matches_diag(two_paths(1, 1))
    assert not ConnectionFilter(port=8080).matches_diag(two_paths(1, 1))


@pytest.mark.parametrize("argv", [["--json", "--count", "1"], []], ids=["json", "tui"])
def test_unavailable_diag_is_one_line_and_exit_1(monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    # The TUI's check comes before its first frame: one line, no screen (the sampler comes after it).
    class NoMptcpDiag:
        def __init__(self) -> None:
            raise MptcpDiagUnavailable(errno.ENOENT, "kernel built without MPTCP socket diagnostics")

    monkeypatch.setattr(watch_open, "DiagReader", NoMptcpDiag)
    monkeypatch.setattr(tty, "interactive", lambda: True)
    monkeypatch.setattr(tui_app, "run_app", lambda *a, **k: pytest.fail("the TUI started"))
    assert cli.main(["watch", *argv]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err == "mptop watch: cannot list MPTCP connections: kernel built without MPTCP socket diagnostics\n"


def test_a_subflow_quiet_beside_a_busy_one_on_its_path_stalls_per_connection() -> None:
    tracker = WatchTracker()
    events: list[Event] = []
    itfs = InterfaceMap(by_address={WLAN[0]: "wlan0", "192.0.2.3": "wlan0"}, link_up={"wlan0": True})
    for i in range(8):                          # 3.5 s at 0.5 s: the second Wi-Fi subflow gets nothing
        conn = connection(7, [subflow(WLAN, 1, 1_000 * (i + 1)), subflow(("192.0.2.3", WLAN[1]), 2, 10, join=True)])
        events += tracker.observe(i * 0.5, [conn], itfs)[1]
    assert [(e.kind, e.iface, e.connection) for e in events] == [("subflow_stalled", "wlan0", 7)]
    assert "192.0.2.3:2 → 192.0.2.1:80" in events[0].detail
    conn = connection(7, [subflow(WLAN, 1, 9_000), subflow(("192.0.2.3", WLAN[1]), 2, 500, join=True)])
    assert [e.kind for e in tracker.observe(4.0, [conn], itfs)[1]] == ["subflow_recovered"]
