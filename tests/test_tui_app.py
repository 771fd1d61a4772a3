"""The app driven by Textual's Pilot, fed from the synthetic dev recording."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from make_dev_recording import make_records

from textual.binding import Binding
from textual.pilot import Pilot

from mptop.core.model import Record, Sample
from mptop.tui import format as fmt
from mptop.tui.app import MptopApp
from mptop.tui.help import HelpScreen
from mptop.tui.subflows import SubflowsTable
from mptop.tui.toplist import TopList

RECORDS = make_records()


def until(t: float) -> list[Record]:
    """The recording up to (and including) time ``t``."""
    out: list[Record] = []
    for record in RECORDS:
        if getattr(record, "t", 0.0) > t:
            break
        out.append(record)
    return out


def sample_at(t: float) -> Sample:
    return next(r for r in RECORDS if isinstance(r, Sample) and r.t == t)


def screen_text(app: MptopApp) -> str:
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


def widget_text(widget: object) -> str:
    region = widget.region  # type: ignore[attr-defined]
    lines = screen_text(widget.app).splitlines()[region.y: region.bottom]  # type: ignore[attr-defined]
    return "\n".join(line[region.x: region.right] for line in lines)


async def test_pause_freezes_the_panels_while_records_keep_coming() -> None:
    app = MptopApp(clock=False)
    async with app.run_test(size=(100, 30)) as pilot:
        for record in until(3.0):
            app.feed(record)
        await pilot.pause()
        top = app.query_one(TopList)
        rate3 = fmt.rate(sample_at(3.0).transfers[0].rate_bps)
        assert rate3 in widget_text(top)
        await pilot.press("p")
        for record in until(10.0)[len(until(3.0)):]:
            app.feed(record)
        await pilot.pause()
        assert app.state.now == 10.0                         # collected…
        assert rate3 in widget_text(top)                     # …but not shown:
        assert "#2" not in widget_text(top)                  # transfer 2 starts at 4 s
        assert "display paused" in screen_text(app)
        await pilot.press("u")                               # units switch the frozen frame
        assert fmt.rate(sample_at(3.0).transfers[0].rate_bps, "bytes") in widget_text(top)
        await pilot.press("u")
        await pilot.press("p")
        await pilot.pause()
        assert fmt.rate(sample_at(10.0).transfers[0].rate_bps) in widget_text(top)
        assert "#2 192.0.2.1:8080" in widget_text(top)
        assert "display paused" not in screen_text(app)


async def fed_app(pilot_app: MptopApp, t: float) -> None:
    for record in until(t):
        pilot_app.feed(record)


@asynccontextmanager
async def running(t: float | None = None, size: tuple[int, int] = (100, 30)) -> AsyncIterator[tuple[MptopApp, Pilot]]:
    """A clockless app of ``size``, fed the recording up to ``t`` and settled."""
    app = MptopApp(clock=False)
    async with app.run_test(size=size) as pilot:
        if t is not None:
            await fed_app(app, t)
            await pilot.pause()
        yield app, pilot


async def test_u_switches_units_in_the_rendered_cells() -> None:
    async with running(10.0) as (app, pilot):
        table = app.query_one(SubflowsTable)
        wifi = sample_at(10.0).transfers[0].subflows[0]
        assert fmt.rate(wifi.rate_bps, "bits") in widget_text(table)
        await pilot.press("u")
        text = widget_text(table)
        assert fmt.rate(wifi.rate_bps, "bytes") in text and "bit/s" not in text
        assert "bit/s" not in widget_text(app.query_one(TopList))
        assert table.get_cell("t1:1", "rate").plain == fmt.rate(wifi.rate_bps, "bytes")
        await pilot.press("u")
        assert fmt.rate(wifi.rate_bps, "bits") in widget_text(table)


async def test_selecting_a_transfer_switches_the_subflows_table() -> None:
    async with running(10.0) as (app, pilot):
        table = app.query_one(SubflowsTable)
        panel = app.query_one("#subflows-panel")
        assert [row.key.value for row in table.ordered_rows] == ["t1:1", "t1:2"]
        assert panel.border_title == "Subflows of #1"
        await pilot.press("down")
        assert [row.key.value for row in table.ordered_rows] == ["t2:1"]
        assert "TCP fallback — server does not speak MPTCP" in str(panel.border_title)
        assert "192.0.2.1:8080" in widget_text(table) and "plain TCP" in widget_text(table)
        await pilot.press("up")
        assert [row.key.value for row in table.ordered_rows] == ["t1:1", "t1:2"]
        # the mouse: a click on the second card's first line
        top = app.query_one(TopList)
        await pilot.click(TopList, offset=(10, 2))
        assert top.selected_id == "t2"
        assert [row.key.value for row in table.ordered_rows] == ["t2:1"]


async def test_keyed_updates_keep_rows_and_scroll() -> None:
    async with running(10.0) as (app, pilot):
        table = app.query_one(SubflowsTable)
        rows_before = dict(table.rows)
        app.feed(sample_at(10.25))
        await pilot.pause()
        assert dict(table.rows) == rows_before                 # same row objects: updated, not rebuilt
        assert table.get_cell("t1:1", "rate").plain == fmt.rate(sample_at(10.25).transfers[0].subflows[0].rate_bps)


async def test_help_screen_lists_the_keys() -> None:
    async with running() as (app, pilot):
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        text = screen_text(app)
        for key, words in (("q", "quit"), ("p", "pause or resume the display"), ("u", "rates in bits or in bytes"),
                           ("↑↓", "select a transfer"), ("ctrl\\+p", "command palette"), ("\\?", "this help")):
            assert re.search(rf"{key}\s+{words}", text), (key, words)
        assert "replay" not in text                        # no replay source: no space key
        await fed_app(app, 10.0)                           # data keeps flowing under the help screen
        await pilot.pause()
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)
        assert "#2 192.0.2.1:8080" in widget_text(app.query_one(TopList))


async def test_q_quits() -> None:
    app = MptopApp(clock=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("q")
        await pilot.pause()
        assert app._exit                                        # Textual's exit flag
    assert app.return_code == 0


async def test_a_burst_of_samples_renders_a_few_frames_showing_the_latest() -> None:
    async with running(1.0) as (app, pilot):
        before = app.frames
        burst = [r for r in RECORDS if isinstance(r, Sample) and 1.0 < r.t <= 26.0]
        assert len(burst) == 100
        for record in burst:                 # all queued before the app gets to run
            app.feed(record)
        await pilot.pause()
        assert app.state.now == 26.0 and len(app.state.history["wlan0"].points) == 4 + 100   # every sample ingested
        assert app.frames - before <= 3
        last = burst[-1].transfers[0]
        assert fmt.rate(last.rate_bps) in widget_text(app.query_one(TopList))


async def test_no_color_is_respected(monkeypatch: pytest.MonkeyPatch) -> None:
    # the screenshot's window buttons and its default text colour are not the app's
    chrome = {"ff5f57", "febc2e", "28c840", "c5c8c6"}

    def colours(svg: str) -> set[tuple[int, ...]]:
        found = {h.lower() for h in re.findall(r"#([0-9a-fA-F]{6})\b", svg)} - chrome
        return {tuple(int(h[i:i + 2], 16) for i in (0, 2, 4)) for h in found}

    async def shot() -> str:
        async with running(10.0) as (app, _):
            return app.export_screenshot()

    monkeypatch.delenv("NO_COLOR", raising=False)
    assert any(len(set(c)) > 1 for c in colours(await shot()))           # colourful by default
    monkeypatch.setenv("NO_COLOR", "1")
    assert all(len(set(c)) == 1 for c in colours(await shot()))          # only greys with NO_COLOR


async def test_command_palette_has_mptop_commands() -> None:
    async with running(10.0) as (app, pilot):
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"rates in bytes")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await pilot.pause()
        assert app.units == "bytes"
        await pilot.press("ctrl+p", *"select #2")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await pilot.pause()
        assert app.query_one(TopList).selected_id == "t2"


async def test_a_subclass_adds_keys_to_footer_and_help() -> None:
    """How `mptop demo` adds its scenario keys: BINDINGS and actions on a subclass."""
    class DemoApp(MptopApp):
        BINDINGS = [Binding("w", "wifi", "Wi-Fi", tooltip="take the Wi-Fi link down for 5 s")]
        pressed = 0

        def action_wifi(self) -> None:
            self.pressed += 1

    app = DemoApp(clock=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        assert "w Wi-Fi" in screen_text(app).splitlines()[-1]
        await pilot.press("w")
        assert app.pressed == 1
        await pilot.press("question_mark")
        assert re.search(r"w\s+take the Wi-Fi link down for 5 s", screen_text(app))
