"""Path-manager events: the decoder and netlink framing on synthetic bytes.

The attribute numbers and encodings below are written out from uapi/linux/mptcp_pm.h
independently of the decoder's table, so a slip there shows up here."""

from __future__ import annotations

import ipaddress
import socket
import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mptop.kernel.genl import iter_attrs, iter_messages, pack_attr
from mptop.kernel.pm_events import decode_datagram, decode_event
from mptop.kernel.types import KernelParseError, PmEvent, PmEventKind

FAMILY_ID = 28


def u8(v: int) -> bytes:
    return bytes([v])


def u16(v: int) -> bytes:
    return struct.pack("=H", v)


def u32(v: int) -> bytes:
    return struct.pack("=I", v)


def be16(v: int) -> bytes:
    return struct.pack(">H", v)


# MPTCP_ATTR_* number -> (PmEvent field, encoder, value strategy)
ENCODED: dict[int, tuple[str, Any, st.SearchStrategy[Any]]] = {
    1: ("token", u32, st.integers(0, 2**32 - 1)),
    2: ("family", u16, st.sampled_from([socket.AF_INET, socket.AF_INET6])),
    3: ("local_id", u8, st.integers(0, 255)),
    4: ("remote_id", u8, st.integers(0, 255)),
    5: ("saddr", socket.inet_aton, st.ip_addresses(v=4).map(str)),
    7: ("daddr", socket.inet_aton, st.ip_addresses(v=4).map(str)),
    9: ("sport", be16, st.integers(0, 65535)),
    10: ("dport", be16, st.integers(0, 65535)),
    11: ("backup", lambda v: u8(int(v)), st.booleans()),
    12: ("error", u8, st.integers(0, 255)),
    13: ("flags", u16, st.integers(0, 65535)),
    14: ("timeout", u32, st.integers(0, 2**32 - 1)),
    15: ("ifindex", lambda v: struct.pack("=i", v), st.integers(-(2**31), 2**31 - 1)),
    16: ("reset_reason", u32, st.integers(0, 2**32 - 1)),
    17: ("reset_flags", u32, st.integers(0, 2**32 - 1)),
    18: ("server_side", lambda v: u8(int(v)), st.booleans()),
}
V6 = {6: ("saddr", lambda v: socket.inet_pton(socket.AF_INET6, v), st.ip_addresses(v=6).map(str)),
      8: ("daddr", lambda v: socket.inet_pton(socket.AF_INET6, v), st.ip_addresses(v=6).map(str))}


def datagram(cmd: int, attrs: bytes, family_id: int = FAMILY_ID) -> bytes:
    payload = struct.pack("=BBH", cmd, 1, 0) + attrs
    return struct.pack("=IHHII", 16 + len(payload), family_id, 0, 0, 0) + payload


@st.composite
def events(draw: st.DrawFn) -> tuple[int, bytes, dict[str, Any], dict[int, bytes]]:
    """(cmd, attribute bytes, expected fields, expected extra) for a random well-formed event."""
    table = dict(ENCODED)
    if draw(st.booleans()):
        table.update(V6)
        del table[5], table[7]
    chosen = draw(st.lists(st.sampled_from(sorted(table)), unique=True))
    fields, raw = {}, b""
    for number in chosen:
        name, encode, values = table[number]
        fields[name] = value = draw(values)
        raw += pack_attr(number, encode(value))
    extra = draw(st.dictionaries(st.integers(19, 0x3FFF), st.binary(max_size=24), max_size=3))
    for number, payload in extra.items():
        raw += pack_attr(number, payload)
    if "server_side" not in fields and "flags" in fields:
        fields["server_side"] = bool(fields["flags"] & 2)   # MPTCP_PM_EV_FLAG_SERVER_SIDE
    return draw(st.sampled_from([k.value for k in PmEventKind])), raw, fields, extra


@given(events())
def test_decode_round_trip(case: tuple[int, bytes, dict[str, Any], dict[int, bytes]]) -> None:
    cmd, raw, fields, extra = case
    (event,) = decode_datagram(datagram(cmd, raw), FAMILY_ID)
    # one spelling per address: inet_ntop writes ::ffff:0.0.0.0 where ipaddress writes ::ffff:0:0
    event = event._replace(**{k: str(ipaddress.ip_address(v)) for k, v in
                                (("saddr", event.saddr), ("daddr", event.daddr)) if v})
    assert event == PmEvent(kind=PmEventKind(cmd), extra=extra, **fields)


def test_sub_established_as_the_kernel_sends_it() -> None:
    # Byte for byte what 6.18 sent for a join (token, ids, 198.51.100.2:40000 -> .1:80, if_idx 3).
    raw = (pack_attr(1, bytes.fromhex("025c72b4")) + pack_attr(2, b"\x02\x00") + pack_attr(3, b"\x02")
           + pack_attr(4, b"\x01") + pack_attr(5, bytes([198, 51, 100, 2])) + pack_attr(7, bytes([198, 51, 100, 1]))
           + pack_attr(9, bytes.fromhex("9c40")) + pack_attr(10, bytes.fromhex("0050")) + pack_attr(11, b"\x00")
           + pack_attr(15, b"\x03\x00\x00\x00"))
    event = decode_event(10, raw)
    assert event == PmEvent(PmEventKind.SUB_ESTABLISHED, token=0xB4725C02, family=2, local_id=2, remote_id=1,
                            saddr="198.51.100.2", daddr="198.51.100.1", sport=40000, dport=80, backup=False,
                            ifindex=3)


