"""Running a study: Ray Tune executes the trials, Optuna (in the study store) decides and remembers.

:class:`OptunaSearcher` is a small Ray Tune ``Searcher`` that calls Optuna's ask/tell itself, so a
trial the scheduler stops early is stored as PRUNED with its per-epoch intermediate values and the
budget it reached (``OptunaSearch`` would store it COMPLETE with a truncated score), and a failed
trial is FAIL with its reason. :func:`run_study` validates everything before it writes, recovers
trials orphaned by a dead runner, and runs one Ray Tune experiment per task.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import logging
import math
import os
import shutil
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
from optuna.trial import TrialState

from genft_search import store
from genft_search.config import StudyConfig
from genft_search.errors import UserError
from genft_search.progress import ProgressLine, Snapshot
from genft_search.space import (
    SearchSpace,
    build_space,
    incompatible_parameters,
    paper_setting,
    space_difference,
)

if TYPE_CHECKING:
    from ray.tune.schedulers import TrialScheduler

__all__ = ["OptunaSearcher", "StudyPlan", "plan_study", "run_study", "validate_study"]

logger = logging.getLogger(__name__)

#: result keys Ray Tune adds by itself (not the trainable's metrics)
_RAY_KEYS = frozenset({
    "done", "training_iteration", "trial_id", "date", "timestamp", "time_this_iter_s", "time_total_s",
    "pid", "hostname", "node_ip", "time_since_restore", "iterations_since_restore", "should_checkpoint",
    "checkpoint_dir_name", "experiment_tag", "config",
})
_BUDGET_KEY = "epoch"


# ---------------------------------------------------------------------------------------------------
# planning (no side effects): everything that can be wrong with a study file is found here


@dataclass
class StudyPlan:
    """A validated study, ready to run: its space, trainable and per-task base trial configs."""

    config: StudyConfig
    space: SearchSpace
    fingerprint: str
    trainable: Callable[[dict[str, Any]], None]
    base_configs: dict[str, dict[str, Any]]
    n_trials: int
    max_budget: int | None
    notes: list[str] = field(default_factory=list)

    def sampler(self) -> optuna.samplers.BaseSampler:
        return make_sampler(self.config, self.space)

    def scheduler(self) -> TrialScheduler:
        return make_scheduler(self.config, self.max_budget)


def _base_config(config: StudyConfig, task: str) -> dict[str, Any]:
    data = config.data.model_dump(exclude_none=True)
    data.pop("tasks", None)
    data["task"] = task
    base: dict[str, Any] = {
        "method": config.method,
        "model": config.model.model_dump(exclude_none=True),
        "data": data,
        "protocol": config.protocol,
        "seed": 42,
    }
    base.update(config.fixed)
    return base


def _load_trainable(config: StudyConfig) -> Callable[[dict[str, Any]], None]:
    if config.trainable is None:
        from trainables import registry

        with _prefixed(config.source):
            return registry.get_trainable(config.data.kind)
    module_name, _, attr = config.trainable.partition(":")
    try:
        module = importlib.import_module(module_name)
        return getattr(module, attr)
    except (ImportError, AttributeError) as exc:
        raise UserError(
            f"{config.source}: trainable: cannot import {config.trainable!r} ({exc.__class__.__name__}); "
            "expected module.path:function importable here"
        ) from None


@contextlib.contextmanager
def _prefixed(source: str):
    """Name the study file in ``UserError`` messages raised by trainables (they do not know it)."""
    try:
        yield
    except UserError as exc:
        message = str(exc)
        if message.startswith(source):
            raise
        raise UserError(f"{source}: {message}") from None


def _check_kwargs(target: Any, kwargs: Mapping[str, Any], where: str, reserved: set[str]) -> None:
    allowed = [p for p in inspect.signature(target).parameters if p not in ("self", "kwargs", *reserved)]
    for key in kwargs:
        if key not in allowed:
            raise UserError(f"{where}: unknown option {key!r}; expected one of {', '.join(allowed)}")


_SAMPLERS: dict[str, str] = {
    "tpe": "TPESampler", "random": "RandomSampler", "cmaes": "CmaEsSampler", "gp": "GPSampler",
    "qmc": "QMCSampler", "grid": "GridSampler", "nsga2": "NSGAIISampler",
}


def make_sampler(config: StudyConfig, space: SearchSpace) -> optuna.samplers.BaseSampler:
    """The study's Optuna sampler; unknown or invalid options are a ``UserError``."""
    spec = config.sampler
    cls = getattr(optuna.samplers, _SAMPLERS[spec.name])
    where = f"{config.source}: sampler"
    kwargs = spec.kwargs
    reserved = {"search_space"} if spec.name == "grid" else set()
    _check_kwargs(cls.__init__, kwargs, where, reserved)
    if spec.seed is not None:
        kwargs["seed"] = spec.seed
    if spec.name == "grid":
        kwargs["search_space"] = space.grid(config.source)
    try:
        with _quiet_experimental():
            return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise UserError(f"{where}: {spec.name}: {' '.join(str(exc).split())}") from None


