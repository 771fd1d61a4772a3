"""Start-up stays light: each command loads what it uses and nothing more.

`--help` and `--version` load no UI toolkit, no download engine and no other command's module; a
headless `get` (NDJSON, or plain lines for a script) loads neither Textual nor Rich, and no netlink
library.  Each case runs in a fresh interpreter (this one has imported everything already) and lists
sys.modules at its end — what was imported, not how long it took (timings are bench/startup.py's).
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from dataclasses import is_dataclass
from pathlib import Path
from typing import Any

import pytest

from mptop.cli import COMMANDS

HEAVY = ("textual", "rich", "aiohttp", "pyroute2", "psutil", "asyncio", "mptop.core.transfer")
UI = ("textual", "rich")
NETLINK_LIBRARY = ("pyroute2",)
# What a headless `get` defers to the paths that need it: psutil (process names, the doctor), the TOML
# parser (only with a config file), the upload engine, the doctor's wording of a missing subflow, watch,
# blake3 (only with --hash blake3).
DEFERRED_BY_GET = ("psutil", "tomllib", "blake3", "mptop.core.upload", "mptop.core.doctor_fix", "mptop.core.watch",
                   "mptop.core.watch_filter", "mptop.tui")
# What the download TUI's first frame (header, empty panels) must not wait for: the HTTP client and the
# engine, the sampler and the kernel's readers, psutil, the records' module, the view models and the
# cards that draw live data, the sinks (they come once the frame is drawn).
AFTER_FIRST_FRAME = ("aiohttp", "mptop.core.transfer", "mptop.core.session", "mptop.core.sampler",
                     "mptop.core.watch", "mptop.core.missing", "mptop.kernel", "psutil", "mptop.core.model",
                     "mptop.core.compare", "mptop.tui.state", "mptop.tui.story", "mptop.tui.watch_state",
                     "mptop.tui.cards", "mptop.tui.compare_card", "mptop.sinks")
# Watch's own screen, query and filter: the other TUIs never load them.
WATCH_SCREEN = ("mptop.tui.watch_screen", "mptop.tui.watch_query", "mptop.tui.watch_widgets",
                "mptop.core.watch_filter")

CHILD = """
import json, os, sys
from mptop.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
with open(os.environ["MPTOP_TEST_MODULES"], "w") as out:
    json.dump(sorted(sys.modules), out)
"""


# A TUI, headless: the modules loaded when its first frame is written (and, with $MPTOP_TEST_FRAME, the
# frame's widgets and text), then quit.
FIRST_FRAME_CHILD = """
import asyncio, json, os, sys
import mptop.tui.app as tui

real_run_app = tui.run_app

def run_app(app, *, theme=None, headless=False):
    display = app._display

    def first_frame(screen, update):
        display(screen, update)
        if update is not None and not os.path.exists(os.environ["MPTOP_TEST_MODULES"]):
            with open(os.environ["MPTOP_TEST_MODULES"], "w") as out:
                json.dump(sorted(sys.modules), out)
            if "MPTOP_TEST_FRAME" in os.environ:
                with open(os.environ["MPTOP_TEST_FRAME"], "w") as out:
                    json.dump({"widgets": sorted({type(w).__name__ for w in screen.walk_children(with_self=True)}),
                               "text": "\\n".join(s.text for s in screen._compositor.render_strips())}, out)
            app.call_later(app.exit)

    async def no_transfer(feed):
        await asyncio.Event().wait()

    app._display = first_frame
    app.runner = no_transfer
    return real_run_app(app, theme=theme, headless=True)

