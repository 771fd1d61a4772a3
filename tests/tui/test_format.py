"""How the views print numbers, times, URLs and badges."""

from __future__ import annotations

from dataclasses import replace

from mptop.core.model import SubflowSample, TransferSample
from mptop.tui import format as fmt
from mptop.tui.chart import bin_step, buckets, robust_top


def test_stamps_and_percentages() -> None:
    assert fmt.rate(-5.0) == fmt.rate(0.0)                    # a counter glitch never prints a negative rate
    assert [fmt.stamp(t) for t in (0.0, 12.34, 75.0, 3725.0)] == ["00:00.0", "00:12.3", "01:15.0", "1:02:05"]
    assert fmt.percent(0.456) == "46 %" and fmt.percent(1.7) == "100 %"


def test_short_url_keeps_host_and_tail() -> None:
    url = "http://192.0.2.1:8080/some/long/path/file-200000000.bin"
    assert fmt.short_url(url, 80) == "192.0.2.1:8080/some/long/path/file-200000000.bin"
    assert fmt.short_url(url, 40) == "192.0.2.1:8080/…/path/file-200000000.bin"
    assert fmt.short_url(url, 26) == "192.0.2.1:8080/…000000.bin"        # no segment starts early enough
    assert fmt.short_url("http://192.0.2.1/bytes/200000000", 22) == "192.0.2.1/…/200000000"
    long_host = fmt.short_url("https://a-very-long-host-name.example.org/x", 20)
    assert len(long_host) == 20 and long_host.startswith("a-very") and long_host.endswith("org/x")
    assert fmt.clip("TCP fallback — server", 10) == "TCP fallb…"


def transfer(status: str, reason: str | None = None, closed: bool = False) -> TransferSample:
    subs = [SubflowSample(i, "a:1", "b:2", "wlan0", "Wi-Fi", 0, 0.0, None, False, closed=closed and i == 2)
            for i in (1, 2)]
    return TransferSample(1, "http://x/", 0, None, 0.0, status, reason, subs)  # type: ignore[arg-type]


def test_badges_say_mptcp_or_why_not() -> None:
    assert fmt.badge(transfer("mptcp")) == ("MPTCP · 2 subflows", "mptcp")
    assert fmt.badge(transfer("mptcp", closed=True))[0] == "MPTCP · 1 subflow"
    assert fmt.badge(transfer("fallback"))[0] == "TCP fallback — server does not speak MPTCP"
    assert fmt.badge(transfer("fallback", "MP_CAPABLE stripped by a middlebox"))[0] == (
        "TCP fallback — MP_CAPABLE stripped by a middlebox")
    assert fmt.badge(transfer("fallback"), short=True)[0] == "TCP fallback"
    assert fmt.badge(transfer("tcp")) == ("TCP — MPTCP disabled on this host", "tcp")


def test_a_transfer_that_ended_before_connecting_is_not_connecting() -> None:
    refused = replace(transfer("connecting"), state="failed", error="no such file or directory: /proc/nope")
    assert fmt.badge(refused) == ("not connected", "connecting")
    assert fmt.badge(replace(transfer("connecting"), state="done"))[0] == "done"
    assert fmt.badge(replace(transfer("connecting"), state="connecting"))[0] == "connecting…"


def test_chart_buckets_follow_time_not_sample_count() -> None:
    points = [(t / 4, 10.0 if t < 20 else 0.0) for t in range(1, 41)]     # 10 s at 4 Hz: 5 s busy, 5 s idle
    cols = buckets(points, now=10.0, window=20.0, width=10)               # 2 s per column, now's the last
    assert cols[:4] == [None] * 4                                           # before the run started
    assert cols[4:6] == [10.0, 10.0] and cols[-3:] == [0.0, 0.0, 0.0]
    wide = buckets(points, now=10.0, window=10.0, width=100)                # 0.1 s per column: no holes
    assert None not in wide[2:] and wide[45] == 10.0 and wide[55] == 0.0 and wide[-1] == 0.0


