"""Reading our own sockets without a lab: unconnected sockets, unreadable ones, IPv6 loopback."""

from __future__ import annotations

import os
import socket

import pytest

from mptop.kernel import sockopt
from mptop.kernel.sockopt import UnreadableSocket, read_socket, socket_status
from mptop.kernel.types import SocketStatus


@pytest.mark.parametrize("probe", ["tcp_is_mptcp", "zero_length_mptcp_info"])
def test_unconnected_sockets_status(probe: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if probe == "zero_length_mptcp_info":
        monkeypatch.setattr(sockopt.capabilities, "tcp_is_mptcp", False)
    try:
        mptcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_MPTCP)
    except OSError as e:
        pytest.skip(f"MPTCP sockets unavailable here: {e}")
    with mptcp, socket.socket() as tcp:
        rewrapped = socket.socket(socket.AF_INET, socket.SOCK_STREAM, 0, fileno=os.dup(mptcp.fileno()))
        with rewrapped:
            assert rewrapped.proto == 0 and socket_status(rewrapped) is SocketStatus.MPTCP
        assert socket_status(mptcp.fileno()) is SocketStatus.MPTCP
        assert socket_status(tcp) is SocketStatus.TCP


def test_unreadable_sockets_raise_one_clear_error() -> None:
    closed = socket.socket()
    closed.close()
    read_end, write_end = os.pipe()
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            cases = [(closed, "closed"), (read_end, "not a socket"), (udp, "not a TCP or MPTCP socket")]
            for target, words in cases:
                for call in (read_socket, socket_status):
                    with pytest.raises(UnreadableSocket, match=words) as info:
                        call(target)
                    assert isinstance(info.value, OSError) and "\n" not in str(info.value)
    finally:
        os.close(read_end)
        os.close(write_end)


@pytest.mark.parametrize("server_proto", [socket.IPPROTO_MPTCP, socket.IPPROTO_TCP])
def test_ipv6_loopback(server_proto: int) -> None:
    """IPv6 addresses decode, and a v6 fallback (SOL_MPTCP fails with ENOPROTOOPT there) is seen."""
    try:
        listener = socket.socket(socket.AF_INET6, socket.SOCK_STREAM, server_proto)
        listener.bind(("::1", 0))
    except OSError as e:
        pytest.skip(f"no IPv6 MPTCP loopback here: {e}")
    with listener, socket.socket(socket.AF_INET6, socket.SOCK_STREAM, socket.IPPROTO_MPTCP) as client:
        listener.listen()
        client.settimeout(5)
        client.connect(listener.getsockname()[:2])
        accepted, _ = listener.accept()
        with accepted:
            accepted.sendall(b"x" * 1000)
            assert client.recv(1000)
            for legacy in (False, True):
                reading = read_socket(client, legacy=legacy)
                if server_proto == socket.IPPROTO_TCP:
                    assert reading.status is SocketStatus.FALLBACK and reading.tcp is not None
                    assert reading.tcp.bytes_received and reading.tcp.bytes_received >= 1
                    continue
                assert reading.status is SocketStatus.MPTCP and len(reading.subflows) == 1
                sf = reading.subflows[0]
                assert sf.local == client.getsockname()[:2] and sf.remote == listener.getsockname()[:2]
                assert sf.tcp is not None and sf.tcp.bytes_received and sf.tcp.bytes_received >= 1
