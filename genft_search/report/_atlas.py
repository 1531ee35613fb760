"""The cross-task atlas of a study file with several tasks: which hyperparameters matter, where.

Per task, the PED-ANOVA importance of every hyperparameter (Optuna's ``PedAnovaImportanceEvaluator`` on
the first objective; it ranks by how much the top trials' distribution of a parameter differs from all
trials'); then, per hyperparameter, the median over tasks with a 90 % bootstrap interval over tasks,
and the Spearman rank correlation of the importances between every two tasks (do the same knobs matter
everywhere?). Computed from the store alone.
"""

from __future__ import annotations

import html
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import optuna
import plotly.graph_objects as go
from optuna.importance import PedAnovaImportanceEvaluator, get_param_importances

from genft_search.report._meta import study_meta
from genft_search.report._panel import Panel, Section, slug
from genft_search.stats import bootstrap_median

__all__ = ["atlas_section", "cross_task_atlas"]

LEVEL = 0.90


@dataclass
class Atlas:
    """Importances per task and hyperparameter, their medians over tasks, the correlation between tasks."""

    tasks: list[str]
    params: list[str]
    importance: dict[str, dict[str, float]]
    """task -> hyperparameter -> PED-ANOVA importance (a parameter a task never searched is missing)"""
    medians: dict[str, tuple[float, float, float]]
    """hyperparameter -> (median over tasks, low, high) of the 90 % bootstrap interval"""
    correlation: list[list[float]]
    """Spearman correlation of the importances between tasks (rows and columns: ``tasks``)"""
    skipped: dict[str, str] = field(default_factory=dict)
    """tasks without importances, and why"""


def _importances(study: optuna.Study) -> dict[str, float]:
    target = (lambda t: t.values[0]) if len(study.directions) > 1 else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        found = get_param_importances(study, evaluator=PedAnovaImportanceEvaluator(), target=target,
                                      normalize=True)
    return {k: float(v) for k, v in found.items()}


def _spearman(a: dict[str, float], b: dict[str, float]) -> float:
    from scipy.stats import spearmanr

    common = sorted(set(a) & set(b))
    if len(common) < 3:
        return math.nan
    x, y = [a[k] for k in common], [b[k] for k in common]
    if len(set(x)) < 2 or len(set(y)) < 2:
        return math.nan
    return float(spearmanr(x, y).statistic)


def cross_task_atlas(studies: Sequence[optuna.Study]) -> Atlas:
    """The atlas of ``studies`` (one per task; the task is the study's ``task`` attr or name)."""
    importance: dict[str, dict[str, float]] = {}
    skipped: dict[str, str] = {}
    for study in studies:
        task = study_meta(study).task or study.study_name
        try:
            found = _importances(study)
        except Exception as exc:  # too few complete trials, one value everywhere, ...
            skipped[task] = " ".join(str(exc).split())[:200] or type(exc).__name__
            continue
        if found:
            importance[task] = found
        else:
            skipped[task] = "no searched hyperparameter with complete trials"
    tasks = list(importance)
    params: list[str] = []
    for values in importance.values():
        params.extend(p for p in values if p not in params)
    medians = {p: bootstrap_median([importance[t][p] for t in tasks if p in importance[t]], level=LEVEL)
               for p in params}
    params.sort(key=lambda p: -medians[p][0])
    correlation = [[1.0 if a == b else _spearman(importance[a], importance[b]) for b in tasks] for a in tasks]
    return Atlas(tasks, params, importance, medians, correlation, skipped)


def _fmt(value: float) -> str:
    return "–" if not math.isfinite(value) else f"{value:.2f}"


