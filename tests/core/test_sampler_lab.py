"""The sampler against the real kernel: a two-path lab, shaped downloads, outages, fallback.

The main thread enters the client netns, so the sampler (on the event loop of this thread),
the downloads and the interface listing all live there.
"""

from __future__ import annotations

import re
import statistics
import time
from collections.abc import Callable

import pytest

from mptop.core.model import Event, Sample
from mptop.kernel import sockopt
from mptop.lab import Lab
from tests.core.sampling import SHAPED, SYNACK, TCP_HEADERS, Run, sample_download

pytestmark = pytest.mark.lab

SIZE = 16_000_000


def assert_closed_path_bytes(run: Run, iface: str, nbytes: int) -> None:
    """Bytes of a path whose subflow closed mid-transfer, against what its interface received.

    The interface also counted what the subflow got after the last poll that still listed it,
    and what sat in the lab's tbf (50 ms + a 64 KiB burst) when it closed: up to ``unseen``.
    """
    rate = SHAPED[iface] * 1e6 / 8
    unseen = rate * 0.25 + rate * 0.05 + 64 * 1024
    assert run.payload(iface) * 0.97 - unseen <= nbytes <= run.payload(iface) * 1.03


def kinds(events: list[Event], iface: str | None = None) -> list[str]:
    return [e.kind for e in events if iface is None or e.iface == iface]


@pytest.mark.lab
async def test_shaped_two_path_download_shares_bytes_and_subflows(make_lab: Callable[..., Lab]) -> None:
    lab = make_lab(rate_mbit=SHAPED)
    with lab.client.entered():
        run = await sample_download(lab, lab.url(SIZE))
    assert run.transfer.state == "done" and run.transfer.sha256 == lab.content_sha256(SIZE)
    assert run.host.events == "netlink" and run.host.labels == {"wlan0": "Wi-Fi", "wwan0": "Cellular"}

    samples, events, final = run.samples, run.events, run.samples[-1]
    t = final.transfers[0]
    assert t.status == "mptcp" and t.state == "done" and t.bytes == SIZE
    took = run.transfer.ended_at - run.transfer.started_at   # type: ignore[operator]
    assert t.avg_bps == pytest.approx(SIZE * 8 / took) and t.avg_bps < 50e6          # 40 + 10 Mbit
    assert all(s.transfers[0].avg_bps is None for s in samples[:-1])                 # only once done
    by_iface = {s.iface: s for s in t.subflows}
    assert set(by_iface) == {"wlan0", "wwan0"}
    assert by_iface["wlan0"].join is False and by_iface["wwan0"].join is True
    assert by_iface["wlan0"].path == "Wi-Fi" and by_iface["wwan0"].path == "Cellular"
    live = samples[-2].transfers[0].subflows                  # the last poll while it ran
    assert len(live) == 2 and all(s.rtt_ms and 0 < s.rtt_ms < 1000 and s.cwnd for s in live)
    assert all(s.rtt_ms is None and s.rate_bps == 0 for s in t.subflows)       # nothing live after the end

    # Shares while both paths carry the download: ≈ 80/20.  The median, because the shared
    # receive buffer sometimes holds the fast path back for a poll (head-of-line blocking behind
    # the slow path, more often on a loaded machine).
    steady = [s.paths for s in samples if s.t > 0.7 and s.transfers[0].state == "running"
              and sum(p.rate_bps for p in s.paths.values()) > 0]
    assert len(steady) >= 4
    wifi = statistics.median(p["wlan0"].share for p in steady)
    assert 0.6 < wifi < 0.9, wifi
    assert all(abs(p["wlan0"].share + p["wwan0"].share - 1) < 1e-9 for p in steady)

    # Per-path bytes (subflow tcpi_bytes_received) against the interfaces' rx counters.
    for iface in ("wlan0", "wwan0"):
        assert final.paths[iface].bytes == pytest.approx(run.payload(iface), rel=0.03), iface
        assert final.paths[iface].bytes < run.rx[iface][0]
    assert run.summary.transfers[0].path_bytes == {i: p.bytes for i, p in final.paths.items()}
    assert run.summary.transfers[0].ok and run.summary.transfers[0].status == "mptcp"
    assert sum(final.paths[i].bytes for i in final.paths) >= SIZE

    # Exactly one subflow_up per subflow, none down, the server's ADD_ADDR seen, and the end.
    assert sorted(e.iface for e in events if e.kind == "subflow_up") == ["wlan0", "wwan0"]
    up_at = {e.iface: e.t for e in events if e.kind == "subflow_up"}
    assert all(s.age_s == pytest.approx(final.t - up_at[s.iface]) for s in t.subflows)
    assert "subflow_down" not in kinds(events) and "path_stalled" not in kinds(events)
    assert "address_announced" in kinds(events)
    assert kinds(events)[-1] == "transfer_done"
    assert [e.t for e in events] == sorted(e.t for e in events)


