"""Small real Optuna studies in SQLite for ``compare``: the user attrs ``genft-search run`` writes, trials
with values, metrics, durations and cost (pruned and failed among them), and per-seed test evaluations.

Every number comes from :data:`SPEC`, so a test can recompute each cell without reading the store.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

VTAB = ("cifar", "dtd", "svhn", "eurosat", "resisc45", "kitti", "dmlab")
START = dt.datetime(2026, 11, 1, 8, 0, 0)


@dataclass(frozen=True)
class TrialSpec:
    state: TrialState
    value: float | None
    seconds: float
    params: int
    cost: dict[str, Any] | None = None


@dataclass(frozen=True)
class StudySpec:
    file: str
    method: str
    task: str
    root: str
    trials: tuple[TrialSpec, ...]
    evaluations: tuple[dict[str, Any], ...] = ()
    legacy: dict[str, Any] | None = None
    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.file}/{self.task}"


def _gen(i: int, task: str) -> StudySpec:
    gpu = {"device": "cuda"}
    trials = (
        TrialSpec(TrialState.COMPLETE, 60.0 + i, 600.0, 270_000 + i, {**gpu, "device_seconds": 600.0}),
        TrialSpec(TrialState.PRUNED, None, 200.0, 250_000, {**gpu, "device_seconds": 200.0}),
        TrialSpec(TrialState.FAIL, None, 50.0, 250_000, {**gpu, "device_seconds": 50.0}),
        TrialSpec(TrialState.COMPLETE, 55.0 + i, 580.0, 260_000, {**gpu, "device_seconds": 580.0}),
    )
    tests = {1: 70.0 + 2 * i, 2: 70.5 + 2 * i, 3: 69.0 + 2 * i + 0.1 * i}
    evaluations = tuple({"seed": s, "trial": 0, "metrics": {"test_top1": v, "trainable_params": 270_000 + i}}
                        for s, v in tests.items())
    # an older evaluation of another trial: the last entry's trial is the chosen one
    evaluations = ({"seed": 1, "trial": 3, "metrics": {"test_top1": 10.0}}, *evaluations)
    return StudySpec("gen", "genft", task, "/data/vtab-1k", trials, evaluations)


def _lora(i: int, task: str) -> StudySpec:
    trials = (
        TrialSpec(TrialState.COMPLETE, 58.0 + i, 400.0, 300_000),
        TrialSpec(TrialState.PRUNED, None, 100.0, 300_000),
    )
    seeds = (4, 5) if task == "dmlab" else (1, 2, 3)  # dmlab: other seeds, so Welch's interval
    tests = {s: 69.0 + 2 * i - 0.3 * k - (0.2 * i if k == 2 else 0.0) for k, s in enumerate(seeds)}
    evaluations = tuple({"seed": s, "trial": 0, "metrics": {"test_top1": v}} for s, v in tests.items())
    resources = {"resources": {"gpu": 0.5}}  # no cost stored: estimated from wall time
    return StudySpec("lo", "lora", task, "/data/vtab-1k", trials, evaluations, attrs=resources)


def _linear(i: int, task: str) -> StudySpec:
    trials = (TrialSpec(TrialState.COMPLETE, 40.0 + i, 120.0, 0),
              TrialSpec(TrialState.COMPLETE, 41.5 + i, 90.0, 0))
    return StudySpec("lin", "linear", task, "/data/vtab-1k", trials)


def _builtin(file: str, method: str, task: str, value: float, legacy: float | None) -> StudySpec:
    trials = (TrialSpec(TrialState.COMPLETE, value, 30.0, 1000, {"device": "cpu", "device_seconds": 30.0}),
              TrialSpec(TrialState.PRUNED, None, 10.0, 1000, {"device": "cpu", "device_seconds": 10.0}))
    test = {"trial": 0, "metrics": {"test_top1": legacy, "score": legacy}} if legacy is not None else None
    return StudySpec(file, method, task, "builtin", trials, legacy=test)


SPEC: tuple[StudySpec, ...] = (
    *(_gen(i, t) for i, t in enumerate(VTAB)),
    *(_lora(i, t) for i, t in enumerate(VTAB)),
    *(_linear(i, t) for i, t in enumerate(VTAB[:2])),
    _builtin("qs", "genft", "dsprites_loc", 43.5, 47.25),
    _builtin("qs", "genft", "dsprites_ori", 12.0, None),
    _builtin("qs_lora", "lora", "dsprites_loc", 57.0, None),
    _builtin("qs_lora", "lora", "dsprites_ori", 16.5, None),
)


def _attrs(spec: StudySpec) -> dict[str, Any]:
    config = {"method": spec.method, "model": {"name": "vit_base_patch16_224"},
              "data": {"kind": "vtab1k", "root": spec.root, "task": spec.task},
              "protocol": "honest", "seed": 42, "epochs": 10}
    attrs: dict[str, Any] = {
        "config": config, "method": spec.method, "task": spec.task, "study_file": spec.file,
        "protocol": "honest", "objective": [{"metric": "val_top1", "direction": "maximize", "scope": "last"}],
        "n_trials": len(spec.trials), **spec.attrs,
    }
    if spec.evaluations:
        attrs["test_evaluations"] = list(spec.evaluations)
    if spec.legacy is not None:
        attrs["test_evaluation"] = spec.legacy
    return attrs


def make_compare_studies(url: str) -> None:
    """Write every study of :data:`SPEC`, plus an ablation study ``abl/kitti``, into the store at ``url``."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for spec in SPEC:
        study = optuna.create_study(study_name=spec.name, storage=url, direction="maximize")
        for key, value in _attrs(spec).items():
            study.set_user_attr(key, value)
        for k, t in enumerate(spec.trials):
            metrics = {"val_top1": t.value, "trainable_params": t.params} if t.value is not None else {}
            user_attrs: dict[str, Any] = {"metrics": metrics, "budget": 10}
            if t.cost is not None:
                user_attrs["cost"] = t.cost
            frozen = create_trial(state=t.state, value=t.value if t.state == TrialState.COMPLETE else None,
                                  params={"lr": 1e-3 * (k + 1)},
                                  distributions={"lr": FloatDistribution(1e-4, 1e-1)}, user_attrs=user_attrs)
            frozen.datetime_start = START + dt.timedelta(hours=k)
            frozen.datetime_complete = frozen.datetime_start + dt.timedelta(seconds=t.seconds)
            study.add_trial(frozen)
    ablation = optuna.create_study(study_name="abl/kitti", storage=url, direction="maximize")
    ablation.set_user_attr("ablation", {"variants": ["full"], "seeds": [1]})
    ablation.set_user_attr("study_file", "abl")
