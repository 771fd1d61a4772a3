"""Our transfers' subflows to their last byte, on synthetic destroy broadcasts: the bytes after a
subflow's last read count once, on its path and in its transfer's records; a finished transfer waits
for them at most the grace.  The lab tests: test_transfer_ends_lab.py, tests/cli/test_compare_lab.py."""

from __future__ import annotations

from mptop.core.events import SubflowLedger
from mptop.core.model import SubflowSample, TransferSample
from mptop.core.paths import InterfaceMap, PathBook
from mptop.core.tracking import PollContext, SubflowTrack, TransferTrack
from mptop.core.transfer_ends import END_GRACE_S, END_WAIT_S, TransferEnds
from mptop.kernel.diag_destroy import SubflowEnd
from mptop.kernel.types import TcpInfo

WIFI = ("192.0.2.2:40000", "192.0.2.1:80")
CELL = ("198.51.100.2:50000", "198.51.100.1:80")
ITFS = InterfaceMap(by_address={"192.0.2.2": "wlan0", "198.51.100.2": "wwan0"})


def end(key: tuple[str, str], rx: int, acked: int = 0) -> SubflowEnd:
    (lip, lport), (rip, rport) = (k.rsplit(":", 1) for k in key)
    tcp = TcpInfo(state=7, retransmits=0, rtt_us=1, rttvar_us=1, snd_cwnd=10, total_retrans=0,
                  bytes_received=rx, bytes_acked=acked, bytes_sent=acked)
    return SubflowEnd((lip, int(lport)), (rip, int(rport)), 1, tcp)


def read(track: TransferTrack, key: tuple[str, str], iface: str, rx: int, t: float = 0.0) -> SubflowTrack:
    """A subflow a poll read: ``rx`` bytes received by then, counted on its path."""
    st = track.socket_track(0).subflows.setdefault(key, SubflowTrack(*key, iface, iface, join=False, first_seen=t))
    st.rx.update(t, rx)
    st.last = SubflowSample(0, *key, iface, iface, rx, 0.0, None, False)
    track.path_bytes[iface] = rx
    return st


def ctx(t: float, paths: PathBook) -> PollContext:
    return PollContext(t, ITFS, paths, SubflowLedger(), [])


def finish(track: TransferTrack) -> None:
    subflows = [st.last for st in track.socket_track(0).subflows.values() if st.last is not None]
    track.last = TransferSample(track.id, "http://x/", 0, None, 0.0, "mptcp", subflows=subflows,
                                bytes_received=sum(s.bytes_received for s in subflows), state="done")


def subscribed() -> TransferEnds:
    ends = TransferEnds()
    ends.subscribe()                  # a real sock_diag subscription: needs no privilege
    assert ends.fileno() is not None
    return ends


def finished_on_two_paths(track_id: int) -> tuple[TransferEnds, PathBook, TransferTrack]:
    """A transfer whose final read had Wi-Fi at 1,000 B and cellular at 400, waiting for their ends."""
    ends, paths, track = subscribed(), PathBook(), TransferTrack(track_id)
    read(track, WIFI, "wlan0", 1_000)
    read(track, CELL, "wwan0", 400)
    ends.register(track, upload=False)
    finish(track)
    ends.finished(1.0, track)
    return ends, paths, track


def test_bytes_after_the_final_read_count_once_on_their_path_and_in_the_frozen_sample() -> None:
    ends, paths, track = finished_on_two_paths(1)
    assert ends.waiting and not ends.settled(1.0, 1)
    ends.arrived(1.01, [end(WIFI, 1_500), end(("192.0.2.2:1", "192.0.2.1:80"), 9_999)])   # and a stranger's
    ends.match(ctx(1.02, paths))
    assert track.path_bytes == {"wlan0": 1_500, "wwan0": 400}
    assert paths.samples()["wlan0"].bytes == 500                     # what this book had not seen yet
    assert track.last is not None and track.last.bytes_received == 1_900
    assert [(s.iface, s.bytes_received) for s in track.last.subflows] == [("wlan0", 1_500), ("wwan0", 400)]
    assert not ends.settled(1.03, 1)                                  # cellular's end is still due
    ends.arrived(1.04, [end(CELL, 400), end(WIFI, 1_700)])            # Wi-Fi's told twice: once is counted
    ends.match(ctx(1.05, paths))
    assert track.path_bytes == {"wlan0": 1_500, "wwan0": 400}
    assert ends.settled(1.05, 1) and not ends.waiting


def test_a_subflow_only_a_path_manager_event_named_counts_all_its_bytes_and_is_listed_closed() -> None:
    """It lived between two polls: its end came before the event that makes it ours was dispatched."""
    ends, paths, track = subscribed(), PathBook(), TransferTrack(2)
    read(track, WIFI, "wlan0", 3_000)
    ends.arrived(0.4, [end(CELL, 1_200_000)])
    ends.match(ctx(0.5, paths))
    assert "wwan0" not in track.path_bytes                            # not known yet: it waits
    track.born[CELL] = 0.1                                            # the poll dispatched SUB_ESTABLISHED
    ends.register(track, upload=False)
    ends.match(ctx(2.0, paths))
    assert track.path_bytes == {"wlan0": 3_000, "wwan0": 1_200_000}
    [gone] = track.closed
    assert (gone.iface, gone.local, gone.bytes_received, gone.closed, gone.join) == ("wwan0", CELL[0], 1_200_000,
                                                                                     True, True)


