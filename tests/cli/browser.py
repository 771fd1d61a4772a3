"""A real headless browser on a `mptop serve` page: Debian's chromium through its chromedriver (selenium).

What the tab shows is read two ways, neither written by mptop: the terminal text, by replaying every
websocket frame the page received (Chromium's own log of them) through a VT emulator (pyte) at the size
the page asked for; and the pixels, from Chromium's screenshot.  :meth:`Tab.drawn` ties them together:
the cells where the text says a word is must show that word's colour on its background.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyte
from PIL import Image
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage"]


def missing() -> str | None:
    """Why no browser can be driven here (None when it can)."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if shutil.which(path) is None:
            return f"{path} not found (apt-get install chromium chromium-driver)"
    return None


class Browser:
    """One headless Chromium with a fresh profile; tabs opened with :meth:`open`."""

    def __init__(self, width: int = 1920, height: int = 1080) -> None:
        self.width, self.height = width, height
        self.profile = tempfile.TemporaryDirectory(prefix="mptop-serve-chromium-")
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in [*FLAGS, f"--user-data-dir={self.profile.name}", f"--window-size={width},{height}"]:
            options.add_argument(flag)
        options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
        self.driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
        self.blank = self.driver.current_window_handle    # about:blank stays open: closing a tab is not quitting
        self.tabs: dict[str, Tab] = {}

    def read_log(self) -> None:
        """Chromium's log of every tab (one log for all), each entry to its tab (its window handle is the
        DevTools target id the entry names)."""
        for entry in self.driver.get_log("performance"):
            logged = json.loads(entry["message"])
            tab = self.tabs.get(logged.get("webview", ""))
            if tab is not None:
                tab.logged(logged["message"])

    def open(self, url: str) -> Tab:
        self.driver.switch_to.new_window("tab")
        tab = Tab(self, self.driver.current_window_handle)
        self.tabs[tab.handle] = tab
        # The page exactly width x height, as on a projector in full screen (the window has browser chrome).
        self.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
            "width": self.width, "height": self.height, "deviceScaleFactor": 1, "mobile": False})
        # ... and focused, as the tab in front of its audience is (headless, no window ever has the focus).
        self.driver.execute_cdp_cmd("Emulation.setFocusEmulationEnabled", {"enabled": True})
        self.driver.get(url)
        return tab

    def quit(self) -> None:
        try:
            self.driver.quit()
        finally:
            self.profile.cleanup()