tui.run_app = run_app
import mptop.commands.tty as tty
tty.interactive = lambda: True        # stdin is not a terminal here: the frame is headless anyway
from mptop.cli import main
main(sys.argv[1:])
"""


def loaded_by(tmp_path: Path, *argv: str,
              child_code: str = CHILD) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """(the finished process, sorted module names) of `mptop ARGV…` run in a fresh interpreter (no
    config file: $XDG_CONFIG_HOME is an empty directory)."""
    listing = tmp_path / "modules.json"
    env = {**os.environ, "MPTOP_TEST_MODULES": str(listing), "XDG_CONFIG_HOME": str(tmp_path / "config"),
           "MPTOP_TEST_FRAME": str(tmp_path / "frame.json")}
    child = subprocess.run([sys.executable, "-c", child_code, *argv], capture_output=True, text=True, timeout=120,
                           stdin=subprocess.DEVNULL, env=env)
    return child, json.loads(listing.read_text())


def first_frame_of(tmp_path: Path, *argv: str) -> tuple[subprocess.CompletedProcess[str], list[str], dict[str, Any]]:
    """(the finished process, the modules loaded, {"widgets": type names, "text": lines}) at the first
    frame of the TUI of `mptop ARGV…`."""
    child, modules = loaded_by(tmp_path, *argv, child_code=FIRST_FRAME_CHILD)
    return child, modules, json.loads((tmp_path / "frame.json").read_text())


def among(modules: list[str], packages: tuple[str, ...]) -> list[str]:
    return [m for m in modules if any(m == p or m.startswith(p + ".") for p in packages)]


def commands(modules: list[str]) -> set[str]:
    return {m.rsplit(".", 1)[-1] for m in modules if m.startswith("mptop.commands.")}


@pytest.mark.parametrize("argv", [["--help"], ["--version"]])
def test_help_and_version_load_no_command_and_nothing_heavy(tmp_path: Path, argv: list[str]) -> None:
    child, modules = loaded_by(tmp_path, *argv)
    assert "mptop" in child.stdout              # the help or the version was printed
    assert "mptop.cli" in modules               # ...by the CLI whose imports are listed
    assert among(modules, HEAVY) == []
    assert commands(modules) == set()           # not one command's module for the list of commands


@pytest.mark.parametrize("name", list(COMMANDS))
def test_a_commands_help_loads_that_command_alone_and_nothing_heavy(tmp_path: Path, name: str) -> None:
    child, modules = loaded_by(tmp_path, name, "--help")
    assert f"mptop {name}" in child.stdout
    assert among(modules, HEAVY) == []
    shared = {"options", "tty", "get"}          # option types, the terminal check, get's transfer options (put)
    assert commands(modules) - shared <= {COMMANDS[name][0]}


@pytest.mark.parametrize("extra", [["--json"], []], ids=["json", "plain-lines"])
def test_a_headless_get_loads_no_ui_toolkit_nor_netlink_library(tmp_path: Path, extra: list[str]) -> None:
    # Port 1 on loopback refuses at once: the whole run (session, sampler, path-manager subscription,
    # host record, the failure's summary) without a network; stderr is a pipe, not a terminal.
    child, modules = loaded_by(tmp_path, "get", *extra, "-o", str(tmp_path / "out"), "http://127.0.0.1:1/file")
    assert child.returncode == 0 and "connection refused" in child.stderr.lower()   # the run happened
    assert "aiohttp" in modules and "mptop.core.sampler" in modules
    assert among(modules, UI + NETLINK_LIBRARY) == []
    assert among(modules, DEFERRED_BY_GET) == []


def test_the_kernel_values_a_headless_get_loads_are_named_tuples(tmp_path: Path) -> None:
    # Every start-up defines each class it loads: a frozen dataclass compiles six methods from source
    # (~0.6-0.8 ms each class), a named tuple is made in ~0.15 ms and built in one C call.
    _, modules = loaded_by(tmp_path, "get", "--json", "-o", str(tmp_path / "out"), "http://127.0.0.1:1/file")
    kernel = [importlib.import_module(m) for m in among(modules, ("mptop.kernel",))]
    assert len(kernel) > 5                                  # the readers of a get were listed
    dataclasses_there = [f"{m.__name__}.{name}" for m in kernel for name, value in vars(m).items()
                         if isinstance(value, type) and value.__module__ == m.__name__ and is_dataclass(value)]
    assert dataclasses_there == []


def test_the_download_tuis_first_frame_waits_for_no_engine_nor_view_model(tmp_path: Path) -> None:
    child, modules = loaded_by(tmp_path, "get", "--tui", "-o", str(tmp_path / "out"), "http://127.0.0.1:1/file",
                               child_code=FIRST_FRAME_CHILD)
    assert "mptop.tui.screen" in modules and "textual.app" in modules     # the frame was drawn
    assert among(modules, AFTER_FIRST_FRAME + WATCH_SCREEN) == []
    assert "stopped before the end" in child.stderr      # then the session was made, for the summary


# `mptop watch`'s first frame waits for the one check that must come before any screen (can MPTCP
# connections be listed here: the diag reader and one dump); the sampler, its trackers and records,
# the view model and psutil come after it, and ctypes (malloc's tuning is for the commands that move
# bodies; the struct decoders name its buffers for the type checker only) not at all.
WATCH_AFTER_FIRST_FRAME = (*(m for m in AFTER_FIRST_FRAME if m != "mptop.kernel"), "mptop.core.watch_track",
                           "mptop.core.watch_ends", "mptop.kernel.pm", "mptop.kernel.host", "ctypes")


def test_watchs_first_frame_waits_for_its_listing_check_alone(tmp_path: Path) -> None:
    child, modules = loaded_by(tmp_path, "watch", child_code=FIRST_FRAME_CHILD)
    assert child.returncode == 0, child.stderr
    assert "mptop.tui.watch_screen" in modules and "textual.app" in modules     # the frame was drawn
    assert "mptop.core.watch_open" in modules        # ...after the check that would have said one line
    assert among(modules, WATCH_AFTER_FIRST_FRAME) == []


GC_CHILD = """
import gc, json, os, sys
from mptop.cli import main
main(sys.argv[1:])
with open(os.environ["MPTOP_TEST_MODULES"], "w") as out:
    json.dump({"frozen": gc.get_freeze_count(), "collecting": gc.isenabled()}, out)
