"""Recordings: NDJSON files of core records, one :func:`~mptop.core.model.to_ndjson` line per record.

The first line is a :class:`~mptop.core.model.HostInfo` (the TUI header needs it before anything
else); samples, events and a final summary follow in the order they were produced.  Written by
``--record`` (:class:`mptop.sinks.NdjsonOut`, the same writer as ``--json``), read back by ``mptop replay``.
"""

from __future__ import annotations

import json
import os

from mptop.core.model import HostInfo, Record, record_from_json


class RecordingError(ValueError):
    """A file that is not a readable mptop recording; the message is one line naming the cause."""


def _parse_line(path: str, number: int, line: str) -> Record:
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        raise RecordingError(f"{path}: line {number}: not JSON ({exc.msg})") from None
    if not isinstance(data, dict):
        raise RecordingError(f"{path}: line {number}: expected a JSON object, got {type(data).__name__}")
    try:
        return record_from_json(data)
    except ValueError as exc:  # unknown record type
        raise RecordingError(f"{path}: line {number}: {exc}") from None
    except (KeyError, TypeError) as exc:  # a missing or misnamed field
        raise RecordingError(f"{path}: line {number}: malformed {data.get('type')} record ({exc})") from None


def read_recording(path: str | os.PathLike[str]) -> list[Record]:
    """Every record of a recording, in file order.

    Raises :class:`RecordingError` (a one-line message) for a missing, unreadable, empty or
    malformed file, or one that does not start with a host record.
    """
    name = os.fspath(path)
    try:
        with open(name, encoding="utf-8") as fp:
            records = [
                _parse_line(name, number, line)
                for number, line in enumerate(fp, start=1)
                if line.strip()
            ]
    except FileNotFoundError:
        raise RecordingError(f"{name}: no such file") from None
    except IsADirectoryError:
        raise RecordingError(f"{name}: is a directory, not a recording") from None
    except PermissionError:
        raise RecordingError(f"{name}: permission denied") from None
    except UnicodeDecodeError:
        raise RecordingError(f"{name}: not a text file (expected NDJSON)") from None
    except OSError as exc:
        raise RecordingError(f"{name}: {exc.strerror or exc}") from None
    if not records:
        raise RecordingError(f"{name}: empty file, not a recording")
    if not isinstance(records[0], HostInfo):
        raise RecordingError(f"{name}: not an mptop recording (the first line is not a host record)")
    return records