@pytest.mark.lab
async def test_wifi_outage_gives_one_stall_and_one_recovery(make_lab: Callable[..., Lab]) -> None:
    lab = make_lab(rate_mbit=SHAPED)
    outage: dict[str, float] = {}

    def step(sample: Sample) -> None:
        if "down" not in outage and sample.transfers[0].bytes > 3_000_000:
            lab.link_down("wlan0")
            outage["down"] = time.monotonic()
        elif "down" in outage and "up" not in outage and time.monotonic() - outage["down"] >= 3.0:
            lab.link_up("wlan0")
            outage["up"] = time.monotonic()

    size = 20_000_000
    with lab.client.entered():
        # Polls only: the stall must be measured, and subflow events inferred, without netlink.
        run = await sample_download(lab, lab.url(size), step, pm_events=False)
    assert "up" in outage and run.transfer.state == "done" and run.transfer.sha256 == lab.content_sha256(size)
    assert run.host.events == "inferred"
    samples, events = run.samples, run.events

    assert kinds(events, "wlan0") == ["subflow_up", "link_down", "path_stalled", "link_up", "path_recovered"]
    assert "path_stalled" not in kinds(events, "wwan0")
    stalled = next(e for e in events if e.kind == "path_stalled")
    back = next(e for e in events if e.kind == "path_recovered")
    match = re.fullmatch(r"Wi-Fi back after (\d+\.\d) s", back.detail)
    assert match, back.detail
    assert 3.0 <= float(match.group(1)) <= 6.0
    # Stalled on the 2nd poll without bytes (0.4375 s at 0.25 s polls).
    assert back.t - stalled.t == pytest.approx(float(match.group(1)) - 0.5, abs=0.3)
    stalled_samples = [s for s in samples if stalled.t <= s.t < back.t]
    assert stalled_samples and all(s.paths["wlan0"].stalled for s in stalled_samples)
    # Rates are 1 s averages: a second after its last byte the stalled path shows none.
    quiet = [s for s in stalled_samples if s.t >= stalled.t + 1.0]
    assert quiet and all(s.paths["wlan0"].rate_bps == 0 and s.paths["wlan0"].share == 0.0 for s in quiet)
    carried = stalled_samples[-1].paths["wwan0"].bytes - stalled_samples[0].paths["wwan0"].bytes
    assert carried > 0.2 * SHAPED["wwan0"] * 1e6 / 8 * (stalled_samples[-1].t - stalled_samples[0].t)
    assert not samples[-1].paths["wlan0"].stalled
    for iface in ("wlan0", "wwan0"):
        assert samples[-1].paths[iface].bytes == pytest.approx(run.payload(iface), rel=0.03), iface


