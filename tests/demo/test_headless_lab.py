"""`mptop demo --headless` end to end: the lab, the download and the handover scenario, as root and as a user."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import pytest

from mptop.demo import scenario
from tests import REPO
from tests.conftest import unavailable as lab_unavailable

pytestmark = pytest.mark.lab

# The shipped handover scenario (its times: test_scenario.py) dropping Wi-Fi at 3 s instead of 8, still for 5 s.
DOWN_S, UP_S = 3, 8
DURATION = "9"


def early_handover(folder: Path) -> Path:
    """handover.toml with its first drop at DOWN_S: what the demo shows, without the seconds before it."""
    text = (resources.files("mptop.demo") / "scenarios" / "handover.toml").read_text()
    for action, at in (("link_down", DOWN_S), ("link_up", UP_S)):
        text, n = re.subn(rf"^at_s = \d+(?=\naction = \"{action}\")", f"at_s = {at}", text, flags=re.MULTILINE)
        assert n == 1, action
    path = folder / "handover-early.toml"
    path.write_text(text)
    path.chmod(0o644)
    assert [(s.at_s, s.action) for s in scenario.load(str(path)).steps] == [(DOWN_S, "link_down"), (UP_S, "link_up")]
    return path


def check_handover(stdout: str) -> None:
    records = [json.loads(line) for line in stdout.splitlines() if line.strip()]
    samples = [r for r in records if r["type"] == "sample"]
    events = [r for r in records if r["type"] == "event"]
    assert records[0]["type"] == "host" and records[-1]["type"] == "summary"
    peak = {iface: max(s["paths"].get(iface, {}).get("rate_bps", 0) for s in samples) for iface in ("wlan0", "wwan0")}
    assert peak["wlan0"] > 20e6 and peak["wwan0"] > 5e6, peak          # both paths carried traffic (40 + 10 Mbit)
    stalls = [e for e in events if e["kind"] == "path_stalled"]
    assert [e["iface"] for e in stalls] == ["wlan0"], events
    assert any(e["kind"] == "scenario" and "link down" in e["detail"] for e in events)
    during = [s for s in samples if stalls[0]["t"] <= s["t"] <= stalls[0]["t"] + 2]
    assert during and all(s["paths"]["wlan0"]["stalled"] for s in during)
    # Rates are 1 s averages: a second after its last byte the stalled path shows none.
    quiet = [s for s in during if s["t"] >= stalls[0]["t"] + 1.0]
    assert quiet and all(s["paths"]["wlan0"]["rate_bps"] == 0 for s in quiet)
    assert max(s["paths"]["wwan0"]["rate_bps"] for s in during) > 5e6  # cellular carried the download meanwhile
    summary = records[-1]["transfers"][0]
    assert summary["status"] == "mptcp" and summary["path_bytes"]["wlan0"] > 0 and summary["path_bytes"]["wwan0"] > 0


def run_demo(argv: list[str], folder: Path, **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*argv, "demo", "--scenario", str(early_handover(folder)), "--headless", "--json",
                           "--duration", DURATION], capture_output=True, text=True, timeout=90, **kwargs)


def test_demo_headless_as_root_shows_sharing_then_a_wifi_stall(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("this test runs the demo as root")
    result = run_demo([sys.executable, "-m", "mptop"], tmp_path)
    if result.returncode != 0 and "mptop demo:" in result.stderr:
        lab_unavailable(result.stderr.strip())
    assert result.returncode == 0, result.stderr
    check_handover(result.stdout)


@pytest.fixture(scope="module")     # used here only: removed when this file is done, not at the session's end
def user_install() -> Iterator[Path]:
    """mptop installed for an ordinary user: a venv of the system Python that uid 65534 can run.

    The interpreter running the tests may live where other users cannot read (pyenv under /root)."""
    system_python = shutil.which("python3", path="/usr/bin:/bin")
    if os.geteuid() != 0 or not system_python or not shutil.which("setpriv"):
        lab_unavailable("installing for another user needs root, /usr/bin/python3 and setpriv")
    # Not under pytest's basetemp: pytest keeps that 0700, out of the other user's reach.
    base = Path(tempfile.mkdtemp(prefix="mptop-user-install-"))
    base.chmod(0o755)
    source = base / "src"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(
        ".venv", ".git", "__pycache__", "*.egg-info", ".*_cache", ".hypothesis"))
    venv = base / "venv"
    # Without a pip of its own (ensurepip is a third of the set-up): the tests' pip installs into it.
    made = subprocess.run([system_python, "-m", "venv", "--without-pip", str(venv)], capture_output=True, text=True)
    if made.returncode != 0:
        shutil.rmtree(base, ignore_errors=True)
        lab_unavailable(f"python3 -m venv failed (install python3-venv): {made.stderr.strip()[-200:]}")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "-q",
                    str(source)], check=True, timeout=600,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for path in (base, *base.rglob("*")):
        if not path.is_symlink():
            path.chmod(path.stat().st_mode | 0o055)
    yield venv
    shutil.rmtree(base, ignore_errors=True)


@pytest.mark.timeout(600)     # its fixture pip-installs mptop into a fresh venv: minutes on a loaded machine
def test_demo_headless_as_an_ordinary_user(user_install):
    home = Path(tempfile.mkdtemp(prefix="mptop-user-home-"))
    home.chmod(0o777)
    user = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", str(user_install / "bin" / "mptop")]
    try:
        # an ordinary user's PATH has no sbin directories
        result = run_demo(user, home, cwd=home, env={"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(home)})
    finally:
        shutil.rmtree(home, ignore_errors=True)
    if result.returncode != 0 and "user namespace" in result.stderr:
        lab_unavailable(result.stderr.strip())
    assert result.returncode == 0, result.stderr
    check_handover(result.stdout)
