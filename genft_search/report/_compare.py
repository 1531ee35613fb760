"""``genft-search compare``: methods side by side per benchmark, in the paper's table layout, with seeds,
search cost and significance (issue 11), recomputed from the study store alone.

Each NAME is a study-file name (its studies ``<name>/<task>``, or those whose ``study_file`` attr is
NAME) or one study name; each becomes a row of every benchmark it has tasks in. A cell is the test
metric's mean ± std over the seeds of the chosen setting when a test evaluation is stored, else the
search's best validation value (marked, since the two are not comparable). Pairs of rows get a
per-task difference with a 95 % interval over seeds and, across tasks, a Wilcoxon signed-rank test
(:mod:`genft_search.stats`).

What is read from the store (the engine writes these; plain Optuna studies give what they can):

- study user attrs ``config``, ``method``, ``task``, ``study_file``, ``objective`` (as ``run`` writes them);
- ``test_evaluations``: ``[{"seed": int, "trial": int, "metrics": {...}}, ...]``, one entry per seed of the
  chosen trial (``best --evaluate-test --seeds N``); the single ``test_evaluation``
  (``{"trial": int, "metrics": {...}}``, seed from the trial config) is read as one more seed;
- per trial: ``user_attrs["metrics"]["trainable_params"]``, and for cost ``user_attrs["cost"]`` =
  ``{"device": "cuda" | "cpu", "device_seconds": float, ...}`` (``metrics["device_seconds"]`` also
  read); without it, wall time × study user attr ``resources["gpu"]``, marked as estimated.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from genft_search import store
from genft_search.errors import UserError
from genft_search.paper import paper_benchmark, paper_result
from genft_search.report._meta import best_trial, study_meta
from genft_search.stats import (
    MIN_TASKS,
    Difference,
    MeanStd,
    SignedRank,
    difference_interval,
    mean_std,
    signed_rank_test,
)

__all__ = ["ALPHA", "Benchmark", "Cell", "Comparison", "Pair", "Row", "compare_studies"]

TEST_EVALUATIONS = "test_evaluations"
TEST_EVALUATION = "test_evaluation"
COST = store.ATTR_COST
RESOURCES = "resources"
ALPHA = 0.05

_TITLES = {"vtab1k": "VTAB-1k", "fgvc": "FGVC", "glue": "GLUE"}


def _layout() -> tuple[tuple[tuple[str, tuple[str, ...]], ...], dict[str, tuple[str, ...]]]:
    """The paper's table layout (arXiv 2506.11042, Tables 1-3), from the packaged paper data: VTAB-1k's
    groups in order, and every benchmark's task order."""
    order: dict[str, tuple[str, ...]] = {}
    groups: dict[str, list[str]] = {}
    for kind in _TITLES:
        bench = paper_benchmark(kind)
        if bench is None:
            continue
        order[kind] = bench.tasks
        if kind == "vtab1k":
            for task in bench.tasks:
                groups.setdefault(bench.groups[task].capitalize(), []).append(task)
    return tuple((name, tuple(tasks)) for name, tasks in groups.items()), order


_VTAB_GROUPS, _ORDER = _layout()
_FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


@dataclass(frozen=True)
class Cell:
    """One row's result on one task: ``{seed: value}`` of the test metric, or the best validation value."""

    values: dict[int, float]
    source: str
    """``test`` (per-seed test evaluations) or ``val`` (best validation value of the search)"""
    trial: int | None
    params: float | None = None

    @property
    def summary(self) -> MeanStd:
        return mean_std(self.values.values())


@dataclass
class Row:
    """One NAME on one benchmark: its cells per task, parameters and the cost of its search."""

    name: str
    methods: tuple[str, ...]
    metric: str
    direction: str
    studies: list[str] = field(default_factory=list)
    tasks: list[str] = field(default_factory=list)
    cells: dict[str, Cell] = field(default_factory=dict)
    gpu_hours: float = 0.0
    """measured GPU-seconds / 3600, plus wall time x ``resources.gpu`` for trials that stored no cost"""
    trial_hours: float = 0.0
    n_trials: int = 0
    n_estimated: int = 0
    n_unknown: int = 0
    """finished trials with no stored cost and no ``resources`` attr to estimate it from"""

    @property
    def label(self) -> str:
        return f"{self.name} ({', '.join(self.methods)})" if self.methods else self.name

    @property
    def gpu_source(self) -> str:
        """``measured``, ``estimated`` (some from wall time x resources.gpu), ``partial`` (a lower bound:
        some trials have no cost at all) or ``unknown`` (none has)."""
        if self.n_trials and self.n_unknown == self.n_trials:
            return "unknown"
        if self.n_unknown:
            return "partial"
        return "estimated" if self.n_estimated else "measured"

    @property
    def params_m(self) -> float | None:
        """Trainable parameters (M) of the chosen settings, mean over tasks (the paper's Params column)."""
        counts = [c.params for c in self.cells.values() if c.params is not None]
        return sum(counts) / len(counts) / 1e6 if counts else None

    def mean_over(self, tasks: Sequence[str]) -> float | None:
        """Mean of the cell means over ``tasks`` (as the paper averages); None if one is missing."""
        if not tasks or any(t not in self.cells for t in tasks):
            return None
        return sum(self.cells[t].summary.mean for t in tasks) / len(tasks)


