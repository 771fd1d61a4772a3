"""`mptop run -- curl URL` in a real 80×24 terminal: curl's one connection on both paths, curl's output
in its panel; Ctrl-C goes to curl first; after q the terminal keeps the summary and mptop's exit
status is curl's."""

from __future__ import annotations

import re

import pytest

from tests.cli.test_tui_exit_lab import in_lab, wait_exit
from tests.cli.tmux import MPTOP, session

pytestmark = pytest.mark.lab
MIB = re.compile(r"(Wi-Fi|Cellular)\s.*?(\d+\.\d) MiB")


def both_paths_moving(screen: str) -> bool:
    rows = [line for line in screen.splitlines() if re.search(r"● (Wi-Fi|Cellular) +w[lw]an0 +[\d.]+ Mbit/s", line)]
    return len(rows) == 2


def test_curl_shows_on_both_paths_and_mptop_exits_with_curls_code(make_lab) -> None:
    lab = make_lab(rate_mbit={"wlan0": 20, "wwan0": 10})
    url = lab.url(15_000_000)                      # ~4 s: several screens of it running
    argv = [*MPTOP, "run", "--interval", "0.25", "--", "curl", "-o", "/dev/null", url]
    with session(["sh", "-c", in_lab(lab, argv)], 80, 24) as term:
        # Both paths moving curl's bytes, live: each path row of the Paths panel at a rate in Mbit/s.
        term.wait_for(lambda s: "curl [" in s and "MPTCP · 2 subflows" in s and "Output of curl" in s
                      and both_paths_moving(s))
        done = term.wait_for(lambda s: "curl exited with code 0" in s)
        carried = {path: float(n) for path, n in MIB.findall(done)}
        assert set(carried) == {"Wi-Fi", "Cellular"} and min(carried.values()) > 1.0, done   # both paths, closed
        term.keys("q")
        code, screen = wait_exit(term)
    assert code == 0
    assert "exited with code 0" in screen and "1 MPTCP connection" in screen
    assert re.search(r"Wi-Fi \(wlan0\) [\d.]+ MiB", screen) and re.search(r"Cellular \(wwan0\) [\d.]+ MiB", screen)


def test_ctrl_c_goes_to_curl_and_its_code_is_mptops(make_lab) -> None:
    lab = make_lab(rate_mbit={"wlan0": 2, "wwan0": 2})            # 200 MB: stopped long before the end
    argv = [*MPTOP, "run", "--", "curl", "-o", "/dev/null", lab.url(200_000_000)]
    with session(["sh", "-c", in_lab(lab, argv)], 80, 24) as term:
        term.wait_for(lambda s: "MPTCP · 2 subflows" in s)
        term.keys("C-c")
        term.wait_for(lambda s: "curl exited with code 130" in s)   # SIGINT: curl ended, mptop still shows it
        term.keys("q")
        code, screen = wait_exit(term)
    assert code == 130
    assert "exited with code 130" in screen


def test_headless_in_a_terminal_ctrl_c_ends_curl_and_mptop_waits_for_it(make_lab) -> None:
    """--headless: curl keeps the terminal (mptop's process group), so the terminal's Ctrl-C reaches it;
    mptop survives it, waits for curl and exits with its code after the summary."""
    lab = make_lab(rate_mbit={"wlan0": 2, "wwan0": 2})
    argv = [*MPTOP, "run", "--headless", "--", "curl", "-s", "-o", "/dev/null", lab.url(200_000_000)]
    # `set -m`: the job in a process group of its own, the terminal's foreground one, as an interactive
    # shell runs it (the test's wrappers then get no Ctrl-C).
    with session(["bash", "-c", "set -m; " + in_lab(lab, argv)], 100, 30) as term:
        term.wait_for(lambda s: "connection curl" in s)
        term.keys("C-c")
        code, screen = wait_exit(term)
    assert code == 130
    assert "exited with code 130" in screen and "1 MPTCP connection" in screen
