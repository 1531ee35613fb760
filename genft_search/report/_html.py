"""One self-contained HTML file: plotly.js inlined once, every figure a div, no network needed."""

from __future__ import annotations

import datetime as _dt
import html
from collections.abc import Sequence

import plotly
import plotly.io as pio

from genft_search.report._panel import Section

__all__ = ["render_html"]

_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;max-width:1200px;
padding:1em 2em;color:#222}
h1{font-size:1.6em} h2{border-bottom:2px solid #ddd;padding-bottom:.2em;margin-top:2em} h3{font-size:1.05em}
.panel{margin:1em 0 2em} .note{color:#555;font-size:.9em} .intro{color:#333}
table.grid{border-collapse:collapse;font-size:.9em} table.grid td,table.grid th{border:1px solid #ccc;
padding:.25em .6em;text-align:right} table.grid td:first-child,table.grid th:first-child{text-align:left}
table.grid tr.result td{font-weight:600;background:#f4f7fb} nav ul{columns:2;font-size:.9em}
"""


def _panel_html(key: str, title: str, body: str, note: str | None) -> str:
    note_html = f"<p class='note'>{note}</p>" if note else ""
    head = f"<div class='panel' id='{html.escape(key)}-panel'><h3>{html.escape(title)}</h3>"
    return f"{head}{body}{note_html}</div>"


def render_html(title: str, sections: Sequence[Section], subtitle: str = "") -> str:
    """The report page; ``note`` and ``html`` of panels are trusted fragments built by this package."""
    parts: list[str] = []
    toc: list[str] = []
    for i, section in enumerate(sections):
        anchor = f"s{i}"
        toc.append(f"<li><a href='#{anchor}'>{html.escape(section.title)}</a></li>")
        parts.append(f"<section id='{anchor}'><h2>{html.escape(section.title)}</h2>")
        if section.intro:
            parts.append(f"<p class='intro'>{section.intro}</p>")
        for panel in section.panels:
            body = panel.html or ""
            if panel.figure is not None:
                body += pio.to_html(
                    panel.figure,
                    full_html=False,
                    include_plotlyjs=False,
                    div_id=panel.key,
                    config={"displaylogo": False, "responsive": True},
                )
            parts.append(_panel_html(panel.key, panel.title, body, panel.note))
        parts.append("</section>")
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style>"
        f"<script type='text/javascript'>/* plotly.js {plotly.__version__} (inlined: works offline) */\n"
        f"{plotly.offline.get_plotlyjs()}</script></head><body>"
        f"<h1>{html.escape(title)}</h1><p class='note'>{subtitle} Generated {stamp}.</p>"
        f"<nav><ul>{''.join(toc)}</ul></nav>{''.join(parts)}</body></html>\n"
    )
