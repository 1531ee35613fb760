"""PNG copies of every figure via kaleido, when kaleido and a Chrome/Chromium are installed."""

from __future__ import annotations

from pathlib import Path

from genft_search.report._panel import Panel

__all__ = ["export_pngs"]


def export_pngs(panels: list[Panel], folder: Path) -> tuple[list[Path], str | None]:
    """Write ``<panel key>.png`` for each figure (one browser start for all); returns paths and a note.

    A missing kaleido or browser is not an error: the HTML report is complete without PNGs, and the
    note says how to get them.
    """
    figures = [p for p in panels if p.figure is not None]
    if not figures:
        return [], None
    try:
        import kaleido  # noqa: F401
        import plotly.io as pio
    except ImportError:
        return [], "PNG export skipped: kaleido is not installed (pip install 'genft-search[png]')."
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{p.key}.png" for p in figures]
    try:
        pio.write_images([p.figure for p in figures], paths, width=1100, height=None, scale=1)
    except Exception as exc:
        reason = " ".join(str(exc).split())[:200] or exc.__class__.__name__
        return [], (
            "PNG export skipped: kaleido found no usable Chrome/Chromium "
            f"(apt-get install chromium, or kaleido's get_chrome) - {reason}"
        )
    return paths, None
