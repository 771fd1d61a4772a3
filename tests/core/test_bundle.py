"""The bundle's address masking and JSON shaping (pure)."""

from __future__ import annotations

from mptop.core.bundle import Masker, plain
from mptop.kernel.types import EndpointFlag


def test_masker_is_consistent_and_leaves_other_text_alone() -> None:
    m = Masker()
    text = ("198.51.100.2:443 → 2001:db8::1 via fe80::1%wlan0 lladdr 0c:5b:8f:27:9a:64; again 198.51.100.2 "
            "at 12:44:45, Linux 6.18.44, lo 127.0.0.1 ::1, mac 00:00:00:00:00:00, 999.1.1.1")
    assert m.mask(text) == ("ip4-1:443 → ip6-1 via ip6-2%wlan0 lladdr mac-1; again ip4-1 at 12:44:45, "
                            "Linux 6.18.44, lo 127.0.0.1 ::1, mac 00:00:00:00:00:00, 999.1.1.1")
    assert m.mask("[\"2001:DB8::1\", \"203.0.113.7\"]") == "[\"ip6-1\", \"ip4-2\"]"


def test_plain_shapes_flags_and_named_tuples() -> None:
    assert plain({"flags": EndpointFlag.SUBFLOW, "pair": ("192.0.2.1", 80)}) == {"flags": "SUBFLOW",
                                                                                 "pair": ["192.0.2.1", 80]}
