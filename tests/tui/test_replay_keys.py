"""A replay shows another run, maybe another host: `e` (the live host's endpoints, changeable) is off."""

from __future__ import annotations

from mptop.tui.app import MptopApp
from mptop.tui.endpoints import EndpointsScreen
from mptop.tui.sources import ReplaySource
from tests.tui.pilot import HANDOVER, screen_text


async def test_e_does_not_open_the_endpoints_in_a_replay() -> None:
    app = MptopApp(ReplaySource(HANDOVER, speed=1.0), clock=False)
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.pause()
        assert "Endpoints" not in screen_text(app).splitlines()[-1]          # not in the footer
        await pilot.press("e")
        await pilot.pause()
        assert not isinstance(app.screen, EndpointsScreen)
        assert all("endpoint" not in text.lower() for _, text in app.key_help())
    live = MptopApp(clock=False)
    async with live.run_test(size=(120, 30)) as pilot:
        await pilot.pause()
        assert "Endpoints" in screen_text(live).splitlines()[-1]
        await pilot.press("e")
        await pilot.pause()
        assert isinstance(live.screen, EndpointsScreen)
