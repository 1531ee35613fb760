"""The run: check existing studies against the plan, create or resume them, and run each task's trials
as one Ray Tune experiment whose searcher is the study itself.

Nothing is written before everything is checked: the plan (file, space, trainable, data), the store
(reachable, existing studies compatible) and the resources.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import optuna

from genft_search import store
from genft_search.config import StudyConfig
from genft_search.errors import UserError
from genft_search.paper import paper_setting
from genft_search.progress import ProgressLine
from genft_search.space import incompatible_parameters, space_difference
from genft_search.tune import _checkpoints
from genft_search.tune._plan import StudyPlan, plan_study
from genft_search.tune._ray import (
    claim_run,
    clean_runs,
    cluster_concurrency,
    cluster_fit,
    concurrency_note,
    ensure_ray,
    fit_resources,
    local_resources,
    lost_store_stopper,
    make_callback,
    private_dir,
    recording_stops,
    remove_run,
    resolve_runs_dir,
    run_name,
    snapshot,
    total_snapshot,
    tune_env,
)

__all__ = ["run_plan", "run_study", "validate_study"]

#: the shortest time between two redraws of a several-task run's progress lines (trial events)
REDRAW_S = 1.0


def _open_or_check(plan: StudyPlan, storage: optuna.storages.RDBStorage | None, task: str,
                   allow_space_change: bool) -> optuna.Study | None:
    """Load the task's study if it exists and refuse a changed space or method (no writes)."""
    config = plan.config
    name = config.study_name(task)
    if storage is None or name not in store.study_names(storage):
        return None
    study = optuna.load_study(study_name=name, storage=storage)
    directions = [d.name.lower() for d in study.directions]
    if directions != config.directions:
        raise UserError(f"{config.source}: objective: study {name!r} optimises {directions}, the file says "
                        f"{config.directions}; expected the same directions or a new study name")
    record = store.StudyRecord.read(study)
    if record.space_fingerprint is None or record.space_fingerprint == plan.fingerprint:
        return study
    old_space = record.space or {}
    new_space = plan.space.describe()
    what = f"method {record.method} -> {config.method}" if record.method != config.method else \
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
                                    directions=config.directions, sampler=plan.sampler(task),
                                    load_if_exists=True)
    else:
        study = optuna.load_study(study_name=study.study_name, storage=storage, sampler=plan.sampler(task))
    record = store.StudyRecord(
        task=task, study_file=config.name, method=config.method, protocol=config.protocol,
        config=plan.base_configs[task], objective=[o.model_dump() for o in config.objectives],
        n_trials=plan.n_trials, ablation=plan.ablation,
        resources={"cpu": config.resources.cpu, "gpu": config.resources.gpu},
        budget=config.budget.model_dump(exclude_none=True) | {"n_trials": plan.n_trials},
    )
    if store.StudyRecord.read(study).space_fingerprint != plan.fingerprint:
        record.space_fingerprint, record.space = plan.fingerprint, plan.space.describe()
    record.write(study)
    if new and config.warm_start is not None:
        with store.study_lock(study):  # two runners may create the study together
            if not store.StudyRecord.read(optuna.load_study(study_name=study.study_name,
                                                            storage=storage)).warm_started:
                _warm_start(plan, study, task)
                store.StudyRecord(warm_started=True).write(study, "warm_started")
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
            origin = warm if isinstance(warm, str) else "file"
            study.enqueue_trial(params, user_attrs={store.ATTR_WARM_START: origin})


