"""The panels of one search study, built with Optuna's own plots wherever Optuna has one."""

from __future__ import annotations

import html
import math
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import optuna
import plotly.graph_objects as go
from optuna.importance import FanovaImportanceEvaluator, PedAnovaImportanceEvaluator, get_param_importances
from optuna.trial import TrialState
from optuna.visualization import (
    plot_contour,
    plot_intermediate_values,
    plot_optimization_history,
    plot_parallel_coordinate,
    plot_param_importances,
    plot_slice,
    plot_timeline,
)
from plotly.subplots import make_subplots

from genft_search import store
from genft_search.paper import paper_benchmark, paper_result, paper_setting
from genft_search.report._meta import StudyMeta, best_trial
from genft_search.report._panel import Panel, Section, figure_panel, slug

__all__ = ["learning_curves", "study_section"]

_STATE_STYLE = {  # learning curves: what the scheduler stopped must stand out from what finished
    TrialState.COMPLETE: {"color": "#1f77b4", "dash": "solid", "width": 1.5},
    TrialState.PRUNED: {"color": "#d62728", "dash": "dot", "width": 1.2},
    TrialState.RUNNING: {"color": "#7f7f7f", "dash": "dash", "width": 1.0},
    TrialState.FAIL: {"color": "#9467bd", "dash": "dashdot", "width": 1.0},
}


def _objective(study: optuna.Study, meta: StudyMeta) -> dict[str, Any]:
    """Keyword arguments that point Optuna's plots at the first objective (needed when there are several)."""
    name = meta.metrics[0] if meta.metrics else "objective"
    if len(study.directions) > 1:
        return {"target": lambda t: t.values[0], "target_name": name}
    return {"target_name": name}


def _importances(study: optuna.Study, evaluator: Any, target: Callable | None) -> dict[str, float]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return get_param_importances(study, evaluator=evaluator, target=target)


def _importance_figure(study: optuna.Study, kw: Mapping[str, Any]) -> tuple[go.Figure, list[str]]:
    """PED-ANOVA and fANOVA importances side by side (each an Optuna figure), and the ranked names."""
    target = kw.get("target")
    ranked = list(_importances(study, PedAnovaImportanceEvaluator(), target))
    evaluators = {"PED-ANOVA": PedAnovaImportanceEvaluator(), "fANOVA": FanovaImportanceEvaluator(seed=0)}
    figure = make_subplots(rows=1, cols=2, subplot_titles=list(evaluators), horizontal_spacing=0.18)
    for col, evaluator in enumerate(evaluators.values(), start=1):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                part = plot_param_importances(study, evaluator=evaluator, **kw)
        except Exception as exc:
            figure.add_annotation(text=f"not available: {exc}"[:80], row=1, col=col, showarrow=False)
            continue
        for trace in part.data:
            trace.showlegend = False
            figure.add_trace(trace, row=1, col=col)
    figure.update_xaxes(title_text="importance", range=[0, 1])
    figure.update_layout(title_text="Hyperparameter importance", height=max(320, 40 + 28 * len(ranked)))
    return figure, ranked


def learning_curves(study: optuna.Study, name: str) -> go.Figure:
    """Optuna's intermediate-value plot, with each curve styled by its trial's state."""
    figure = plot_intermediate_values(study)
    states = {f"Trial{t.number}": t.state for t in study.get_trials(deepcopy=False)}
    shown: set[TrialState] = set()
    for trace in figure.data:
        state = states.get(trace.name or "", TrialState.COMPLETE)
        style = _STATE_STYLE.get(state, _STATE_STYLE[TrialState.COMPLETE])
        trace.update(
            line=style,
            marker={"color": style["color"], "size": 4},
            legendgroup=state.name,
            showlegend=state not in shown,
            name=state.name.lower(),
            hovertext=f"trial {trace.name.removeprefix('Trial')} ({state.name.lower()})",
        )
        shown.add(state)
    order = {TrialState.COMPLETE: 0, TrialState.RUNNING: 1, TrialState.FAIL: 2, TrialState.PRUNED: 3}
    figure.data = sorted(figure.data, key=lambda t: order.get(TrialState[t.legendgroup], 0))  # pruned on top
    figure.update_layout(
        showlegend=True,
        title_text="Learning curves (pruned trials dotted red)",
        yaxis_title=name,
        xaxis_title="epoch",
    )
    return figure


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else str(value)
    return html.escape(str(value))


def _paper_column(meta: StudyMeta) -> dict[str, Any] | None:
    """The paper's setting for the study's task, then the training recipe it keeps fixed (Appendix B)."""
    if not (meta.data_kind and meta.task):
        return None
    setting = paper_setting(meta.data_kind, meta.task)
    benchmark = paper_benchmark(meta.data_kind)
    if setting is None or benchmark is None:
        return None
    return {**setting, **{k: v for k, v in benchmark.training.items() if k not in setting}}


