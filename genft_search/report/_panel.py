"""A report's building blocks: panels (a figure, a table or a note) grouped in sections."""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import plotly.graph_objects as go

__all__ = ["Panel", "Section", "figure_panel", "slug"]


@dataclass
class Panel:
    """One item of a report: a plotly figure, an HTML fragment (tables) and/or a short note."""

    key: str
    title: str
    figure: go.Figure | None = None
    html: str | None = None
    note: str | None = None


@dataclass
class Section:
    """A titled group of panels (one per study, one for the ablation, one for parameter counts)."""

    title: str
    panels: list[Panel] = field(default_factory=list)
    intro: str | None = None


def slug(text: str) -> str:
    """A file-name-safe version of ``text`` (study names hold ``/``)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "report"


def figure_panel(key: str, title: str, build: Callable[[], go.Figure]) -> Panel:
    """Build a figure; when the data cannot support it (too few trials, ...), say why instead.

    Optuna's plots raise ``ValueError`` (or warn and return an empty figure) when a study lacks what
    they need; a report should show every other figure and name the missing one.
    """
    try:
        figure = build()
    except Exception as exc:
        reason = " ".join(str(exc).split()) or exc.__class__.__name__
        return Panel(key, title, note=f"Not available: {html.escape(reason[:300])}")
    if not figure.data:
        return Panel(key, title, note="Not available: the study has no trials this figure can use yet.")
    if not figure.layout.title.text:
        figure.update_layout(title_text=title)
    return Panel(key, title, figure=figure)