def validate_study(config: StudyConfig, *, storage: str | None = None, n_trials: int | None = None,
                   allow_space_change: bool = False, address: str | None = None) -> list[str]:
    """Everything ``run`` checks before writing, without writing.

    Args:
        config: the parsed study file.
        storage: the ``--storage`` URL (else the file's, ``$GENFT_STORAGE`` or the default).
        n_trials: overrides ``budget.n_trials``.
        allow_space_change: accept an existing study with another (compatible) space.
        address: a Ray cluster (``auto`` or ``HOST:PORT``) to count resources on; this machine otherwise.

    Returns:
        Lines describing the study: what runs, which studies resume, where they are stored.

    Raises:
        UserError: what ``run`` would refuse (the file, the data and model, an incompatible existing
            study, an unreachable store); nothing is written either way.
    """
    plan = plan_study(config, n_trials=n_trials)
    where, cluster = "on this machine", None
    notes = list(plan.notes)
    if address is None:
        concurrency = fit_resources(config, *local_resources())
        notes += [n for n in [concurrency_note(config, *local_resources())] if n]
    else:
        where, cluster, concurrency = f"on the Ray cluster at {address}", *_cluster_fit(config, address)
    url = store.resolve_storage_url(storage, config.storage)
    rdb = store.probe_storage(url, source=f"{config.source}: storage")
    states = {}
    for task in config.data.tasks:
        study = _open_or_check(plan, rdb, task, allow_space_change)
        done = store.state_counts(study)["finished"] if study is not None else 0
        states[task] = "new" if study is None else f"resumes at {done} finished"
    tasks = ", ".join(f"{config.study_name(t)} ({states[t]})" for t in config.data.tasks)
    lines = [
        f"ok: {config.source}: method {config.method}, protocol {config.protocol}, "
        f"{len(plan.space)} searched parameters, sampler {config.sampler.name}, scheduler "
        f"{config.scheduler.name}, "
        f"n_trials {plan.n_trials} per task, up to {concurrency} trials at once {where}",
        f"studies: {tasks}",
        f"storage: {store.redact_url(url)}",
        *([f"ray: {cluster}; {config.resources.cpu:g} CPUs and {config.resources.gpu:g} GPUs per trial: "
           f"{concurrency} trials fit at once"] if cluster else []),
        *notes,
    ]
    return lines


def _cluster_fit(config: StudyConfig, address: str) -> tuple[str, int]:
    import ray

    started = ensure_ray(address)
    try:
        return cluster_fit(config)
    finally:
        if started:
            ray.shutdown()


def run_study(config: StudyConfig, *, storage: str | None = None, n_trials: int | None = None,
              address: str | None = None, allow_space_change: bool = False,
              trainable: Callable[[dict[str, Any]], None] | None = None,
              progress: bool = True,
              runs_dir: str | os.PathLike[str] | None = None,
              tasks_at_once: int | None = None) -> dict[str, optuna.Study]:
    """Run (or resume) the study of each task of ``config``.

    Args:
        config: the parsed study file.
        storage: the ``--storage`` URL (else the file's, ``$GENFT_STORAGE`` or the default).
        n_trials: overrides ``budget.n_trials`` (the study's total of finished trials, not "more").
        address: a Ray cluster to run on (``auto`` or ``HOST:PORT``); a local Ray otherwise.
        allow_space_change: continue an existing study with another (compatible) space.
        trainable: replaces the one ``data.kind`` selects (custom trainables, benchmarks).
        progress: show the progress line.
        runs_dir: trial checkpoints and Ray's experiment state (``--runs-dir``; else ``$GENFT_RUNS_DIR``);
            on a cluster, storage every node reaches.
        tasks_at_once: how many tasks propose trials at once in the file's one Ray Tune experiment
            (``--tasks-at-once``; default all, so the cluster stays busy; 1 runs them one after another).

    Returns:
        ``{task: optuna.Study}``.

    Raises:
        UserError: anything wrong with the file, the store or the resources, before anything is written.
    """
    plan = plan_study(config, n_trials=n_trials, check_data=trainable is None, trainable=trainable)
    return run_plan(plan, storage=storage, address=address, allow_space_change=allow_space_change,
                    progress=progress, runs_dir=runs_dir, tasks_at_once=tasks_at_once)


