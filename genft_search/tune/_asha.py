"""ASHA whose rungs hold every runner's trials, read from the study store.

Ray Tune's ``AsyncHyperBandScheduler`` records rung values in the driver's memory, so two drivers on one
study (two machines running ``genft-search run`` against the same PostgreSQL study) would each compare a
trial only with their own trials, and a resumed run would start with empty rungs. This one keeps Ray's
rule (a trial reaching a rung continues when its value is in the top ``1/reduction_factor`` of the
values recorded there), but before each decision it fills the rung from the study's intermediate values:
every trial of the study that has reported an epoch at or past the rung, whichever driver ran it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from optuna.trial import FrozenTrial
from ray.tune.schedulers import AsyncHyperBandScheduler

__all__ = ["StoreASHA"]

_STORED = "optuna#"  # rung keys of trials read from the store (Ray's own keys are trial ids)


def _value_at(trial: FrozenTrial, milestone: float) -> float | None:
    """The value a trial reported at the first epoch at or past ``milestone`` (what Ray's ASHA records)."""
    steps = [step for step in trial.intermediate_values if step >= milestone]
    return trial.intermediate_values[min(steps)] if steps else None


class StoreASHA(AsyncHyperBandScheduler):
    """Ray Tune's ASHA with rung statistics from the study's intermediate values (one bracket).

    Without :meth:`share` it is Ray's ASHA unchanged (planning and tests that build it alone).
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if len(self._brackets) != 1:
            raise ValueError("brackets: rung statistics are shared through the study store for one "
                             "bracket only; expected brackets: 1")
        self._trials: Callable[[], Sequence[FrozenTrial]] | None = None
        self._number_of: Callable[[str], int | None] = lambda trial_id: None
        self._numbers: dict[str, int | None] = {}  # Ray trial id -> Optuna number, for decided trials

    def share(self, trials: Callable[[], Sequence[FrozenTrial]],
              number_of: Callable[[str], int | None]) -> None:
        """Read rungs from ``trials()`` (the study's trials); ``number_of`` maps a Ray trial id to its
        Optuna trial number (so a trial is not compared with itself)."""
        self._trials = trials
        self._number_of = number_of

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict[str, Any]) -> str:
        if (self._trials is not None and self._time_attr in result and self._metric in result
                and trial.trial_id in self._trial_info):
            self._fill_rungs(trial, float(result[self._time_attr]))
        decision: str = super().on_trial_result(tune_controller, trial, result)
        return decision

    def _fill_rungs(self, trial: Any, epoch: float) -> None:
        bracket = self._trial_info[trial.trial_id]
        pending = [milestone for milestone, recorded in bracket._rungs
                   if epoch >= milestone and trial.trial_id not in recorded]
        if not pending or self._trials is None:
            return  # no rung decision in this result: nothing to read
        own = self._number_of(trial.trial_id)
        self._numbers[trial.trial_id] = own
        trials = self._trials()
        for milestone, recorded in bracket._rungs:
            # this driver's decisions stay as Ray recorded them; every other trial comes from the store
            local = {key: value for key, value in recorded.items() if not str(key).startswith(_STORED)}
            skip = {self._numbers.get(key) for key in local} | {own}
            recorded.clear()
            recorded.update(local)
            for other in trials:
                if other.number in skip:
                    continue
                value = _value_at(other, milestone)
                if value is not None:
                    recorded[f"{_STORED}{other.number}"] = float(self._metric_op or 1.0) * value