@contextlib.contextmanager
def _quiet_experimental():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        yield


def make_scheduler(config: StudyConfig, max_budget: int | None) -> TrialScheduler:
    """The Ray Tune scheduler, on the ``epoch`` the trainable reports (``max_t`` = epochs by default)."""
    from ray.tune import schedulers

    spec = config.scheduler
    where = f"{config.source}: scheduler"
    kwargs = spec.kwargs
    classes = {"asha": schedulers.ASHAScheduler, "hyperband": schedulers.HyperBandScheduler,
               "median": schedulers.MedianStoppingRule, "fifo": schedulers.FIFOScheduler}
    cls = classes[spec.name]
    _check_kwargs(cls.__init__, kwargs, where, {"time_attr", "metric", "mode"})
    if spec.name in ("asha", "hyperband"):
        if "max_t" not in kwargs:
            if max_budget is None:
                raise UserError(
                    f"{where}: {spec.name} needs max_t; expected scheduler.max_t or fixed.epochs"
                )
            kwargs["max_t"] = max_budget
        if spec.name == "asha" and kwargs.get("grace_period", 1) > kwargs["max_t"]:
            raise UserError(f"{where}: grace_period {kwargs['grace_period']} exceeds max_t "
                            f"{kwargs['max_t']}; "
                            "expected grace_period <= max_t (epochs)")
    if spec.name != "fifo":
        kwargs["time_attr"] = _BUDGET_KEY
    try:
        return cls(**kwargs)
    except (TypeError, ValueError, AssertionError) as exc:
        raise UserError(f"{where}: {spec.name}: {' '.join(str(exc).split()) or 'invalid options'}") from None


def _max_budget(config: StudyConfig, space: SearchSpace) -> int | None:
    epochs = config.fixed.get("epochs")
    if isinstance(epochs, int) and not isinstance(epochs, bool) and epochs > 0:
        return epochs
    max_t = config.scheduler.kwargs.get("max_t")
    return int(max_t) if isinstance(max_t, (int, float)) else None


def plan_study(config: StudyConfig, *, n_trials: int | None = None, check_data: bool = True,
               trainable: Callable[[dict[str, Any]], None] | None = None) -> StudyPlan:
    """Validate a study without side effects: space, sampler, scheduler, trainable and data.

    Raises ``UserError`` (one line naming the file and field) for anything a run would trip over.
    """
    space = build_space(config)
    if n_trials is not None and n_trials < 1:
        raise UserError(f"--n-trials: {n_trials} is not a number of trials; expected an integer >= 1")
    total = n_trials if n_trials is not None else config.budget.n_trials
    notes: list[str] = []
    if config.sampler.name == "grid":
        size = space.grid_size(config.source)
        if total > size:
            notes.append(f"grid of {size} points: n_trials lowered from {total} to {size}")
            total = size
    if len(config.objectives) > 1 and config.sampler.name == "cmaes":
        raise UserError(f"{config.source}: sampler: cmaes handles one objective; expected tpe, "
                        f"nsga2, gp or random")
    max_budget = _max_budget(config, space)
    make_sampler(config, space)
    make_scheduler(config, max_budget)
    trainable = trainable or _load_trainable(config)
    if config.trainable is None:  # the built-in trainables read the method's keys from `fixed`
        from genft_search.method import check_method_config

        try:
            check_method_config(config.method, config.fixed)
        except ValueError as exc:
            raise UserError(f"{config.source}: fixed: {exc}") from None
    if check_data and config.trainable is None:
        from trainables import registry

        for task in config.data.tasks:
            with _prefixed(config.source):
                registry.check_data(config.data.model_dump(exclude_none=True), task)
        with _prefixed(config.source):
            registry.check_model(config.data.kind, config.model.model_dump(exclude_none=True))
    bases = {task: _base_config(config, task) for task in config.data.tasks}
    fingerprint = space.fingerprint(config.method)
    return StudyPlan(config, space, fingerprint, trainable, bases, total, max_budget, notes)


