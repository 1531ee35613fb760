"""When a study's budget is spent: ``n_trials``, ``timeout`` (wall clock of one run) or ``device_hours``
(GPU-hours when trials hold GPUs, else CPU-hours, summed over every trial of the study, pruned and
failed included), whichever comes first.

Trials still running when the time or device budget runs out are cut: stored FAIL, re-enqueued, and not
counted towards ``n_trials`` (they are the budget's doing, not the setting's). Their device-seconds
count, since they were spent.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

import optuna

from genft_search import store

__all__ = ["RunBudget", "budget_stopper"]

#: how often the device-seconds other runners stored are read again (seconds)
_REFRESH_S = 10.0


class RunBudget:
    """The time and device budget of one run of one study (``n_trials`` is counted by the searcher)."""

    def __init__(self, study: optuna.Study, resources: Mapping[str, Any], timeout: float | None,
                 device_hours: float | None) -> None:
        self._study = study
        self.deadline = time.monotonic() + timeout if timeout else None
        self.limit_s = device_hours * 3600 if device_hours else None
        gpu, cpu = float(resources.get("gpu") or 0), float(resources.get("cpu") or 0)
        self._gpu = gpu > 0
        self.held = gpu if gpu > 0 else cpu
        self._stored = 0.0
        self._own = 0.0  # stored by this runner since the last refresh
        self._read_at = -float("inf")
        self.cut_reason: str | None = None

    def _spent_stored(self) -> float:
        now = time.monotonic()
        if now - self._read_at >= _REFRESH_S:
            cost = store.study_cost(self._study)
            self._stored = cost.gpu_seconds if self._gpu else cost.cpu_seconds
            self._own, self._read_at = 0.0, now
        return self._stored + self._own

    def add(self, cost: Mapping[str, Any]) -> None:
        """Count a cost this runner just stored (until the next read of the store includes it)."""
        if self.limit_s is not None and (cost.get("device") != "cpu") == self._gpu:
            self._own += float(cost.get("device_seconds") or 0.0)

    def spent(self, running: Iterable[float]) -> float:
        """Device-seconds spent: stored trials plus the running ones (``running``: their start times)."""
        now = time.monotonic()
        return self._spent_stored() + sum(max(now - t, 0.0) for t in running) * self.held

    def exhausted(self, running: Iterable[float] = ()) -> str | None:
        """Why no more trials may run (and running ones are cut), or None while budget is left."""
        if self.cut_reason is None:
            if self.deadline is not None and time.monotonic() >= self.deadline:
                self.cut_reason = "stopped by budget.timeout before its last epoch"
            elif self.limit_s is not None and self.spent(running) >= self.limit_s:
                self.cut_reason = (f"stopped by budget.device_hours ({self.limit_s / 3600:g} "
                                   f"{'GPU' if self._gpu else 'CPU'}-hours spent) before its last epoch")
        return self.cut_reason


def budget_stopper(budgets: Mapping[str, tuple[RunBudget, Any]], task_of: Any) -> Any:
    """A Ray Tune ``Stopper`` over the run's tasks: ``budgets`` maps a task to its budget and a
    ``running()`` giving the start times of its trials running now; ``task_of(trial_id)`` names a trial's
    task. A trial stops once its task's budget is spent, the experiment once every task's is."""
    from ray import tune

    class _BudgetStopper(tune.Stopper):
        # no closures over the budget: Ray cloudpickles this class by value with its experiment state
        def __init__(self, budgets: Mapping[str, tuple[RunBudget, Any]] | None, task_of: Any) -> None:
            self.budgets, self.task_of = budgets, task_of

        def __getstate__(self) -> dict[str, Any]:
            """The budgets (their studies, the sampler) stay in the driver; a detached copy stops nothing
            (the store is the truth on resume)."""
            return {}

        def __setstate__(self, state: dict[str, Any]) -> None:
            self.budgets, self.task_of = None, None

        def _spent(self, task: str | None) -> bool:
            part = (self.budgets or {}).get(task) if task is not None else None
            return part is not None and part[0].exhausted(part[1]()) is not None

        def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
            return self.task_of is not None and self._spent(self.task_of(trial_id))

        def stop_all(self) -> bool:
            return bool(self.budgets) and all(self._spent(task) for task in self.budgets or {})

    return _BudgetStopper(budgets, task_of)
