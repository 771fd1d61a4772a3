"""Re-make screenshots/serve.png: `mptop serve demo` in Chromium at 1920x1080, in the second Wi-Fi outage.

    python screenshots/serve.py        # as root (the tab's demo builds a lab); needs chromium, chromium-driver

A real server, a real demo tab and a real headless Chromium (tests/cli/browser.py drives it); the picture
is Chromium's own screenshot of the page, taken once the tab's text shows cellular carrying the download
alone for the second time (the chart then shows the first outage and the recovery too) and the screenshot
shows that text where the terminal has it.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.cli.browser import Browser, missing  # noqa: E402  (the repository's tests/, not an installed package)

OUT = ROOT / "screenshots" / "serve.png"
HANDOVER = re.compile(r"Wi-Fi link down — Cellular carrying 100 % — for [3-4]\.\d s")
SECOND = "scenario · Wi-Fi: link down"


def main() -> int:
    reason = missing()
    if reason:
        print(f"serve.py: {reason}", file=sys.stderr)
        return 1
    server = subprocess.Popen([sys.executable, "-m", "mptop", "serve", "demo", "--port", "0"], text=True,
                              stdin=subprocess.DEVNULL, stderr=subprocess.PIPE)
    browser = Browser()
    try:
        assert server.stderr is not None
        line = server.stderr.readline()
        found = re.search(r"http://\S+/", line)
        if not found:
            print(f"serve.py: mptop serve did not start: {line}{server.stderr.read()}", file=sys.stderr)
            return 1
        tab = browser.open(found.group(0))
        tab.wait_for(lambda text: text.count(SECOND) >= 2 and HANDOVER.search(text) is not None, 180)
        tab.wait_drawn("link down")
        tab.screenshot().save(OUT, optimize=True)
        tab.close()
        print(f"made: {OUT.relative_to(ROOT)} ({tab.size[0]}x{tab.size[1]} cells)")
        return 0
    finally:
        browser.quit()
        server.terminate()
        server.wait(timeout=60)


if __name__ == "__main__":
    sys.exit(main())