# ---------------------------------------------------------------------------------------------------
# the searcher


@dataclass
class _Live:
    trial: optuna.Trial
    config: dict[str, Any]
    reports: dict[int, list[float]] = field(default_factory=dict)
    last: dict[str, Any] | None = None
    started: float = field(default_factory=time.monotonic)


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


try:  # Ray is imported lazily by run_study; the base class is only needed when it is there
    from ray.tune.search import Searcher as _SearcherBase
except ImportError:  # pragma: no cover
    _SearcherBase = object  # type: ignore[assignment,misc]


class OptunaSearcher(_SearcherBase):  # type: ignore[misc,valid-type]
    """Ray Tune ``Searcher`` over one Optuna study via ask/tell.

    - ``suggest`` asks Optuna (under the study lock, so runners never exceed ``n_trials``) and returns
      the flat trial config; it answers ``FINISHED`` once finished plus running trials reach ``n_trials``.
    - every epoch's objective becomes an intermediate value (learning curves in Optuna's plots);
    - a trial that ends below its budget (``epochs``) is PRUNED, with ``budget`` in its user attrs;
    - a trial whose objective is missing or not finite, or which raised, is FAIL with ``fail_reason``.
    """

    def __init__(self, study: optuna.Study, plan: StudyPlan, task: str, runner: store.Runner,
                 deadline: float | None = None) -> None:
        objectives = plan.config.objectives
        mode = "max" if objectives[0].direction == "maximize" else "min"
        super().__init__(metric=objectives[0].metric, mode=mode)
        self.study = study
        self._plan = plan
        self._space = plan.space
        self._base = plan.base_configs[task]
        self._objectives = objectives
        self._n_trials = plan.n_trials
        self._runner = runner
        self._deadline = deadline
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
        return {"_metric": self._metric, "_mode": self._mode, "study_name": self.study.study_name,
                "runner": self._runner.id}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.study = None  # a detached copy: it proposes nothing (see ``suggest``)

    # Ray Tune API ---------------------------------------------------------------------------------
    def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec: Any) -> bool:
        return True

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        if self.study is None:  # unpickled by Ray: only the driver's own searcher may ask the store
            return self.FINISHED
        with store.study_lock(self.study._storage, self.study.study_name):
            counts = store.state_counts(self.study)
            if counts["finished"] + counts["running"] >= self._n_trials:
                return self.FINISHED
            trial = self.study.ask()
            self.study._storage.set_trial_system_attr(trial._trial_id, store.ATTR_RUNNER, self._runner.id)
            params = self._space.sample(trial)
        config = {**self._base, **params}
        self._live[trial_id] = _Live(trial, config)
        return config

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
    def mark_stopped(self, trial_id: str) -> None:
        self._stopped.add(trial_id)

    def fail(self, trial_id: str, reason: str) -> None:
        live = self._errored.pop(trial_id, None) or self._live.pop(trial_id, None)
        if live is not None:
            self._tell_fail(live, reason)

    def abandon(self, reason: str) -> None:
        """Trials this runner can no longer finish (interrupt, timeout): FAIL and re-enqueue them."""
        for trial_id in list(self._errored):
            self._tell_fail(self._errored.pop(trial_id), "the trial raised an error (no details)")
        for trial_id in list(self._live):
            live = self._live.pop(trial_id)
            self._tell_fail(live, reason, requeue=True)

    # internals -------------------------------------------------------------------------------------
    def _record(self, live: _Live, result: dict[str, Any]) -> None:
        live.last = result
        step = result.get(_BUDGET_KEY, result.get("training_iteration"))
        if not isinstance(step, (int, float)):
            return
        step = int(step)
        values = [result.get(o.metric) for o in self._objectives]
        if step in live.reports:
            return
        live.reports[step] = values
        value = values[0]
        if len(self._objectives) == 1 and _finite(value):
            with contextlib.suppress(Exception):
                live.trial.report(float(value), step)

    def _finish(self, live: _Live, trial_id: str) -> None:
        result = live.last
        if not result or not live.reports:
            self._tell_fail(live, "the trial reported no result")
            return
        budget = max(live.reports)
        target = live.config.get("epochs")
        target = int(target) if _finite(target) else self._plan.max_budget
        values = []
        for i, objective in enumerate(self._objectives):
            series = [(step, v[i]) for step, v in sorted(live.reports.items())]
            value = series[-1][1]
            if objective.scope == "best":
                finite = [v for _, v in series if _finite(v)]
                if finite:
                    value = max(finite) if objective.direction == "maximize" else min(finite)
            if value is None:
                self._tell_fail(live, f"the trainable never reported the objective metric "
                                      f"{objective.metric!r}")
                return
            if not _finite(value):
                self._tell_fail(live, f"non-finite objective {objective.metric}={value!r} at epoch {budget}")
                return
            values.append(float(value))
        attrs = live.trial
        attrs.set_user_attr("budget", budget)
        if target is not None:
            attrs.set_user_attr("max_budget", target)
        attrs.set_user_attr("metrics", {k: v for k, v in result.items()
                                        if k not in _RAY_KEYS and not k.startswith("config/") and _finite(v)})
        attrs.set_user_attr("train_seconds", round(time.monotonic() - live.started, 3))
        short = target is not None and budget < target
        if self._deadline is not None and time.monotonic() >= self._deadline and (target is None or short):
            self._tell_fail(live, "stopped by budget.timeout before its last epoch", requeue=True)
            return
        stopped_early = short or (target is None and trial_id in self._stopped)
        try:
            if stopped_early:
                self.study.tell(live.trial, state=TrialState.PRUNED)
            else:
                self.study.tell(live.trial, values if len(values) > 1 else values[0])
        except RuntimeError as exc:
            # GridSampler calls Study.stop() once the grid is covered; outside optimize() that raises
            # after the trial is stored. The searcher stops by counting, so this is not an error.
            if "Study.stop" not in str(exc):
                logger.warning("could not store trial %d: %s", live.trial.number, exc)
        except (ValueError, optuna.exceptions.UpdateFinishedTrialError) as exc:
            logger.warning("could not store trial %d: %s", live.trial.number, exc)
        self.changed += 1

    def _tell_fail(self, live: _Live, reason: str, requeue: bool = False) -> None:
        retry = store.ATTR_RETRY_OF in (live.trial.user_attrs or {})
        try:
            live.trial.set_user_attr(store.ATTR_FAIL_REASON, reason[:1000])
            if live.reports:
                live.trial.set_user_attr("budget", max(live.reports))
            if requeue and not retry:
                live.trial.set_user_attr(store.ATTR_REQUEUED, True)
            self.study.tell(live.trial, state=TrialState.FAIL)
        except RuntimeError as exc:
            if "Study.stop" not in str(exc):
                logger.warning("could not store trial %d: %s", live.trial.number, exc)
                return
        except (ValueError, optuna.exceptions.UpdateFinishedTrialError) as exc:
            logger.warning("could not store trial %d: %s", live.trial.number, exc)
            return
        if requeue and not retry:
            retry_attrs = {store.ATTR_RETRY_OF: live.trial.number}
            self.study.enqueue_trial(dict(live.trial.params), user_attrs=retry_attrs)
        self.changed += 1