def test_finished_transfers_count_every_subflow_and_flags_stay_short() -> None:
    done = transfer("mptcp", closed=True)
    done.subflows[0].closed = True
    done.state = "done"
    assert fmt.badge(done)[0] == "MPTCP · 2 subflows"
    sub = done.subflows[1]
    assert fmt.subflow_flags(sub) == "closed"
    sub.closed, sub.join, sub.backup = False, True, True
    assert fmt.subflow_flags(sub) == "join backup"
    sub.join = False
    assert fmt.subflow_flags(sub) == "init backup"


def test_progress_bar_is_split_by_the_bytes_each_path_carried() -> None:
    from rich.style import Style

    from mptop.tui.cards import CardStyles, split_bar

    wifi, cell = Style(color="blue"), Style(color="red")
    styles = CardStyles(badge=Style(), dim=Style(dim=True), track=Style(color="grey50"), error=Style(),
                        path={"wlan0": wifi, "wwan0": cell})
    bar = split_bar(20, 0.5, {"wlan0": 3_000, "wwan0": 1_000}, styles)
    assert bar.plain == "━" * 10 + "╺" + "━" * 9
    coloured = [(span.end - span.start, span.style) for span in bar.spans]
    assert coloured[:2] == [(8, wifi), (2, cell)] and coloured[2][1] == styles.track
    dashed = split_bar(8, 1.0, {"wwan0": 1, "wlan0": 1}, styles, glyph="┅")
    assert dashed.plain == "┅" * 8 and sum(n for n, _ in [(s.end - s.start, 0) for s in dashed.spans]) == 8


def test_a_done_transfer_shows_what_it_averaged_not_its_last_rate() -> None:
    from rich.console import Console
    from rich.style import Style

    from mptop.core.model import Sample
    from mptop.sinks import plain_line
    from mptop.tui.cards import CardStyles, TransferCard

    styles = CardStyles(Style(), Style(), Style(), Style(), {"wlan0": Style()})
    done = transfer("mptcp")
    done.bytes, done.total, done.state, done.rate_bps, done.avg_bps = 1000, 1000, "done", 48.7e6, 37.5e6

    def card(t: TransferSample) -> str:
        console = Console(width=100, record=True, color_system=None)
        console.print(TransferCard(t, "bits", styles))
        return console.export_text()

    assert "avg 37.5 Mbit/s" in card(done) and "48.7" not in card(done) and "✓ done" in card(done)
    line = plain_line(Sample(t=1.0, transfers=[done], paths={}))
    assert "avg 37.5 Mbit/s" in line and "48.7" not in line
    done.avg_bps = None                             # a recording from before the field: the last rate
    assert "48.7 Mbit/s" in card(done) and "avg" not in card(done)
    running = transfer("mptcp")
    running.rate_bps, running.avg_bps = 20e6, 37.5e6  # avg only counts once done
    line = plain_line(Sample(t=1.0, transfers=[running], paths={}))
    assert "20.0 Mbit/s" in card(running) and "avg 37.5" not in line
    assert line.endswith("(rates 1 s avg)")          # the one rate definition of the line, said once


def test_the_console_shows_rate_shares_while_running_and_byte_shares_once_done() -> None:
    from rich.console import Console

    from mptop.core.model import PathSample, Sample
    from mptop.sinks.live import LiveScreen

    t = transfer("mptcp")
    t.bytes, t.total, t.rate_bps, t.eta_s = 600, 1000, 8e6, 2.0
    paths = {"wlan0": PathSample("Wi-Fi", 0.0, 750, share=0.0), "wwan0": PathSample("Cellular", 2e6, 250, share=1.0)}
    screen = LiveScreen("bits")
    screen.sample = Sample(t=1.0, transfers=[t], paths=paths)

    def shown() -> list[str]:
        console = Console(width=100, record=True, color_system=None)
        console.print(screen)
        return console.export_text().splitlines()

    wifi = next(line for line in shown() if "wlan0" in line)
    assert "  0%" in wifi and "0 bit/s" in wifi and any("ETA 2.0 s" in line for line in shown())
    t.state, t.bytes, t.avg_bps = "done", 1000, 4e6
    lines = shown()
    wifi, cell = (next(line for line in lines if iface in line) for iface in ("wlan0", "wwan0"))
    assert " 75%" in wifi and " 25%" in cell and "bit/s" not in wifi + cell      # the bytes each carried
    assert any("avg 4.0 Mbit/s" in line and "✓ done" in line for line in lines)
    t.subflows[1].closed = True                 # done: its subflows close, the badge still counts them
    assert any("MPTCP · 2 subflows" in line for line in shown())


