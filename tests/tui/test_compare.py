"""`--compare-tcp` in the TUI, fed the real `mptop demo --scenario compare` recording (assets/compare.ndjson):
both downloads labelled, TCP's one path shown as a path, its stall and its failure with the reason, and the
comparison's words — each number checked against what the records say, computed here from the samples."""

from __future__ import annotations

import re

import pytest

from mptop.core import moments
from mptop.core.model import Event, Record, Sample, TransferSample
from mptop.core.recording import read_recording
from mptop.tui import format as fmt
from mptop.tui.app import MptopApp
from mptop.tui.eventlog import EventLog
from mptop.tui.subflows import SubflowsTable
from mptop.tui.toplist import TopList
from tests import ASSETS
from tests.tui.pilot import feed, screen_text, wait_for, widget_text

COMPARE: list[Record] = read_recording(ASSETS / "compare.ndjson")
SIZES = [(60, 20), (80, 24), (120, 40), (200, 55)]


def side(sample: Sample, name: str) -> TransferSample:
    return next(t for t in sample.transfers if t.compare == name)


def moved(sample: Sample) -> tuple[int, int]:
    """The TCP download's progress: the bytes the app wrote, the bytes its subflows received."""
    tcp = side(sample, "tcp")
    return tcp.bytes, sum(s.bytes_received for s in tcp.subflows)


def tcp_failure() -> tuple[Sample, Sample]:
    """(the last sample in which the TCP download moved by either count, the first in which it had failed)."""
    samples = moments.samples(COMPARE)
    failed = next(s for s in samples if side(s, "tcp").state == "failed")
    before = [s for s in samples if s.t < failed.t]
    grew = max(i for i in range(1, len(before))
               if any(now > then for now, then in zip(moved(before[i]), moved(before[i - 1]), strict=True)))
    return before[grew], failed


def mptcp_bytes(sample: Sample, iface: str) -> int:
    return sum(s.bytes_received for s in side(sample, "mptcp").subflows if s.iface == iface)


def card_lines(app: MptopApp) -> list[str]:
    return widget_text(app.query_one(TopList)).splitlines()


async def test_both_sides_their_paths_tcps_stall_and_failure_and_the_words_with_the_runs_numbers() -> None:
    last_byte, failed = tcp_failure()
    stall_s = failed.t - last_byte.t
    told = moments.first_event(COMPARE, "comparison")
    assert isinstance(told, Event)
    # What MPTCP did meanwhile, from the samples: its rate and the path that carried it.
    kept = {iface: mptcp_bytes(failed, iface) - mptcp_bytes(last_byte, iface) for iface in ("wlan0", "wwan0")}
    assert kept["wwan0"] > 10 * max(kept["wlan0"], 1), kept          # the recording is of a real Wi-Fi drop
    expected = (f"TCP stalled {fmt.duration(stall_s)} and failed; MPTCP kept "
                f"{fmt.rate(sum(kept.values()) * 8 / stall_s)} over Cellular")
    assert told.detail == expected

    moment = moments.compared(COMPARE)
    app = MptopApp(clock=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await feed(pilot, moments.until(COMPARE, moment))
        sample = app.state.sample
        assert sample is not None
        panel = app.query_one("#top-panel")
        assert str(panel.border_title).startswith("MPTCP vs TCP · 192.0.2.1/bytes/")
        lines = card_lines(app)
        mptcp_head = next(line for line in lines if line.strip().startswith("#1 MPTCP"))
        tcp_head = next(line for line in lines if line.strip().startswith("#2 TCP"))
        rates = {i: sum(s.rate_bps for s in side(sample, "mptcp").subflows if s.iface == i and not s.closed)
                 for i in ("wlan0", "wwan0")}
        assert f"● Wi-Fi {fmt.rate(rates['wlan0'])}" in mptcp_head and \
            f"● Cellular {fmt.rate(rates['wwan0'])}" in mptcp_head, mptcp_head
        # TCP's one path is a path too; its share of what it fetched, now that it ended.
        assert "● Wi-Fi 100 %" in tcp_head and "Cellular" not in tcp_head, tcp_head
        assert f"stalled {fmt.duration(stall_s)}" in tcp_head and "no stall" in mptcp_head, lines
        tcp_stats = lines[lines.index(tcp_head) + 1]
        assert "✗ no data from the server for 20 s (idle timeout)" in tcp_stats, tcp_stats
        assert f"{fmt.size(side(sample, 'tcp').bytes)}" in tcp_stats
        log = widget_text(app.query_one(EventLog))
        assert f"MPTCP vs TCP · {expected}" in " ".join(log.split()), log
        assert "#2 TCP stalled — no path up — then it failed" in log, log     # the stall ended with the transfer

        await pilot.press("down")          # the TCP download's subflows: one, on Wi-Fi
        await wait_for(pilot, lambda: "Subflows of #2" in screen_text(app), lambda: screen_text(app))
        rows = app.query_one(SubflowsTable).row_count
        assert rows == 1 and "Wi-Fi" in widget_text(app.query_one(SubflowsTable))

        await feed(pilot, COMPARE[len(moments.until(COMPARE, moment)):])   # the rest: MPTCP finishes
        end = app.state.sample
        assert end is not None and side(end, "mptcp").state == "done"
        took = side(end, "mptcp").duration_s
        assert took is not None
        lines = card_lines(app)
        mptcp_stats = lines[next(i for i, line in enumerate(lines) if "#1 MPTCP" in line) + 1]
        assert f"✓ in {fmt.duration(took)}" in mptcp_stats, lines
        assert re.match(rf"MPTCP took {re.escape(fmt.duration(took))}; TCP stalled \S+ s and failed: no data",
                        str(panel.border_subtitle)), panel.border_subtitle


@pytest.mark.parametrize("size", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
async def test_every_terminal_size_shows_both_sides_labelled_and_tcps_end(size: tuple[int, int]) -> None:
    app = MptopApp(clock=False)
    async with app.run_test(size=size) as pilot:
        await feed(pilot, moments.until(COMPARE, moments.compared(COMPARE)))
        lines = card_lines(app)
        heads = [line.strip() for line in lines if line.strip().startswith(("#1 MPTCP", "#2 TCP"))]
        assert len(heads) == 2, lines
        tcp = next(i for i, line in enumerate(lines) if line.strip().startswith("#2 TCP"))
        assert "stalled" in lines[tcp] and "●" in lines[tcp], lines
        assert "✗ no data" in lines[tcp + 1], lines
        assert all(len(line) <= size[0] for line in screen_text(app).splitlines())
