"""The panels of an ablation: its table, grouped bars with error bars per task, a Δ-vs-full heatmap, and
per task the paired Δ vs full over seeds with its 95 % interval and a mark where the interval excludes 0."""

from __future__ import annotations

import html
import math
from functools import partial

import optuna
import pandas as pd
import plotly.graph_objects as go

from genft_search.ablation import AVERAGE, AblationTable, ablation_table
from genft_search.report._panel import Panel, Section, figure_panel, slug
from genft_search.report._study import learning_curves
from genft_search.stats import Difference, difference_interval

__all__ = ["ablation_section"]

_COLORS = {
    "full": "#1f77b4",
    "without_shared": "#ff7f0e",
    "without_specific": "#2ca02c",
    "without_row": "#d62728",
    "without_column": "#9467bd",
}


def _columns(table: AblationTable) -> list[str]:
    return [*table.tasks, AVERAGE] if len(table.tasks) > 1 else list(table.tasks)


def _bars(table: AblationTable) -> go.Figure:
    figure = go.Figure()
    columns = _columns(table)
    for variant in table.variants:
        rows = table.summary[table.summary["variant"] == variant].set_index("task")
        xs = [c for c in columns if c in rows.index]
        figure.add_trace(
            go.Bar(
                name=variant,
                x=xs,
                y=[rows.loc[c, "mean"] for c in xs],
                marker_color=_COLORS.get(variant),
                error_y={
                    "type": "data",
                    "array": [0.0 if math.isnan(rows.loc[c, "std"]) else rows.loc[c, "std"] for c in xs],
                    "visible": True,
                },
                hovertemplate="%{x}: %{y:.2f} ± %{error_y.array:.2f}<extra>" + variant + "</extra>",
            )
        )
    figure.update_layout(
        barmode="group",
        title_text=f"{table.metric} per variant (mean ± std over seeds)",
        yaxis_title=table.metric,
        height=440,
    )
    return figure


def _heatmap(table: AblationTable) -> go.Figure:
    columns = _columns(table)
    variants = [v for v in table.variants if v != "full"]
    if "full" not in table.variants or not variants:
        raise ValueError("needs the full variant and at least one ablated variant")
    z, text = [], []
    for variant in variants:
        rows = table.summary[table.summary["variant"] == variant].set_index("task")
        line = [float(rows.loc[c, "delta"]) if c in rows.index else math.nan for c in columns]
        z.append(line)
        text.append(["" if math.isnan(v) else f"{v:+.2f}" for v in line])
    bound = max([abs(v) for line in z for v in line if not math.isnan(v)] or [1.0]) or 1.0
    figure = go.Figure(
        go.Heatmap(
            z=z,
            x=columns,
            y=variants,
            text=text,
            texttemplate="%{text}",
            colorscale="RdBu",
            zmid=0,
            zmin=-bound,
            zmax=bound,
            colorbar={"title": {"text": "Δ vs full"}},
        )
    )
    figure.update_layout(
        title_text=f"Δ {table.metric} vs full", height=140 + 60 * len(variants), margin={"l": 140}
    )
    return figure


def paired_deltas(table: AblationTable) -> dict[str, dict[str, Difference]]:
    """variant -> task -> its difference from ``full`` over seeds (paired on common seeds, 95 %)."""
    runs = table.runs
    out: dict[str, dict[str, Difference]] = {}
    if "full" not in table.variants:
        return out
    for task in table.tasks:
        part = runs[runs["task"] == task]
        full = {int(r.seed): float(r.value) for r in part[part["variant"] == "full"].itertuples()
                if r.seed is not None and not pd.isna(r.seed)}
        for variant in table.variants:
            if variant == "full":
                continue
            mine = {int(r.seed): float(r.value) for r in part[part["variant"] == variant].itertuples()
                    if r.seed is not None and not pd.isna(r.seed)}
            if mine and full:
                out.setdefault(variant, {})[task] = difference_interval(mine, full)
    return out


def _significant(d: Difference) -> bool:
    return d.has_interval and (d.low > 0 or d.high < 0)