@dataclass(frozen=True)
class PaperRow:
    """The paper's GenFT row for a benchmark's tasks."""

    label: str
    values: dict[str, float]
    params_m: float | None
    measures: str

    def mean_over(self, tasks: Sequence[str]) -> float | None:
        if not tasks or any(t not in self.values for t in tasks):
            return None
        return sum(self.values[t] for t in tasks) / len(tasks)


@dataclass(frozen=True)
class Pair:
    """Row ``a`` minus row ``b``: per task over seeds, and across tasks."""

    a: str
    b: str
    differences: dict[str, Difference | None]
    """None: not comparable on that task (a side missing, or test vs validation)"""
    sources: dict[str, str]
    test: SignedRank | None
    verdict: str

    @property
    def meaningful(self) -> bool:
        return not self.verdict.startswith("not meaningful") and self.test is not None


@dataclass
class Benchmark:
    """One table: a benchmark's tasks, group-mean columns, rows, the paper's row and the pairs."""

    key: str
    title: str
    kind: str | None
    tasks: list[str]
    groups: list[tuple[str, list[str]]]
    rows: list[Row]
    paper: PaperRow | None = None
    pairs: list[Pair] = field(default_factory=list)

    @property
    def metrics(self) -> list[str]:
        return sorted({r.metric for r in self.rows})


@dataclass
class Comparison:
    """Everything ``compare`` shows, per benchmark; the renderers live in ``_compare_out``."""

    names: list[str]
    storage: str
    """the store's backend and host (``store.describe_storage``), never its URL"""
    benchmarks: list[Benchmark]


# ---------------------------------------------------------------------------------------------------
def paper_row(kind: str | None, tasks: Sequence[str]) -> PaperRow | None:
    """The paper's per-task GenFT results and mean parameter count (M) for ``tasks`` of ``kind``."""
    if kind not in _ORDER:
        return None
    assert kind is not None
    values, measures = {}, ""
    for task in tasks:
        found = paper_result(kind, task)
        if found is not None:
            values[task], measures = found
    if not values:
        return None
    bench = paper_benchmark(kind)
    params = bench.params_m if bench is not None else None
    return PaperRow("GenFT (paper)", values, params, measures)


# ---------------------------------------------------------------------------------------------------
# reading the store


def _known_names(summaries: Mapping[str, Any]) -> list[str]:
    names = set()
    for name, summary in summaries.items():
        names.add(summary.user_attrs.get("study_file") or name.split("/", 1)[0])
    return sorted(names)


def _resolve(rdb: optuna.storages.RDBStorage, names: Sequence[str]) -> dict[str, list[str]]:
    """NAME -> the study names it stands for; every mistake is one ``UserError`` before anything runs."""
    from genft_search.ablation import is_ablation_study

    summaries = {s.study_name: s for s in rdb.get_all_studies()}
    shown = store.redact_url(rdb.url)
    known = _known_names({n: s for n, s in summaries.items() if not is_ablation_study(s)})
    listed = ", ".join(known[:12]) + (", ..." if len(known) > 12 else "") if known else "(none yet)"
    chosen: dict[str, list[str]] = {}
    owner: dict[str, str] = {}
    for raw in names:
        name = raw.strip().rstrip("/")
        if name.endswith((".yaml", ".yml")):
            stem = name.rsplit("/", 1)[-1].rsplit(".", 1)[0]
            raise UserError(f"compare: NAME: {raw!r} is a file name; expected the study name it defines "
                            f"(its name: field, e.g. {stem})")
        if name in summaries:
            studies = [name]
        else:
            studies = sorted(n for n, s in summaries.items()
                             if n.startswith(name + "/") or s.user_attrs.get("study_file") == name)
        if not name or not studies:
            raise UserError(f"compare: NAME: no study file or study {raw!r} in {shown}; expected one of "
                            f"{listed}")
        if any(is_ablation_study(summaries[n]) for n in studies):
            raise UserError(f"compare: NAME: {raw!r} is an ablation; expected search studies (its table: "
                            f"genft-search report {name})")
        for study in studies:
            if study in owner:
                raise UserError(f"compare: NAME: {raw!r} repeats study {study} of {owner[study]!r}; "
                                f"expected each study once")
            owner[study] = raw
        chosen[name] = studies
    return chosen


