"""Demo scenarios are data (``assets/scenarios/*.toml``), not code: a lab set-up, a download and timed steps."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, NamedTuple

ACTIONS = {"link_down", "link_up", "set_rate", "set_backup", "clear_backup", "delete_endpoint", "add_endpoint",
           "reset_subflows"}
DEFAULT = "handover"
# Next to this module, as the TUI's stylesheet (importlib.resources and its zipfile are ~2 ms of the
# demo's start-up, for files that are plain files in every install).
SCENARIOS = Path(__file__).with_name("scenarios")
IFACES = ("wlan0", "wwan0")        # the lab's client paths: what a step can act on


class ScenarioError(ValueError):
    """A scenario file is missing or malformed; the message is one line for the user."""


# Named tuples, not frozen dataclasses: the demo loads its scenario before its first frame, and a
# dataclass costs ~0.5 ms to define, a named tuple ~0.1 ms (bench/startup.py).
class Step(NamedTuple):
    at_s: float
    action: str
    iface: str
    mbit: float | None = None


class Scenario(NamedTuple):
    name: str
    title: str
    description: str
    period_s: float                          # 0: the steps play once
    rate_mbit: dict[str, float | None]
    client_endpoints: str = "none"
    backup: tuple[str, ...] = ()
    download_tcp: bool = False               # fetch from the plain-TCP port (fallback)
    download_size: int | None = None         # None: an endless download
    compare_tcp: bool = False                # the same download over plain TCP beside it (--compare-tcp)
    idle_timeout_s: float | None = None      # a download with no byte for this long fails (None: the default)
    steps: tuple[Step, ...] = ()

    def steps_between(self, t0: float, t1: float) -> list[tuple[float, Step]]:
        """(time, step) for the steps due in (t0, t1] of scenario time, repeating every period."""
        due: list[tuple[float, Step]] = []
        for step in self.steps:
            k = 0
            while True:
                at = step.at_s + k * self.period_s
                if at > t1:
                    break
                if at > t0:
                    due.append((at, step))
                if self.period_s <= 0:
                    break
                k += 1
        return sorted(due, key=lambda pair: pair[0])


def builtin_names() -> list[str]:
    return sorted(p.name.removesuffix(".toml") for p in SCENARIOS.iterdir() if p.name.endswith(".toml"))


def load(name_or_path: str = DEFAULT) -> Scenario:
    """A built-in scenario by name, or a scenario file by path."""
    if name_or_path.endswith(".toml") or "/" in name_or_path:
        path = Path(name_or_path)
        try:
            text = path.read_text()
        except OSError as exc:
            raise ScenarioError(f"cannot read scenario {path}: {exc.strerror}") from None
    else:
        if name_or_path not in builtin_names():
            raise ScenarioError(f"no scenario {name_or_path!r}; choose one of: {', '.join(builtin_names())}")
        text = (SCENARIOS / f"{name_or_path}.toml").read_text()
    try:
        return parse(tomllib.loads(text))
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"scenario {name_or_path}: {exc}") from None


def parse(data: dict[str, Any]) -> Scenario:
    try:
        lab = data.get("lab", {})
        download = data.get("download", {})
        steps = tuple(_step(s) for s in data.get("steps", []))
        size = download.get("size")
        return Scenario(
            name=str(data["name"]),
            title=str(data.get("title", data["name"])),
            description=str(data.get("description", "")),
            period_s=float(data.get("period_s", 0)),
            rate_mbit={k: (None if v in (0, None) else float(v)) for k, v in lab.get("rate_mbit", {}).items()},
            client_endpoints=str(lab.get("client_endpoints", "none")),
            backup=tuple(lab.get("backup", ())),
            download_tcp=bool(download.get("tcp", False)),
            download_size=None if size in (None, "forever") else int(size),
            compare_tcp=bool(download.get("compare_tcp", False)),
            idle_timeout_s=None if download.get("idle_timeout_s") is None else float(download["idle_timeout_s"]),
            steps=steps,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ScenarioError(f"malformed scenario: {exc}") from None


def _step(raw: dict[str, Any]) -> Step:
    action = raw["action"]
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r} (known: {', '.join(sorted(ACTIONS))})")
    if raw["iface"] not in IFACES:       # checked now: a step failing mid-demo would stop the script
        raise ValueError(f"unknown interface {raw['iface']!r} (the lab has {', '.join(IFACES)})")
    mbit = raw.get("mbit")
    return Step(at_s=float(raw["at_s"]), action=action, iface=str(raw["iface"]),
                mbit=None if mbit is None else float(mbit))
