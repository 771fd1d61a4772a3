"""A per-subflow stall against the real kernel: two subflows on the same interface (a second client
address on wlan0 with its own `subflow` endpoint), one silenced with iptables while the other carries on.

The other subflows usually carry on through the silence, but not always: now and then the kernel
schedules new data onto the silenced subflow, and the whole connection waits (3.5 s seen, every
subflow's counters still) until that subflow's backed-off retransmission gets through.  So every
stall or recovery reported besides the silenced subflow's own must be one the kernel's counters (which
the samples carry) show: a path or subflow stalled only when it got no byte for as long as it is
said to have waited."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from mptop.core.events import stall_threshold
from mptop.core.model import Event, Sample
from mptop.core.stalls import SUBFLOW_QUIET_MIN_S
from mptop.core.watch import WatchSampler
from mptop.lab import Lab
from tests.core.sampling import sample_download

pytestmark = pytest.mark.lab

RATES = {"wlan0": 20, "wwan0": 10}
SILENCE_S = 6.0            # twice SUBFLOW_QUIET_MIN_S: the stall comes well inside it
# ~21 s at 30 Mbit/s: room for the silence and the subflow's RTO backoff after it (its retransmission
# timer, doubled while silenced, fires again a few seconds after the silence ends) and bytes after that.
# Once both samplers have seen the subflow come back the links are unshaped: the rest takes a moment.
SIZE = 80_000_000
SECOND = "192.0.2.3"       # the second client address on wlan0


def two_subflows_on_wlan0(lab: Lab) -> None:
    wlan = lab.path("wlan0")
    assert wlan.client_addr != SECOND
    lab.run(lab.client, ["ip", "addr", "add", f"{SECOND}/{wlan.prefix}", "dev", "wlan0"])
    lab.run(lab.client, ["ip", "mptcp", "endpoint", "add", SECOND, "dev", "wlan0", "subflow"])


def silence(lab: Lab, on: bool) -> None:
    for chain, side in (("INPUT", "-d"), ("OUTPUT", "-s")):
        lab.run(lab.client, ["iptables", "-A" if on else "-D", chain, side, SECOND, "-j", "DROP"])


def second_bytes(sample: Sample) -> int:
    return sum(s.bytes_received for t in sample.transfers for s in t.subflows if s.local.startswith(SECOND + ":"))


def stalls(events: list[Event]) -> list[Event]:
    return [e for e in events if e.kind in ("subflow_stalled", "subflow_recovered")]


def subflow_bytes(sample: Sample) -> dict[str, int]:
    """Each subflow's bytes received, by local address, in a download's or in watch's sample."""
    subflows = [s for t in sample.transfers for s in t.subflows] + \
        [s for c in sample.connections or [] for s in c.subflows]
    return {s.local: s.bytes_received for s in subflows}


def quiet(samples: list[Sample], t: float, span: float, local: str) -> bool:
    """Subflows whose local address starts with ``local`` got no byte in the ``span`` s up to ``t``."""
    [now] = [s for s in samples if s.t == t]
    then = [s for s in samples if s.t <= t - span]
    before, after = (subflow_bytes(then[-1]) if then else {}), subflow_bytes(now)
    return bool(then) and all(after[k] == before.get(k, 0) for k in after if k.startswith(local))


def unexplained(events: list[Event], samples: list[Sample], interval: float, exempt: str = SECOND) -> list[Event]:
    """The stalls and recoveries, besides those of the subflow from ``exempt`` (the silenced one), that
    the counters do not show."""
    out = []
    for e in events:
        local = e.detail.split(": ", 1)[-1].split(" → ")[0]
        if e.kind == "subflow_stalled" and not local.startswith(exempt + ":"):
            shown = quiet(samples, e.t, SUBFLOW_QUIET_MIN_S, local)
        elif e.kind == "subflow_recovered" and not local.startswith(exempt + ":"):
            shown = not quiet(samples, e.t, interval / 2, local)
        elif e.kind == "path_stalled" and e.iface == "wlan0":
            shown = quiet(samples, e.t, stall_threshold(interval), "192.0.2.")
        else:
            continue
        if not shown:
            out.append(e)
    return out


