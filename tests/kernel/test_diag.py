"""The sock_diag decoder on bytes: hand-built records (offsets from linux/inet_diag.h,
linux/tcp.h and linux/mptcp.h, not from the decoder), damaged and random ones, the owner rescan."""

from __future__ import annotations

import errno
import os
import socket
import struct
from pathlib import Path

import psutil
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mptop.kernel import diag
from mptop.kernel.diag import (
    DiagDecoder,
    MptcpDiagUnavailable,
)
from mptop.kernel.diag_destroy import decode_destroyed
from mptop.kernel.procs import SocketOwners
from mptop.kernel.types import (
    DiagConnection,
    KernelParseError,
)

MPTCP, TCP = 262, 6

# -- hand-built sock_diag records ------------------------------------------------------------------
TCP_INFO_AT = {"state": (0, "B"), "retransmits": (2, "B"), "rtt_us": (68, "I"), "rttvar_us": (72, "I"),
               "snd_cwnd": (80, "I"), "rcv_rtt_us": (92, "I"), "total_retrans": (100, "I"),
               "pacing_rate": (104, "Q"), "bytes_acked": (120, "Q"), "bytes_received": (128, "Q"),
               "min_rtt_us": (148, "I"), "delivery_rate": (160, "Q"), "bytes_sent": (200, "Q"),
               "bytes_retrans": (208, "Q")}
MPTCP_INFO_AT = {"subflows": (0, "B"), "flags": (8, "I"), "token": (12, "I"), "bytes_received": (64, "Q"),
                 "csum_enabled": (42, "B"), "subflows_total": (80, "B"), "last_data_sent_ms": (84, "I"),
                 "last_data_recv_ms": (88, "I"), "last_ack_recv_ms": (92, "I")}


def nla(kind: int, payload: bytes) -> bytes:
    return struct.pack("=HH", 4 + len(payload), kind) + payload + b"\0" * (-len(payload) % 4)


def fill(size: int, layout: dict[str, tuple[int, str]], **values: int) -> bytes:
    buf = bytearray(size)
    for name, value in values.items():
        off, code = layout[name]
        struct.pack_into("=" + code, buf, off, value)
    return bytes(buf)


def record(attrs: bytes, *, cookie: int, sport: int, dport: int = 80, src: str = "192.0.2.2",
           dst: str = "192.0.2.1", state: int = 1, inode: int = 0, uid: int = 0, ifindex: int = 0,
           seq: int = 1, timer: int = 0, expires: int = 0) -> bytes:
    """nlmsghdr + inet_diag_msg + attributes, as the kernel lays them out (AF_INET)."""
    body = struct.pack("=BBBB", socket.AF_INET, state, timer, 0) + struct.pack(">HH", sport, dport)
    body += socket.inet_aton(src) + bytes(12) + socket.inet_aton(dst) + bytes(12)
    body += struct.pack("=IQIIIII", ifindex, cookie, expires, 0, 0, uid, inode) + attrs
    return struct.pack("=IHHII", 16 + len(body), 20, 2, seq, 0) + body


def done(seq: int = 1, code: int = 0) -> bytes:
    return struct.pack("=IHHIIi", 20, 3, 2, seq, 0, code)


def common_attrs() -> bytes:   # what every inet_diag record carries first (shutdown, cgroup, sockopt)
    return nla(8, b"\0") + nla(21, struct.pack("=Q", 1234)) + nla(22, b"\0\0")


def subflow_record(*, token: int, cookie: int, sport: int, flags: int = 0xC3, id_local: int = 0,
                   token_remote: int = 0, info_size: int = 280, last_recv: int = 0, seq: int = 1, timer: int = 0,
                   expires: int = 0, **tcp: int) -> bytes:
    tcp_info = bytearray(fill(info_size, {k: v for k, v in TCP_INFO_AT.items() if v[0] < info_size}, **tcp))
    if info_size >= 60:
        struct.pack_into("=I", tcp_info, 52, last_recv)          # tcpi_last_data_recv: volatile
    nest = (nla(1, struct.pack("=I", token_remote)) + nla(2, struct.pack("=I", token))
            + nla(8, struct.pack("=I", flags)) + nla(9, bytes([2 if id_local else 0])) + nla(10, bytes([id_local]))
            + nla(3, struct.pack("=I", 7)) + nla(4, struct.pack("=Q", 99)) + nla(5, struct.pack("=I", 5))
            + nla(6, struct.pack("=I", 6)) + nla(7, struct.pack("=H", 3)))
    ulp = nla(19 | 0x8000, nla(1, b"mptcp\0") + nla(3 | 0x8000, nest))
    return record(common_attrs() + nla(2, bytes(tcp_info)) + ulp, cookie=cookie, sport=sport, inode=cookie + 1000,
                  seq=seq, timer=timer, expires=expires)


