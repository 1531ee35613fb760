"""The Ray Tune searcher over one Optuna study, by ask/tell (importing this module imports Ray).

Ray's own ``OptunaSearch`` tells a trial the scheduler stopped early as COMPLETE with its truncated
score; this one stores it PRUNED with its per-epoch intermediate values and the budget it reached, and a
failed trial FAIL with its reason.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any, TypeGuard

import optuna
from optuna.trial import TrialState
from ray.tune.search import Searcher

from genft_search import store
from genft_search.tune import _checkpoints
from genft_search.tune._budget import RunBudget
from genft_search.tune._plan import BUDGET_KEY, StudyPlan

__all__ = ["OptunaSearcher"]

logger = logging.getLogger("genft_search.tune")

#: result keys Ray Tune adds by itself (not the trainable's metrics)
_RAY_KEYS = frozenset({
    "done", "training_iteration", "trial_id", "date", "timestamp", "time_this_iter_s", "time_total_s",
    "pid", "hostname", "node_ip", "time_since_restore", "iterations_since_restore", "should_checkpoint",
    "checkpoint_dir_name", "experiment_tag", "config",
})


@dataclass
class _Live:
    trial: optuna.Trial
    config: dict[str, Any]
    reports: dict[int, list[Any]] = field(default_factory=dict)  # step -> the objectives' reported values
    last: dict[str, Any] | None = None
    started: float = field(default_factory=time.monotonic)
    resumed: list[int] = field(default_factory=list)  # the trials it retries (their checkpoints)


def is_finite(value: Any) -> TypeGuard[int | float]:
    """A real number that is not NaN or infinite (booleans are not numbers here)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