async def test_a_silenced_subflow_stalls_within_two_polls_and_comes_back(make_lab: Callable[..., Lab]) -> None:
    lab = make_lab(rate_mbit=RATES)
    two_subflows_on_wlan0(lab)
    steps: dict[str, float] = {}
    watch = WatchSampler(interval=0.25)         # `mptop watch` polled beside it: the same stall
    watched: list[Event] = []
    watch_samples: list[Sample] = []

    def step(sample: Sample) -> None:
        polled, events = watch.poll()
        watched.extend(events)
        watch_samples.append(polled)
        now = time.monotonic()
        if "silent" not in steps and second_bytes(sample) > 1_000_000:
            silence(lab, True)
            steps["silent"] = now
        elif "silent" in steps and "heard" not in steps and now - steps["silent"] >= SILENCE_S:
            silence(lab, False)
            steps["heard"] = now
            steps["heard_bytes"] = second_bytes(sample)
        elif "heard" in steps and "unshaped" not in steps and second_bytes(sample) > steps["heard_bytes"] \
                and any(e.kind == "subflow_recovered" for e in watched):
            for iface in RATES:
                lab.set_rate(iface, None)
            steps["unshaped"] = now

    with lab.client.entered():
        try:
            run = await sample_download(lab, lab.url(SIZE), step, deadline_s=180)
        finally:
            watch.close()
    assert "unshaped" in steps and run.transfer.sha256 == lab.content_sha256(SIZE)
    found = [e for e in stalls(run.events) if SECOND in e.detail]
    assert [e.kind for e in found] == ["subflow_stalled", "subflow_recovered"], found
    stalled, recovered = found
    assert stalled.iface == "wlan0" and SECOND in stalled.detail and "Wi-Fi subflow stalled" in stalled.detail
    # At the first poll that is both 2 polls and SUBFLOW_QUIET_MIN_S after the subflow's last byte
    # (healthy subflows sharing a path went quiet for up to 1.8 s): at --interval 0.25, the poll after 3 s.
    before = [s for s in run.samples if s.t <= stalled.t]
    last = max(i for i in range(1, len(before)) if second_bytes(before[i]) > second_bytes(before[i - 1]))
    quiet = before[last + 1:]
    assert len(quiet) >= 2 and all(s.t - before[last].t < SUBFLOW_QUIET_MIN_S for s in quiet[:-1]), \
        [round(s.t - before[last].t, 2) for s in quiet]
    # Back when its bytes flow again, at the first poll that shows them.
    after = [s for s in run.samples if s.t >= recovered.t]
    assert second_bytes(after[0]) > max(second_bytes(s) for s in run.samples if s.t < recovered.t)
    # Nothing else said stalled that was not (the path as a whole carries on, mostly: see above).
    assert unexplained(run.events, run.samples, 0.25) == []
    seen = [e.kind for e in stalls(watched) if SECOND in e.detail]
    assert seen == ["subflow_stalled", "subflow_recovered"], stalls(watched)
    assert unexplained(watched, watch_samples, 0.25) == []


async def test_a_healthy_pair_of_subflows_on_one_path_stalls_only_when_the_counters_say_so(
        make_lab: Callable[..., Lab]) -> None:
    """Healthy subflows sharing a path go quiet now and then (up to 1.8 s seen under load, below
    SUBFLOW_QUIET_MIN_S): no stall then.  Should the kernel keep one quiet for longer, a stall is what
    its counters show, and is said so."""
    lab = make_lab(rate_mbit=RATES)
    two_subflows_on_wlan0(lab)
    watch = WatchSampler(interval=0.25)
    watched: list[Event] = []
    watch_samples: list[Sample] = []

    def step(_: Sample) -> None:
        polled, events = watch.poll()
        watched.extend(events)
        watch_samples.append(polled)

    with lab.client.entered():
        try:
            run = await sample_download(lab, lab.url(40_000_000), step, deadline_s=120)
        finally:
            watch.close()
    assert second_bytes(run.samples[-1]) > 1_000_000          # the second subflow did carry data
    assert unexplained(run.events, run.samples, 0.25, exempt="none") == []
    assert unexplained(watched, watch_samples, 0.25, exempt="none") == []
