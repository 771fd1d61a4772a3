"""mptop's tests mirror the package: kernel/, core/, tui/, cli/, demo/, lab/."""

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ASSETS = REPO / "assets"
