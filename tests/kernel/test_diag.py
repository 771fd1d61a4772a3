"""The system-wide reader (sock_diag) against the real kernel in the lab, and its decoder on bytes.

Lab tests compare what :class:`DiagReader` sees with ``ss`` on the same idle sockets, run it as
``nobody``, and check the fast (compiled) decoding against the plain walk through
:mod:`mptop.kernel.structs` on real kernel records.  Unit tests feed hand-built records: offsets
below come from linux/inet_diag.h, linux/tcp.h and linux/mptcp.h, not from the decoder.
"""

from __future__ import annotations

import errno
import http.client
import json
import os
import re
import socket
import struct
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import psutil
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mptop.kernel import diag
from mptop.kernel.diag import (
    DiagDecoder,
    DiagReader,
    MptcpDiagUnavailable,
    dump_connections,
)
from mptop.kernel.procs import SocketOwners
from mptop.kernel.types import (
    SUBFLOW_FLAG_JOIN_LOC,
    SUBFLOW_FLAG_MCAP_LOC,
    DiagConnection,
    KernelParseError,
)
from mptop.lab import Lab
from tests.nobody import NOBODY, run_as_nobody

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
    assert all(a is b for c, d in zip(before, idle) for a, b in zip(c.subflows, d.subflows))
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


# -- the real kernel, in the lab ---------------------------------------------------------------------
@contextmanager
def held_download(lab: Lab, size: int, *, tcp_port: bool = False) -> Iterator[socket.socket]:
    """Download /bytes/<size> over an MPTCP socket of ours, then keep the idle connection open."""
    url = urlsplit(lab.base_url(tcp=tcp_port))
    host, port = url.hostname or "", url.port or 80
    with lab.client.entered():
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, MPTCP)
    sock.settimeout(10)
    sock.connect((host, port))
    conn = http.client.HTTPConnection(host, port, timeout=10)
    conn.sock = sock
    try:
        conn.request("GET", f"/bytes/{size}")
        response = conn.getresponse()
        assert response.status == 200 and len(response.read()) == size
        yield sock
    finally:
        conn.close()


def mine(reader: DiagReader, sock: socket.socket) -> DiagConnection:
    local = sock.getsockname()
    found = [c for c in reader.connections() if c.local == local]
    assert len(found) == 1, f"expected one connection from {local}, got {found}"
    return found[0]


def wait_for(reader: DiagReader, sock: socket.socket, subflows: int, timeout: float = 10.0) -> DiagConnection:
    deadline = time.monotonic() + timeout
    while len((conn := mine(reader, sock)).subflows) < subflows and time.monotonic() < deadline:
        time.sleep(0.05)
    return conn


def ss(lab: Lab, *args: str) -> str:
    return lab.run(lab.client, ["ss", "-nH", *args]).stdout


def ss_subflows(text: str) -> dict[tuple[str, int], tuple[int, int, int]]:
    """``ss -tni``: local (ip, port) -> (bytes_received, local token, local endpoint id) of MPTCP subflows."""
    out = {}
    for m in re.finditer(r"([\d.]+)(?:%\S+)?:(\d+)\s+\S+\s*\n\s+(.*?tcp-ulp-mptcp.*)", text):
        detail = m.group(3)
        rx = re.search(r"bytes_received:(\d+)", detail)
        token = re.search(r"token:\w+\(id:\d+\)/(\w+)\(id:(\d+)\)", detail)
        assert token is not None
        out[(m.group(1), int(m.group(2)))] = (int(rx.group(1)) if rx else 0, int(token.group(1), 16),
                                              int(token.group(2)))
    return out


def iface_addresses(lab: Lab) -> dict[str, tuple[str, int]]:
    """Client address -> (interface, ifindex), from ``ip -j addr``."""
    return {a["local"]: (link["ifname"], link["ifindex"])
            for link in json.loads(lab.run(lab.client, ["ip", "-j", "addr"]).stdout)
            for a in link.get("addr_info", []) if a.get("family") == "inet"}


