"""`mptop get --hash NAME` and `--no-hash`: the file arrives whole whichever hash is asked for; the
summary names the hash computed (null for the others) and the console's closing line prints it.
Ground truth: `b3sum` (Debian's, the BLAKE3 team's own tool) and hashlib's sha256 of the file on disk."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mptop.core.partfile import VALIDATOR_XATTR
from mptop.lab import Lab
from mptop.lab import content as lab_content

pytestmark = pytest.mark.lab


def get(lab: Lab, *args: str) -> subprocess.CompletedProcess[str]:
    with lab.client.entered():
        return subprocess.run([sys.executable, "-m", "mptop", "get", *args], capture_output=True, text=True,
                              timeout=60)


def summary_of(run: subprocess.CompletedProcess[str]) -> dict[str, object]:
    assert run.returncode == 0, run.stderr
    [done] = json.loads(run.stdout.splitlines()[-1])["transfers"]
    assert isinstance(done, dict)
    return done


def b3sum(path: Path) -> str:
    return subprocess.run(["b3sum", "--no-names", str(path)], capture_output=True, text=True,
                          check=True).stdout.strip()


def closing_line(run: subprocess.CompletedProcess[str], size: int) -> str:
    assert run.returncode == 0, run.stderr
    [line] = [x for x in run.stderr.splitlines() if x.startswith("✓")]
    return line.rsplit(str(size), 1)[-1]       # after the file's name: sizes, paths, the hash


def test_no_hash_leaves_the_sha256_out_and_the_file_whole(lab: Lab, tmp_path: Path) -> None:
    size = 2_000_000
    for flag in (["--no-hash"], ["--hash", "none"]):
        done = summary_of(get(lab, *flag, "--json", "-o", f"{tmp_path}/json/", "-f", lab.url(size)))
        assert done["ok"] and done["bytes"] == size and done["sha256"] is None and done["blake3"] is None, flag
        on_disk = hashlib.sha256((tmp_path / "json" / str(size)).read_bytes()).hexdigest()
        assert on_disk == lab.content_sha256(size)

    tail = closing_line(get(lab, "--no-hash", "-o", f"{tmp_path}/console/", lab.url(size)), size)
    assert tail.endswith(")") and " sha256 " not in tail and " blake3 " not in tail, tail


def test_blake3_is_what_b3sum_says_of_the_file(lab: Lab, tmp_path: Path) -> None:
    size = 5_000_001
    done = summary_of(get(lab, "--hash", "blake3", "--json", "-o", f"{tmp_path}/json/", lab.url(size)))
    path = tmp_path / "json" / str(size)
    assert done["ok"] and done["bytes"] == size and done["sha256"] is None, done
    assert done["blake3"] == b3sum(path)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == lab.content_sha256(size)

    tail = closing_line(get(lab, "--hash", "blake3", "-o", f"{tmp_path}/console/", lab.url(size)), size)
    assert tail.endswith(f" blake3 {b3sum(path)}") and " sha256 " not in tail, tail


def test_a_resumed_download_hashes_the_kept_prefix_too(lab: Lab, tmp_path: Path) -> None:
    size, kept = 4_000_000, 1_234_567
    part = tmp_path / f"{size}.part"
    part.write_bytes(lab_content.content(kept))
    os.setxattr(part, VALIDATOR_XATTR, lab_content.etag(size).encode())
    done = summary_of(get(lab, "--hash", "blake3", "--json", "-o", f"{tmp_path}/", lab.url(size)))
    assert done["resumed"] == kept and done["bytes"] == size, done
    assert done["blake3"] == b3sum(tmp_path / str(size))


def test_a_hash_that_cannot_be_computed_is_one_line_before_any_download(tmp_path: Path) -> None:
    # No lab: the URL is never fetched.  Without the blake3 package (hidden here as if not installed).
    url, out = "http://192.0.2.1/file", f"{tmp_path}/"
    hidden = "import sys; sys.modules['blake3'] = None; from mptop.cli import main; sys.exit(main(sys.argv[1:]))"
    cases = {
        "needs the blake3 package: pip install 'mptop[blake3]'": [sys.executable, "-c", hidden],
        "--no-hash and --hash blake3 contradict each other": [sys.executable, "-m", "mptop"],
    }
    for want, argv in cases.items():
        extra = ["--no-hash"] if "contradict" in want else []
        run = subprocess.run([*argv, "get", *extra, "--hash", "blake3", "-o", out, url], capture_output=True,
                             text=True, timeout=30)
        assert run.returncode == 2 and run.stdout == "", run
        [line] = run.stderr.splitlines()
        assert line.startswith("mptop: ") and want in line, line
    assert list(tmp_path.iterdir()) == []
