"""Host facts read on this host without a lab: kernel version and features, sysctls, the netstat parser."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from mptop.kernel import host
from mptop.kernel.types import KernelParseError

IPPROTO_MPTCP = 262
SOL_TCP, TCP_IS_MPTCP = 6, 43


@pytest.mark.parametrize("release, version", [
    ("6.18.44-fc-v669", (6, 18, 44)), ("5.10.0-28-amd64", (5, 10, 0)), ("6.1", (6, 1, 0)),
    ("4.19.325+", (4, 19, 325)),
])
def test_kernel_version_from_release(release: str, version: tuple[int, int, int]) -> None:
    assert host.kernel_version(release) == version


def test_kernel_version_of_this_host() -> None:
    release = Path("/proc/sys/kernel/osrelease").read_text().strip()
    assert host.kernel_version() == tuple(int(x) for x in release.split("-")[0].split(".")[:3])
    with pytest.raises(KernelParseError):
        host.kernel_version("unknown")


# feature -> the first kernel that has it (docs/kernel-interfaces.md, mptcp.dev)
SINCE = {"mptcp": (5, 6), "diag": (5, 9), "pm_events": (5, 12), "reset_reason": (5, 13),
         "sockopt_info": (5, 16), "userspace_pm": (5, 19), "listener_events": (6, 2), "full_info": (6, 5),
         "subflows_total": (6, 8), "tcp_is_mptcp": (6, 10), "laminar": (6, 18)}


@pytest.mark.parametrize("feature", sorted(SINCE))
def test_features_switch_on_at_their_version(feature: str) -> None:
    major, minor = SINCE[feature]
    before = (major, minor - 1, 99) if minor else (major - 1, 99, 99)
    assert getattr(host.KernelFeatures.from_version(before), feature) is False
    assert getattr(host.KernelFeatures.from_version((major, minor, 0)), feature) is True
    assert getattr(host.KernelFeatures.from_version((major + 1, 0, 0)), feature) is True


def test_features_agree_with_what_this_kernel_does() -> None:
    features = host.kernel_features()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, IPPROTO_MPTCP)
    with sock:
        try:
            is_mptcp: int | None = sock.getsockopt(SOL_TCP, TCP_IS_MPTCP)
        except OSError:
            is_mptcp = None
    assert features.mptcp and features.tcp_is_mptcp == (is_mptcp == 1)


def test_sysctls_without_mptcp_are_empty(tmp_path: Path) -> None:
    assert host.mptcp_sysctls(tmp_path / "missing") == {}


def test_netstat_parser_is_strict() -> None:
    good = "TcpExt: A B\nTcpExt: 1 2\nMPTcpExt: C\nMPTcpExt: 3\n"
    assert host.parse_netstat(good) == {"TcpExt": {"A": 1, "B": 2}, "MPTcpExt": {"C": 3}}
    for bad in ("TcpExt: A B\nTcpExt: 1\n", "TcpExt: A\nIpExt: 1\n", "TcpExt: A\nTcpExt: x\n"):
        with pytest.raises(KernelParseError):
            host.parse_netstat(bad)
    assert host.mptcp_counters(Path("/nonexistent/netstat")) == {}


def test_default_routes_from_both_tables(tmp_path):
    """/proc/net/route and ipv6_route: lowest metric per interface, IPv6 reject routes on lo skipped."""
    from mptop.kernel.host import default_route_interface, default_routes

    v4 = tmp_path / "route"
    v4.write_text("Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\tMTU\tWindow\tIRTT\n"
                  "wlp2s0\t00000000\t0100A8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0\n"
                  "enx0a1b2c3d4e5f\t00000000\t012BA8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n"
                  "wlp2s0\t0000A8C0\t00000000\t0001\t0\t0\t600\t00FFFFFF\t0\t0\t0\n")
    v6 = tmp_path / "ipv6_route"
    zero = "0" * 32
    v6.write_text(f"{zero} 00 {zero} 00 fe800000000000000000000000000001 00000190 00000001 00000000 00000003 wwan0\n"
                  f"{zero} 00 {zero} 00 {zero} ffffffff 00000001 00000000 00200200 lo\n"
                  f"{zero} 00 {zero} 00 fe800000000000000000000000000001 00000064 00000001 00000000 00000003 wlp2s0\n")
    assert default_routes(v4, v6) == {"wlp2s0": 100, "enx0a1b2c3d4e5f": 100, "wwan0": 400}
    assert default_route_interface(v4, v6) == "enx0a1b2c3d4e5f"
    assert default_routes(tmp_path / "none", tmp_path / "none") == {}