def run_plan(plans: StudyPlan | Sequence[StudyPlan], *, storage: str | None = None,
             address: str | None = None, allow_space_change: bool = False,
             progress: bool = True,
             runs_dir: str | os.PathLike[str] | None = None,
             tasks_at_once: int | None = None) -> dict[str, optuna.Study]:
    """Run (or resume) one or several planned studies with one Ray instance.

    Args:
        plans: from :func:`plan_study` (an ablation hands one per task).
        storage: the ``--storage`` URL (else each file's, ``$GENFT_STORAGE`` or the default).
        address: a Ray cluster to run on; a local Ray otherwise.
        allow_space_change: continue existing studies with another (compatible) space.
        progress: show the progress line.
        runs_dir: trial checkpoints and Ray's experiment state (see :func:`run_study`).
        tasks_at_once: see :func:`run_study`.

    Returns:
        ``{task: optuna.Study}`` over all plans.

    Raises:
        UserError: an incompatible existing study, an unreachable store, too few resources; raised
            before anything is written.
    """
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    plans = [plans] if isinstance(plans, StudyPlan) else list(plans)
    if address is None:
        for plan in plans:
            fit_resources(plan.config, *local_resources())
    work: list[tuple[StudyPlan, str, str, optuna.Study | None]] = []
    for plan in plans:
        config = plan.config
        url = store.resolve_storage_url(storage, config.storage)
        probe = store.probe_storage(url, source=f"{config.source}: storage")  # reachable? compatible?
        for task in config.data.tasks:
            work.append((plan, task, url, _open_or_check(plan, probe, task, allow_space_change)))
    started_ray = False
    concurrency: int | None = None
    runner = store.Runner.current()
    storages: dict[str, optuna.storages.RDBStorage] = {}
    studies: dict[str, optuna.Study] = {}
    pending: dict[int, tuple[StudyPlan, list[tuple[optuna.Study, str]]]] = {}
    try:
        for plan, task, url, study in work:
            config = plan.config
            if study is not None and _finished(study, plan.n_trials):
                studies[task] = study  # nothing to do: no Ray, no writes
                if progress:
                    line = ProgressLine()
                    line.update(snapshot(study, study.study_name, plan.n_trials, config.objectives))
                    line.close()
                continue
            if concurrency is None:  # Ray only starts when a task has trials left to run
                started_ray = ensure_ray(address)
                concurrency = cluster_concurrency(config)
            if url not in storages:
                storages[url] = store.open_storage(url, create=True, source=f"{config.source}: storage")
            study = store.retrying(_create_or_update, plan, storages[url], task, study,
                                   storage=storages[url])
            studies[task] = study
            pending.setdefault(id(plan), (plan, []))[1].append((study, task))
        for plan, items in pending.values():
            # every task of a file in one experiment (at most tasks_at_once proposing), or one by one
            # one_epoch_topk pauses and resumes trials itself: it runs one task at a time
            sequential = tasks_at_once == 1 or plan.config.scheduler.name == "one_epoch_topk"
            batches = [[item] for item in items] if sequential else [items]
            for batch in batches:
                _run_tasks(plan, batch, runner, cluster_concurrency(plan.config), progress, runs_dir,
                           tasks_at_once)
        return studies
    finally:
        if started_ray:
            import ray

            ray.shutdown()


def _finished(study: optuna.Study, n_trials: int) -> bool:
    counts = store.state_counts(study)
    return counts["finished"] >= n_trials and counts["running"] == 0 and counts["waiting"] == 0


def _shared(scheduler: Any, study: optuna.Study, searcher: Any) -> Any:
    """Let a store-backed scheduler read the study's trials (every runner's), by trial number."""
    from genft_search.tune._asha import StoreASHA

    if isinstance(scheduler, StoreASHA):
        scheduler.share(lambda: study.get_trials(deepcopy=False), searcher.trial_number)
    return scheduler


