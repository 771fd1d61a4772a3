"""Path-manager endpoints and limits against the real kernel, compared with iproute2's view."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable
from typing import Any

import pytest

from mptop.kernel import pm
from mptop.kernel.pm import PathManagerError
from mptop.kernel.pm_events import PmEvents
from mptop.kernel.types import Endpoint, EndpointFlag, Limits, NeedsNetAdmin
from mptop.lab import Lab, Namespace
from tests.support import run_as_nobody

pytestmark = pytest.mark.lab

FLAG_WORDS = {"signal": EndpointFlag.SIGNAL, "subflow": EndpointFlag.SUBFLOW, "backup": EndpointFlag.BACKUP,
              "fullmesh": EndpointFlag.FULLMESH, "implicit": EndpointFlag.IMPLICIT, "laminar": EndpointFlag.LAMINAR}


def ip_endpoints(lab: Lab, ns: Namespace) -> dict[int, dict[str, Any]]:
    """`ip -j mptcp endpoint show`, by id, as (address, flags, dev, port)."""
    shown = json.loads(lab.run(ns, ["ip", "-j", "mptcp", "endpoint", "show"]).stdout or "[]")
    return {e["id"]: {"address": e["address"], "dev": e.get("dev"), "port": e.get("port", 0),
                      "flags": EndpointFlag(sum(int(FLAG_WORDS[w]) for w in FLAG_WORDS if e.get(w)))}
            for e in shown}


def as_ip_shows(endpoints: list[Endpoint]) -> dict[int, dict[str, Any]]:
    return {e.id: {"address": e.address, "dev": e.ifname, "port": e.port, "flags": e.flags} for e in endpoints}


def ip_limits(lab: Lab, ns: Namespace) -> Limits:
    words = lab.run(ns, ["ip", "mptcp", "limits", "show"]).stdout.split()   # "add_addr_accepted 8 subflows 8"
    values = dict(zip(words[::2], map(int, words[1::2]), strict=True))
    return Limits(subflows=values["subflows"], add_addr_accepted=values["add_addr_accepted"])


def test_endpoints_written_here_are_what_ip_shows(lab: Lab) -> None:
    wlan, wwan = lab.paths
    with lab.client.entered():
        pm.add_endpoint(wwan.client_addr, flags=EndpointFlag.SUBFLOW, ifname=wwan.iface, id=5)
        pm.add_endpoint(wlan.client_addr, flags=EndpointFlag.SIGNAL, port=8443)
        assert as_ip_shows(pm.list_endpoints()) == ip_endpoints(lab, lab.client)
        assert ip_endpoints(lab, lab.client)[5] == {"address": wwan.client_addr, "dev": wwan.iface, "port": 0,
                                                    "flags": EndpointFlag.SUBFLOW}

        steps: list[tuple[dict[str, bool], EndpointFlag]] = [
            ({"backup": True}, EndpointFlag.SUBFLOW | EndpointFlag.BACKUP),
            ({"fullmesh": True}, EndpointFlag.SUBFLOW | EndpointFlag.BACKUP | EndpointFlag.FULLMESH),
            ({"backup": False}, EndpointFlag.SUBFLOW | EndpointFlag.FULLMESH),   # fullmesh kept
            ({"backup": True, "fullmesh": False}, EndpointFlag.SUBFLOW | EndpointFlag.BACKUP),
        ]
        for change, flags in steps:
            pm.set_endpoint_flags(5, **change)
            assert ip_endpoints(lab, lab.client)[5]["flags"] == flags, change
            assert pm.get_endpoint(5).flags == flags

        pm.delete_endpoint(5)
        assert 5 not in ip_endpoints(lab, lab.client)
        assert [e.address for e in pm.list_endpoints()] == [wlan.client_addr]
        pm.flush_endpoints()
        assert ip_endpoints(lab, lab.client) == {} == as_ip_shows(pm.list_endpoints())


def test_endpoints_written_by_ip_are_read_here(lab: Lab) -> None:
    _, wwan = lab.paths
    lab.run(lab.client, ["ip", "mptcp", "endpoint", "add", wwan.client_addr, "dev", wwan.iface,
                         "id", "9", "subflow", "backup"])
    lab.run(lab.client, ["ip", "mptcp", "endpoint", "add", "2001:db8::2", "id", "10", "subflow", "fullmesh"])
    with lab.client.entered():
        endpoints = pm.list_endpoints()
        wwan_index = socket.if_nametoindex(wwan.iface)
    assert as_ip_shows(endpoints) == ip_endpoints(lab, lab.client)
    assert endpoints[0] == Endpoint(9, wwan.client_addr, EndpointFlag.SUBFLOW | EndpointFlag.BACKUP,
                                    ifindex=wwan_index, ifname=wwan.iface)
    assert endpoints[1] == Endpoint(10, "2001:db8::2", EndpointFlag.SUBFLOW | EndpointFlag.FULLMESH)
    # Each namespace has its own endpoints, and names resolve there (srv-wwan0 exists only there).
    with lab.server.entered():
        server = pm.list_endpoints()
    assert as_ip_shows(server) == ip_endpoints(lab, lab.server)
    assert [(e.address, e.ifname) for e in server] == [(wwan.server_addr, wwan.server_iface)]


def test_limits_match_ip(lab: Lab) -> None:
    with lab.client.entered():
        assert pm.get_limits() == ip_limits(lab, lab.client)
        before = pm.get_limits()
        pm.set_limits(subflows=3)
        assert ip_limits(lab, lab.client) == Limits(3, before.add_addr_accepted)   # the other one kept
        lab.run(lab.client, ["ip", "mptcp", "limits", "set", "add_addr_accepted", "1"])
        assert pm.get_limits() == Limits(3, 1)
        pm.set_limits(subflows=0, add_addr_accepted=4)
        assert ip_limits(lab, lab.client) == Limits(0, 4) == pm.get_limits()
    assert ip_limits(lab, lab.server) == Limits(lab.config.subflow_limit, lab.config.add_addr_accepted_limit)


@pytest.mark.parametrize("call, what", [
    (lambda: pm.delete_endpoint(77), "deleting MPTCP endpoint 77"),
    (lambda: pm.set_endpoint_flags(77, backup=True), "MPTCP endpoint 77"),
    (lambda: pm.set_limits(subflows=99), "setting MPTCP limits"),
    (lambda: pm.add_endpoint("192.0.2.2", flags=EndpointFlag.SUBFLOW, ifname="eth9"), "no interface 'eth9'"),
    (lambda: pm.add_endpoint("not-an-ip", flags=EndpointFlag.SUBFLOW), "not an IP address"),
])
def test_refusals_are_one_line_typed_errors(lab: Lab, call: Callable[[], None], what: str) -> None:
    with lab.client.entered(), pytest.raises(PathManagerError) as info:
        call()
    assert what in str(info.value) and "\n" not in str(info.value)


def test_duplicate_endpoint_is_refused_with_the_kernel_reason(lab: Lab) -> None:
    with lab.client.entered():
        pm.add_endpoint(lab.paths[0].client_addr, flags=EndpointFlag.SUBFLOW)
        with pytest.raises(PathManagerError) as info:
            pm.add_endpoint(lab.paths[0].client_addr, flags=EndpointFlag.SUBFLOW)
    assert info.value.errno == 17 and "duplicate" in str(info.value)   # EEXIST, extack text from the kernel


async def test_works_inside_a_running_event_loop(lab: Lab) -> None:
    # pyroute2's sync API refuses to run inside a running loop; ours must not care.
    with lab.server.entered():
        assert [e.id for e in pm.list_endpoints()] == list(ip_endpoints(lab, lab.server))
        assert pm.get_limits() == ip_limits(lab, lab.server)


def outcome(call: Callable[[], object]) -> str:
    try:
        return repr(call())
    except Exception as e:   # reported to the parent by type and message
        return f"{type(e).__name__}: {e}"


def test_unprivileged_reads_work_writes_and_events_need_net_admin(lab: Lab) -> None:
    lab.run(lab.client, ["ip", "mptcp", "endpoint", "add", lab.paths[1].client_addr, "id", "3", "subflow"])
    results = run_as_nobody(lab.client, lambda: {
        "uid": str(os.getuid()),
        "endpoints": outcome(pm.list_endpoints),
        "limits": outcome(pm.get_limits),
        "events": outcome(PmEvents),
        "set_limits": outcome(lambda: pm.set_limits(subflows=1)),
        "add": outcome(lambda: pm.add_endpoint("192.0.2.2", flags=EndpointFlag.SUBFLOW)),
        "change": outcome(lambda: pm.set_endpoint_flags(3, backup=True)),
    })
    with lab.client.entered():
        assert results["endpoints"] == repr(pm.list_endpoints())
        assert results["limits"] == repr(pm.get_limits())
    assert results["uid"] == "65534"
    for key in ("events", "set_limits", "add", "change"):
        assert results[key].startswith(f"{NeedsNetAdmin.__name__}: "), (key, results[key])
        assert "CAP_NET_ADMIN" in results[key]
    # nothing was changed
    assert ip_limits(lab, lab.client) == Limits(lab.config.subflow_limit, lab.config.add_addr_accepted_limit)
    assert [e["flags"] for e in ip_endpoints(lab, lab.client).values()] == [EndpointFlag.SUBFLOW]