# ---------------------------------------------------------------------------------------------------
# Ray


def _error_reason(trial: Any) -> str:
    """The last ``SomeError: message`` line of a failed Ray trial's traceback."""
    text = ""
    with contextlib.suppress(Exception):
        path = trial.error_file
        if path and os.path.exists(path):
            text = Path(path).read_text(errors="replace")
    if not text:
        with contextlib.suppress(Exception):
            text = str(trial.get_error() or "")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for line in reversed(lines):
        head = line.split(":", 1)[0]
        if head.endswith(("Error", "Exception", "Interrupt")) and " " not in head:
            return line[:500]
    return (lines[-1][:500] if lines else "the trial raised an error")


def _ray_env(local: bool) -> None:
    """Variables Ray reads when it starts (they must be set before ``ray.init``)."""
    if local:
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")


#: variables Ray Tune reads while an experiment runs; set only around our own ``Tuner.fit``
_TUNE_ENV = {
    "TUNE_PRINT_ALL_TRIAL_ERRORS": "0",
    # Ctrl-C should stop the runner (trials re-enqueued), not only end one task's experiment
    "TUNE_DISABLE_SIGINT_HANDLER": "1",
    # the store keeps every result; per-trial CSV/JSON/TensorBoard files would only fill the disk
    "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",
    "RAY_AIR_NEW_OUTPUT": "0",
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "1000000",
    "RAY_TRAIN_ENABLE_STATE_TRACKING": "0",
}


