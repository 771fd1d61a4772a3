"""escape_controls: the one escaping of outside text before it reaches a terminal."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mptop.core.safe_text import escape_controls

UNSAFE = [*map(chr, [*range(0x20), *range(0x7F, 0xA0)]), "\u202e", "\u2066", "\u200b", "\u2028", "\ufeff"]


def test_spells_out_escapes_and_invisible_characters() -> None:
    assert (escape_controls("HTTP 500 \x1b[2J\x1b]2;pwned\x07ok\x9b31m")
            == "HTTP 500 \\x1b[2J\\x1b]2;pwned\\x07ok\\x9b31m")
    assert escape_controls("evil\u202etxt.exe") == "evil\\u202etxt.exe"
    assert escape_controls("a\nb\tc\r") == "a\\x0ab\\x09c\\x0d"
    assert escape_controls("Wi-Fi → 192.0.2.1 · ✓ Ünïcode 日本") == "Wi-Fi → 192.0.2.1 · ✓ Ünïcode 日本"


@given(st.text())
def test_no_unsafe_character_survives_and_escaping_twice_is_once(text: str) -> None:
    once = escape_controls(text)
    assert not set(once) & set(UNSAFE)
    assert escape_controls(once) == once
