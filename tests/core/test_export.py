"""The exporter's arithmetic (synthetic sock_diag values) and its text format."""

from __future__ import annotations

import math

from mptop.core.export import connection_id, endpoint_flags
from mptop.core.export_paths import OTHER, RTT_BUCKETS_S, PathLedger, PathView
from mptop.core.exposition import Exposition, escape_label
from mptop.core.paths import InterfaceMap
from mptop.kernel.types import SUBFLOW_FLAG_BKUP_LOC, DiagConnection, DiagSubflow, EndpointFlag, MptcpInfo, TcpInfo

WLAN, WWAN = "192.0.2.2", "198.51.100.2"


def subflow(ip: str, port: int, rx: int, acked: int = 0, retrans: int = 0, token: int = 7,
            backup: bool = False, rcv_rtt_us: int = 15_000) -> DiagSubflow:
    tcp = TcpInfo(state=1, retransmits=0, rtt_us=20_000, rttvar_us=1_000, snd_cwnd=10, total_retrans=0,
                  rcv_rtt_us=rcv_rtt_us, bytes_acked=acked, bytes_received=rx, bytes_retrans=retrans)
    # inode 0, as the kernel gives it for every subflow of an accepted connection
    return DiagSubflow((ip, port), ("203.0.113.1", 80), 0, 0, 0, tcp, token, 99, 0, 0,
                       SUBFLOW_FLAG_BKUP_LOC if backup else 0)


def connection(token: int, *subflows: DiagSubflow, state: int = 1) -> DiagConnection:
    info = MptcpInfo(len(subflows), 0, 0, 8, 0, 8, MptcpInfo.FLAG_REMOTE_KEY_RECEIVED, token, 0, 0, 0)
    return DiagConnection((WLAN, 40000 + token), ("203.0.113.1", 80), state, token, 0, info, tuple(subflows))


def interfaces(wlan_up: bool = True, extra: int = 0) -> InterfaceMap:
    itfs = InterfaceMap(by_address={WLAN: "wlan0", WWAN: "wwan0"}, link_up={"wlan0": wlan_up, "wwan0": True})
    for i in range(extra):
        itfs.by_address[f"10.0.{i}.2"] = f"eth{i}"
        itfs.link_up[f"eth{i}"] = True
    return itfs


def by_name(views: list[PathView]) -> dict[str, PathView]:
    return {v.name: v for v in views}


def test_path_counters_stay_monotonic_when_subflows_and_connections_close() -> None:
    ledger = PathLedger()
    itfs = interfaces()
    first = by_name(ledger.observe(1.0, [connection(7, subflow(WLAN, 1, 1000, 10, 1), subflow(WWAN, 2, 500, 5))], itfs))
    assert (first["wlan0"].totals.received, first["wlan0"].totals.sent, first["wlan0"].totals.retransmitted) == \
        (1000, 10, 1)
    # The Wi-Fi subflow closes (its last seen 1000 bytes stay), a new connection starts on Wi-Fi.
    second = by_name(ledger.observe(2.0, [connection(7, subflow(WWAN, 2, 800, 5)),
                                          connection(8, subflow(WLAN, 3, 300, token=8))], itfs))
    assert second["wlan0"].totals.received == 1300 and second["wwan0"].totals.received == 800
    assert second["wlan0"].totals.subflows_closed == 1
    # Everything closes: the totals stay where they were.
    third = by_name(ledger.observe(3.0, [], itfs))
    assert (third["wlan0"].totals.received, third["wwan0"].totals.received) == (1300, 800)
    assert third["wlan0"].subflows == {False: 0, True: 0} and third["wlan0"].totals.subflows_closed == 2


def test_two_subflows_of_one_connection_keep_their_own_counters_scrape_after_scrape() -> None:
    ledger = PathLedger()
    for t, (wlan, wwan) in enumerate([(1000, 200), (2000, 400), (3000, 600)]):
        views = by_name(ledger.observe(t, [connection(7, subflow(WLAN, 1, wlan), subflow(WWAN, 2, wwan))],
                                       interfaces()))
    assert (views["wlan0"].totals.received, views["wwan0"].totals.received) == (3000, 600)


def test_a_subflow_whose_counters_go_back_is_a_new_socket_and_its_old_bytes_stay() -> None:
    ledger = PathLedger()
    ledger.observe(1.0, [connection(7, subflow(WLAN, 1, 5000))], interfaces())
    again = by_name(ledger.observe(2.0, [connection(7, subflow(WLAN, 1, 200))], interfaces()))
    assert again["wlan0"].totals.received == 5200


