"""Without a terminal (cron, a script, ``</dev/null >out 2>err``) no TUI starts: `mptop URL…` runs the
headless `get`, and demo, watch, replay say in one line what to use instead and exit 2.  Before, they wrote
60-200 KB of escape codes into the files and never exited."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests import ASSETS
from tests.cli.tmux import MPTOP

ESC = "\x1b"


def run_without_terminal(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*MPTOP, *args], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=60, cwd=cwd)


@pytest.mark.parametrize(("args", "instead"), [
    (["demo"], "mptop demo --headless"),
    (["watch"], "mptop watch --json"),
    ([], "mptop watch --json"),                    # `mptop` alone is `mptop watch`
    (["replay", str(ASSETS / "handover.ndjson")], "NDJSON"),
])
def test_tui_commands_without_a_terminal_say_what_to_use_and_exit_2(args: list[str], instead: str,
                                                                     tmp_path: Path) -> None:
    done = run_without_terminal(args, tmp_path)
    assert done.returncode == 2
    assert done.stdout == ""
    assert len(done.stderr.splitlines()) == 1 and "not a terminal" in done.stderr and instead in done.stderr
    assert ESC not in done.stderr


def test_a_url_without_a_terminal_runs_the_headless_get(tmp_path: Path) -> None:
    # Port 1 on loopback refuses at once: the headless get says so in its one line and exits 1.
    done = run_without_terminal(["http://127.0.0.1:1/file"], tmp_path)
    assert done.returncode == 1
    assert ESC not in done.stdout + done.stderr
    assert done.stderr.splitlines() == [line for line in done.stderr.splitlines() if line.startswith("mptop: ")]
    assert "http://127.0.0.1:1/file" in done.stderr and "refused" in done.stderr
