"""What kind of link an interface is (Wi-Fi, cellular modem, phone tether…), from the kernel's evidence.

Read without privileges from ``/sys/class/net/IF/``; the first rule that matches wins:

1. Wi-Fi      ``uevent`` DEVTYPE=wlan, a ``phy80211`` link or a ``wireless/`` directory
2. cellular   DEVTYPE=wwan (WWAN framework, usbnet modems flagged FLAG_WWAN), a modem driver
              (cdc_mbim, qmi_wwan, huawei_cdc_ncm, mhi*, iosm, t7xx), or ``type`` 519 (ARPHRD_RAWIP)
3. Bluetooth  DEVTYPE=bluetooth (``bnep0``: Bluetooth PAN)
4. PPP        ``type`` 512 (ARPHRD_PPP)
5. tether     a phone's USB tethering: rndis_host (Android), ipheth (iPhone); cdc_ncm / cdc_ether
              (used by phones *and* by docks and USB Ethernet adapters) only with a locally
              administered MAC address (phones make one up; docks and adapters carry the vendor's
              burned-in one) — otherwise Ethernet
6. Ethernet   any other bound driver (``device/driver``) with ``type`` 1 (ARPHRD_ETHER)
7. otherwise  no hardware evidence (veth, tun, wireguard, bridges, loopback…): the interface
              name's usual prefix (``wl`` Wi-Fi, ``ww``/``rmnet``/``ccmni`` cellular, ``usb``
              tether, ``en``/``eth`` Ethernet), else other

sysfs shows the network namespace of the process that *mounted* it, not the calling thread's: a
thread that entered another netns (the lab) may find the host's devices there, even one of the
same name.  The evidence is used only when the sysfs entry's ``ifindex`` and ``address`` are those
of the interface in the calling thread's netns; otherwise only the name is left (``ip netns
exec`` remounts /sys for its namespace, so commands run that way see their own devices).
"""

from __future__ import annotations

import fcntl
import os
import socket
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Literal, NamedTuple

LinkType = Literal["wifi", "cellular", "tether", "ethernet", "bluetooth", "ppp", "other"]
LINK_TYPES: tuple[LinkType, ...] = ("wifi", "cellular", "tether", "ethernet", "bluetooth", "ppp", "other")
LINK_LABELS: dict[LinkType, str] = {
    "wifi": "Wi-Fi", "cellular": "Cellular", "tether": "Tether", "ethernet": "Ethernet",
    "bluetooth": "Bluetooth", "ppp": "PPP",
}

SYSFS = Path("/sys")
ARPHRD_ETHER, ARPHRD_PPP, ARPHRD_RAWIP = 1, 512, 519
MODEM_DRIVERS = ("cdc_mbim", "qmi_wwan", "huawei_cdc_ncm", "iosm", "t7xx")
TETHER_DRIVERS = ("rndis_host", "ipheth")
TETHER_OR_DOCK_DRIVERS = ("cdc_ncm", "cdc_ether")
_NAME_PREFIXES: tuple[tuple[tuple[str, ...], LinkType], ...] = (
    (("wl",), "wifi"),                               # wlan0, wlp2s0, wlx…
    (("ww", "rmnet", "ccmni"), "cellular"),          # wwan0, wwp0s20f0u3i12, wwx…, Android modems
    (("usb",), "tether"),                            # usb0: RNDIS / CDC tethering
    (("en", "eth"), "ethernet"),                     # eth0, enp3s0, eno1, enx…
)
_SIOCGIFHWADDR = 0x8927

Identity = Callable[[str], "tuple[int, str] | None"]


class LinkKind(NamedTuple):
    """An interface's link type and the evidence it was read from (one short phrase)."""

    type: LinkType
    evidence: str

    @property
    def label(self) -> str | None:
        """"Wi-Fi", "Cellular"…; None for ``other`` (the interface name is shown then)."""
        return LINK_LABELS.get(self.type)


def local_identity(iface: str) -> tuple[int, str] | None:
    """(ifindex, MAC as sysfs spells it) of ``iface`` in the calling thread's netns; None if absent."""
    try:
        ifindex = socket.if_nametoindex(iface)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            reply = fcntl.ioctl(sock.fileno(), _SIOCGIFHWADDR, struct.pack("16s16x", iface.encode()[:15]))
    except OSError:
        return None
    return ifindex, _mac(reply[18:24])