@contextlib.contextmanager
def _tune_env() -> Iterator[None]:
    """Set :data:`_TUNE_ENV` (unless the user set them) for one experiment, then restore the environment.

    Leaving them set would change how the caller's own Tuners behave afterwards (no result logs).
    """
    added = [key for key in _TUNE_ENV if key not in os.environ]
    for key in added:
        os.environ[key] = _TUNE_ENV[key]
    try:
        yield
    finally:
        for key in added:
            os.environ.pop(key, None)


def _quiet_ray_loggers() -> None:
    # trial errors reach the user through the store and the progress line, not Ray's log lines
    for name in ("ray", "ray.tune", "ray.train", "ray.air", "ray.data"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


def ensure_ray(address: str | None) -> bool:
    """Start (or connect to) Ray quietly; True when this call started it."""
    _ray_env(local=address is None)
    import ray

    _quiet_ray_loggers()
    if ray.is_initialized():
        return False
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                              "logging_level": logging.ERROR, "configure_logging": True}
    try:
        if address is None:
            ray.init(object_store_memory=256 * 1024**2, **kwargs)
        else:
            ray.init(address=address, **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = "--address" if address else "ray"
        raise UserError(f"{where}: cannot start or reach Ray at {address or 'local'}: "
                        f"{' '.join(str(exc).split())[:300]}") from None
    _quiet_ray_loggers()
    return True


def _local_resources() -> tuple[float, float]:
    """CPUs and GPUs a local Ray instance will have (what ``ray.init()`` detects)."""
    gpus = 0.0
    with contextlib.suppress(Exception):
        import torch

        gpus = float(torch.cuda.device_count())
    return float(os.cpu_count() or 1), gpus


def _concurrency(config: StudyConfig) -> int:
    import ray

    total = ray.cluster_resources()
    return _fit_resources(config, float(total.get("CPU", 0)), float(total.get("GPU", 0)))


def _fit_resources(config: StudyConfig, cpus: float, gpus: float) -> int:
    """How many trials fit at once; ``UserError`` when one trial asks for more than there is."""
    res = config.resources
    if res.cpu > cpus + 1e-9:
        raise UserError(f"{config.source}: resources.cpu: {res.cpu} CPUs per trial but the Ray cluster has "
                        f"{cpus:g}; expected at most {cpus:g}")
    if res.gpu > gpus + 1e-9:
        raise UserError(f"{config.source}: resources.gpu: {res.gpu} GPUs per trial but the Ray cluster has "
                        f"{gpus:g}; expected at most {gpus:g}")
    limit = math.floor(cpus / res.cpu + 1e-9)
    if res.gpu > 0:
        limit = min(limit, math.floor(gpus / res.gpu + 1e-9))
    return max(1, limit)


def _runs_dir() -> Path:
    root = os.environ.get("GENFT_RUNS_DIR")
    if root:
        return Path(root).expanduser()
    home = os.environ.get("GENFT_HOME")
    base = Path(home).expanduser() if home else Path.home() / ".cache" / "genft-search"
    return base / "ray_results"


def _make_callback(searcher: OptunaSearcher, progress: ProgressLine, study_label: str, n_trials: int,
                   objectives: list[Any]):
    from ray.tune import Callback

    class _Events(Callback):
        """Failure reasons into the store, and the progress line."""

        def __init__(self) -> None:
            self._seen = -1
            self._next = 0.0

        def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            searcher.fail(trial.trial_id, _error_reason(trial))
            self._refresh(force=True)

        def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            self._refresh(force=True)

        def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            self._refresh(force=True)

        def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
            self._refresh()

        def _refresh(self, force: bool = False) -> None:
            now = time.monotonic()
            if not force and now < self._next and searcher.changed == self._seen:
                return
            self._seen, self._next = searcher.changed, now + 1.0
            progress.update(snapshot(searcher.study, study_label, n_trials, objectives))

    return _Events()


def snapshot(study: optuna.Study, label: str, n_trials: int, objectives: list[Any]) -> Snapshot:
    """Counts and best value of ``study`` for the progress line."""
    counts = store.state_counts(study)
    best = None
    if len(objectives) == 1:
        with contextlib.suppress(ValueError):
            trial = study.best_trial
            best = f"{objectives[0].metric}={trial.value:.4g} (#{trial.number})"
    else:
        with contextlib.suppress(ValueError):
            best = f"{len(study.best_trials)} on the Pareto front"
    return Snapshot(label, counts["finished"], n_trials, counts["running"], counts["complete"],
                    counts["pruned"], counts["fail"] - _requeued(study), best)


def _requeued(study: optuna.Study) -> int:
    return sum(1 for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
               if t.user_attrs.get(store.ATTR_REQUEUED))


# ---------------------------------------------------------------------------------------------------
# the run


def _open_or_check(plan: StudyPlan, storage: optuna.storages.RDBStorage, task: str,
                   allow_space_change: bool) -> optuna.Study | None:
    """Load the task's study if it exists and refuse a changed space or method (no writes)."""
    config = plan.config
    name = config.study_name(task)
    if name not in store.study_names(storage):
        return None
    study = optuna.load_study(study_name=name, storage=storage)
    directions = [d.name.lower() for d in study.directions]
    if directions != config.directions:
        raise UserError(f"{config.source}: objective: study {name!r} optimises {directions}, the file says "
                        f"{config.directions}; expected the same directions or a new study name")
    old_fp = study.user_attrs.get(store.ATTR_FINGERPRINT)
    if old_fp is None or old_fp == plan.fingerprint:
        return study
    old_method = study.user_attrs.get(store.ATTR_METHOD)
    old_space = study.user_attrs.get(store.ATTR_SPACE) or {}
    new_space = plan.space.describe()
    what = f"method {old_method} -> {config.method}" if old_method != config.method else \
        space_difference(old_space, new_space)
    if not allow_space_change:
        raise UserError(
            f"{config.source}: space: study {name!r} was run with another search space or method ({what}); "
            "expected the same space, a new study name, or --allow-space-change"
        )
    bad = incompatible_parameters(old_space, new_space)
    if bad:
        raise UserError(
            f"{config.source}: params: {', '.join(bad)} changed type or choices, which Optuna "
            f"cannot continue "
            f"in study {name!r}; expected the old choices or a new study name"
        )
    return study


def _create_or_update(plan: StudyPlan, storage: optuna.storages.RDBStorage, task: str,
                      study: optuna.Study | None) -> optuna.Study:
    config = plan.config
    new = study is None
    if study is None:
        study = optuna.create_study(study_name=config.study_name(task), storage=storage,
                                    directions=config.directions, sampler=plan.sampler(), load_if_exists=True)
    else:
        study = optuna.load_study(study_name=study.study_name, storage=storage, sampler=plan.sampler())
    if study.user_attrs.get(store.ATTR_FINGERPRINT) != plan.fingerprint:
        study.set_user_attr(store.ATTR_FINGERPRINT, plan.fingerprint)
        study.set_user_attr(store.ATTR_SPACE, plan.space.describe())
    study.set_user_attr(store.ATTR_METHOD, config.method)
    study.set_user_attr(store.ATTR_CONFIG, plan.base_configs[task])
    study.set_user_attr("task", task)
    study.set_user_attr("study_file", config.name)
    study.set_user_attr("protocol", config.protocol)
    study.set_user_attr("objective", [o.model_dump() for o in config.objectives])
    study.set_user_attr("n_trials", plan.n_trials)
    if new and config.warm_start is not None:
        with store.study_lock(storage, study.study_name):  # two runners may create the study together
            if not optuna.load_study(study_name=study.study_name, storage=storage).user_attrs.get(
                    "warm_started"):
                _warm_start(plan, study, task)
                study.set_user_attr("warm_started", True)
    return study


def _warm_start(plan: StudyPlan, study: optuna.Study, task: str) -> None:
    warm = plan.config.warm_start
    if warm is None:
        return
    rows = [paper_setting(plan.config.data.kind, task)] if warm == "paper" else list(warm)
    for row in rows:
        if not row:
            continue
        params = {k: v for k, v in row.items() if k in plan.space and plan.space.contains(k, v)}
        if params:
            study.enqueue_trial(params, user_attrs={"warm_start": warm if isinstance(warm, str) else "file"})


def validate_study(config: StudyConfig, *, storage: str | None = None, n_trials: int | None = None,
                   allow_space_change: bool = False) -> list[str]:
    """Everything ``run`` checks before writing, without writing; returns lines describing the study."""
    plan = plan_study(config, n_trials=n_trials)
    concurrency = _fit_resources(config, *_local_resources())
    url = store.resolve_storage_url(storage, config.storage)
    rdb = store.probe_storage(url, source=f"{config.source}: storage")
    states = {}
    for task in config.data.tasks:
        study = _open_or_check(plan, rdb, task, allow_space_change) if rdb is not None else None
        done = store.state_counts(study)["finished"] if study is not None else 0
        states[task] = "new" if study is None else f"resumes at {done} finished"
    tasks = ", ".join(f"{config.study_name(t)} ({states[t]})" for t in config.data.tasks)
    lines = [
        f"ok: {config.source}: method {config.method}, protocol {config.protocol}, "
        f"{len(plan.space)} searched parameters, sampler {config.sampler.name}, scheduler "
        f"{config.scheduler.name}, "
        f"n_trials {plan.n_trials} per task, up to {concurrency} trials at once on this machine",
        f"studies: {tasks}",
        f"storage: {store.redact_url(url)}",
        *plan.notes,
    ]
    return lines


def run_study(config: StudyConfig, *, storage: str | None = None, n_trials: int | None = None,
              address: str | None = None, allow_space_change: bool = False,
              trainable: Callable[[dict[str, Any]], None] | None = None,
              progress: bool = True) -> dict[str, optuna.Study]:
    """Run (or resume) the study of each task of ``config``; returns ``{task: optuna.Study}``.

    ``n_trials`` overrides ``budget.n_trials`` (the study's total of finished trials, not "more").
    Everything is validated, and existing studies are checked against the file, before anything is
    written. ``trainable`` replaces the one ``data.kind`` selects (custom trainables, benchmarks).
    """
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    plan = plan_study(config, n_trials=n_trials, check_data=trainable is None, trainable=trainable)
    if address is None:
        _fit_resources(config, *_local_resources())
    url = store.resolve_storage_url(storage, config.storage)
    source = f"{config.source}: storage"
    probe = store.probe_storage(url, source=source)  # reachable? existing studies compatible? no writes
    existing = {task: _open_or_check(plan, probe, task, allow_space_change) if probe is not None else None
                for task in config.data.tasks}
    started_ray = False
    concurrency: int | None = None
    rdb: optuna.storages.RDBStorage | None = None
    runner = store.Runner.current()
    studies: dict[str, optuna.Study] = {}
    try:
        for task in config.data.tasks:
            study = existing[task]
            if study is not None and _finished(study, plan.n_trials):
                studies[task] = study  # nothing to do: no Ray, no writes
                if progress:
                    line = ProgressLine()
                    line.update(snapshot(study, study.study_name, plan.n_trials, config.objectives))
                    line.close()
                continue
            if concurrency is None:  # Ray only starts when a task has trials left to run
                started_ray = ensure_ray(address)
                concurrency = _concurrency(config)
                rdb = store.open_storage(url, create=True, source=source)
            assert rdb is not None
            study = _create_or_update(plan, rdb, task, study)
            studies[task] = study
            _run_task(plan, study, task, runner, concurrency, progress)
        return studies
    finally:
        if started_ray:
            import ray

            ray.shutdown()


def _recording_stops(scheduler: TrialScheduler, searcher: OptunaSearcher) -> TrialScheduler:
    """Tell the searcher which trials the scheduler stopped (PRUNED even when no budget is known)."""
    decide = scheduler.on_trial_result

    def on_trial_result(tune_controller: Any, trial: Any, result: dict[str, Any]) -> str:
        decision = decide(tune_controller, trial, result)
        if decision == "STOP":
            searcher.mark_stopped(trial.trial_id)
        return decision

    scheduler.on_trial_result = on_trial_result  # type: ignore[method-assign]
    return scheduler


def _finished(study: optuna.Study, n_trials: int) -> bool:
    counts = store.state_counts(study)
    return counts["finished"] >= n_trials and counts["running"] == 0 and counts["waiting"] == 0


def _run_task(plan: StudyPlan, study: optuna.Study, task: str, runner: store.Runner, concurrency: int,
              show_progress: bool) -> None:
    from ray import tune

    config = plan.config
    line = ProgressLine(enabled=show_progress)
    with store.Heartbeat(study, runner):
        with store.study_lock(study._storage, study.study_name):
            store.recover_stale_trials(study)
        counts = store.state_counts(study)
        if counts["finished"] >= plan.n_trials:
            line.update(snapshot(study, study.study_name, plan.n_trials, config.objectives), force=True)
            line.close()
            return
        timeout = config.budget.timeout
        deadline = time.monotonic() + timeout if timeout else None
        searcher = OptunaSearcher(study, plan, task, runner, deadline)
        scheduler = _recording_stops(plan.scheduler(), searcher)
        callback = _make_callback(searcher, line, study.study_name, plan.n_trials, config.objectives)
        objective = config.objectives[0]
        runs = _runs_dir()
        name = f"{config.name}-{task}-{runner.pid}-{int(time.time())}"
        resources = {"cpu": config.resources.cpu, "gpu": config.resources.gpu}
        trainable = tune.with_resources(plan.trainable, resources)
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(
                search_alg=searcher,
                scheduler=scheduler,
                metric=objective.metric,
                mode="max" if objective.direction == "maximize" else "min",
                num_samples=-1,
                max_concurrent_trials=concurrency,
                reuse_actors=True,
                time_budget_s=timeout,
                trial_dirname_creator=lambda trial: f"t{trial.trial_id}",
                trial_name_creator=lambda trial: f"t{trial.trial_id}",
            ),
            run_config=tune.RunConfig(
                name=name,
                storage_path=str(runs),
                verbose=0,
                callbacks=[callback],
                failure_config=tune.FailureConfig(max_failures=0),
                checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
                log_to_file=True,
            ),
        )
        try:
            with _tune_env():
                tuner.fit()
        except KeyboardInterrupt:
            searcher.abandon("the runner was interrupted")
            raise
        finally:
            timed_out = deadline is not None and time.monotonic() >= deadline
            searcher.abandon("stopped by budget.timeout before its last epoch" if timed_out
                             else "the runner stopped before the trial finished")
            line.update(snapshot(study, study.study_name, plan.n_trials, config.objectives), force=True)
            line.close()
            if not os.environ.get("GENFT_KEEP_RUNS"):
                shutil.rmtree(runs / name, ignore_errors=True)
