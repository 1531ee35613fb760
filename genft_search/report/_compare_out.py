"""The comparison written out: Markdown, CSV (one number per line), LaTeX (booktabs) and an offline HTML
page with the same tables plus bars with error bars per task and an accuracy / parameters / GPU-hours
Pareto plot. Every renderer reads the same :class:`Comparison`, so the files never disagree."""

from __future__ import annotations

import csv
import html
import io
import math
import os
import re
from collections.abc import Sequence
from functools import partial
from pathlib import Path

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from genft_search.errors import UserError
from genft_search.report._compare import ALPHA, Benchmark, Cell, Comparison, Pair, Row
from genft_search.report._panel import Panel, Section, figure_panel, slug
from genft_search.stats import MIN_TASKS, Difference

__all__ = ["comparison_csv", "comparison_latex", "comparison_markdown", "write_comparison"]

DAGGER, DDAGGER, SECTION = "†", "‡", "§"
_NONE = "–"
_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")
_PAPER_COLOR = "#7f7f7f"


# ---------------------------------------------------------------------------------------------------
# the tables as text cells (shared by Markdown, LaTeX and HTML)


def _num(value: float | None, fmt: str = "{:.2f}") -> str:
    return _NONE if value is None or not math.isfinite(value) else fmt.format(value)


def _cell_text(cell: Cell | None) -> str:
    if cell is None:
        return _NONE
    s = cell.summary
    if cell.source == "val":
        return f"{s.mean:.2f}{DAGGER}"
    return str(s)


def _mean_text(row: Row, tasks: Sequence[str]) -> str:
    value = row.mean_over(tasks)
    marked = any(row.cells[t].source == "val" for t in tasks if t in row.cells)
    return _num(value) + (DAGGER if marked and value is not None else "")


def _gpu_text(row: Row) -> str:
    source = row.gpu_source
    if source == "unknown":
        return _NONE
    text = f"{row.gpu_hours:.2f}"
    return {"estimated": text + SECTION, "partial": "≥" + text + SECTION}.get(source, text)


def result_table(bench: Benchmark) -> tuple[list[str], list[list[str]]]:
    """Header and rows of a benchmark's table: methods x (tasks, group means, params, GPU-h, trial-h)."""
    header = ["Method", *bench.tasks, *(g for g, _ in bench.groups), "Params (M)", "GPU-h", "trial-h"]
    rows = []
    for row in bench.rows:
        rows.append([row.label, *(_cell_text(row.cells.get(t)) for t in bench.tasks),
                     *(_mean_text(row, ts) for _, ts in bench.groups),
                     _num(row.params_m, "{:.3f}"), _gpu_text(row), f"{row.trial_hours:.2f}"])
    if bench.paper is not None:
        p = bench.paper
        rows.append([p.label, *(_num(p.values.get(t)) for t in bench.tasks),
                     *(_num(p.mean_over(ts)) for _, ts in bench.groups),
                     _num(p.params_m), _NONE, _NONE])
    return header, rows


def _difference_text(d: Difference | None, source: str | None) -> str:
    if d is None or not math.isfinite(d.mean):
        return "n/a"
    centre = f"{d.mean:+.2f}"
    if source == "val":
        return f"{centre} (val)"
    if not d.has_interval:
        return f"{centre} (1 seed)"
    return f"{centre} [{d.low:+.2f}, {d.high:+.2f}]" + ("" if d.paired else DDAGGER)


