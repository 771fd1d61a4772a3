"""Cheap, unprivileged facts about this host's MPTCP support, in the calling thread's netns.

Everything here reads the namespace of the *calling thread*: sysctls through /proc/sys (resolved
when the file is opened), counters through /proc/thread-self/net (plain /proc/net follows the
process's main thread instead), interfaces through getifaddrs/ioctl on sockets made here.
"""

from __future__ import annotations

import fcntl
import os
import re
import socket
import struct
from pathlib import Path
from typing import NamedTuple

from mptop.kernel.ifaddrs import interface_addresses
from mptop.kernel.sockets import create_mptcp_socket
from mptop.kernel.types import KernelParseError, MptcpUnavailable

SYSCTL_DIR = Path("/proc/sys/net/mptcp")
NETSTAT = Path("/proc/thread-self/net/netstat")

_SIOCGIFFLAGS = 0x8913
_IFF_UP = 0x1
_IFF_RUNNING = 0x40


def kernel_version(release: str | None = None) -> tuple[int, int, int]:
    """(major, minor, patch) of the running kernel (or of ``release``, e.g. "6.18.44-fc")."""
    release = os.uname().release if release is None else release
    match = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", release)
    if match is None:
        raise KernelParseError(f"cannot read a kernel version from {release!r}")
    major, minor, patch = match.groups()
    return int(major), int(minor), int(patch or 0)


class KernelFeatures(NamedTuple):
    """What this kernel's MPTCP readers and fields should offer, judged from its version alone.

    Distribution kernels backport features, and the version says nothing about build options
    (CONFIG_MPTCP, CONFIG_INET_MPTCP_DIAG) or sysctls: this is a hint for display and for
    choosing a first strategy.  The readers themselves probe at run time (errno from getsockopt,
    the length the kernel returns, missing netlink families) and are the authority.
    """

    version: tuple[int, int, int]
    mptcp: bool                   # 5.6: IPPROTO_MPTCP sockets
    diag: bool                    # 5.9: sock_diag of MPTCP sockets, struct mptcp_info
    pm_events: bool               # 5.12: mptcp_pm_events, endpoint IF_IDX, SET_FLAGS
    reset_reason: bool            # 5.13: reset_reason / reset_flags in SUB_CLOSED
    sockopt_info: bool            # 5.16: MPTCP_INFO / MPTCP_TCPINFO / MPTCP_SUBFLOW_ADDRS getsockopt
    userspace_pm: bool            # 5.19: ANNOUNCE/REMOVE/SUBFLOW_* commands, server-side attribute
    listener_events: bool         # 6.2: LISTENER_CREATED / LISTENER_CLOSED
    full_info: bool               # 6.5: MPTCP_FULL_INFO, byte counters in mptcp_info
    subflows_total: bool          # 6.8: mptcpi_subflows_total
    tcp_is_mptcp: bool            # 6.10: TCP_IS_MPTCP and mptcpi_last_* timestamps
    laminar: bool                 # 6.18: laminar endpoints, mptcpi_endp_laminar_max

    @classmethod
    def from_version(cls, version: tuple[int, int, int]) -> KernelFeatures:
        def since(major: int, minor: int) -> bool:
            return version[:2] >= (major, minor)

        return cls(version=version, mptcp=since(5, 6), diag=since(5, 9), pm_events=since(5, 12),
                   reset_reason=since(5, 13), sockopt_info=since(5, 16), userspace_pm=since(5, 19),
                   listener_events=since(6, 2), full_info=since(6, 5), subflows_total=since(6, 8),
                   tcp_is_mptcp=since(6, 10), laminar=since(6, 18))


def kernel_features() -> KernelFeatures:
    return KernelFeatures.from_version(kernel_version())


def path_manager(sysctls: dict[str, str]) -> str | None:
    """"kernel" or "userspace", from ``net.mptcp.path_manager`` (newer kernels) or the older numeric
    ``pm_type`` (0 kernel, 1 userspace); None when neither says."""
    return sysctls.get("path_manager") or {"0": "kernel", "1": "userspace"}.get(sysctls.get("pm_type", ""))


def mptcp_sysctls(directory: Path = SYSCTL_DIR) -> dict[str, str]:
    """``net.mptcp.*`` of this netns by short name (``{"enabled": "1", ...}``); {} without MPTCP."""
    values: dict[str, str] = {}
    try:
        entries = sorted(directory.iterdir())
    except OSError:
        return values
    for entry in entries:
        try:
            values[entry.name] = entry.read_text().strip()
        except OSError:
            continue   # write-only or vanished entry
    return values


