"""`mptop watch` in the TUI: connection cards, sort, filter, selection → subflows and events, closing
connections, empty state, the header's event source.

The Pilot tests replay ``tests/tui/data/watch.ndjson``: a real ``mptop watch --json`` run in the lab beside
three MPTCP downloads (curl, curl, wget), a curl that fell back to TCP and a short curl that ends
(``tests/tui/data/make_watch_recording.py`` makes it)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from textual.pilot import Pilot
from textual.widgets import Input

from mptop.core import moments
from mptop.core.model import ConnectionSample, Event, HostInfo, Record, Sample
from mptop.core.recording import read_recording
from mptop.tui import format as fmt
from mptop.tui.app import MptopApp
from mptop.tui.eventlog import EventLog
from mptop.tui.subflows import SubflowsTable
from mptop.tui.toplist import TopList
from mptop.tui.watch_query import WatchQuery
from mptop.tui.watch_screen import EMPTY
from mptop.tui.watch_state import FADE_S, SMOOTH_S
from mptop.tui.watch_widgets import DIMMED, faded
from tests.tui.pilot import feed, screen_text, select, wait_for, widget_text

WATCH: list[Record] = read_recording(Path(__file__).parent / "data" / "watch.ndjson")
SAMPLES = moments.samples(WATCH)
LAST = SAMPLES[-1]
CLOSE = next(e for e in WATCH if isinstance(e, Event) and e.kind == "connection_closed")
BUSY = max(SAMPLES, key=lambda s: len(s.connections or []))      # the short download still running


def conns(sample: Sample) -> list[ConnectionSample]:
    return sample.connections or []


def by_process(sample: Sample, process: str) -> ConnectionSample:
    return next(c for c in conns(sample) if c.process == process)


def fallback_of(sample: Sample) -> ConnectionSample:
    return next(c for c in conns(sample) if c.status == "fallback")


def closing() -> ConnectionSample:
    """The short download, in the last sample that shows it."""
    before = [s for s in SAMPLES if s.t < CLOSE.t][-1]
    gone = {c.token for c in conns(before)} - {c.token for c in conns(SAMPLES[SAMPLES.index(before) + 1])}
    return next(c for c in conns(before) if c.token in gone)


@asynccontextmanager
async def watching(t: float | None = None, records: Sequence[Record] = WATCH,
                   size: tuple[int, int] = (120, 36)) -> AsyncIterator[tuple[MptopApp, Pilot]]:
    app = MptopApp(mode="watch", clock=False)
    async with app.run_test(size=size) as pilot:
        if t is not None:
            await feed(pilot, moments.until(records, t))
        yield app, pilot


def top_tokens(app: MptopApp) -> list[int]:
    return [int(key[1:]) for key in app.query_one(TopList).keys]


def top_panel(app: MptopApp) -> Any:
    return app.query_one("#top-panel")


def test_the_recording_has_what_the_tests_need() -> None:
    assert not conns(SAMPLES[0])                                          # an empty first poll
    assert {c.process for c in conns(LAST)} == {"curl", "wget"}
    assert [c.status for c in conns(LAST)].count("fallback") == 1
    assert all(len(c.subflows) == 2 for c in conns(LAST) if c.status == "mptcp")
    assert LAST.t - CLOSE.t > FADE_S                                      # the closed one has gone by the end


# -- cards ---------------------------------------------------------------------------------------
async def test_a_card_per_connection_with_process_ends_status_rates_bytes_and_age() -> None:
    async with watching(LAST.t) as (app, pilot):
        text = widget_text(app.query_one(TopList))
        for conn in conns(LAST):
            assert f"{conn.process} [{conn.pid}]  {conn.local} → {conn.remote}" in text
            line = next(line for line in text.splitlines() if f"{conn.local} → {conn.remote}" in line)
            assert line.rstrip(" │").endswith("TCP fallback" if conn.status == "fallback" else "MPTCP · 2 subflows")
            assert fmt.rate(conn.rate_bps) in text and fmt.size(conn.bytes) in text
            assert f"age {fmt.duration(conn.age_s):>7}" in text
        wget = by_process(LAST, "wget")          # an MPTCP connection: the rate of each of its paths
        for sub in wget.subflows:
            assert f"● {fmt.rate(sub.rate_bps)}" in text
        assert "● Wi-Fi" in text                 # the fallback: one path, named
        assert top_panel(app).border_title == f"Connections · {len(conns(LAST))} · by rate (3 s mean)"


async def test_cards_show_what_each_connection_receives_and_sends_apart() -> None:
    async with watching(LAST.t, records=[directed(r) for r in WATCH]) as (app, _pilot):
        text = widget_text(app.query_one(TopList))
        last = directed(LAST)
        assert isinstance(last, Sample)
        for conn in conns(last):
            line = next(line for line in text.splitlines() if f"{conn.local} → {conn.remote}" in line)
            card = text.split(line, 1)[1].splitlines()[1]             # the card's second line
            assert f"↓{fmt.rate(conn.rx_bps):>12}  ↑{fmt.rate(conn.tx_bps):>12}" in card


# -- sort ----------------------------------------------------------------------------------------
def mean_rate(token: int, sample: Sample) -> float:
    rates = [(s.t, c.rate_bps) for s in SAMPLES if s.t <= sample.t for c in conns(s) if c.token == token]
    recent = [r for t, r in rates if t >= rates[-1][0] - SMOOTH_S]
    return sum(recent) / len(recent)


def directed(record: Record) -> Record:
    """The recording with each direction's rate apart: received 3/4 of the rate, sent an order of its own."""
    if isinstance(record, Sample) and record.connections:
        return replace(record, connections=[replace(c, rx_bps=0.75 * c.rate_bps, tx_bps=float(c.token % 997))
                                            for c in record.connections])
    return record