def test_an_upload_counts_what_its_subflows_had_acknowledged() -> None:
    ends, paths, track = subscribed(), PathBook(), TransferTrack(3)
    st = read(track, WIFI, "wlan0", 0)
    st.tx.update(0.0, 5_000)
    track.path_bytes["wlan0"] = 5_000
    ends.register(track, upload=True)
    ends.arrived(0.5, [end(WIFI, 80, acked=8_000)])
    ends.match(ctx(0.5, paths))
    assert track.path_bytes == {"wlan0": 8_000}


def test_a_finished_transfer_waits_at_most_the_grace_and_an_end_for_nobody_expires() -> None:
    ends, paths, track = subscribed(), PathBook(), TransferTrack(4)
    read(track, WIFI, "wlan0", 1_000)
    ends.register(track, upload=False)
    finish(track)
    ends.finished(1.0, track)
    assert not ends.settled(1.0 + END_GRACE_S - 0.01, 4)
    assert ends.settled(1.0 + END_GRACE_S, 4) and not ends.waiting
    ends.arrived(3.0, [end(WIFI, 2_000)])                             # too late: forgotten, counted nowhere
    ends.match(ctx(3.0, paths))
    ends.match(ctx(3.0 + END_WAIT_S, paths))                          # ... and after END_WAIT_S dropped:
    later = TransferTrack(6)
    read(later, WIFI, "wlan0", 0, t=9.0)                              # the address pair, used again
    ends.register(later, upload=False)
    ends.match(ctx(9.0, paths))
    assert track.path_bytes == {"wlan0": 1_000} and later.path_bytes == {"wlan0": 0}


def test_a_view_that_never_asks_still_forgets_a_transfer_once_its_grace_is_over() -> None:
    """The TUI polls on after a transfer ends and never calls settled(): the next poll after the grace
    forgets the transfer, and an end that comes later counts nowhere."""
    ends, paths, track = subscribed(), PathBook(), TransferTrack(8)
    read(track, WIFI, "wlan0", 1_000)
    ends.register(track, upload=False)
    finish(track)
    ends.finished(1.0, track)
    ends.match(ctx(1.0 + END_GRACE_S / 2, paths))
    assert ends.waiting
    ends.match(ctx(1.0 + END_GRACE_S, paths))
    assert not ends.waiting
    ends.arrived(2.5, [end(WIFI, 5_000)])
    ends.match(ctx(2.5, paths))
    assert track.path_bytes == {"wlan0": 1_000}


def test_a_disconnected_initial_subflow_ends_the_wait_and_counts_nothing() -> None:
    """The client closed first (HTTPS): MPTCP disconnects the initial subflow before freeing it, and
    its end comes as 0.0.0.0:<its port> -> <remote ip>:0 with zeroed counters.  Known by that port and
    address, it settles the transfer at once; its last read stands.  Another port's, or another
    server's, is a stranger's."""
    ends, paths, track = finished_on_two_paths(9)
    ends.arrived(1.01, [end(CELL, 450), end(("0.0.0.0:40001", "192.0.2.1:0"), 0),
                        end(("0.0.0.0:40000", "203.0.113.9:0"), 0)])
    ends.match(ctx(1.01, paths))
    assert not ends.settled(1.01, 9)                                  # strangers' ends: Wi-Fi's still due
    ends.arrived(1.02, [end(("0.0.0.0:40000", "192.0.2.1:0"), 0)])
    ends.match(ctx(1.02, paths))
    assert ends.settled(1.02, 9) and not ends.waiting
    assert track.path_bytes == {"wlan0": 1_000, "wwan0": 450}
    assert track.last is not None and [s.bytes_received for s in track.last.subflows] == [1_000, 450]


def test_a_subflow_whose_link_is_down_is_not_waited_for() -> None:
    ends, _paths, track = finished_on_two_paths(7)
    assert not ends.settled(1.01, 7, down=["wlan0"])                  # cellular's end is due
    ends.arrived(1.02, [end(CELL, 450)])
    ends.match(ctx(1.02, PathBook()))
    assert not ends.settled(1.02, 7) and ends.settled(1.02, 7, down=["wlan0"])
    assert track.path_bytes == {"wlan0": 1_000, "wwan0": 450}


def test_without_a_subscription_nothing_waits() -> None:
    ends, track = TransferEnds(), TransferTrack(5)
    read(track, WIFI, "wlan0", 1_000)
    ends.register(track, upload=False)
    ends.finished(1.0, track)
    assert not ends.waiting and ends.settled(1.0, 5)