def difference_table(bench: Benchmark) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the pairwise comparisons: per-task a − b, then the test across tasks."""
    header = ["a − b", *bench.tasks, "tasks", "Wilcoxon p", "r", "verdict"]
    rows = []
    for pair in bench.pairs:
        test = pair.test
        used = sum(d is not None for d in pair.differences.values())
        rows.append([f"{pair.a} − {pair.b}",
                     *(_difference_text(pair.differences.get(t), pair.sources.get(t)) for t in bench.tasks),
                     str(used), _NONE if test is None else f"{test.p_value:.3g}",
                     _NONE if test is None else f"{test.effect_size:+.2f}", pair.verdict])
    return header, rows


def _seed_counts(bench: Benchmark) -> str:
    parts = []
    for row in bench.rows:
        counts = sorted({c.summary.n for c in row.cells.values() if c.source == "test"})
        if counts:
            shown = str(counts[0]) if len(counts) == 1 else f"{counts[0]}–{counts[-1]}"
            parts.append(f"{row.name} {shown}")
    return ", ".join(parts)


def _objective_line(bench: Benchmark) -> str:
    objectives = sorted({f"{r.metric} ({r.direction})" for r in bench.rows})
    line = f"Selection objective: {', '.join(objectives)}."
    if len(objectives) > 1:
        line += " The rows were tuned for different objectives: compare with care."
    return line


def result_notes(bench: Benchmark) -> list[str]:
    """The table's footnotes, in words."""
    notes = []
    seeds = _seed_counts(bench)
    if seeds:
        notes.append("Cells: the test metric of the chosen setting (retrained on train+val, tested once), "
                     f"mean ± std over seeds (seeds per cell: {seeds}).")
    if any(c.source == "val" for r in bench.rows for c in r.cells.values()):
        notes.append(f"{DAGGER} Best validation value of the search: no test evaluation stored "
                     "(genft-search best STUDY --evaluate-test); not comparable with test cells.")
    if bench.groups:
        notes.append("Means: over the tasks shown (" + ", ".join(g for g, _ in bench.groups)
                     + "), each task weighted equally as in the paper; a row missing one of them has none.")
    notes.append("Params (M): trainable parameters of the chosen settings (the method's own, head excluded), "
                 "mean over tasks. GPU-h: GPU-seconds of every finished trial of the search (pruned and "
                 "failed included) / 3600; trial-h: their summed wall time in hours.")
    if any(r.gpu_source in ("estimated", "partial") for r in bench.rows):
        notes.append(f"{SECTION} Estimated: trial wall time × the study's resources.gpu where a trial "
                     "stored no cost; ≥: some trials have neither, so a lower bound.")
    if any(r.gpu_source == "unknown" for r in bench.rows):
        notes.append(f"GPU-h {_NONE}: no trial stored its cost and the study has no resources attr.")
    if bench.paper is not None:
        notes.append(f"{bench.paper.label}: as printed in arXiv 2506.11042 ({bench.paper.measures}); not "
                     "re-run here, so not part of the tests below.")
    return notes


def difference_notes(bench: Benchmark) -> list[str]:
    return [
        "Per task: a − b over seeds with a 95 % t-interval, paired on the seeds both rows were evaluated "
        f"with ({DDAGGER}: Welch's interval, the seeds differ); (val): validation values, no interval; "
        "n/a: a side missing, or test vs validation.",
        "Across tasks: two-sided Wilcoxon signed-rank test on the per-task differences (zeros dropped); "
        "r: matched-pairs rank-biserial correlation (+1: a higher on every task, −1: b higher on every "
        f"task). A verdict needs at least {MIN_TASKS} tasks (below that p cannot reach {ALPHA}) and "
        "at least 2 test seeds per task.",
    ]


# ---------------------------------------------------------------------------------------------------
# Markdown and LaTeX


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    return [line(header), "|" + "|".join([":--", *["--:"] * (len(header) - 1)]) + "|", *map(line, rows)]


def comparison_markdown(comparison: Comparison) -> str:
    """The comparison as Markdown: per benchmark its table, notes, differences and tests."""
    out = [f"# genft-search compare: {', '.join(comparison.names)}", "",
           f"Study store {comparison.storage}.", ""]
    for bench in comparison.benchmarks:
        out += [f"## {bench.title}", "", _objective_line(bench), ""]
        out += [*_md_table(*result_table(bench)), ""]
        out += [*(f"- {n}" for n in result_notes(bench)), ""]
        if bench.pairs:
            out += ["### Differences and tests", ""]
            out += [*_md_table(*difference_table(bench)), ""]
            out += [*(f"- {n}" for n in difference_notes(bench)), ""]
    return "\n".join(out).rstrip() + "\n"


_TEX = {
    "\\": r"\textbackslash{}", "_": r"\_", "%": r"\%", "&": r"\&", "#": r"\#", "$": r"\$", "{": r"\{",
    "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "±": r"$\pm$", "†": r"$^\dagger$",
    "‡": r"$^\ddagger$", "§": r"$^\S$", "–": "--", "−": "$-$", "≥": r"$\geq$", "×": r"$\times$",
    "<": r"$<$", ">": r"$>$",
}