@pytest.mark.lab
def test_download_over_both_paths_matches_ss(lab: Lab) -> None:
    size = 8_000_000
    with held_download(lab, size) as sock, lab.client.entered(), DiagReader() as reader:
        conn = wait_for(reader, sock, 2)
        assert conn.info is not None and not conn.info.fallback
        assert len(conn.subflows) == 2 and {sf.token_local for sf in conn.subflows} == {conn.token}
        addresses = iface_addresses(lab)
        by_path = {p.client_addr: p.iface for p in lab.paths}
        for sf in conn.subflows:
            iface, index = addresses[sf.local[0]]
            assert iface == by_path[sf.local[0]]
            assert sf.ifindex in (0, index)           # idiag_if is set only for device-bound subflows
        initial, = [sf for sf in conn.subflows if not sf.is_join]
        join, = [sf for sf in conn.subflows if sf.is_join]
        assert initial.local[0] == "192.0.2.2" and initial.id_local == 0 and initial.flags & SUBFLOW_FLAG_MCAP_LOC
        assert join.local[0] == "198.51.100.2" and join.flags & SUBFLOW_FLAG_JOIN_LOC
        received = [sf.tcp.bytes_received or 0 for sf in conn.subflows if sf.tcp]
        assert sum(received) >= (conn.info.bytes_received or 0) >= size
        assert conn.pid == os.getpid() and conn.process == psutil.Process().name()

        # ss on the same sockets: the same token, ids and per-subflow counters (late duplicates
        # may still arrive on a subflow after the body is read: ss must lie between two dumps).
        msk_text = ss(lab, "-Mi", "src", f"{conn.local[0]}:{conn.local[1]}")
        assert f"token:{conn.token:x}" in msk_text
        before = {sf.local: sf for sf in mine(reader, sock).subflows}
        seen = ss_subflows(ss(lab, "-ti"))
        after = {sf.local: sf for sf in mine(reader, sock).subflows}
        for local, sf in before.items():
            rx, token, endpoint_id = seen[local]
            assert (token, endpoint_id) == (conn.token, sf.id_local)
            assert sf.tcp is not None and after[local].tcp is not None
            assert sf.tcp.bytes_received <= rx <= after[local].tcp.bytes_received  # type: ignore[operator]

        # The compiled fast path and the plain walk through kernel.structs agree on real records.
        datagrams = reader.capture()
        assert DiagDecoder().decode(datagrams) == DiagDecoder(fast=False).decode(datagrams)


@contextmanager
def idle_connections(lab: Lab, count: int) -> Iterator[list[socket.socket]]:
    """``count`` idle MPTCP connections from the client: one small request each, then kept alive."""
    url = urlsplit(lab.base_url())
    host, port = url.hostname or "", url.port or 80
    held: list[http.client.HTTPConnection] = []
    try:
        for _ in range(count):
            with lab.client.entered():
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, MPTCP)
            sock.settimeout(10)
            sock.connect((host, port))
            held.append(conn := http.client.HTTPConnection(host, port, timeout=10))
            conn.sock = sock
            conn.request("GET", "/bytes/1")     # data: fully established, so the PM adds the join
            assert conn.getresponse().read() and conn.sock is sock
        yield [conn.sock for conn in held]
    finally:
        for conn in held:
            conn.close()


def without_ms_ago(conn: DiagConnection) -> DiagConnection:
    assert conn.info is not None
    return conn._replace(info=conn.info._replace(last_data_sent_ms=None, last_data_recv_ms=None,
                                                 last_ack_recv_ms=None))


@pytest.mark.lab
def test_idle_connections_over_many_datagrams_and_batches(lab: Lab) -> None:
    count = 120                     # 240 subflow records: 4 TCP datagrams of at most 32 KiB
    with idle_connections(lab, count) as socks, lab.client.entered(), \
            DiagReader(buffer_size=diag._BATCH_ROOM + 40_000) as reader:    # a batch every 2 datagrams
        ports = {s.getsockname()[1] for s in socks}
        deadline = time.monotonic() + 20
        while True:
            ours = {c.token: c for c in reader.connections() if c.local[1] in ports}
            if len(ours) == count and all(len(c.subflows) == 2 for c in ours.values()):
                break
            assert time.monotonic() < deadline, f"{sum(len(c.subflows) == 2 for c in ours.values())} joined"
            time.sleep(0.1)
        time.sleep(0.3)             # the last ACKs of the joins
        first = {c.token: c for c in reader.connections() if c.local[1] in ports}
        time.sleep(0.1)
        second = {c.token: c for c in reader.connections() if c.local[1] in ports}
        assert reader.owners is not None
        walked = {c.token: c for c in DiagDecoder(fast=False).decode(reader.capture(), reader.owners.named)
                  if c.local[1] in ports}
    assert second.keys() == first.keys() == walked.keys() and len(second) == count
    assert {t: without_ms_ago(c) for t, c in second.items()} == {t: without_ms_ago(c) for t, c in walked.items()}
    assert all(c.pid == os.getpid() for c in second.values())
    # Idle: the subflows keep their objects, and the "ms ago" words are read anew all the same.
    kept = sum(a is b for t in first for a, b in zip(first[t].subflows, second[t].subflows))
    assert kept >= 0.9 * 2 * count          # a late ACK may still move a few
    assert all(second[t].info.last_data_sent_ms > first[t].info.last_data_sent_ms  # type: ignore[union-attr,operator]
               for t in first)