def msk_record(*, token: int, cookie: int, sport: int, inode: int, last_recv: int = 0, seq: int = 1,
               expires: int = 0, **info: int) -> bytes:
    values = {"token": token, "last_data_recv_ms": last_recv, **info}
    return record(common_attrs() + nla(2, fill(96, MPTCP_INFO_AT, **values)), cookie=cookie, sport=sport,
                  inode=inode, seq=seq, expires=expires)


def poll(decoder: DiagDecoder, tcp: bytes, mptcp: bytes) -> list[DiagConnection]:
    return decoder.decode([(TCP, tcp + done()), (MPTCP, mptcp + done())])


def two_connections(*, rx: int = 1000, last_recv: int = 5) -> tuple[bytes, bytes]:
    tcp = (subflow_record(token=0xAAAA, cookie=1, sport=40000, bytes_received=rx, rtt_us=300, snd_cwnd=10,
                          last_recv=last_recv)
           + record(common_attrs() + nla(2, bytes(280)), cookie=50, sport=22)            # plain TCP
           + subflow_record(token=0xAAAA, cookie=2, sport=40001, id_local=1, flags=0xCC, bytes_received=500)
           + record(common_attrs() + nla(19 | 0x8000, nla(1, b"tls\0")), cookie=51, sport=443)   # TLS ULP
           + subflow_record(token=0xBBBB, cookie=3, sport=40002, bytes_received=7))
    mptcp = (msk_record(token=0xAAAA, cookie=10, sport=40000, inode=77, bytes_received=1400, last_recv=last_recv)
             + msk_record(token=0xBBBB, cookie=11, sport=40002, inode=78, csum_enabled=1))
    return tcp, mptcp


# -- unit tests: the decoder on hand-built records -------------------------------------------------
def test_connections_get_their_subflows_by_token_and_other_tcp_sockets_are_skipped() -> None:
    conns = poll(DiagDecoder(), *two_connections())
    assert [c.token for c in conns] == [0xAAAA, 0xBBBB]
    first, second = conns
    assert first.local == ("192.0.2.2", 40000) and first.remote == ("192.0.2.1", 80) and first.inode == 77
    assert first.info is not None and first.info.bytes_received == 1400
    assert [sf.local[1] for sf in first.subflows] == [40000, 40001]
    initial, join = first.subflows
    assert initial.tcp is not None and (initial.tcp.bytes_received, initial.tcp.rtt_us, initial.tcp.snd_cwnd) == \
        (1000, 300, 10)
    assert (join.id_local, join.id_remote, join.flags, join.is_join) == (1, 2, 0xCC, True)
    assert initial.is_join is False and initial.token_local == 0xAAAA
    assert [sf.local[1] for sf in second.subflows] == [40002]
    assert second.info is not None and second.info.csum_enabled is True


def test_fast_decoding_equals_the_structs_decoders() -> None:
    datagrams = two_connections()
    assert poll(DiagDecoder(), *datagrams) == poll(DiagDecoder(fast=False), *datagrams)


