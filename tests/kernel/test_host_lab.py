"""Host facts in the lab's namespaces: sysctls, MIB counters, interfaces, MPTCP socket availability.

Read from the main thread and from worker threads (the netns of a thread is not the process's:
/proc/net and psutil.net_if_stats follow the main thread's)."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import pytest

from mptop.kernel import host
from mptop.lab import Lab, Namespace

pytestmark = pytest.mark.lab

T = TypeVar("T")


def in_worker_thread(ns: Namespace, read: Callable[[], T]) -> T:
    """``read()`` in a fresh thread that entered ``ns`` (this thread stays where it is)."""
    def entered() -> T:
        with ns.entered():
            return read()

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(entered).result(timeout=10)


def test_sysctls_follow_the_thread_netns(lab: Lab) -> None:
    lab.sysctl(lab.client, "net.mptcp.enabled", "0")
    lab.sysctl(lab.client, "net.mptcp.stale_loss_cnt", "7")
    with lab.client.entered():
        here = host.mptcp_sysctls()
        names = sorted(os.listdir("/proc/sys/net/mptcp"))
    assert sorted(here) == names and {"enabled", "path_manager", "scheduler"} <= set(here)
    assert (here["enabled"], here["stale_loss_cnt"]) == ("0", "7")
    assert in_worker_thread(lab.client, host.mptcp_sysctls) == here
    server = in_worker_thread(lab.server, host.mptcp_sysctls)
    assert (server["enabled"], server["stale_loss_cnt"]) == ("1", lab.sysctl(lab.server, "net.mptcp.stale_loss_cnt"))
    shown = lab.run(lab.client, ["sysctl", "-n", "net.mptcp.path_manager", "net.mptcp.scheduler"]).stdout.split()
    assert [here["path_manager"], here["scheduler"]] == shown


def test_socket_availability_names_the_cause(lab: Lab) -> None:
    assert in_worker_thread(lab.client, host.mptcp_socket_available)[0] is True
    lab.sysctl(lab.client, "net.mptcp.enabled", "0")
    available, reason = in_worker_thread(lab.client, host.mptcp_socket_available)
    assert available is False and "net.mptcp.enabled=0" in reason
    with lab.server.entered():
        assert host.mptcp_socket_available()[0] is True


def mptcp_connect(lab: Lab) -> None:
    """One MPTCP connection from the client netns to the lab server (then closed)."""
    with lab.client.entered():
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_MPTCP)
    with sock:
        sock.settimeout(10)
        sock.connect((lab.paths[0].server_addr, lab.config.mptcp_port))


def test_counters_follow_the_thread_netns(lab: Lab) -> None:
    client_before = in_worker_thread(lab.client, host.mptcp_counters)
    server_before = in_worker_thread(lab.server, host.mptcp_counters)
    mptcp_connect(lab)
    client_after = in_worker_thread(lab.client, host.mptcp_counters)
    server_after = in_worker_thread(lab.server, host.mptcp_counters)
    assert client_after["MPCapableSYNTX"] == client_before["MPCapableSYNTX"] + 1
    assert client_after["MPCapableSYNACKRX"] == client_before["MPCapableSYNACKRX"] + 1
    assert server_after["MPCapableSYNRX"] == server_before["MPCapableSYNRX"] + 1
    assert server_after["MPCapableSYNTX"] == server_before["MPCapableSYNTX"]
    # The holder's /proc/PID/net is the client netns: the same table, parsed independently.
    # The server's ADD_ADDR reaches the client asynchronously after connect, so counters may
    # still move: compare only a read bracketed by two identical independent ones.
    for _ in range(50):
        first = client_table(lab)
        ours = in_worker_thread(lab.client, host.mptcp_counters)
        if first == client_table(lab):
            assert ours == first
            return
    pytest.fail("the client's MPTcpExt counters never held still")


def client_table(lab: Lab) -> dict[str, int]:
    table = Path(f"/proc/{lab.client.pid}/net/netstat").read_text().splitlines()
    names, values = [line.split()[1:] for line in table if line.startswith("MPTcpExt:")]
    return dict(zip(names, map(int, values), strict=True))


def test_interfaces_of_the_thread_netns(lab: Lab) -> None:
    wlan, wwan = lab.paths
    lab.link_down(wwan.iface)
    with lab.client.entered():
        found = {i.name: i for i in host.interfaces()}
        indexes = {name: socket.if_nametoindex(name) for name in found}
    assert set(found) == {"lo", wlan.iface, wwan.iface}
    assert {name: i.ifindex for name, i in found.items()} == indexes
    assert wlan.client_addr in found[wlan.iface].addresses and wwan.client_addr in found[wwan.iface].addresses
    assert (found[wlan.iface].up, found[wlan.iface].running) == (True, True)
    assert (found[wwan.iface].up, found[wwan.iface].running) == (False, False)
    # From a worker thread (psutil.net_if_stats would list the main thread's interfaces there).
    assert {i.name: i for i in in_worker_thread(lab.client, host.interfaces)} == found
    assert {i.name for i in in_worker_thread(lab.server, host.interfaces)} == {"lo", wlan.server_iface,
                                                                               wwan.server_iface}


def test_path_manager_by_name_or_by_the_older_number(lab: Lab) -> None:
    assert host.path_manager({"pm_type": "0"}) == "kernel"                     # before path_manager existed
    assert host.path_manager({"pm_type": "1"}) == "userspace"
    assert host.path_manager({"path_manager": "userspace", "pm_type": "1"}) == "userspace"
    assert host.path_manager({}) is None and host.path_manager({"pm_type": "7"}) is None
    here = in_worker_thread(lab.client, host.mptcp_sysctls)
    assert host.path_manager(here) == "kernel"                                 # the lab's default


def test_interface_addresses_are_psutils_without_psutil(lab: Lab) -> None:
    # getifaddrs through ctypes (kernel/ifaddrs.py) against psutil.net_if_addrs, read in the same netns:
    # every IPv4 and IPv6 address of every interface, a second address on one, link-local scopes.
    import psutil

    wlan, _ = lab.paths
    lab.run(lab.client, ["ip", "addr", "add", "192.0.2.77/24", "dev", wlan.iface])
    lab.run(lab.client, ["ip", "-6", "addr", "add", "2001:db8::77/64", "dev", wlan.iface, "nodad"])

    def both() -> tuple[dict[str, tuple[str, ...]], dict[str, tuple[str, ...]]]:
        ours = {i.name: i.addresses for i in host.interfaces()}
        theirs = {name: tuple(a.address for a in addrs if a.family in (socket.AF_INET, socket.AF_INET6))
                  for name, addrs in psutil.net_if_addrs().items()}
        return ours, theirs

    ours, theirs = in_worker_thread(lab.client, both)
    assert {"192.0.2.77", "2001:db8::77", wlan.client_addr} <= set(ours[wlan.iface])
    assert ours == theirs