@pytest.mark.lab
async def test_backup_path_is_flagged_and_its_silence_is_no_stall(make_lab: Callable[..., Lab]) -> None:
    lab = make_lab(rate_mbit=SHAPED)
    marked: dict[str, float] = {}

    def step(sample: Sample) -> None:
        if not marked and sample.transfers[0].bytes > 2_000_000:
            lab.set_backup("wwan0", True)       # the server's MP_PRIO: the client gets SUB_PRIORITY
            marked["t"] = sample.t

    # Bigger than SIZE: what the server had queued on cellular before MP_PRIO drains for up to
    # ~2 s on a loaded machine, and Wi-Fi alone must then carry the rest for longer than a stall.
    with lab.client.entered():
        run = await sample_download(lab, lab.url(SIZE * 2), step)
    assert run.transfer.state == "done" and marked
    flags = [{s.iface: s.backup for s in x.transfers[0].subflows} for x in run.samples if x.t > marked["t"] + 1]
    assert flags and all(f == {"wlan0": False, "wwan0": True} for f in flags)
    after = [x for x in run.samples if x.t > marked["t"] and x.transfers[0].state == "running"]
    quiet = after[next(i for i, x in enumerate(after) if x.paths["wwan0"].rate_bps == 0):]
    assert all(x.paths["wwan0"].rate_bps == 0 and not x.paths["wwan0"].stalled for x in quiet)
    assert quiet[-1].t - quiet[0].t >= 1.25                # silent for longer than a stall takes
    assert "path_stalled" not in kinds(run.events)


@pytest.mark.lab
async def test_fallback_to_plain_tcp_server(make_lab: Callable[..., Lab]) -> None:
    lab = make_lab(rate_mbit={"wlan0": 80})
    with lab.client.entered():
        run = await sample_download(lab, lab.url(4_000_000, tcp=True))
    assert run.transfer.state == "done" and run.transfer.sha256 == lab.content_sha256(4_000_000), run.transfer.error
    final = run.samples[-1].transfers[0]
    assert final.status == "fallback" and final.reason == SYNACK
    fallback = [e for e in run.events if e.kind == "fallback"]
    assert len(fallback) == 1 and fallback[0].transfer == 1
    assert fallback[0].detail == f"fell back to TCP: {SYNACK}"
    assert [(s.iface, s.join) for s in final.subflows] == [("wlan0", False)]
    assert run.samples[-1].paths["wlan0"].bytes == pytest.approx(run.payload("wlan0", TCP_HEADERS), rel=0.03)
    assert run.summary.transfers[0].status == "fallback"
    assert run.summary.transfers[0].reason == SYNACK


@pytest.mark.lab
async def test_fallback_fails_and_is_reported_when_mptcp_is_required(make_lab: Callable[..., Lab]) -> None:
    lab = make_lab(rate_mbit={"wlan0": 20})
    with lab.client.entered():
        run = await sample_download(lab, lab.url(4_000_000, tcp=True), require_mptcp=True)
    assert run.transfer.state == "failed" and "MPTCP" in (run.transfer.error or "")
    assert kinds(run.events)[-2:] == ["fallback", "transfer_failed"]      # whoever saw the fallback first
    assert run.samples[-1].transfers[0].status == "fallback"
    assert not run.summary.transfers[0].ok and run.summary.transfers[0].error == run.transfer.error


@pytest.mark.lab
async def test_mptcp_disabled_on_the_host_gives_plain_tcp_with_the_reason(make_lab: Callable[..., Lab]) -> None:
    lab = make_lab(rate_mbit={"wlan0": 80})
    lab.sysctl(lab.client, "net.mptcp.enabled", "0")
    with lab.client.entered():
        run = await sample_download(lab, lab.url(2_000_000))
    assert run.transfer.state == "done" and run.host.enabled is False
    final = run.samples[-1].transfers[0]
    reason = run.transfer.mptcp_unavailable
    assert reason and "disabled" in reason
    assert (final.status, final.reason) == ("tcp", reason)
    assert [e.detail for e in run.events if e.kind == "fallback"] == [f"plain TCP: {reason}"]
    assert [(s.iface, s.join) for s in final.subflows] == [("wlan0", False)]
    assert run.summary.transfers[0].path_bytes["wlan0"] == pytest.approx(run.payload("wlan0", TCP_HEADERS), rel=0.03)


