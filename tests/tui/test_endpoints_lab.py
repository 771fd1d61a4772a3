"""The Endpoints screen (key e) changes the real kernel's endpoints and limits, in the lab's client netns.

The app runs with the main thread inside the client netns, as in the demo: every change made
through the screen is checked with iproute2 in that netns.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
import weakref
from collections.abc import Callable
from typing import Any

import pytest
from textual.message import Message
from textual.notifications import Notify
from textual.pilot import Pilot
from textual.screen import Screen
from textual.widgets import DataTable, Input, Select

from mptop.core.endpoints import EndpointError, EndpointManager
from mptop.lab import Lab
from mptop.tui.app import MptopApp
from mptop.tui.endpoints import EndpointsScreen
from mptop.tui.endpoints_forms import AddEndpointForm, ConfirmChange, LimitsForm
from tests import support
from tests.support import run_as_nobody
from tests.tui.pilot import screen_text, wait_for

pytestmark = pytest.mark.lab
WWAN_ADDR, WWAN = "198.51.100.2", "wwan0"


def ip_endpoints(lab: Lab) -> dict[str, dict[str, Any]]:
    """`ip -j mptcp endpoint show` in the client netns, by address."""
    return {e["address"]: e for e in json.loads(lab.run(lab.client, ["ip", "-j", "mptcp", "endpoint", "show"]).stdout
                                                or "[]")}


def ip_limits(lab: Lab) -> dict[str, int]:
    words = lab.run(lab.client, ["ip", "mptcp", "limits", "show"]).stdout.split()
    return dict(zip(words[::2], map(int, words[1::2]), strict=True))


# Pilot's press() and pause() only guess when the app is done (wall clock against CPU time), and a
# loaded machine fools the guess: every step below waits for what it needs to see instead.
async def on_screen(pilot: Pilot[Any], kind: type[Screen[Any]]) -> Any:
    """Wait until the app shows a ``kind`` screen (a pushed screen is mounted asynchronously)."""
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, kind) and pilot.app.screen.is_mounted,
                   lambda: f"{kind.__name__} not shown; on screen:\n{screen_text(pilot.app)}")
    return pilot.app.screen


async def shows(pilot: Pilot[Any], text: str, present: bool = True) -> None:
    """Wait until the screen shows ``text`` (or, present=False, no longer does)."""
    await wait_for(pilot, lambda: (text in screen_text(pilot.app)) == present,
                   lambda: f"{text!r} {'not ' if present else 'still '}on screen:\n{screen_text(pilot.app)}")


async def open_endpoints(pilot: Pilot[Any]) -> EndpointsScreen:
    await pilot.press("e")
    screen: EndpointsScreen = await on_screen(pilot, EndpointsScreen)
    await wait_for(pilot, lambda: screen.view is not None, lambda: "the endpoints screen read nothing")
    return screen


async def confirm(pilot: Pilot[Any], command: str, key: str = "y") -> None:
    """The confirmation shows exactly ``command``; ``key`` answers it (y applies, n/escape cancel).

    Returns once the answer took effect: an applied change always ends in a notification (done or
    the error), which the screen posts after it called the kernel."""
    app = pilot.app
    dialog = await on_screen(pilot, ConfirmChange)
    assert dialog.change.command == command
    for step in command.split(" && "):
        await shows(pilot, step)
    notified = len(notices(app))
    await pilot.press(key)
    await wait_for(pilot, lambda: dialog not in app.screen_stack, lambda: f"{key} did not close the confirmation")
    if key == "y":
        await wait_for(pilot, lambda: len(notices(app)) > notified, lambda: "applied, but no notification")


NOTICES: weakref.WeakKeyDictionary[MptopApp, list[str]] = weakref.WeakKeyDictionary()


def run(app: MptopApp) -> Any:
    """``app.run_test()`` at 80×24 that records every notification for :func:`notices`: Textual's own
    list forgets each after its timeout (5 s by default), which a test on a loaded machine outlives."""
    seen = NOTICES.setdefault(app, [])

    def record(message: Message) -> None:
        if isinstance(message, Notify):
            seen.append(message.notification.message)

    return app.run_test(size=(80, 24), message_hook=record)


def notices(app: MptopApp) -> list[str]:
    """Every notification ``app`` raised, in order."""
    return NOTICES.get(app, [])


@pytest.mark.parametrize("mode", ["transfers", "watch"])
async def test_add_backup_delete_an_endpoint_through_the_screen(lab: Lab, mode: str) -> None:
    assert ip_endpoints(lab) == {}
    with lab.client.entered():
        app = MptopApp(mode=mode, clock=False)   # type: ignore[arg-type]
        async with run(app) as pilot:
            screen = await open_endpoints(pilot)
            await shows(pilot, "no endpoints")

            await pilot.press("a")
            form = await on_screen(pilot, AddEndpointForm)
            picks = [a.address for a in form.addresses]
            assert {"192.0.2.2", WWAN_ADDR} <= set(picks)            # the client netns's addresses
            form.query_one("#pick", Select).value = picks.index(WWAN_ADDR)   # fills address and interface
            await wait_for(pilot, lambda: form.query_one("#address", Input).value == WWAN_ADDR,
                           lambda: "picking an address did not fill the form")
            assert form.query_one("#interface", Select).value == WWAN
            await pilot.click("#ok")
            await confirm(pilot, f"ip mptcp endpoint add {WWAN_ADDR} dev {WWAN} subflow")
            shown = ip_endpoints(lab)[WWAN_ADDR]
            assert (shown["dev"], shown.get("subflow"), shown.get("backup")) == (WWAN, True, None)
            assert app.screen is screen
            await shows(pilot, WWAN_ADDR)
            id = shown["id"]

            await pilot.press("b")
            await confirm(pilot, f"ip mptcp endpoint change id {id} backup")
            assert ip_endpoints(lab)[WWAN_ADDR].get("backup") is True
            await shows(pilot, "subflow backup")

            await pilot.press("b")                                    # toggles back
            await confirm(pilot, f"ip mptcp endpoint change id {id} nobackup")
            assert ip_endpoints(lab)[WWAN_ADDR].get("backup") is None

            await pilot.press("f")
            await confirm(pilot, f"ip mptcp endpoint change id {id} fullmesh")
            assert ip_endpoints(lab)[WWAN_ADDR].get("fullmesh") is True

            await pilot.press("d")
            await confirm(pilot, f"ip mptcp endpoint delete id {id}")
            assert ip_endpoints(lab) == {}
            assert f"endpoint {id} ({WWAN_ADDR}) deleted" in notices(app)
            await shows(pilot, WWAN_ADDR, present=False)

            await pilot.press("e")                                    # e closes it again
            await wait_for(pilot, lambda: screen not in app.screen_stack, lambda: "e did not close the screen")


async def test_limits_and_cancelled_changes(lab: Lab) -> None:
    lab.run(lab.client, ["ip", "mptcp", "endpoint", "add", WWAN_ADDR, "dev", WWAN, "subflow"])
    before, limits = ip_endpoints(lab), ip_limits(lab)
    with lab.client.entered():
        app = MptopApp(clock=False)
        async with run(app) as pilot:
            screen = await open_endpoints(pilot)
            id = before[WWAN_ADDR]["id"]
            for key, command, answer in (("d", f"ip mptcp endpoint delete id {id}", "n"),
                                         ("b", f"ip mptcp endpoint change id {id} backup", "escape"),
                                         ("n", f"ip mptcp endpoint delete id {id} && "
                                               f"ip mptcp endpoint add {WWAN_ADDR} id {id} dev {WWAN} subflow", "n")):
                await pilot.press(key)
                await confirm(pilot, command, answer)
                assert app.screen is screen
            assert ip_endpoints(lab) == before

            await pilot.press("l")
            form = await on_screen(pilot, LimitsForm)
            assert form.query_one("#subflows", Input).value == str(limits["subflows"])
            await pilot.press("escape")                                # form cancelled
            await wait_for(pilot, lambda: app.screen is screen, lambda: "escape did not cancel the form")
            assert ip_limits(lab) == limits

            await pilot.press("l")
            form = await on_screen(pilot, LimitsForm)
            form.query_one("#subflows", Input).value = "3"
            form.query_one("#add_addr_accepted", Input).value = "5"
            await pilot.click("#ok")
            await confirm(pilot, "ip mptcp limits set subflows 3 add_addr_accepted 5")
            assert ip_limits(lab) == {"subflows": 3, "add_addr_accepted": 5}
            await shows(pilot, "subflows 3  ·  add_addr_accepted 5")

            await pilot.press("l")                                    # the kernel's own refusal, in one line
            form = await on_screen(pilot, LimitsForm)
            form.query_one("#subflows", Input).value = "9"
            notified = len(notices(app))
            await pilot.click("#ok")
            await wait_for(pilot, lambda: len(notices(app)) > notified, lambda: "no notice of the refusal")
            assert app.screen is screen                               # refused before any confirmation
            assert "subflows must be between 0 and 8, not 9" in notices(app)
            assert ip_limits(lab) == {"subflows": 3, "add_addr_accepted": 5}


async def test_errors_are_one_line_and_change_nothing(lab: Lab) -> None:
    lab.run(lab.client, ["ip", "mptcp", "endpoint", "add", WWAN_ADDR, "dev", WWAN, "subflow"])
    before = ip_endpoints(lab)
    with lab.client.entered():
        app = MptopApp(clock=False)
        async with run(app) as pilot:
            screen = await open_endpoints(pilot)
            for typed in ("not-an-ip", WWAN_ADDR):      # refused by the planner; then by the kernel (duplicate)
                await pilot.press("a")
                form = await on_screen(pilot, AddEndpointForm)
                form.query_one("#address", Input).value = typed
                notified = len(notices(app))
                await pilot.click("#ok")
                if typed == WWAN_ADDR:
                    await confirm(pilot, f"ip mptcp endpoint add {WWAN_ADDR} subflow")
                await wait_for(pilot, lambda n=notified: len(notices(app)) > n,
                               lambda t=typed: f"no notice after {t}")
                assert app.screen is screen
            first, second = notices(app)[-2:]
            assert first == "'not-an-ip' is not an IP address"
            assert second.startswith(f"adding MPTCP endpoint {WWAN_ADDR}: ") and "\n" not in second
            assert ip_endpoints(lab) == before


def test_facade_matches_ip_and_readd_by_address(lab: Lab) -> None:
    lab.run(lab.client, ["ip", "mptcp", "endpoint", "add", WWAN_ADDR, "dev", WWAN, "id", "7", "subflow", "backup"])
    with lab.client.entered():
        manager = EndpointManager()
        view = manager.snapshot()
        assert view.writable and view.why_read_only is None
        assert [(e.id, e.address, e.interface, e.flags) for e in view.endpoints] == \
               [(7, WWAN_ADDR, WWAN, ("subflow", "backup"))]
        assert (view.limits.subflows, view.limits.add_addr_accepted) == tuple(ip_limits(lab)[k] for k in
                                                                              ("subflows", "add_addr_accepted"))
        assert view.path_manager == "kernel" and view.scheduler == "default"
        assert manager.readd(WWAN_ADDR).startswith("endpoint 7 (198.51.100.2) re-added")
        with pytest.raises(EndpointError, match="no MPTCP endpoint 10.9.9.9"):
            manager.readd("10.9.9.9")
        with pytest.raises(EndpointError, match="no MPTCP endpoint id 99"):
            manager.delete(99)
    shown = ip_endpoints(lab)[WWAN_ADDR]
    assert (shown["id"], shown["dev"], shown.get("subflow"), shown.get("backup")) == (7, WWAN, True, True)


def test_without_net_admin_the_facade_is_read_only(lab: Lab) -> None:
    lab.run(lab.client, ["ip", "mptcp", "endpoint", "add", WWAN_ADDR, "dev", WWAN, "id", "3", "subflow"])
    before, limits = ip_endpoints(lab), ip_limits(lab)

    def body() -> dict[str, Any]:
        manager = EndpointManager()
        view = manager.snapshot()
        refused = {}
        for name, call in (("delete", lambda: manager.delete(3)), ("backup", lambda: manager.set_flags(3, backup=True)),
                           ("limits", lambda: manager.set_limits(subflows=1))):
            try:
                call()
                refused[name] = "applied"
            except EndpointError as e:
                refused[name] = str(e)
        return {"uid": os.getuid(), "writable": view.writable, "why": view.why_read_only,
                "endpoints": [e.address for e in view.endpoints], "refused": refused}

    result = run_as_nobody(lab.client, body)
    assert result["uid"] == 65534
    assert result["writable"] is False and "CAP_NET_ADMIN" in result["why"]
    assert result["endpoints"] == [WWAN_ADDR]                        # reading needs no privilege
    for name, error in result["refused"].items():
        assert "needs CAP_NET_ADMIN" in error and "\n" not in error, (name, error)
    assert ip_endpoints(lab) == before and ip_limits(lab) == limits


def test_read_only_screen_says_why_and_hides_write_keys(lab: Lab) -> None:
    """The whole app, as root and then as nobody in a forked child: banner, footer without the write
    keys, keys ignored.  (A plain test: each run starts its own event loop; the root run also loads
    every module Textual imports lazily, which nobody could not read from root's Python.)"""
    lab.run(lab.client, ["ip", "mptcp", "endpoint", "add", WWAN_ADDR, "dev", WWAN, "id", "3", "subflow"])

    async def drive() -> dict[str, Any]:
        writable = os.geteuid() == 0
        app = MptopApp(clock=False)
        async with run(app) as pilot:
            screen = await open_endpoints(pilot)
            await shows(pilot, WWAN_ADDR)
            await shows(pilot, "Limits" if writable else "read-only")   # the footer's write keys, or the banner
            text = screen_text(app)
            # Keys are handled in order: escape after l closes the endpoints screen itself only if l
            # opened nothing on top of it (as root, l opens the limits form, which escape would close).
            await pilot.press("l") if writable else await pilot.press("l", "escape")
            await wait_for(pilot, lambda: app.screen is not screen, lambda: "the keys changed nothing")
            return {"text": text, "footer": text.splitlines()[-1], "after_l": type(app.screen).__name__}

    with lab.client.entered():
        as_root = asyncio.run(drive())
    assert "read-only" not in as_root["text"]
    assert all(word in as_root["footer"] for word in ("Add", "Delete", "Backup", "Limits")), as_root["footer"]
    assert as_root["after_l"] == "LimitsForm"

    before = ip_endpoints(lab)
    as_nobody = run_as_nobody(lab.client, lambda: asyncio.run(drive()))
    assert "read-only" in as_nobody["text"] and "needs CAP_NET_ADMIN" in as_nobody["text"], as_nobody["text"]
    assert WWAN_ADDR in as_nobody["text"]
    footer = as_nobody["footer"]
    assert "Close" in footer and not any(word in footer for word in ("Add", "Delete", "Backup", "Limits")), footer
    assert as_nobody["after_l"] == "MainScreen"                           # l opened nothing
    assert ip_endpoints(lab) == before


def mptcp_download(lab: Lab) -> socket.socket:
    """An endless MPTCP download from the lab server, left unread (its subflows stay up)."""
    with lab.client.entered():
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_MPTCP)
        sock.settimeout(5)
        sock.connect((lab.paths[0].server_addr, lab.config.mptcp_port))
    sock.sendall(b"GET /forever HTTP/1.1\r\nHost: lab\r\n\r\n")
    return sock


