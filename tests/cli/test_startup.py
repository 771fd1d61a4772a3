"""Start-up stays light: each command loads what it uses and nothing more.

`--help` and `--version` load no UI toolkit, no download engine and no other command's module; a
headless `get` (NDJSON, or plain lines for a script) loads neither Textual nor Rich, and no netlink
library.  Each case runs in a fresh interpreter (this one has imported everything already) and lists
sys.modules at its end — what was imported, not how long it took (timings are bench/startup.py's).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mptop.cli import COMMANDS

HEAVY = ("textual", "rich", "aiohttp", "pyroute2", "psutil", "asyncio", "mptop.core.transfer")
UI = ("textual", "rich")
NETLINK_LIBRARY = ("pyroute2",)

CHILD = """
import json, os, sys
from mptop.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
with open(os.environ["MPTOP_TEST_MODULES"], "w") as out:
    json.dump(sorted(sys.modules), out)
"""


def loaded_by(tmp_path: Path, *argv: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """(the finished process, sorted module names) of `mptop ARGV…` run in a fresh interpreter."""
    listing = tmp_path / "modules.json"
    child = subprocess.run([sys.executable, "-c", CHILD, *argv], capture_output=True, text=True, timeout=120,
                           stdin=subprocess.DEVNULL, env={**os.environ, "MPTOP_TEST_MODULES": str(listing)})
    return child, json.loads(listing.read_text())


def among(modules: list[str], packages: tuple[str, ...]) -> list[str]:
    return [m for m in modules if any(m == p or m.startswith(p + ".") for p in packages)]


def commands(modules: list[str]) -> set[str]:
    return {m.rsplit(".", 1)[-1] for m in modules if m.startswith("mptop.commands.")}


@pytest.mark.parametrize("argv", [["--help"], ["--version"]])
def test_help_and_version_load_no_command_and_nothing_heavy(tmp_path: Path, argv: list[str]) -> None:
    child, modules = loaded_by(tmp_path, *argv)
    assert "mptop" in child.stdout              # the help or the version was printed
    assert "mptop.cli" in modules               # ...by the CLI whose imports are listed
    assert among(modules, HEAVY) == []
    assert commands(modules) == set()           # not one command's module for the list of commands


@pytest.mark.parametrize("name", list(COMMANDS))
def test_a_commands_help_loads_that_command_alone_and_nothing_heavy(tmp_path: Path, name: str) -> None:
    child, modules = loaded_by(tmp_path, name, "--help")
    assert f"mptop {name}" in child.stdout
    assert among(modules, HEAVY) == []
    shared = {"options", "tty", "get"}          # option types, the terminal check, get's transfer options (put)
    assert commands(modules) - shared <= {COMMANDS[name][0]}


@pytest.mark.parametrize("extra", [["--json"], []], ids=["json", "plain-lines"])
def test_a_headless_get_loads_no_ui_toolkit_nor_netlink_library(tmp_path: Path, extra: list[str]) -> None:
    # Port 1 on loopback refuses at once: the whole run (session, sampler, path-manager subscription,
    # host record, the failure's summary) without a network; stderr is a pipe, not a terminal.
    child, modules = loaded_by(tmp_path, "get", *extra, "-o", str(tmp_path / "out"), "http://127.0.0.1:1/file")
    assert child.returncode == 0 and "connection refused" in child.stderr.lower()   # the run happened
    assert "aiohttp" in modules and "mptop.core.sampler" in modules
    assert among(modules, UI + NETLINK_LIBRARY) == []
