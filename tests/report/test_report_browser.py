"""Reports opened in a real headless Chromium: no console errors, and plots actually drawn.

A copy of the report gets a small probe script that records ``console.error``, uncaught errors and
rejected promises into the DOM after load; ``--dump-dom`` reads it back together with the SVGs that
plotly.js drew. A screenshot then shows each plot area holding marks, not just an empty background.
"""

from __future__ import annotations

import itertools
import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from genft_search.report import write_report

pytestmark = pytest.mark.slow  # a real browser, ~15 s per page

_PROBE = """<script>
window.__problems = [];
(function () {
  var original = console.error;
  console.error = function () {
    window.__problems.push('console.error: ' + Array.prototype.join.call(arguments, ' '));
    return original.apply(console, arguments);
  };
  window.addEventListener('error', function (e) { window.__problems.push('uncaught: ' + e.message); });
  window.addEventListener('unhandledrejection', function (e) {
    window.__problems.push('rejection: ' + (e.reason && e.reason.message || e.reason));
  });
  window.addEventListener('load', function () {
    setTimeout(function () {
      var out = document.createElement('pre');
      out.id = 'probe-problems';
      out.textContent = JSON.stringify(window.__problems);
      document.body.appendChild(out);
    }, 1000);
  });
})();
</script>"""
PLOT_BG = (229, 236, 246)  # plotly's default plot area colour (#E5ECF6)


def _chromium(binary: str, profile: Path, *args: str, timeout: int = 180) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            binary,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
            f"--user-data-dir={profile}",
            "--enable-logging=stderr",
            "--v=0",
            "--hide-scrollbars",
            "--virtual-time-budget=20000",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _open(binary: str, page: Path, tmp: Path) -> tuple[list[str], int, str]:
    """(problems the probe recorded, number of plotly SVG roots, Chromium's console log lines)."""
    probed = tmp / f"probed_{page.name}"
    probed.write_text(page.read_text().replace("<head>", "<head>" + _PROBE, 1))
    run = _chromium(binary, tmp / "profile-dom", "--dump-dom", probed.as_uri())
    match = re.search(r'<pre id="probe-problems">(.*?)</pre>', run.stdout, re.S)
    assert match, f"the probe never reported (Chromium rc={run.returncode}): {run.stderr[-2000:]}"
    problems = json.loads(
        match.group(1).replace("&quot;", '"').replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">")
    )
    console = [ln for ln in run.stderr.splitlines() if "CONSOLE" in ln]
    return problems, run.stdout.count('class="main-svg"'), "\n".join(console)


def _plot_areas(png: Path) -> list[tuple[int, int, float]]:
    """Plot areas in a screenshot (row ranges of plotly's background) and the share of drawn marks."""
    image = np.asarray(Image.open(png).convert("RGB")).astype(int)
    bg = np.all(image == PLOT_BG, axis=2)
    rows = np.flatnonzero(bg.sum(axis=1) > 150)
    areas = []
    if rows.size == 0:
        return areas
    starts = [rows[0]] + [r for prev, r in itertools.pairwise(rows) if r - prev > 30]
    ends = [prev for prev, r in itertools.pairwise(rows) if r - prev > 30] + [rows[-1]]
    for top, bottom in zip(starts, ends):
        if bottom - top < 40:
            continue
        cols = np.flatnonzero(bg[top : bottom + 1].any(axis=0))
        box = image[top : bottom + 1, cols[0] : cols[-1] + 1]
        white = np.all(box >= 250, axis=2)  # grid lines
        plain = np.all(box == PLOT_BG, axis=2)
        ink = float(np.mean(~(white | plain)))
        areas.append((int(top), int(bottom), ink))
    return areas


def test_probe_catches_a_broken_page(chromium: str, tmp_path: Path) -> None:
    page = tmp_path / "broken.html"
    page.write_text(
        "<html><head></head><body><script>console.error('boom'); missingFunction();</script></body></html>"
    )
    problems, svgs, _ = _open(chromium, page, tmp_path)
    assert "console.error: boom" in problems
    assert any(p.startswith("uncaught:") and "missingFunction" in p for p in problems)
    assert svgs == 0


# figures; and plot areas showing plotly's background (heatmaps, contours and parallel coordinates cover
# theirs; side-by-side subplots share one row range)
@pytest.mark.parametrize(("name", "figures", "areas"), [("search", 8, 5), ("abl", 5, 4)])
def test_report_renders_without_errors_and_with_drawn_plots(
    chromium: str, store_url: str, tmp_path: Path, name: str, figures: int, areas: int
) -> None:
    page = write_report(name, storage=store_url, out_dir=tmp_path, png=False)
    problems, svgs, console = _open(chromium, page, tmp_path)
    assert problems == [], problems
    assert "Uncaught" not in console, console
    assert svgs >= figures  # plotly.js drew every figure (each has at least one main-svg root)

    shot = tmp_path / f"{name}.png"
    run = _chromium(
        chromium, tmp_path / "profile-shot", f"--screenshot={shot}", "--window-size=1280,7000", page.as_uri()
    )
    assert shot.is_file(), run.stderr[-2000:]
    found = _plot_areas(shot)
    assert len(found) >= areas, found
    empty = [a for a in found if a[2] < 0.003]
    assert not empty, f"plot areas without marks: {empty}"
