"""The host record read inside a lab's client namespace, against what ``ip`` and ``sysctl`` say there."""

from __future__ import annotations

import os
from datetime import datetime, timezone

import pytest

from mptop import __version__
from mptop.core.hostinfo import read_host_info, wall_clock_now
from mptop.core.model import record_from_json, to_json
from mptop.lab import Lab

pytestmark = pytest.mark.lab


def test_the_host_record_is_the_namespaces_own(lab: Lab) -> None:
    ns = lab.client
    lab.run(ns, ["ip", "mptcp", "limits", "set", "subflows", "3", "add_addr_accepted", "5"])
    words = lab.run(ns, ["ip", "mptcp", "limits", "show"]).stdout.split()
    limits = dict(zip(words[::2], map(int, words[1::2]), strict=True))
    links = lab.run(ns, ["ip", "-o", "link", "show"]).stdout
    names = {line.split(": ")[1].split("@")[0] for line in links.splitlines()} - {"lo"}
    enabled = lab.run(ns, ["sysctl", "-n", "net.mptcp.enabled"]).stdout.strip()

    started = wall_clock_now()
    with ns.entered():
        host = read_host_info({"wlan0": "Home"}, "inferred", started)

    assert (host.subflows_limit, host.add_addr_accepted_limit) == (limits["subflows"], limits["add_addr_accepted"])
    assert (host.subflows_limit, host.add_addr_accepted_limit) == (3, 5)
    assert host.enabled is (enabled == "1") and host.kernel == os.uname().release
    assert set(host.labels) == names == set(host.link_types) and {"wlan0", "wwan0"} <= names
    assert host.labels["wlan0"] == "Home" and host.labels["wwan0"] == "Cellular"   # given, else by kind
    assert host.events == "inferred" and host.started == started and host.version == __version__
    assert abs((datetime.now(timezone.utc) - datetime.fromisoformat(started)).total_seconds()) < 5
    assert record_from_json(to_json(host)) == host