async def test_new_subflow_readds_the_endpoint_of_a_closed_subflow(make_lab: Callable[..., Lab]) -> None:
    lab = make_lab(client_endpoints="subflow")
    sock = mptcp_download(lab)
    try:
        support.wait_for(lambda: lab.subflows(WWAN) != [], timeout=20)
        before = set(lab.subflows(WWAN))
        assert lab.reset_subflows(WWAN) >= 1
        support.wait_for(lambda: lab.subflows(WWAN) == [], timeout=20)
        time.sleep(0.3)
        assert lab.subflows(WWAN) == []                                # the kernel does not reopen it
        id = ip_endpoints(lab)[WWAN_ADDR]["id"]
        with lab.client.entered():
            app = MptopApp(clock=False)
            async with run(app) as pilot:
                screen = await open_endpoints(pilot)
                table = screen.query_one(DataTable)
                assert table.get_row_at(table.cursor_row)[1] == WWAN_ADDR
                await pilot.press("n")
                await confirm(pilot, f"ip mptcp endpoint delete id {id} && "
                                     f"ip mptcp endpoint add {WWAN_ADDR} id {id} dev {WWAN} subflow")
                took = support.wait_for(lambda: lab.subflows(WWAN) != [], timeout=20)
        print(f"new subflow {took * 1000:.0f} ms after the re-add")
        after = lab.subflows(WWAN)
        assert not set(after) & before                                  # a new subflow, new port
        shown = ip_endpoints(lab)[WWAN_ADDR]
        assert (shown["id"], shown["dev"], shown.get("subflow")) == (id, WWAN, True)
    finally:
        sock.close()
