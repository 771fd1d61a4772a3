"""`mptop get` refusals and exits that need no lab: bad options, a DNS lookup that never answers."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

HANGING_RESOLVER = """
import socket, sys, time
def never_answers(*args, **kwargs):
    time.sleep(60)
socket.getaddrinfo = never_answers          # a resolver that never answers (no packet is sent)
from mptop.cli import main
sys.exit(main(["get", "--connect-timeout", "1", "-o", "/dev/null", "http://nowhere.example/x"]))
"""


def test_connect_timeout_with_a_resolver_that_never_answers_exits_promptly() -> None:
    began = time.monotonic()
    result = subprocess.run([sys.executable, "-c", HANGING_RESOLVER], capture_output=True, text=True, timeout=90)
    took = time.monotonic() - began
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        "mptop: http://nowhere.example/x: timed out connecting to nowhere.example after 1 s")
    assert took < 8, f"exited after {took:.1f} s"


@pytest.mark.parametrize("value, message", [("-1", "must be ≥ 0: '-1'"), ("x", "not a whole number: 'x'")])
def test_max_redirects_must_be_a_count(value: str, message: str) -> None:
    result = subprocess.run([sys.executable, "-m", "mptop", "get", "--max-redirects", value, "http://127.0.0.1:9/x"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].endswith(f"argument --max-redirects: {message}")
