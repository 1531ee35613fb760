"""The Ray Tune searcher over one Optuna study, by ask/tell (importing this module imports Ray).

Ray's own ``OptunaSearch`` tells a trial the scheduler stopped early as COMPLETE with its truncated
score; this one stores it PRUNED with its per-epoch intermediate values and the budget it reached, and a
failed trial FAIL with its reason.
"""

from __future__ import annotations

import contextlib
import logging
import math
import sys
import time
from dataclasses import dataclass, field
from typing import Any, TypeGuard

import optuna
from optuna.trial import TrialState
from ray.tune.search import Searcher

from genft_search import store
from genft_search.errors import StoreUnavailable
from genft_search.tune import _checkpoints
from genft_search.tune._budget import RunBudget
from genft_search.tune._plan import BUDGET_KEY, StudyPlan

__all__ = ["MAX_LOST_RETRIES", "OptunaSearcher"]

logger = logging.getLogger("genft_search.tune")

#: result keys Ray Tune adds by itself (not the trainable's metrics)
_RAY_KEYS = frozenset({
    "done", "training_iteration", "trial_id", "date", "timestamp", "time_this_iter_s", "time_total_s",
    "pid", "hostname", "node_ip", "time_since_restore", "iterations_since_restore", "should_checkpoint",
    "checkpoint_dir_name", "experiment_tag", "config",
})


#: how a trial whose Ray worker or node died is failed (the reason's start); such a trial is retried
LOST_WORKER = "its Ray worker or node was lost"
#: a point whose worker was lost on each of its store retries is not given up again: its FAIL counts
#: (else a worker that can never start, e.g. a trainable that does not import there, loops forever)
MAX_LOST_RETRIES = store.MAX_RETRIES


@dataclass
class _Live:
    trial: optuna.Trial
    config: dict[str, Any]
    reports: dict[int, list[Any]] = field(default_factory=dict)  # step -> the objectives' reported values
    last: dict[str, Any] | None = None
    started: float = field(default_factory=time.monotonic)
    resumed: list[int] = field(default_factory=list)  # the trials it retries (their checkpoints)
    cost: dict[str, Any] | None = None  # what it used, once it ended (counted into the budget once)


