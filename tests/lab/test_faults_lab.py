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
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mptop.core.model import Record, Summary
from mptop.core.output import FileWriter
from mptop.core.session import Session
from mptop.core.transfer import TransferManager, TransferOptions
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


def _cases() -> list[tuple[str, Expect]]:
    return [
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
    assert "Traceback" not in run.stderr and "Warning" not in run.stderr, run.stderr
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