def run_seed(plan: StudyPlan, study_name: str, index: int) -> int | None:
    """The sampler seed of a study's ``index``-th run: the file's own seed for the first, then one derived
    from it, the study and the run, so resumed studies and concurrent runners draw new points (every trial
    records its seed in the ``genft:sampler_seed`` system attr)."""
    seed = plan.config.sampler.seed
    if seed is None or index == 0:
        return seed
    digest = hashlib.sha256(f"{seed}:{study_name}:{index}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


def _run_tasks(plan: StudyPlan, items: Sequence[tuple[optuna.Study, str]], runner: store.Runner,
               concurrency: int, show_progress: bool, runs_dir: str | os.PathLike[str] | None = None,
               tasks_at_once: int | None = None) -> None:
    """Run the studies of ``items`` (one per task of ``plan``) in one Ray Tune experiment.

    One task is one searcher, scheduler and callback, as Ray Tune knows them; several are routed
    through :mod:`genft_search.tune._at_once` so every slot stays busy while any task has trials left.
    """
    from ray import tune
    from ray.tune.stopper import CombinedStopper

    from genft_search.tune._budget import RunBudget, budget_stopper
    from genft_search.tune._searcher import OptunaSearcher

    config = plan.config
    several = len(items) > 1
    lines = {task: ProgressLine(enabled=show_progress, in_place=not several) for _, task in items}
    total = ProgressLine(enabled=show_progress and several, in_place=False)

    redrawn = [-math.inf]

    def show(force: bool = False) -> None:
        """Every task's line; Ray's loop (and so every trial) waits for it, so nothing is read for lines
        nobody sees, and the events of many tasks redraw at most every :data:`REDRAW_S` (``force``:
        now, with unchanged lines printed again)."""
        now = time.monotonic()
        if not show_progress or (not force and now < redrawn[0] + REDRAW_S):
            return
        redrawn[0] = now
        with contextlib.suppress(Exception):  # best-effort: the store may be away
            snaps = []
            for study, task in items:
                snaps.append(snapshot(study, study.study_name, plan.n_trials, config.objectives))
                lines[task].update(snaps[-1], force)
            if several:
                total.update(total_snapshot(snaps), force)

    def start(study: optuna.Study) -> tuple[int, dict[str, int]]:
        with store.study_lock(study):
            store.recover_stale_trials(study, keep=runner)
            index = store.register_run(study, runner)
        return index, store.state_counts(study)

    with contextlib.ExitStack() as beating:
        for study, _ in items:
            beating.enter_context(store.Heartbeat(study, runner))
        left = []
        seeds: dict[str, int | None] = {}
        for study, task in items:
            index, counts = store.retrying(start, study, storage=study)
            if counts["finished"] < plan.n_trials:
                left.append((study, task))
                seeds[task] = run_seed(plan, study.study_name, index)
                if seeds[task] is not None:
                    study.sampler = plan.sampler(task, seeds[task])
        if not left:
            show(force=True)
            for line in [*lines.values(), total]:
                line.close()
            return
        timeout = config.budget.timeout
        deadline = time.monotonic() + timeout if timeout else None
        resources = {"cpu": config.resources.cpu, "gpu": config.resources.gpu}
        budgets = {task: RunBudget(study, resources, timeout, config.budget.device_hours)
                   for study, task in left}
        left = [(study, task) for study, task in left if not budgets[task].exhausted()]
        if not left:
            show(force=True)
            for line in [*lines.values(), total]:
                line.close()
            return
        searchers, schedulers, callbacks = {}, {}, {}
        for study, task in left:
            searcher = OptunaSearcher(study, plan, task, runner, deadline, budgets[task], seed=seeds[task])
            searchers[task] = searcher
            schedulers[task] = recording_stops(_shared(plan.scheduler(), study, searcher), searcher)
            callbacks[task] = make_callback(searcher, lines[task], study.study_name, plan.n_trials,
                                            config.objectives, after=(lambda: show()) if several else None)
        if len(left) == 1:
            task = left[0][1]
            search_alg: Any = searchers[task]
            scheduler: Any = schedulers[task]
            callback: Any = callbacks[task]
            task_of: Any = lambda trial_id, only=task: only  # noqa: E731
        else:
            from genft_search.tune._at_once import TaskScheduler, TaskSearcher, routing_callback

            search_alg = TaskSearcher(searchers, tasks_at_once or len(left))
            scheduler = TaskScheduler(schedulers, search_alg)
            callback = routing_callback(callbacks, search_alg)
            task_of = search_alg.owner.get
        stopper = CombinedStopper(
            budget_stopper({t: (budgets[t], searchers[t].running_since) for t in searchers}, task_of),
            lost_store_stopper(list(searchers.values())))
        objective = config.objectives[0]
        runs = resolve_runs_dir(runs_dir)
        label = left[0][1] if len(left) == 1 else f"{len(left)}tasks"
        clean_runs(runs)
        name = run_name(config.name, label)
        private_dir(runs, name)
        claim_run(runs, name, runner)
        trainable = tune.with_resources(_checkpoints.resuming(plan.trainable), resources)
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(
                search_alg=search_alg,
                scheduler=scheduler,
                metric=objective.metric,
                mode="max" if objective.direction == "maximize" else "min",
                num_samples=-1,
                # paused trials are live: a live-trial cap would stop one_epoch_topk from starting the
                # configurations it waits for (Ray then runs what the resources fit)
                max_concurrent_trials=None if config.scheduler.name == "one_epoch_topk" else concurrency,
                reuse_actors=True,
                time_budget_s=timeout,
                trial_dirname_creator=lambda trial: f"t{trial.trial_id}",
                trial_name_creator=lambda trial: f"t{trial.trial_id}",
            ),
            run_config=tune.RunConfig(
                name=name,
                storage_path=runs,
                verbose=0,
                callbacks=[callback],
                stop=stopper,
                failure_config=tune.FailureConfig(max_failures=0),
                checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
                log_to_file=True,
            ),
        )
        try:
            with tune_env():
                tuner.fit()
        except KeyboardInterrupt:
            for searcher in searchers.values():
                searcher.abandon("the runner was interrupted")
            raise
        finally:
            for task, searcher in searchers.items():
                cut = budgets[task].exhausted(searcher.running_since())
                searcher.abandon(cut or "the runner stopped before the trial finished", cut=cut is not None)
            show(force=True)
            for line in [*lines.values(), total]:
                line.close()
            if not os.environ.get("GENFT_KEEP_RUNS"):
                remove_run(runs, name)
        lost = next((s.lost for s in searchers.values() if s.lost is not None), None)
        if lost is not None:
            raise lost  # its trials stay RUNNING; the next run gives them up and retries them
