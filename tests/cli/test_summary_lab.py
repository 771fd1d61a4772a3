"""`mptop get`'s last lines against the lab: a resumed download says from where, per-path bytes are read
at the end even for a transfer shorter than one poll, a body cut early says how far it got and keeps it."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from mptop.lab import Lab
from mptop.lab import content as lab_content
from tests.core.test_transfer_lab import write_part

pytestmark = pytest.mark.lab


def get(lab: Lab, *args: str) -> tuple[int, str]:
    done = lab.run(lab.client, [sys.executable, "-m", "mptop", "get", *args], check=False)
    return done.returncode, done.stderr


def test_a_resumed_download_says_from_where(lab: Lab, tmp_path: Path) -> None:
    size, kept = 3_000_000, 2_000_000
    write_part(tmp_path / f"{size}.part", lab_content.content(kept), size)
    code, err = get(lab, lab.url(size), "-o", f"{tmp_path}/")
    assert code == 0, err
    line = err.strip().splitlines()[-1]
    assert line.startswith(f"✓ {lab.url(size)} → {tmp_path}/{size}: 2.9 MiB in "), line
    assert ", resumed from 1.9 MiB (" in line and line.endswith(f"sha256 {lab.content_sha256(size)}"), line


def test_a_transfer_shorter_than_a_poll_still_counts_its_paths(lab: Lab) -> None:
    code, err = get(lab, lab.url(1000), "-o", "/dev/null")
    assert code == 0, err
    line = err.strip().splitlines()[-1]
    # The body and the response's headers on Wi-Fi (the initial subflow), nothing on Cellular.
    assert re.search(r"\(wlan0 1\.[0-3] KiB, wwan0 0 B\) sha256 ", line), line


def test_a_body_cut_right_after_the_headers_keeps_what_came(lab: Lab, tmp_path: Path) -> None:
    # A short body cut early arrives with the server's FIN before mptop reads it; aiohttp raises its
    # payload error before handing out the bytes it buffered, and those were lost (under load also half
    # of a 1 MB body: the next run fetched it all again).
    x = tmp_path / "x"
    code, err = get(lab, "-o", str(x), f"{lab.base_url()}/truncated/20000")
    assert code == 1 and "connection closed after 10000 of 20000 bytes" in err, err
    assert Path(f"{x}.part").read_bytes() == lab_content.content(20000)[:10000]
