"""Recordings: NDJSON files of core records, one :func:`~mptop.core.model.to_ndjson` line per record.

The first line is a :class:`~mptop.core.model.HostInfo` (the TUI header needs it before anything
else); samples, events and a final summary follow in the order they were produced.  Written by
``--record`` (:class:`mptop.sinks.NdjsonOut`, the same writer as ``--json``), read back by ``mptop replay``.

Reading streams (:func:`iter_recording`: one line at a time, at most :data:`MAX_LINE` bytes, a 100 MB
recording starts playing at once) and checks every line against the one schema there is: the
dataclasses of :mod:`mptop.core.model` that wrote it (their field types, read with
``typing.get_type_hints``).  A line that does not fit — ``paths`` as a list, a subflow that is a
number, ``t: null``, ``labels`` as a string, JSON nested past any record's depth — is refused with
its line number, before any view sees it.  Unknown keys are ignored (newer recordings still load).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import types
import typing
from collections.abc import Callable, Iterator
from typing import Any, Literal, Union

from mptop.core import model
from mptop.core.model import HostInfo, Record, record_from_json

MAX_LINE = 16 << 20          # bytes: a record line is a few kB; longer is not a recording
_RECORDS: dict[str, type] = {"sample": model.Sample, "event": model.Event, "summary": model.Summary,
                             "host": model.HostInfo}


class RecordingError(ValueError):
    """A file that is not a readable mptop recording; the message is one line naming the cause."""


@functools.cache
def _field_types(cls: type) -> dict[str, tuple[Any, bool]]:
    """name -> (type, required) of a record dataclass's fields."""
    hints = typing.get_type_hints(cls, vars(model))
    return {f.name: (hints[f.name], f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING)
            for f in dataclasses.fields(cls)}


def _kind(value: object) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number")


def _check(value: object, hint: Any, where: str) -> None:
    """Raise ValueError naming ``where`` when ``value`` (parsed JSON) does not fit ``hint``."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (Union, types.UnionType):
        errors = []
        for option in args:
            try:
                return _check(value, option, where)
            except ValueError as exc:
                errors.append(exc)
        raise errors[-1] if len(args) == 2 and type(None) in args and value is not None else ValueError(
            f"{where}: {_kind(value)} does not fit")
    if origin is Literal:
        if value not in args:
            raise ValueError(f"{where}: {json.dumps(value)[:40]} is not one of {', '.join(map(str, args))}")
        return
    if hint is type(None):
        ok = value is None
    elif hint is bool:
        ok = isinstance(value, bool)
    elif hint is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif hint is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif hint is str:
        ok = isinstance(value, str)
    elif origin is list:
        if not isinstance(value, list):
            raise ValueError(f"{where}: expected a list, got {_kind(value)}")
        for i, item in enumerate(value):
            _check(item, args[0], f"{where}[{i}]")
        return
    elif origin is dict:
        if not isinstance(value, dict):
            raise ValueError(f"{where}: expected an object, got {_kind(value)}")
        for key, item in value.items():
            _check(item, args[1], f"{where}.{key}")
        return
    elif dataclasses.is_dataclass(hint):
        _check_object(value, typing.cast(type, hint), where)
        return
    else:                                   # a type the model does not use: nothing to check against
        return
    if not ok:
        raise ValueError(f"{where}: expected {hint.__name__}, got {_kind(value)}")


def _check_object(value: object, cls: type, where: str) -> None:
    if not isinstance(value, dict):
        raise ValueError(f"{where}: expected an object, got {_kind(value)}")
    for name, (hint, required) in _field_types(cls).items():
        if name in value:
            _check(value[name], hint, f"{where}.{name}" if where else name)
        elif required:
            raise ValueError(f"{where + '.' if where else ''}{name} is missing")


Fits = Callable[[object], bool]


@functools.cache
def _fits(hint: Any) -> Fits:
    """A fast yes/no for ``hint`` (built once per type); :func:`_check` then says where and why."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (Union, types.UnionType):
        options = [_fits(a) for a in args]
        return lambda v: any(f(v) for f in options)
    if origin is Literal:
        allowed = set(args)
        return lambda v: isinstance(v, str) and v in allowed
    if hint is type(None):
        return lambda v: v is None
    if hint is bool:
        return lambda v: v is True or v is False
    if hint is int:
        return lambda v: type(v) is int
    if hint is float:
        return lambda v: type(v) is float or type(v) is int
    if hint is str:
        return lambda v: type(v) is str
    if origin is list:
        item = _fits(args[0])
        return lambda v: type(v) is list and all(item(x) for x in v)
    if origin is dict:
        item = _fits(args[1])
        return lambda v: type(v) is dict and all(item(x) for x in v.values())
    if dataclasses.is_dataclass(hint):
        fields = [(name, _fits(h), required) for name, (h, required) in _field_types(typing.cast(type, hint)).items()]
        return lambda v: type(v) is dict and all(f(v[n]) if n in v else not r for n, f, r in fields)
    return lambda v: True


def _parse_line(path: str, number: int, line: str) -> Record:
    where = f"{path}: line {number}"
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        raise RecordingError(f"{where}: not JSON ({exc.msg})") from None
    except RecursionError:
        raise RecordingError(f"{where}: nested too deeply for a record") from None
    if not isinstance(data, dict):
        raise RecordingError(f"{where}: expected a JSON object, got {type(data).__name__}")
    cls = _RECORDS.get(data.get("type"))  # type: ignore[arg-type]
    if cls is None:
        raise RecordingError(f"{where}: unknown record type {str(data.get('type'))[:40]!r}")
    try:
        if not _fits(cls)(data):
            _check_object(data, cls, "")             # raises, naming where
            raise ValueError("does not fit the record's fields")
    except ValueError as exc:
        raise RecordingError(f"{where}: malformed {data['type']} record: {exc}") from None
    except RecursionError:
        raise RecordingError(f"{where}: nested too deeply for a record") from None
    return record_from_json(data)


def iter_recording(path: str | os.PathLike[str]) -> Iterator[Record]:
    """The records of a recording, one line at a time, each checked (see the module docstring).

    Raises :class:`RecordingError` (a one-line message) for a missing, unreadable or empty file,
    one that does not start with a host record, or — when iteration reaches it — a bad line.
    """
    name = os.fspath(path)
    try:
        with open(name, encoding="utf-8") as fp:
            number, first = 0, True
            while line := fp.readline(MAX_LINE + 1):
                number += 1
                if len(line) > MAX_LINE:
                    raise RecordingError(f"{name}: line {number}: longer than {MAX_LINE >> 20} MiB, not a record")
                if not line.strip():
                    continue
                record = _parse_line(name, number, line)
                if first and not isinstance(record, HostInfo):
                    raise RecordingError(f"{name}: not an mptop recording (the first line is not a host record)")
                first = False
                yield record
            if first:
                raise RecordingError(f"{name}: empty file, not a recording")
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


def read_recording(path: str | os.PathLike[str]) -> list[Record]:
    """Every record of a recording, in file order (:func:`iter_recording`, kept in a list)."""
    return list(iter_recording(path))
