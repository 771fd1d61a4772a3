"""The demo's keys act on the lab for real (Pilot-driven DemoApp over a live lab)."""

from __future__ import annotations

import asyncio
import contextlib
import json

import pytest

from mptop.core.session import Session
from mptop.core.transfer import TransferOptions
from mptop.demo.app import DemoApp
from mptop.demo.player import ScenarioPlayer
from mptop.demo.run import LABELS, demo_url, play
from mptop.demo.scenario import load

pytestmark = pytest.mark.lab


def link_is_up(lab, iface: str) -> bool:
    info = json.loads(lab.run(lab.client, ["ip", "-j", "link", "show", iface]).stdout)[0]
    return "UP" in info["flags"]


def server_backup_flags(lab) -> list[bool]:
    endpoints = json.loads(lab.run(lab.server, ["ip", "-j", "mptcp", "endpoint", "show"]).stdout)
    return [bool(e.get("backup")) for e in endpoints if e["address"] == "198.51.100.1"]


async def wait_until(predicate, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.1)


@contextlib.contextmanager
def demo_app(make_lab, name: str = "aggregate"):   # aggregate's script changes nothing before 10 s
    """(lab, player, DemoApp) of scenario ``name``, this thread in the lab's client netns."""
    scenario = load(name)
    lab = make_lab(rate_mbit=dict(scenario.rate_mbit))
    player = ScenarioPlayer(lab, scenario)
    with lab.client.entered():
        session = Session([demo_url(lab, scenario)], TransferOptions(output="/dev/null"), labels=LABELS)
        yield lab, player, DemoApp(scenario, player, runner=lambda feed: play(session, player, feed, None),
                                    clock=False)


async def test_keys_toggle_wifi_cellular_backup_and_restore(make_lab):
    with demo_app(make_lab) as (lab, player, app):
        async with app.run_test(size=(100, 32)) as pilot:
            await wait_until(lambda: app.state.sample is not None
                             and app.state.sample.transfers[0].status == "mptcp", 10)
            await pilot.press("w")
            await wait_until(lambda: not link_is_up(lab, "wlan0"))
            assert not player.scripted          # manual control pauses the script
            await pilot.press("c")
            await wait_until(lambda: not link_is_up(lab, "wwan0"))
            await pilot.press("b")
            await wait_until(lambda: server_backup_flags(lab) == [True])
            await pilot.press("r")
            await wait_until(lambda: link_is_up(lab, "wlan0") and link_is_up(lab, "wwan0"))
            await wait_until(lambda: server_backup_flags(lab) == [False])
            assert player.scripted
            await pilot.press("q")


async def test_an_80_column_footer_shows_the_demo_keys_and_help_lists_the_rest(make_lab):
    from textual.widgets._footer import FooterKey

    with demo_app(make_lab) as (_lab, _player, app):
        async with app.run_test(size=(80, 24)) as pilot:
            width = app.screen.size.width

            def whole() -> set[str]:     # the keys the footer shows whole (it recomposes as focus settles)
                return {k.key for k in app.screen.query(FooterKey) if 0 < k.region.right <= width}
            await wait_until(lambda: {"w", "c", "b", "r"} <= whole(), 10)
            shown = {k.key for k in app.screen.query(FooterKey)}
            assert "p" not in shown and "u" not in shown          # bound all the same:
            help_keys = [key for key, _ in app.key_help()]
            assert {"w", "c", "b", "r", "p", "u", "q", "?"} <= set(help_keys)
            await pilot.press("p")
            assert app.frozen is not None
            await pilot.press("q")
