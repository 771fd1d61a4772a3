"""A real two-path MPTCP network on one machine, in network namespaces bound to this process.

::

    from mptop.lab import Lab, LabConfig, LabUnavailable
    with Lab(LabConfig(rate_mbit={"wlan0": 40, "wwan0": 10})) as lab:   # None/absent = unshaped
        lab.client, lab.server          # Namespace: .pid (holder), .path "/proc/PID/ns/net", .entered()
        with lab.client.entered(): ...  # this *thread* is in the client netns (sockets made here live there)
        lab.run(lab.client, ["ip", "-j", "mptcp", "endpoint", "show"])  # CompletedProcess, text, check
        lab.popen(lab.client, argv, **popen_kwargs)   # process inside that netns; dies with the lab
        lab.url(size, tcp=False)        # http://192.0.2.1/bytes/<size>  (tcp=True: plain TCP, :8080)
        lab.base_url(tcp=False)         # /bytes/N (Range, HEAD, ETag), /status/CODE, /redirect/K,
                                        # /truncated/N, /reset/N, /disposition/N?name=, /slow/N?bps=, /forever
        lab.content_sha256(size)        # sha256 hex of /bytes/<size>  (mptop.lab.content)
        lab.paths                       # [LabPath("wlan0", "Wi-Fi", "192.0.2.2", "192.0.2.1"),
                                        #  LabPath("wwan0", "Cellular", "198.51.100.2", "198.51.100.1")]
        lab.link_down("wlan0"); lab.link_up("wlan0"); lab.set_rate("wlan0", 20)
        lab.set_backup("wwan0", True)   # server endpoint change -> MP_PRIO: the server stops sending
                                        # there within ~1 s (reliable with client_endpoints="none")
        lab.delete_endpoint("wwan0", side=None); lab.add_endpoint("wwan0")   # RM_ADDR / new subflow
        lab.subflows("wlan0")           # [(local "ip:port", remote "ip:port")] of MPTCP subflows (ss)
        lab.reset_subflows("wlan0")     # ss -K (SOCK_DESTROY): real RST; returns how many
        lab.sysctl(lab.client, "net.mptcp.enabled", "0")
        lab.rx_bytes("wlan0"), lab.tx_bytes("wlan0")
        lab.supports_delay, lab.delay_message          # netem (delay_ms) available?
        lab.holder_pids, lab.server_process.pid        # for teardown checks

Topology: anonymous namespaces, each held by a child ``setpriv --pdeathsig KILL -- unshare --net
-- sleep infinity``; the veth pairs are created inside the client namespace and their peers
moved into the server namespace, so the root namespace never sees a link and parallel labs never
collide.  The server (``python -m mptop.lab.server``) runs inside the server namespace.

Lifetime: ``with Lab(...)`` (or start()/stop()) tears down on normal exit and exceptions; if
the process is killed (even SIGKILL) the holders and the server get SIGKILL from the kernel
(PR_SET_PDEATHSIG).  PDEATHSIG fires when the parent *thread* exits: start labs from a
long-lived thread (the main thread), never from a short-lived worker thread.

CLIs: wrap ``with Lab(...)`` in :func:`mptop.lab.signals.exit_on_signals` so SIGTERM/SIGHUP
unwind it (the library itself installs no signal handlers).

Unprivileged: call :func:`mptop.lab.userns.enter_user_namespace` first (single-threaded);
``Lab.start()`` raises :class:`LabUnavailable` with what to run when namespaces cannot be made.
"""

from typing import TYPE_CHECKING

from mptop.lab.errors import LabError, LabUnavailable

if TYPE_CHECKING:
    from mptop.lab.actions import Lab
    from mptop.lab.config import PATHS, LabConfig, LabPath
    from mptop.lab.netns import Namespace

__all__ = ["Lab", "LabConfig", "LabError", "LabPath", "LabUnavailable", "Namespace", "PATHS"]
LAZY = {"Lab": "mptop.lab.actions", "Namespace": "mptop.lab.netns", "LabConfig": "mptop.lab.config",
        "LabPath": "mptop.lab.config", "PATHS": "mptop.lab.config"}


def __getattr__(name: str) -> object:
    """The lab's errors are loaded with the package; the rest at first use: `mptop demo` names the
    errors before its first frame, and builds the lab (ctypes, the server, the content hashes) after it."""
    if name not in LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(LAZY[name]), name)