def _tex(text: str) -> str:
    text = re.sub(r"(?<![A-Za-z])-(?=[0-9])", "−", text)  # a negative number, not a hyphen
    return "".join(_TEX.get(ch, ch) for ch in text)


def _tex_table(header: Sequence[str], rows: Sequence[Sequence[str]], caption: str,
               notes: Sequence[str], paper_last: bool = False) -> list[str]:
    body = [" & ".join(map(_tex, r)) + r" \\" for r in rows]
    if paper_last and body:
        body.insert(len(body) - 1, r"\midrule")
    return [
        r"\begin{table}[t]", r"\centering", r"\scriptsize",
        r"\caption{" + _tex(caption) + "}",
        r"\begin{tabular}{l" + "r" * (len(header) - 1) + "}",
        r"\toprule", " & ".join(map(_tex, header)) + r" \\", r"\midrule", *body, r"\bottomrule",
        r"\end{tabular}",
        *([r"\par\smallskip\parbox{\linewidth}{" + " ".join(map(_tex, notes)) + "}"] if notes else []),
        r"\end{table}", "",
    ]


def comparison_latex(comparison: Comparison) -> str:
    """LaTeX (booktabs) tables, one per benchmark and one for its pairwise tests."""
    out = [f"% genft-search compare {' '.join(comparison.names)} (store {comparison.storage})",
           r"% needs \usepackage{booktabs}", ""]
    for bench in comparison.benchmarks:
        out += _tex_table(*result_table(bench), f"{bench.title}. {_objective_line(bench)}",
                          result_notes(bench), paper_last=bench.paper is not None)
        if bench.pairs:
            out += _tex_table(*difference_table(bench), f"{bench.title}: differences and tests",
                              difference_notes(bench))
    return "\n".join(out)


# ---------------------------------------------------------------------------------------------------
# CSV


_CSV_COLUMNS = ("section", "benchmark", "row", "method", "versus", "column", "value", "std", "n", "low",
                "high", "source", "seeds", "trial", "p_value", "effect_size", "verdict")


def _finite(value: float | None) -> float | str:
    return "" if value is None or not math.isfinite(value) else value


def _result_records(bench: Benchmark) -> list[dict[str, object]]:
    records: list[dict[str, object]] = []
    for row in bench.rows:
        base = {"section": "result", "benchmark": bench.key, "row": row.name, "method": ",".join(row.methods)}
        for task in bench.tasks:
            cell = row.cells.get(task)
            if cell is None:
                continue
            s = cell.summary
            records.append({**base, "column": task, "value": s.mean, "std": _finite(s.std), "n": s.n,
                            "source": cell.source, "seeds": ";".join(map(str, sorted(cell.values))),
                            "trial": cell.trial if cell.trial is not None else ""})
        for group, tasks in bench.groups:
            value = row.mean_over(tasks)
            if value is not None:
                sources = {row.cells[t].source for t in tasks}
                records.append({**base, "column": group, "value": value, "n": len(tasks),
                                "source": sources.pop() if len(sources) == 1 else "mixed"})
        records.append({**base, "column": "params_m", "value": _finite(row.params_m)})
        if row.gpu_source != "unknown":
            records.append({**base, "column": "gpu_hours", "value": row.gpu_hours, "n": row.n_trials,
                            "source": row.gpu_source})
        records.append({**base, "column": "trial_hours", "value": row.trial_hours, "n": row.n_trials})
    if bench.paper is not None:
        base = {"section": "result", "benchmark": bench.key, "row": bench.paper.label, "method": "genft",
                "source": "paper"}
        for task in bench.tasks:
            if task in bench.paper.values:
                records.append({**base, "column": task, "value": bench.paper.values[task]})
        for group, tasks in bench.groups:
            value = bench.paper.mean_over(tasks)
            if value is not None:
                records.append({**base, "column": group, "value": value, "n": len(tasks)})
        if bench.paper.params_m is not None:
            records.append({**base, "column": "params_m", "value": bench.paper.params_m})
    return records


