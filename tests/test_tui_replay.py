"""`mptop replay`: the replay source's pace, pause and end, in the app and from the command line."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from make_dev_recording import make_records
from test_tui_app import screen_text, until

from mptop.cli import main
from mptop.core.model import HostInfo, PathSample, Record, Sample
from mptop.core.recording import write_record
from mptop.tui.app import MptopApp
from mptop.tui.sources import ReplaySource

HOST = HostInfo("6.18", True, "in-kernel", "default", 2, 2)


def timeline(*times: float) -> list[Record]:
    return [HOST, *(Sample(t, paths={"wlan0": PathSample("Wi-Fi", 1e6 * t, 0)}) for t in times)]


async def collect(source: ReplaySource) -> list[Record]:
    return [record async for record in source]


async def test_replay_keeps_order_and_its_own_pace() -> None:
    records = timeline(*(i * 0.25 for i in range(1, 9)))         # 1.75 s of recording
    source = ReplaySource(records, speed=7.0)
    started = time.monotonic()
    assert await collect(source) == records
    elapsed = time.monotonic() - started
    assert 1.75 / 7.0 <= elapsed < 1.5                             # 7× faster; at 1× it would take 1.75 s
    assert source.finished and source.position == pytest.approx(1.75)


def test_position_follows_the_speed_and_stops_while_paused() -> None:
    now = [100.0]
    source = ReplaySource(timeline(0.0, 10.0), speed=4.0, clock=lambda: now[0])
    now[0] += 0.5
    assert source.position == pytest.approx(2.0)
    source.pause()
    now[0] += 10.0
    assert source.position == pytest.approx(2.0)
    source.resume()
    now[0] += 1.0
    assert source.position == pytest.approx(6.0)
    with pytest.raises(ValueError):
        ReplaySource([], speed=0)


async def test_a_paused_replay_holds_its_next_record() -> None:
    source = ReplaySource(timeline(0.0, 0.2), speed=1.0)
    records = source.__aiter__()
    assert isinstance(await anext(records), HostInfo)
    assert (await anext(records)).t == 0.0          # type: ignore[union-attr]
    assert source.toggle_pause() is True
    pending = asyncio.ensure_future(anext(records))
    await asyncio.sleep(0.5)
    assert not pending.done()                         # 0.2 s due long ago, but paused
    assert source.toggle_pause() is False
    assert (await asyncio.wait_for(pending, 2.0)).t == 0.2   # type: ignore[union-attr]


async def wait_for(pilot, condition, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await pilot.pause(0.05)


async def test_the_app_plays_a_replay_to_the_end_and_holds_the_last_frame() -> None:
    records = until(3.0)
    app = MptopApp(ReplaySource(records, speed=20.0), clock=False, finished_text="replay finished")
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        assert "space Play/pause" in screen_text(app)               # the footer offers space
        await wait_for(pilot, lambda: app.finished)
        await pilot.pause()
        assert app.state.now == 3.0 and "replay finished" in screen_text(app)
        assert "#1 192.0.2.1/bytes/200000000" in screen_text(app)    # last frame still shown


async def test_space_pauses_and_resumes_the_replay() -> None:
    source = ReplaySource(make_records(), speed=1.0)
    app = MptopApp(source, clock=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("space")
        assert source.paused and "replay paused" in screen_text(app)
        seen = app.state.records
        await pilot.pause(0.6)
        assert app.state.records == seen                           # nothing arrives while paused
        await pilot.press("space")
        assert not source.paused and "replay 1×" in screen_text(app)
        await wait_for(pilot, lambda: app.state.records > seen)


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(argv)
    return code, capsys.readouterr().err


def test_replay_of_a_bad_file_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run_cli(["replay", str(tmp_path / "nope.ndjson")], capsys)
    assert code == 2 and err == f"mptop replay: {tmp_path / 'nope.ndjson'}: no such file\n"
    bad = tmp_path / "bad.ndjson"
    with open(bad, "w", encoding="utf-8") as fp:
        write_record(fp, HOST)
        fp.write("{truncated\n")
    code, err = run_cli(["replay", str(bad)], capsys)
    assert code == 2 and err.count("\n") == 1 and "line 2: not JSON" in err and "Traceback" not in err


def test_replay_speed_must_be_positive(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["replay", "x.ndjson", "--speed", "0"])
    assert info.value.code == 2 and "must be a positive number" in capsys.readouterr().err


async def test_a_runner_feeds_the_app_like_a_session_sink() -> None:
    async def session_run(sink) -> None:  # type: ignore[no-untyped-def]
        for record in until(2.0):
            sink(record)
            await asyncio.sleep(0)

    app = MptopApp(runner=session_run, clock=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: app.finished)
        await pilot.pause()
        assert app.state.now == 2.0 and app.error is None and "finished" in screen_text(app)


async def test_a_failing_source_is_said_in_one_line_and_the_app_stays_up() -> None:
    async def broken():  # type: ignore[no-untyped-def]
        yield HOST
        raise OSError("netlink socket closed")

    app = MptopApp(broken(), clock=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: app.finished)
        await pilot.pause()
        assert app.error == "OSError: netlink socket closed"
        assert "stopped: OSError: netlink socket closed" in screen_text(app)
        assert app.state.host == HOST
