"""The exporter's path counters during a real download: a link outage, a reset subflow."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Callable
from typing import Any

import pytest

from mptop.core.export import Exporter
from mptop.lab import Lab
from mptop.lab.netns import kill_quietly
from tests.support import run_as_nobody

pytestmark = pytest.mark.lab

WLAN, WWAN = 'interface="wlan0",link_type="wifi"', 'interface="wwan0",link_type="cellular"'
COUNTERS = [f"mptcp_path_{kind}_total{{{path}}}" for kind in ("received_bytes", "sent_bytes", "subflows_closed")
            for path in (WLAN, WWAN)]


def value(text: str, series: str) -> float:
    """The value of one series in a scrape (0 when absent)."""
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_a_link_outage_is_one_stall_and_a_reset_subflow_keeps_its_bytes(make_lab: Any) -> None:
    lab: Lab = make_lab(rate_mbit={"wlan0": 40, "wwan0": 10})
    download = lab.popen(lab.client, ["mptcpize", "run", "curl", "-s", "-o", "/dev/null", lab.url(300_000_000)],
                         stdout=subprocess.DEVNULL)
    exporter = Exporter()
    scrapes: list[str] = []

    def until(what: str, condition: Callable[[str], bool], timeout: float = 60.0) -> str:
        """Scrape (as Prometheus would, every 0.25 s) until ``condition`` holds for a scrape."""
        deadline = time.monotonic() + timeout
        while True:
            with lab.client.entered():
                scrapes.append(exporter.scrape())
            if condition(scrapes[-1]):
                return scrapes[-1]
            assert time.monotonic() < deadline, f"timed out waiting for {what}: {scrapes[-1]}"
            time.sleep(0.25)

    received_wlan, received_wwan = (f"mptcp_path_received_bytes_total{{{p}}}" for p in (WLAN, WWAN))
    stalls_wlan, closed_wwan = f"mptcp_path_stalls_total{{{WLAN}}}", f"mptcp_path_subflows_closed_total{{{WWAN}}}"
    try:
        until("both paths carrying", lambda t: value(t, received_wlan) > 1e6 and value(t, received_wwan) > 1e6)
        assert value(scrapes[-1], stalls_wlan) == 0
        lab.link_down("wlan0")
        stalled = until("a wlan0 stall", lambda t: value(t, stalls_wlan) > 0)
        assert value(stalled, stalls_wlan) == 1 and value(stalled, f"mptcp_path_up{{{WLAN}}}") == 0
        lab.link_up("wlan0")
        until("wlan0 moving again", lambda t: value(t, received_wlan) > value(stalled, received_wlan) + 1e6)
        assert lab.reset_subflows("wwan0") >= 1
        closed = until("the wwan0 subflow closed", lambda t: value(t, closed_wwan) > 0)
        until("wlan0 carrying on alone", lambda t: value(t, received_wlan) > value(closed, received_wlan) + 1e6)
        assert download.poll() is None, "the download ended early: make it larger"
    finally:
        exporter.close()
        kill_quietly(download)
    last = scrapes[-1]
    assert value(last, stalls_wlan) == 1                                   # one outage, one stall
    assert value(last, f'mptcp_subflows{{{WWAN},backup="false"}}') == 0
    assert value(last, received_wwan) >= value(closed, received_wwan) > 1e6  # its bytes stayed
    for series in COUNTERS:                                                 # never down, scrape after scrape
        values = [value(text, series) for text in scrapes]
        assert values == sorted(values), series


def test_unprivileged_a_scrape_works_and_says_events_are_not_counted(lab: Lab) -> None:
    def body() -> dict[str, str]:
        exporter = Exporter()

        async def scrape() -> tuple[bool, str]:
            async with exporter.events() as subscribed:
                return subscribed, exporter.scrape()

        try:
            subscribed, text = asyncio.run(scrape())
        finally:
            exporter.close()
        return {"subscribed": str(subscribed), "text": text}

    report = run_as_nobody(lab.client, body)
    assert report["subscribed"] == "False"
    text = report["text"]
    assert "mptcp_exporter_pm_events_subscribed 0\n" in text and "mptcp_exporter_scrape_success 1\n" in text
    assert "mptcp_pm_events_total{" not in text and "mptcp_enabled 1\n" in text


def test_an_endpoint_is_labelled_by_its_interface_before_any_subflow_used_it(make_lab: Any) -> None:
    lab: Lab = make_lab(client_endpoints="subflow")
    exporter = Exporter()
    try:
        with lab.client.entered():
            text = exporter.scrape()
    finally:
        exporter.close()
    assert 'mptcp_endpoints{interface="wwan0",flags="subflow"} 1\n' in text
    assert not [line for line in text.splitlines() if 'interface="other"' in line and not line.startswith("#")]

