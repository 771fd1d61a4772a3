"""--theme, --units and --interval are kept in $XDG_CONFIG_HOME/mptop/config.toml with the last theme chosen
in the TUI; the command line wins; writes are atomic; a bad file costs one warning line and the defaults."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mptop import config
from mptop.cli import build_parser
from mptop.tui.app import MptopApp, run_app


def parsed(*argv: str):  # type: ignore[no-untyped-def]
    args = build_parser().parse_args(list(argv))
    config.apply(args, args.command)
    return args


def stored() -> str:
    return config.config_path().read_text()


def test_the_path_follows_xdg_config_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert config.config_path() == tmp_path / "mptop" / "config.toml"
    monkeypatch.delenv("XDG_CONFIG_HOME")
    assert config.config_path() == Path.home() / ".config" / "mptop" / "config.toml"


def test_without_a_file_the_defaults() -> None:
    args = parsed("demo")
    assert (args.theme, args.unit, args.interval) == (None, "bits", 0.25)
    assert parsed("watch").interval == 1.0
    assert not config.config_path().exists()                   # nothing given, nothing written


def test_what_the_command_line_sets_is_kept_and_wins_over_the_file() -> None:
    parsed("watch", "--theme", "nord", "--units", "bytes", "--interval", "2")
    args = parsed("watch")
    assert (args.theme, args.unit, args.interval) == ("nord", "bytes", 2.0)
    assert parsed("demo").interval == 0.25                      # an interval is kept per command
    args = parsed("watch", "--theme", "dracula", "--bytes", "--interval", "0.5")
    assert (args.theme, args.unit, args.interval) == ("dracula", "bytes", 0.5)
    args = parsed("get", "http://x/", "--units", "bits")
    assert (args.theme, args.unit, args.interval) == ("dracula", "bits", 0.25)
    assert config.load_config() == {"theme": "dracula", "units": "bits", "interval": {"watch": 0.5}}


def test_a_theme_chosen_in_the_app_is_kept_and_the_next_run_starts_in_it() -> None:
    class ChoosesNord(MptopApp):
        def on_mount(self) -> None:
            super().on_mount()
            self.call_after_refresh(self.choose)

        def choose(self) -> None:
            assert self.theme == "gruvbox"                      # started in the given theme
            self.theme = "nord"                                 # as ctrl+p → theme does
            self.exit()

    assert run_app(ChoosesNord(clock=False), theme="gruvbox", headless=True) == 0
    assert config.load_config() == {"theme": "nord"}
    assert parsed("demo").theme == "nord"


@pytest.mark.parametrize("text", ["theme = [\n", "units = 'furlongs'\n", "\xff\xfe", "[interval]\nwatch = -1\n"])
def test_a_bad_file_is_one_warning_line_and_the_defaults(text: str, capsys: pytest.CaptureFixture[str]) -> None:
    path = config.config_path()
    path.parent.mkdir(parents=True)
    path.write_bytes(text.encode("latin-1"))
    args = parsed("watch")
    assert (args.theme, args.unit, args.interval) == (None, "bits", 1.0)
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and err.startswith("mptop: ignoring") and str(path) in err


def test_a_file_that_cannot_be_parsed_is_never_overwritten(capsys: pytest.CaptureFixture[str]) -> None:
    path = config.config_path()
    path.parent.mkdir(parents=True)
    path.write_text("theme = [\n")
    assert parsed("watch", "--theme", "nord").theme == "nord"   # used for this run…
    assert path.read_text() == "theme = [\n"                     # …the user's file left as it was
    assert len(capsys.readouterr().err.splitlines()) == 1


def test_a_write_is_atomic(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    parsed("watch", "--theme", "nord")
    before = stored()

    def crash(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(os, "replace", crash)
    parsed("watch", "--theme", "dracula")
    assert stored() == before                                    # the old file whole, no half-written one
    assert os.listdir(config.config_path().parent) == ["config.toml"]     # no temporary left behind
    assert "cannot save the settings" in capsys.readouterr().err


def test_a_theme_name_textual_does_not_offer_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["demo", "--theme", "nope"])
    assert exit_.value.code == 2 and "no theme 'nope'" in capsys.readouterr().err
