"""The event log as stories, and the view state the panels draw from (no Textual needed).

The story of a whole run is checked on the real two-transfer recording; the small hand-built samples
below pin the arithmetic of single sentences.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence

from mptop.core import moments
from mptop.core.model import (
    Event,
    HostInfo,
    PathSample,
    Record,
    Sample,
    SubflowSample,
    Summary,
    TransferSample,
    TransferSummary,
)
from mptop.core.recording import read_recording
from mptop.tui import format as fmt
from mptop.tui.state import ViewState
from mptop.tui.story import LogEntry
from tests import ASSETS

# `mptop get` of an MPTCP download beside a fallen-back one, Wi-Fi down for ~3 s (assets/record.py)
TWO: list[Record] = read_recording(ASSETS / "two-transfers.ndjson")


def sample(t: float, wifi_bytes: int, cell_bytes: int, wifi_rate: float = 0.0) -> Sample:
    subs = [SubflowSample(1, "a:1", "b:80", "wlan0", "Wi-Fi", wifi_bytes, wifi_rate, 12.0, False),
            SubflowSample(2, "c:2", "d:80", "wwan0", "Cellular", cell_bytes, 1e7, 40.0, False, join=True)]
    transfer = TransferSample(1, "http://192.0.2.1/bytes/100", wifi_bytes + cell_bytes, None, 0.0, "mptcp",
                              subflows=subs)
    return Sample(t, [transfer], {
        "wlan0": PathSample("Wi-Fi", wifi_rate, wifi_bytes),
        "wwan0": PathSample("Cellular", 1e7, cell_bytes),
    })


def texts(state: ViewState) -> list[str]:
    return [entry.text for entry in state.story.entries]


def test_an_outage_is_one_line_that_grows_until_recovery() -> None:
    state = ViewState()
    state.ingest(sample(10.0, 5_000, 1_000))
    state.ingest(Event(10.2, "link_down", "wlan0"))
    state.ingest(Event(10.7, "path_stalled", "wlan0"))
    state.ingest(sample(12.0, 5_000, 3_000))
    assert texts(state) == ["Wi-Fi link down — Cellular carrying 100 % — for 1.8 s"]
    assert state.story.entries[0].severity == "warn"
    state.ingest(Event(15.2, "link_up", "wlan0"))        # link back, traffic not yet
    state.ingest(sample(15.5, 6_000, 5_000))              # 1 000 of 5 000 bytes since the drop came on Wi-Fi
    assert texts(state) == ["Wi-Fi link down — Cellular carrying 80 % — for 5.3 s"]
    state.ingest(Event(15.9, "path_recovered", "wlan0"))
    assert texts(state) == ["Wi-Fi link down — Cellular carried 80 % — Wi-Fi back after 5.7 s (link up after 5.0 s)"]
    assert state.story.entries[0].severity == "good"
    # the path names are separate parts, so the view can colour them
    assert ("Cellular", "wwan0") in state.story.entries[0].parts


def test_a_stall_without_link_events_and_a_lone_link_up() -> None:
    state = ViewState()
    state.ingest(sample(1.0, 100, 100))
    state.ingest(Event(1.5, "path_stalled", "wwan0"))
    state.ingest(sample(2.0, 900, 100))
    state.ingest(Event(3.0, "path_recovered", "wwan0"))
    state.ingest(Event(4.0, "link_up", "wlan0"))
    assert texts(state) == ["Cellular stalled — Wi-Fi carried 100 % — Cellular back after 1.5 s", "Wi-Fi link up"]


def test_other_events_read_as_sentences_and_done_tells_the_split() -> None:
    state = ViewState()
    state.ingest(HostInfo("6.18", True, "in-kernel", "default", 2, 2, labels={"wlan0": "Wi-Fi", "wwan0": "Cellular"}))
    state.ingest(Event(0.1, "subflow_up", "wwan0", 1, "MP_JOIN 198.51.100.2 → 198.51.100.1"))
    state.ingest(Event(0.2, "address_announced", None, 1))
    state.ingest(Event(0.3, "fallback", "wlan0", 2, "server does not speak MPTCP"))
    state.ingest(Event(0.4, "some_new_kind", None, None, "x"))
    state.ingest(Event(0.5, "subflow_down", "wlan0", 1, "Wi-Fi subflow closed: 192.0.2.2:1 → 192.0.2.1:80 (reset)"))
    state.ingest(Event(0.6, "address_removed", None, 1, "server removed 198.51.100.1 (id 2)"))
    state.ingest(Event(0.7, "scenario", None, None, "Wi-Fi: link down"))
    state.ingest(Event(9.0, "transfer_done", None, 1, "ignored when bytes are known"))
    state.ingest(sample(9.0, 7_500_000, 2_500_000))
    assert texts(state) == [
        "#1 subflow up on Cellular — MP_JOIN 198.51.100.2 → 198.51.100.1",
        "#1 peer announced an address",
        "#2 fell back to TCP (Wi-Fi) — server does not speak MPTCP",
        "some new kind — x",
        "#1 subflow closed on Wi-Fi — 192.0.2.2:1 → 192.0.2.1:80 (reset)",
        "#1 server removed 198.51.100.1 (id 2)",
        "scenario · Wi-Fi: link down",
        "#1 done — 9.5 MiB · Wi-Fi 75 % · Cellular 25 %",
    ]


def test_state_keeps_history_window_and_stable_colour_slots() -> None:
    state = ViewState(window_s=10.0)
    state.ingest(HostInfo("6.18", True, None, None, None, None, labels={"eth9": "Ethernet"}))
    for i in range(100):
        state.ingest(sample(i * 0.25, i, i, wifi_rate=float(i)))
    points = state.history["wlan0"].points
    assert points[-1] == (24.75, 99.0)
    assert points[0][0] >= 24.75 - 10.0 - 1.0                # trimmed to the window (plus a margin)
    assert state.total.points[-1] == (24.75, 99.0 + 1e7)
    assert (state.slot("wlan0"), state.slot("wwan0"), state.slot("eth9")) == (0, 1, 2)
    assert state.label("wwan0") == "Cellular" and state.label("unknown0") == "unknown0"
    assert state.transfer(1) is state.sample.transfers[0] and state.transfer(2) is None  # type: ignore[union-attr]


def test_the_summary_closes_the_log_with_the_split_per_path() -> None:
    state = ViewState()
    state.ingest(sample(1.0, 0, 0))
    ok = TransferSummary(1, "u1", None, 3_000_000, None, "mptcp", None, True, None,
                         {"wlan0": 2_250_000, "wwan0": 750_000})
    cut = TransferSummary(2, "u2", None, 1_000_000, None, "fallback", "x", False, "stopped", {"wlan0": 1_000_000})
    bad = TransferSummary(3, "u3", None, 0, None, "tcp", None, False, "HTTP 404", {})
    state.ingest(Summary(30.0, [ok]))
    state.ingest(Summary(42.0, [ok, cut, bad]))
    assert texts(state) == [
        "run ended after 30 s — 2.9 MiB · Wi-Fi 75 % · Cellular 25 %",
        "run ended after 42 s — 3.8 MiB · Wi-Fi 81 % · Cellular 19 % · 1 stopped · 1 of 3 failed",
    ]
    assert [e.severity for e in state.story.entries] == ["good", "bad"]


def ingested(records: Sequence[Record]) -> ViewState:
    state = ViewState()
    for record in records:
        state.ingest(record)
    return state


def last_sample_until(t: float) -> Sample:
    return moments.samples(moments.until(TWO, t))[-1]


def bytes_per_path(counts: Iterable[tuple[str, int]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for iface, n in counts:
        out[iface] = out.get(iface, 0) + n
    return out


def shares(per_path: dict[str, int], label: Callable[[str], str]) -> str:
    """`` · Wi-Fi 62 % · Cellular 38 %``: each path's part of the bytes, the biggest first."""
    total = sum(per_path.values())
    return "".join(f" · {label(iface)} {fmt.percent(n / total)}"
                   for iface, n in sorted(per_path.items(), key=lambda kv: -kv[1]))


