"""The lab's errors, in a module of their own: `mptop demo` names them before its first frame, and the
lab itself (its configuration too) loads after that frame (mptop.demo.tui)."""

from __future__ import annotations


class LabError(RuntimeError):
    """A lab operation failed; the message is one line naming the cause."""


class LabUnavailable(LabError):
    """The lab cannot be built here (no privileges, missing tools); the message says what to run."""
