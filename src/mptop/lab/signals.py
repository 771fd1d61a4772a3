"""For command-line programs (the demo): make SIGTERM/SIGHUP unwind like Ctrl-C.

The library installs no handlers; a CLI wraps its ``with Lab(...)`` in :func:`exit_on_signals`
so those signals raise SystemExit in the main thread and the lab's ``__exit__`` tears down
(SIGINT already raises KeyboardInterrupt; SIGKILL is covered by PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any

DEFAULT_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


def _raise_exit(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def exit_on_signals(signals: tuple[signal.Signals, ...] = DEFAULT_SIGNALS) -> Iterator[None]:
    """Within the body, ``signals`` raise SystemExit(128 + signum); old handlers restored after."""
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("exit_on_signals() works only in the main thread")
    previous: dict[signal.Signals, Any] = {sig: signal.signal(sig, _raise_exit) for sig in signals}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
