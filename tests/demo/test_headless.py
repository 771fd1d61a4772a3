"""`mptop demo` refusals that need no lab."""

from __future__ import annotations

import subprocess
import sys


def test_demo_unknown_scenario_is_one_line():
    result = subprocess.run([sys.executable, "-m", "mptop", "demo", "--scenario", "nope"], capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "handover" in result.stderr