def _best_vs_paper(study: optuna.Study, meta: StudyMeta) -> Panel:
    best = best_trial(study)
    title = "Best setting vs the paper's"
    if best is None:
        return Panel("best_vs_paper", title, note="No finished trial yet.")
    paper = _paper_column(meta)
    result = paper_result(meta.data_kind, meta.task) if meta.data_kind and meta.task else None
    stand_in = meta.data_root == "builtin"  # built-in procedural data: not the paper's benchmark
    if stand_in:
        result = None
    ours = {**meta.fixed, **best.params}
    names = list(best.params) + [k for k in meta.fixed if k not in best.params]
    if paper:
        names += [k for k in paper if k not in names]
    rows = []
    for name in names:
        mine = _fmt(ours[name]) if name in ours else "&ndash;"
        theirs = _fmt(paper[name]) if paper and name in paper else "&ndash;"
        searched = "searched" if name in best.params else "fixed" if name in meta.fixed else "default"
        rows.append(
            f"<tr><td>{html.escape(name)}</td><td>{mine}</td><td>{theirs}</td><td>{searched}</td></tr>"
        )
    metric = meta.metrics[0] if meta.metrics else "objective"
    rows.append(
        f"<tr class='result'><td>result: {html.escape(metric)}</td><td>{_fmt(best.values[0])}</td>"
        f"<td>{_fmt(result[0]) if result else '&ndash;'}</td><td>trial {best.number}</td></tr>"
    )
    table = (
        "<table class='grid'><thead><tr><th>parameter</th><th>best trial</th><th>paper</th><th></th></tr>"
        f"</thead><tbody>{''.join(rows)}</tbody></table>"
    )
    notes = []
    if result:
        notes.append(
            f"Paper result: {html.escape(result[1])}; ours is measured under protocol "
            f"<b>{html.escape(meta.protocol or '?')}</b> on model {html.escape(meta.model or '?')}, "
            "so compare with care."
        )
    elif stand_in:
        notes.append(
            "The built-in data stands in for the paper's benchmark: its setting is shown for reference, "
            "its result is not comparable."
        )
    elif meta.task:
        notes.append(
            f"The paper reports no setting for task {html.escape(meta.task)} "
            f"({html.escape(meta.data_kind or '?')})."
        )
    return Panel("best_vs_paper", title, html=table, note=" ".join(notes) or None)


def study_section(study: optuna.Study, meta: StudyMeta) -> Section:
    """Every figure of one study, in the order people read them."""
    kw = _objective(study, meta)
    name = kw["target_name"]
    states = [t.state for t in study.get_trials(deepcopy=False)]
    counts = ", ".join(f"{s.name.lower()} {states.count(s)}" for s in TrialState if states.count(s))
    section = Section(
        study.study_name,
        intro=f"{len(states)} trials ({counts or 'none'}); objective "
        f"{html.escape(name)} ({study.directions[0].name.lower()}); method "
        f"{html.escape(meta.method or '?')}, protocol {html.escape(meta.protocol or '?')}. "
        f"Cost of the search (every finished trial, pruned and failed included): "
        f"{html.escape(store.study_cost(study).summary())}.",
    )
    key = slug(study.study_name)
    panels = section.panels
    panels.append(
        figure_panel(f"{key}-history", "Optimisation history", lambda: plot_optimization_history(study, **kw))
    )
    ranked: list[str] = []

    def importance() -> go.Figure:
        figure, names = _importance_figure(study, kw)
        ranked.extend(names)
        return figure

    panels.append(
        figure_panel(f"{key}-importance", "Hyperparameter importance (PED-ANOVA | fANOVA)", importance)
    )
    panels.append(
        figure_panel(f"{key}-parallel", "Parallel coordinates", lambda: plot_parallel_coordinate(study, **kw))
    )
    if len(ranked) >= 2:
        top = ranked[:2]
        panels.append(
            figure_panel(
                f"{key}-contour",
                f"Contour: {top[0]} × {top[1]}",
                lambda: plot_contour(study, params=top, **kw),
            )
        )
    else:
        panels.append(
            Panel(
                f"{key}-contour",
                "Contour of the two most important parameters",
                note="Not available: needs importances of at least two parameters.",
            )
        )
    panels.append(figure_panel(f"{key}-slice", "Slices", lambda: plot_slice(study, **kw)))
    panels.append(figure_panel(f"{key}-curves", "Learning curves", lambda: learning_curves(study, name)))
    panels.append(figure_panel(f"{key}-timeline", "Trial timeline", lambda: plot_timeline(study)))
    panel = _best_vs_paper(study, meta)
    panel.key = f"{key}-{panel.key}"
    panels.append(panel)
    return section