def test_idle_subflows_keep_their_objects_and_changes_show() -> None:
    decoder = DiagDecoder()
    before = poll(decoder, *two_connections(last_recv=5))
    idle = poll(decoder, *two_connections(last_recv=900))        # only "ms ago" fields moved
    assert all(a is b for c, d in zip(before, idle, strict=True) for a, b in zip(c.subflows, d.subflows, strict=True))
    assert idle[0].info is not None and idle[0].info.last_data_recv_ms == 900   # ...and they are fresh
    moved = poll(decoder, *two_connections(rx=5000, last_recv=900))
    assert moved[0].subflows[0] is not idle[0].subflows[0]
    assert moved[0].subflows[0].tcp is not None and moved[0].subflows[0].tcp.bytes_received == 5000
    assert moved[0].subflows[1] is idle[0].subflows[1]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 2), st.integers(0, 3), st.integers(0, 1 << 20),
                          st.integers(0, 2), st.booleans(), st.integers(1, 4)), min_size=2, max_size=6))
def test_stateful_fast_decoding_equals_a_fresh_walk_poll_after_poll(
        polls: list[tuple[int, int, int, int, int, bool, int]]) -> None:
    """Polls where volatile words (seq, timers, last_*), counters and the set of connections vary, their
    records split over datagrams: the decoder that reuses its previous poll agrees with one that walks all."""
    decoder, before = DiagDecoder(), None
    for seq, (sf_rx, msk_rx, timer, ago, expires, second_up, cut) in enumerate(polls, start=1):
        subflows = [subflow_record(token=0xAAAA, cookie=1, sport=40000, seq=seq, bytes_received=1000 + sf_rx,
                                   last_recv=ago, timer=timer % 2, expires=expires),
                    record(common_attrs() + nla(2, bytes(280)), cookie=50, sport=22, seq=seq, expires=ago),
                    subflow_record(token=0xAAAA, cookie=2, sport=40001, id_local=1, flags=0xCC, seq=seq,
                                   bytes_received=500, last_recv=ago // 2)]
        msks = [msk_record(token=0xAAAA, cookie=10, sport=40000, inode=77, seq=seq, bytes_received=1400 + msk_rx,
                           last_recv=ago, last_data_sent_ms=ago + 1, last_ack_recv_ms=ago + 2, expires=expires)]
        if second_up:
            subflows.insert(cut % 3, subflow_record(token=0xBBBB, cookie=3, sport=40002, seq=seq, bytes_received=7))
            msks.append(msk_record(token=0xBBBB, cookie=11, sport=40002, inode=78, seq=seq, csum_enabled=1))
        cut = min(cut, len(subflows))
        datagrams = [(TCP, b"".join(subflows[:cut])), (TCP, b"".join(subflows[cut:]) + done(seq)),
                     (MPTCP, b"".join(msks) + done(seq))]
        decoder.begin()
        for protocol, data in datagrams:
            decoder.feed(data, len(data), seq, protocol)
        conns = decoder.finish()
        assert conns == DiagDecoder(fast=False).decode(datagrams)
        assert conns[0].info is not None and (conns[0].info.last_data_sent_ms, conns[0].info.last_data_recv_ms,
                                              conns[0].info.last_ack_recv_ms) == (ago + 1, ago, ago + 2)
        if before is not None:       # the join subflow never changes: its objects are kept
            assert conns[0].subflows[1] is before[0].subflows[1]
        before = conns


def test_a_datagram_of_another_dump_is_skipped_on_the_fast_path_too() -> None:
    decoder = DiagDecoder()
    tcp, mptcp = two_connections()
    assert len(poll(decoder, tcp, mptcp)) == 2                   # shapes learnt, objects kept
    # Byte for byte a known subflow's record (the fast path's case), but of dump 6, not of this one.
    stale = subflow_record(token=0xAAAA, cookie=1, sport=40000, bytes_received=1000, rtt_us=300, snd_cwnd=10,
                           last_recv=5, seq=6)
    decoder.begin()
    assert decoder.feed(stale + done(seq=6), len(stale) + 20, 7, TCP) is False
    fresh = subflow_record(token=0xAAAA, cookie=2, sport=40001, id_local=1, flags=0xCC, seq=7, bytes_received=500)
    assert decoder.feed(fresh + done(seq=7), len(fresh) + 20, 7, TCP) is True
    msk = msk_record(token=0xAAAA, cookie=10, sport=40000, inode=77, seq=7, bytes_received=1400)
    decoder.feed(msk + done(seq=7), len(msk) + 20, 7, MPTCP)
    conn, = decoder.finish()
    assert [sf.local[1] for sf in conn.subflows] == [40001]


def test_an_older_kernels_short_tcp_info_is_decoded_by_structs() -> None:
    tcp = subflow_record(token=9, cookie=1, sport=1000, info_size=104, rtt_us=42)
    conns = poll(DiagDecoder(), tcp, msk_record(token=9, cookie=2, sport=1000, inode=5))
    tcp_info = conns[0].subflows[0].tcp
    assert tcp_info is not None and tcp_info.rtt_us == 42 and tcp_info.pacing_rate is None


@pytest.mark.parametrize("code", [-(2**31), -4096])
def test_a_netlink_error_code_that_is_no_errno_is_a_parse_error(code: int) -> None:
    error = struct.pack("=IHHIIi", 36, 2, 0, 1, 0, code) + bytes(16)
    with pytest.raises(KernelParseError, match=f"netlink error code {code} is not an errno"):
        DiagDecoder().feed(error, len(error), 1, MPTCP)


def test_a_netlink_error_raises_oserror_and_the_mptcp_dump_names_the_cause() -> None:
    error = struct.pack("=IHHIIi", 36, 2, 0, 1, 0, -errno.ENOENT) + bytes(16)
    with pytest.raises(OSError) as caught:
        DiagDecoder().feed(error, len(error), 1, MPTCP)
    assert caught.value.errno == errno.ENOENT
    mapped = diag._mapped(caught.value, MPTCP)
    assert isinstance(mapped, MptcpDiagUnavailable) and "CONFIG_INET_MPTCP_DIAG" in mapped.reason
    assert "CONFIG_INET_TCP_DIAG" in str(diag._mapped(caught.value, TCP))
    assert diag._mapped(OSError(errno.EPERM, "x"), MPTCP).errno == errno.EPERM
    assert DiagDecoder().feed(done(), 20, 1, MPTCP) is True
    assert DiagDecoder().feed(done(seq=2), 20, 1, MPTCP) is False    # another dump's message


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=160), max_size=6), st.data())
def test_random_records_raise_only_kernel_parse_errors(bodies: list[bytes], data: st.DataObject) -> None:
    datagram = b"".join(struct.pack("=IHHII", 16 + len(b), 20, 2, 1, 0) + b + b"\0" * (-len(b) % 4)
                        for b in bodies)
    cut = data.draw(st.integers(0, len(datagram)))
    for blob in (datagram, datagram[:cut]):
        for protocol in (TCP, MPTCP):
            try:
                DiagDecoder().feed(blob, len(blob), 1, protocol)
            except KernelParseError:
                pass


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_damaged_real_shaped_records_raise_only_kernel_parse_errors(data: st.DataObject) -> None:
    tcp, mptcp = two_connections()
    decoder = DiagDecoder()
    poll(decoder, tcp, mptcp)             # shapes compiled: damage hits the fast path too
    for blob, protocol in ((tcp, TCP), (mptcp, MPTCP)):
        damaged = bytearray(blob)
        for _ in range(data.draw(st.integers(1, 8))):
            at = data.draw(st.integers(0, len(damaged) - 1))
            damaged[at] = data.draw(st.integers(0, 255))
        damaged = damaged[:data.draw(st.integers(0, len(damaged)))]
        for msg_off in range(0, len(damaged), 4):   # keep message types: only bodies and lengths are damaged
            if msg_off + 6 <= len(damaged) and struct.unpack_from("=H", damaged, msg_off + 4)[0] in (2, 3):
                struct.pack_into("=H", damaged, msg_off + 4, 20)
        try:
            decoder.decode([(protocol, bytes(damaged))])
        except KernelParseError:
            pass


