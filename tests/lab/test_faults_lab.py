"""The fault matrix: `mptop get` against a server misbehaving on purpose (:mod:`mptop.lab.faults`),
each fault with a healthy download beside it, in one lab shared by the module; and exceptions of
every kind (hypothesis) injected at each phase of a real transfer.

Every case must end within its timeouts with the right exit code, at most one line naming the
fault's URL, no traceback or warning, no control character on the terminal, the healthy file's
sha256 intact, no corrupted final file and nothing written outside the output directory.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mptop.core.model import Record, Summary
from mptop.core.partfile import VALIDATOR_XATTR
from mptop.core.session import Session
from mptop.core.transfer import TransferManager, TransferOptions
from mptop.core.writer import FileWriter
from mptop.lab import Lab, LabConfig, LabUnavailable, faults
from mptop.lab import content as lab_content
from tests.conftest import unavailable
from tests.core.test_failures import exception_classes

pytestmark = pytest.mark.lab

HEALTHY = 300_000
N = 100_000
CONTROL = {chr(c) for c in [*range(0x20), *range(0x7F, 0xA0)]} - {"\n"}


@pytest.fixture(scope="module")
def fault_lab() -> Iterator[Lab]:
    lab = Lab(LabConfig())
    try:
        lab.start()
    except LabUnavailable as exc:
        unavailable(str(exc))
    try:
        yield lab
    finally:
        lab.stop()


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    seconds: float


def mptop_get(lab: Lab, cwd: Path, *args: str, timeout: float = 30) -> Run:
    began = time.monotonic()
    with lab.client.entered():
        result = subprocess.run([sys.executable, "-m", "mptop", "get", *args], capture_output=True,
                                text=True, errors="surrogateescape", timeout=timeout, cwd=cwd)
    return Run(result.returncode, result.stdout, result.stderr, time.monotonic() - began)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_sha256(path: Path) -> str:
    return sha256(path.read_bytes())


def tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


# (fault path, expected: ("ok", saved name, sha256 of what must be saved) or ("fail", words of the line))
Expect = tuple[str, ...]
CONTENT = lab_content.sha256(N)


HOSTILE = "\x1b[2J\x1b]2;pwned\x07\u202e"     # wipe the screen, set the title, reverse the text
ESC = quote(HOSTILE, safe="")


def _cases() -> list[tuple[str, Expect]]:
    named = quote(f'attachment; filename="/etc/x{HOSTILE}.txt"')
    return [
        (f"/fault/location?to=ftp://{ESC}/x", ("fail", "redirected to a malformed URL: ftp://\\x1b[2J")),
        (f"/fault/location?to=http://192.0.2.1/{ESC}", ("fail", "HTTP 404")),
        ("/fault/reason", ("fail", "HTTP 500 \\x1b[2J\\x1b]2;pwned\\x07Oops\\x9b31m")),
        (f"/fault/reason?r={ESC}", ("fail", "HTTP 500 \\x1b[2J")),
        (f"/fault/disposition?cd={named}", ("ok", "x[2J]2;pwned.txt", CONTENT)),
        (f"/fault/disposition?cd={quote('attachment; filename*=UTF-8')}", ("ok", "disposition", CONTENT)),
        (f"/fault/disposition?cd={quote('attachment; filename=a b')}", ("ok", "disposition", CONTENT)),
        ("/fault/location?to=ftp://192.0.2.1/x", ("fail", "redirected to an unsupported URL")),
        ("/fault/location?to=file:///etc/passwd", ("fail", "redirected to an unsupported URL")),
        ("/fault/location?to=data:,hello", ("fail", "redirected to an unsupported URL")),
        ("/fault/location?to=mailto:a@b.c", ("fail", "redirected to an unsupported URL")),
        ("/fault/location?to=http://[::1", ("fail", "redirected to a malformed URL")),
        ("/fault/loop", ("fail", "too many redirects")),
        ("/redirect/3", ("ok", "3", lab_content.sha256(1000))),
        (f"/truncated/{N}", ("fail", "connection closed after")),
        (f"/reset/{N}", ("fail", "connection reset")),
        ("/fault/stall", ("fail", "no data from the server for 2 s")),
        ("/fault/silent", ("fail", "no data from the server for 2 s")),
        (f"/slow/{N}?bps=200000", ("ok", str(N), CONTENT)),
        ("/fault/wrong-range", ("ok", "wrong-range", CONTENT)),
        ("/fault/range-ignored", ("ok", "range-ignored", CONTENT)),
        ("/fault/disposition", ("ok", "evil", CONTENT)),
        ("/fault/gzip", ("ok", "gzip", sha256(faults.gzip_body(N)))),
        ("/fault/chunked", ("ok", "chunked", CONTENT)),
        ("/fault/chunked-cut", ("fail", "connection closed")),
        ("/fault/garbage", ("fail", "not valid HTTP")),
        ("/fault/huge-header", ("fail", "not valid HTTP")),
        ("/fault/bad-length", ("fail", "not valid HTTP")),
        ("/fault/overlong", ("ok", "overlong", CONTENT)),
        ("/fault/no-length", ("ok", "no-length", CONTENT)),
        ("/status/416", ("fail", "HTTP 416")),
    ]


CASES = _cases()


@pytest.mark.parametrize("path, expect", CASES, ids=[path for path, _ in CASES])
def test_fault_beside_a_healthy_download(fault_lab: Lab, tmp_path: Path, path: str,
                                         expect: Expect) -> None:
    lab, outcome = fault_lab, expect
    url, healthy = lab.base_url() + path, lab.url(HEALTHY)
    out = tmp_path / "a" / "out"         # ../../NAME from the server would land in tmp_path
    run = mptop_get(lab, tmp_path, "-o", f"{out}/", "--idle-timeout", "2", "--connect-timeout", "3",
                    "--max-redirects", "5", url, healthy)
    assert "Traceback" not in run.stderr and ".py:" not in run.stderr, run.stderr    # nor a warning
    assert not CONTROL & set(run.stderr), repr(run.stderr)
    assert run.seconds < 30, f"took {run.seconds:.1f} s"
    assert file_sha256(out / str(HEALTHY)) == lab.content_sha256(HEALTHY)
    errors = [line for line in run.stderr.splitlines() if line.startswith("mptop:")]
    assert {p.split(os.sep)[0] for p in tree(tmp_path)} == {"a"}           # nothing outside a/out
    assert tree(tmp_path / "a") == {"out", *(f"out{os.sep}{n}" for n in tree(out))}
    if outcome[0] == "ok":
        _, name, digest = outcome
        assert run.returncode == 0, run.stderr
        assert errors == []
        assert file_sha256(out / name) == digest
        assert tree(out) == {str(HEALTHY), name}
    else:
        assert run.returncode == 1, run.stderr
        assert len(errors) == 1 and errors[0].startswith(f"mptop: {url}: "), run.stderr
        assert outcome[1] in errors[0], errors[0]
        finals = {n for n in tree(out) if not n.endswith(".part")}
        assert finals == {str(HEALTHY)}, finals       # no final file for the failed transfer


PHASES = {   # where in a transfer the exception is raised: (class, method), and the victim's test
    "connect": (TransferManager, "_session", lambda args: args[1].url),
    "response": (TransferManager, "_check_response", lambda args: args[1].url),
    "write": (FileWriter, "write", lambda args: args[0].target.path),
    "commit": (FileWriter, "commit", lambda args: args[0].target.path),
}


# Exceptions, not BaseExceptions: KeyboardInterrupt and SystemExit are meant to end the run.
EXCEPTIONS = [c for c in exception_classes() if issubclass(c, Exception)]


@given(phase=st.sampled_from(sorted(PHASES)), cls=st.sampled_from(EXCEPTIONS),
       message=st.text(max_size=40), initialised=st.booleans())
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
def test_any_exception_in_one_transfer_leaves_the_others_and_the_run_intact(
        fault_lab: Lab, tmp_path_factory: pytest.TempPathFactory, phase: str, cls: type[Exception],
        message: str, initialised: bool) -> None:
    lab, out = fault_lab, tmp_path_factory.mktemp("inject")
    victim, healthy = lab.url(N) + "?victim", lab.url(HEALTHY)
    owner, name, victim_of = PHASES[phase]
    original = getattr(owner, name)

    def injected(*args: Any, **kwargs: Any) -> Any:
        if "victim" in str(victim_of(args)) or str(victim_of(args)).endswith(f"{os.sep}{N}"):
            try:
                exc = cls(message) if initialised else cls.__new__(cls, message)
            except Exception:
                exc = cls.__new__(cls)
            raise exc
        return original(*args, **kwargs)

    records: list[Record] = []
    session = Session([victim, healthy], TransferOptions(output=f"{out}/"), interval=0.1)
    with lab.client.entered(), mock.patch.object(owner, name, injected):
        summary = asyncio.run(asyncio.wait_for(session.run(records.append), 30))
    bad, good = summary.transfers
    assert good.ok and good.sha256 == lab.content_sha256(HEALTHY), good
    assert file_sha256(out / str(HEALTHY)) == good.sha256
    assert not bad.ok and bad.error and "\n" not in bad.error, bad
    assert not (out / str(N)).exists()                 # nothing under the final name
    assert isinstance(records[-1], Summary) and records[-1] is summary


def test_a_symlinked_part_is_not_followed(fault_lab: Lab, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.write_bytes(b"precious")
    out = tmp_path / "out"
    out.mkdir()
    (out / "x.part").symlink_to(outside)
    run = mptop_get(fault_lab, tmp_path, "-o", str(out / "x"), fault_lab.url(N))
    assert run.returncode == 1
    assert run.stderr.strip().splitlines()[-1] == (
        f"mptop: {fault_lab.url(N)}: {out}/x.part is a symbolic link: not following it (remove it to download)")
    assert outside.read_bytes() == b"precious"
    assert sorted(os.listdir(out)) == ["x.part"] and (out / "x.part").is_symlink()


def write_part(path: Path, data: bytes, validator: str | None) -> None:
    """A .part as an interrupted mptop run leaves it: the bytes, and the entity's validator."""
    path.write_bytes(data)
    if validator is not None:
        os.setxattr(path, VALIDATOR_XATTR, validator.encode())


