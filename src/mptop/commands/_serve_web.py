"""The web server of `mptop serve`: textual-serve's browser client and app processes, our own aiohttp app.

textual-serve brings the browser side (``static/``: xterm.js and the Textual protocol) and
:class:`~textual_serve.app_service.AppService` (one app process per websocket, Textual's web driver on its
stdin/stdout).  Its ``Server`` is not used: it binds only inside ``run_app`` (a port in use is a
traceback), its shutdown leaves the tabs' processes to the 60 s handler timeout, its page fetches a font
from the Internet and points the websocket at the address it was told to bind (``0.0.0.0`` breaks).
Here: the socket is bound first (one line when it cannot be), a tab's process is started without a shell,
the websocket refuses other sites' pages (a page elsewhere could otherwise type into the app), and
Ctrl-C/SIGTERM ends every tab's process (and so its lab) before the server exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import ipaddress
import logging
import signal
import socket
import sys
from asyncio.subprocess import Process
from importlib.resources import files
from pathlib import Path
from string import Template

import textual_serve
from aiohttp import WSMsgType, web
from textual_serve.app_service import AppService
from textual_serve.download_manager import DownloadManager

from mptop.core.safe_text import escape_controls

ERRORS_KEPT = 4096     # the end of a tab's stderr, kept for its last line
STOP_S = 15.0           # how long a tab's process may take to end (a demo tears its lab down) before SIGKILL
PAGE = Template(files("mptop.commands").joinpath("serve.html").read_text(encoding="utf-8"))


class TabProcess(AppService):
    """One tab's mptop: ``python -m mptop ARGS…`` (no shell: URLs stay words), ended on request.  Its stderr
    is kept here (AppService would copy it raw to our stdout) for the tab and the server's log to show."""

    def __init__(self, argv: list[str], websocket: web.WebSocketResponse, downloads: DownloadManager) -> None:
        async def leave_open() -> None:
            """The app's "exit": the tab's websocket stays open until :meth:`ended` has said why, if need be."""

        super().__init__(" ".join(argv), write_bytes=websocket.send_bytes, write_str=websocket.send_str,
                         close=leave_open, download_manager=downloads)
        self.argv = argv
        self.errors = bytearray()
        self._errors_read: asyncio.Task[None] | None = None

    async def _open_app_process(self, width: int = 80, height: int = 24) -> Process:
        self._process = process = await asyncio.create_subprocess_exec(
            *self.argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env=self._build_environment(width=width, height=height))
        self._stdin = process.stdin
        assert process.stderr is not None
        self._errors_read = asyncio.create_task(self._keep_errors(process.stderr))
        process.stderr = asyncio.StreamReader()          # what AppService.run reads: nothing
        process.stderr.feed_eof()
        return process

    async def _keep_errors(self, stderr: asyncio.StreamReader) -> None:
        while data := await stderr.read(4096):
            self.errors = (self.errors + data)[-ERRORS_KEPT:]

    async def ended(self) -> str | None:
        """Once the app has ended and all it drew was relayed: None when it ended quietly (q: exit status 0,
        nothing on stderr), else what the tab and the server's log say (its stderr's last line, or the status)."""
        assert self._task is not None and self._process is not None
        await asyncio.shield(self._task)
        code = await self._process.wait()
        if self._errors_read is not None:
            await self._errors_read
        lines = [escape_controls(line) for line in self.errors.decode("utf-8", "replace").splitlines() if line.strip()]
        if code == 0 and not lines:
            return None
        return lines[-1] if lines else f"ended with exit status {code}"

    async def end(self) -> None:
        """Ask the app to quit (its lab goes with it); SIGKILL when it has not ended after STOP_S."""
        process = self._process
        try:
            await asyncio.wait_for(self._quit(), STOP_S)
        except (TimeoutError, OSError):
            if process is not None and process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()

    async def _quit(self) -> None:
        await self.stop()
        if self._process is not None:
            # Its exit comes through asyncio's child watcher: a kill() now (which polls, and so reaps) would
            # take the exit from the watcher ("Unknown child process pid N, will report returncode 255").
            await self._process.wait()