@pytest.mark.lab
@pytest.mark.parametrize(("legacy", "reset"), [(False, "wwan0"), (True, "wlan0")], ids=["full_info", "legacy"])
async def test_reset_subflow_goes_down_and_keeps_its_bytes(make_lab: Callable[..., Lab],
                                                           monkeypatch: pytest.MonkeyPatch,
                                                           legacy: bool, reset: str) -> None:
    # On the legacy (pre-6.5) reads a subflow's id is its position in the kernel's list: closing
    # the initial subflow renumbers the join, which must not read as a new subflow (bytes twice).
    if legacy:
        monkeypatch.setattr(sockopt.capabilities, "full_info", False)
    other = "wlan0" if reset == "wwan0" else "wwan0"
    lab = make_lab(rate_mbit=SHAPED)
    before: dict[str, int] = {}

    def step(sample: Sample) -> None:
        if not before and sample.transfers[0].bytes > 1_500_000:
            before["bytes"] = sample.paths[reset].bytes
            assert lab.reset_subflows(reset) == 1

    with lab.client.entered():
        run = await sample_download(lab, lab.url(6_000_000), step)    # the rest: ≤ 4 s on cellular alone
    assert run.transfer.state == "done"
    assert [e.iface for e in run.events if e.kind == "subflow_down"] == [reset]
    assert sorted(e.iface for e in run.events if e.kind == "subflow_up") == ["wlan0", "wwan0"]
    final = run.samples[-1]
    assert final.paths[reset].subflows == 0 and final.paths[other].subflows == 1
    assert final.paths[reset].bytes >= before["bytes"] > 0
    closed = [s for s in final.transfers[0].subflows if s.closed]
    assert [(s.iface, s.rate_bps) for s in closed] == [(reset, 0.0)]
    assert closed[0].bytes_received == final.paths[reset].bytes
    assert final.paths[other].bytes == pytest.approx(run.payload(other), rel=0.03)
    assert_closed_path_bytes(run, reset, final.paths[reset].bytes)


@pytest.mark.lab
async def test_address_removed_then_announced_again_churns_the_subflow(make_lab: Callable[..., Lab]) -> None:
    lab = make_lab(rate_mbit=SHAPED)
    steps: dict[str, float] = {}

    def step(sample: Sample) -> None:
        if "removed" not in steps and sample.transfers[0].bytes > 1_500_000:
            lab.delete_endpoint("wwan0")        # the server's signal endpoint: RM_ADDR to the client
            steps["removed"] = sample.t
        elif "removed" in steps and "added" not in steps and sample.t > steps["removed"] + 1.0:
            lab.add_endpoint("wwan0")           # ADD_ADDR again: a new join on the cellular path
            steps["added"] = sample.t

    with lab.client.entered():
        run = await sample_download(lab, lab.url(SIZE), step)
    assert run.transfer.state == "done" and "added" in steps
    assert [k for k in kinds(run.events) if k.startswith("address")] == \
        ["address_announced", "address_removed", "address_announced"]
    assert kinds(run.events, "wwan0") == ["subflow_up", "subflow_down", "subflow_up"]
    final = run.samples[-1]
    cellular = [s for s in final.transfers[0].subflows if s.iface == "wwan0"]
    assert [(s.closed, s.join) for s in cellular] == [(False, True), (True, True)]
    assert cellular[0].local != cellular[1].local
    # The path keeps both subflows' bytes; the second one carried data of its own.
    assert final.paths["wwan0"].bytes == cellular[0].bytes_received + cellular[1].bytes_received
    assert cellular[0].bytes_received > 0 and final.paths["wwan0"].subflows == 1
    assert_closed_path_bytes(run, "wwan0", final.paths["wwan0"].bytes)