BIG = 1_000_000    # resumes: large enough that half of it stands out of the interfaces' other traffic

# (route, entity version in the .part, validator recorded?, the note expected; None: resumed)
RESUMES = [
    ("entity", 1, True, None),                                        # same entity: resumed with If-Range
    ("entity", 2, True, "the server sent the whole file"),            # changed: 200, started over
    ("liar", 2, True, "the server's file changed"),                   # 206 with another ETag
    ("entity", 1, False, "nothing records which version"),            # another tool's .part
    ("wrong-range", None, True, "partial answer does not continue it"),
]


def rx_total(lab: Lab) -> int:
    return sum(lab.rx_bytes(p.iface) for p in lab.paths)


def rx_settled(lab: Lab) -> int:
    """rx_total once the paths are quiet (an earlier case's abandoned body may still be arriving)."""
    deadline, last = time.monotonic() + 15, -1
    while (now := rx_total(lab)) != last and time.monotonic() < deadline:
        last = now
        time.sleep(1.0)       # a whole second without a byte: a loaded machine can pause a stream 0.3 s
    return now


@pytest.mark.parametrize("route, on_disk, validated, note", RESUMES)
def test_resume_splices_only_the_same_entity(fault_lab: Lab, tmp_path: Path, route: str, on_disk: int | None,
                                              validated: bool, note: str | None) -> None:
    lab, out = fault_lab, tmp_path / "out"
    out.mkdir()
    url = f"{lab.base_url()}/fault/{route}?n={BIG}&v=1"
    stale = lab_content.content(BIG // 2) if on_disk is None else faults.entity_body(BIG, on_disk)[: BIG // 2]
    write_part(out / "x.part", stale, (faults.entity_etag(BIG, on_disk or 0) if validated else None))
    rx = rx_settled(lab)
    run = mptop_get(lab, tmp_path, "-o", str(out / "x"), url)
    assert run.returncode == 0, run.stderr
    served = faults.entity_body(BIG, 1) if route != "wrong-range" else lab_content.content(BIG)
    assert file_sha256(out / "x") == sha256(served)
    assert os.listdir(out) == ["x"]
    notes = [line for line in run.stderr.splitlines() if "not resumed" in line]
    if note is None:
        assert notes == [], run.stderr
        assert rx_total(lab) - rx < BIG * 3 // 4          # only the missing half came
    else:
        assert len(notes) == 1 and note in notes[0] and f"{out}/x.part" in notes[0], run.stderr


def test_a_cut_run_leaves_a_part_the_next_run_resumes(fault_lab: Lab, tmp_path: Path) -> None:
    """The validator mptop itself records (the body of /truncated/N is /bytes/N's, with its ETag)."""
    lab, x = fault_lab, tmp_path / "x"
    assert mptop_get(lab, tmp_path, "-o", str(x), f"{lab.base_url()}/truncated/{BIG}").returncode == 1
    assert os.getxattr(f"{x}.part", VALIDATOR_XATTR) == lab_content.etag(BIG).encode()
    rx = rx_settled(lab)
    run = mptop_get(lab, tmp_path, "-o", str(x), lab.url(BIG))
    assert run.returncode == 0 and "not resumed" not in run.stderr, run.stderr
    assert file_sha256(x) == lab.content_sha256(BIG)
    assert rx_total(lab) - rx < BIG * 3 // 4


def run_in_terminal(lab: Lab, argv: list[str], cwd: Path, quit_after: bytes | None = None,
                    timeout: float = 40) -> bytes:
    """Every byte a terminal (a pty, 100x30) receives from ``mptop ARGV``; with ``quit_after``,
    ``q`` is typed once that text was shown.  Ends when the program does (bounded)."""
    import fcntl
    import pty
    import select
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    with lab.client.entered():
        proc = subprocess.Popen([sys.executable, "-m", "mptop", *argv], stdin=slave, stdout=slave, stderr=slave,
                                cwd=cwd, env={**os.environ, "TERM": "xterm-256color"}, start_new_session=True)
    os.close(slave)
    seen, deadline, typed = b"", time.monotonic() + timeout, False
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:          # EIO: the program ended, the pty closed
                    break
                seen += chunk
            if quit_after is not None and not typed and quit_after in seen:
                os.write(master, b"q")
                typed = True
            if not ready and proc.poll() is not None:
                break
        assert proc.poll() is not None or proc.wait(5) is not None, "still running"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    return seen


# The hostile bytes Rich and Textual never send themselves (Textual ends its own OSC 22 with a BEL).
INJECTED = [b"\x1b]2;pwned", "\u202e".encode(), "\x9b".encode()]


def test_the_terminal_never_receives_a_control_character_from_the_network(fault_lab: Lab, tmp_path: Path) -> None:
    """The live console (Rich, on a pty) and the TUI (Textual) show the hostile reason phrase,
    Location and file name escaped."""
    lab, out = fault_lab, tmp_path / "out"
    urls = [f"{lab.base_url()}/fault/reason", f"{lab.base_url()}/fault/location?to=ftp://{ESC}/x",
            f"{lab.base_url()}/fault/disposition?cd={quote(f'attachment; filename=a{HOSTILE}')}"]
    console = run_in_terminal(lab, ["get", "-o", f"{out}/", *urls], tmp_path)
    assert b"HTTP 500 \\x1b[2J\\x1b]2;pwned\\x07Oops" in console, console[-2000:]
    tui = run_in_terminal(lab, ["-o", f"{out}/", "--force", *urls], tmp_path, quit_after=b"Oops")
    assert b"Oops" in tui, tui[-2000:]
    for text in INJECTED:
        assert text not in console and text not in tui, text
    assert b"\x07" not in console


@pytest.mark.parametrize("output, error", [
    ("/proc/nope/x", "no such file or directory: /proc/nope"),
    ("{tmp}/file/x", "not a directory: {tmp}/file"),
])
def test_an_unusable_output_fails_before_connecting(fault_lab: Lab, tmp_path: Path, output: str, error: str) -> None:
    """The server never answers: only a check made before connecting can end this run at once."""
    (tmp_path / "file").write_text("")
    url = f"{fault_lab.base_url()}/fault/silent"
    run = mptop_get(fault_lab, tmp_path, "--idle-timeout", "25", "-o", output.format(tmp=tmp_path), url)
    assert run.returncode == 1
    assert run.stderr.strip().splitlines() == [f"mptop: {url}: {error.format(tmp=tmp_path)}"]
    assert run.seconds < 15


def test_two_urls_naming_one_file_in_a_directory_get_a_hint_that_fits(fault_lab: Lab, tmp_path: Path) -> None:
    out, first, second = tmp_path / "out", fault_lab.url(1000), fault_lab.url(1000) + "?again"
    run = mptop_get(fault_lab, tmp_path, "-o", f"{out}/", first, second)
    assert run.returncode == 1
    assert [line for line in run.stderr.splitlines() if line.startswith("mptop:")] == [
        f"mptop: {second}: {out}/1000 is also the target of transfer #1 — both URLs name this file: "
        "fetch one with -o FILE in another run"]
    assert file_sha256(out / "1000") == lab_content.sha256(1000)


@pytest.mark.parametrize("json_out", [True, False])
def test_ctrl_c_stops_get_with_a_summary_and_exit_130(fault_lab: Lab, tmp_path: Path, json_out: bool) -> None:
    lab, out = fault_lab, tmp_path / "out"
    done, slow = lab.url(1000), f"{lab.base_url()}/slow/{BIG}?bps=100000"
    argv = [sys.executable, "-m", "mptop", "get", "--interval", "0.1", "-o", f"{out}/", done, slow]
    with lab.client.entered():
        proc = subprocess.Popen(argv + (["--json"] if json_out else []), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    deadline = time.monotonic() + 20
    # Interrupted once the 1000 B one is complete (renamed from its .part: on a loaded machine that
    # can come after the slow one's first bytes, seen in CI) and the slow one is under way.
    while not (out / "1000").exists() or not (out / f"{BIG}.part").exists() \
            or (out / f"{BIG}.part").stat().st_size == 0:
        assert time.monotonic() < deadline and proc.poll() is None, "the downloads never got under way"
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=20)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1] == (
        "mptop: interrupted: 1 of 2 transfers stopped (run the same command to resume)")
    if json_out:
        summary = json.loads(stdout.strip().splitlines()[-1])
        assert summary["type"] == "summary"
        assert [t["ok"] for t in summary["transfers"]] == [True, False]
    assert file_sha256(out / "1000") == lab_content.sha256(1000)
    assert (out / f"{BIG}.part").stat().st_size > 0          # kept for a resume
