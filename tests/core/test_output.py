"""Output naming, sanitising, planning and the .part writer (real files in tmp_path)."""

from __future__ import annotations

import hashlib
import os

import pytest
from yarl import URL

from mptop.core.failures import TransferError
from mptop.core.output import (
    FALLBACK_NAME,
    INDEX_NAME,
    OutputTarget,
    check_final,
    disposition_name,
    name_from_url,
    part_size,
    plan_output,
    rename_from_server,
    sanitize_name,
    target_for,
)
from mptop.core.writer import FileWriter


@pytest.mark.parametrize("raw, expected", [
    ("report.pdf", "report.pdf"),
    ("../../etc/passwd", "passwd"),             # traversal: only the last component survives
    ("..\\..\\boot.ini", "boot.ini"),           # backslashes count as separators too
    ("/etc/shadow", "shadow"),                  # absolute
    (".bashrc", "bashrc"),                      # hidden
    ("...hidden.tar.gz", "hidden.tar.gz"),
    ("..", None),
    ("../", None),
    ("", None),
    ("   ", None),
    ("a\x00b\x1fc\x7fd.txt", "abcd.txt"),       # control characters dropped
    ("  spaced name.txt  ", "spaced name.txt"),
    ("re\u0301sume\u0301 ü.txt", "résumé ü.txt"),  # NFC-normalised unicode kept
    ("日本語.txt", "日本語.txt"),
])
def test_sanitize_name(raw: str, expected: str | None) -> None:
    assert sanitize_name(raw) == expected


def test_sanitize_name_shortens_long_names_keeping_extension() -> None:
    name = sanitize_name("é" * 300 + ".tar")
    assert name is not None and name.endswith(".tar")
    assert len((name + ".part").encode()) <= 255
    assert name.startswith("é" * 10)


@pytest.mark.parametrize("url, expected", [
    ("http://h/files/report.pdf", "report.pdf"),
    ("http://h/files/report.pdf?x=1#frag", "report.pdf"),
    ("http://h/", INDEX_NAME),
    ("http://h", INDEX_NAME),
    ("http://h/dir/", INDEX_NAME),
    ("http://h/a/%2E%2E", INDEX_NAME),          # yarl resolves the dot segment: "/"
    ("http://h/a/...", FALLBACK_NAME),
    ("http://h/a/%01%02", FALLBACK_NAME),
    ("http://h/a/.hidden", "hidden"),
    ("http://h/r%C3%A9sum%C3%A9.txt", "résumé.txt"),
    ("http://h/a%2Fb", "b"),
])
def test_name_from_url(url: str, expected: str) -> None:
    assert name_from_url(URL(url)) == expected


@pytest.mark.parametrize("params, expected", [
    ({"filename": "plain.txt"}, "plain.txt"),
    ({"filename": "r%C3%A9sum%C3%A9.txt"}, "résumé.txt"),       # percent-encoded, as aiohttp sends it
    ({"filename": "..%2F..%2Fetc%2F.passwd"}, "../../etc/.passwd"),
    ({"filename*": "résumé.txt", "filename": "fallback.txt"}, "résumé.txt"),
    ({"filename": "100%.txt"}, "100%.txt"),
    ({}, None),
])
def test_disposition_name(params: dict[str, str], expected: str | None) -> None:
    assert disposition_name(params) == expected


def test_plan_output_kinds(tmp_path: os.PathLike[str]) -> None:
    d = str(tmp_path)
    assert plan_output(None, 3).kind == "dir" and plan_output(None, 3).path == ""
    assert plan_output(d, 2).kind == "dir"                     # an existing directory
    assert plan_output(d + "/new/", 2).kind == "dir"           # a trailing slash
    assert plan_output("-", 1).kind == "stdout"
    assert plan_output(os.devnull, 5).kind == "file"           # /dev/null takes any number
    assert plan_output(d + "/f.bin", 1).kind == "file"


@pytest.mark.parametrize("output", ["-", "some/file.bin"])
def test_plan_output_refuses_one_file_for_several_urls(output: str) -> None:
    with pytest.raises(TransferError, match="2 URLs cannot all go to"):
        plan_output(output, 2)


def test_targets(tmp_path: os.PathLike[str]) -> None:
    d = str(tmp_path)
    url = URL("http://h/x/data.bin")
    t = target_for(plan_output(d, 1), url)
    assert (t.kind, t.path, t.part, t.named_by_url) == ("file", f"{d}/data.bin", f"{d}/data.bin.part", True)
    t = target_for(plan_output(None, 1), url)
    assert (t.path, t.part) == ("data.bin", "data.bin.part")
    t = target_for(plan_output("-", 1), url)
    assert (t.kind, t.path, t.display) == ("direct", None, "-")
    t = target_for(plan_output(os.devnull, 1), url)
    assert (t.kind, t.path, t.part) == ("direct", os.devnull, None)
    fifo = os.path.join(d, "pipe")
    os.mkfifo(fifo)
    t = target_for(plan_output(fifo, 1), url)
    assert (t.kind, t.part) == ("direct", None)
    t = target_for(plan_output(f"{d}/named.bin", 1), url)
    assert (t.kind, t.path, t.named_by_url) == ("file", f"{d}/named.bin", False)


