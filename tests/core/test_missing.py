"""MissingSubflows: a path that is up, has an endpoint, and lost the subflow its connection had (pure)."""

from __future__ import annotations

from mptop.core.missing import MissingSubflows, describe_missing, for_tui, subflow_endpoints
from mptop.kernel.types import Endpoint, EndpointFlag

UP = {"wlan0": True, "wwan0": True}
BOTH = {"wlan0", "wwan0"}


def test_reported_once_after_the_grace_and_flagged_until_back() -> None:
    m = MissingSubflows(after_s=0.75)
    assert m.observe(0.0, {1: BOTH}, UP, BOTH) == []
    assert m.observe(0.25, {1: {"wlan0"}}, UP, BOTH) == []           # the subflow just went
    assert m.observe(0.75, {1: {"wlan0"}}, UP, BOTH) == []           # within the grace
    assert m.observe(1.0, {1: {"wlan0"}}, UP, BOTH) == [("wwan0", 0.25)]
    assert m.observe(5.0, {1: {"wlan0"}}, UP, BOTH) == [] and m.missing == {"wwan0": 0.25}
    assert m.observe(5.25, {1: BOTH}, UP, BOTH) == [] and m.missing == {}    # a subflow is back


def test_not_judged_without_link_endpoint_or_a_subflow_it_ever_had() -> None:
    m = MissingSubflows(after_s=0.5)
    m.observe(0.0, {1: BOTH, 2: {"wlan0"}}, UP, BOTH)
    down = {"wlan0": True, "wwan0": False}
    assert m.observe(1.0, {1: {"wlan0"}, 2: {"wlan0"}}, down, BOTH) == []    # link down: not missing
    assert m.observe(2.0, {1: {"wlan0"}, 2: {"wlan0"}}, down, BOTH) == []
    # Link back at 3 s: the gap counts from then; connection 2 never had wwan0 and is not judged.
    assert m.observe(3.0, {1: {"wlan0"}, 2: {"wlan0"}}, UP, BOTH) == []
    assert m.observe(3.5, {1: {"wlan0"}, 2: {"wlan0"}}, UP, BOTH) == [("wwan0", 3.0)]
    assert m.observe(4.0, {1: {"wlan0"}}, UP, {"wlan0"}) == [] and m.missing == {}   # endpoint deleted
    assert m.observe(5.0, {}, UP, BOTH) == [] and m.missing == {}                     # connection ended
    assert m.observe(6.0, {1: {"wlan0"}}, UP, BOTH) == []     # a new connection (same key) starts afresh
    assert not m.candidates({1: {"wlan0"}}) and m.candidates({1: set()})


def test_endpoint_interfaces_and_the_message() -> None:
    """Only `subflow` endpoints count: an implicit one outlives the server's RM_ADDR on purpose."""
    eps = [Endpoint(1, "198.51.100.2", EndpointFlag.IMPLICIT, 0, None),
           Endpoint(2, "192.0.2.2", EndpointFlag.SUBFLOW, 3, "wlan0"),
           Endpoint(3, "203.0.113.2", EndpointFlag.SUBFLOW | EndpointFlag.BACKUP, 0, None)]
    names = {"198.51.100.2": "wwan0", "203.0.113.2": "eth1"}
    assert subflow_endpoints(eps, names.__getitem__) == {"wlan0": eps[1], "eth1": eps[2]}
    detail = describe_missing("Cellular", 12.3, "ip mptcp endpoint delete id 2 && ip mptcp endpoint add …")
    assert detail == \
        "Cellular: no subflow since 12 s — re-add endpoint? (ip mptcp endpoint delete id 2 && ip mptcp endpoint add …)"
    assert for_tui(detail) == "Cellular: no subflow since 12 s — re-add endpoint? (press e: Endpoints)"
