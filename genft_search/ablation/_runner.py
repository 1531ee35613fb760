"""Running an ablation: per task, one Optuna study with a grid over variant × seed, run by the engine.

Each task gets its own study (``<name>/<task>``), because the base setting (paper's, or a search's
best) differs per task. The engine (:func:`genft_search.tune.run_study`) runs the grid through Ray,
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
from genft_search.ablation._table import ABLATION_ATTR, AblationTable, ablation_table
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
    names = store.study_names(rdb)
    wanted = str(config.spec.from_study)
    name = next((n for n in (f"{wanted}/{task}", wanted) if n in names), None)
    if name is None:
        raise UserError(
            f"{config.source}: from_study: no study {wanted}/{task} (or {wanted}) in "
            f"{store.redact_url(url)}; expected one of {', '.join(names) or '(none yet)'}"
        )
    study = optuna.load_study(study_name=name, storage=rdb)
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


def _check_resume(
    config: AblationConfig, rdb: optuna.storages.RDBStorage, name: str, info: dict[str, Any]
) -> None:
    if name not in store.study_names(rdb):
        return
    old = optuna.load_study(study_name=name, storage=rdb).user_attrs.get(ABLATION_ATTR)
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


def _finished(rdb: optuna.storages.RDBStorage, name: str, n_trials: int) -> bool:
    """Whether a resumed task already has its whole grid (then Ray need not start for it)."""
    if name not in store.study_names(rdb):
        return False
    study = optuna.load_study(study_name=name, storage=rdb)
    running = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    return not running and store.counted_trials(study) >= n_trials


def run_ablation(
    path: str | os.PathLike[str],
    *,
    storage: str | None = None,
    address: str | None = None,
    out_dir: str | os.PathLike[str] | None = None,
    progress: bool = True,
) -> AblationTable:
    """Run (or resume) the ablation of ``path``; write its table as Markdown, CSV and LaTeX to ``out_dir``.

    Everything (file, bases, variants, data, existing studies) is checked before anything is written.
    Returns the table (``str()`` of it is the Markdown), recomputed from the stored trials.
    """
    from genft_search.tune import ensure_ray, plan_study, run_study

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    config = load_ablation_config(path)
    url = store.resolve_storage_url(storage, config.study.storage)
    plans: dict[str, tuple[StudyConfig, dict[str, Any]]] = {}
    for task in config.tasks:
        base = base_setting(config, task, url)
        variant_configs(config, base)
        study_config = task_study_config(config, task, base)
        plan_study(study_config)
        plans[task] = (study_config, _stored(config, base))
    rdb = store.open_storage(url, create=True, source=f"{config.source}: storage")
    for task, (study_config, info) in plans.items():
        _check_resume(config, rdb, study_config.study_name(task), info)
    pending = {t: p for t, p in plans.items() if not _finished(rdb, p[0].study_name(t), p[0].budget.n_trials)}
    started = ensure_ray(address) if pending else False
    try:
        for task, (study_config, info) in pending.items():
            study = optuna.create_study(
                study_name=study_config.study_name(task),
                storage=rdb,
                directions=study_config.directions,
                load_if_exists=True,
            )
            study.set_user_attr(ABLATION_ATTR, info)
            run_study(study_config, storage=url, address=address, progress=progress)
    finally:
        if started:
            import ray

            ray.shutdown()
    studies = [optuna.load_study(study_name=c.study_name(t), storage=rdb) for t, (c, _) in plans.items()]
    table = ablation_table(studies, config.name)
    table.write(Path(out_dir) if out_dir is not None else Path(DEFAULT_OUT_DIR))
    return table
