"""Recordings: NDJSON round trip and one clear error for every kind of bad file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mptop.core.model import (
    ConnectionSample,
    Event,
    HostInfo,
    PathSample,
    Sample,
    SubflowSample,
    Summary,
    TransferSample,
    TransferSummary,
    to_json,
    to_ndjson,
)
from mptop.core.recording import MAX_LINE, RecordingError, iter_recording, read_recording

HOST = HostInfo(kernel="6.18.0", enabled=True, path_manager="in-kernel", scheduler="default",
                subflows_limit=2, add_addr_accepted_limit=2, events="netlink", labels={"wlan0": "Wi-Fi"})
SUB = SubflowSample(id=1, local="192.0.2.2:40000", remote="192.0.2.1:80", iface="wlan0", path="Wi-Fi",
                    bytes_received=1234, rate_bps=8e6, rtt_ms=12.5, backup=False, cwnd=40, retransmits=1,
                    join=False, age_s=3.5)
RECORDS = [
    HOST,
    Event(t=0.1, kind="subflow_up", iface="wlan0", transfer=1, detail="initial → 192.0.2.1:80"),
    Sample(t=0.25, transfers=[TransferSample(id=1, url="http://192.0.2.1/bytes/10", bytes=1234, total=10_000,
                                             rate_bps=8e6, status="mptcp", subflows=[SUB], eta_s=1.0)],
           paths={"wlan0": PathSample(label="Wi-Fi", rate_bps=8e6, bytes=1234, share=1.0, link_up=True, subflows=1)}),
    Sample(t=0.5, paths={}, connections=[ConnectionSample(token=7, local="a:1", remote="b:2", process="curl",
                                                          status="fallback", rate_bps=0.0, pid=42)]),
    Summary(duration_s=1.0, transfers=[TransferSummary(id=1, url="u", file=None, bytes=10_000, sha256=None,
                                                       status="mptcp", reason=None, ok=True, error=None,
                                                       path_bytes={"wlan0": 10_000})]),
]


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def test_round_trip_keeps_every_record(tmp_path: Path) -> None:
    path = tmp_path / "run.ndjson"
    path.write_text("".join(to_ndjson(r) for r in RECORDS), encoding="utf-8")
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(RECORDS)
    assert [json.loads(line) for line in lines] == [to_json(r) for r in RECORDS]
    assert read_recording(path) == RECORDS


def test_a_blake3_summary_round_trips_and_one_recorded_before_it_loads(tmp_path: Path) -> None:
    blake3 = "2d3adedff11b61f14c886e35afa036736dcd87a74d27b5c1510225d0f592e213"
    hashed = Summary(duration_s=1.0, transfers=[TransferSummary(
        id=1, url="u", file="f", bytes=1, sha256=None, blake3=blake3, status="mptcp", reason=None, ok=True,
        error=None)])
    older = to_json(RECORDS[-1])
    del older["transfers"][0]["blake3"]          # what recordings made before --hash blake3 hold
    path = write(tmp_path / "r.ndjson", [json.dumps(to_json(HOST)), to_ndjson(hashed).strip(), json.dumps(older)])
    assert read_recording(path) == [HOST, hashed, RECORDS[-1]]


def test_blank_lines_and_unknown_keys_are_tolerated(tmp_path: Path) -> None:
    host = {**to_json(HOST), "future_field": 1}
    path = write(tmp_path / "r.ndjson", [json.dumps(host), "", json.dumps(to_json(RECORDS[1])), "  "])
    assert read_recording(path) == [HOST, RECORDS[1]]


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ([], "empty file"),
        (["{not json"], "line 1: not JSON"),
        ([json.dumps(to_json(HOST)), "[1, 2]"], "line 2: expected a JSON object, got list"),
        ([json.dumps(to_json(HOST)), '{"type": "nonsense"}'], "line 2: unknown record type 'nonsense'"),
        ([json.dumps(to_json(HOST)), '{"type": "sample"}'], "line 2: malformed sample record"),
        ([json.dumps(to_json(RECORDS[1]))], "the first line is not a host record"),
    ],
)
def test_bad_content_is_one_line_naming_file_and_cause(tmp_path: Path, lines: list[str], message: str) -> None:
    path = write(tmp_path / "bad.ndjson", lines)
    with pytest.raises(RecordingError) as info:
        read_recording(path)
    text = str(info.value)
    assert message in text
    assert text.startswith(str(path)) and "\n" not in text


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(RecordingError, match="no such file"):
        read_recording(tmp_path / "missing.ndjson")
    with pytest.raises(RecordingError, match="is a directory"):
        read_recording(tmp_path)
    binary = tmp_path / "bin.ndjson"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(RecordingError, match="not a text file"):
        read_recording(binary)


def _host_then(*lines: str) -> list[str]:
    return [json.dumps(to_json(HOST)), *lines]


SAMPLE = to_json(RECORDS[2])


@pytest.mark.parametrize(("line", "message"), [
    (json.dumps({**SAMPLE, "paths": []}), "line 2: malformed sample record: paths: expected an object, got a list"),
    (json.dumps({**SAMPLE, "transfers": [{**SAMPLE["transfers"][0], "subflows": [7]}]}),
     "line 2: malformed sample record: transfers[0].subflows[0]: expected an object, got a number"),
    ('{"type": "sample", "t": 1, "paths": {"a": ' * 1 + "[" * 100_000 + "]" * 100_000 + "}}",
     "line 2: nested too deeply for a record"),
    (json.dumps({**SAMPLE, "t": None}), "line 2: malformed sample record: t: expected float, got null"),
    (json.dumps({"type": "event", "t": 1, "kind": "link_up", "detail": 5}),
     "line 2: malformed event record: detail: expected str, got a number"),
    (json.dumps({"type": "summary", "duration_s": 1, "transfers": [{"id": "x"}]}),
     "line 2: malformed summary record: transfers[0].id: expected int, got a string"),
    (json.dumps({**SAMPLE, "transfers": [{**SAMPLE["transfers"][0], "state": "exploded"}]}),
     "line 2: malformed sample record: transfers[0].state: \"exploded\" is not one of"),
])
def test_a_corrupted_record_is_refused_with_its_line_number(tmp_path: Path, line: str, message: str) -> None:
    path = write(tmp_path / "bad.ndjson", _host_then(line))
    with pytest.raises(RecordingError) as info:
        read_recording(path)
    assert str(info.value) == f"{path}: {message}" or message in str(info.value), str(info.value)
    assert "\n" not in str(info.value)


def test_a_host_record_with_labels_as_a_string_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.ndjson", [json.dumps({**to_json(HOST), "labels": "wlan0=Wi-Fi"})])
    with pytest.raises(RecordingError, match="line 1: malformed host record: labels: expected an object, got a string"):
        read_recording(path)


def test_reading_streams_one_line_at_a_time(tmp_path: Path) -> None:
    """The records before a bad line are delivered before it is even read (a 100 MB file plays at once)."""
    path = write(tmp_path / "r.ndjson", _host_then(json.dumps(SAMPLE), "{broken"))
    records = iter_recording(path)
    assert next(records) == HOST and next(records) == RECORDS[2]
    with pytest.raises(RecordingError, match="line 3: not JSON"):
        next(records)


def test_a_line_longer_than_any_record_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "r.ndjson", _host_then(json.dumps({**SAMPLE, "pad": "x" * (MAX_LINE + 10)})))
    with pytest.raises(RecordingError, match="line 2: longer than 16 MiB"):
        read_recording(path)
