"""The ablation table, recomputed from the trials in the store (never from a run's memory).

Per task and variant: mean ± sample std over seeds of the objective, Δ vs ``full``, the method's own
trainable parameters and the dims the variant really used (the "dim 0 becomes 8" rule applied by
``GenFTConfig.resolve``). Averaged over tasks: the mean of the per-task means, ± the std over seeds
of the per-seed task averages. The paper's Table 12/13 numbers sit beside tasks it reports. Each row
also carries its curves' late gain (the objective's rise over the last quarter of the epochs, mean over
seeds), so a ranking read while the curves still rise says so.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
from optuna.trial import TrialState

from genft_search import store
from genft_search.ablation._config import VARIANTS
from genft_search.method import GenFTConfig
from genft_search.paper import paper_ablation
from genft_search.report import booktabs, latex_escape

__all__ = ["AVERAGE", "AblationTable", "ablation_runs", "ablation_table", "is_ablation_study"]

#: study user attr marking an ablation study (value: base, variants, seeds, from_study, base setting)
AVERAGE = "average"
#: a row whose curves rose by at least this much (metric points) over their last quarter is still rising
RISING_GAIN = 1.0


def is_ablation_study(study: store.StudyLike) -> bool:
    return isinstance(store.StudyRecord.read(study).ablation, dict)


def _family(kind: str | None) -> str:
    return "text" if kind == "glue" else "vit"


def _data(study: optuna.Study) -> dict[str, Any]:
    return dict(store.StudyRecord.read(study).config.get("data") or {})


def _dims(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> tuple[int | None, int | None, str | None]:
    """The variant's resolved a, b and the init of its specific factors, as the trainable built them.

    The init is ``init_a/init_b``, with ``*`` where the method library chose another init than the
    setting's so the variant can learn (``GenFTConfig.init_reason``, docs/method.md).
    """
    try:
        cfg = GenFTConfig.from_mapping(store.trial_config(study, trial)).resolve(
            _family(_data(study).get("kind"))
        )
    except ValueError:
        return None, None, None
    init = f"{cfg.init_a}/{cfg.init_b}" + ("*" if cfg.init_reason else "") if cfg.specific_dim else None
    return cfg.shared_dim, cfg.specific_dim, init


def late_gain(trial: optuna.trial.FrozenTrial) -> float:
    """The objective's rise over the last quarter of the trial's epochs (NaN under 4 epochs).

    Why: variants ranked while their curves still rise may swap with more epochs; the table names them.
    """
    steps = sorted(trial.intermediate_values)
    if len(steps) < 4:
        return math.nan
    last = steps[-1]
    cut = max(s for s in steps if s <= last - max(1, last // 4))
    return float(trial.intermediate_values[last] - trial.intermediate_values[cut])


def ablation_runs(studies: Iterable[optuna.Study]) -> pd.DataFrame:
    """One row per finished trial: task, variant, seed, value, params, shared/specific dims, trial."""
    rows = []
    for study in studies:
        task = (store.StudyRecord.read(study).task or study.study_name)
        for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            variant = trial.params.get("ablation", "full")
            metrics = trial.user_attrs.get(store.ATTR_METRICS) or {}
            a, b, init = _dims(study, trial)
            rows.append(
                {
                    "task": task,
                    "variant": variant,
                    "seed": trial.params.get("seed"),
                    "value": float(trial.values[0]),
                    "params": metrics.get("trainable_params"),
                    "shared_dim": a,
                    "specific_dim": b,
                    "init": init,
                    "late_gain": late_gain(trial),
                    "trial": trial.number,
                    "study": study.study_name,
                }
            )
    columns = ["task", "variant", "seed", "value", "params", "shared_dim", "specific_dim", "init",
               "late_gain", "trial", "study"]
    return pd.DataFrame(rows, columns=columns)


def _std(values: Sequence[float]) -> float:
    return float(pd.Series(values, dtype=float).std(ddof=1)) if len(values) > 1 else math.nan


def _paper_for(studies: Sequence[optuna.Study]) -> dict[str, str]:
    """Tasks whose study ran on the paper's benchmark data ({task: kind}); built-in stand-ins are not it."""
    out = {}
    for study in studies:
        data = _data(study)
        if data.get("root") != "builtin" and data.get("kind") in ("vtab1k", "fgvc"):
            out[(store.StudyRecord.read(study).task or study.study_name)] = data["kind"]
    return out