def test_a_transfer_the_quit_stopped_says_how_to_resume() -> None:
    from mptop.commands._tui_run import with_resume_hint
    from mptop.core.model import Summary, TransferSummary

    def summary_of(error: str | None, ok: bool = False) -> Summary:
        return Summary(1.0, [TransferSummary(1, "http://x/f", None, 10, None, "mptcp", None, ok, error)])

    assert with_resume_hint(summary_of("stopped")).transfers[0].error == \
        "stopped before the end (run the same command to resume)"
    assert with_resume_hint(summary_of("HTTP 404 Not Found")).transfers[0].error == "HTTP 404 Not Found"
    assert with_resume_hint(summary_of(None, ok=True)).transfers[0].error is None


def test_the_done_line_says_resumed_and_explains_paths_above_the_file() -> None:
    from mptop.core.model import TransferSummary
    from mptop.sinks import done_line

    resumed = TransferSummary(1, "http://x/f", "f", 100 * 2**20, "ab", "mptcp", None, True, None,
                              {"wlan0": 30 * 2**20, "wwan0": 10 * 2**20 + 300}, 4.0, resumed=int(59.6 * 2**20))
    line = done_line(resumed, 4.0)
    assert line == ("http://x/f → f: 100 MiB in 4.0 s, resumed from 59.6 MiB (wlan0 30.0 MiB, wwan0 10.0 MiB)"
                    " sha256 ab")
    # Paths carried 2 MiB more than this run fetched: MPTCP sent it again (reinjection) — said, not hidden.
    again = TransferSummary(2, "http://x/g", "g", 20 * 2**20, "cd", "mptcp", None, True, None,
                            {"wlan0": 15 * 2**20, "wwan0": 7 * 2**20}, 2.0)
    assert "; 2.0 MiB more than fetched: sent again on another path (reinjection))" in done_line(again, 2.0)
    assert "reinjection" not in line


def test_rtt_says_unknown_as_a_dash_and_keeps_sub_millisecond_digits() -> None:
    assert fmt.rtt(None) == "—" and fmt.rtt(0.0) == "—"        # no estimate is not "0.0 ms"
    assert fmt.rtt(0.04) == "0.04 ms" and fmt.rtt(12.34) == "12.3 ms"


def test_chart_columns_are_fixed_slices_of_time_that_scroll() -> None:
    # 0.3 s apart, a 67-column chart of a growing run: every finished column keeps its value and
    # only moves left (re-binning every frame changed 28 of 67 columns).
    points = [(i * 0.25, float((i * 7919) % 13)) for i in range(1, 161)]      # 40 s of jumpy rates
    before = buckets(points, now=39.7, window=39.7, width=67)
    after = buckets(points + [(40.0, 5.0)], now=40.0, window=40.0, width=67)
    assert bin_step(39.7, 67) == bin_step(40.0, 67) == 1.0
    assert before[1:-1] == after[:-2] or before[:-1] == after[:-1]           # scrolled by at most one column
    # The step changes only when the window outgrows the columns: 0.25 → 0.5 → 1 s here.
    assert [bin_step(w, 67) for w in (5, 16, 17, 33, 34, 60)] == [0.1, 0.25, 0.5, 0.5, 1.0, 1.0]


def test_one_outlier_does_not_set_the_chart_scale() -> None:
    rates = [70e6] * 239 + [155e6]                                           # a minute at 4 Hz, one spike
    assert robust_top(rates) == 70e6 * 1.1 and robust_top([]) == 0.0 and robust_top([0.0, 0.0]) == 0.0