# -- socket owners -----------------------------------------------------------------------------------
class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_owners_rescan_only_for_new_inodes_and_at_most_every_interval(tmp_path: Path) -> None:
    fds = tmp_path / str(os.getpid()) / "fd"
    fds.mkdir(parents=True)
    (fds / "3").symlink_to("socket:[555]")
    (fds / "4").symlink_to("/dev/null")
    clock = Clock()
    owners = SocketOwners(min_interval=2.0, proc=str(tmp_path), clock=clock)
    me = psutil.Process().name()
    assert owners.lookup([555, 0]) == {555: (os.getpid(), me)} and owners.scans == 1
    (fds / "5").symlink_to("socket:[556]")
    clock.now += 0.5
    assert owners.lookup([555, 556]) == {555: (os.getpid(), me)} and owners.scans == 1   # rate-limited
    clock.now += 2.0
    assert owners.lookup([556]) == {556: (os.getpid(), me)} and owners.scans == 2
    clock.now += 10.0
    owners.lookup([557])                       # nobody's (or unreadable): looked for once...
    clock.now += 10.0
    assert owners.lookup([557, 555]) == {555: (os.getpid(), me)} and owners.scans == 3   # ...not again
    assert owners.named == {555: (os.getpid(), me), 556: (os.getpid(), me)}


