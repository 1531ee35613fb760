"""Reports: one offline HTML page (plus PNGs) per study or ablation, computed from the study store alone.

``write_report(name)`` finds the studies called ``name`` or ``name/<task>``; search studies get the
Optuna figures (history, PED-ANOVA and fANOVA importance, parallel coordinates, contour, slices,
learning curves, timeline, best vs the paper's setting), a study file with several tasks first its
cross-task atlas (PED-ANOVA importance per hyperparameter and task, medians with bootstrap intervals,
rank correlation between tasks), ablations their table, grouped bars and a
Δ-vs-full heatmap; every report ends with the parameter-count vs rank figure (the paper's Fig. 2).
``export_trials`` writes a study's trials as CSV, JSON or LaTeX; every LaTeX table of the project goes
through ``latex_escape`` and ``booktabs``.
``compare_studies(names)`` puts several study files side by side per benchmark (issue 11), written by
``comparison_markdown`` and ``write_comparison`` (Markdown, CSV, LaTeX, HTML).
"""

from __future__ import annotations

import os
from pathlib import Path

import optuna

from genft_search import store
from genft_search.report._compare import Comparison, compare_studies
from genft_search.report._compare_out import comparison_markdown, write_comparison
from genft_search.report._export import export_trials
from genft_search.report._latex import booktabs, latex_escape
from genft_search.report._panel import Panel, Section, slug
from genft_search.report._params import parameter_count_figure

__all__ = [
    "DEFAULT_OUT_DIR",
    "Comparison",
    "booktabs",
    "compare_studies",
    "comparison_markdown",
    "export_trials",
    "latex_escape",
    "parameter_count_figure",
    "report_sections",
    "write_comparison",
    "write_report",
]

DEFAULT_OUT_DIR = "reports"


def _studies(rdb: optuna.storages.RDBStorage, name: str, url: str) -> list[optuna.Study]:
    return store.find_studies(rdb, name, source="report: STUDY_OR_ABLATION")


def report_sections(name: str, studies: list[optuna.Study]) -> list[Section]:
    """The report's sections for ``studies`` (ablation studies together, search studies one each)."""
    from genft_search.ablation import is_ablation_study
    from genft_search.report._ablation import ablation_section
    from genft_search.report._atlas import atlas_section
    from genft_search.report._meta import study_meta
    from genft_search.report._study import study_section

    ablations = [s for s in studies if is_ablation_study(s)]
    searches = [s for s in studies if not is_ablation_study(s)]
    sections = [ablation_section(name, ablations)] if ablations else []
    atlas = atlas_section(name, searches)
    sections += [atlas] if atlas is not None else []
    sections += [study_section(s, study_meta(s)) for s in searches]
    counts = Section(
        "Parameters vs rank (paper Fig. 2)",
        intro="From this project's parameter counts (genft_search.method), ViT-B/16 shape.",
    )
    try:
        counts.panels.append(
            Panel("params-vs-rank", "Parameters vs rank, GenFT vs LoRA", parameter_count_figure())
        )
    except ImportError as exc:
        counts.panels.append(Panel("params-vs-rank", "Parameters vs rank", note=f"Not available: {exc}"))
    sections.append(counts)
    return sections


def write_report(
    name: str, *, storage: str | None = None, out_dir: str | os.PathLike[str] | None = None, png: bool = True
) -> Path:
    """Write ``<out_dir>/<name>.html`` (self-contained, offline) and PNGs of its figures.

    Only reads the store. PNGs go to ``<out_dir>/<name>_png/`` when kaleido finds a Chromium; otherwise
    the page says they were skipped. Ablations get their table (paper Table 4 layout) and every report
    the parameters-vs-rank figure (paper Fig. 2).

    Args:
        name: a study file's ``name`` (its studies ``name/<task>``), a study name or an ablation's name.
        storage: the ``--storage`` URL (else ``$GENFT_STORAGE`` or the default).
        out_dir: the folder for the page and its PNGs (``reports/`` by default).
        png: also export PNGs of the figures.

    Returns:
        The path of the HTML page.

    Raises:
        UserError: the store does not exist or holds no study called ``name`` (one line that lists the
            names it does hold).
    """
    from genft_search.report._html import render_html
    from genft_search.report._png import export_pngs

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = store.resolve_storage_url(storage)
    rdb = store.open_storage(url, create=False, source="storage")
    studies = _studies(rdb, name, url)
    sections = report_sections(name, studies)
    folder = Path(out_dir) if out_dir is not None else Path(DEFAULT_OUT_DIR)
    folder.mkdir(parents=True, exist_ok=True)
    stem = slug(name)
    panels = [p for s in sections for p in s.panels]
    note = "PNG export not requested."
    if png:
        paths, skipped = export_pngs(panels, folder / f"{stem}_png")
        note = skipped or f"PNG copies of the {len(paths)} figures: {stem}_png/."
    plural = "study" if len(studies) == 1 else "studies"
    subtitle = f"Study store: {store.describe_storage(url)}; {len(studies)} {plural}. {note}"
    target = folder / f"{stem}.html"
    target.write_text(render_html(f"genft-search report: {name}", sections, subtitle), encoding="utf-8")
    return target
