"""`mptop get --no-hash`: the file still arrives whole, the summary says no sha256 (null), and the
console's closing line does not print one."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from mptop.lab import Lab

pytestmark = pytest.mark.lab


def get(lab: Lab, *args: str) -> subprocess.CompletedProcess[str]:
    with lab.client.entered():
        return subprocess.run([sys.executable, "-m", "mptop", "get", *args], capture_output=True, text=True,
                              timeout=60)


def test_no_hash_leaves_the_sha256_out_and_the_file_whole(lab: Lab, tmp_path: Path) -> None:
    size = 2_000_000
    run = get(lab, "--no-hash", "--json", "-o", f"{tmp_path}/json/", lab.url(size))
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout.splitlines()[-1])
    [done] = summary["transfers"]
    assert done["ok"] and done["bytes"] == size and done["sha256"] is None
    on_disk = hashlib.sha256((tmp_path / "json" / str(size)).read_bytes()).hexdigest()
    assert on_disk == lab.content_sha256(size)

    run = get(lab, "--no-hash", "-o", f"{tmp_path}/console/", lab.url(size))
    assert run.returncode == 0, run.stderr
    [line] = [x for x in run.stderr.splitlines() if x.startswith("✓")]
    assert line.endswith(")") and " sha256 " not in line.rsplit(str(size), 1)[-1], line
