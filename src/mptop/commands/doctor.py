"""`mptop doctor`: a checklist — is MPTCP really usable here, and the exact fix where it is not."""

from __future__ import annotations

import argparse
import json
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", help="also fetch URL over MPTCP: did the server speak MPTCP, how many subflows?")
    parser.add_argument("--json", action="store_true", help="one JSON object with every check")
    parser.add_argument("-k", "--insecure", action="store_true", help="with --url: do not verify TLS certificates")


def run(args: argparse.Namespace) -> int:
    from mptop.core import doctor

    checks = doctor.run_checks()
    if args.url:
        from mptop.core.doctor_url import check_url

        checks.append(check_url(args.url, insecure=args.insecure))
    failed = any(c.verdict == "fail" for c in checks)
    if args.json:
        json.dump({"ok": not failed, "checks": [c.to_json() for c in checks]}, sys.stdout)
        sys.stdout.write("\n")
        return 1 if failed else 0
    from rich.console import Console
    from rich.markup import escape

    console = Console(highlight=False)
    colours = {"ok": "green", "fail": "bold red", "advice": "yellow", "info": "dim"}
    for c in checks:
        console.print(f"[{colours[c.verdict]}]{doctor.MARKS[c.verdict]}[/] [bold]{c.name}[/]: {escape(c.detail)}",
                      soft_wrap=True)
        if c.fix:
            console.print(f"    [yellow]fix:[/] {escape(c.fix)}", soft_wrap=True)
    if failed:
        console.print("[bold red]Something stops MPTCP from working here: see the fixes above.[/]")
    elif any(c.verdict == "advice" for c in checks):
        console.print("[green]MPTCP works here[/]; [yellow]the advice above lets it use more paths.[/]")
    else:
        console.print("[green]MPTCP is ready.[/]")
    return 1 if failed else 0
