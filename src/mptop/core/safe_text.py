"""Text from outside (servers, recordings, other processes) made safe to print on a terminal.

:func:`escape_controls` is the one function every view and error line passes such text through:
it spells out each control character (C0, DEL, C1) and each invisible formatting character that
can reorder or hide text (bidi overrides and isolates, zero-width, line/paragraph separators, BOM)
as ``\\xNN`` / ``\\uNNNN``, so an ``ESC[2J`` from a server shows as ``\\x1b[2J`` instead of wiping
the screen.  Neither Rich (``rich.control.escape_control_codes`` covers five codes, not ESC) nor
the standard library has this.  The result contains no such character, so escaping twice is
escaping once.
"""

from __future__ import annotations

import re

_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")


def _spelled(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape_controls(text: str) -> str:
    """``text`` with every control or invisible formatting character spelled out (see the module)."""
    return _UNSAFE.sub(_spelled, text)