"""


def test_a_headless_get_imports_its_engine_without_collections_then_collects(tmp_path: Path) -> None:
    # The collector's passes over what aiohttp and the engine make as they load free nothing: paused
    # meanwhile, those objects frozen after; collection resumes before the run.
    listing = tmp_path / "gc.json"
    env = {**os.environ, "MPTOP_TEST_MODULES": str(listing), "XDG_CONFIG_HOME": str(tmp_path / "config")}
    subprocess.run([sys.executable, "-c", GC_CHILD, "get", "--json", "-o", str(tmp_path / "out"),
                    "http://127.0.0.1:1/file"], capture_output=True, timeout=120, stdin=subprocess.DEVNULL, env=env)
    state = json.loads(listing.read_text())
    assert state["collecting"] is True
    assert state["frozen"] > 10_000              # the engine's modules' objects (about 55,000 here)


# What no first frame waits for: the subflows table (Textual's DataTable: module, CSS, mount) is mounted
# in its panel once the frame is drawn; watch's filter box (an Input) too, until `/` or --process shows it.
LATER_WIDGETS = {"SubflowsTable", "DataTable", "Input", "Toast"}
LATER_MODULES = ("mptop.tui.subflows", "textual.widgets._data_table", "mptop.core.rates", "mptop.tui.help",
                 "mptop.tui.too_small")
# The first frame's header and panels' frames.
FRAME = ("mptop", "Paths", "Subflows", "Events")


@pytest.mark.parametrize("argv", [["watch"], ["get", "--tui", "-o", "{tmp}/out", "http://127.0.0.1:1/file"]],
                         ids=["watch", "download"])
def test_the_first_frame_is_drawn_before_the_subflows_table_and_the_filter_box(tmp_path: Path,
                                                                               argv: list[str]) -> None:
    child, modules, frame = first_frame_of(tmp_path, *(a.format(tmp=tmp_path) for a in argv))
    assert all(word in frame["text"] for word in FRAME), frame["text"]
    assert {"TopList", "PathsView", "Footer"} <= set(frame["widgets"])
    assert LATER_WIDGETS & set(frame["widgets"]) == set()
    assert among(modules, LATER_MODULES) == []


# The demo's first frame names the lab's errors (mptop.lab.errors) and nothing more of it: the lab's
# configuration, namespaces, topology, server and content hashes load in the thread that builds it, after
# the frame; the intro toast comes after the frame too.  Its scenario is read as a plain file.
LAB_MACHINERY = ("mptop.lab.config", "mptop.lab.actions", "mptop.lab.netns", "mptop.lab.topology",
                 "mptop.lab.content", "mptop.lab.server", "mptop.lab.faults", "mptop.demo.run",
                 "importlib.resources", "zipfile")


def test_the_demos_first_frame_waits_for_none_of_the_lab_nor_its_intro(tmp_path: Path) -> None:
    child, modules, frame = first_frame_of(tmp_path, "demo")
    assert child.returncode == 0, child.stderr
    assert "mptop.demo.app" in modules and "mptop.lab.errors" in modules     # the frame of the demo, drawn
    assert all(word in frame["text"] for word in FRAME), frame["text"]
    assert among(modules, LAB_MACHINERY + AFTER_FIRST_FRAME + WATCH_SCREEN + LATER_MODULES) == []
    assert LATER_WIDGETS & set(frame["widgets"]) == set()


@pytest.mark.parametrize("command", ["watch", "demo"])
def test_what_a_first_frame_loads_defines_no_dataclass(tmp_path: Path, command: str) -> None:
    # As the kernel's values: the demo's scenario, watch's filter and query are named tuples (a frozen
    # dataclass is ~0.5 ms to define at every start, a named tuple ~0.1 ms); the subflows table's
    # columns come after the frame.
    _, modules, _ = first_frame_of(tmp_path, command)
    ours = [importlib.import_module(m) for m in among(modules, ("mptop",))]
    assert "mptop.tui.screen" in modules                    # the frame was drawn
    dataclasses_there = [f"{m.__name__}.{name}" for m in ours for name, value in vars(m).items()
                         if isinstance(value, type) and value.__module__ == m.__name__ and is_dataclass(value)]
    assert dataclasses_there == []