def test_a_young_process_is_read_at_once_before_a_full_scan(tmp_path: Path) -> None:
    old = tmp_path / "1" / "fd"
    old.mkdir(parents=True)
    (old / "3").symlink_to("socket:[700]")
    clock = Clock()
    owners = SocketOwners(min_interval=2.0, proc=str(tmp_path), clock=clock)
    owners.lookup([700])
    scans = owners.scans
    young = tmp_path / str(os.getpid()) / "fd"
    young.mkdir(parents=True)
    owners.prefetch()                          # seen before its socket: still young a moment later
    clock.now += 0.5
    (young / "3").symlink_to("socket:[701]")
    assert owners.lookup([701]) == {701: (os.getpid(), psutil.Process().name())}
    assert owners.scans == scans               # found among the young processes alone
    (young / "4").symlink_to("socket:[702]")
    owners.prefetch()                          # at a connection's birth: its owner, cached...
    (young / "4").unlink()
    assert owners.cached(702) == (os.getpid(), psutil.Process().name())     # ...after its fd closed



# -- destroy broadcasts --------------------------------------------------------------------------------
def destroyed_message(rx: int, tx: int, local: str = "192.0.2.2", remote_port: int = 80) -> bytes:
    """A SOCK_DIAG_BY_FAMILY destroy message as 6.18 sends it: inet_diag_msg, PROTOCOL, INFO."""
    tcp_info = bytearray(280)
    struct.pack_into("=Q", tcp_info, 128, rx)       # tcpi_bytes_received
    struct.pack_into("=Q", tcp_info, 200, tx)       # tcpi_bytes_sent
    msg = struct.pack("=BBBB", socket.AF_INET, 7, 0, 0) + struct.pack("!HH", 41000, remote_port)
    msg += socket.inet_aton(local) + bytes(12) + socket.inet_aton("192.0.2.1") + bytes(12)
    msg += struct.pack("=IQ", 0, 1234) + bytes(20)
    attrs = struct.pack("=HHB3x", 5, 10, 6) + struct.pack("=HH", 4 + len(tcp_info), 2) + bytes(tcp_info)
    body = msg + attrs
    return struct.pack("=IHHII", 16 + len(body), 20, 0, 0, 0) + body


def test_a_destroy_message_gives_the_address_pair_and_final_counters() -> None:
    [end] = decode_destroyed(destroyed_message(16_581, 86) + struct.pack("=IHHII", 16, 3, 0, 0, 0))
    assert (end.local, end.remote, end.cookie) == (("192.0.2.2", 41000), ("192.0.2.1", 80), 1234)
    assert (end.tcp.bytes_received, end.tcp.bytes_sent) == (16_581, 86)
    with pytest.raises(KernelParseError):
        decode_destroyed(destroyed_message(1, 1)[:60])
    assert not end.disconnected


def test_a_disconnected_initial_subflows_message_is_told_apart() -> None:
    """MPTCP tcp_disconnect()s its initial subflow before freeing it: no local address, port 0 at the
    peer, counters zeroed (as every HTTPS download with a join ended in the lab)."""
    [end] = decode_destroyed(destroyed_message(0, 0, local="0.0.0.0", remote_port=0))
    assert end.disconnected and end.local == ("0.0.0.0", 41000) and end.remote == ("192.0.2.1", 0)
    [half] = decode_destroyed(destroyed_message(0, 0, local="0.0.0.0"))      # a peer port: not that
    assert not half.disconnected