@dataclass
class AblationTable:
    """Per-task and averaged rows (``summary``), the raw finished trials (``runs``), and the metric."""

    name: str
    metric: str
    runs: pd.DataFrame
    summary: pd.DataFrame
    tasks: list[str] = field(default_factory=list)
    variants: list[str] = field(default_factory=list)
    seeds: list[Any] = field(default_factory=list)

    def __str__(self) -> str:
        return self.markdown()

    # ---- formats ---------------------------------------------------------------------------------
    def _columns(self) -> list[str]:
        """Tasks, then the average when there is more than one task."""
        return [*self.tasks, AVERAGE] if len(self.tasks) > 1 else list(self.tasks)

    def _rows(self, task: str) -> pd.DataFrame:
        return self.summary[self.summary["task"] == task]

    def markdown(self) -> str:
        """Per-task tables, then the average over tasks (what ``genft-search ablate`` prints)."""
        has_paper = self.summary["paper"].notna().any()
        head = ["variant", "a", "b", "init A/B", "params", "n", f"{self.metric} mean ± std", "Δ vs full"]
        if has_paper:
            head += ["paper", "paper Δ"]
        out = [
            f"# Ablation {self.name}: {self.metric}, mean ± std over seeds {', '.join(map(str, self.seeds))}",
            "",
        ]
        for task in self._columns():
            rows = self._rows(task)
            if rows.empty:
                continue
            title = f"## {task}" if task != AVERAGE else f"## average over {len(self.tasks)} task(s)"
            out += [title, "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
            for r in rows.itertuples():
                cells = [
                    r.variant,
                    _int(r.shared_dim),
                    _int(r.specific_dim),
                    "--" if _missing(r.init) else str(r.init),
                    _params(r.params),
                    str(int(r.n)),
                    _pm(r.mean, r.std),
                    _delta(r.delta),
                ]
                if has_paper:
                    cells += [_num(r.paper), _delta(r.paper_delta)]
                out.append("| " + " | ".join(cells) + " |")
            out.append("")
        if self.summary["init"].astype(str).str.endswith("*").any():
            out.append(
                "init A/B: the specific factors' initialisation; * = the setting's init would keep ΔW and "
                "its gradients at 0 with the shared factors off, so they start as the shared factors do."
            )
        out.append(self._rising_note())
        if has_paper:
            out.append(
                "Paper: GenFT paper Tables 12/13 (test top-1 %, ViT-B/16 IN-21k); "
                "its average is over the same tasks."
            )
        return "\n".join(out).rstrip() + "\n"

    def rising(self) -> pd.DataFrame:
        """Per-task rows whose curves rose by ``RISING_GAIN`` points or more over their last quarter."""
        rows = self.summary[self.summary["task"] != AVERAGE]
        return rows[rows["late_gain"] >= RISING_GAIN]

    def _rising_note(self) -> str:
        gains = self.summary.loc[self.summary["task"] != AVERAGE, "late_gain"].dropna()
        if gains.empty:
            return "Late gain: not known (fewer than 4 epochs per curve)."
        rising = self.rising()
        if rising.empty:
            return (
                f"Late gain: every row's {self.metric} rose by less than {RISING_GAIN:g} point(s) over the "
                f"last quarter of its epochs (largest {gains.max():.2f}): the ranking is not read mid-climb."
            )
        names = ", ".join(f"{r.task}/{r.variant} (+{r.late_gain:.2f})" for r in rising.itertuples())
        return (
            f"Still rising: {names} gained {RISING_GAIN:g} point(s) or more of {self.metric} over the last "
            "quarter of the epochs (mean over seeds): differences smaller than these gains may change with "
            "more epochs."
        )

    def csv(self) -> str:
        buffer = io.StringIO()
        columns = [
            "task",
            "variant",
            "shared_dim",
            "specific_dim",
            "init",
            "params",
            "n",
            "mean",
            "std",
            "delta",
            "late_gain",
            "paper",
            "paper_delta",
        ]
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(columns)
        for r in self.summary[columns].itertuples(index=False):
            writer.writerow([_csv_cell(v, c) for v, c in zip(r, columns)])
        return buffer.getvalue()

    def latex(self) -> str:
        """A Table-12-like booktabs table: variants as rows, tasks and the average as columns."""
        cols = self._columns()
        ours = []
        for variant in self.variants:
            cells = []
            for task in cols:
                row = self.summary[(self.summary["task"] == task) & (self.summary["variant"] == variant)]
                cells.append("--" if row.empty else _tex_pm(row.iloc[0]["mean"], row.iloc[0]["std"]))
            avg = self.summary[(self.summary["task"] == cols[-1]) & (self.summary["variant"] == variant)]
            params = _params(avg.iloc[0]["params"]) if not avg.empty else "--"
            ours.append([latex_escape(variant), latex_escape(params), *cells])
        blocks = [ours]
        if self.summary["paper"].notna().any():
            paper = []
            for variant in self.variants:
                cells = []
                for task in cols:
                    row = self.summary[(self.summary["task"] == task) & (self.summary["variant"] == variant)]
                    cells.append(
                        "--" if row.empty or _missing(row.iloc[0]["paper"]) else f"{row.iloc[0]['paper']:.2f}"
                    )
                paper.append([f"paper {latex_escape(variant)}", "", *cells])
            blocks.append(paper)
        header = ["Variant", "Params", *(latex_escape(c if c != AVERAGE else "Avg.") for c in cols)]
        comment = f"ablation {self.name}: {self.metric}, mean $\\pm$ std over {len(self.seeds)} seeds"
        return booktabs(comment, "l" + "r" * (len(cols) + 1), header, *blocks)

    def write(self, out_dir: str | Path) -> dict[str, Path]:
        """Markdown, CSV and LaTeX files in ``out_dir``; returns their paths by format."""
        folder = Path(out_dir)
        folder.mkdir(parents=True, exist_ok=True)
        stem = self.name.replace("/", "_")
        paths = {
            "md": folder / f"{stem}_ablation.md",
            "csv": folder / f"{stem}_ablation.csv",
            "tex": folder / f"{stem}_ablation.tex",
        }
        paths["md"].write_text(self.markdown(), encoding="utf-8")
        paths["csv"].write_text(self.csv(), encoding="utf-8")
        paths["tex"].write_text(self.latex(), encoding="utf-8")
        return paths


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _csv_cell(value: Any, column: str) -> Any:
    if _missing(value):
        return ""
    if column in ("shared_dim", "specific_dim", "params", "n"):
        return round(float(value))
    return round(value, 6) if isinstance(value, float) else value


def _int(value: Any) -> str:
    return "–" if _missing(value) else str(int(value))


def _num(value: Any) -> str:
    return "–" if _missing(value) else f"{value:.2f}"


def _pm(mean: float, std: float) -> str:
    return _num(mean) if _missing(std) else f"{mean:.2f} ± {std:.2f}"


def _delta(value: Any) -> str:
    return "–" if _missing(value) else f"{value:+.2f}"


def _params(value: Any) -> str:
    if _missing(value):
        return "–"
    return f"{value / 1e6:.3f}M" if value >= 1e5 else f"{round(value):,}"


def _tex_pm(mean: float, std: float) -> str:
    return f"{mean:.2f}" if _missing(std) else f"{mean:.2f}$_{{\\pm {std:.2f}}}$"


def ablation_table(studies: Sequence[optuna.Study], name: str | None = None) -> AblationTable:
    """The table of an ablation from its task studies as stored (one study per task)."""
    studies = list(studies)
    runs = ablation_runs(studies)
    records = [store.StudyRecord.read(s) for s in studies]
    info = [r.ablation or {} for r in records]
    variants = [
        v for v in VARIANTS if any(v in (i.get("variants") or []) for i in info) or v in set(runs["variant"])
    ]
    seeds = sorted({s for i in info for s in (i.get("seeds") or [])} | set(runs["seed"].dropna()))
    objective = (records[0].objective or [{}])[0] if records else {}
    metric = objective.get("metric", "objective") if isinstance(objective, dict) else "objective"
    tasks = [r.task or s.study_name for r, s in zip(records, studies)]
    paper_kinds = _paper_for(studies)
    rows: list[dict[str, Any]] = []
    for task in tasks:
        part = runs[runs["task"] == task]
        full = part[part["variant"] == "full"]["value"]
        full_mean = float(full.mean()) if len(full) else math.nan
        kind = paper_kinds.get(task)
        paper_full = paper_ablation(kind, "full", task) if kind else None
        for variant in variants:
            sel = part[part["variant"] == variant]
            if sel.empty:
                continue
            paper = paper_ablation(kind, variant, task) if kind else None
            mean = float(sel["value"].mean())
            rows.append(
                {
                    "task": task,
                    "variant": variant,
                    "n": len(sel),
                    "mean": mean,
                    "std": _std(list(sel["value"])),
                    "delta": mean - full_mean if variant != "full" else (0.0 if len(full) else math.nan),
                    "params": _first(sel["params"]),
                    "shared_dim": _first(sel["shared_dim"]),
                    "specific_dim": _first(sel["specific_dim"]),
                    "init": _first(sel["init"]),
                    "late_gain": _mean(sel["late_gain"]),
                    "paper": paper if paper is not None else math.nan,
                    "paper_delta": paper - paper_full
                    if paper is not None and paper_full is not None
                    else math.nan,
                }
            )
    per_task = pd.DataFrame(
        rows,
        columns=[
            "task",
            "variant",
            "n",
            "mean",
            "std",
            "delta",
            "params",
            "shared_dim",
            "specific_dim",
            "init",
            "late_gain",
            "paper",
            "paper_delta",
        ],
    )
    summary = per_task
    if len(tasks) > 1:  # one task's average would only repeat it
        average = _average(per_task, runs, tasks, variants)
        summary = pd.concat([per_task, average], ignore_index=True) if not average.empty else per_task
    return AblationTable(name or _common_name(studies), metric, runs, summary, tasks, variants, seeds)


def _mean(series: pd.Series) -> float:
    values = series.dropna()
    return float(values.mean()) if len(values) else math.nan


def _first(series: pd.Series) -> Any:
    values = series.dropna()
    return values.iloc[0] if len(values) else math.nan


def _average(
    per_task: pd.DataFrame, runs: pd.DataFrame, tasks: list[str], variants: list[str]
) -> pd.DataFrame:
    rows = []
    means: dict[str, float] = {}
    for variant in variants:
        sel = per_task[per_task["variant"] == variant]
        if sel.empty:
            continue
        means[variant] = float(sel["mean"].mean())
        # std over seeds of the per-seed average across tasks (only seeds every task has)
        part = runs[runs["variant"] == variant]
        by_seed = part.groupby("seed")
        per_seed = [float(g["value"].mean()) for _, g in by_seed if g["task"].nunique() == len(sel)]
        paper = sel["paper"]
        rows.append(
            {
                "task": AVERAGE,
                "variant": variant,
                "n": len(sel),
                "mean": means[variant],
                "std": _std(per_seed),
                "delta": math.nan,
                "params": float(sel["params"].mean()) if sel["params"].notna().all() else math.nan,
                "shared_dim": math.nan,
                "specific_dim": math.nan,
                "init": math.nan,
                "late_gain": _mean(sel["late_gain"]),
                "paper": float(paper.mean()) if len(sel) == len(tasks) and paper.notna().all() else math.nan,
                "paper_delta": math.nan,
            }
        )
    out = pd.DataFrame(rows, columns=per_task.columns)
    if "full" in means:
        out["delta"] = out["mean"] - means["full"]
        full_paper = out.loc[out["variant"] == "full", "paper"]
        if len(full_paper) and not _missing(full_paper.iloc[0]):
            out["paper_delta"] = out["paper"] - full_paper.iloc[0]
    return out


def _common_name(studies: Sequence[optuna.Study]) -> str:
    names = {store.StudyRecord.read(s).study_file for s in studies}
    name = next(iter(names)) if len(names) == 1 else None
    return name or "ablation"
