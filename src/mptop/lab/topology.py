"""The two-path lab: client and server namespaces, two veth pairs, MPTCP config, HTTP server."""

from __future__ import annotations

import contextlib
import encodings.idna  # noqa: F401  (socket host encoding; preloaded for a uid that cannot read the stdlib)
import os
import socket
import subprocess
import sys
import tempfile
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from mptop.lab import content
from mptop.lab.config import PATHS, LabConfig, LabPath
from mptop.lab.errors import LabError, LabUnavailable
from mptop.lab.netns import Namespace, kill_quietly, set_pdeathsig

Side = Literal["client", "server"]
NOT_ROOT = ("network namespaces need privileges: run as root, or as a user call "
            "mptop.lab.userns.enter_user_namespace() first (from a shell: `unshare -rn <command>`)")


@dataclass
class LabEndpoint:
    """An `ip mptcp endpoint` the lab created (kept so it can be deleted and re-added)."""

    id: int
    addr: str
    dev: str
    flags: tuple[str, ...]
    present: bool = True


class LabBase:
    """Building and tearing down the namespaces; actions live in :class:`mptop.lab.Lab`."""

    def __init__(self, config: LabConfig | None = None) -> None:
        self.config = config or LabConfig()
        self.paths: list[LabPath] = list(PATHS)
        self.client: Namespace
        self.server: Namespace
        self.supports_delay = False
        self.delay_message = "not probed yet"
        self.server_process: Any = None
        self._namespaces: list[Namespace] = []
        self._children: list[subprocess.Popen[Any]] = []
        self.endpoints: dict[tuple[Side, str], LabEndpoint] = {}
        self._started = False

    # -- lifecycle --------------------------------------------------------------------------
    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> Any:
        """Build everything; returns self once the HTTP server accepts connections."""
        if self._started:
            return self
        self._started = True
        _sbin_on_path()
        try:
            self.client = self._namespace("client")
            self.server = self._namespace("server")
            # The server starts first (its interpreter's start-up is most of a lab's build time) and
            # binds 0.0.0.0 meanwhile (MPTCP is on in a new netns); it is waited for once the links are up.
            with tempfile.TemporaryFile() as errors:       # the server's stderr; closed on failure too
                if self.config.start_server:
                    self._start_server(errors)
                self._build_links()
                self._configure_mptcp()
                self._probe_netem()
                self._apply_shaping()
                if self.config.start_server:
                    self._wait_server_accepts(errors)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Tear down: server, children, namespaces.  Idempotent, never raises."""
        for proc in ([self.server_process] if self.server_process else []) + self._children:
            kill_quietly(proc)
        self.server_process, self._children = None, []
        for ns in self._namespaces:
            ns.close()
        self._namespaces = []
        self._started = False

    @property
    def holder_pids(self) -> list[int]:
        return [ns.pid for ns in self._namespaces]

    def _namespace(self, name: str) -> Namespace:
        try:
            ns = Namespace.create(name)
        except FileNotFoundError as e:
            raise LabUnavailable(str(e)) from None
        except OSError as e:
            text = str(e)
            if "ermission" in text or "not permitted" in text:
                raise LabUnavailable(NOT_ROOT) from None
            raise LabUnavailable(f"cannot build the lab: {text}") from None
        self._namespaces.append(ns)
        return ns

    # -- running things inside a namespace ----------------------------------------------------
    def run(self, ns: Namespace, argv: Sequence[str], check: bool = True,
            input: str | None = None, timeout: float = 20.0) -> subprocess.CompletedProcess[str]:
        """Run a command inside ``ns`` (text, captured); LabError with its stderr on failure."""
        with ns.entered():
            try:
                proc = subprocess.run(list(argv), input=input, text=True, capture_output=True, timeout=timeout)
            except FileNotFoundError:
                raise LabUnavailable(f"{argv[0]} not found (the lab needs iproute2: ip, tc, ss)") from None
        if check and proc.returncode != 0:
            detail = (proc.stderr or proc.stdout).strip().splitlines()
            raise LabError(f"{' '.join(argv[:4])} failed in {ns.name} ns: {detail[-1] if detail else proc.returncode}")
        return proc

    def ip_batch(self, ns: Namespace, commands: Sequence[str]) -> None:
        self.run(ns, ["ip", "-batch", "-"], input="\n".join(commands) + "\n")

    def popen(self, ns: Namespace, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[Any]:
        """Start a process inside ``ns``; it is killed at stop() and dies with this thread."""
        with ns.entered():
            proc = subprocess.Popen(["setpriv", "--pdeathsig", "KILL", "--", *argv], **kwargs)
        self._children.append(proc)
        return proc

    def sysctl(self, ns: Namespace, key: str, value: str | int | None = None) -> str:
        """Read (value None) or write a sysctl of that namespace; returns the value now set."""
        path = "/proc/sys/" + key.replace(".", "/")
        with ns.entered():
            if value is not None:
                with open(path, "w") as f:
                    f.write(str(value))
            with open(path) as f:
                return f.read().strip()

    # -- topology ------------------------------------------------------------------------------
    def path(self, iface: str) -> LabPath:
        for p in self.paths:
            if p.iface == iface:
                return p
        raise LabError(f"no lab path named {iface!r} (have: {', '.join(p.iface for p in self.paths)})")

    def _build_links(self) -> None:
        client_cmds, server_cmds = ["link set lo up"], ["link set lo up"]
        for p in self.paths:
            client_cmds += [f"link add {p.iface} type veth peer name {p.server_iface}",
                            f"link set {p.server_iface} netns {self.server.pid}",
                            f"addr add {p.client_addr}/{p.prefix} dev {p.iface}",
                            f"link set {p.iface} up"]
            server_cmds += [f"addr add {p.server_addr}/{p.prefix} dev {p.server_iface}",
                            f"link set {p.server_iface} up"]
        self.ip_batch(self.client, client_cmds)
        self.ip_batch(self.server, server_cmds)
        for ns in (self.client, self.server):
            for scope in ("all", "default", *self._ifaces(ns)):
                # Loose source validation: a join may arrive on the "other" interface.
                self.sysctl(ns, f"net.ipv4.conf.{scope}.rp_filter", 0)

    def _ifaces(self, ns: Namespace) -> list[str]:
        return [p.iface if ns is self.client else p.server_iface for p in self.paths]

    def _configure_mptcp(self) -> None:
        cfg = self.config
        limits = f"mptcp limits set subflows {cfg.subflow_limit} add_addr_accepted {cfg.add_addr_accepted_limit}"
        for ns in (self.client, self.server):
            try:
                self.sysctl(ns, "net.mptcp.enabled", 1)
            except FileNotFoundError:
                raise LabUnavailable("this kernel has no Multipath TCP (CONFIG_MPTCP=y is needed)") from None
        first, second = self.paths
        if cfg.client_endpoints == "subflow":
            self._remember("client", second, ("subflow",))
        elif cfg.client_endpoints == "fullmesh":
            for p in self.paths:
                self._remember("client", p, ("subflow", "fullmesh"))
        if cfg.server_signal:
            self._remember("server", second, ("signal",))
        self.ip_batch(self.client, [limits] + self._endpoint_cmds("client"))
        self.ip_batch(self.server, [limits] + self._endpoint_cmds("server"))

    def _remember(self, side: Side, p: LabPath, flags: tuple[str, ...]) -> None:
        addr, dev = (p.client_addr, p.iface) if side == "client" else (p.server_addr, p.server_iface)
        self.endpoints[(side, p.iface)] = LabEndpoint(self.paths.index(p) + 1, addr, dev, flags)

    def _endpoint_cmds(self, side: Side) -> list[str]:
        return [endpoint_add_cmd(ep) for (s, _), ep in self.endpoints.items() if s == side]

    # -- shaping -------------------------------------------------------------------------------
    def _probe_netem(self) -> None:
        dev = self.paths[0].server_iface
        probe = self.run(self.server, ["tc", "qdisc", "add", "dev", dev, "root", "netem", "delay", "1ms"],
                         check=False)
        self.supports_delay = probe.returncode == 0
        if self.supports_delay:
            self.run(self.server, ["tc", "qdisc", "del", "dev", dev, "root"])
            self.delay_message = "netem available: delay_ms works"
        else:
            self.delay_message = ("netem is not available on this kernel (sch_netem missing): "
                                  "per-path delay cannot be emulated, only rates")
        if self.config.delay_ms and not self.supports_delay:
            raise LabUnavailable(self.delay_message)

    def _apply_shaping(self) -> None:
        for p in self.paths:
            down, up = self.config.rate_mbit.get(p.iface), self.config.upload_rate_mbit.get(p.iface)
            if down is not None or p.iface in self.config.delay_ms:
                self.shape(self.server, p.server_iface, down, self.config.delay_ms.get(p.iface))
            if up is not None:
                self.shape(self.client, p.iface, up)

    def shape(self, ns: Namespace, dev: str, rate_mbit: float | None, delay_ms: float | None = None) -> None:
        """Replace the root qdisc of ``dev``: tbf at ``rate_mbit`` (+ netem delay); None = unshaped."""
        self.run(ns, ["tc", "qdisc", "del", "dev", dev, "root"], check=False)
        if rate_mbit is None and not delay_ms:
            return
        if delay_ms and not self.supports_delay:
            raise LabError(self.delay_message)
        parent = ["root"]
        if rate_mbit is not None:
            self.run(ns, ["tc", "qdisc", "add", "dev", dev, "root", "handle", "1:", *tbf_args(rate_mbit)])
            parent = ["parent", "1:1"]
        if delay_ms:
            self.run(ns, ["tc", "qdisc", "add", "dev", dev, *parent, "handle", "10:", "netem",
                          "delay", f"{delay_ms}ms", "limit", "100000"])

    # -- HTTP server ---------------------------------------------------------------------------
    def _start_server(self, errors: Any) -> None:
        argv = ["--netns", self.server.path, "--parent-pid", str(os.getpid()),
                "--mptcp-port", str(self.config.mptcp_port), "--tcp-port", str(self.config.tcp_port)]
        if _can_exec_python():
            pkg_root = str(Path(__file__).resolve().parents[2])
            env = {**os.environ,
                   "PYTHONPATH": os.pathsep.join(filter(None, [pkg_root, os.environ.get("PYTHONPATH")]))}
            self.server_process = subprocess.Popen(
                [sys.executable, "-m", "mptop.lab.server", *argv], stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=errors, env=env)
        else:
            self.server_process = ForkedServer(argv, errors.fileno())
        weakref.finalize(self, kill_quietly, self.server_process)

    def _wait_server_accepts(self, errors: Any) -> None:
        deadline = time.monotonic() + self.config.start_timeout
        target = (self.paths[0].server_addr, self.config.mptcp_port)
        while True:
            if self.server_process.poll() is not None:
                errors.seek(0)
                lines = errors.read().decode(errors="replace").strip().splitlines()
                raise LabError(f"lab HTTP server exited: {lines[-1] if lines else 'no message'}")
            with self.client.entered(), contextlib.suppress(OSError):
                with socket.create_connection(target, timeout=0.5):
                    return
            if time.monotonic() > deadline:
                raise LabError(f"lab HTTP server did not accept within {self.config.start_timeout:g} s")
            time.sleep(0.02)

    # -- URLs ----------------------------------------------------------------------------------
    def base_url(self, tcp: bool = False) -> str:
        host = self.paths[0].server_addr
        return f"http://{host}:{self.config.tcp_port}" if tcp else (
            f"http://{host}" if self.config.mptcp_port == 80 else f"http://{host}:{self.config.mptcp_port}")

    def url(self, size: int, tcp: bool = False) -> str:
        return f"{self.base_url(tcp)}/bytes/{size}"

    def upload_url(self, name: str = "", tcp: bool = False) -> str:
        """Where PUT/POST bodies go: the server answers ``{"bytes": N, "sha256": "…"}`` of what arrived."""
        return f"{self.base_url(tcp)}/upload" + (f"/{name}" if name else "")

    @staticmethod
    def content_sha256(size: int) -> str:
        return content.sha256(size)


def endpoint_add_cmd(ep: LabEndpoint) -> str:
    return f"mptcp endpoint add {ep.addr} dev {ep.dev} id {ep.id} {' '.join(ep.flags)}".rstrip()


def tbf_args(rate_mbit: float) -> list[str]:
    rate_bytes = rate_mbit * 1e6 / 8
    # Burst: >= 10 ms at rate and >= 64 KiB so GSO super-packets pass without being split badly.
    burst = max(64 * 1024, int(rate_bytes * 0.01))
    return ["tbf", "rate", f"{rate_mbit}mbit", "burst", str(burst), "latency", "50ms"]


def _can_exec_python() -> bool:
    """Can this uid exec our interpreter and read our package?  (Not after dropping to nobody
    when Python lives under /root: then the server is forked instead.)"""
    pkg = Path(__file__).resolve().parents[1]
    return os.access(sys.executable, os.X_OK) and os.access(pkg, os.R_OK | os.X_OK)


class ForkedServer:
    """The HTTP server in a forked child (when our interpreter cannot be exec'ed): Popen-like."""

    def __init__(self, argv: list[str], stderr_fd: int) -> None:
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:  # child: never returns
            code = 1
            try:
                set_pdeathsig()
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, 1)
                os.dup2(stderr_fd, 2)
                from mptop.lab import server
                code = server.main(argv, parent_pid=parent)
            finally:
                os._exit(code)
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired("lab server", timeout or 0)
            time.sleep(0.01)
        assert self.returncode is not None
        return self.returncode

    def kill(self) -> None:
        if self.poll() is None:
            os.kill(self.pid, 9)


def _sbin_on_path() -> None:
    """iproute2 (ip, tc, ss) lives in /usr/sbin, which an ordinary user's PATH often lacks (Debian):
    the lab runs them inside namespaces it owns, so it may, and must, find them there too."""
    path = os.environ.get("PATH", "").split(os.pathsep)
    missing = [d for d in ("/usr/sbin", "/sbin") if d not in path]
    if missing:
        os.environ["PATH"] = os.pathsep.join([*filter(None, path), *missing])
