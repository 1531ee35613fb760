"""Several tasks' studies in one Ray Tune experiment, so the cluster stays busy while any task has work.

Run one after another, each task's ASHA tail (a few long trials) leaves most slots idle. Here one
``Tuner`` runs every task of a study file: :class:`TaskSearcher` asks the tasks' own
:class:`~genft_search.tune._searcher.OptunaSearcher` in turn (at most ``tasks_at_once`` tasks proposing at
a time, the next one joining when one is done), :class:`TaskScheduler` hands each trial to its own
task's scheduler (ASHA rungs per task), and :func:`routing_callback` sends each trial's events to its
task's callback. Importing this module imports Ray.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ray.tune import Callback
from ray.tune.schedulers import FIFOScheduler, TrialScheduler
from ray.tune.search import Searcher

from genft_search.tune._searcher import OptunaSearcher

__all__ = ["TaskScheduler", "TaskSearcher", "routing_callback"]


class TaskSearcher(Searcher):
    """The tasks' searchers as one: round-robin over the active tasks, each trial remembered by task."""

    def __init__(self, searchers: Mapping[str, OptunaSearcher], tasks_at_once: int) -> None:
        first = next(iter(searchers.values()))
        super().__init__(metric=first.metric, mode=first.mode)
        self.searchers = dict(searchers)
        self._waiting = list(self.searchers)
        self._active: list[str] = []
        self._at_once = max(1, tasks_at_once)
        self._turn = 0
        self.owner: dict[str, str] = {}  # Ray trial id -> task
        self._fill()

    def __getstate__(self) -> dict[str, Any]:
        """Names only, as :class:`OptunaSearcher` (Ray pickles searchers; the store is the truth)."""
        return {"_metric": self._metric, "_mode": self._mode, "tasks": list(self.searchers)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.searchers, self._active, self._waiting, self.owner = {}, [], [], {}

    def _fill(self) -> None:
        while self._waiting and len(self._active) < self._at_once:
            self._active.append(self._waiting.pop(0))

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec: Any) -> bool:
        return True

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:  # type: ignore[override]
        tried = 0
        while self._active and tried < len(self._active):
            task = self._active[self._turn % len(self._active)]
            answer = self.searchers[task].suggest(trial_id)
            if answer == Searcher.FINISHED:
                self._active.remove(task)  # this task starts no more trials; the next one may join
                self._fill()
                continue
            self._turn += 1
            tried += 1
            if isinstance(answer, dict):
                self.owner[trial_id] = task
                return answer
        return None if self._active else Searcher.FINISHED

    def searcher_of(self, trial_id: str) -> OptunaSearcher | None:
        task = self.owner.get(trial_id)
        return self.searchers.get(task) if task is not None else None

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        searcher = self.searcher_of(trial_id)
        if searcher is not None:
            searcher.on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None,
                          error: bool = False) -> None:
        searcher = self.searcher_of(trial_id)
        if searcher is not None:
            searcher.on_trial_complete(trial_id, result, error)


class TaskScheduler(FIFOScheduler):
    """Each trial's scheduler calls go to its own task's scheduler (rungs and stops per task)."""

    def __init__(self, schedulers: Mapping[str, TrialScheduler], searcher: TaskSearcher) -> None:
        super().__init__()
        self._schedulers = dict(schedulers)
        self._searcher = searcher

    def _of(self, trial: Any) -> TrialScheduler | None:
        task = self._searcher.owner.get(trial.trial_id)
        return self._schedulers.get(task) if task is not None else None

    def set_search_properties(self, metric: str | None, mode: str | None, **spec: Any) -> bool:
        return all(s.set_search_properties(metric, mode, **spec) for s in self._schedulers.values())

    def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
        scheduler = self._of(trial)
        if scheduler is not None:
            scheduler.on_trial_add(tune_controller, trial)

    def on_trial_error(self, tune_controller: Any, trial: Any) -> None:
        scheduler = self._of(trial)
        if scheduler is not None:
            scheduler.on_trial_error(tune_controller, trial)

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict[str, Any]) -> str:
        scheduler = self._of(trial)
        if scheduler is None:
            return TrialScheduler.CONTINUE
        decision: str = scheduler.on_trial_result(tune_controller, trial, result)
        return decision

    def on_trial_complete(self, tune_controller: Any, trial: Any, result: dict[str, Any]) -> None:
        scheduler = self._of(trial)
        if scheduler is not None:
            scheduler.on_trial_complete(tune_controller, trial, result)

    def on_trial_remove(self, tune_controller: Any, trial: Any) -> None:
        scheduler = self._of(trial)
        if scheduler is not None:
            scheduler.on_trial_remove(tune_controller, trial)

    def debug_string(self) -> str:
        return "; ".join(f"{task}: {s.debug_string()}" for task, s in self._schedulers.items())


def routing_callback(callbacks: Mapping[str, Callback], searcher: TaskSearcher) -> Callback:
    """One Ray callback: a trial's events to its task's callback, the periodic refresh to one."""

    def owner(trial: Any) -> Callback | None:
        task = searcher.owner.get(trial.trial_id)
        return callbacks.get(task) if task is not None else None

    class _Route(Callback):
        def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            target = owner(trial)
            if target is not None:
                target.on_trial_start(iteration, trials, trial, **info)

        def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            target = owner(trial)
            if target is not None:
                target.on_trial_error(iteration, trials, trial, **info)

        def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            target = owner(trial)
            if target is not None:
                target.on_trial_complete(iteration, trials, trial, **info)

        def on_checkpoint(self, iteration: int, trials: list, trial: Any, checkpoint: Any,
                          **info: Any) -> None:
            target = owner(trial)
            if target is not None:
                target.on_checkpoint(iteration, trials, trial, checkpoint, **info)

        def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
            # every task's callback draws all the lines (its ``after``): one of them is enough
            next(iter(callbacks.values())).on_step_end(iteration, trials, **info)

    return _Route()
