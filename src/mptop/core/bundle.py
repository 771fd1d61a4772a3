"""`mptop doctor --bundle FILE.tar.gz`: what maintainers ask for in every MPTCP bug report, in one file.

::

    bundle = collect(url="https://example.com/big", anonymize=True)   # in this thread's netns
    write(bundle, Path("report.tar.gz"))          # temp file + rename: never half-written

The archive holds plain text and JSON, one file per question (``README.txt`` lists them): the kernel
and its MPTCP sysctls, endpoints and limits, the doctor's checks, MPTcpExt counters before and after
(and their difference), sock_diag dumps of MPTCP connections with their subflows, interfaces with
their link type and the evidence for it, default routes, ``ip``/``ss`` output where those tools
exist, and with ``url`` a reproduction: mptop's NDJSON and the path-manager events meanwhile.  Nothing
needs a privilege the user lacks: what could not be collected is listed with the reason.
``anonymize`` masks IP and MAC addresses (each address consistently, so relations survive).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import ipaddress
import json
import os
import platform
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, is_dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from mptop.core import doctor
from mptop.core.model import Record, Sample, to_ndjson
from mptop.kernel import diag, host, pm
from mptop.kernel.linktype import classify
from mptop.kernel.types import NeedsNetAdmin, PmEvent

BUNDLE_COMMANDS = {   # file -> argv: the views maintainers know, where the tools exist
    "ip-addr.txt": ["ip", "-d", "address", "show"],
    "ip-route.txt": ["ip", "route", "show", "table", "all"],
    "ip-rule.txt": ["ip", "rule", "show"],
    "ip-mptcp.txt": ["sh", "-c", "ip mptcp endpoint show; ip mptcp limits show"],
    "ss-mptcp.txt": ["ss", "-Mtniae"],
}


@dataclass
class Bundle:
    files: dict[str, str] = field(default_factory=dict)      # name in the archive -> text
    missing: dict[str, str] = field(default_factory=dict)    # what -> why it could not be collected

    def add_json(self, name: str, value: Any) -> None:
        self.files[name] = json.dumps(plain(value), indent=1, ensure_ascii=False) + "\n"

    def attempt(self, name: str, what: Callable[[], Any]) -> None:
        """Add ``what()`` as JSON under ``name``, or note why it failed."""
        try:
            self.add_json(name, what())
        except Exception as exc:   # any failure to collect is reported in the bundle, never raised
            self.missing[name] = f"{type(exc).__name__}: {exc}"


def plain(value: Any) -> Any:
    """JSON-ready: named tuples and dataclasses as objects, enums by name, tuples as lists."""
    if isinstance(value, Enum):
        return value.name or int(value.value)
    if hasattr(value, "_asdict"):
        return {k: plain(v) for k, v in value._asdict().items()}
    if is_dataclass(value) and not isinstance(value, type):
        return {k: plain(v) for k, v in asdict(value).items()}
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def _interfaces() -> list[dict[str, Any]]:
    routes = host.default_routes()
    out = []
    for itf in host.interfaces():
        kind = classify(itf.name)
        out.append({"name": itf.name, "ifindex": itf.ifindex, "up": itf.up, "running": itf.running,
                    "addresses": list(itf.addresses), "link_type": kind.type, "evidence": kind.evidence,
                    "default_route_metric": routes.get(itf.name)})
    return out


def _sysctls() -> dict[str, Any]:
    names = ["net.ipv4.conf.all.rp_filter", "net.ipv4.conf.default.rp_filter", "net.ipv4.tcp_congestion_control",
             *(f"net.ipv4.conf.{i.name}.rp_filter" for i in host.interfaces())]
    return {"net.mptcp": host.mptcp_sysctls(), **{name: host.sysctl(name) for name in names}}


def _kernel() -> dict[str, Any]:
    return {"uname": platform.uname()._asdict(), "features": host.kernel_features(),
            "proc_version": Path("/proc/version").read_text().strip()}


def _command(bundle: Bundle, name: str, argv: list[str]) -> None:
    if shutil.which(argv[0]) is None:
        bundle.missing[name] = f"{argv[0]} is not installed"
        return
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError) as exc:
        bundle.missing[name] = f"{' '.join(argv)}: {exc}"
        return
    bundle.files[name] = f"$ {' '.join(argv)}\n{proc.stdout}{proc.stderr}"


def _counter_delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}


async def _reproduce(bundle: Bundle, url: str, insecure: bool) -> None:
    """Fetch ``url`` as ``doctor --url`` does; keep mptop's records, the PM events meanwhile and one
    sock_diag dump while the transfer runs."""
    from mptop.core.doctor_url import probe_url  # the HTTP client only when a reproduction is asked for
    from mptop.kernel.pm_events import PmEvents

    records: list[str] = []
    events: list[tuple[float, PmEvent]] = []
    t0 = time.monotonic()
    dumped = False

    def keep(record: Record) -> None:
        nonlocal dumped
        records.append(to_ndjson(record))
        live = isinstance(record, Sample) and any(not s.closed for t in record.transfers for s in t.subflows)
        if live and not dumped and isinstance(record, Sample) and record.t >= 1.0:
            dumped = True
            bundle.attempt("sock_diag-during.json", diag.dump_connections)

    subscription: PmEvents | None = None
    try:
        subscription = PmEvents()
    except NeedsNetAdmin:
        bundle.missing["pm-events.ndjson"] = "path-manager events need CAP_NET_ADMIN (run as root to include them)"
    except OSError as exc:
        bundle.missing["pm-events.ndjson"] = f"path-manager events unavailable: {exc}"

    async def listen(source: PmEvents) -> None:
        async for event in source:
            events.append((time.monotonic() - t0, event))

    task = asyncio.ensure_future(listen(subscription)) if subscription is not None else None
    try:
        check = await probe_url(url, insecure, also=keep)
        await asyncio.sleep(0.2)   # the last events (SUB_CLOSED, CLOSED) trail the transfer's end
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if subscription is not None:
            subscription.close()
    bundle.add_json("doctor-url.json", check)
    bundle.files["mptop.ndjson"] = "".join(records)
    if subscription is not None:
        bundle.files["pm-events.ndjson"] = "".join(
            json.dumps({"t": round(t, 4), **plain(ev)}) + "\n" for t, ev in events)
    if not dumped:
        bundle.missing["sock_diag-during.json"] = "the transfer had no live subflow after 1 s"


def collect(url: str | None = None, *, insecure: bool = False, anonymize: bool = False) -> Bundle:
    """Everything, read in the calling thread's network namespace."""
    bundle = Bundle()
    bundle.attempt("kernel.json", _kernel)
    bundle.attempt("sysctls.json", _sysctls)
    bundle.attempt("endpoints.json", pm.list_endpoints)
    bundle.attempt("limits.json", pm.get_limits)
    bundle.attempt("interfaces.json", _interfaces)
    bundle.attempt("doctor.json", doctor.run_checks)
    before = host.mptcp_counters()
    bundle.add_json("mptcpext-before.json", before)
    bundle.attempt("sock_diag-before.json", diag.dump_connections)
    if url:
        try:
            asyncio.run(_reproduce(bundle, url, insecure))
        except Exception as exc:   # the reproduction failing is part of the report
            bundle.missing["mptop.ndjson"] = f"the reproduction failed: {type(exc).__name__}: {exc}"
    else:
        bundle.missing["mptop.ndjson"] = "no reproduction asked for (--url URL)"
    after = host.mptcp_counters()
    bundle.add_json("mptcpext-after.json", after)
    bundle.add_json("mptcpext-delta.json", _counter_delta(before, after))
    for name, argv in BUNDLE_COMMANDS.items():
        _command(bundle, name, argv)
    bundle.files["README.txt"] = _readme(bundle, url, anonymize)
    if anonymize:
        masker = Masker()
        bundle.files = {name: masker.mask(text) for name, text in bundle.files.items()}
    return bundle


