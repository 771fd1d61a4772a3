"""Reading our own sockets against the real kernel: the two-path lab, fallback, plain TCP, errors.

Both the ``MPTCP_FULL_INFO`` path and the legacy three-option path are exercised on this
kernel (``legacy=True``), and so are both status probes (``TCP_IS_MPTCP`` and the
zero-length ``MPTCP_INFO`` probe, by pretending the kernel lacks the former).
"""

from __future__ import annotations

import http.client
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

import pytest

from mptop.kernel import sockopt
from mptop.kernel.sockopt import read_socket, socket_status
from mptop.kernel.types import SocketReading, SocketStatus, SubflowReading
from mptop.lab import Lab

pytestmark = pytest.mark.lab

TCP_ESTABLISHED = 1
CHUNK = 64 * 1024


@contextmanager
def http_get(lab: Lab, path: str, *, tcp_port: bool = False, proto: int = socket.IPPROTO_MPTCP,
             rewrap: bool = False) -> Iterator[tuple[socket.socket, http.client.HTTPResponse]]:
    """GET ``path`` from the lab server over a socket we create in the client namespace."""
    url = urlsplit(lab.base_url(tcp=tcp_port))
    host, port = url.hostname or "", url.port or 80
    with lab.client.entered():
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, proto)
    if rewrap:   # what the asyncio workaround does: same kernel socket, Python proto 0
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, 0, fileno=sock.detach())
    sock.settimeout(10)
    sock.connect((host, port))
    conn = http.client.HTTPConnection(host, port, timeout=10)
    conn.sock = sock
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        assert response.status == 200
        yield sock, response
    finally:
        conn.close()


def by_local(reading: SocketReading) -> dict[tuple[str, int], SubflowReading]:
    return {sf.local: sf for sf in reading.subflows}


def wait_for_subflows(sock: socket.socket, response: http.client.HTTPResponse, count: int,
                      timeout: float = 5.0) -> int:
    """Read the body in chunks until the kernel shows ``count`` subflows; returns bytes read."""
    got, deadline = 0, time.monotonic() + timeout
    while len(read_socket(sock).subflows) < count:
        chunk = response.read(CHUNK)
        assert chunk and time.monotonic() < deadline, f"never saw {count} subflows"
        got += len(chunk)
    return got


@pytest.mark.lab
def test_download_over_both_paths_reads_back_consistently(lab: Lab) -> None:
    size = 24 * 1024 * 1024
    rx_before = {p.iface: lab.rx_bytes(p.iface) for p in lab.paths}
    with http_get(lab, f"/bytes/{size}", rewrap=True) as (sock, response):
        got = wait_for_subflows(sock, response, 2)
        got += len(response.read(4 * CHUNK))
        # data still in flight: a FULL_INFO read, a legacy read, another FULL_INFO read
        first, legacy, last = read_socket(sock), read_socket(sock, legacy=True), read_socket(sock)
        got += len(response.read())
        final = read_socket(sock)
    assert got == size
    assert sockopt.capabilities.full_info is True

    for reading in (first, legacy, last, final):
        assert reading.status is SocketStatus.MPTCP and reading.info is not None and reading.tcp is None
        assert not reading.info.fallback and reading.info.remote_key_received
        assert len(reading.subflows) == 2 and reading.info.subflows_total == 2
        paths = {p.client_addr: p.server_addr for p in lab.paths}
        assert {sf.local[0]: sf.remote[0] for sf in reading.subflows} == paths
        assert all(sf.tcp is not None and sf.tcp.state == TCP_ESTABLISHED for sf in reading.subflows)
        # the subflows carry every byte the connection received (and maybe more, not yet reassembled)
        assert reading.info.bytes_received is not None
        assert sum(sf.tcp.bytes_received or 0 for sf in reading.subflows if sf.tcp) >= reading.info.bytes_received

    # both paths name the same subflows; the kernel ids are 1 (initial, Wi-Fi) and 2 (the join)
    assert [sf.id for sf in first.subflows] == [1, 2]
    assert [(sf.id, sf.local, sf.remote) for sf in first.subflows] == \
        [(sf.id, sf.local, sf.remote) for sf in legacy.subflows]
    assert first.subflows[0].local[0] == lab.paths[0].client_addr
    assert first.info and legacy.info and last.info and final.info
    assert first.info.token == legacy.info.token == final.info.token
    # counters read in sequence only grow: first <= legacy <= last
    assert first.info.bytes_received <= legacy.info.bytes_received <= last.info.bytes_received  # type: ignore[operator]
    for local, sf in by_local(legacy).items():
        before, after = by_local(first)[local].tcp, by_local(last)[local].tcp
        assert before and sf.tcp and after
        assert before.bytes_received <= sf.tcp.bytes_received <= after.bytes_received  # type: ignore[operator]

    # at the end the connection received the whole response: body plus a small header
    assert size <= final.info.bytes_received <= size + 4096  # type: ignore[operator]
    # tcp_info's byte counter agrees with the interfaces' own counters (payload < wire bytes)
    for p in lab.paths:
        wire = lab.rx_bytes(p.iface) - rx_before[p.iface]
        payload = by_local(final)[next(k for k in by_local(final) if k[0] == p.client_addr)].tcp
        assert payload and payload.bytes_received is not None
        assert payload.bytes_received <= wire
        if wire > 1_000_000:
            assert payload.bytes_received >= 0.8 * wire


@pytest.mark.lab
def test_buffers_grow_when_more_subflows_than_room(lab: Lab) -> None:
    with http_get(lab, f"/bytes/{16 * 1024 * 1024}") as (sock, response):
        wait_for_subflows(sock, response, 2)
        for legacy in (False, True):
            sockopt._scratch().grow(1)   # room for one subflow: the reader must notice and retry
            reading = read_socket(sock, legacy=legacy)
            assert len(reading.subflows) == 2, legacy
            assert {sf.local[0] for sf in reading.subflows} == {p.client_addr for p in lab.paths}
        response.read()


@pytest.mark.lab
@pytest.mark.parametrize("probe", ["tcp_is_mptcp", "zero_length_mptcp_info"])
def test_fallback_to_the_plain_tcp_port(lab: Lab, probe: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if probe == "zero_length_mptcp_info":   # behave as on a kernel older than 6.10
        monkeypatch.setattr(sockopt.capabilities, "tcp_is_mptcp", False)
    size = 1024 * 1024
    with http_get(lab, f"/bytes/{size}", tcp_port=True) as (sock, response):
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_PROTOCOL) == socket.IPPROTO_MPTCP
        body = response.read()
        assert socket_status(sock) is SocketStatus.FALLBACK
        for legacy in (False, True):
            reading = read_socket(sock, legacy=legacy)
            assert reading.status is SocketStatus.FALLBACK
            assert reading.info is None and reading.subflows == ()
            assert reading.tcp is not None and reading.tcp.state == TCP_ESTABLISHED
            assert size <= len(body) <= (reading.tcp.bytes_received or 0) <= size + 4096


@pytest.mark.lab
def test_plain_tcp_socket(lab: Lab) -> None:
    size = 256 * 1024
    with http_get(lab, f"/bytes/{size}", proto=socket.IPPROTO_TCP) as (sock, response):
        response.read()
        reading = read_socket(sock.fileno())
        assert socket_status(sock) is SocketStatus.TCP
    assert reading.status is SocketStatus.TCP and reading.info is None and reading.subflows == ()
    assert reading.tcp is not None and size <= (reading.tcp.bytes_received or 0) <= size + 4096