async def test_s_sorts_by_smoothed_rate_received_sent_bytes_then_age() -> None:
    busy = directed(BUSY)
    assert isinstance(busy, Sample)
    live = conns(busy)
    expected = {
        "rate (3 s mean)": sorted(live, key=lambda c: (-mean_rate(c.token, BUSY), c.token)),
        "↓ received": sorted(live, key=lambda c: (-c.rx_bps, c.token)),
        "↑ sent": sorted(live, key=lambda c: (-c.tx_bps, c.token)),
        "bytes": sorted(live, key=lambda c: (-c.bytes, c.token)),
        "age (oldest first)": sorted(live, key=lambda c: (-c.age_s, c.token)),
    }
    distinct = ("↓ received", "↑ sent", "bytes", "age (oldest first)")
    assert len({tuple(c.token for c in expected[k]) for k in distinct}) == 4      # four different orders
    async with watching(BUSY.t, records=[directed(r) for r in WATCH]) as (app, pilot):
        for index, (words, order) in enumerate([*expected.items(), ("rate (3 s mean)", expected["rate (3 s mean)"])]):
            if index:
                await pilot.press("s")
            assert top_panel(app).border_title == f"Connections · {len(live)} · by {words}"
            assert top_tokens(app) == [c.token for c in order]


# -- filter --------------------------------------------------------------------------------------
async def type_filter(pilot: Pilot, text: str) -> None:
    await pilot.press("slash", *text)
    await pilot.pause()


async def test_filter_by_process_port_status_or_text_and_escape_clears_it() -> None:
    total = len(conns(LAST))
    fallback, wget = fallback_of(LAST), by_process(LAST, "wget")
    async with watching(LAST.t) as (app, pilot):
        box = app.query_one("#filter", Input)
        assert not box.display
        await type_filter(pilot, "process:wget")
        assert box.has_focus and top_tokens(app) == [wget.token]
        assert top_panel(app).border_title == f"Connections · 1 of {total} · by rate (3 s mean)"
        assert top_panel(app).border_subtitle == "filter process:wget · Esc clears"
        await pilot.press("enter")                       # kept, and the keys go to the list again
        assert app.query_one(TopList).has_focus and box.display and top_tokens(app) == [wget.token]
        await pilot.press("escape")
        assert not box.display and sorted(top_tokens(app)) == sorted(c.token for c in conns(LAST))
        assert top_panel(app).border_subtitle == "s sort · / filter"

        port = fallback.remote.rsplit(":", 1)[1]
        await pilot.press("slash")
        for text in (f"port:{port}", "status:fallback", "status:fall", port):   # free text: any address
            box.value = text                             # as if typed (typing is slow in Pilot)
            await pilot.pause()
            assert top_tokens(app) == [fallback.token], text
        box.value = "process:curl status:mptcp"
        await pilot.pause()
        assert sorted(top_tokens(app)) == sorted(c.token for c in conns(LAST)
                                                 if c.process == "curl" and c.status == "mptcp")


async def test_a_filter_it_cannot_read_says_why_and_one_matching_nothing_says_so() -> None:
    total = len(conns(LAST))
    async with watching(LAST.t) as (app, pilot):
        await type_filter(pilot, "port:x")
        assert len(top_tokens(app)) == total               # the bad term is left out
        assert top_panel(app).border_subtitle == "filter: port: a number from 1 to 65535, not 'x'"
        assert app.query_one("#filter", Input).has_class("-bad")
        app.query_one("#filter", Input).value = "process:nothere"
        await pilot.pause()
        assert top_tokens(app) == []
        assert (f"No connection matches process:nothere ({total} hidden) — Esc clears the filter"
                in widget_text(app.query_one(TopList)))


# -- selection -----------------------------------------------------------------------------------
def colours_of_line(app: MptopApp, needle: str) -> set[str | None]:
    """The foreground colours of the event log's text from the first word of ``needle`` on, on its line."""
    log = app.query_one(EventLog)
    for strip in app.screen._compositor.render_strips()[log.region.y: log.region.bottom]:
        if needle in strip.text:
            segments = list(strip)
            start = next(i for i, seg in enumerate(segments) if needle.split()[0] in seg.text)
            return {seg.style.color.name if seg.style and seg.style.color else None
                    for seg in segments[start:] if seg.text.strip(" │")}
    raise AssertionError(f"{needle!r} not in the event log")


