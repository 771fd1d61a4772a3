"""`mptop serve`: the TUI in a browser tab, through textual-serve.  Each tab is its own mptop process."""

from __future__ import annotations

import argparse

from mptop.commands.options import add_display_arguments, count, port, positive_int

DESCRIPTION = """\
The same app as in a terminal, in a browser tab: `watch` (the default), `demo`, or downloads of URLs
(saved nowhere: -o /dev/null).  Every tab runs its own mptop; a demo tab builds its own lab and tears it
down when the tab closes.  Anyone who can reach the port sees this host's connections (and, as `e` does
in the terminal, can change its MPTCP endpoints): it listens on loopback unless --host says otherwise."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = DESCRIPTION
    parser.add_argument("what", nargs="*", metavar="watch|demo|URL",
                        help="what each tab shows: watch (default), demo, or http(s) URLs to download")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1; 0.0.0.0 shows the app to the network)")
    parser.add_argument("--port", type=_port_or_any, default=8000,
                        help="port to listen on (default 8000; 0: any free one)")
    parser.add_argument("--font-size", type=positive_int, default=20, metavar="PX",
                        help="the page's font size (default 20: 160x41 cells on a 1920x1080 projector; "
                             "a tab's ?fontsize=N wins)")
    parser.add_argument("--scenario", metavar="NAME", help="with demo: the scenario (see `mptop demo --help`)")
    add_display_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from mptop.commands import fail

    command = app_command(args)
    if isinstance(command, str):
        return fail("serve", command, 2)
    if args.scenario:
        from mptop.demo.scenario import ScenarioError, load

        try:
            load(args.scenario)             # here, once, rather than in every tab
        except ScenarioError as exc:
            return fail("serve", str(exc), 2)
    from mptop.commands._serve_web import serve_tabs

    return serve_tabs(command, " ".join(args.what) or "watch", host=args.host, port=args.port, font_size=args.font_size)


def _port_or_any(text: str) -> int:
    return 0 if count(text) == 0 else port(text)


def app_command(args: argparse.Namespace) -> list[str] | str:
    """The mptop arguments each tab runs (after ``python -m mptop``), or what is wrong with ``what``."""
    what = list(args.what) or ["watch"]
    if what[0] in ("watch", "demo"):
        if len(what) > 1:
            return f"{what[0]} takes nothing more here: {' '.join(what[1:])!r}"
        command = what
    elif all(word.startswith(("http://", "https://")) for word in what):
        command = ["get", "--tui", "-o", "/dev/null", *what]
    else:
        return f"neither watch, demo nor http(s) URLs: {' '.join(what)!r}"
    if args.scenario:
        if command != ["demo"]:
            return "--scenario is for `mptop serve demo`"
        command += ["--scenario", args.scenario]
    # --theme/--units reach the tabs through the config file: given here, they were kept there (mptop.config).
    return command
