"""The doctor's choice of fix by what manages endpoints here (pure: the managers are stood in for)."""

from __future__ import annotations

import subprocess

import pytest

from mptop.core import doctor_fix
from mptop.core.doctor_fix import EndpointOwner


@pytest.fixture
def host_with(monkeypatch: pytest.MonkeyPatch):
    def make(processes: set[str], nm_version: str | None = None, devices: dict[str, str] | None = None) -> None:
        monkeypatch.setattr(doctor_fix.host, "process_running", lambda name: name in processes)

        def nmcli(*args: str) -> str | None:
            if args == ("--version",):
                return nm_version
            if args[-3:-1] == ("device", "show"):
                return (devices or {}).get(args[-1])
            return None
        monkeypatch.setattr(doctor_fix, "_nmcli", nmcli)
    return make


def test_networkmanager_140_on_an_interface_it_manages(host_with) -> None:
    host_with({"NetworkManager"}, "nmcli tool, version 1.46.0", {"wwan0": "100 (connected)\nMy Phone's 5G\n",
                                                                "eth1": "10 (unmanaged)\n\n"})
    manager = EndpointOwner.detect()
    assert (manager.name, manager.nm) == ("NetworkManager", (1, 46))
    how, fix = manager.add_subflow_fix("wwan0", "198.51.100.2")
    assert fix == ("nmcli connection modify 'My Phone'\"'\"'s 5G' connection.mptcp-flags subflow "
                   "&& nmcli device reapply wwan0")
    assert "connection.mptcp-flags" in how
    # An interface NetworkManager leaves alone is fixed by hand.
    assert manager.add_subflow_fix("eth1", "203.0.113.2")[1] == "ip mptcp endpoint add 203.0.113.2 dev eth1 subflow"


def test_networkmanager_before_140_does_not_manage_endpoints(host_with) -> None:
    host_with({"NetworkManager"}, "nmcli tool, version 1.36.6", {"wwan0": "100 (connected)\nPhone\n"})
    manager = EndpointOwner.detect()
    assert (manager.name, manager.nm) == ("ip", (1, 36))
    assert manager.add_subflow_fix("wwan0", "198.51.100.2")[1] == "ip mptcp endpoint add 198.51.100.2 dev wwan0 subflow"


def test_mptcpd_is_configured_not_bypassed(host_with, tmp_path) -> None:
    """The configuration half of the fix runs, on a copy of a stock mptcpd.conf."""
    host_with({"mptcpd"})
    manager = EndpointOwner.detect()
    how, fix = manager.add_subflow_fix("wwan0", "198.51.100.2")
    assert manager.name == "mptcpd" and "addr-flags" in how
    edit, restart = fix.split(" && ")
    assert restart == "systemctl restart mptcpd"
    conf = tmp_path / "mptcpd.conf"
    conf.write_text("[core]\nlog=journal\n# addr-flags=fullmesh\nnotify-flags=existing,skip_loopback\n")
    subprocess.run(["sh", "-c", edit.replace(doctor_fix.MPTCPD_CONF, str(conf))], check=True)
    assert conf.read_text() == "[core]\naddr-flags=subflow\nlog=journal\nnotify-flags=existing,skip_loopback\n"
