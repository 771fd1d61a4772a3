"""`mptop watch` and the end of a connection: each subflow's final counters (the kernel's destroy
broadcast) count its last interval, on synthetic values; the lab test is test_watch_short_lab.py."""

from __future__ import annotations

from mptop.core.watch_track import CLOSE_WAIT_S, PM_WAIT_S, WatchTracker
from mptop.kernel.diag_destroy import SubflowEnd
from mptop.kernel.types import PmEvent, PmEventKind, TcpInfo
from tests.core.test_watch import WLAN, WWAN, connection, interfaces, subflow, two_paths


def end(path: tuple[str, str], port: int, rx: int, tx: int = 0) -> SubflowEnd:
    tcp = TcpInfo(state=7, retransmits=0, rtt_us=1, rttvar_us=1, snd_cwnd=10, total_retrans=0,
                  bytes_received=rx, bytes_acked=tx, bytes_sent=tx)
    return SubflowEnd((path[0], port), (path[1], 80), 1, tcp)


def test_a_gone_connection_counts_its_last_interval_and_is_listed_once_closed() -> None:
    tracker = WatchTracker()
    tracker.ends_subscribed = True
    tracker.observe(0.0, [two_paths(1_000, 500, rx=1_500)], interfaces())
    tracker.subflow_end(0.6, end(WLAN, 40007, 4_000, tx=80))
    tracker.subflow_end(0.6, end(WWAN, 50007, 2_500))
    tracker.subflow_end(0.6, end(WLAN, 33333, 9_999))                  # plain TCP: nobody's
    conns, events = tracker.observe(1.0, [], interfaces())
    [conn] = conns
    assert (conn.token, conn.closed, conn.bytes, conn.process, conn.rate_bps) == (7, True, 1_500 + 5_080, "curl", 0)
    assert sorted((s.iface, s.bytes_received, s.closed) for s in conn.subflows) == [
        ("wlan0", 4_000, True), ("wwan0", 2_500, True)]
    assert [e.kind for e in events] == ["connection_closed"]
    paths = tracker.paths.samples()
    assert (paths["wlan0"].bytes, paths["wwan0"].bytes) == (4_080, 2_500)
    assert tracker.observe(2.0, [], interfaces()) == ([], [])           # listed once


def test_a_gone_connection_waits_for_its_final_counters_then_lists_what_it_has() -> None:
    tracker = WatchTracker()
    tracker.ends_subscribed = True
    tracker.observe(0.0, [two_paths(1_000, 500)], interfaces())
    tracker.subflow_end(0.6, end(WLAN, 40007, 4_000))
    assert tracker.observe(1.0, [], interfaces()) == ([], [])           # Cellular's count is due
    [conn], _ = tracker.observe(1.0 + CLOSE_WAIT_S, [], interfaces())
    assert conn.closed and conn.bytes == 4_500
    tracker.subflow_end(3.0, end(WWAN, 50007, 800))                     # late: still on its path
    tracker.observe(3.5, [], interfaces())
    assert tracker.paths.samples()["wwan0"].bytes == 800


def test_a_subflow_closing_mid_connection_counts_its_last_bytes() -> None:
    tracker = WatchTracker()
    tracker.ends_subscribed = True
    tracker.observe(0.0, [two_paths(1_000, 500)], interfaces())
    tracker.subflow_end(0.5, end(WWAN, 50007, 700))
    [conn], _ = tracker.observe(1.0, [connection(7, [subflow(WLAN, 40007, 2_000)])], interfaces())
    assert [(s.iface, s.bytes_received) for s in conn.subflows if s.closed] == [("wwan0", 700)]
    assert tracker.paths.samples()["wwan0"].bytes == 700


