"""`mptop get` as a user runs it, in the lab's client namespace: NDJSON shape, exit codes, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from mptop.core.model import EVENT_KINDS

pytestmark = pytest.mark.lab


def mptop(lab, *args: str, cwd=None) -> subprocess.CompletedProcess[str]:
    """Run the CLI the way a user would, inside the lab's client namespace."""
    with lab.client.entered():
        return subprocess.run([sys.executable, "-m", "mptop", *args], capture_output=True, text=True,
                              timeout=60, cwd=cwd)


def ndjson(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def test_json_stream_has_the_documented_names(make_lab):
    lab = make_lab(rate_mbit={"wlan0": 40, "wwan0": 10})
    size = 6_000_000
    result = mptop(lab, "get", "--json", "--interval", "0.2", "-o", "/dev/null", lab.url(size))
    assert result.returncode == 0, result.stderr
    records = ndjson(result.stdout)
    assert records[0]["type"] == "host"
    samples = [r for r in records if r["type"] == "sample"]
    assert len(samples) >= 3
    busy = max(samples, key=lambda s: len(s["transfers"][0]["subflows"]))
    transfer = busy["transfers"][0]
    assert {"id", "url", "bytes", "total", "rate_bps", "status", "reason", "subflows"} <= set(transfer)
    assert transfer["status"] == "mptcp"
    for subflow in transfer["subflows"]:
        fields = {"id", "local", "remote", "iface", "path", "bytes_received", "rate_bps", "rtt_ms", "backup"}
        assert fields <= set(subflow)
    assert {s["iface"] for s in transfer["subflows"]} == {"wlan0", "wwan0"}
    assert set(busy["paths"]) == {"wlan0", "wwan0"}
    assert {"label", "rate_bps", "bytes"} <= set(busy["paths"]["wlan0"])
    events = [r for r in records if r["type"] == "event"]
    assert all({"t", "kind", "iface", "transfer", "detail"} <= set(e) for e in events)
    assert "transfer_done" in {e["kind"] for e in events}
    assert {e["kind"] for e in events} <= set(EVENT_KINDS)          # only the documented kinds
    summary = records[-1]
    assert summary["type"] == "summary" and summary["duration_s"] > 0
    done = summary["transfers"][0]
    assert done["ok"] and done["bytes"] == size and done["sha256"] == lab.content_sha256(size)
    assert set(done["path_bytes"]) == {"wlan0", "wwan0"}
    assert sum(done["path_bytes"].values()) >= size


def test_failures_are_one_line_and_exit_1_while_others_complete(lab, tmp_path):
    good = lab.url(100_000)
    bad = lab.base_url() + "/status/404"
    result = mptop(lab, "get", "-o", str(tmp_path) + "/", good, bad)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("mptop:")]
    assert errors == [f"mptop: {bad}: HTTP 404 Not Found"]
    assert "Traceback" not in result.stderr
    assert (tmp_path / "100000").stat().st_size == 100_000
    assert not list(tmp_path.glob("404*"))


def test_require_mptcp_fails_a_fallback_with_one_line(lab):
    result = mptop(lab, "get", "--require-mptcp", "-o", "/dev/null", lab.url(2_000_000, tcp=True))
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("mptop:")]
    assert len(errors) == 1 and "MPTCP" in errors[0]
    assert "Traceback" not in result.stderr


def test_mptcp_disabled_falls_back_to_tcp_with_a_reason(lab):
    lab.sysctl(lab.client, "net.mptcp.enabled", "0")
    result = mptop(lab, "get", "--json", "-o", "/dev/null", lab.url(500_000))
    assert result.returncode == 0, result.stderr
    summary = ndjson(result.stdout)[-1]["transfers"][0]
    assert summary["status"] == "tcp" and "disabled" in summary["reason"]
    strict = mptop(lab, "get", "--require-mptcp", "-o", "/dev/null", lab.url(500_000))
    assert strict.returncode == 1
    assert [line for line in strict.stderr.splitlines() if line.startswith("mptop:")][0].count("disabled") == 1


@pytest.mark.parametrize("args, message", [
    (["get"], "required"),
    (["get", "--interval", "0", "http://x/"], "must be > 0"),
    (["get", "--json", "-o", "-", "http://x/"], "--json"),
    (["get", "-o", "one-file", "http://a/1", "http://a/2"], ""),
    (["wacth"], "did you mean `mptop watch`?"),              # a mistyped command opens no TUI
    (["example.org/file"], "neither a command nor a URL"),
])
def test_usage_errors_exit_2(lab, args, message):
    result = mptop(lab, *args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_json_reader_going_away_stops_quietly_with_one_line(lab):
    """`mptop get --json URL | head -1`: the first record reaches the reader, then one line and exit 1."""
    get = lab.popen(lab.client, [sys.executable, "-m", "mptop", "get", "--json", "-o", "/dev/null",
                                 f"{lab.base_url()}/forever"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert json.loads(get.stdout.readline())["type"] == "host"
    get.stdout.close()                                       # what `head -1` does after its line
    _, err = get.communicate(timeout=20)
    assert get.returncode == 1
    assert err.decode().splitlines() == [
        "mptop: the reader of the NDJSON output went away (broken pipe); downloads stopped"]


def test_url_form_with_json_is_the_headless_get(lab):
    """`mptop --json URL` is `mptop get --json URL` (the TUI cannot write NDJSON)."""
    size = 100_000
    result = mptop(lab, "--json", "-o", "/dev/null", lab.url(size))
    assert result.returncode == 0, result.stderr
    records = ndjson(result.stdout)
    assert (records[0]["type"], records[-1]["type"]) == ("host", "summary")
    assert records[-1]["transfers"][0]["bytes"] == size


def test_json_and_record_spell_every_record_the_same(lab, tmp_path):
    """One run, two writers: stdout (--json) and the recording (--record) hold the same bytes, line for line,
    including the subflow events whose details carry non-ASCII (the arrow)."""
    recording = tmp_path / "run.ndjson"
    result = mptop(lab, "get", "--json", "--record", str(recording), "-o", "/dev/null", lab.url(2_000_000))
    assert result.returncode == 0, result.stderr
    printed = result.stdout.encode().splitlines()
    recorded = recording.read_bytes().splitlines()
    assert len(recorded) >= 4 and json.loads(recorded[-1])["type"] == "summary"
    assert any("→" in json.loads(line).get("detail", "") for line in recorded)     # a record worth comparing
    for number, (out, rec) in enumerate(zip(printed, recorded, strict=False), start=1):
        assert out == rec, f"record {number} differs"
    assert len(printed) == len(recorded)
