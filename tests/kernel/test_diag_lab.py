"""The system-wide reader (sock_diag) against the real kernel in the lab.

Compares what :class:`DiagReader` sees with ``ss`` on the same idle sockets, runs it as ``nobody``,
and checks the fast (compiled) decoding against the plain walk through :mod:`mptop.kernel.structs`
on real kernel records."""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

import psutil
import pytest

from mptop.kernel import diag
from mptop.kernel.diag import (
    DiagDecoder,
    DiagReader,
    dump_connections,
)
from mptop.kernel.types import (
    SUBFLOW_FLAG_JOIN_LOC,
    SUBFLOW_FLAG_MCAP_LOC,
    DiagConnection,
)
from mptop.lab import Lab
from tests.support import NOBODY, run_as_nobody

pytestmark = pytest.mark.lab


# -- the real kernel, in the lab ---------------------------------------------------------------------
@contextmanager
def held_download(lab: Lab, size: int, *, tcp_port: bool = False) -> Iterator[socket.socket]:
    """Download /bytes/<size> over an MPTCP socket of ours, then keep the idle connection open."""
    url = urlsplit(lab.base_url(tcp=tcp_port))
    host, port = url.hostname or "", url.port or 80
    with lab.client.entered():
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_MPTCP)
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
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_MPTCP)
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
    kept = sum(a is b for t in first for a, b in zip(first[t].subflows, second[t].subflows, strict=True))
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
    listener = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_MPTCP)
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
        client = socket.socket(socket.AF_INET6, socket.SOCK_STREAM, socket.IPPROTO_MPTCP)
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

    report: dict[str, object] = run_as_nobody(lab.client, body, close_fds=True)
    return report