def test_a_subflows_final_counters_told_twice_count_once_even_when_its_addresses_come_back() -> None:
    """``mptop run`` hears each joined subflow's end twice (the cgroup's BPF record, the destroy
    broadcast).  The second must not wait for, and land on, the next subflow that gets the same
    address pair: that one's count would jump to the old subflow's final."""
    tracker = WatchTracker()
    tracker.ends_subscribed = True
    tracker.observe(0.0, [two_paths(1_000, 500)], interfaces())
    for _ in range(2):
        tracker.subflow_end(0.6, end(WLAN, 40007, 4_000))
        tracker.subflow_end(0.6, end(WWAN, 50007, 2_500))
    [gone], _ = tracker.observe(1.0, [], interfaces())
    assert gone.bytes == 6_500
    again = connection(8, [subflow(WLAN, 40008, 900, token=8), subflow(WWAN, 50007, 300, join=True, token=8)])
    for t in (1.5, 2.0):
        [conn], _ = tracker.observe(t, [again], interfaces())
        assert [(s.iface, s.bytes_received) for s in conn.subflows] == [("wlan0", 900), ("wwan0", 300)], t
    assert tracker.paths.samples()["wwan0"].bytes == 2_800


def pm(kind: PmEventKind, path: tuple[str, str], port: int, token: int = 5) -> PmEvent:
    return PmEvent(kind, token=token, saddr=path[0], sport=port, daddr=path[1], dport=80, server_side=False)


def test_a_connection_shorter_than_a_poll_is_listed_from_its_events_and_final_counters() -> None:
    tracker = WatchTracker()
    tracker.ends_subscribed = True
    tracker.observe(0.0, [], interfaces())
    for t, kind, path, port in [(0.1, PmEventKind.CREATED, WLAN, 41000), (0.1, PmEventKind.ESTABLISHED, WLAN, 41000),
                                (0.1, PmEventKind.SUB_ESTABLISHED, WWAN, 51000)]:
        tracker.pm_event(t, pm(kind, path, port))
    tracker.pm_event(0.2, PmEvent(PmEventKind.CLOSED, token=5))
    tracker.subflow_end(0.2, end(WLAN, 41000, 12_000, tx=86))
    tracker.subflow_end(0.2, end(WWAN, 51000, 4_500))
    [conn], events = tracker.observe(0.25, [], interfaces())
    assert (conn.token, conn.closed, conn.status, conn.bytes) == (5, True, "mptcp", 16_586)
    assert (conn.local, conn.remote) == ("192.0.2.2:41000", "192.0.2.1:80")
    assert [(s.id, s.iface, s.join, s.bytes_received) for s in conn.subflows] == [
        (1, "wlan0", False, 12_000), (2, "wwan0", True, 4_500)]
    assert [e.kind for e in events] == ["subflow_up", "subflow_up", "connection_closed"]
    assert tracker.observe(0.5, [], interfaces()) == ([], [])


def test_events_of_a_connection_that_never_closes_nor_shows_are_dropped_unlisted() -> None:
    tracker = WatchTracker()
    tracker.observe(0.0, [], interfaces())
    tracker.pm_event(0.1, pm(PmEventKind.CREATED, WLAN, 41000))
    tracker.observe(1.0, [], interfaces())
    assert tracker.observe(1.0 + PM_WAIT_S, [], interfaces())[0] == []
    tracker.pm_event(7.0, PmEvent(PmEventKind.CLOSED, token=5))
    assert tracker.observe(8.0, [], interfaces()) == ([], [])


def test_without_destroy_broadcasts_a_gone_connection_is_listed_at_once() -> None:
    tracker = WatchTracker()
    tracker.observe(0.0, [two_paths(1_000, 500)], interfaces())
    [conn], _ = tracker.observe(1.0, [], interfaces())
    assert conn.closed and conn.bytes == 1_500



def test_an_owner_found_at_birth_names_a_connection_no_poll_listed() -> None:
    tracker = WatchTracker()
    tracker.ends_subscribed = True
    tracker.observe(0.0, [], interfaces())
    tracker.owned(0.1, 5, 4242, "curl")                  # found while its socket was open
    tracker.pm_event(0.1, pm(PmEventKind.ESTABLISHED, WLAN, 41000))
    tracker.pm_event(0.2, PmEvent(PmEventKind.CLOSED, token=5))
    tracker.subflow_end(0.2, end(WLAN, 41000, 16_581, tx=86))
    [conn], events = tracker.observe(0.25, [], interfaces())
    assert (conn.process, conn.pid, conn.bytes, conn.closed) == ("curl", 4242, 16_667, True)
    assert events[-1].detail == "connection closed: curl 192.0.2.2:41000 → 192.0.2.1:80"