class Tabs:
    """The aiohttp app: the page, its static files, and a websocket per tab driving a :class:`TabProcess`."""

    def __init__(self, command: list[str], what: str, font_size: int) -> None:
        self.argv = [sys.executable, "-m", "mptop", *command]
        self.what = what
        self.font_size = font_size
        self.running: set[TabProcess] = set()
        self.downloads = DownloadManager()

    def app(self) -> web.Application:
        app = web.Application()
        static = Path(textual_serve.__file__).parent / "static"
        app.add_routes([web.get("/", self.page), web.get("/ws", self.tab), web.static("/static", static)])
        app.on_shutdown.append(self.end_all)
        return app

    async def page(self, request: web.Request) -> web.Response:
        try:
            size = int(request.query.get("fontsize", self.font_size))
        except ValueError:
            size = self.font_size
        what = html.escape(self.what)
        text = PAGE.substitute(title=f"mptop {what}", what=f"mptop {what}", font_size=max(6, min(size, 96)))
        return web.Response(text=text, content_type="text/html")

    async def tab(self, request: web.Request) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        if origin is not None and origin not in (f"http://{request.host}", f"https://{request.host}"):
            raise web.HTTPForbidden(text="mptop serve: a page from another site may not open a tab\n")
        websocket = web.WebSocketResponse(heartbeat=15)
        await websocket.prepare(request)
        process = TabProcess(self.argv, websocket, self.downloads)
        self.running.add(process)
        relay = ended = None
        try:
            await process.start(_query_size(request, "width", 80), _query_size(request, "height", 24))
            relay = asyncio.create_task(_relay(websocket, process))
            ended = asyncio.create_task(process.ended())
            await asyncio.wait((relay, ended), return_when=asyncio.FIRST_COMPLETED)
            if ended.done() and (said := ended.result()) is not None:
                # The app ended by itself, not by q (it failed): the tab and the server's log say why.
                print(f"mptop serve: a tab's `mptop {self.what}`: {said}", file=sys.stderr, flush=True)
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await websocket.send_bytes(f"\x1b[?1049l\x1b[?25l\x1b[2J\x1b[H\x1b[1m{said}\x1b[0m".encode())
        finally:
            for task in (relay, ended):
                if task is not None:
                    task.cancel()
            self.running.discard(process)
            await process.end()
            await websocket.close()
        return websocket

    async def end_all(self, app: web.Application) -> None:
        await asyncio.gather(*(process.end() for process in list(self.running)))


def _query_size(request: web.Request, name: str, default: int) -> int:
    try:
        return max(1, min(int(request.query.get(name, default)), 1000))
    except ValueError:
        return default


async def _relay(websocket: web.WebSocketResponse, process: TabProcess) -> None:
    """The browser's keys, mouse and size to the app, until the tab closes (textual-serve's message set)."""
    async for message in websocket:
        if message.type != WSMsgType.TEXT:
            continue
        try:
            kind, *data = message.json()
        except ValueError:
            continue
        if kind == "stdin" and data and isinstance(data[0], str):
            await process.send_bytes(data[0].encode("utf-8"))
        elif kind == "resize" and data and isinstance(data[0], dict):
            await process.set_terminal_size(int(data[0].get("width", 80)), int(data[0].get("height", 24)))
        elif kind == "ping" and data:
            await websocket.send_json(["pong", data[0]])
        elif kind == "blur":
            await process.blur()
        elif kind == "focus":
            await process.focus()


def listen(host: str, port: int) -> socket.socket:
    """A listening socket on host:port; OSError (with the cause in ``strerror``) when there cannot be one."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as exc:
        raise OSError(exc.errno, f"unknown host {host!r} ({exc.strerror})") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


def _announce(sock: socket.socket, what: str) -> None:
    """The URL (and a warning when anyone but this host may reach it), on stderr."""
    name, port = sock.getsockname()[:2]
    if not ipaddress.ip_address(name).is_loopback:
        print(f"mptop serve: warning: listening on {name}, not loopback: anyone who can reach port {port} "
              "sees this host's connections", file=sys.stderr)
    url = f"http://{f'[{name}]' if ':' in name else name}:{port}/"
    print(f"mptop serve: {url} — each tab runs its own `mptop {what}`; Ctrl-C stops", file=sys.stderr, flush=True)


def serve_tabs(command: list[str], what: str, *, host: str, port: int, font_size: int) -> int:
    """Serve ``mptop COMMAND…`` (``what``: how the user said it) until Ctrl-C/SIGTERM; the exit status."""
    from mptop.commands import fail

    try:
        sock = listen(host, port)
    except OSError as exc:
        return fail("serve", f"cannot listen on {host}:{port}: {exc.strerror or exc}")
    logging.getLogger("textual-serve").disabled = True    # "Application failed to start": we say why instead
    with sock:
        asyncio.run(_run(Tabs(command, what, font_size).app(), sock, what))
    return 0


async def _run(app: web.Application, sock: socket.socket, what: str) -> None:
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=STOP_S)
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, stop.set)
    try:
        await web.SockSite(runner, sock).start()
        _announce(sock, what)            # once serving, and stoppable: a SIGTERM right after it is handled
        await stop.wait()
    finally:
        await runner.cleanup()           # on_shutdown: every tab's process ends, its lab with it
