"""A lab built off the event loop, for an app that must draw before the lab is up (the demo's TUI).

::

    async with lab_in_thread(lambda: Lab(config).start()) as lab:   # the loop keeps running meanwhile
        with lab.client.entered():
            ...

Building takes ~1 s of `ip`/`tc` runs and the server's start; done on the loop it would freeze the
display.  It runs in a thread of its own that then *holds* the lab until the block is left and tears
it down: the namespaces' holders die when the thread that started them exits (PR_SET_PDEATHSIG is per
thread), so a short-lived worker thread, such as an executor's, would take the lab down with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mptop.lab.actions import Lab

JOIN_TIMEOUT = 30.0     # a build under way when the block is left finishes, then is torn down


@contextlib.asynccontextmanager
async def lab_in_thread(build: Callable[[], Lab]) -> AsyncIterator[Lab]:
    """The lab ``build()`` returns (started), built in a thread of its own; whatever it raises
    (LabError, LabUnavailable) is raised here.  Leaving the block — cancelled while the lab is still
    being built too — tears the lab down in that thread."""
    loop = asyncio.get_running_loop()
    built: asyncio.Future[Lab] = loop.create_future()
    release = threading.Event()

    def settle(lab: Lab | None, error: BaseException | None) -> None:
        if built.done():               # cancelled meanwhile
            return
        if error is not None:
            built.set_exception(error)
        else:
            built.set_result(lab)     # type: ignore[arg-type]

    def hold() -> None:
        lab: Lab | None = None
        try:
            lab = build()
        except BaseException as error:  # noqa: B036  (handed to the awaiting task)
            with contextlib.suppress(RuntimeError):          # the loop closed meanwhile
                loop.call_soon_threadsafe(settle, None, error)
            return
        try:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(settle, lab, None)
            release.wait()
        finally:
            lab.stop()

    thread = threading.Thread(target=hold, name="mptop-lab", daemon=True)
    thread.start()
    try:
        yield await built
    finally:
        release.set()
        thread.join(JOIN_TIMEOUT)      # the teardown, before the caller goes on (or exits)
