"""Ctrl-C quits the app (Textual's default only says "press ctrl+q"), on every screen."""

from __future__ import annotations

import pytest

from mptop.tui.app import MptopApp


@pytest.mark.parametrize("screen_key", [None, "question_mark", "e"])
async def test_ctrl_c_quits(screen_key: str | None) -> None:
    app = MptopApp(clock=False)
    async with app.run_test(size=(80, 24)) as pilot:
        if screen_key:
            await pilot.press(screen_key)
            await pilot.pause()
            assert app.screen is not app.main
        await pilot.press("ctrl+c")
        await pilot.pause()
        assert app._exit                                        # Textual's exit flag
    assert app.return_code == 0