async def test_selecting_a_connection_shows_its_subflows_and_dims_other_connections_events() -> None:
    wget, fallback = by_process(LAST, "wget"), fallback_of(LAST)
    async with watching(LAST.t, size=(120, 60)) as (app, pilot):
        await select(pilot, app, wget.token)
        table = app.query_one(SubflowsTable)
        assert [row.key.value for row in table.ordered_rows] == [f"c{wget.token}:{s.id}" for s in wget.subflows]
        assert {table.get_cell(f"c{wget.token}:{s.id}", "path").plain for s in wget.subflows} == \
            {"● Wi-Fi", "● Cellular"}
        title = str(app.query_one("#subflows-panel").border_title)
        assert title == f"Subflows of wget [{wget.pid}] · {wget.local} → {wget.remote}"
        log = app.query_one(EventLog)
        assert log.border_subtitle == f"wget [{wget.pid}] lit · other connections dimmed"

        muted = faded(app, DIMMED).color
        assert muted is not None
        own = [f"{s.local} → {s.remote}" for s in wget.subflows]
        other = f"{fallback.local} → {fallback.remote}"
        for pair in own:                                  # its subflow events in their path's colours
            assert muted.name not in colours_of_line(app, pair)
        assert colours_of_line(app, other) == {muted.name}
        assert muted.name not in colours_of_line(app, "server announced")   # about the host: lit

        await pilot.click(TopList, offset=(10, 1 + 2 * top_tokens(app).index(fallback.token)))
        assert [row.key.value for row in table.ordered_rows] == [f"c{fallback.token}:1"]
        assert "plain TCP" in widget_text(table)
        assert str(app.query_one("#subflows-panel").border_title).endswith("· TCP fallback")
        assert muted.name not in colours_of_line(app, other)
        assert colours_of_line(app, own[0]) == {muted.name}


# -- a connection closes -------------------------------------------------------------------------
async def test_a_closed_connection_fades_out_in_place_then_goes() -> None:
    short = closing()
    after = [s for s in SAMPLES if s.t >= CLOSE.t]
    async with watching(after[0].t) as (app, pilot):
        assert short.token in top_tokens(app)
        line = next(line for line in widget_text(app.query_one(TopList)).splitlines() if short.local in line)
        assert line.rstrip(" │").endswith("closed")
        assert top_panel(app).border_title.startswith(f"Connections · {len(conns(after[0]))} ·")  # live ones
        await select(pilot, app, short.token)             # its last subflows, all closed
        table = app.query_one(SubflowsTable)
        assert len(table.rows) == 2 and "closed" in str(app.query_one("#subflows-panel").border_title)
        fading = [s for s in after if s.t - CLOSE.t <= FADE_S][-1]
        await feed(pilot, moments.until(WATCH, fading.t)[len(moments.until(WATCH, after[0].t)):])
        assert short.token in top_tokens(app)
        await feed(pilot, moments.until(WATCH, LAST.t)[len(moments.until(WATCH, fading.t)):])
        assert short.token not in top_tokens(app)
        assert app.query_one(TopList).selected_id is not None     # the highlight moved to a live card


# -- empty state and header ----------------------------------------------------------------------
async def test_empty_states_say_what_to_do() -> None:
    def top_text() -> str:
        return widget_text(app.query_one(TopList))

    async with watching() as (app, pilot):
        await wait_for(pilot, lambda: "waiting for the first poll…" in top_text(), top_text)  # the first frame
        await feed(pilot, moments.until(WATCH, SAMPLES[0].t))
        await wait_for(pilot, lambda: EMPTY in top_text().replace("│", "").replace("\n", " ").replace("  ", " "),
                       top_text)
        assert top_panel(app).border_title == "Connections · 0 · by rate (3 s mean)"
        assert str(app.query_one("#subflows-panel").border_title) == "Subflows"


async def test_the_header_says_whether_events_come_from_netlink_or_are_inferred() -> None:
    host = WATCH[0]
    assert isinstance(host, HostInfo) and host.events == "netlink"     # recorded as root
    async with watching(SAMPLES[0].t) as (app, pilot):
        assert "events netlink" in screen_text(app)
    unprivileged = [replace(host, events="inferred"), *WATCH[1:]]
    async with watching(SAMPLES[0].t, unprivileged) as (app, pilot):
        assert "events inferred (no CAP_NET_ADMIN)" in screen_text(app)


def test_filter_words() -> None:
    query = WatchQuery.parse("Process:fire*  PORT:443 status:con 192.0.2")
    assert (query.only.process, query.only.port, query.only.status, query.words) == \
        ("fire*", 443, "connecting", ("192.0.2",))
    assert WatchQuery.parse("pid:42").only.process == "42"
    assert WatchQuery.parse("192.0.2.1:80").words == ("192.0.2.1:80",)      # an address, not a key
    assert WatchQuery.parse("status:").error == "status: needs a value, e.g. status:fallback"
    assert WatchQuery.parse("status:t").only.status == "tcp"
    assert WatchQuery.parse("status:x").error == "status: one of mptcp, fallback, tcp, connecting, not 'x'"
