"""Start-up stays light: what `--help` and `--version` need loads no UI toolkit and no download engine.

Each case runs in a fresh interpreter (this one has imported everything already) and lists sys.modules.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from mptop.cli import COMMANDS

HEAVY = ("textual", "rich", "aiohttp", "mptop.core.transfer")

CHILD = """
import json, sys
from mptop.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
sys.stderr.write(json.dumps(sorted(sys.modules)))
"""


def loaded_by(*argv: str) -> tuple[str, list[str]]:
    """(stdout, sorted module names) of `mptop ARGV…` run in a fresh interpreter."""
    child = subprocess.run([sys.executable, "-c", CHILD, *argv], capture_output=True, text=True, timeout=60)
    return child.stdout, json.loads(child.stderr)


def heavy(modules: list[str]) -> list[str]:
    return [m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY)]


@pytest.mark.parametrize("argv", [["--help"], ["--version"], *([name, "--help"] for name in COMMANDS)])
def test_help_and_version_load_no_ui_toolkit_nor_download_engine(argv: list[str]) -> None:
    out, modules = loaded_by(*argv)
    assert "mptop" in out                      # the help or the version was printed
    assert "mptop.cli" in modules              # ...by the CLI whose imports are listed
    assert heavy(modules) == []
