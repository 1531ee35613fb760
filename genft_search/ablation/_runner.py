"""Running an ablation: per task, one Optuna study with a grid over variant × seed, run by the engine.

Each task gets its own study (``<name>/<task>``), because the base setting (paper's, or a search's
best) differs per task. The engine (:func:`genft_search.tune.run_plan`) runs the grids through Ray,
stores every trial and resumes an interrupted ablation like any study; the table is then recomputed
from what the store holds.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import optuna

from genft_search import store
from genft_search.ablation._config import AblationConfig, load_ablation_config
from genft_search.ablation._table import AblationTable, ablation_table
from genft_search.config import RESERVED_KEYS, StudyConfig, parse_study_config
from genft_search.errors import UserError
from genft_search.method import GenFTConfig
from genft_search.paper import paper_setting

__all__ = ["base_setting", "run_ablation", "task_study_config", "variant_configs"]

DEFAULT_OUT_DIR = "reports"
_NOT_BASE = {*RESERVED_KEYS, "seed", "ablation"}


def _family(kind: str) -> str:
    return "text" if kind == "glue" else "vit"


def _best_setting(config: AblationConfig, task: str, url: str) -> dict[str, Any]:
    rdb = store.open_storage(url, create=False, source=f"{config.source}: storage")
    study = store.find_study(rdb, str(config.spec.from_study), task=task,
                             source=f"{config.source}: from_study")
    name = study.study_name
    if len(study.directions) > 1:
        raise UserError(
            f"{config.source}: from_study: study {name!r} has several objectives, so no single "
            "best trial; expected a single-objective study"
        )
    best = store.best_trials(study)
    if not best:
        raise UserError(
            f"{config.source}: from_study: study {name!r} has no finished trial yet; "
            "expected a study with at least one COMPLETE trial"
        )
    return store.trial_config(study, best[0])


def base_setting(config: AblationConfig, task: str, storage: str | None = None) -> dict[str, Any]:
    """The hyperparameters every variant of ``task`` starts from: the base, then the file's ``fixed``."""
    spec = config.spec
    kind = config.study.data.kind
    if spec.base == "paper":
        row = paper_setting(kind, task)
        if row is None:
            raise UserError(
                f"{config.source}: base: the paper reports no setting for task {task!r} of {kind}; "
                "expected base: fixed or best for it"
            )
        base = dict(row)
    elif spec.base == "best":
        base = _best_setting(config, task, store.resolve_storage_url(storage, config.study.storage))
    else:
        base = {}
    base.update(config.study.fixed)
    return {k: v for k, v in base.items() if k not in _NOT_BASE}


def variant_configs(config: AblationConfig, base: dict[str, Any]) -> dict[str, GenFTConfig]:
    """Each variant's GenFT config as the trainable will build it (method library's rules, e.g. 0 → 8)."""
    family = _family(config.study.data.kind)
    out = {}
    for variant in config.variants:
        try:
            out[variant] = GenFTConfig.from_mapping({**base, "ablation": variant}).resolve(family)
        except ValueError as exc:
            raise UserError(f"{config.source}: fixed: {exc} (variant {variant})") from None
    return out


def task_study_config(config: AblationConfig, task: str, base: dict[str, Any]) -> StudyConfig:
    """The engine's study for one task: a grid over ``ablation`` × ``seed`` with ``base`` fixed."""
    raw = copy.deepcopy(config.raw)
    raw["data"] = {**raw["data"], "tasks": [task]}
    raw["space"] = "none"
    raw["params"] = {"ablation": {"choice": config.variants}, "seed": {"choice": config.seeds}}
    raw["fixed"] = base
    raw["sampler"] = {"name": "grid"}
    raw["scheduler"] = {"name": "fifo"}
    raw["budget"] = {**(raw.get("budget") or {}), "n_trials": len(config.variants) * len(config.seeds)}
    return parse_study_config(raw, config.source)


def _stored(config: AblationConfig, base: dict[str, Any]) -> dict[str, Any]:
    return {**config.describe(), "setting": base}


def _check_resume(config: AblationConfig, rdb: optuna.storages.RDBStorage | None, name: str,
                  info: dict[str, Any]) -> None:
    """Refuse to continue an ablation started with other settings (reads only)."""
    if rdb is None or name not in store.study_names(rdb):
        return
    old = store.StudyRecord.read(optuna.load_study(study_name=name, storage=rdb)).ablation
    if old is None:
        raise UserError(
            f"{config.source}: name: study {name!r} exists and is not an ablation; "
            "expected a new name for this ablation"
        )
    for key in ("base", "variants", "seeds", "setting"):
        if old.get(key) != info.get(key):
            raise UserError(
                f"{config.source}: {key if key != 'setting' else 'fixed'}: ablation {name!r} was "
                f"started with another {key} ({old.get(key)!r}); expected the same, or a new name"
            )


def run_ablation(
    path: str | os.PathLike[str],
    *,
    storage: str | None = None,
    address: str | None = None,
    out_dir: str | os.PathLike[str] | None = None,
    progress: bool = True,
    runs_dir: str | os.PathLike[str] | None = None,
) -> AblationTable:
    """Run (or resume) the ablation of ``path``; write its table as Markdown, CSV and LaTeX.

    Everything (file, bases, variants, data, existing studies) is checked before anything is written;
    the engine then runs one planned grid study per task (:func:`genft_search.tune.run_plan`).

    Args:
        path: the ablation file.
        storage: the ``--storage`` URL (else the file's, ``$GENFT_STORAGE`` or the default).
        address: a Ray cluster to run on; a local Ray otherwise.
        out_dir: where the tables go (``reports/`` by default).
        progress: show the progress line.
        runs_dir: trial checkpoints and Ray's experiment state (see :func:`genft_search.tune.run_study`).

    Returns:
        The table (``str()`` of it is the Markdown), recomputed from the stored trials.

    Raises:
        UserError: a bad ablation file (paper Table 4's variants are the ones it may name), base setting,
            data or existing study; raised before anything is written.
    """
    from genft_search.tune import plan_study, run_plan

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    config = load_ablation_config(path)
    url = store.resolve_storage_url(storage, config.study.storage)
    probe = store.probe_storage(url, source=f"{config.source}: storage")
    plans = []
    for task in config.tasks:
        base = base_setting(config, task, url)
        variant_configs(config, base)
        plan = plan_study(task_study_config(config, task, base))
        plan.ablation = _stored(config, base)
        _check_resume(config, probe, plan.config.study_name(task), plan.ablation)
        plans.append(plan)
    studies = run_plan(plans, storage=url, address=address, progress=progress, runs_dir=runs_dir)
    table = ablation_table([studies[task] for task in config.tasks], config.name)
    table.write(Path(out_dir) if out_dir is not None else Path(DEFAULT_OUT_DIR))
    return table