def test_unknown_event_type_is_skipped_and_other_messages_ignored() -> None:
    assert decode_event(99, pack_attr(1, u32(5))) is None
    done = struct.pack("=IHHII", 20, 3, 0, 0, 0) + b"\0" * 4          # NLMSG_DONE in the same datagram
    buf = done + datagram(3, pack_attr(1, u32(7))) + datagram(12, b"")
    assert decode_datagram(buf, FAMILY_ID) == [PmEvent(PmEventKind.CLOSED, token=7)]


def test_server_side_flag_without_the_legacy_attribute() -> None:
    assert decode_event(1, pack_attr(13, u16(2))) == PmEvent(PmEventKind.CREATED, flags=2, server_side=True)
    assert decode_event(1, pack_attr(13, u16(1))) == PmEvent(PmEventKind.CREATED, flags=1, server_side=False)


@pytest.mark.parametrize("number", sorted({**ENCODED, **V6}))
def test_known_attribute_with_the_wrong_size_is_a_parse_error(number: int) -> None:
    name, encode, _ = {**ENCODED, **V6}[number]
    size = len(encode(_sample(number)))
    for wrong in (size - 1, size + 1):
        with pytest.raises(KernelParseError, match=name):
            decode_event(1, pack_attr(number, b"\0" * wrong))


def _sample(number: int) -> Any:
    return {5: "1.2.3.4", 7: "1.2.3.4", 6: "::1", 8: "::1", 11: True, 18: True}.get(number, 1)


@given(st.binary(max_size=300))
@settings(max_examples=300)
def test_random_datagrams_decode_or_raise_parse_error(buf: bytes) -> None:
    try:
        result = decode_datagram(buf, FAMILY_ID)
    except KernelParseError:
        return
    assert all(isinstance(e, PmEvent) for e in result)


@given(events(), st.data())
def test_truncated_datagrams_raise_parse_error(case: tuple[int, bytes, Any, Any], data: st.DataObject) -> None:
    cmd, raw, _, _ = case
    full = datagram(cmd, raw)
    cut = data.draw(st.integers(1, len(full) - 1))
    with pytest.raises(KernelParseError):
        decode_datagram(full[:cut], FAMILY_ID)


@given(events(), st.data())
def test_truncated_attributes_decode_or_raise_parse_error(case: tuple[int, bytes, Any, Any],
                                                          data: st.DataObject) -> None:
    cmd, raw, _, _ = case
    cut = data.draw(st.integers(0, len(raw)))
    try:
        event = decode_event(cmd, raw[:cut])
    except KernelParseError:
        return
    assert event is not None and event.kind.value == cmd


@given(st.lists(st.tuples(st.integers(0, 0xFFFF), st.binary(max_size=20)), max_size=6))
def test_attribute_framing_round_trip(attrs: list[tuple[int, bytes]]) -> None:
    raw = b"".join(pack_attr(kind, payload) for kind, payload in attrs)
    # flag bits (NLA_F_NESTED, NLA_F_NET_BYTEORDER) are stripped from the type
    assert list(iter_attrs(raw)) == [(kind & 0x3FFF, payload) for kind, payload in attrs]


def test_message_framing_rejects_bad_lengths() -> None:
    good = datagram(3, pack_attr(1, u32(1)))
    assert [m.type for m in iter_messages(good + good)] == [FAMILY_ID, FAMILY_ID]
    for bad in (good[:15], struct.pack("=IHHII", 8, 28, 0, 0, 0), struct.pack("=IHHII", 99, 28, 0, 0, 0)):
        with pytest.raises(KernelParseError):
            list(iter_messages(bad))
    with pytest.raises(KernelParseError):
        list(iter_attrs(struct.pack("=HH", 2, 1)))   # nla_len below the header size


def test_a_path_manager_without_an_events_group_is_one_oserror(monkeypatch: pytest.MonkeyPatch) -> None:
    """Linux 5.6-5.11 has the mptcp_pm family but no events group: an OSError naming it (callers
    then infer events from polls), the socket closed, never a KeyError."""
    import mptop.kernel.pm_events as pm_events_mod
    from mptop.kernel.genl import GenlChannel, GenlFamily

    channel = GenlChannel(socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM))
    old_kernel = GenlFamily("mptcp_pm", channel.sock.fileno() + 1000, groups={})
    monkeypatch.setattr(pm_events_mod, "open_pm", lambda rcvbuf=None: (channel, old_kernel))
    with pytest.raises(OSError, match="sends no events"):
        pm_events_mod.PmEvents()
    assert channel.sock.fileno() == -1