def outage_events() -> tuple[Event, Event, Event]:
    """The recording's first link down, then that link's up and its path's recovery."""
    down = moments.first_event(TWO, "link_down")
    up, back = (next(r for r in TWO if isinstance(r, Event) and r.kind == kind and r.iface == down.iface
                     and r.t >= down.t) for kind in ("link_up", "path_recovered"))
    return down, up, back


def outage_line(state: ViewState, down: Event) -> LogEntry:
    lines = [entry for entry in state.story.entries if entry.t == down.t]
    assert len(lines) == 1                      # link down, stalled, link up, recovered: all one line
    return lines[0]


def test_the_real_outage_is_one_line_that_grows_until_recovery() -> None:
    down, up, back = outage_events()
    during = ingested(moments.until(TWO, moments.stalled(TWO)))
    wifi = re.escape(during.label(down.iface or ""))
    cellular = re.escape(during.label(next(i for i in during.labels if i != down.iface)))
    line = outage_line(during, down)
    assert line.severity == "warn"
    assert re.fullmatch(rf"{wifi} link down — {cellular} carrying \d+ % — for {during.now - down.t:.1f} s", line.text)
    state = ingested(TWO)
    line = outage_line(state, down)
    assert line.severity == "good"
    assert re.fullmatch(rf"{wifi} link down — {cellular} carried \d+ % — {wifi} back after {back.t - down.t:.1f} s "
                        rf"\(link up after {up.t - down.t:.1f} s\)", line.text)