class OptunaSearcher(Searcher):
    """Ray Tune ``Searcher`` over one Optuna study via ask/tell.

    - ``suggest`` asks Optuna (under the study lock, so runners never exceed ``n_trials``) and returns
      the flat trial config; it answers ``FINISHED`` once finished plus running trials reach ``n_trials``.
    - every epoch's objective becomes an intermediate value (learning curves in Optuna's plots);
    - a trial that ends below its budget (``epochs``) is PRUNED, with ``budget`` in its user attrs;
    - a trial whose objective is missing or not finite, or which raised, is FAIL with ``fail_reason``;
    - every checkpoint a trial reports is kept durably until the trial is told; a retry of a trial
      whose runner died continues from it (``resumed_from_epoch``), its curve starting with the
      original's epochs (see :mod:`genft_search.tune._checkpoints`).
    """

    def __init__(self, study: optuna.Study, plan: StudyPlan, task: str, runner: store.Runner,
                 deadline: float | None = None, budget: RunBudget | None = None) -> None:
        objectives = plan.config.objectives
        mode = "max" if objectives[0].direction == "maximize" else "min"
        super().__init__(metric=objectives[0].metric, mode=mode)
        self.study: optuna.Study | None = study
        self._plan = plan
        self._space = plan.space
        self._base = plan.base_configs[task]
        self._objectives = objectives
        self._n_trials = plan.n_trials
        self._runner = runner
        self._deadline = deadline
        self._budget = budget
        self._resources = {"cpu": plan.config.resources.cpu, "gpu": plan.config.resources.gpu}
        self._live: dict[str, _Live] = {}
        self._errored: dict[str, _Live] = {}
        self._stopped: set[str] = set()
        self.changed = 0  # bumped on every tell (for the progress line)

    # pickling -------------------------------------------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        """What Ray pickles into ``tuner.pkl`` and its experiment state: names, never live objects.

        The study, its storage and sampler (Optuna 5.1's NSGA-II holds a ``threading.Lock``), the plan
        (whose config holds the storage URL and ``${VAR}``-expanded values) and the live trials stay in
        the driver. Ray never needs them back: the study store is the truth, and a resumed run asks it.
        """
        return {"_metric": self._metric, "_mode": self._mode, "study_name": self._study.study_name,
                "runner": self._runner.id}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.study = None  # a detached copy: it proposes nothing (see ``suggest``)

    # Ray Tune API ---------------------------------------------------------------------------------
    def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec: Any) -> bool:
        return True

    @property
    def _study(self) -> optuna.Study:
        assert self.study is not None, "a detached copy (unpickled by Ray) has no study"
        return self.study

    # Ray's stubs leave out the FINISHED string that its own Searcher API documents
    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:  # type: ignore[override]
        if self.study is None:  # unpickled by Ray: only the driver's own searcher may ask the store
            return self.FINISHED
        if self._budget is not None and self._budget.exhausted(self.running_since()):
            return self.FINISHED
        with store.study_lock(self.study):
            counts = store.state_counts(self.study)
            if counts["finished"] + counts["running"] >= self._n_trials:
                return self.FINISHED
            trial = self.study.ask()
            store.tag_runner(self.study, trial, self._runner)
            params = self._space.sample(trial)
        live = _Live(trial, {**self._base, **params})
        self._resume(live)
        self._live[trial_id] = live
        return live.config

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        live = self._live.get(trial_id)
        if live is not None:
            self._record(live, result)

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        live = self._live.pop(trial_id, None)
        if live is None:
            return
        if error:
            self._errored[trial_id] = live  # the reason arrives with the callback's on_trial_error
            return
        if result:
            self._record(live, result)
        self._finish(live, trial_id)

    # called by the run's callback ------------------------------------------------------------------
    def keep_checkpoint(self, trial_id: str, checkpoint: Any, step: Any) -> None:
        """Keep the checkpoint Ray persisted for a live trial, so a retry can continue from it."""
        live = self._live.get(trial_id)
        if live is None or not isinstance(step, (int, float)):
            return
        try:
            _checkpoints.keep(self._study.study_name, live.trial.number, checkpoint, int(step))
        except Exception as exc:  # a full or unreachable checkpoint folder costs resumability, not the run
            logger.warning("could not keep the checkpoint of trial %d: %s", live.trial.number, exc)

    def trial_number(self, trial_id: str) -> int | None:
        """The Optuna trial number of a live Ray trial (None once it is told)."""
        live = self._live.get(trial_id)
        return live.trial.number if live is not None else None

    def mark_started(self, trial_id: str) -> None:
        """Its device time starts now (a trial may wait for resources after ``suggest``)."""
        live = self._live.get(trial_id)
        if live is not None:
            live.started = time.monotonic()

    def running_since(self) -> list[float]:
        """Start times of the trials running now (what the device budget counts)."""
        return [live.started for live in self._live.values()]

    def mark_stopped(self, trial_id: str) -> None:
        self._stopped.add(trial_id)

    def fail(self, trial_id: str, reason: str, requeue: bool = False) -> None:
        """FAIL a trial that raised; ``requeue`` when it is not its fault (its worker or node died)."""
        live = self._errored.pop(trial_id, None) or self._live.pop(trial_id, None)
        if live is not None:
            self._tell_fail(live, reason, requeue=requeue)

    def abandon(self, reason: str, cut: bool = False) -> None:
        """Trials this runner can no longer finish (interrupt, timeout): FAIL and re-enqueue them
        (``cut``: the budget ran out, so a retry is re-enqueued again too)."""
        for trial_id in list(self._errored):
            self._tell_fail(self._errored.pop(trial_id), "the trial raised an error (no details)")
        for trial_id in list(self._live):
            live = self._live.pop(trial_id)
            self._tell_fail(live, reason, requeue=True, cut=cut)

    # internals -------------------------------------------------------------------------------------
    def _resume(self, live: _Live) -> None:
        """A retry starts from the newest checkpoint kept along its retry chain, with that curve."""
        chain = store.retry_chain(self._study, live.trial)
        for source in chain:
            found = _checkpoints.kept(self._study.study_name, source.number)
            if found is None:
                continue
            pad = [None] * (len(self._objectives) - 1)
            for step, value in sorted(source.intermediate_values.items()):
                if step <= found.step:
                    live.reports[step] = [value, *pad]
                    with contextlib.suppress(Exception):
                        live.trial.report(value, step)
            live.trial.set_user_attr(store.ATTR_RESUMED_FROM_EPOCH, found.step)
            live.config[_checkpoints.RESUME_KEY] = str(found.path)
            break
        live.resumed = [source.number for source in chain]

    def _forget_checkpoints(self, live: _Live) -> None:
        for number in [live.trial.number, *live.resumed]:
            _checkpoints.remove(self._study.study_name, number)

    def _record(self, live: _Live, result: dict[str, Any]) -> None:
        live.last = result
        step = result.get(BUDGET_KEY, result.get("training_iteration"))
        if not isinstance(step, (int, float)):
            return
        step = int(step)
        values = [result.get(o.metric) for o in self._objectives]
        if step in live.reports:
            return
        live.reports[step] = values
        value = values[0]
        if len(self._objectives) == 1 and is_finite(value):
            with contextlib.suppress(Exception):
                live.trial.report(float(value), step)

    def _finish(self, live: _Live, trial_id: str) -> None:
        result = live.last
        if not result or not live.reports:
            self._tell_fail(live, "the trial reported no result")
            return
        budget = max(live.reports)
        target = live.config.get("epochs")
        target = int(target) if is_finite(target) else self._plan.max_budget
        values = []
        for i, objective in enumerate(self._objectives):
            series = [(step, v[i]) for step, v in sorted(live.reports.items())]
            value = series[-1][1]
            if objective.scope == "best":
                finite = [v for _, v in series if is_finite(v)]
                if finite:
                    value = max(finite) if objective.direction == "maximize" else min(finite)
            if value is None:
                self._tell_fail(live, f"the trainable never reported the objective metric "
                                      f"{objective.metric!r}")
                return
            if not is_finite(value):
                self._tell_fail(live, f"non-finite objective {objective.metric}={value!r} at epoch {budget}")
                return
            values.append(float(value))
        attrs = live.trial
        attrs.set_user_attr(store.ATTR_BUDGET, budget)
        if target is not None:
            attrs.set_user_attr(store.ATTR_MAX_BUDGET, target)
        metrics = {k: v for k, v in result.items()
                   if k not in _RAY_KEYS and not k.startswith("config/") and is_finite(v)}
        attrs.set_user_attr(store.ATTR_METRICS, metrics)
        attrs.set_user_attr(store.ATTR_TRAIN_SECONDS, round(time.monotonic() - live.started, 3))
        short = target is not None and budget < target
        cut = self._budget.exhausted() if self._budget is not None else None
        if cut is None and self._deadline is not None and time.monotonic() >= self._deadline:
            cut = "stopped by budget.timeout before its last epoch"
        if cut is not None and (target is None or short):
            self._tell_fail(live, cut, requeue=True, cut=True)
            return
        self._store_cost(live)
        stopped_early = short or (target is None and trial_id in self._stopped)
        self._forget_checkpoints(live)
        try:
            if stopped_early:
                self._study.tell(live.trial, state=TrialState.PRUNED)
            else:
                self._study.tell(live.trial, values if len(values) > 1 else values[0])
        except RuntimeError as exc:
            # GridSampler calls Study.stop() once the grid is covered; outside optimize() that raises
            # after the trial is stored. The searcher stops by counting, so this is not an error.
            if "Study.stop" not in str(exc):
                logger.warning("could not store trial %d: %s", live.trial.number, exc)
        except (ValueError, optuna.exceptions.UpdateFinishedTrialError) as exc:
            logger.warning("could not store trial %d: %s", live.trial.number, exc)
        self.changed += 1

    def _store_cost(self, live: _Live) -> None:
        cost = store.cost_of(time.monotonic() - live.started, self._resources, live.last or {})
        with contextlib.suppress(Exception):
            live.trial.set_user_attr(store.ATTR_COST, cost)
            if self._budget is not None:
                self._budget.add(cost)

    def _tell_fail(self, live: _Live, reason: str, requeue: bool = False, cut: bool = False) -> None:
        retry = store.ATTR_RETRY_OF in (live.trial.user_attrs or {}) and not cut
        self._store_cost(live)
        try:
            live.trial.set_user_attr(store.ATTR_FAIL_REASON, reason[:1000])
            if live.reports:
                live.trial.set_user_attr(store.ATTR_BUDGET, max(live.reports))
            if requeue and not retry:
                live.trial.set_user_attr(store.ATTR_REQUEUED, True)
            self._study.tell(live.trial, state=TrialState.FAIL)
        except RuntimeError as exc:
            if "Study.stop" not in str(exc):
                logger.warning("could not store trial %d: %s", live.trial.number, exc)
                return
        except (ValueError, optuna.exceptions.UpdateFinishedTrialError) as exc:
            logger.warning("could not store trial %d: %s", live.trial.number, exc)
            return
        if not requeue:
            self._forget_checkpoints(live)  # the trial's own failure: no retry continues from them
        if requeue and not retry:
            retry_attrs = {store.ATTR_RETRY_OF: live.trial.number}
            self._study.enqueue_trial(dict(live.trial.params), user_attrs=retry_attrs)
        self.changed += 1


