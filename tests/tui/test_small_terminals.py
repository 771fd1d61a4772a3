"""Every size from 60×20 up is usable and anything smaller says so; notifications stay off the Events
panel, the footer and the help.  Before: no "too small" message, 60-column demo footers lost q and ?,
toasts sat over the events (12-15 s) and over the help."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from textual.widgets._footer import FooterKey
from textual.widgets._toast import Toast

from mptop.core import moments
from mptop.demo.app import DemoApp
from mptop.demo.scenario import load
from mptop.tui.app import MptopApp
from mptop.tui.eventlog import EventLog
from mptop.tui.help import HelpScreen
from mptop.tui.too_small import TooSmallScreen
from tests.tui.pilot import HANDOVER, feed, screen_text, wait_for

SIZES = [(60, 20), (80, 24), (120, 40), (200, 55)]


@pytest.mark.parametrize("size", [(59, 20), (60, 19), (40, 12)])
async def test_below_60x20_one_message_says_so(size: tuple[int, int]) -> None:
    app = MptopApp(clock=False)
    async with app.run_test(size=size, notifications=True) as pilot:
        await wait_for(pilot, lambda: "terminal too small (need 60×20)" in screen_text(app))
        assert isinstance(app.screen, TooSmallScreen)
        await pilot.resize_terminal(60, 20)
        await wait_for(pilot, lambda: app.screen is app.main)
        assert "too small" not in screen_text(app)
        await pilot.resize_terminal(*size)
        await wait_for(pilot, lambda: isinstance(app.screen, TooSmallScreen))
        await pilot.press("q")
        assert app._exit


@pytest.mark.parametrize("size", SIZES)
async def test_from_60x20_up_notifications_stay_off_the_events_and_footer(size: tuple[int, int]) -> None:
    app = MptopApp(clock=False)
    async with app.run_test(size=size, notifications=True) as pilot:
        await feed(pilot, moments.until(HANDOVER, moments.stalled(HANDOVER)))
        assert not isinstance(app.screen, TooSmallScreen)
        app.notify("a long notification " * 8, title="something happened", timeout=30)
        await wait_for(pilot, lambda: bool(app.screen.query(Toast)))
        toasts = [toast.region for toast in app.screen.query(Toast)]
        assert toasts
        events = app.query_one(EventLog).region
        footer_y = size[1] - 1
        for toast in toasts:
            assert not toast.overlaps(events), (toast, events)
            assert toast.bottom <= footer_y
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen) and not list(app.screen.query(Toast))


def demo_app() -> DemoApp:
    """The demo's app without a lab: its keys' actions are not pressed here."""
    player = SimpleNamespace(scenario=load("handover"), scripted=True)
    return DemoApp(player.scenario, player, clock=False)  # type: ignore[arg-type]


def footer_keys(app: DemoApp, width: int) -> set[str]:
    """The keys the footer shows whole."""
    return {key.key for key in app.screen.query(FooterKey) if 0 < key.region.right <= width}


@pytest.mark.parametrize("size", SIZES)
async def test_the_demo_footer_keeps_quit_help_and_the_demo_keys(size: tuple[int, int]) -> None:
    app = demo_app()
    async with app.run_test(size=size, notifications=True) as pilot:
        await wait_for(pilot, lambda: bool(app.screen.query(Toast)) and "q" in footer_keys(app, size[0]))
        shown = footer_keys(app, size[0])
        assert {"q", "question_mark", "w", "c", "b", "r"} <= shown, shown
        toasts = [toast.region for toast in app.screen.query(Toast)]
        assert toasts and not any(t.overlaps(app.query_one(EventLog).region) for t in toasts)