def is_finite(value: Any) -> TypeGuard[int | float]:
    """A real number that is not NaN or infinite (booleans are not numbers here)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


#: how often a runner looks for trials of dead runners while it runs (under the study lock)
STALE_CHECK_S = 10.0
#: how long ``suggest`` waits before asking the store again when other runners hold the last trials
IDLE_POLL_S = 2.0


class OptunaSearcher(Searcher):
    """Ray Tune ``Searcher`` over one Optuna study via ask/tell.

    - ``suggest`` asks Optuna (under the study lock, so runners never exceed ``n_trials``) and returns
      the flat trial config; it answers ``FINISHED`` once ``n_trials`` are finished, or when the rest are
      this runner's own; while other runners hold the last trials it waits, and every
      :data:`STALE_CHECK_S` it gives up trials of dead runners, so a survivor finishes their work;
    - every epoch's objective becomes an intermediate value (learning curves in Optuna's plots);
    - a trial that ends below its budget (``epochs``) is PRUNED, with ``budget`` in its user attrs;
    - a trial whose objective is missing or not finite, or which raised, is FAIL with ``fail_reason``;
    - every checkpoint a trial reports is kept durably until the trial is told; a retry of a trial
      whose runner died continues from it (``resumed_from_epoch``), its curve starting with the
      original's epochs (see :mod:`genft_search.tune._checkpoints`);
    - every store call is retried through outages (:func:`genft_search.store.retrying`); when the store
      stays away, ``lost`` holds the error and the run stops (the next run recovers its trials);
    - before telling, it checks that the trial is still its own: a result finished after another runner
      gave the trial up is kept (:func:`genft_search.store.store_late_result`), with one warning line.
    """

    def __init__(self, study: optuna.Study, plan: StudyPlan, task: str, runner: store.Runner,
                 deadline: float | None = None, budget: RunBudget | None = None,
                 seed: int | None = None) -> None:
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
        self._seed = seed
        self._budget = budget
        self._resources = {"cpu": plan.config.resources.cpu, "gpu": plan.config.resources.gpu}
        self._live: dict[str, _Live] = {}
        self._errored: dict[str, _Live] = {}
        self._stopped: set[str] = set()
        self._next_stale_check = 0.0
        self._idle_until = 0.0
        self.lost: StoreUnavailable | None = None
        self.warnings: list[str] = []
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
        self.lost = None

    # Ray Tune API ---------------------------------------------------------------------------------
    def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec: Any) -> bool:
        return True

    @property
    def _study(self) -> optuna.Study:
        assert self.study is not None, "a detached copy (unpickled by Ray) has no study"
        return self.study

    # Ray's stubs leave out the FINISHED string that its own Searcher API documents
    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:  # type: ignore[override]
        if self.study is None or self.lost is not None:  # detached copy, or the store is gone
            return self.FINISHED
        if self._budget is not None and self._budget.exhausted(self.running_since()):
            return self.FINISHED
        now = time.monotonic()
        if now < self._idle_until:
            return None
        try:
            answer = store.retrying(self._ask, storage=self.study)
        except StoreUnavailable as exc:
            self.lost = exc
            return self.FINISHED
        if answer is None:
            self._idle_until = now + IDLE_POLL_S
            return None
        if isinstance(answer, str):
            return answer
        trial, params = answer
        live = _Live(trial, {**self._base, **params})
        self._guarded(self._resume, live)
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

    def fail(self, trial_id: str, reason: str, lost: bool = False) -> None:
        """FAIL a trial that raised; ``lost``: not its fault (its worker or node died), so it is retried."""
        live = self._errored.pop(trial_id, None) or self._live.pop(trial_id, None)
        if live is None:
            return
        requeue = lost
        if lost:
            reason = f"{LOST_WORKER} ({reason})"
            lost_before = self._guarded(self._lost_in_a_row, live) or 0
            if lost_before >= MAX_LOST_RETRIES:
                requeue = False
                reason = f"{reason}; lost {lost_before + 1} times in a row, not retried again"
        if requeue:
            self._guarded(self._give_up, [live], reason)
        else:
            self._tell(live, TrialState.FAIL, None, self._fail_attrs(live, reason))
            self._forget_checkpoints(live)  # the trial's own failure: no retry continues from them

    def abandon(self, reason: str, cut: bool = False) -> None:
        """Trials this runner can no longer finish (interrupt, timeout, end of run): FAIL, not counted,
        and re-enqueued (:func:`genft_search.store.give_up_trial`; ``cut``: the budget ran out, so a
        retry is re-enqueued again too)."""
        for trial_id in list(self._errored):
            live = self._errored.pop(trial_id)
            self._tell(live, TrialState.FAIL, None, self._fail_attrs(live, "the trial raised an error "
                                                                             "(no details)"))
        lives = [self._live.pop(trial_id) for trial_id in list(self._live)]
        if lives and self.lost is None:
            self._guarded(self._give_up, lives, reason, cut)

    # internals -------------------------------------------------------------------------------------
    def _lost_in_a_row(self, live: _Live) -> int:
        """How many trials of ``live``'s retry chain, nearest first, ended with their worker lost."""
        count = 0
        for earlier in store.retry_chain(self._study, live.trial):
            if not str(earlier.user_attrs.get(store.ATTR_FAIL_REASON, "")).startswith(LOST_WORKER):
                break
            count += 1
        return count

    def _warn(self, message: str) -> None:
        self.warnings.append(message)
        print(f"genft-search: warning: {message}", file=sys.stderr, flush=True)

    def _guarded(self, call: Any, *args: Any) -> Any:
        """A store call through outages; when the store stays away the run stops (``lost``)."""
        if self.lost is not None:
            return None
        try:
            return store.retrying(call, *args, storage=self._study)
        except StoreUnavailable as exc:
            self.lost = exc
        except Exception as exc:  # never into Ray, which would hide it
            self._warn(f"study {self._study.study_name}: {type(exc).__name__}: {' '.join(str(exc).split())}")
        return None

    def _ask(self) -> tuple[optuna.Trial, dict[str, Any]] | str | None:
        study = self._study
        with store.study_lock(study):
            counts = store.state_counts(study)
            if counts["finished"] >= self._n_trials:
                return self.FINISHED
            own = len(self._live) + len(self._errored)
            full = counts["finished"] + counts["running"] >= self._n_trials
            others = counts["running"] - own
            now = time.monotonic()
            if others > 0 and (full or now >= self._next_stale_check):
                self._next_stale_check = now + STALE_CHECK_S
                if store.recover_stale_trials(study, keep=self._runner):
                    self.changed += 1
                    counts = store.state_counts(study)
                    others = counts["running"] - own
                    full = counts["finished"] + counts["running"] >= self._n_trials
            if full:
                # the last trials are running: this runner's own ones end the study; other runners'
                # ones are waited for (if their runner dies, this one gives them up and retries them)
                return None if others > 0 else self.FINISHED
            trial = study.ask()
            store.tag_runner(study, trial, self._runner, self._seed)
            params = self._space.sample(trial)
        return trial, params

    def _give_up(self, lives: list[_Live], reason: str, cut: bool = False) -> None:
        study = self._study
        with store.study_lock(study):
            for live in lives:
                frozen = store.fresh_trial(study, live.trial)
                if frozen.state == TrialState.RUNNING:
                    attrs: dict[str, Any] = {store.ATTR_COST: self._cost(live)}
                    if live.reports:
                        attrs[store.ATTR_BUDGET] = max(live.reports)
                    with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
                        store.write_trial(study, frozen, attrs)
                if store.give_up_trial(study, frozen, reason, always=cut):
                    self.changed += 1

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
            with contextlib.suppress(Exception):
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
        if len(self._objectives) == 1 and is_finite(value) and self.lost is None:
            try:
                store.retrying(store.write_trial, self._study, live.trial, None, {step: float(value)},
                               storage=self._study)
            except StoreUnavailable as exc:
                self.lost = exc
            except Exception:  # given up meanwhile by another runner: the tell path says so
                pass

    def _cost(self, live: _Live) -> dict[str, Any]:
        """The trial's cost (wall x resources, the trainable's own figures); added to the run's budget
        the first time it is asked for."""
        if live.cost is None:
            live.cost = store.cost_of(time.monotonic() - live.started, self._resources, live.last or {})
            if self._budget is not None:
                self._budget.add(live.cost)
        return live.cost

    def _fail_attrs(self, live: _Live, reason: str) -> dict[str, Any]:
        attrs: dict[str, Any] = {store.ATTR_FAIL_REASON: reason[:1000], store.ATTR_COST: self._cost(live)}
        if live.reports:
            attrs[store.ATTR_BUDGET] = max(live.reports)
        return attrs

    def _finish(self, live: _Live, trial_id: str) -> None:
        result = live.last
        if not result or not live.reports:
            self._tell(live, TrialState.FAIL, None, self._fail_attrs(live, "the trial reported no result"))
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
                self._tell(live, TrialState.FAIL, None, self._fail_attrs(
                    live, f"the trainable never reported the objective metric {objective.metric!r}"))
                return
            if not is_finite(value):
                self._tell(live, TrialState.FAIL, None, self._fail_attrs(
                    live, f"non-finite objective {objective.metric}={value!r} at epoch {budget}"))
                return
            values.append(float(value))
        attrs: dict[str, Any] = {store.ATTR_BUDGET: budget}
        if target is not None:
            attrs[store.ATTR_MAX_BUDGET] = target
        attrs[store.ATTR_METRICS] = {k: v for k, v in result.items()
                                     if k not in _RAY_KEYS and not k.startswith("config/") and is_finite(v)}
        attrs[store.ATTR_TRAIN_SECONDS] = round(time.monotonic() - live.started, 3)
        attrs[store.ATTR_COST] = self._cost(live)
        short = target is not None and budget < target
        cut = self._budget.exhausted() if self._budget is not None else None
        if cut is None and self._deadline is not None and time.monotonic() >= self._deadline:
            cut = "stopped by budget.timeout before its last epoch"
        if cut is not None and (target is None or short):
            if self.lost is None:
                self._guarded(self._give_up, [live], cut, True)
            return
        stopped_early = short or (target is None and trial_id in self._stopped)
        self._forget_checkpoints(live)
        if stopped_early:
            self._tell(live, TrialState.PRUNED, None, attrs)
        else:
            self._tell(live, TrialState.COMPLETE, values, attrs)

    def _tell(self, live: _Live, state: TrialState, values: list[float] | None,
              attrs: dict[str, Any]) -> None:
        """Store the trial's outcome, checking first that it is still this runner's (see the class)."""
        if self._guarded(self._tell_once, live, state, values, attrs) is not None:
            self.changed += 1

    def _tell_once(self, live: _Live, state: TrialState, values: list[float] | None,
                   attrs: dict[str, Any]) -> bool:
        study = self._study
        current = store.fresh_trial(study, live.trial)
        if current.state == TrialState.RUNNING:
            try:
                missing = {step: float(v[0]) for step, v in live.reports.items()  # an outage kept them out
                           if len(self._objectives) == 1 and is_finite(v[0])
                           and step not in current.intermediate_values}
                store.write_trial(study, live.trial, attrs, missing)
                told = values if values is None or len(values) > 1 else values[0]
                study.tell(live.trial, told, state=state)
                return True
            except RuntimeError as exc:
                # GridSampler calls Study.stop() once the grid is covered; outside optimize() that
                # raises after the trial is stored. The searcher stops by counting: not an error.
                if "Study.stop" not in str(exc):
                    raise
                return True
            except (optuna.exceptions.UpdateFinishedTrialError, ValueError) as exc:
                if isinstance(exc, ValueError) and "Cannot tell" not in str(exc):
                    raise
                current = store.fresh_trial(study, live.trial)  # given up by another runner just now
        if current.state != TrialState.FAIL or not current.user_attrs.get(store.ATTR_ORPHANED):
            return True  # already stored (a tell retried after its reply was lost)
        if state == TrialState.FAIL:
            return True  # it failed anyway; the retry another runner enqueued will run the point
        with store.study_lock(study):
            message = store.store_late_result(study, live.trial, state, values, attrs,
                                              {s: float(v[0]) for s, v in live.reports.items()
                                               if len(self._objectives) == 1 and is_finite(v[0])},
                                              self._runner, self._n_trials)
        self._warn(message)
        return True