def _pair_records(bench: Benchmark, pair: Pair) -> list[dict[str, object]]:
    base = {"benchmark": bench.key, "row": pair.a, "versus": pair.b}
    records: list[dict[str, object]] = []
    for task in bench.tasks:
        d = pair.differences.get(task)
        if d is None:
            continue
        source = "val" if pair.sources.get(task) == "val" else "paired" if d.paired else "welch"
        records.append({"section": "difference", **base, "column": task, "value": _finite(d.mean),
                        "n": d.n, "low": _finite(d.low), "high": _finite(d.high), "source": source})
    if pair.test is not None:
        records.append({"section": "wilcoxon", **base, "column": "across tasks", "value": pair.test.statistic,
                        "n": pair.test.n, "p_value": pair.test.p_value, "effect_size": pair.test.effect_size,
                        "verdict": pair.verdict})
    return records


def comparison_csv(comparison: Comparison) -> str:
    """Every number of the tables, one per line: results, per-task differences, the tests."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=_CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for bench in comparison.benchmarks:
        writer.writerows(_result_records(bench))
        for pair in bench.pairs:
            writer.writerows(_pair_records(bench, pair))
    return buffer.getvalue()


# ---------------------------------------------------------------------------------------------------
# HTML


def _html_table(header: Sequence[str], rows: Sequence[Sequence[str]], last_is_paper: bool = False) -> str:
    body = []
    for i, row in enumerate(rows):
        cls = " class='result'" if last_is_paper and i == len(rows) - 1 else ""
        body.append(f"<tr{cls}>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>")
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    return f"<table class='grid'><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def bars_figure(bench: Benchmark) -> go.Figure:
    """Per task, one bar per row: mean over seeds with ±std error bars (the paper's row without)."""
    figure = go.Figure()
    for i, row in enumerate(bench.rows):
        tasks = [t for t in bench.tasks if t in row.cells]
        stats = [row.cells[t].summary for t in tasks]
        figure.add_trace(go.Bar(
            name=row.label, x=tasks, y=[s.mean for s in stats], marker_color=_COLORS[i % len(_COLORS)],
            error_y={"type": "data", "visible": True,
                     "array": [0.0 if math.isnan(s.std) else s.std for s in stats]},
            text=[DAGGER if row.cells[t].source == "val" else "" for t in tasks], textposition="outside",
            customdata=[s.n for s in stats],
            hovertemplate="%{x}: %{y:.2f} ± %{error_y.array:.2f} (n=%{customdata})<extra>" + row.name
                          + "</extra>",
        ))
    if bench.paper is not None:
        tasks = [t for t in bench.tasks if t in bench.paper.values]
        figure.add_trace(go.Bar(name=bench.paper.label, x=tasks, y=[bench.paper.values[t] for t in tasks],
                                marker_color=_PAPER_COLOR, opacity=0.6))
    metric = ", ".join(bench.metrics)
    figure.update_layout(barmode="group", height=440, yaxis_title=metric,
                         title_text=f"{bench.title}: per task (mean ± std over seeds; {DAGGER} validation)")
    return figure


def _pareto(points: list[tuple[float, float, float]], maximize: bool) -> list[bool]:
    """Non-dominated points: better or equal on score, parameters and hours, better on one."""
    sign = 1 if maximize else -1

    def dominates(q: tuple[float, float, float], p: tuple[float, float, float]) -> bool:
        ge = sign * q[0] >= sign * p[0] and q[1] <= p[1] and q[2] <= p[2]
        return ge and (sign * q[0] > sign * p[0] or q[1] < p[1] or q[2] < p[2])

    return [not any(dominates(q, p) for q in points if q is not p) for p in points]


def pareto_figure(bench: Benchmark) -> go.Figure:
    """Mean score over the benchmark's tasks against trainable parameters and against search GPU-hours
    (trial-hours when no row used a GPU); stars mark the rows no other row beats on all three."""
    use_gpu = any(r.gpu_source != "unknown" and r.gpu_hours > 0 for r in bench.rows)
    cost_name = "GPU-hours of search" if use_gpu else "trial-hours of search (no GPU used)"
    scored = [(r, mean) for r in bench.rows if (mean := r.mean_over(bench.tasks)) is not None]
    if not scored:
        raise ValueError("no row has a result on every task of this benchmark")
    rows = [r for r, _ in scored]
    scores = [mean for _, mean in scored]
    params = [r.params_m if r.params_m is not None else math.nan for r in rows]
    costs = [(r.gpu_hours if r.gpu_source != "unknown" else math.nan) if use_gpu else r.trial_hours
             for r in rows]
    known = [i for i in range(len(rows)) if not (math.isnan(params[i]) or math.isnan(costs[i]))]
    front = dict(zip(known, _pareto([(scores[i], params[i], costs[i]) for i in known],
                                    rows[0].direction == "maximize")))
    figure = make_subplots(rows=1, cols=2, shared_yaxes=True,
                           subplot_titles=("vs trainable parameters (M)", f"vs {cost_name}"))
    for i, row in enumerate(rows):
        marker = {"color": _COLORS[i % len(_COLORS)], "size": 13,
                  "symbol": "star" if front.get(i) else "circle-open", "line": {"width": 2}}
        for col, x in ((1, params[i]), (2, costs[i])):
            figure.add_trace(go.Scatter(x=[x], y=[scores[i]], mode="markers+text", text=[row.name],
                                        textposition="top center", marker=marker, name=row.label,
                                        legendgroup=row.name, showlegend=col == 1), row=1, col=col)
    paper = bench.paper
    if paper is not None and paper.params_m is not None and paper.mean_over(bench.tasks) is not None:
        figure.add_trace(go.Scatter(x=[paper.params_m], y=[paper.mean_over(bench.tasks)], mode="markers+text",
                                    text=[paper.label], textposition="bottom center", name=paper.label,
                                    marker={"color": _PAPER_COLOR, "size": 12, "symbol": "diamond"}),
                         row=1, col=1)
    figure.update_xaxes(title_text="trainable parameters (M)", row=1, col=1)
    figure.update_xaxes(title_text=cost_name, row=1, col=2)
    figure.update_yaxes(title_text=f"mean {', '.join(bench.metrics)} over {len(bench.tasks)} task(s)",
                        row=1, col=1)
    figure.update_layout(height=440, title_text=f"{bench.title}: score vs parameters vs search cost "
                                                f"(stars: Pareto-optimal)")
    return figure


def comparison_sections(comparison: Comparison) -> list[Section]:
    """The HTML page's sections: per benchmark its tables, bars per task and the Pareto plot."""
    sections = []
    for bench in comparison.benchmarks:
        key = "compare-" + slug(bench.key)
        section = Section(bench.title, intro=html.escape(_objective_line(bench)))
        section.panels.append(Panel(f"{key}-table", "Results", html=_html_table(
            *result_table(bench), last_is_paper=bench.paper is not None),
            note="<br>".join(map(html.escape, result_notes(bench)))))
        if bench.pairs:
            section.panels.append(Panel(f"{key}-differences", "Differences and tests",
                                        html=_html_table(*difference_table(bench)),
                                        note="<br>".join(map(html.escape, difference_notes(bench)))))
        section.panels.append(figure_panel(f"{key}-bars", "Per task", partial(bars_figure, bench)))
        section.panels.append(figure_panel(f"{key}-pareto", "Score vs parameters vs search cost",
                                           partial(pareto_figure, bench)))
        sections.append(section)
    return sections


# ---------------------------------------------------------------------------------------------------
# files


def write_comparison(comparison: Comparison, out_dir: str | os.PathLike[str]) -> list[Path]:
    """Write compare.md, compare.csv, compare.tex and compare.html (offline) into ``out_dir``.

    Everything is rendered first, so a failure leaves no half-written set behind.
    """
    from genft_search.report._html import render_html

    texts = {
        "compare.md": comparison_markdown(comparison),
        "compare.csv": comparison_csv(comparison),
        "compare.tex": comparison_latex(comparison),
        "compare.html": render_html(f"genft-search compare: {', '.join(comparison.names)}",
                                    comparison_sections(comparison),
                                    f"Study store {html.escape(comparison.storage)}."),
    }
    folder = Path(out_dir)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for name, text in texts.items():
            (folder / name).write_text(text, encoding="utf-8")
            paths.append(folder / name)
    except OSError as exc:
        raise UserError(f"--out: cannot write {folder}: {exc.strerror or exc}; expected a writable "
                        f"folder") from None
    return paths