def _readme(bundle: Bundle, url: str | None, anonymize: bool) -> str:
    lines = [f"mptop doctor --bundle, {time.strftime('%Y-%m-%d %H:%M:%S %Z')}",
             f"reproduction: {url}" if url else "reproduction: none",
             "addresses: masked (each IP/MAC consistently)" if anonymize else "addresses: as they are", "",
             "files:", *(f"  {name}" for name in sorted(bundle.files)), ""]
    if bundle.missing:
        lines += ["not collected:", *(f"  {name}: {why}" for name, why in sorted(bundle.missing.items()))]
    return "\n".join(lines) + "\n"


_MAC = re.compile(r"\b[0-9a-fA-F]{2}(?::[0-9a-fA-F]{2}){5}\b")
_IPV4 = re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}\b")
_IPV6 = re.compile(r"(?<![\w:])[0-9a-fA-F]{0,4}(?::[0-9a-fA-F]{0,4}){2,7}(?![\w:])")
_KEEP = {"0.0.0.0", "127.0.0.1", "255.255.255.255", "::", "::1", "00:00:00:00:00:00", "ff:ff:ff:ff:ff:ff"}


class Masker:
    """Replaces each IP and MAC address by a stable stand-in (``ip4-1``, ``ip6-2``, ``mac-1``)."""

    def __init__(self) -> None:
        self.seen: dict[str, str] = {}

    def _stand_in(self, kind: str, text: str) -> str:
        if text.lower() in _KEEP:
            return text
        key = text.lower()
        if key not in self.seen:
            self.seen[key] = f"{kind}-{sum(1 for v in self.seen.values() if v.startswith(kind)) + 1}"
        return self.seen[key]

    def _address(self, kind: str, parse: Callable[[str], object]) -> Callable[[re.Match[str]], str]:
        def replace(match: re.Match[str]) -> str:
            try:
                parse(match[0])
            except ValueError:
                return match[0]     # looked like an address, is not one (a version, a time)
            return self._stand_in(kind, match[0])
        return replace

    def mask(self, text: str) -> str:
        text = _MAC.sub(lambda m: self._stand_in("mac", m[0]), text)
        text = _IPV6.sub(self._address("ip6", ipaddress.IPv6Address), text)
        return _IPV4.sub(self._address("ip4", ipaddress.IPv4Address), text)


def write(bundle: Bundle, path: Path) -> None:
    """A gzipped tar at ``path``, written to a temporary file beside it and renamed into place."""
    directory = path.resolve().parent
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=directory)
    try:
        with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
            now = time.time()
            for name, text in sorted(bundle.files.items()):
                data = text.encode()
                info = tarfile.TarInfo(f"mptop-bundle/{name}")
                info.size, info.mtime, info.mode = len(data), now, 0o644
                tar.addfile(info, io.BytesIO(data))
        os.chmod(temp, 0o644 & ~_umask())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
