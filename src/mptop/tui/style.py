"""Colours: fixed per-path hues (a path keeps its colour whatever the theme) and status colours
taken from the current Textual theme."""

from __future__ import annotations

from rich.style import Style
from textual.app import App
from textual.color import Color, ColorParseError

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


def theme_colour(app: App, name: str, fallback: str = "ansi_default") -> Color:
    """A theme variable as a colour.  Themes may use Textual's colour names (``ansi_default``,
    ``ansi_green`` in the ansi-* themes), which Rich cannot parse: go through Textual's parser."""
    try:
        return Color.parse(app.theme_variables.get(name, fallback))
    except ColorParseError:
        return Color.parse(fallback)


def theme_style(app: App, fg: str, bg: str | None = None, *, bold: bool | None = None,
                fallback: str = "ansi_default") -> Style:
    """A Rich style from theme variables: foreground ``fg``, optional background ``bg``."""
    return Style(color=theme_colour(app, fg, fallback).rich_color,
                 bgcolor=theme_colour(app, bg).rich_color if bg else None, bold=bold)


def kind_style(app: App, kind: str, pill: bool = False) -> Style:
    """The theme's colour for a status kind; ``pill`` adds its muted background (badges)."""
    fg_name, bg_name = KINDS.get(kind, KINDS["info"])
    if not pill:
        return theme_style(app, fg_name)
    return theme_style(app, fg_name, bg_name, bold=True)


def muted(app: App) -> Style:
    return theme_style(app, "foreground-darken-3", fallback="grey50")
