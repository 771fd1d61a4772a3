"""`mptop put` as a user runs it in the lab's client namespace: both paths carry an upload, the server's
sha256 of what arrived equals the file's, a Wi-Fi drop moves the upload to cellular, one-line errors.

Ground truth for the bytes each path carried is the client interfaces' tx counters (payload ≈ tx_bytes
− 94 × tx_packets: docs/measured.md), and the lab server's sha256 of the body it received."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.lab

PATHS = ("wlan0", "wwan0")


def random_file(tmp_path: Path, size: int) -> tuple[Path, str]:
    path = tmp_path / "upload.bin"
    data = os.urandom(size)
    path.write_bytes(data)
    return path, hashlib.sha256(data).hexdigest()


def tx_payload(lab) -> dict[str, int]:
    """Payload bytes each client interface has sent so far."""
    return {iface: lab.dev_counters(iface).tx_payload for iface in PATHS}


def put(lab, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    with lab.client.entered():
        return subprocess.run([sys.executable, "-m", "mptop", "put", *args], capture_output=True, text=True,
                              timeout=timeout)


def records(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def server_reply(summary: dict) -> dict:
    return json.loads(summary["reply"])


def test_upload_uses_both_shaped_paths_and_the_server_gets_every_byte(make_lab, tmp_path):
    lab = make_lab(upload_rate_mbit={"wlan0": 40, "wwan0": 10})
    size = 24_000_000                  # about 4 s at 50 Mbit/s
    path, sha = random_file(tmp_path, size)
    before = tx_payload(lab)
    result = put(lab, "--json", str(path), lab.upload_url("big.bin"))
    sent = {i: n - before[i] for i, n in tx_payload(lab).items()}
    assert result.returncode == 0, result.stderr
    out = records(result.stdout)
    done = out[-1]["transfers"][0]
    assert done["ok"] and done["direction"] == "upload" and done["bytes"] == size and done["sha256"] == sha
    assert server_reply(done) == {"bytes": size, "sha256": sha}          # the server hashed what arrived
    for iface in PATHS:
        assert sent[iface] >= 0.15 * size, sent                          # the kernel's count: both paths sent
        assert done["path_bytes"][iface] >= 0.15 * size, done["path_bytes"]
        # mptop's acknowledged bytes per path are the interface's payload (retransmissions are not)
        assert done["path_bytes"][iface] == pytest.approx(sent[iface], rel=0.01)
    samples = [r for r in out if r["type"] == "sample" and r["transfers"][0]["state"] == "running"]
    sending = [s for s in samples if all(s["paths"].get(i, {}).get("tx_bps", 0) > 0 for i in PATHS)]
    assert sending, "no sample shows both paths sending"
    for s in sending:
        t = s["transfers"][0]
        assert t["direction"] == "upload" and t["rate_bps"] == pytest.approx(t["tx_bps"])
        assert sum(p["tx_bps"] for p in s["paths"].values()) == pytest.approx(t["tx_bps"])
        assert all(sub["tx_bps"] >= 0 and sub["bytes_acked"] >= 0 for sub in t["subflows"])
    last = max(sending, key=lambda s: s["t"])["transfers"][0]
    assert all(sub["rtt_ms"] and sub["cwnd"] for sub in last["subflows"] if not sub["closed"])


def put_meanwhile(lab, args: list[str], until, then) -> tuple[int, list[dict], list[dict], str]:
    """`mptop put --json ARGS`; once a record satisfies ``until``, ``then()``; (exit code, records
    until then, records after, stderr)."""
    with lab.client.entered():
        proc = subprocess.Popen([sys.executable, "-m", "mptop", "put", "--json", *args], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
    seen: list[dict] = []
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 60
        for line in proc.stdout:
            seen.append(json.loads(line))
            if until(seen[-1]):
                break
            assert time.monotonic() < deadline, "the upload never got that far"
        then()
        rest, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return proc.returncode, seen, records(rest), err


def test_wifi_drop_during_an_upload_moves_it_to_cellular_and_every_byte_arrives(make_lab, tmp_path):
    lab = make_lab(upload_rate_mbit={"wlan0": 40, "wwan0": 20})     # cellular's rate is not the point: its bytes are
    size = 16_000_000
    path, sha = random_file(tmp_path, size)
    code, lines, rest, err = put_meanwhile(     # Wi-Fi goes once it has carried a good part of the upload
        lab, ["--interval", "0.2", str(path), lab.upload_url()],
        until=lambda r: r.get("paths", {}).get("wlan0", {}).get("bytes_acked", 0) > 0.15 * size,
        then=lambda: lab.link_down("wlan0"))
    assert code == 0, err
    dropped_at = lines[-1]["t"]
    wwan_before = lines[-1]["paths"]["wwan0"]["bytes_acked"]
    out = lines + rest
    done = out[-1]["transfers"][0]
    assert done["ok"] and server_reply(done) == {"bytes": size, "sha256": sha} and done["sha256"] == sha
    after = [r for r in out if r["type"] == "sample" and r["t"] > dropped_at]
    moved = after[-1]["paths"]["wwan0"]["bytes_acked"] - wwan_before
    assert moved >= size - lines[-1]["paths"]["wlan0"]["bytes_acked"] - wwan_before - 2_000_000, moved
    assert any(r["type"] == "event" and r["kind"] == "link_down" and r["iface"] == "wlan0" for r in out)


def test_failures_are_one_line_with_the_exit_code(lab, tmp_path):
    missing = put(lab, str(tmp_path / "nope"), lab.upload_url())
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1, missing.stderr
    assert "cannot read" in missing.stderr and "no such file" in missing.stderr
    path, _ = random_file(tmp_path, 10_000)
    refused = put(lab, "--json", str(path), lab.base_url() + "/bytes/10")     # that route takes no PUT
    assert refused.returncode == 1 and refused.stderr.strip().endswith("HTTP 405 Method Not Allowed"), refused.stderr
    assert refused.stderr.count("\n") == 1
    plain = put(lab, "--json", "--require-mptcp", str(path), lab.upload_url(tcp=True))
    assert plain.returncode == 1 and "fell back to TCP" in plain.stderr and plain.stderr.count("\n") == 1, plain.stderr


def test_an_upload_no_path_takes_fails_on_the_idle_timeout_in_one_line(make_lab, tmp_path):
    lab = make_lab(upload_rate_mbit={"wlan0": 20, "wwan0": 5})
    path, _ = random_file(tmp_path, 40_000_000)        # 13 s at 25 Mbit/s: still sending when the links go

    def both_down() -> None:
        lab.link_down("wlan0")
        lab.link_down("wwan0")

    code, _, rest, err = put_meanwhile(
        lab, ["--idle-timeout", "3", str(path), lab.upload_url()],
        until=lambda r: r["type"] == "sample" and r["transfers"][0]["bytes_acked"] > 1_000_000, then=both_down)
    assert code == 1 and err.count("\n") == 1, err
    assert "took no data for 3 s (idle timeout)" in err
    assert not rest[-1]["transfers"][0]["ok"]


def test_mptop_upload_without_a_terminal_is_the_headless_put(lab, tmp_path):
    """`mptop --upload FILE URL…` is the TUI's upload; with --json (or no terminal) it is `put`."""
    path, sha = random_file(tmp_path, 200_000)
    with lab.client.entered():
        result = subprocess.run([sys.executable, "-m", "mptop", "--upload", str(path), lab.upload_url(), "--json"],
                                capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    done = records(result.stdout)[-1]["transfers"][0]
    assert done["direction"] == "upload" and server_reply(done) == {"bytes": 200_000, "sha256": sha}


def test_post_from_standard_input_is_chunked_and_arrives_whole(lab, tmp_path):
    path, sha = random_file(tmp_path, 3_000_000)
    with lab.client.entered(), path.open("rb") as stdin:
        result = subprocess.run([sys.executable, "-m", "mptop", "put", "--post", "--json", "-", lab.upload_url()],
                                stdin=stdin, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    done = records(result.stdout)[-1]["transfers"][0]
    assert done["file"] is None and done["sha256"] == sha and server_reply(done) == {"bytes": 3_000_000, "sha256": sha}


def test_put_without_a_hash_names_none_and_the_server_gets_every_byte(lab, tmp_path):
    path, sha = random_file(tmp_path, 5_000_000)
    result = put(lab, "--json", "--no-hash", str(path), lab.upload_url())
    assert result.returncode == 0, result.stderr
    done = records(result.stdout)[-1]["transfers"][0]
    assert done["ok"] and done["sha256"] is None and server_reply(done) == {"bytes": 5_000_000, "sha256": sha}
    console = put(lab, "--no-hash", str(path), lab.upload_url())      # the summary line names no sha256
    assert console.returncode == 0 and "the server answered" in console.stderr, console.stderr
    assert "sha256 None" not in console.stderr and f'"sha256": "{sha}"' in console.stderr
