"""`--compare-tcp` on the command line: one URL (it compares that URL's two downloads), a usage error else."""

from __future__ import annotations

import pytest

from mptop.cli import main


@pytest.mark.parametrize("argv", [
    ["get", "--compare-tcp", "http://192.0.2.1/a", "http://192.0.2.1/b"],
    ["--compare-tcp", "--json", "http://192.0.2.1/a", "http://192.0.2.1/b"],
])
def test_two_urls_are_a_one_line_usage_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err == "mptop: --compare-tcp compares one URL over MPTCP and plain TCP (got 2)\n"
    assert captured.out == ""
