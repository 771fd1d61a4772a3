"""The demo's keys over a live lab: what a key did is logged as the user's action, before its effects;
`r` puts back the client endpoints and limits the Endpoints screen (`e`) changed."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest

from mptop.core.endpoints import EndpointManager
from mptop.core.model import Event, Record
from mptop.core.session import Session
from mptop.core.transfer import TransferOptions
from mptop.demo.app import DemoApp
from mptop.demo.player import ScenarioPlayer
from mptop.demo.run import LABELS, demo_url, play
from mptop.demo.scenario import load
from tests.demo.test_tui_lab import link_is_up, wait_until

pytestmark = pytest.mark.lab


@contextlib.contextmanager
def recorded_demo(make_lab: Any, **lab: Any) -> Iterator[tuple[Any, ScenarioPlayer, DemoApp, list[Record]]]:
    """The aggregate demo (its script changes nothing before 10 s) and every record it streamed."""
    scenario = load("aggregate")
    lab_ = make_lab(rate_mbit=dict(scenario.rate_mbit), **lab)
    player = ScenarioPlayer(lab_, scenario)
    player.setup()
    records: list[Record] = []

    def runner(feed: Any) -> Any:
        def both(record: Record) -> None:
            records.append(record)
            feed(record)
        return play(session, player, both, None)

    with lab_.client.entered():
        session = Session([demo_url(lab_, scenario)], TransferOptions(output="/dev/null"), labels=LABELS)
        yield lab_, player, DemoApp(scenario, player, runner=runner, clock=False), records


def events(records: list[Record]) -> list[Event]:
    return [r for r in records if isinstance(r, Event)]


async def test_a_key_is_logged_as_the_users_action_before_what_it_caused(make_lab: Any) -> None:
    with recorded_demo(make_lab) as (lab, _player, app, records):
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_until(lambda: app.state.sample is not None
                             and app.state.sample.transfers[0].status == "mptcp", 20)
            await pilot.press("w")
            await wait_until(lambda: not link_is_up(lab, "wlan0"))
            await wait_until(lambda: any(e.kind == "link_down" and e.iface == "wlan0" for e in events(records)), 20)
            log = events(records)
            cause = next(i for i, e in enumerate(log) if e.kind == "user_action" and e.detail == "Wi-Fi: link down")
            effect = next(i for i, e in enumerate(log) if e.kind == "link_down" and e.iface == "wlan0")
            assert cause < effect and log[cause].t <= log[effect].t
            assert not any(e.kind == "scenario" for e in log)           # the script played nothing
            lines = [entry.text for entry in app.state.story.entries]
            assert "you · Wi-Fi: link down" in lines and not any(line.startswith("scenario") for line in lines)
            await pilot.press("q")


async def test_r_puts_back_endpoints_and_limits_changed_with_e(make_lab: Any) -> None:
    with recorded_demo(make_lab, client_endpoints="subflow") as (lab, player, app, _records):
        start = lab.endpoint_config("client")
        assert player.endpoints == start and len(start.endpoints) == 1
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_until(lambda: app.state.sample is not None, 20)
            manager = EndpointManager()                     # what the Endpoints screen (e) changes with
            (id_, *_), = start.endpoints
            manager.plan_delete(id_).apply()
            manager.plan_add("192.0.2.2", "wlan0", ["subflow"]).apply()
            manager.plan_limits(subflows=2, add_addr_accepted=1).apply()
            assert lab.endpoint_config("client") != start
            await pilot.press("r")
            await wait_until(lambda: lab.endpoint_config("client") == start, 10)
            assert player.scripted
            await pilot.press("q")
