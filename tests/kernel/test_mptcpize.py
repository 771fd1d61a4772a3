"""Finding mptcpize's LD_PRELOAD library the way the tool does: the path compiled into it."""

from __future__ import annotations

from pathlib import Path

import pytest

from mptop.kernel import mptcpize


def fake_tool(tmp_path: Path, library: Path) -> Path:
    tool = tmp_path / "mptcpize"
    tool.write_bytes(b"\x7fELF junk\x00LD_PRELOAD=\x00usage\x00LD_PRELOAD=" + str(library).encode() + b"\x00more")
    return tool


def test_the_path_compiled_into_the_tool_wins(tmp_path: Path) -> None:
    library = tmp_path / "lib" / "libmptcpwrap.so.0.0.1"
    library.parent.mkdir()
    library.write_bytes(b"")
    assert mptcpize.preload_library(str(fake_tool(tmp_path, library))) == str(library)


def test_without_tool_or_library_there_is_none(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mptcpize, "_PLACES", (str(tmp_path / "nowhere" / "*.so*"),))
    gone = tmp_path / "gone" / "libmptcpwrap.so.0.0.1"          # named by the tool, not installed
    assert mptcpize.preload_library(str(fake_tool(tmp_path, gone))) is None


def test_a_distribution_place_is_found_without_the_tool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    library = tmp_path / "x86_64-linux-gnu" / "mptcpize" / "libmptcpwrap.so.0"
    library.parent.mkdir(parents=True)
    library.write_bytes(b"")
    monkeypatch.setattr(mptcpize, "_PLACES", (str(tmp_path / "*" / "mptcpize" / "libmptcpwrap.so*"),))
    assert mptcpize.preload_library(str(tmp_path / "no-tool")) == str(library)
