"""What `mptop export` does once its arguments are parsed: serve /metrics, or write the textfile."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from mptop.commands import fail
from mptop.commands.export import CONTENT_TYPE, TEXTFILE_NAME

if TYPE_CHECKING:
    from mptop.core.export import Exporter


def run_export(args: argparse.Namespace) -> int:
    from mptop.core.export import Exporter, MptcpUnavailable

    if args.every is not None and args.textfile is None:
        return fail("export", "--interval needs --textfile (Prometheus sets the pace when it scrapes)", 2)
    if args.textfile is not None and not args.textfile.is_dir():
        return fail("export", f"--textfile: {args.textfile} is not a directory", 2)
    exporter = Exporter(per_connection=args.per_connection)
    try:
        exporter.open()
    except OSError as e:                      # MptcpUnavailable says why in its reason
        why = e.reason if isinstance(e, MptcpUnavailable) else e.strerror or e
        return fail("export", f"cannot list MPTCP connections: {why}")
    try:
        if args.textfile is not None:
            if args.every is None:
                return _write_textfile(exporter, args.textfile)
            return asyncio.run(_textfile_loop(exporter, args.textfile, args.every))
        return asyncio.run(_serve(exporter, *args.listen))
    finally:
        exporter.close()


def write_atomically(directory: Path, name: str, text: str) -> None:
    """``directory/name`` holds ``text`` or its old content, never a part: a hidden temporary file
    (the textfile collector reads ``*.prom`` only), fsync, then rename over the final name."""
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, directory / name)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _write_textfile(exporter: Exporter, directory: Path) -> int:
    try:
        write_atomically(directory, TEXTFILE_NAME, exporter.scrape())
    except OSError as e:
        return fail("export", f"cannot write {directory / TEXTFILE_NAME}: {e.strerror or e}")
    return 0


def _terminated() -> asyncio.Event:
    """Set on SIGTERM (a service manager stopping us): the loops end cleanly, exit 0."""
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    return stop


async def _textfile_loop(exporter: Exporter, directory: Path, interval: float) -> int:
    loop, stop = asyncio.get_running_loop(), _terminated()
    async with exporter.events():
        while not stop.is_set():
            started = loop.time()
            if (code := _write_textfile(exporter, directory)) != 0:
                return code
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(0.0, interval - (loop.time() - started)))
    return 0


async def _serve(exporter: Exporter, host: str, port: int) -> int:
    from aiohttp import web

    async def metrics(request: web.Request) -> web.Response:
        return web.Response(body=exporter.scrape().encode(), headers={"Content-Type": CONTENT_TYPE})

    async def index(request: web.Request) -> web.Response:
        return web.Response(text='mptop export: <a href="/metrics">/metrics</a>\n', content_type="text/html")

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/", index)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        async with exporter.events():
            try:
                await web.TCPSite(runner, host, port).start()
            except OSError as e:
                return fail("export", f"cannot listen on {host}:{port}: {e.strerror or e}")
            print(f"mptop export: serving http://{_url_host(host)}:{port}/metrics", file=sys.stderr, flush=True)
            await _terminated().wait()
            return 0
    finally:
        await runner.cleanup()


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