def test_interfaces_past_the_limit_fold_into_other_and_are_counted() -> None:
    ledger = PathLedger(max_interfaces=2)
    itfs = interfaces(extra=3)
    conns = [connection(7, subflow(WLAN, 1, 100), subflow(WWAN, 2, 100))] + \
        [connection(10 + i, subflow(f"10.0.{i}.2", 3, 100, token=10 + i)) for i in range(3)]
    views = by_name(ledger.observe(1.0, conns, itfs))
    assert set(views) == {"wlan0", "wwan0", OTHER}
    assert [views[p].link_type for p in ("wlan0", "wwan0", OTHER)] == ["wifi", "cellular", "other"]
    assert views[OTHER].totals.received == 300 and views[OTHER].subflows[False] == 3
    assert ledger.folded == {"eth0", "eth1", "eth2"}
    # An address no interface owns (being removed) is "other" too, never an address label.
    gone = by_name(ledger.observe(2.0, [connection(20, subflow("192.0.2.99", 4, 50, token=20))], itfs))
    assert set(gone) == {"wlan0", "wwan0", OTHER} and gone[OTHER].totals.received == 350


def test_a_path_that_stops_while_the_other_carries_the_connection_counts_one_stall() -> None:
    ledger = PathLedger(stall_after_s=1.0)
    itfs = interfaces()
    stalls = []
    for t, wlan in [(1.0, 100), (2.0, 200), (3.0, 200), (4.0, 200), (5.0, 200), (6.0, 300)]:
        views = by_name(ledger.observe(t, [connection(7, subflow(WLAN, 1, wlan), subflow(WWAN, 2, int(t) * 1000))],
                                       itfs))
        stalls.append((views["wlan0"].stalled, views["wlan0"].totals.stalls))
    assert stalls == [(False, 0), (False, 0), (True, 1), (True, 1), (True, 1), (False, 1)]


def test_rtt_is_observed_once_per_live_subflow_per_scrape_in_fixed_buckets() -> None:
    ledger = PathLedger()
    ledger.observe(1.0, [connection(7, subflow(WLAN, 1, 1, rcv_rtt_us=3_000))], interfaces())
    idle = subflow(WLAN, 1, 1, rcv_rtt_us=300_000)
    ledger.observe(2.0, [connection(7, idle)], interfaces())
    # An idle subflow: the decoder hands the same object back; it is still observed and counted.
    view = by_name(ledger.observe(3.0, [connection(7, idle)], interfaces()))
    cumulative = view["wlan0"].totals.rtt_cumulative()
    assert len(cumulative) == len(RTT_BUCKETS_S) + 1 and cumulative[-1] == 3
    assert cumulative[RTT_BUCKETS_S.index(0.005)] == 1 and cumulative[RTT_BUCKETS_S.index(0.5)] == 3
    assert math.isclose(view["wlan0"].totals.rtt_sum_s, 0.603)
    assert view["wlan0"].subflows == {False: 1, True: 0} and view["wlan0"].totals.received == 1


def test_labels_come_from_closed_sets() -> None:
    assert endpoint_flags(EndpointFlag.SUBFLOW | EndpointFlag.BACKUP) == "subflow,backup"
    assert endpoint_flags(EndpointFlag(0)) == "none"
    assert connection_id(0xDEADBEEF) == connection_id(0xDEADBEEF) and len(connection_id(1)) == 8
    assert str(0xDEADBEEF) not in connection_id(0xDEADBEEF)


def test_the_text_format_escapes_labels_and_writes_histograms() -> None:
    out = Exposition()
    out.family("x_total", "counter", "a \\ help\nline").add(3, interface='we"ird\\\n\x1b')
    out.family("h_seconds", "histogram", "h").add_histogram((0.1, 1.0), [1, 2, 3], 4.5, interface="a")
    assert out.render() == (
        "# HELP x_total a \\\\ help line\n# TYPE x_total counter\n"
        'x_total{interface="we\\"ird\\\\\\n?"} 3\n'
        "# HELP h_seconds h\n# TYPE h_seconds histogram\n"
        'h_seconds_bucket{interface="a",le="0.1"} 1\nh_seconds_bucket{interface="a",le="1.0"} 2\n'
        'h_seconds_bucket{interface="a",le="+Inf"} 3\nh_seconds_sum{interface="a"} 4.5\n'
        'h_seconds_count{interface="a"} 3\n')
    assert out.series() == 6
    assert escape_label("a\tb") == "a?b"
