"""What a report needs to know about a study, read from the user attrs the engine stores with it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from genft_search import store

__all__ = ["StudyMeta", "best_trial", "study_meta"]

_TRIAL_KEYS = ("method", "model", "data", "protocol")


@dataclass(frozen=True)
class StudyMeta:
    method: str | None = None
    protocol: str | None = None
    data_kind: str | None = None
    data_root: str | None = None
    task: str | None = None
    model: str | None = None
    metrics: list[str] = field(default_factory=list)
    fixed: dict[str, Any] = field(default_factory=dict)
    """The study's fixed trial-config values (hyperparameters the search did not vary)."""


def study_meta(study: optuna.Study) -> StudyMeta:
    """Read the engine's study attrs; studies made elsewhere (plain Optuna) give what they can."""
    record = store.StudyRecord.read(study)
    config = record.config
    data = config.get("data") or {}
    model = config.get("model") or {}
    metrics = [o.get("metric", "objective") for o in record.objective if isinstance(o, dict)]
    task = study.user_attrs.get("task") or data.get("task") or record.task
    return StudyMeta(
        method=record.method or config.get("method"),
        protocol=record.protocol or config.get("protocol"),
        data_kind=data.get("kind"),
        data_root=data.get("root"),
        task=task,
        model=model.get("name") if isinstance(model, dict) else None,
        metrics=metrics,
        fixed={k: v for k, v in config.items() if k not in _TRIAL_KEYS},
    )


def best_trial(study: optuna.Study) -> FrozenTrial | None:
    """The COMPLETE trial best on the first objective (with several objectives, the one reports show)."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        return None
    sign = 1 if study.directions[0] == optuna.study.StudyDirection.MAXIMIZE else -1
    return max(complete, key=lambda t: sign * t.values[0])