def test_the_real_outage_credits_only_what_the_counters_show_after_the_drop() -> None:
    down, _, _ = outage_events()
    seen_down = next(s for s in moments.samples(TWO) if s.t >= down.t)     # the poll that saw the link go down
    now = moments.stalled(TWO)
    state = ingested(moments.until(TWO, now))
    current = last_sample_until(now)
    carried = {iface: current.paths[iface].bytes - seen_down.paths[iface].bytes for iface in current.paths}
    assert carried[down.iface or ""] == 0                                  # no byte on the dead link
    (other, count), = [(iface, n) for iface, n in carried.items() if iface != down.iface]
    share = fmt.percent(count / sum(carried.values()))
    assert f"{state.label(other)} carrying {share}" in outage_line(state, down).text


def test_the_real_run_ends_with_each_transfer_done_and_the_summary() -> None:
    state = ingested(TWO)
    lines = [entry.text for entry in state.story.entries]
    done = [r for r in TWO if isinstance(r, Event) and r.kind == "transfer_done"]
    assert len(done) == 2
    for event in done:                        # told with the totals of the sample that follows the event
        after = next(s for s in moments.samples(TWO) if s.t >= event.t)
        transfer = next(t for t in after.transfers if t.id == event.transfer)
        assert transfer.state == "done"
        per_path = bytes_per_path((sub.iface, sub.bytes_received) for sub in transfer.subflows)
        assert f"#{transfer.id} done — {fmt.size(transfer.bytes)}{shares(per_path, state.label)}" in lines
    summary = TWO[-1]
    assert isinstance(summary, Summary) and all(t.ok for t in summary.transfers)
    per_path = bytes_per_path(kv for summed in summary.transfers for kv in summed.path_bytes.items())
    total = sum(t.bytes for t in summary.transfers)
    assert lines[-1] == f"run ended after {fmt.duration(summary.duration_s)} — {fmt.size(total)}" + shares(
        per_path, state.label)
    assert state.story.entries[-1].severity == "good"


