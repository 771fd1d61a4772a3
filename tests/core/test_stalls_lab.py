"""Stalls against the real kernel: within two polls of the last byte, no false stall while a fast path
waits for a slow one, and a transfer with no path up says so (then resumes when bytes flow)."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from mptop.core.model import Event, Record, Sample
from mptop.lab import Lab
from mptop.tui.state import ViewState
from tests.core.sampling import SHAPED, sample_download

pytestmark = pytest.mark.lab

STOPPED = "stopped by the test: it saw what it waited for"


def polls_after_last_byte(samples: list[Sample], event: Event, nbytes: Callable[[Sample], int]) -> int:
    """How many polls after the last one that saw ``nbytes`` grow the event came."""
    before = [s for s in samples if s.t <= event.t]
    last = max(i for i in range(1, len(before)) if nbytes(before[i]) > nbytes(before[i - 1]))
    return len(before) - 1 - last


async def test_both_links_down_stall_within_two_polls_and_the_transfer_says_no_path_up(
        make_lab: Callable[..., Lab]) -> None:
    lab = make_lab(rate_mbit=SHAPED)
    steps: dict[str, float] = {}

    def step(sample: Sample) -> None:
        now = sample.t          # the sampler's clock: steps and events on one time line
        if "wifi_down" not in steps and sample.transfers[0].bytes > 4_000_000:
            lab.link_down("wlan0")
            steps["wifi_down"] = now
        elif "wifi_down" in steps and "cell_down" not in steps and now - steps["wifi_down"] >= 1.5:
            lab.link_down("wwan0")
            steps["cell_down"] = now
        elif "cell_down" in steps and "cell_up" not in steps and now - steps["cell_down"] >= 3.0:
            lab.link_up("wwan0")
            steps["cell_up"] = now
        elif "cell_up" in steps and "wifi_up" not in steps and now - steps["cell_up"] >= 1.5:
            lab.link_up("wlan0")
            steps["wifi_up"] = now
            moved.update((i, p.bytes) for i, p in sample.paths.items())
        elif "wifi_up" in steps and "unshaped" not in steps and all(
                not p.stalled and p.bytes > moved.get(i, 0) for i, p in sample.paths.items()):
            for iface in SHAPED:        # both paths carry again, told: the rest needs no shaping, nor seconds
                lab.set_rate(iface, None)
            steps["unshaped"] = now

    moved: dict[str, int] = {}
    size = 40_000_000
    with lab.client.entered():
        run = await sample_download(lab, lab.url(size), step)
    assert "unshaped" in steps and run.transfer.state == "done" and run.transfer.sha256 == lab.content_sha256(size)
    samples, events = run.samples, run.events

    def first(kind: str, iface: str | None = None) -> Event:
        return next(e for e in events if e.kind == kind and e.iface == iface)

    for iface in ("wlan0", "wwan0"):
        stalled = first("path_stalled", iface)
        path_bytes: Callable[[Sample], int] = lambda s, i=iface: s.paths[i].bytes if i in s.paths else 0  # noqa: E731
        assert polls_after_last_byte(samples, stalled, path_bytes) <= 2, iface
        told = [e for e in events if e.iface == iface and e.kind.startswith("path_")]
        assert [e.kind for e in told] == ["path_stalled", "path_recovered"], \
            (iface, steps, [(round(e.t, 2), e.detail) for e in told])
    stalled = first("transfer_stalled")
    # The last byte of the transfer or of any path (data can sit behind a hole while a path still carries).
    assert polls_after_last_byte(samples, stalled, lambda s: s.transfers[0].bytes + sum(
        p.bytes for p in s.paths.values())) <= 2
    resumed = first("transfer_resumed")
    assert resumed.t > stalled.t and resumed.detail.startswith("resumed after ")
    assert [e.kind for e in events].count("transfer_stalled") == 1

    # The story: while nothing moves no path is "carrying", the transfer's stall is told.
    state = ViewState()
    records: list[Record] = [run.host, *sorted(events + samples, key=lambda r: (r.t, isinstance(r, Sample)))]
    for record in records:
        state.ingest(record)
        if isinstance(record, Sample) and stalled.t <= record.t < resumed.t and all(
                p.stalled for p in record.paths.values()):
            lines = [e.text for e in state.story.entries]
            assert not any(re.search(r"carrying \d", line) for line in lines), lines
            assert any(line.startswith("#1 stalled — no path up (") for line in lines), lines
    lines = [e.text for e in state.story.entries]
    assert any(line.startswith("#1 stalled — no path up — resumed after") for line in lines), lines
    assert any(line.startswith("Cellular link down") and "Cellular back after" in line for line in lines), lines


class Waits:
    """The longest time Wi-Fi, link up, got no byte while said "waiting on Cellular" (not stalled)."""

    def __init__(self) -> None:
        self.quiet, self.longest, self.bytes = 0.0, 0.0, 0
        self.t: float | None = None

    def __call__(self, s: Sample) -> None:
        wifi = s.paths.get("wlan0")
        moved = wifi is None or wifi.bytes > self.bytes
        self.quiet = 0.0 if moved or self.t is None else self.quiet + s.t - self.t
        if wifi is not None and wifi.link_up and wifi.waiting_on == "Cellular":
            self.longest = max(self.longest, self.quiet)
        self.bytes, self.t = (wifi.bytes if wifi else 0), s.t


async def test_a_fast_path_waiting_for_a_slow_one_is_never_stalled(make_lab: Callable[..., Lab]) -> None:
    # 40 + 1 Mbit: the fast path waits for the slow one now and then (quiet for seconds with its link up:
    # up to 1.8-5.6 s in 9 of 11 runs measured under load, but never over 0.8 s in two, one of 70 s),
    # "waiting on Cellular", never a stall.  The download stops once it has shown such a wait (over 3 times
    # the 2-poll stall threshold) and 10 s have passed, or at 30 s (a run that never waits long shows less).
    lab = make_lab(rate_mbit={"wlan0": 40, "wwan0": 1})
    size, waits = int(41e6 / 8 * 60), Waits()

    def enough(sample: Sample) -> str | None:
        waits(sample)
        return STOPPED if (waits.longest >= 1.5 and sample.t >= 10) or sample.t >= 30 else None

    with lab.client.entered():
        run = await sample_download(lab, lab.url(size), enough, deadline_s=240)
    assert run.transfer.state == "done" or run.transfer.error == STOPPED, run.transfer.error
    samples, events = run.samples, run.events
    kinds = [e.kind for e in events]
    stalls = [e for e in events if "stalled" in e.kind]
    around = [(round(s.t, 2), s.transfers[0].bytes, {i: p.bytes for i, p in s.paths.items()}) for s in samples
              if stalls and stalls[0].t - 2 <= s.t <= stalls[0].t + 1]
    assert "path_stalled" not in kinds and "transfer_stalled" not in kinds, (stalls, around)
    assert all(not p.stalled for s in samples for p in s.paths.values())
    assert all(p.waiting_on in (None, "Cellular", "Wi-Fi") for s in samples for p in s.paths.values())
    took = samples[-1].t - samples[0].t
    assert samples[-1].paths["wwan0"].bytes > 0.5 * 1e6 / 8 * (took - 5)     # the slow path carried throughout
    print(f"Wi-Fi waited on Cellular, quiet, up to {waits.longest:.2f} s in {took:.1f} s")
