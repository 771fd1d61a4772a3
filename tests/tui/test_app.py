"""The app driven by Textual's Pilot, fed real recordings from assets/ (made by assets/record.py).

Moments are found by what happens in a recording (the first sample in which both transfers move
data, the first stall), and what the screen should say is computed from that moment's records with
the same formatting functions the views use.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from itertools import pairwise

import pytest
from textual.binding import Binding
from textual.command import CommandList, CommandPalette
from textual.pilot import Pilot

from mptop.core import moments
from mptop.core.model import Record, Sample, TransferSample
from mptop.tui import format as fmt
from mptop.tui.app import MptopApp
from mptop.tui.eventlog import EventLog
from mptop.tui.help import HelpScreen
from mptop.tui.paths import PathsView
from mptop.tui.subflows import SubflowsTable
from mptop.tui.toplist import TopList
from tests.tui.pilot import TWO, feed, screen_text, wait_for, widget_text, without_scheme


def status_of(sample: Sample, status: str) -> TransferSample:
    return next(t for t in sample.transfers if t.status == status)


def both_running(records: Sequence[Record] = TWO) -> Sample:
    """The first sample in which every transfer is running and every one of their subflows moves data."""
    return next(s for s in moments.samples(records)
                if len(s.transfers) >= 2
                and all(t.state == "running" and t.subflows and all(f.rate_bps > 0 for f in t.subflows)
                        for t in s.transfers))


def first_sample_from(t: float, records: Sequence[Record] = TWO) -> Sample:
    return next(s for s in moments.samples(records) if s.t >= t)


def after(start: float, end: float, records: Sequence[Record] = TWO) -> list[Record]:
    """The records after time ``start`` up to and including ``end``."""
    return moments.until(records, end)[len(moments.until(records, start)):]


@asynccontextmanager
async def running(t: float | None = None, size: tuple[int, int] = (100, 30),
                  records: Sequence[Record] = TWO) -> AsyncIterator[tuple[MptopApp, Pilot]]:
    """A clockless app of ``size``, fed ``records`` up to ``t`` and settled."""
    app = MptopApp(clock=False)
    async with app.run_test(size=size) as pilot:
        if t is not None:
            await feed(pilot, moments.until(records, t))
        yield app, pilot


async def test_pause_freezes_the_panels_while_records_keep_coming() -> None:
    start = both_running()
    stall = moments.first_event(TWO, "path_stalled")
    later = first_sample_from(stall.t)
    async with running(start.t) as (app, pilot):
        panels = [app.query_one(kind) for kind in (TopList, PathsView, SubflowsTable, EventLog)]
        top, events = panels[0], panels[-1]
        shown = [widget_text(panel) for panel in panels]
        assert fmt.rate(status_of(start, "mptcp").rate_bps) in shown[0]
        assert "link down" not in shown[-1]
        await pilot.press("p")
        await feed(pilot, after(start.t, later.t))
        assert app.state.now == later.t                                  # collected…
        assert [widget_text(panel) for panel in panels] == shown         # …but not shown
        assert "display paused" in screen_text(app)
        await pilot.press("u")                                           # units switch the frozen frame
        assert fmt.rate(status_of(start, "mptcp").rate_bps, "bytes") in widget_text(top)
        await pilot.press("u")
        await pilot.press("p")
        await pilot.pause()
        moved = status_of(later, "mptcp")
        assert fmt.size(moved.bytes) not in shown[0] and fmt.size(moved.bytes) in widget_text(top)
        wifi = app.state.label(stall.iface or "")
        assert f"{wifi} link down" in widget_text(events)
        assert "display paused" not in screen_text(app)


async def test_u_switches_units_in_the_rendered_cells() -> None:
    point = both_running()
    transfer = status_of(point, "mptcp")
    assert len(transfer.subflows) >= 2
    async with running(point.t) as (app, pilot):
        table = app.query_one(SubflowsTable)
        for sub in transfer.subflows:
            assert fmt.rate(sub.rate_bps, "bits") in widget_text(table)
        await pilot.press("u")
        text = widget_text(table)
        assert "bit/s" not in text and "bit/s" not in widget_text(app.query_one(TopList))
        for sub in transfer.subflows:
            assert fmt.rate(sub.rate_bps, "bytes") in text
            assert table.get_cell(f"t{transfer.id}:{sub.id}", "rate").plain == fmt.rate(sub.rate_bps, "bytes")
        await pilot.press("u")
        assert fmt.rate(transfer.subflows[0].rate_bps, "bits") in widget_text(table)


async def test_selecting_a_transfer_switches_the_subflows_table() -> None:
    point = both_running()
    mptcp, fallback = status_of(point, "mptcp"), status_of(point, "fallback")
    assert point.transfers.index(fallback) == point.transfers.index(mptcp) + 1   # the order `mptop get` was given
    mptcp_rows = [f"t{mptcp.id}:{s.id}" for s in mptcp.subflows]
    async with running(point.t) as (app, pilot):
        table = app.query_one(SubflowsTable)
        panel = app.query_one("#subflows-panel")
        assert [row.key.value for row in table.ordered_rows] == mptcp_rows
        assert panel.border_title == f"Subflows of #{mptcp.id}"
        await pilot.press("down")
        assert [row.key.value for row in table.ordered_rows] == [f"t{fallback.id}:{s.id}" for s in fallback.subflows]
        assert str(panel.border_title) == f"Subflows of #{fallback.id} · TCP fallback — {fallback.reason}"
        text = widget_text(table)
        assert fallback.subflows[0].remote in text and "plain TCP" in text
        await pilot.press("up")
        assert [row.key.value for row in table.ordered_rows] == mptcp_rows
        # the mouse: a click on the second card's first line
        top = app.query_one(TopList)
        await pilot.click(TopList, offset=(10, 2))
        assert top.selected_id == f"t{fallback.id}"
        assert [row.key.value for row in table.ordered_rows] == [f"t{fallback.id}:{s.id}" for s in fallback.subflows]


def next_with_new_rates() -> tuple[Sample, Sample]:
    """Two consecutive samples with the same subflows of the MPTCP transfer, every rate reading differently."""
    samples = moments.samples(TWO)
    for first, second in pairwise(samples):
        if first.t < both_running().t:
            continue
        a, b = status_of(first, "mptcp"), status_of(second, "mptcp")
        if [s.id for s in a.subflows] == [s.id for s in b.subflows] and all(
                fmt.rate(x.rate_bps) != fmt.rate(y.rate_bps) for x, y in zip(a.subflows, b.subflows, strict=True)):
            return first, second
    raise AssertionError("no two consecutive samples with new rates in the recording")


async def test_keyed_updates_keep_rows_and_scroll() -> None:
    first, second = next_with_new_rates()
    transfer = status_of(second, "mptcp")
    async with running(first.t) as (app, pilot):
        table = app.query_one(SubflowsTable)
        rows_before, scroll_before = dict(table.rows), table.scroll_offset
        await feed(pilot, after(first.t, second.t))
        assert dict(table.rows) == rows_before                  # same row objects: updated, not rebuilt
        assert table.scroll_offset == scroll_before
        for sub in transfer.subflows:
            assert table.get_cell(f"t{transfer.id}:{sub.id}", "rate").plain == fmt.rate(sub.rate_bps)


async def test_help_screen_lists_the_keys() -> None:
    point = both_running()
    async with running() as (app, pilot):
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        text = screen_text(app)
        for key, words in (("q", "quit"), ("p", "pause or resume the display"), ("u", "rates in bits or in bytes"),
                           ("↑↓", "select a transfer"), ("ctrl\\+p", "command palette"), ("\\?", "this help")):
            assert re.search(rf"{key}\s+{words}", text), (key, words)
        assert "replay" not in text                        # no replay source: no space key
        await feed(pilot, moments.until(TWO, point.t))     # data keeps flowing under the help screen
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)
        top = widget_text(app.query_one(TopList))
        for transfer in point.transfers:
            assert f"#{transfer.id} {without_scheme(transfer.url)}" in top


async def test_q_quits() -> None:
    app = MptopApp(clock=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("q")
        await pilot.pause()
        assert app._exit                                        # Textual's exit flag
    assert app.return_code == 0


async def test_a_burst_of_samples_renders_a_few_frames_showing_the_latest() -> None:
    start = both_running()
    async with running(start.t) as (app, pilot):
        before = app.frames
        # The rest of the run while the MPTCP download still moves (its rate is shown, not its average).
        # It ends on a sample whose rate reads differently from the one before (to tell which is shown).
        burst = [r for r in after(start.t, float("inf"))
                 if isinstance(r, Sample) and status_of(r, "mptcp").state == "running"]
        shown = [fmt.rate(status_of(r, "mptcp").rate_bps) for r in burst]
        burst = burst[:max(i for i in range(1, len(burst)) if shown[i] != shown[i - 1]) + 1]
        assert len(burst) >= 40                 # ~10 s of samples
        for record in burst:                    # all queued before the app gets to run
            app.feed(record)
        await wait_for(pilot, lambda: app.state.now == burst[-1].t)
        await pilot.pause()
        ingested = [s for s in moments.samples(TWO) if "wlan0" in s.paths and s.t <= burst[-1].t]
        assert app.state.now == burst[-1].t and len(app.state.history["wlan0"].points) == len(ingested)
        assert app.frames - before <= 3
        top = widget_text(app.query_one(TopList))
        latest, previous = status_of(burst[-1], "mptcp"), status_of(burst[-2], "mptcp")
        assert fmt.rate(latest.rate_bps) != fmt.rate(previous.rate_bps)
        assert fmt.rate(latest.rate_bps) in top and fmt.rate(previous.rate_bps) not in top


async def test_no_color_is_respected(monkeypatch: pytest.MonkeyPatch) -> None:
    # the screenshot's window buttons and its default text colour are not the app's
    chrome = {"ff5f57", "febc2e", "28c840", "c5c8c6"}

    def colours(svg: str) -> set[tuple[int, ...]]:
        found = {h.lower() for h in re.findall(r"#([0-9a-fA-F]{6})\b", svg)} - chrome
        return {tuple(int(h[i:i + 2], 16) for i in (0, 2, 4)) for h in found}

    async def shot() -> str:
        async with running(both_running().t) as (app, _):
            return app.export_screenshot()

    monkeypatch.delenv("NO_COLOR", raising=False)
    assert any(len(set(c)) > 1 for c in colours(await shot()))           # colourful by default
    monkeypatch.setenv("NO_COLOR", "1")
    assert all(len(set(c)) == 1 for c in colours(await shot()))          # only greys with NO_COLOR


async def test_command_palette_has_mptop_commands() -> None:
    point = both_running()
    fallback = status_of(point, "fallback")
    async with running(point.t) as (app, pilot):
        await run_command(pilot, "rates in bytes", "Show rates in bytes")
        await wait_for(pilot, lambda: app.units == "bytes")
        await run_command(pilot, f"select #{fallback.id}", f"Select #{fallback.id} {without_scheme(fallback.url)}")
        await wait_for(pilot, lambda: app.query_one(TopList).selected_id == f"t{fallback.id}")


async def run_command(pilot: Pilot, typed: str, expected: str) -> None:
    """Type ``typed`` into the command palette and run its best hit once that is ``expected``."""
    await pilot.press("ctrl+p")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, CommandPalette))
    await pilot.press(*typed)
    hits = pilot.app.screen.query_one(CommandList)

    def best_is_expected() -> bool:
        if not hits.option_count or hits.highlighted != 0:
            return False
        prompt = hits.get_option_at_index(0).prompt
        return str(getattr(prompt, "plain", prompt)).startswith(expected)

    await wait_for(pilot, best_is_expected)
    await pilot.press("enter")


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


async def test_once_every_transfer_ended_paths_show_what_they_carried() -> None:
    last = moments.samples(TWO)[-1]
    assert last.transfers_ended()
    running_point = both_running()
    async with running(running_point.t) as (app, pilot):
        paths = app.query_one(PathsView)
        for iface, path in running_point.paths.items():                   # while running: rates
            assert fmt.rate(path.rate_bps) in widget_text(paths), iface
        await feed(pilot, after(running_point.t, last.t))
        text = widget_text(paths)
        shares = last.byte_shares()
        for iface, path in last.paths.items():                            # then: bytes, byte shares
            row = next(line for line in text.splitlines() if iface in line)
            assert fmt.size(path.bytes) in row and fmt.percent(shares[iface]) in row, row
            assert "bit/s" not in row
        assert fmt.size(sum(p.bytes for p in last.paths.values())) in text