def _mac(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None


def _uevent(directory: Path) -> dict[str, str]:
    text = _read(directory / "uevent") or ""
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def _locally_administered(mac: str | None) -> bool:
    """The U/L bit of the first octet: set in addresses made up by software (phones' tethering)."""
    try:
        return mac is not None and bool(int(mac.split(":")[0], 16) & 0x02)
    except ValueError:
        return False


def by_name(iface: str) -> LinkKind:
    """The type the name's usual prefix suggests (used where there is no hardware evidence)."""
    for prefixes, kind in _NAME_PREFIXES:
        prefix = next((p for p in prefixes if iface.startswith(p)), None)
        if prefix is not None:
            return LinkKind(kind, f"name prefix {prefix!r}")
    return LinkKind("other", "unknown name")


def _same_device(directory: Path, iface: str, identity: Identity) -> bool:
    ours = identity(iface)
    if ours is None:
        return False
    index, mac = _read(directory / "ifindex"), _read(directory / "address")
    return index == str(ours[0]) and (mac or "").lower() == ours[1]


def classify(iface: str, sysfs: Path = SYSFS, identity: Identity | None = local_identity) -> LinkKind:
    """The link type of ``iface`` (see the module docstring for the rules and their order).

    ``sysfs`` is the sysfs mount to read (tests pass a synthetic tree); ``identity`` tells the
    interface's (ifindex, MAC) in the calling thread's netns — the sysfs entry is trusted only when
    they match.  ``identity=None`` trusts the tree as it is (synthetic trees).
    """
    directory = sysfs / "class" / "net" / iface
    if not directory.is_dir():
        kind = by_name(iface)
        return LinkKind(kind.type, f"not in sysfs; {kind.evidence}")
    if identity is not None and not _same_device(directory, iface, identity):
        kind = by_name(iface)
        return LinkKind(kind.type, f"sysfs shows another network namespace; {kind.evidence}")
    devtype = _uevent(directory).get("DEVTYPE", "")
    arphrd = _read(directory / "type")
    driver_link = directory / "device" / "driver"
    driver = driver_link.resolve().name if driver_link.exists() else None
    if devtype == "wlan" or (directory / "phy80211").exists() or (directory / "wireless").is_dir():
        return LinkKind("wifi", f"DEVTYPE=wlan / phy80211 (driver {driver})" if driver else "DEVTYPE=wlan / phy80211")
    if devtype == "wwan":
        return LinkKind("cellular", f"DEVTYPE=wwan (driver {driver})" if driver else "DEVTYPE=wwan")
    if driver is not None and (driver in MODEM_DRIVERS or driver.startswith("mhi")):
        return LinkKind("cellular", f"modem driver {driver}")
    if arphrd == str(ARPHRD_RAWIP):
        return LinkKind("cellular", "type 519 (raw IP: a modem's data channel)")
    if devtype == "bluetooth":
        return LinkKind("bluetooth", "DEVTYPE=bluetooth (Bluetooth PAN)")
    if arphrd == str(ARPHRD_PPP):
        return LinkKind("ppp", "type 512 (PPP)")
    if driver in TETHER_DRIVERS:
        return LinkKind("tether", f"phone tethering driver {driver}")
    if driver in TETHER_OR_DOCK_DRIVERS:
        mac = _read(directory / "address")
        if _locally_administered(mac):
            return LinkKind("tether", f"driver {driver} with a locally administered MAC (a phone)")
        return LinkKind("ethernet", f"driver {driver} with a vendor MAC (a dock or USB adapter)")
    if driver is not None:
        if arphrd == str(ARPHRD_ETHER):
            return LinkKind("ethernet", f"driver {driver}, type 1 (Ethernet)")
        return LinkKind("other", f"driver {driver}, type {arphrd}")
    kind = by_name(iface)
    return LinkKind(kind.type, f"no hardware evidence (virtual device); {kind.evidence}")


_cache: dict[tuple[int, str, int], LinkKind] = {}


def link_kind(iface: str, ifindex: int) -> LinkKind:
    """:func:`classify` for live use, read once per (netns, name, ifindex): a device that comes back
    under the same name (a replugged modem) gets a new ifindex and is read afresh."""
    try:
        netns = os.stat("/proc/thread-self/ns/net").st_ino
    except OSError:
        netns = 0
    key = (netns, iface, ifindex)
    kind = _cache.get(key)
    if kind is None:
        if len(_cache) > 256:
            _cache.clear()
        kind = _cache[key] = classify(iface)
    return kind
