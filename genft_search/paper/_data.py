"""Reads ``paper.yaml`` (package data beside this module) into the lookups the rest of the project uses."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from types import MappingProxyType
from typing import Any

import yaml

__all__ = [
    "ACTIVATION_CODES",
    "INIT_CODES",
    "PAPER_ABLATION",
    "PAPER_PARAMS_M",
    "PaperBenchmark",
    "paper_ablation",
    "paper_benchmark",
    "paper_result",
    "paper_setting",
]

#: row columns that describe the paper's run of a task rather than set a hyperparameter
_FACTS = frozenset({"minutes", "gpu_mem_gb", "result", "metric", "num_classes", "group"})


@cache
def _data() -> dict[str, Any]:
    text = resources.files(__package__).joinpath("paper.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


def _frozen(mapping: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return MappingProxyType(dict(mapping or {}))


#: the paper's short codes (Appendix B tables) for initialisations and activations
INIT_CODES: Mapping[str, str] = _frozen(_data()["codes"]["init"])
ACTIVATION_CODES: Mapping[str, str] = _frozen(_data()["codes"]["activation"])
_DECODE = {"init_a": INIT_CODES, "init_b": INIT_CODES, "sigma1": ACTIVATION_CODES, "sigma2": ACTIVATION_CODES}


@dataclass(frozen=True)
class PaperBenchmark:
    """One benchmark as the paper reports it (arXiv 2506.11042, §4 and Appendix B)."""

    kind: str
    model: str
    #: the tasks in the paper's order
    tasks: tuple[str, ...]
    #: VTAB-1k group per task (natural, specialized, structured); empty for the other benchmarks
    groups: Mapping[str, str]
    #: the recipe kept fixed across tasks (optimizer, seed, batch size, warm-up, ...)
    training: Mapping[str, Any]
    #: the reported means (per VTAB group and ``average``)
    means: Mapping[str, float]
    #: GenFT's Params column (M), head excluded
    params_m: float
    #: other methods' reported means, by this project's short name
    baselines: Mapping[str, float]
    #: the ablation variants' reported means (Table 4), empty where the paper ran none
    ablation_means: Mapping[str, float]


def _section(kind: str) -> dict[str, Any]:
    return _data()["benchmarks"].get(kind) or {}


@cache
def _rows(kind: str) -> dict[str, dict[str, Any]]:
    section = _section(kind)
    columns = section.get("columns") or []
    tasks = section.get("tasks") or {}
    return {task: dict(zip(columns, values, strict=True)) for task, values in tasks.items()}


@cache
def paper_benchmark(kind: str) -> PaperBenchmark | None:
    """The paper's figures for benchmark ``kind`` (``vtab1k``, ``fgvc``, ``glue``), or None."""
    section = _section(kind)
    if not section:
        return None
    rows = _rows(kind)
    return PaperBenchmark(
        kind=kind,
        model=section["model"],
        tasks=tuple(rows),
        groups=_frozen({task: row["group"] for task, row in rows.items() if "group" in row}),
        training=_frozen(section.get("training")),
        means=_frozen(section.get("means")),
        params_m=float(section["params_m"]),
        baselines=_frozen(section.get("baselines")),
        ablation_means=_frozen({v: float(e["mean"]) for v, e in (section.get("ablation") or {}).items()}),
    )


def paper_setting(kind: str, task: str) -> dict[str, Any] | None:
    """The paper's hyperparameters for ``task`` (Appendix B Tables 8-10) in this project's names and
    values (short codes spelled out), or None for a task the paper does not report.

    It is what ``warm_start: paper`` enqueues and an ablation's ``base: paper`` starts from.
    """
    row = _rows(kind).get(task)
    if row is None:
        return None
    setting = {k: _DECODE[k].get(v, v) if k in _DECODE else v for k, v in row.items() if k not in _FACTS}
    setting.update(_section(kind).get("every_task") or {})
    return setting


def paper_result(kind: str, task: str) -> tuple[float, str] | None:
    """The paper's score for ``task`` and what it measures, or None."""
    row = _rows(kind).get(task)
    if row is None:
        return None
    measures = str(_section(kind)["measures"]).format(metric=row.get("metric", "score"))
    return float(row["result"]), measures


def _ablation() -> tuple[dict[str, dict[str, dict[str, float]]], dict[str, dict[str, float]]]:
    per_task: dict[str, dict[str, dict[str, float]]] = {}
    params: dict[str, dict[str, float]] = {}
    for kind, section in _data()["benchmarks"].items():
        variants = section.get("ablation")
        if not variants:
            continue
        tasks = list(_rows(kind))
        top1 = {v: dict(zip(tasks, map(float, e["top1"]), strict=True)) for v, e in variants.items()}
        per_task[kind] = top1
        params[kind] = {v: float(e["params_m"]) for v, e in variants.items()}
    return per_task, params


#: ``{data kind: {variant: {task: top-1}}}``, the paper's ablations per task (Tables 12 and 13)
#: ``{data kind: {variant: Params (M)}}``, their benchmark-level parameter counts
PAPER_ABLATION, PAPER_PARAMS_M = _ablation()


def paper_ablation(kind: str, variant: str, task: str) -> float | None:
    """The paper's top-1 for ablation ``variant`` on ``task`` of benchmark ``kind``, or None."""
    return PAPER_ABLATION.get(kind, {}).get(variant, {}).get(task)