def parse_netstat(text: str) -> dict[str, dict[str, int]]:
    """/proc/net/netstat: pairs of "Prefix: names..." / "Prefix: values..." lines, by prefix."""
    tables: dict[str, dict[str, int]] = {}
    lines = text.splitlines()
    for header, values in zip(lines[::2], lines[1::2], strict=False):   # a header without values: left out
        prefix, _, names = header.partition(":")
        value_prefix, _, numbers = values.partition(":")
        if prefix != value_prefix:
            raise KernelParseError(f"netstat: header {prefix!r} followed by {value_prefix!r}")
        keys, counts = names.split(), numbers.split()
        if len(keys) != len(counts):
            raise KernelParseError(f"netstat {prefix}: {len(keys)} names but {len(counts)} values")
        try:
            tables[prefix] = {k: int(v) for k, v in zip(keys, counts, strict=True)}
        except ValueError as e:
            raise KernelParseError(f"netstat {prefix}: {e}") from None
    return tables


def mptcp_counters(path: Path = NETSTAT) -> dict[str, int]:
    """The MPTcpExt MIB counters of the calling thread's netns ({} if the kernel has none)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    return parse_netstat(text).get("MPTcpExt", {})


class Interface(NamedTuple):
    name: str
    ifindex: int
    addresses: tuple[str, ...]    # IPv4 and IPv6 (link-local with its %scope, as getnameinfo writes it)
    up: bool                      # administratively up (IFF_UP)
    running: bool                 # carrier / operational (IFF_RUNNING)


def _if_flags(sock: socket.socket, name: str) -> int:
    request = struct.pack("16sH14x", name.encode()[:15], 0)
    return struct.unpack_from("16xH", fcntl.ioctl(sock.fileno(), _SIOCGIFFLAGS, request))[0]


def interfaces() -> list[Interface]:
    """The interfaces of the calling thread's netns, by ifindex.

    Addresses come from getifaddrs (this thread's netns; :mod:`mptop.kernel.ifaddrs`, not psutil:
    start-up).  Flags come from SIOCGIFFLAGS rather than psutil.net_if_stats, which lists names from
    /proc/net/dev, i.e. the main thread's netns, and silently drops the rest.
    """
    found = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for name, ips in interface_addresses().items():
            try:
                ifindex = socket.if_nametoindex(name)
                flags = _if_flags(sock, name)
            except OSError:
                continue   # gone since the listing
            found.append(Interface(name, ifindex, tuple(ips), bool(flags & _IFF_UP), bool(flags & _IFF_RUNNING)))
    return sorted(found, key=lambda i: i.ifindex)


def mptcp_socket_available() -> tuple[bool, str]:
    """Whether an MPTCP socket can be created here (this thread's netns), and why not."""
    try:
        create_mptcp_socket().close()
    except MptcpUnavailable as e:
        return False, e.reason
    except OSError as e:
        return False, f"MPTCP sockets fail: {e.strerror or e}"
    return True, "MPTCP sockets are available"


ROUTES = Path("/proc/thread-self/net/route")
ROUTES6 = Path("/proc/thread-self/net/ipv6_route")
_RTF_REJECT = 0x0200


def default_routes(path: Path = ROUTES, path6: Path = ROUTES6) -> dict[str, int]:
    """Interface → lowest metric of its default route (IPv4 or IPv6, main table) in this netns;
    interfaces without one are absent.  Lower metric = preferred: the initial subflow leaves there."""
    found: dict[str, int] = {}

    def keep(iface: str, metric: int) -> None:
        found[iface] = min(metric, found.get(iface, metric))

    try:
        for line in path.read_text().splitlines()[1:]:
            f = line.split()
            if len(f) >= 8 and f[1] == "00000000" and f[7] == "00000000":
                keep(f[0], int(f[6]))
    except (OSError, ValueError):
        pass
    try:
        for line in path6.read_text().splitlines():
            f = line.split()
            if len(f) >= 10 and f[1] == "00" and int(f[0], 16) == 0 and not int(f[8], 16) & _RTF_REJECT:
                keep(f[9], int(f[5], 16))
    except (OSError, ValueError):
        pass
    return found


def default_route_interface(path: Path = ROUTES, path6: Path = ROUTES6) -> str | None:
    """The interface of this netns's default route with the lowest metric (None without one):
    the path the initial subflow of a connection usually takes."""
    routes = default_routes(path, path6)
    return min(routes, key=lambda iface: (routes[iface], iface)) if routes else None


def sysctl(name: str) -> str | None:
    """Any sysctl of this thread's netns by dotted name (``net.ipv4.conf.all.rp_filter``); None if absent."""
    try:
        return Path("/proc/sys", name.replace(".", "/")).read_text().strip()
    except OSError:
        return None


def process_running(name: str) -> bool:
    """Whether a process of this name runs on the host (e.g. an endpoint manager: mptcpd, NetworkManager)."""
    import psutil  # the doctor's question alone: not on every start (bench/startup.py)

    return any(p.info["name"] == name for p in psutil.process_iter(["name"]))
