"""`mptop replay`: the replay source's pace, pause and end, in the app and from the command line.

Every replay plays a real recording from assets/ (see test_tui_app).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from mptop.cli import main
from mptop.core import moments
from mptop.core.model import HostInfo, Record, Summary
from mptop.tui import format as fmt
from mptop.tui.app import MptopApp
from mptop.tui.sources import ReplaySource
from tests import ASSETS
from tests.tui.pilot import FALLBACK, HANDOVER, screen_text, wait_for, without_scheme

HOST = FALLBACK[0]
LAST = moments.samples(FALLBACK)[-1]
SUMMARY = FALLBACK[-1]
assert isinstance(HOST, HostInfo) and isinstance(SUMMARY, Summary)


def recorded_span(records: list[Record]) -> float:
    times = [r.t for r in moments.samples(records)]
    return times[-1] - times[0]


async def test_replay_keeps_order_and_its_own_pace() -> None:
    span, speed = recorded_span(FALLBACK), 16.0                  # 8 s played in 0.5 s
    source = ReplaySource(FALLBACK, speed=speed)
    arrivals: list[tuple[Record, float]] = []
    started = time.monotonic()
    async for record in source:
        arrivals.append((record, time.monotonic() - started))
    elapsed = time.monotonic() - started
    assert [record for record, _ in arrivals] == FALLBACK
    first = moments.samples(FALLBACK)[0].t
    for record, at in arrivals:                                   # never early…
        if (t := getattr(record, "t", None)) is not None:
            assert at >= (t - first) / speed - 0.01, (record, at)
    assert span / speed <= elapsed < span / 2                     # …and much faster than recorded
    assert source.finished and source.position == pytest.approx(span)


def test_position_follows_the_speed_and_stops_while_paused() -> None:
    now = [100.0]
    source = ReplaySource(HANDOVER, speed=4.0, clock=lambda: now[0])
    assert recorded_span(HANDOVER) > 6.0
    now[0] += 0.5
    assert source.position == pytest.approx(2.0)
    source.pause()
    now[0] += 10.0
    assert source.position == pytest.approx(2.0)
    source.resume()
    now[0] += 1.0
    assert source.position == pytest.approx(6.0)
    now[0] += 3600.0
    assert source.position == pytest.approx(recorded_span(HANDOVER))   # never past the end
    with pytest.raises(ValueError):
        ReplaySource(HANDOVER, speed=0)


async def turns(n: int = 20) -> None:
    """Let the event loop run ``n`` times: enough for a due record to come out."""
    for _ in range(n):
        await asyncio.sleep(0)


async def test_a_paused_replay_holds_its_next_record() -> None:
    now = [0.0]
    source = ReplaySource(FALLBACK, speed=1.0, clock=lambda: now[0])
    records = source.__aiter__()
    assert await anext(records) is FALLBACK[0]        # the host record, then the first sample: both due at once
    assert await anext(records) is FALLBACK[1]
    assert source.toggle_pause() is True
    now[0] += 3600.0                                  # everything is long due, but paused
    pending = asyncio.ensure_future(anext(records))
    await turns()
    assert not pending.done()
    assert source.toggle_pause() is False
    now[0] += 3600.0
    assert await asyncio.wait_for(pending, 10.0) is FALLBACK[2]
    following = asyncio.ensure_future(anext(records))  # the control: a due record comes out in those turns
    await turns()
    assert following.done() and following.result() is FALLBACK[3]


async def test_the_app_plays_a_replay_to_the_end_and_holds_the_last_frame() -> None:
    app = MptopApp(ReplaySource(FALLBACK, speed=40.0), clock=False, finished_text="replay finished")
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: "space Play/pause" in screen_text(app))   # the footer offers space
        await wait_for(pilot, lambda: app.finished)
        await pilot.pause()
        text = screen_text(app)
        assert app.state.now == LAST.t and app.state.summary == SUMMARY and "replay finished" in text
        for transfer in LAST.transfers:                              # last frame still shown
            assert f"#{transfer.id} {without_scheme(transfer.url)}" in text
        assert f"run ended after {fmt.duration(SUMMARY.duration_s)}" in text


async def test_space_pauses_and_resumes_the_replay() -> None:
    source = ReplaySource(HANDOVER, speed=1.0)
    app = MptopApp(source, clock=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("space")
        await pilot.pause()                                          # a record already on its way lands
        assert source.paused and "replay paused" in screen_text(app)
        seen, position = app.state.records, source.position
        await pilot.pause(0.6)                                       # 2 or more samples would be due by now
        assert app.state.records == seen and source.position == position   # nothing arrives while paused
        await pilot.press("space")
        assert not source.paused and "replay 1×" in screen_text(app)
        await wait_for(pilot, lambda: app.state.records > seen)


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(argv)
    return code, capsys.readouterr().err


def test_replay_of_a_bad_file_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run_cli(["replay", str(tmp_path / "nope.ndjson")], capsys)
    assert code == 2 and err == f"mptop replay: {tmp_path / 'nope.ndjson'}: no such file\n"
    bad = tmp_path / "bad.ndjson"                     # a real recording cut in the middle of its second line
    lines = (ASSETS / "two-transfers.ndjson").read_text(encoding="utf-8").splitlines()
    bad.write_text(f"{lines[0]}\n{lines[1][: len(lines[1]) // 2]}\n", encoding="utf-8")
    code, err = run_cli(["replay", str(bad)], capsys)
    assert code == 2 and err.count("\n") == 1 and "line 2: not JSON" in err and "Traceback" not in err


def test_replay_speed_must_be_positive(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["replay", "x.ndjson", "--speed", "0"])
    assert info.value.code == 2 and "must be > 0" in capsys.readouterr().err


async def test_a_runner_feeds_the_app_like_a_session_sink() -> None:
    async def session_run(sink) -> None:  # type: ignore[no-untyped-def]
        for record in FALLBACK:
            sink(record)
            await asyncio.sleep(0)

    app = MptopApp(runner=session_run, clock=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: app.finished)
        await pilot.pause()
        assert app.state.records == len(FALLBACK) and app.state.now == LAST.t and app.state.summary == SUMMARY
        assert app.error is None and "finished" in screen_text(app)


async def test_a_failing_source_is_said_in_one_line_and_the_app_stays_up() -> None:
    cut = moments.fallback(FALLBACK)                  # the fallen-back transfer is moving data

    async def broken() -> AsyncIterator[Record]:
        for record in moments.until(FALLBACK, cut):
            yield record
        raise OSError("netlink socket closed")

    app = MptopApp(broken(), clock=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: app.finished)
        await pilot.pause()
        assert app.error == "OSError: netlink socket closed"
        text = screen_text(app)
        assert "stopped: OSError: netlink socket closed" in text
        assert app.state.host == HOST and app.state.now == cut
        for transfer in moments.samples(moments.until(FALLBACK, cut))[-1].transfers:   # its last frame stays
            assert f"#{transfer.id} {without_scheme(transfer.url)}" in text


async def test_a_streamed_recording_plays_before_it_is_read_to_the_end() -> None:
    """A recording read as it plays (iter_recording): the first records are out after pulling only
    them, and the duration is the stream's own once it ended."""
    pulled: list[Record] = []

    def stream() -> Iterator[Record]:
        for record in FALLBACK:
            pulled.append(record)
            yield record

    source = ReplaySource(stream(), speed=64.0)
    records = source.__aiter__()
    assert await anext(records) is FALLBACK[0] and await anext(records) is FALLBACK[1]
    assert len(pulled) == 2
    rest = [record async for record in records]
    assert [*FALLBACK[:2], *rest] == FALLBACK
    assert source.finished and source.duration == pytest.approx(recorded_span(FALLBACK))


def test_replay_refuses_a_corrupted_recording_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.ndjson"
    lines = (ASSETS / "fallback.ndjson").read_text().splitlines()
    bad.write_text("\n".join([lines[0], '{"type": "sample", "t": 0.5, "paths": [1, 2]}', *lines[1:]]) + "\n")
    assert main(["replay", str(bad)]) == 2
    assert capsys.readouterr().err == (
        f"mptop replay: {bad}: line 2: malformed sample record: paths: expected an object, got a list\n")