class Tab:
    def __init__(self, browser: Browser, handle: str) -> None:
        self.browser = browser
        self.driver = browser.driver
        self.handle = handle
        self.size = (80, 24)
        self.received = bytearray()
        self.screen = pyte.Screen(*self.size)
        self.stream = pyte.ByteStream(self.screen)

    # -- what the page received ------------------------------------------------------------------------
    def logged(self, message: dict[str, Any]) -> None:
        """One entry of Chromium's log of this page: the size its websocket asked for, the bytes the app sent."""
        method, params = message.get("method"), message.get("params", {})
        if method == "Network.webSocketFrameSent":
            payload = params["response"]["payloadData"]
            if payload.startswith('["resize"'):
                size = json.loads(payload)[1]
                self._resize(int(size["width"]), int(size["height"]))
        elif method == "Network.webSocketFrameReceived" and params["response"]["opcode"] == 2:
            data = base64.b64decode(params["response"]["payloadData"])
            self.received += data
            self.stream.feed(data)

    def _resize(self, width: int, height: int) -> None:
        if (width, height) != self.size:
            self.size = (width, height)
            self.screen.resize(height, width)

    def text(self) -> str:
        self.browser.read_log()
        return "\n".join(self.screen.display)

    def wait_for(self, condition: Callable[[str], bool], timeout: float = 90.0) -> str:
        """The terminal text once ``condition(text)`` holds (bounded: the machine is shared)."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.text()
            if condition(text):
                return text
            if time.monotonic() > deadline:
                raise AssertionError(f"the tab never showed what was expected in {timeout:g} s; it showed:\n{text}")
            time.sleep(0.2)

    # -- what the page drew ----------------------------------------------------------------------------
    def screenshot(self) -> Image.Image:
        return Image.open(io.BytesIO(self.driver.get_screenshot_as_png())).convert("RGB")

    def grid(self) -> dict[str, Any]:
        """Where the terminal's cells are on the page (CSS pixels = screenshot pixels at scale 1)."""
        rect = self.driver.execute_script(
            "const r = document.querySelector('.xterm-screen').getBoundingClientRect();"
            "return {x: r.left, y: r.top, w: r.width, h: r.height, dpr: window.devicePixelRatio};")
        return rect  # type: ignore[no-any-return]

    def drawn(self, word: str, image: Image.Image | None = None) -> bool:
        """The screenshot shows ``word`` where the terminal text has it: in the cells of one of its
        occurrences, pixels of the text's colour (±48 per channel) and of its background make up most
        of the box."""
        self.text()
        image = image or self.screenshot()
        grid = self.grid()
        cw, ch = grid["w"] / self.size[0] * grid["dpr"], grid["h"] / self.size[1] * grid["dpr"]
        seen = False
        for row, line in enumerate(self.screen.display):
            for found in re.finditer(re.escape(word), line):
                seen = True
                cell = self.screen.buffer[row][found.start()]
                fg, bg = _rgb(cell.fg, (229, 229, 229)), _rgb(cell.bg, (0, 0, 0))
                x0, y0 = grid["x"] * grid["dpr"] + found.start() * cw, grid["y"] * grid["dpr"] + row * ch
                box = image.crop((int(x0), int(y0), int(x0 + len(word) * cw), int(y0 + ch))).tobytes()
                pixels = [tuple(box[i:i + 3]) for i in range(0, len(box), 3)]
                near_fg = sum(_near(p, fg) for p in pixels)
                near_bg = sum(_near(p, bg) for p in pixels)
                if near_fg >= len(word) * 4 and near_bg >= len(pixels) // 3 and near_fg + near_bg > len(pixels) // 2:
                    return True
        if not seen:
            raise AssertionError(f"{word!r} is not in the tab's text:\n" + "\n".join(self.screen.display))
        return False

    def wait_drawn(self, word: str, timeout: float = 30.0) -> None:
        """Until the screenshot shows ``word`` where the text has it (the page draws on its next frames)."""
        deadline = time.monotonic() + timeout
        while not self.drawn(word):
            if time.monotonic() > deadline:
                path = Path(tempfile.gettempdir()) / f"mptop-serve-not-drawn-{os.getpid()}.png"
                self.screenshot().save(path)
                raise AssertionError(f"{word!r} is in the tab's text but not on its screenshot ({path})")
            time.sleep(0.2)

    def page_closed(self) -> bool:
        """The page knows its app has ended (textual.js marks the body when the websocket closes)."""
        self.driver.switch_to.window(self.handle)
        return bool(self.driver.execute_script("return document.body.classList.contains('-closed')"))

    def keys(self, keys: str) -> None:
        """Type into the page (the focused element: the terminal, once the page has given it the keyboard)."""
        self.driver.switch_to.window(self.handle)
        ActionChains(self.driver).send_keys(keys).perform()

    def close(self) -> None:
        """Close this tab (its websocket with it) and go back to the blank one."""
        self.driver.switch_to.window(self.handle)
        self.driver.close()
        self.driver.switch_to.window(self.browser.blank)
        self.browser.tabs.pop(self.handle, None)


def _rgb(colour: str, default: tuple[int, int, int]) -> tuple[int, int, int]:
    if len(colour) == 6:
        try:
            return (int(colour[0:2], 16), int(colour[2:4], 16), int(colour[4:6], 16))
        except ValueError:
            pass
    return default


def _near(pixel: tuple[int, int, int], colour: tuple[int, int, int], slack: int = 48) -> bool:
    return all(abs(a - b) <= slack for a, b in zip(pixel, colour, strict=True))
