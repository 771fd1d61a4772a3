"""`mptop doctor`: a checklist — is MPTCP really usable here, and the exact fix where it is not."""

from __future__ import annotations

import argparse
import json
import os
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", help="also fetch URL over MPTCP: did the server speak MPTCP, how many subflows?")
    parser.add_argument("--json", action="store_true", help="one JSON object with every check")
    parser.add_argument("-k", "--insecure", action="store_true", help="with --url: do not verify TLS certificates")
    parser.add_argument("--bundle", metavar="FILE.tar.gz", help="write a bug-report archive instead: kernel, "
                        "sysctls, endpoints, counters, connections, interface types (with --url: a reproduction)")
    parser.add_argument("--anonymize", action="store_true", help="with --bundle: mask IP and MAC addresses")


def _bundle(args: argparse.Namespace) -> int:
    from pathlib import Path

    from mptop.core import bundle

    path = Path(args.bundle)
    directory = path.resolve().parent
    if path.is_dir() or not directory.is_dir() or not os.access(directory, os.W_OK | os.X_OK):
        why = "is a directory" if path.is_dir() else f"cannot be written ({directory} is not a writable directory)"
        print(f"mptop: --bundle {args.bundle} {why}", file=sys.stderr)
        return 1
    collected = bundle.collect(args.url, insecure=args.insecure, anonymize=args.anonymize)
    try:
        bundle.write(collected, path)
    except OSError as exc:
        print(f"mptop: cannot write {args.bundle}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    missing = f", {len(collected.missing)} not collected (see README.txt)" if collected.missing else ""
    print(f"mptop: bug report written to {args.bundle}: {len(collected.files)} files{missing}")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.anonymize and not args.bundle:
        print("mptop: --anonymize goes with --bundle FILE.tar.gz", file=sys.stderr)
        return 2
    if args.bundle:
        return _bundle(args)
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
