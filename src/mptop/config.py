"""The user's settings: ``$XDG_CONFIG_HOME/mptop/config.toml`` (default ``~/.config/mptop/config.toml``).

It keeps the theme (the last one chosen, on the command line or with ctrl+p), the rate units and each
command's sampling interval.  The command line wins over the file, and what it sets is kept for the next
run.  A file that cannot be read or is malformed costs one warning line; the defaults apply.  Writes are
atomic (a temporary file in the same folder, then rename): a crash never leaves half a file.

    theme = "nord"
    units = "bytes"
    [interval]
    watch = 2.0
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

UNITS = ("bits", "bytes")
DEFAULT_UNITS = "bits"


def config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or ""
    root = Path(base) if os.path.isabs(base) else Path.home() / ".config"   # the spec: relative = unset
    return root / "mptop" / "config.toml"


def warn(message: str) -> None:
    print(f"mptop: {message}", file=sys.stderr)


def load_config(path: Path | None = None) -> dict[str, Any] | None:
    """The settings in the file ({} when there is none); None, after one warning, when it cannot be read
    or parsed.  A bad value: one warning, that value left out."""
    path = path or config_path()
    try:
        text = path.read_text(encoding="utf-8")
        import tomllib  # only when there is a file: the parser is 3-5 ms of every start (bench/startup.py)

        data = tomllib.loads(text)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:          # ValueError: UnicodeDecodeError, tomllib.TOMLDecodeError
        warn(f"ignoring {path}: {getattr(exc, 'strerror', None) or exc} (using the defaults)")
        return None
    settings: dict[str, Any] = {}
    bad: list[str] = []
    for key, ok in (("theme", lambda v: isinstance(v, str)), ("units", lambda v: v in UNITS)):
        if key in data:
            if ok(data[key]):
                settings[key] = data[key]
            else:
                bad.append(key)
    intervals = data.get("interval", {})
    if not isinstance(intervals, dict):
        bad.append("interval")
        intervals = {}
    for command, value in intervals.items():
        if isinstance(value, int | float) and not isinstance(value, bool) and 0 < value < float("inf"):
            settings.setdefault("interval", {})[str(command)] = float(value)
        else:
            bad.append(f"interval.{command}")
    if bad:
        warn(f"ignoring {', '.join(bad)} in {path} (using the defaults)")
    return settings


def _toml_value(value: object) -> str:
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(float(value))  # type: ignore[arg-type]


def dumps(settings: dict[str, Any]) -> str:
    lines = [f"{key} = {_toml_value(settings[key])}" for key in ("theme", "units") if key in settings]
    intervals = settings.get("interval") or {}
    if intervals:
        lines += ["", "[interval]"] + [f"{command} = {_toml_value(s)}" for command, s in sorted(intervals.items())]
    return "\n".join(lines) + "\n"


def save(changes: dict[str, Any], path: Path | None = None, settings: dict[str, Any] | None = None) -> None:
    """Merge ``changes`` into the file's ``settings`` (read again when not given) and write it atomically.
    A file that could not be read is left alone (its owner was warned); a failed write: one warning."""
    path = path or config_path()
    current = load_config(path) if settings is None else settings
    if current is None:
        return
    merged = {**current, "interval": dict(current.get("interval") or {})}
    for key, value in changes.items():
        if key == "interval":
            merged["interval"].update(value)
        else:
            merged[key] = value
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(prefix=".config.", suffix=".toml", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(dumps(merged))
            os.replace(temporary, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
    except OSError as exc:
        warn(f"cannot save the settings to {path}: {exc.strerror or exc}")


def apply(args: argparse.Namespace, command: str) -> None:
    """Fill the display options the command line left unset (None) from the file, else the defaults;
    keep what the command line set for the next run."""
    given = {"theme": getattr(args, "theme", None), "units": getattr(args, "unit", None),
             "interval": getattr(args, "interval", None)}
    read = load_config()
    settings = read or {}
    if hasattr(args, "theme"):
        args.theme = given["theme"] or settings.get("theme")
    if hasattr(args, "unit"):
        args.unit = given["units"] or settings.get("units", DEFAULT_UNITS)
    if hasattr(args, "interval") and args.interval is None:
        args.interval = settings.get("interval", {}).get(command, args._interval_default)
    changes: dict[str, Any] = {key: value for key, value in given.items() if value is not None and key != "interval"}
    if given["interval"] is not None:
        changes["interval"] = {command: given["interval"]}
    if changes and read is not None:
        save(changes, settings=read)