@pytest.mark.lab
def test_fallback_connection_shows_the_flag(lab: Lab) -> None:
    with held_download(lab, 10_000, tcp_port=True) as sock, lab.client.entered(), DiagReader() as reader:
        conn = mine(reader, sock)
        assert conn.info is not None and conn.info.fallback
        assert len(conn.subflows) == 1 and conn.subflows[0].token_local == conn.token
        assert "fallback" in ss(lab, "-Mi", "src", f"{conn.local[0]}:{conn.local[1]}")


@pytest.mark.lab
def test_another_process_is_named(lab: Lab) -> None:
    lab.set_rate("wlan0", 5)
    lab.set_rate("wwan0", 5)
    curl = lab.popen(lab.client, ["mptcpize", "run", "curl", "-s", "-o", "/dev/null", lab.url(20_000_000)])
    with lab.client.entered():
        reader = DiagReader()
    try:
        deadline = time.monotonic() + 15
        while not (named := [c for c in reader.connections() if c.pid == curl.pid]) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert [(c.process, c.remote) for c in named] == [("curl", ("192.0.2.1", 80))]
    finally:
        reader.close()
        curl.kill()


def mptcp_listener(family: int, host: str) -> socket.socket:
    listener = socket.socket(family, socket.SOCK_STREAM, MPTCP)
    listener.bind((host, 0))
    listener.listen()
    return listener


@pytest.mark.lab
def test_listeners_only_when_asked(lab: Lab) -> None:
    with lab.client.entered():
        listener = mptcp_listener(socket.AF_INET, "127.0.0.1")
        address = listener.getsockname()
        try:
            assert address not in [c.local for c in dump_connections()]
            listening = [c for c in dump_connections(include_listeners=True) if c.local == address]
            assert [c.state for c in listening] == [10] and listening[0].pid == os.getpid()
        finally:
            listener.close()


@pytest.mark.lab
def test_ipv6_connections(lab: Lab) -> None:
    with lab.client.entered():
        server = mptcp_listener(socket.AF_INET6, "::1")
        client = socket.socket(socket.AF_INET6, socket.SOCK_STREAM, MPTCP)
        client.connect(server.getsockname()[:2])
        accepted, _ = server.accept()
        try:
            with DiagReader() as reader:
                ends = {c.local: c for c in reader.connections() if c.local[0] == "::1"}
            local = client.getsockname()[:2]
            assert ends[local].remote == server.getsockname()[:2]
            assert ends[local].subflows and ends[local].subflows[0].local == local
        finally:
            for s in (accepted, client, server):
                s.close()


@pytest.mark.lab
def test_unprivileged_user_sees_connections_and_subflows(lab: Lab) -> None:
    with held_download(lab, 4_000_000) as sock:
        with lab.client.entered(), DiagReader() as reader:
            as_root = wait_for(reader, sock, 2)
        report = dump_as_nobody(lab)
    assert report["uid"] == NOBODY and report["fds_readable"] is False
    seen = {tuple(c[0]): c for c in report["conns"]}
    _, token, owner, subflows = seen[as_root.local]
    assert token == as_root.token and owner is None       # root's process: not ours to name
    assert sorted((tuple(s[0]), s[1], s[2]) for s in subflows) == \
        sorted((sf.local, sf.token_local, sf.id_local) for sf in as_root.subflows)


def dump_as_nobody(lab: Lab) -> dict[str, object]:
    """A forked child enters the client netns while still root, becomes nobody, and dumps; it holds
    no inherited fd of the parent's sockets: only root's process owns them."""

    def body() -> dict[str, object]:
        try:
            os.listdir(f"/proc/{os.getppid()}/fd")
            fds_readable = True
        except PermissionError:
            fds_readable = False
        conns = [[list(c.local), c.token, c.pid, [[list(sf.local), sf.token_local, sf.id_local] for sf in c.subflows]]
                 for c in dump_connections()]
        return {"uid": os.geteuid(), "fds_readable": fds_readable, "conns": conns}

    report: dict[str, object] = run_as_nobody(body, netns=lab.client.path, close_fds=True)
    return report
