"""Colours: fixed per-path hues (a path keeps its colour whatever the theme) and status colours
taken from the current Textual theme."""

from __future__ import annotations

from rich.style import Style
from textual.app import App

# Wi-Fi blue, Cellular orange, Ethernet mint, then violet, pink, yellow (slots from ViewState).
PATH_COLOURS = ("#4EA8FF", "#FF9F43", "#3DD9A4", "#B78CFF", "#FF6FA5", "#E3D35B")

# badge/severity kind -> (foreground theme variable, background theme variable)
KINDS = {
    "mptcp": ("text-success", "success-muted"),
    "good": ("text-success", "success-muted"),
    "fallback": ("text-warning", "warning-muted"),
    "warn": ("text-warning", "warning-muted"),
    "tcp": ("text-error", "error-muted"),
    "bad": ("text-error", "error-muted"),
    "connecting": ("foreground-darken-2", "panel"),
    "info": ("foreground-darken-2", "panel"),
}


def path_colour(slot: int) -> str:
    return PATH_COLOURS[slot % len(PATH_COLOURS)]


def path_style(slot: int, bold: bool = False) -> Style:
    return Style(color=path_colour(slot), bold=bold)


def kind_style(app: App, kind: str, pill: bool = False) -> Style:
    """The theme's colour for a status kind; ``pill`` adds its muted background (badges)."""
    variables = app.theme_variables
    fg_name, bg_name = KINDS.get(kind, KINDS["info"])
    fg = variables.get(fg_name, "default")
    if not pill:
        return Style.parse(fg)
    return Style.parse(f"bold {fg} on {variables.get(bg_name, 'default')}")


def muted(app: App) -> Style:
    return Style.parse(app.theme_variables.get("foreground-darken-3", "grey50"))
