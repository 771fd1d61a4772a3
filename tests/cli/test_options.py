"""The command line's own options: -V, and one line with a suggestion for a misspelt option."""

from __future__ import annotations

import pytest

from mptop import __version__
from mptop.cli import main


def test_dash_v_prints_the_version(capsys: pytest.CaptureFixture[str]) -> None:
    for flag in ("-V", "--version"):
        with pytest.raises(SystemExit) as exit_:
            main([flag])
        assert exit_.value.code == 0
        assert capsys.readouterr().out.strip() == f"mptop {__version__}"


@pytest.mark.parametrize(("argv", "line"), [
    (["get", "--jsn", "http://192.0.2.1/"],
     "mptop get: unknown option '--jsn' (did you mean --json?); see `mptop get --help`"),
    (["watch", "--intervall", "1"],
     "mptop watch: unknown option '--intervall' (did you mean --interval?); see `mptop watch --help`"),
    (["get", "http://192.0.2.1/", "--zzz"], "mptop get: unknown option '--zzz'; see `mptop get --help`"),
])
def test_a_misspelt_option_gets_one_line_with_a_suggestion(capsys: pytest.CaptureFixture[str], argv: list[str],
                                                          line: str) -> None:
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err.strip() == line and captured.out == ""