def _delta_figure(table: AblationTable, deltas: dict[str, dict[str, Difference]]) -> go.Figure:
    if not deltas:
        raise ValueError("needs the full variant, an ablated one and seeds")
    figure = go.Figure()
    for variant, per_task in deltas.items():
        tasks = [t for t in table.tasks if t in per_task]
        ds = [per_task[t] for t in tasks]
        figure.add_trace(go.Scatter(
            name=variant, x=tasks, y=[d.mean for d in ds], mode="markers+text",
            marker={"color": _COLORS.get(variant), "size": 10},
            text=["*" if _significant(d) else "" for d in ds], textposition="top center",
            error_y={"type": "data", "symmetric": False, "visible": True,
                     "array": [d.high - d.mean if d.has_interval else 0.0 for d in ds],
                     "arrayminus": [d.mean - d.low if d.has_interval else 0.0 for d in ds]},
        ))
    figure.add_hline(y=0, line_dash="dot", line_color="#555")
    figure.update_layout(title_text=f"Δ {table.metric} vs full per task (95 % interval over seeds; "
                                    "* the interval excludes 0)", yaxis_title="Δ vs full", height=440)
    return figure


def _delta_html(deltas: dict[str, dict[str, Difference]]) -> str:
    body = []
    for variant, per_task in deltas.items():
        for task, d in per_task.items():
            interval = f"[{d.low:+.2f}, {d.high:+.2f}]" if d.has_interval else "–"
            cells = [task, variant, f"{d.mean:+.2f}", interval, "paired" if d.paired else "Welch", str(d.n),
                     "*" if _significant(d) else ""]
            body.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    head = ["task", "variant", "Δ vs full", "95 % interval", "interval", "n", "excludes 0"]
    header = "".join(f"<th>{h}</th>" for h in head)
    return f"<table class='grid'><thead><tr>{header}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _table_html(table: AblationTable) -> str:
    has_paper = table.summary["paper"].notna().any()
    head = ["task", "variant", "a", "b", "params", "n", "mean ± std", "Δ vs full"]
    if has_paper:
        head += ["paper", "paper Δ"]
    body = []
    for r in table.summary.itertuples():
        cells = [
            r.task,
            r.variant,
            _cell(r.shared_dim, "{:.0f}"),
            _cell(r.specific_dim, "{:.0f}"),
            _cell(r.params, "{:,.0f}"),
            str(int(r.n)),
            _cell(r.mean, "{:.2f}") + ("" if math.isnan(r.std) else f" ± {r.std:.2f}"),
            _cell(r.delta, "{:+.2f}"),
        ]
        if has_paper:
            cells += [_cell(r.paper, "{:.2f}"), _cell(r.paper_delta, "{:+.2f}")]
        cls = " class='result'" if r.task == AVERAGE else ""
        body.append(f"<tr{cls}>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
    return (
        "<table class='grid'><thead><tr>"
        + "".join(f"<th>{h}</th>" for h in head)
        + "</tr></thead><tbody>"
        + "".join(body)
        + "</tbody></table>"
    )


def _cell(value: float, fmt: str) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else fmt.format(value)


def ablation_section(name: str, studies: list[optuna.Study]) -> Section:
    """The ablation's table and figures, recomputed from its stored trials."""
    table = ablation_table(studies, name)
    key = slug(name)
    n = len(table.runs)
    section = Section(
        f"Ablation {name}",
        intro=f"{len(table.tasks)} task(s), variants {', '.join(table.variants)}, "
        f"seeds {', '.join(map(str, table.seeds))}; {n} finished trial(s).",
    )
    note = "a, b: the shared and specific dims each variant really used; params: GenFT's own, head excluded."
    if table.summary["paper"].notna().any():
        note += " Paper: Tables 12/13 (test top-1 %, ViT-B/16 IN-21k)."
    section.panels.append(Panel(f"{key}-table", "Ablation table", html=_table_html(table), note=note))
    section.panels.append(figure_panel(f"{key}-bars", "Per task and variant", lambda: _bars(table)))
    section.panels.append(figure_panel(f"{key}-delta", "Δ vs full", lambda: _heatmap(table)))
    deltas = paired_deltas(table)
    paired = figure_panel(f"{key}-paired", "Δ vs full over seeds", lambda: _delta_figure(table, deltas))
    if deltas:
        paired.html = _delta_html(deltas)
    section.panels.append(paired)
    for study in studies:
        section.panels.append(
            figure_panel(
                f"{slug(study.study_name)}-curves",
                f"Learning curves: {study.study_name}",
                partial(learning_curves, study, table.metric),
            )
        )
    return section