def test_rename_from_server_only_for_url_names(tmp_path: os.PathLike[str]) -> None:
    d = str(tmp_path)
    t = target_for(plan_output(d, 1), URL("http://h/get?id=1"))
    rename_from_server(t, "../../secret/.report.pdf")
    assert (t.path, t.part) == (f"{d}/report.pdf", f"{d}/report.pdf.part")
    fixed = target_for(plan_output(f"{d}/mine.bin", 1), URL("http://h/get"))
    rename_from_server(fixed, "theirs.bin")
    assert fixed.path == f"{d}/mine.bin"
    rename_from_server(t, "..")                      # nothing usable: the name stays
    assert t.path == f"{d}/report.pdf"


def test_check_final(tmp_path: os.PathLike[str]) -> None:
    d = str(tmp_path)
    t = _target(d, "a")
    check_final(t, force=False)                      # nothing there yet
    open(f"{d}/a", "w").close()
    with pytest.raises(TransferError, match=rf"^{d}/a exists — use --force$"):
        check_final(t, force=False)
    check_final(t, force=True)
    os.mkdir(f"{d}/dir")
    with pytest.raises(TransferError, match="is a directory"):
        check_final(OutputTarget("file", f"{d}/dir", part=f"{d}/dir.part"), force=True)


def _target(d: str, name: str) -> OutputTarget:
    return OutputTarget("file", f"{d}/{name}", part=f"{d}/{name}.part")


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def _write(writer: FileWriter, offset: int, chunks: list[bytes]) -> str | None:
    writer.open(offset)
    for chunk in chunks:
        writer.write(chunk)
    return writer.commit()


def test_sink_writes_part_then_renames(tmp_path: os.PathLike[str]) -> None:
    d = str(tmp_path)
    writer = FileWriter(_target(d, "out.bin"), force=False)
    writer.open(0)
    writer.write(b"abc")
    assert os.path.exists(f"{d}/out.bin.part") and not os.path.exists(f"{d}/out.bin")
    writer.write(b"def")
    assert writer.commit() == f"{d}/out.bin"
    assert _read(f"{d}/out.bin") == b"abcdef"
    assert os.listdir(d) == ["out.bin"]
    assert writer.written == 6 and writer.hexdigest() == hashlib.sha256(b"abcdef").hexdigest()


def test_sink_resume_hashes_the_kept_prefix_and_moves_a_renamed_part(tmp_path: os.PathLike[str]) -> None:
    d = str(tmp_path)
    with open(f"{d}/url-name.part", "wb") as f:
        f.write(b"0123456789garbage")                # more than the offset: cut back to it
    assert part_size(f"{d}/url-name.part") == 17
    t = OutputTarget("file", f"{d}/server-name", part=f"{d}/server-name.part",
                     resume_from=f"{d}/url-name.part")
    writer = FileWriter(t, force=False)
    assert _write(writer, 10, [b"ABC"]) == f"{d}/server-name"
    assert _read(f"{d}/server-name") == b"0123456789ABC"
    assert writer.written == 13 and writer.hexdigest() == hashlib.sha256(b"0123456789ABC").hexdigest()
    assert sorted(os.listdir(d)) == ["server-name"]


def test_sink_never_clobbers_a_file_that_appeared_meanwhile(tmp_path: os.PathLike[str]) -> None:
    d = str(tmp_path)
    t = _target(d, "f")
    writer = FileWriter(t, force=False)
    writer.open(0)
    writer.write(b"new")
    with open(f"{d}/f", "wb") as f:                  # someone else created it during the download
        f.write(b"theirs")
    with pytest.raises(TransferError, match="exists — use --force"):
        writer.commit()
    assert _read(f"{d}/f") == b"theirs" and _read(f"{d}/f.part") == b"new"
    forced = FileWriter(t, force=True)
    _write(forced, 0, [b"mine"])
    assert _read(f"{d}/f") == b"mine" and not os.path.exists(f"{d}/f.part")


def test_sink_direct_target_has_no_part(tmp_path: os.PathLike[str]) -> None:
    writer = FileWriter(OutputTarget("direct", os.devnull), force=False)
    assert _write(writer, 0, [b"x" * 1000, b"y"]) == os.devnull
    assert writer.written == 1001 and writer.hexdigest() == hashlib.sha256(b"x" * 1000 + b"y").hexdigest()
    assert os.listdir(str(tmp_path)) == []


def test_sink_errors_name_the_file(tmp_path: os.PathLike[str]) -> None:
    d = str(tmp_path)
    open(f"{d}/plainfile", "w").close()
    with pytest.raises(TransferError, match=f"^not a directory: {d}/plainfile$"):
        FileWriter(_target(d, "plainfile/x"), force=False).open(0)
    os.mkdir(f"{d}/x.part")                          # the .part name is taken by a directory
    with pytest.raises(IsADirectoryError) as info:
        FileWriter(_target(d, "x"), force=False).open(0)
    assert info.value.filename == f"{d}/x.part"


def test_empty_output_is_refused() -> None:
    with pytest.raises(TransferError, match="-o needs"):
        plan_output("", 1)
