"""NDJSON on stdout (`get --json`, `demo --json`, `watch --json`): one compact record per line,
flushed, so a pipe sees each as it happens.

A reader that goes away (`| head -1`) is not an error of ours: the stream stops quietly, the fd
is pointed at /dev/null so nothing (Python's flush at exit included) raises again, and
``on_reader_gone`` lets the command stop its work.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import IO

from mptop.core.model import Record, to_json


class NdjsonOut:
    def __init__(self, stream: IO[str], on_reader_gone: Callable[[], None] | None = None) -> None:
        self.stream = stream
        self.on_reader_gone = on_reader_gone
        self.reader_gone = False

    def __call__(self, record: Record) -> None:
        if self.reader_gone:
            return
        try:
            self.stream.write(json.dumps(to_json(record), separators=(",", ":")) + "\n")
            self.stream.flush()
        except BrokenPipeError:
            self.reader_gone = True
            os.dup2(os.open(os.devnull, os.O_WRONLY), self.stream.fileno())
            if self.on_reader_gone is not None:
                self.on_reader_gone()