def _benchmark_key(kind: str | None, root: str | None) -> str:
    kind = kind or "other"
    return f"{kind}-builtin" if root == "builtin" else kind


def _benchmark_title(key: str) -> str:
    kind, _, builtin = key.partition("-")
    if builtin:
        return f"Built-in stand-in data ({_TITLES.get(kind, kind)} layout; not the paper's benchmark)"
    return _TITLES.get(kind, kind)


def _test_value(metrics: Mapping[str, Any], metric: str) -> float | None:
    """The test counterpart of the objective's metric (``val_top1`` -> ``test_top1``), else ``score``."""
    key = "test_" + metric.removeprefix("val_") if metric.startswith("val_") else metric
    for candidate in (key, "score"):
        value = metrics.get(candidate)
        if isinstance(value, (int, float)) and math.isfinite(value):
            return float(value)
    return None


def _seed(study: optuna.Study, number: Any) -> int | None:
    trials = study.get_trials(deepcopy=False)
    if isinstance(number, int) and 0 <= number < len(trials):
        seed = store.trial_config(study, trials[number]).get("seed")
    else:
        seed = (study.user_attrs.get(store.ATTR_CONFIG) or {}).get("seed")
    return int(seed) if isinstance(seed, (int, float)) else None


def _trial_params(trial: FrozenTrial | None) -> float | None:
    count = ((trial.user_attrs.get("metrics") or {}) if trial is not None else {}).get("trainable_params")
    return float(count) if isinstance(count, (int, float)) else None


def _test_cell(study: optuna.Study, metric: str) -> Cell | None:
    """The chosen trial's per-seed test values: the trial of the last ``test_evaluations`` entry (else of
    ``test_evaluation``), every seed stored for it (the last entry of a seed wins)."""
    entries = [e for e in study.user_attrs.get(TEST_EVALUATIONS) or [] if isinstance(e, Mapping)]
    legacy = study.user_attrs.get(TEST_EVALUATION)
    if isinstance(legacy, Mapping):
        entries.insert(0, legacy)
    if not entries:
        return None
    trial = entries[-1].get("trial")
    values: dict[int, float] = {}
    params = None
    for entry in entries:
        metrics = entry.get("metrics") or {}
        seed = entry.get("seed")
        seed = int(seed) if isinstance(seed, (int, float)) else _seed(study, entry.get("trial"))
        value = _test_value(metrics, metric) if isinstance(metrics, Mapping) else None
        if entry.get("trial") != trial or seed is None or value is None:
            continue
        values[seed] = value
        if isinstance(metrics.get("trainable_params"), (int, float)):
            params = float(metrics["trainable_params"])
    if not values:
        return None
    if params is None and isinstance(trial, int):
        params = _trial_params(next((t for t in study.get_trials(deepcopy=False) if t.number == trial), None))
    return Cell(values, "test", trial if isinstance(trial, int) else None, params)


def _val_cell(study: optuna.Study) -> Cell | None:
    best = best_trial(study)
    if best is None:
        return None
    seed = store.trial_config(study, best).get("seed")
    seed = int(seed) if isinstance(seed, (int, float)) else 0
    return Cell({seed: float(best.values[0])}, "val", best.number, _trial_params(best))


def _gpu_seconds(trial: FrozenTrial) -> float | None:
    """Measured GPU-seconds of a trial (0 on CPU), or None when it stored no cost."""
    cost = trial.user_attrs.get(COST)
    if not isinstance(cost, Mapping):
        cost = trial.user_attrs.get("metrics") or {}
    seconds = cost.get("device_seconds")
    if not isinstance(seconds, (int, float)):
        return None
    return 0.0 if str(cost.get("device", "cuda")).lower() == "cpu" else float(seconds)


def _add_search_cost(row: Row, study: optuna.Study) -> None:
    """Add the study's search cost to ``row``: every finished trial counts (pruned and failed too), as
    the search paid for them all."""
    resources = study.user_attrs.get(RESOURCES)
    gpu = resources.get("gpu") if isinstance(resources, Mapping) else None
    gpu = float(gpu) if isinstance(gpu, (int, float)) else None
    for trial in study.get_trials(deepcopy=False):
        if trial.state not in _FINISHED:
            continue
        seconds = trial.duration.total_seconds() if trial.duration else trial.user_attrs.get("train_seconds")
        seconds = float(seconds) if isinstance(seconds, (int, float)) else None
        row.n_trials += 1
        row.trial_hours += (seconds or 0.0) / 3600
        measured = _gpu_seconds(trial)
        if measured is not None:
            row.gpu_hours += measured / 3600
        elif gpu is not None and seconds is not None:
            row.gpu_hours += seconds * gpu / 3600
            row.n_estimated += 1
        else:
            row.n_unknown += 1