def test_fallback_sentences_say_what_the_core_said_once() -> None:
    # The core's details are whole verdicts: MPTCP disabled on the client is "plain TCP", not a
    # fallback, and watch's detail (reason + connection) must not read "fell back to TCP" twice.
    state = ViewState()
    state.ingest(Event(0.1, "fallback", None, 1, "plain TCP: MPTCP is disabled on this host (net.mptcp.enabled=0)"))
    state.ingest(Event(0.2, "fallback", None, 2, "fell back to TCP: after the MPTCP handshake (cause unknown)"))
    watch = "fell back to TCP: cause unknown — curl 192.0.2.2:1 → 192.0.2.1:80"
    state.ingest(Event(0.3, "fallback", None, None, watch))
    assert texts(state) == [
        "#1 plain TCP: MPTCP is disabled on this host (net.mptcp.enabled=0)",
        "#2 fell back to TCP: after the MPTCP handshake (cause unknown)",
        watch,
    ]


def test_both_links_down_no_path_carries_and_back_needs_bytes() -> None:
    # Wi-Fi goes down, then Cellular: nothing moves.  The Wi-Fi line must not keep saying
    # "Cellular carrying 100 %", the transfer's stall is told, and "back" needs bytes.
    state = ViewState()
    state.ingest(HostInfo("6.18", True, None, None, None, None, labels={"wlan0": "Wi-Fi", "wwan0": "Cellular"}))
    state.ingest(sample(10.0, 5_000, 1_000))
    state.ingest(Event(10.0, "link_down", "wlan0"))
    state.ingest(Event(10.5, "path_stalled", "wlan0"))
    state.ingest(sample(11.0, 5_000, 2_000))
    state.ingest(Event(11.0, "link_down", "wwan0"))
    state.ingest(Event(11.5, "path_stalled", "wwan0"))
    state.ingest(Event(11.5, "transfer_stalled", None, 1, "stalled — no path up"))
    state.ingest(sample(21.5, 5_000, 2_000))
    assert texts(state) == [
        "Wi-Fi link down — no path carrying — for 11.5 s",
        "Cellular link down — no path carrying — for 10.5 s",
        "#1 stalled — no path up (10.0 s)",
    ]
    assert state.story.entries[2].severity == "bad"
    state.ingest(Event(21.5, "link_up", "wlan0"))          # link up, no byte yet: not "back"
    state.ingest(sample(22.0, 5_000, 2_000))
    assert "back" not in texts(state)[0] and "(link up after 11.5 s)" not in texts(state)[0]
    state.ingest(Event(22.5, "link_up", "wwan0"))
    state.ingest(Event(23.0, "path_recovered", "wwan0"))
    state.ingest(Event(23.0, "transfer_resumed", None, 1, "resumed after 12.0 s"))
    state.ingest(sample(23.0, 5_000, 9_000))
    state.ingest(Event(24.0, "path_recovered", "wlan0"))
    assert texts(state) == [
        "Wi-Fi link down — Cellular carried 100 % (itself out 12.0 s) — Wi-Fi back after 14.0 s"
        " (link up after 11.5 s)",
        "Cellular link down — Cellular back after 12.0 s (link up after 11.5 s)",
        "#1 stalled — no path up — resumed after 12.0 s",
    ]
    # A link that goes down and up while its path carried nothing never stalled: no "back".
    state.ingest(Event(30.0, "link_down", "wlan0"))
    state.ingest(Event(32.0, "link_up", "wlan0"))
    assert texts(state)[-1] == "Wi-Fi link down — link up after 2.0 s"


def test_a_link_down_that_never_stalled_is_told_in_the_past_once_the_link_is_up() -> None:
    state = ViewState()
    state.ingest(sample(1.0, 100, 100))
    state.ingest(Event(1.0, "link_down", "wlan0"))
    state.ingest(sample(2.0, 100, 900))
    assert texts(state) == ["Wi-Fi link down — Cellular carrying 100 % — for 1.0 s"]
    state.ingest(Event(3.0, "link_up", "wlan0"))
    assert texts(state) == ["Wi-Fi link down — Cellular carried 100 % — link up after 2.0 s"]
