"""The panels of an ablation: its table, grouped bars with error bars per task, and a Δ-vs-full heatmap."""

from __future__ import annotations

import html
import math
from functools import partial

import optuna
import plotly.graph_objects as go

from genft_search.ablation import AVERAGE, AblationTable, ablation_table
from genft_search.report._panel import Panel, Section, figure_panel, slug
from genft_search.report._study import learning_curves

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
    for study in studies:
        section.panels.append(
            figure_panel(
                f"{slug(study.study_name)}-curves",
                f"Learning curves: {study.study_name}",
                partial(learning_curves, study, table.metric),
            )
        )
    return section