def _objective(study: optuna.Study) -> tuple[str, str]:
    meta = study_meta(study)
    return (meta.metrics[0] if meta.metrics else "objective"), study.directions[0].name.lower()


# ---------------------------------------------------------------------------------------------------
# assembling the tables


def _column_order(kind: str | None, tasks: set[str]) -> list[str]:
    order = _ORDER.get(kind or "", ())
    return [t for t in order if t in tasks] + sorted(t for t in tasks if t not in order)


def _groups(key: str, tasks: Sequence[str]) -> list[tuple[str, list[str]]]:
    groups = []
    if key == "vtab1k":
        for label, members in _VTAB_GROUPS:
            present = [t for t in tasks if t in members]
            if present:
                groups.append((label, present))
    if len(tasks) > 1:
        groups.append(("Mean", list(tasks)))
    return groups


def _pair(a: Row, b: Row, tasks: Sequence[str]) -> Pair:
    differences: dict[str, Difference | None] = {}
    sources: dict[str, str] = {}
    for task in tasks:
        ca, cb = a.cells.get(task), b.cells.get(task)
        if ca is None or cb is None or ca.source != cb.source:
            differences[task] = None
            continue
        differences[task] = difference_interval(ca.values, cb.values)
        sources[task] = ca.source
    used = [d for d in differences.values() if d is not None]
    test = signed_rank_test([d.mean for d in used]) if used else None
    reasons = []
    if len(used) < MIN_TASKS:
        reasons.append(f"{len(used)} comparable task(s), the Wilcoxon test needs at least {MIN_TASKS} "
                       f"to reach p < {ALPHA}")
    if "val" in sources.values():
        reasons.append("validation values, no test evaluation over seeds")
    elif any(not d.has_interval for d in used):
        reasons.append("fewer than 2 test seeds on some task")
    if a.direction != b.direction:
        reasons.append("the objectives' directions differ")
    if test is None:
        verdict = "not meaningful: no comparable task (a side missing, or test vs validation)"
    elif reasons:
        verdict = "not meaningful: " + "; ".join(reasons)
    elif test.p_value < ALPHA:
        higher = a.name if test.effect_size > 0 else b.name
        lower = b.name if higher == a.name else a.name
        better = higher if a.direction == "maximize" else lower
        verdict = f"{better} better (p < {ALPHA})"
    else:
        verdict = f"no significant difference (p ≥ {ALPHA})"
    return Pair(a.name, b.name, differences, sources, test, verdict)


def _rows(name: str, studies: list[optuna.Study]) -> dict[str, Row]:
    rows: dict[str, Row] = {}
    for study in studies:
        meta = study_meta(study)
        key = _benchmark_key(meta.data_kind, meta.data_root)
        metric, direction = _objective(study)
        row = rows.get(key)
        if row is None:
            row = rows[key] = Row(name, (), metric, direction)
        if meta.method and meta.method not in row.methods:
            row.methods = (*row.methods, meta.method)
        row.studies.append(study.study_name)
        task = meta.task or study.study_name
        if task in row.tasks:
            raise UserError(f"compare: NAME: {name!r} has two studies for task {task} on {key}; expected "
                            f"one study per task")
        row.tasks.append(task)
        cell = _test_cell(study, metric) or _val_cell(study)
        if cell is not None:
            row.cells[task] = cell
        _add_search_cost(row, study)
    return rows


def compare_studies(names: Sequence[str], *, storage: str | None = None) -> Comparison:
    """Read the studies of every NAME and compute the tables, differences and tests; writes nothing."""
    if not names:
        raise UserError("compare: NAME: none given; expected at least one study-file or study name")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = store.resolve_storage_url(storage)
    rdb = store.open_storage(url, create=False, source="--storage" if storage else "storage")
    resolved = _resolve(rdb, names)
    by_key: dict[str, list[Row]] = {}
    for name, study_names in resolved.items():
        studies = [optuna.load_study(study_name=n, storage=rdb) for n in study_names]
        for key, row in _rows(name, studies).items():
            by_key.setdefault(key, []).append(row)
    benchmarks = []
    for key, rows in by_key.items():
        kind = key.partition("-")[0]
        tasks = _column_order(kind, {t for r in rows for t in r.tasks})
        bench = Benchmark(key, _benchmark_title(key), kind, tasks, _groups(key, tasks), rows)
        bench.paper = paper_row(kind, tasks) if key in _ORDER else None
        bench.pairs = [_pair(a, b, tasks) for a, b in itertools.combinations(rows, 2)]
        benchmarks.append(bench)
    return Comparison(list(resolved), store.describe_storage(url), benchmarks)
