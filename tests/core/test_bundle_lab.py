"""`mptop doctor --bundle` in the lab: the archive a maintainer reads, masked or not, written atomically."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.lab


def mptop(lab, *args: str, prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    with lab.client.entered():
        return subprocess.run([*prefix, sys.executable, "-m", "mptop", *args], capture_output=True, text=True,
                              timeout=90)


def members(path: Path) -> dict[str, str]:
    with tarfile.open(path) as tar:
        return {m.name.removeprefix("mptop-bundle/"): tar.extractfile(m).read().decode()  # type: ignore[union-attr]
                for m in tar.getmembers()}


def test_bundle_with_a_reproduction(make_lab, tmp_path: Path) -> None:
    lab = make_lab(rate_mbit={"wlan0": 40, "wwan0": 10})
    out = tmp_path / "report.tar.gz"
    result = mptop(lab, "doctor", "--bundle", str(out), "--url", lab.url(60_000_000))
    assert result.returncode == 0 and "bug report written to" in result.stdout, result.stderr
    assert sorted(os.listdir(tmp_path)) == ["report.tar.gz"]          # no temporary file left beside it
    files = members(out)
    assert {"README.txt", "kernel.json", "sysctls.json", "endpoints.json", "limits.json", "doctor.json",
            "interfaces.json", "mptcpext-before.json", "mptcpext-after.json", "mptcpext-delta.json",
            "sock_diag-before.json", "sock_diag-during.json", "mptop.ndjson", "pm-events.ndjson",
            "doctor-url.json"} <= set(files)
    assert json.loads(files["sysctls.json"])["net.mptcp"]["enabled"] == "1"
    assert json.loads(files["limits.json"]) == {"subflows": 8, "add_addr_accepted": 8}
    kinds = {i["name"]: (i["link_type"], i["evidence"]) for i in json.loads(files["interfaces.json"])}
    assert kinds["wlan0"][0] == "wifi" and "name prefix" in kinds["wlan0"][1]
    # The counters moved by what the reproduction did: one join, one ADD_ADDR received.
    delta = json.loads(files["mptcpext-delta.json"])
    assert delta.get("MPJoinSynAckRx", 0) >= 1 and delta.get("AddAddr", 0) >= 1, delta
    # sock_diag while the transfer ran: the connection with both subflows, one per path.
    (conn,) = [c for c in json.loads(files["sock_diag-during.json"]) if c["remote"][1] == 80]
    assert {s["local"][0] for s in conn["subflows"]} == {"192.0.2.2", "198.51.100.2"}
    events = [json.loads(line) for line in files["pm-events.ndjson"].splitlines()]
    assert {"CREATED", "ESTABLISHED", "ANNOUNCED", "SUB_ESTABLISHED"} <= {e["kind"] for e in events}
    records = [json.loads(line) for line in files["mptop.ndjson"].splitlines()]
    assert records[0]["type"] == "host"
    samples = [r for r in records if r["type"] == "sample" and r["paths"]]
    assert samples and samples[-1]["paths"]["wwan0"]["link_type"] == "cellular"
    assert json.loads(files["doctor-url.json"])["verdict"] == "ok"
    assert "not collected" not in files["README.txt"]


def test_anonymized_bundle_without_privileges_says_what_is_missing(make_lab, tmp_path: Path) -> None:
    """Without CAP_NET_ADMIN the PM events cannot be had: README says so; every lab address and MAC is
    masked in every file, consistently."""
    lab = make_lab(rate_mbit={"wlan0": 20, "wwan0": 10})
    out = tmp_path / "masked.tar.gz"
    macs = [json.loads(lab.run(lab.client, ["ip", "-j", "link", "show", i]).stdout)[0]["address"]
            for i in ("wlan0", "wwan0")]
    result = mptop(lab, "doctor", "--bundle", str(out), "--anonymize", "--url", lab.url(20_000_000),
                   prefix=("setpriv", "--bounding-set", "-net_admin", "--"))
    assert result.returncode == 0, result.stderr
    files = members(out)
    readme = files["README.txt"]
    assert "pm-events.ndjson: path-manager events need CAP_NET_ADMIN" in readme
    assert "addresses: masked" in readme
    text = "".join(files.values())
    for secret in ("192.0.2.1", "192.0.2.2", "198.51.100.1", "198.51.100.2", *macs):
        assert secret not in text
    kinds = {i["name"]: i["addresses"] for i in json.loads(files["interfaces.json"])}
    assert kinds["wlan0"][0].startswith("ip4-") and kinds["lo"][0] == "127.0.0.1"
    assert kinds["wlan0"][0] in files["sock_diag-during.json"]            # the same stand-in everywhere


def test_bundle_errors_are_one_line_and_leave_nothing(lab, tmp_path: Path) -> None:
    result = mptop(lab, "doctor", "--bundle", str(tmp_path / "no" / "such" / "dir.tar.gz"))
    assert result.returncode == 1 and result.stderr.count("\n") == 1 and "not a writable directory" in result.stderr
    result = mptop(lab, "doctor", "--anonymize")
    assert result.returncode == 2 and "--anonymize goes with --bundle" in result.stderr
    assert os.listdir(tmp_path) == []
    result = mptop(lab, "doctor", "--bundle", str(tmp_path / "plain.tar.gz"))
    assert result.returncode == 0
    readme = members(tmp_path / "plain.tar.gz")["README.txt"]
    assert "mptop.ndjson: no reproduction asked for (--url URL)" in readme
