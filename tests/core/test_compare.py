"""The comparison's arithmetic and words on made-up samples (the lab and the real recording are tested in
tests/cli/test_compare_lab.py and tests/tui/test_compare.py): every way a pair can end, stalls that resume."""

from __future__ import annotations

from pathlib import Path

from mptop.core.compare import Comparison, ended_verdict
from mptop.core.model import Event, Sample, SubflowSample, Summary, TransferSample, TransferSummary
from mptop.core.transfer import TransferManager, TransferOptions

MB = 1_000_000


def transfer(side: str, nbytes: int, state: str = "running", per_path: dict[str, int] | None = None,
             error: str | None = None, took: float | None = None) -> TransferSample:
    paths = per_path if per_path is not None else {"wlan0": nbytes}
    subflows = [SubflowSample(i, "a", "b", iface, {"wlan0": "Wi-Fi", "wwan0": "Cellular"}[iface], n, 1e6, None, False)
                for i, (iface, n) in enumerate(paths.items())]
    return TransferSample(1 if side == "mptcp" else 2, "http://x/f", nbytes, 100 * MB, 1e6,
                          "mptcp" if side == "mptcp" else "tcp", subflows=subflows, state=state,  # type: ignore[arg-type]
                          error=error, compare=side, duration_s=took)  # type: ignore[arg-type]


def feed(comparison: Comparison, t: float, mptcp: TransferSample, tcp: TransferSample) -> list[Event]:
    return comparison.ingest(Sample(t=t, transfers=[mptcp, tcp]))


def test_tcp_failing_after_a_stall_is_told_once_with_mptcps_rate_and_path_over_that_stall() -> None:
    c = Comparison()
    feed(c, 0.0, transfer("mptcp", 0, per_path={"wlan0": 0, "wwan0": 0}), transfer("tcp", 0))
    feed(c, 1.0, transfer("mptcp", 2 * MB, per_path={"wlan0": MB, "wwan0": MB}), transfer("tcp", 3 * MB))
    # Wi-Fi down: TCP has no byte from t = 1; MPTCP's cellular carries 1.25 MB/s (10 Mbit/s).
    for t in range(2, 12):
        told = feed(c, float(t), transfer("mptcp", 2 * MB, per_path={"wlan0": MB, "wwan0": MB + 1_250_000 * (t - 1)}),
                    transfer("tcp", 3 * MB))
        assert told == []
        assert c.tcp.stalled_for(t) == (t - 1.0 if t - 1.0 >= 2.0 else None)
    told = feed(c, 12.0, transfer("mptcp", 2 * MB, per_path={"wlan0": MB, "wwan0": MB + 1_250_000 * 11}),
                transfer("tcp", 3 * MB, "failed", error="no data from the server for 11 s (idle timeout)"))
    assert [e.detail for e in told] == ["TCP stalled 11 s and failed; MPTCP kept 10.0 Mbit/s over Cellular"]
    assert told[0].kind == "comparison" and told[0].transfer == 2
    # Later samples neither repeat it nor change it: MPTCP's bytes after TCP's end are not "kept".
    assert feed(c, 13.0, transfer("mptcp", 9 * MB, per_path={"wlan0": 5 * MB, "wwan0": 20 * MB}),
                transfer("tcp", 3 * MB, "failed", error="x")) == []
    assert c.verdict().startswith("TCP stalled 11 s and failed; MPTCP kept 10.0 Mbit/s over Cellular")
    end = feed(c, 20.0, transfer("mptcp", 100 * MB, "done", took=19.5), transfer("tcp", 3 * MB, "failed", error="x"))
    assert [e.detail for e in end] == ["MPTCP took 20 s; TCP stalled 11 s and failed: x"]
    assert end[0].transfer is None
    assert c.tcp.stalled_total(30.0) == 11.0          # the stall ended with the failure


def test_both_done_says_how_long_each_took_which_was_faster_and_who_stalled() -> None:
    c = Comparison()
    feed(c, 0.0, transfer("mptcp", 0), transfer("tcp", 0))
    feed(c, 1.0, transfer("mptcp", MB), transfer("tcp", MB))
    for t in (2.0, 3.0, 4.0):                                  # TCP quiet 3 s, then it resumes
        feed(c, t, transfer("mptcp", int(t) * MB), transfer("tcp", MB))
    feed(c, 5.0, transfer("mptcp", 5 * MB), transfer("tcp", 2 * MB))
    assert c.tcp.stalls == [(1.0, 5.0)] and c.tcp.stalled_for(5.0) is None
    feed(c, 10.0, transfer("mptcp", 100 * MB, "done", took=10.0), transfer("tcp", 50 * MB))
    told = feed(c, 15.0, transfer("mptcp", 100 * MB, "done", took=10.0), transfer("tcp", 100 * MB, "done", took=15.0))
    assert [e.detail for e in told] == ["MPTCP took 10 s, TCP 15 s (MPTCP 1.5× faster); TCP stalled 4.0 s"]


def test_tcp_faster_and_mptcp_failing_are_said_too() -> None:
    c = Comparison()
    feed(c, 0.0, transfer("mptcp", 0), transfer("tcp", 0))
    told = feed(c, 8.0, transfer("mptcp", 100 * MB, "done", took=8.0), transfer("tcp", 100 * MB, "done", took=6.0))
    assert [e.detail for e in told] == ["MPTCP took 8.0 s, TCP 6.0 s (TCP 1.3× faster)"]

    c = Comparison()
    feed(c, 0.0, transfer("mptcp", 0), transfer("tcp", 0))
    feed(c, 1.0, transfer("mptcp", MB, "failed", error="connection refused"), transfer("tcp", MB))
    assert c.verdict() == "MPTCP failed: connection refused; TCP 1.0 Mbit/s"
    told = feed(c, 9.0, transfer("mptcp", MB, "failed", error="connection refused"),
                transfer("tcp", 100 * MB, "done", took=9.0))
    assert [e.detail for e in told] == ["MPTCP failed: connection refused; TCP took 9.0 s"]


def test_records_of_no_comparison_change_nothing() -> None:
    c = Comparison()
    plain = TransferSample(1, "http://x/f", MB, None, 1e6, "mptcp")
    assert c.ingest(Sample(t=1.0, transfers=[plain])) == [] and not c.active


def test_a_summary_alone_tells_each_sides_end() -> None:
    def summary(side: str, ok: bool, error: str | None = None) -> TransferSummary:
        return TransferSummary(1, "http://x/f", None, 20 * MB, None, "mptcp", None, ok, error,
                               duration_s=12.0, compare=side)  # type: ignore[arg-type]

    words = ended_verdict(Summary(12.0, [summary("mptcp", True), summary("tcp", False, "stopped")]))
    assert words == "MPTCP took 12 s; TCP stopped after 19.1 MiB"
    words = ended_verdict(Summary(12.0, [summary("mptcp", False, "connection refused"), summary("tcp", True)]))
    assert words == "MPTCP failed after 19.1 MiB: connection refused; TCP took 12 s"


def test_compared_downloads_fetch_the_whole_file_even_where_a_part_is_kept(tmp_path: Path) -> None:
    (tmp_path / "f.part").write_bytes(b"x" * 1000)
    options = TransferOptions(output=str(tmp_path / "f"), compare_tcp=True)
    manager = TransferManager(["http://192.0.2.1/f"], options)
    assert not manager.options.resume and options.resume          # the caller's options are left alone
    assert [t.compare for t in manager.transfers] == ["mptcp", "tcp"]
    assert manager.transfers[1].target is not None and manager.transfers[1].target.path == "/dev/null"
