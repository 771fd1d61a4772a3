"""Every theme Textual offers renders every screen (main, watch, endpoints, help), and a display that
crashes makes the command exit non-zero.

Textual's ansi-* themes name their colours ``ansi_default``, ``ansi_green``…, which Rich cannot parse: a
view that handed theme variables to ``rich.style.Style.parse`` crashed the app when one was chosen.
"""

from __future__ import annotations

import pytest

from mptop.core import moments
from mptop.tui.app import MptopApp, run_app
from mptop.tui.endpoints import EndpointsScreen
from mptop.tui.help import HelpScreen
from tests.tui.pilot import TWO, feed, screen_text
from tests.tui.test_app import both_running
from tests.tui.test_watch import BUSY, WATCH


@pytest.mark.parametrize("mode", ["transfers", "watch"])
async def test_every_offered_theme_renders_every_screen(mode: str) -> None:
    records = moments.until(WATCH, BUSY.t) if mode == "watch" else moments.until(TWO, both_running().t)
    app = MptopApp(mode=mode, clock=False)      # type: ignore[arg-type]
    async with app.run_test(size=(100, 30)) as pilot:
        await feed(pilot, records)
        themes = sorted(app.available_themes)
        assert {"ansi-dark", "ansi-light", "textual-dark"} <= set(themes)
        for theme in themes:                    # the main screen: each theme redraws it
            app.theme = theme
            await pilot.pause()
            drawn = app.frames
            app.redraw()
            assert app.frames == drawn + 1, theme
            assert app.is_running and app.return_code is None, theme
            assert "mptop" in screen_text(app), theme
        # Each other screen opened once and drawn in every theme in turn (opening it per theme took 3 times as
        # long, and a theme's colours reach a screen's views the same way: by the switch that restyles them).
        for key, screen in (("question_mark", HelpScreen), ("e", EndpointsScreen)):
            await pilot.press(key)
            await pilot.pause()
            assert isinstance(app.screen, screen), key
            for theme in themes:
                app.theme = theme
                await pilot.pause()
                assert app.is_running and app.return_code is None, (theme, key)
                assert isinstance(app.screen, screen) and screen_text(app).strip(), (theme, key)
            await pilot.press("escape")
            await pilot.pause()
            assert not isinstance(app.screen, screen), key


class Quitting(MptopApp):
    """Quits (q) once it has drawn, or crashes there."""

    def __init__(self, crash: bool) -> None:
        super().__init__(clock=False)
        self.crash = crash

    def on_mount(self) -> None:
        super().on_mount()
        self.call_after_refresh(self.quit_or_crash)

    def quit_or_crash(self) -> None:
        if self.crash:
            raise RuntimeError("a bug in a view")
        self.exit()


def test_a_display_that_crashes_exits_non_zero(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_app(Quitting(crash=True), headless=True) == 1
    assert "mptop: the display stopped on an error" in capsys.readouterr().err
    assert run_app(Quitting(crash=False), headless=True) == 0
