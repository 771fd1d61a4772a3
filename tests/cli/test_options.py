"""The command line's own options: -V, one line with a suggestion for a misspelt option, and the option
value types' one-line errors."""

from __future__ import annotations

import argparse
from collections.abc import Callable

import pytest

from mptop import __version__
from mptop.cli import main
from mptop.commands import options


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


@pytest.mark.parametrize(("parse", "text", "value"), [
    (options.positive_float, "0.25", 0.25), (options.non_negative_float, "0", 0.0),
    (options.non_negative_float, "1.5", 1.5), (options.count, "0", 0), (options.positive_int, "3", 3),
])
def test_option_values_in_range_are_taken(parse: Callable[[str], float], text: str, value: float) -> None:
    assert parse(text) == value


@pytest.mark.parametrize(("parse", "text", "error"), [
    (options.positive_float, "0", "must be > 0: '0'"),
    (options.positive_float, "nan", "must be > 0: 'nan'"),
    (options.non_negative_float, "-1", "must be ≥ 0: '-1'"),
    (options.non_negative_float, "inf", "must be ≥ 0: 'inf'"),
    (options.non_negative_float, "nan", "must be ≥ 0: 'nan'"),
    (options.non_negative_float, "soon", "not a number: 'soon'"),
    (options.count, "-1", "must be ≥ 0: '-1'"),
    (options.count, "1.5", "not a whole number: '1.5'"),
])
def test_option_values_out_of_range_get_one_line(parse: Callable[[str], float], text: str, error: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError) as exc:
        parse(text)
    assert str(exc.value) == error