def _heatmap(atlas: Atlas) -> go.Figure:
    z = [[atlas.importance[t].get(p, math.nan) for t in atlas.tasks] for p in atlas.params]
    figure = go.Figure(go.Heatmap(z=z, x=atlas.tasks, y=atlas.params, colorscale="Viridis", zmin=0,
                                  text=[[_fmt(v) for v in row] for row in z], texttemplate="%{text}",
                                  colorbar={"title": "importance"}))
    figure.update_layout(title_text="PED-ANOVA importance per hyperparameter and task",
                         height=max(320, 60 + 30 * len(atlas.params)), yaxis={"autorange": "reversed"})
    return figure


def _median_figure(atlas: Atlas) -> go.Figure:
    medians = [atlas.medians[p] for p in atlas.params]
    figure = go.Figure(go.Bar(
        x=[m for m, _, _ in medians], y=atlas.params, orientation="h",
        error_x={"type": "data", "symmetric": False, "array": [hi - m for m, _, hi in medians],
                 "arrayminus": [m - lo for m, lo, _ in medians]},
    ))
    figure.update_layout(title_text=f"Median importance over {len(atlas.tasks)} tasks "
                                    f"({LEVEL:.0%} bootstrap interval over tasks)",
                         xaxis_title="importance", height=max(320, 60 + 30 * len(atlas.params)),
                         yaxis={"autorange": "reversed"})
    return figure


def _correlation_figure(atlas: Atlas) -> go.Figure:
    z = atlas.correlation
    figure = go.Figure(go.Heatmap(z=z, x=atlas.tasks, y=atlas.tasks, zmin=-1, zmax=1, colorscale="RdBu",
                                  text=[[_fmt(v) for v in row] for row in z], texttemplate="%{text}",
                                  colorbar={"title": "Spearman ρ"}))
    figure.update_layout(title_text="Rank correlation of importances between tasks (Spearman)",
                         height=max(320, 80 + 40 * len(atlas.tasks)), yaxis={"autorange": "reversed"})
    return figure


def _table(atlas: Atlas) -> str:
    head = "".join(f"<th>{html.escape(t)}</th>" for t in atlas.tasks)
    rows = []
    for p in atlas.params:
        m, lo, hi = atlas.medians[p]
        cells = "".join(f"<td>{_fmt(atlas.importance[t].get(p, math.nan))}</td>" for t in atlas.tasks)
        rows.append(f"<tr><td>{html.escape(p)}</td><td>{_fmt(m)} [{_fmt(lo)}, {_fmt(hi)}]</td>{cells}</tr>")
    body = "".join(rows)
    return ("<table class='grid atlas'><thead><tr><th>hyperparameter</th>"
            f"<th>median [{LEVEL:.0%} interval]</th>{head}</tr></thead><tbody>{body}</tbody></table>")


def atlas_section(name: str, studies: Sequence[optuna.Study]) -> Section | None:
    """The atlas as a report section, or None for fewer than two search studies."""
    if len(studies) < 2:
        return None
    atlas = cross_task_atlas(studies)
    key = f"{slug(name)}-atlas"
    intro = (f"PED-ANOVA importance of each hyperparameter on each of the {len(studies)} tasks, the median "
             f"over tasks with a {LEVEL:.0%} bootstrap interval, and how alike the tasks' rankings are.")
    section = Section(f"Cross-task atlas: {name}", intro=intro)
    if atlas.skipped:
        section.intro = (intro or "") + " Without importances: " + "; ".join(
            f"{html.escape(t)} ({html.escape(r)})" for t, r in atlas.skipped.items()) + "."
    if len(atlas.tasks) < 2 or not atlas.params:
        section.panels.append(Panel(key, "Cross-task atlas", note="Not available: fewer than two tasks have "
                                                                  "importances."))
        return section
    section.panels += [
        Panel(f"{key}-heatmap", "Importance per task", _heatmap(atlas)),
        Panel(f"{key}-median", "Median importance over tasks", _median_figure(atlas), html=_table(atlas)),
        Panel(f"{key}-correlation", "Rank correlation between tasks", _correlation_figure(atlas)),
    ]
    return section
