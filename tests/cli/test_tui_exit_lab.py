"""After `mptop URL…` quits (q, Ctrl-C) the terminal keeps what `get` prints at the end: a line per
transfer with its file, size, paths and sha256, or why it stopped and that the same command resumes it.
Before, the TUI left nothing on the terminal, and Ctrl-C only showed Textual's "press ctrl+q"."""

from __future__ import annotations

import hashlib
import re
import shlex
from pathlib import Path

import pytest

from mptop.lab import Lab
from tests.cli.tmux import MPTOP, Tmux, session

pytestmark = pytest.mark.lab
EXIT = re.compile(r"mptop-exit=(\d+)")


def in_lab(lab: Lab, argv: list[str]) -> str:
    """``argv`` in the lab's client netns, then its exit status on the terminal; the pane stays."""
    run = " ".join(shlex.quote(a) for a in ["nsenter", f"--net={lab.client.path}", *argv])
    return f"{run}; echo mptop-exit=$?; sleep 60"


def started(lab: Lab, tmp_path: Path, size: int) -> tuple[Tmux, str]:
    url = lab.url(size)
    return session(["sh", "-c", in_lab(lab, [*MPTOP, url, "-o", str(tmp_path / "file")])], 120, 30), url


def wait_exit(term: Tmux) -> tuple[int, str]:
    screen = term.wait_for(lambda s: EXIT.search(s) is not None)
    match = EXIT.search(screen)
    assert match is not None
    return int(match.group(1)), screen


def test_ctrl_c_quits_and_says_the_stopped_download_resumes(make_lab, tmp_path: Path) -> None:
    lab = make_lab(rate_mbit={"wlan0": 8, "wwan0": 8})              # 200 MB: minutes, stopped long before
    context, url = started(lab, tmp_path, 200_000_000)
    with context as term:
        term.wait_for(lambda s: "MPTCP" in s and "Mbit/s" in s and "#1" in s)
        term.keys("C-c")
        code, screen = wait_exit(term)
        assert "ctrl+q" not in screen
        assert code == 1
        assert f"mptop: {url}: stopped before the end (run the same command to resume)" in screen


def test_q_after_the_end_prints_file_size_paths_and_sha256(make_lab, tmp_path: Path) -> None:
    size = 3_000_000
    lab = make_lab(rate_mbit={"wlan0": 20, "wwan0": 20})
    context, url = started(lab, tmp_path, size)
    with context as term:
        term.wait_for(lambda s: "all transfers finished" in s)
        term.keys("q")
        code, screen = wait_exit(term)
        digest = hashlib.sha256((tmp_path / "file").read_bytes()).hexdigest()
        assert digest == lab.content_sha256(size)
        assert code == 0
        line = re.search(r"✓ (\S+) → (\S+): (.+?) in .+?\((.+?)\) sha256 (\S+)", screen)
        assert line is not None, screen
        assert line.groups()[:2] == (url, str(tmp_path / "file"))
        assert line.group(5) == digest
        assert "wlan0" in line.group(4) and "wwan0" in line.group(4)
