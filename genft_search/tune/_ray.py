"""Ray glue: starting Ray quietly, the environment of one experiment, resources, the run's callback and
the progress snapshot. Ray itself is imported inside the functions, so planning never needs it.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import shutil
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna

from genft_search import store
from genft_search.config import StudyConfig
from genft_search.errors import UserError
from genft_search.progress import ProgressLine, Snapshot
from genft_search.tune._plan import BUDGET_KEY

if TYPE_CHECKING:
    from ray.tune import Callback
    from ray.tune.schedulers import TrialScheduler

    from genft_search.tune._searcher import OptunaSearcher

__all__ = ["claim_run", "clean_runs", "cluster_concurrency", "cluster_fit", "concurrency_note", "ensure_ray",
           "fit_resources", "local_resources", "lost_store_stopper", "make_callback", "private_dir",
           "recording_stops", "remove_run", "resolve_runs_dir", "run_name", "snapshot", "total_snapshot",
           "tune_env"]

def _error_text(trial: Any) -> str:
    """The traceback Ray recorded for a failed trial ('' when there is none)."""
    text = ""
    with contextlib.suppress(Exception):
        path = trial.error_file
        if path and os.path.exists(path):
            text = Path(path).read_text(errors="replace")
    if not text:
        with contextlib.suppress(Exception):
            text = str(trial.get_error() or "")
    return text


def _error_reason(text: str) -> str:
    """The last ``SomeError: message`` line of a failed Ray trial's traceback."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for line in reversed(lines):
        head = line.split(":", 1)[0]
        if head.endswith(("Error", "Exception", "Interrupt")) and " " not in head:
            return line[:500]
    return (lines[-1][:500] if lines else "the trial raised an error")


#: errors that mean the trial's worker process or node went away, not that the trial failed
_LOST_WORKER = frozenset({"ActorDiedError", "RayActorError", "NodeDiedError", "WorkerCrashedError",
                          "ActorUnavailableError", "LocalRayletDiedError", "OwnerDiedError"})


def _lost_worker(trial: Any, text: str) -> bool:
    """True when a trial's error is its worker or node dying (a killed node, an OOM-killed worker).

    Such a trial is not at fault: it is re-enqueued, and its retry continues from its kept checkpoint.
    Ray pickles the exception beside the text trace; its class decides, else the trace's words do.
    """
    with contextlib.suppress(Exception):
        import ray.cloudpickle

        with open(trial.pickled_error_file, "rb") as handle:
            error: BaseException | None = ray.cloudpickle.load(handle)
        while error is not None:
            if any(cls.__name__ in _LOST_WORKER for cls in type(error).__mro__):
                return True
            error = error.__cause__ or error.__context__
    return any(name in text for name in _LOST_WORKER) or ("The actor " in text and "unavailable" in text)


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
def tune_env() -> Iterator[None]:
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


def _existing_ray() -> str | None:
    """The Ray that a bare ``ray.init()`` would attach to (``$RAY_ADDRESS``, or the last ``ray start``)."""
    from ray._private import services

    with contextlib.suppress(Exception):
        found: str | None = services.canonicalize_bootstrap_address(None)  # type: ignore[arg-type]
        return found
    return None


def ensure_ray(address: str | None) -> bool:
    """Start (or connect to) Ray quietly; True when this call started it.

    Without ``address`` the run always gets its own local Ray (``address="local"``), even when another
    one is up (``ray start``, ``$RAY_ADDRESS``, another tool's cluster): the local resource check and the
    object store size then hold, and another tool's cluster is never loaded by surprise. One stderr line
    says so; ``--address auto`` runs on that instance instead.
    """
    _ray_env(local=address is None)
    import ray

    _quiet_ray_loggers()
    if ray.is_initialized():
        return False
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                              "logging_level": logging.ERROR, "configure_logging": True}
    try:
        if address is None:
            other = _existing_ray()
            if other:
                print(f"ray: another Ray instance is running at {other}; starting a separate local one "
                      f"for this run (--address auto runs on that one)", file=sys.stderr, flush=True)
            # Ray's processes (and so the trials' checkpoint folders) inherit this: private files
            mask = os.umask(0o077)
            try:
                ray.init(address="local", object_store_memory=256 * 1024**2, **kwargs)
            finally:
                os.umask(mask)
        else:
            ray.init(address=address, **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = "--address" if address else "ray"
        raise UserError(f"{where}: cannot start or reach Ray at {address or 'local'}: "
                        f"{' '.join(str(exc).split())[:300]}") from None
    _quiet_ray_loggers()
    return True


def local_resources() -> tuple[float, float]:
    """CPUs and GPUs a local Ray instance will have (what ``ray.init()`` detects)."""
    gpus = 0.0
    with contextlib.suppress(Exception):
        import torch

        gpus = float(torch.cuda.device_count())
    return float(os.cpu_count() or 1), gpus


_NOTED: set[tuple[str, float, float]] = set()


def cluster_concurrency(config: StudyConfig) -> int:
    """How many trials of ``config`` run at once on the connected Ray (its note on stderr, once)."""
    import ray

    total = ray.cluster_resources()
    cpus, gpus = float(total.get("CPU", 0)), float(total.get("GPU", 0))
    note = concurrency_note(config, cpus, gpus)
    if note and (config.source, cpus, gpus) not in _NOTED:
        _NOTED.add((config.source, cpus, gpus))
        print(note, file=sys.stderr, flush=True)
    return fit_resources(config, cpus, gpus)


def _uncapped(config: StudyConfig, cpus: float, gpus: float) -> int:
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


def fit_resources(config: StudyConfig, cpus: float, gpus: float) -> int:
    """How many trials fit at once, at most one per CPU there is (``resources.cpu: 0.001`` would
    otherwise start thousands of trials together); ``UserError`` when one trial asks for more than
    there is."""
    return max(1, min(_uncapped(config, cpus, gpus), math.floor(cpus + 1e-9)))


def concurrency_note(config: StudyConfig, cpus: float, gpus: float) -> str | None:
    """The line saying that :func:`fit_resources` capped the trials at once, or None."""
    uncapped, capped = _uncapped(config, cpus, gpus), fit_resources(config, cpus, gpus)
    if capped >= uncapped:
        return None
    return (f"note: {config.source}: resources.cpu {config.resources.cpu:g} per trial would run "
            f"{uncapped} trials at once; capped at {capped}, one per CPU there is")


def cluster_fit(config: StudyConfig) -> tuple[str, int]:
    """The connected Ray cluster's resources, and how many trials of ``config`` fit at once.

    Counted per node, since one trial runs on one node: two 2-CPU nodes fit no 4-CPU trial.
    """
    import ray

    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    cpus = sum(float(n.get("CPU", 0)) for n in nodes)
    gpus = sum(float(n.get("GPU", 0)) for n in nodes)
    fit_resources(config, cpus, gpus)  # more than the whole cluster: the usual error
    res = config.resources
    fit = 0
    for node in nodes:
        node_cpus = float(node.get("CPU", 0))
        per_node = min(math.floor(node_cpus / res.cpu + 1e-9), math.floor(node_cpus + 1e-9))
        if res.gpu > 0:
            per_node = min(per_node, math.floor(float(node.get("GPU", 0)) / res.gpu + 1e-9))
        fit += per_node
    if fit == 0:
        raise UserError(f"{config.source}: resources: no node of the Ray cluster has {res.cpu:g} CPUs and "
                        f"{res.gpu:g} GPUs free for one trial; expected a smaller request or a larger node")
    return f"{len(nodes)} nodes, {cpus:g} CPUs, {gpus:g} GPUs", fit


def resolve_runs_dir(override: str | os.PathLike[str] | None = None) -> str:
    """Where Ray Tune keeps trial checkpoints and its experiment state: ``--runs-dir``, else
    ``$GENFT_RUNS_DIR``, else ``$GENFT_HOME/ray_results``.

    On a cluster every node writes its trials' checkpoints here, so it must be storage they all reach
    (the same NFS path on each, or a bucket URI Ray supports such as ``s3://...``); a URI is kept as is.
    """
    root = os.fspath(override) if override else os.environ.get("GENFT_RUNS_DIR")
    if root:
        return root if "://" in root else str(Path(root).expanduser().absolute())
    home = os.environ.get("GENFT_HOME")
    base = Path(home).expanduser() if home else Path.home() / ".cache" / "genft-search"
    return str(base / "ray_results")


#: the file in each experiment folder naming the runner that owns it (for :func:`clean_runs`)
RUNNER_FILE = "genft-runner"
#: experiment folders of runners that cannot be checked (another host) are removed when this old
STALE_RUN_AGE_S = 2 * 24 * 3600.0


def run_name(study_file: str, task: str) -> str:
    """A new experiment folder name: unique per runner and run (parallel runners, containers whose
    runner is always pid 1, runs started in the same second never share one)."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in f"{study_file}-{task}")
    return f"{safe}-{uuid.uuid4().hex[:12]}"


def claim_run(root: str, name: str, runner: store.Runner) -> None:
    """Create the experiment folder (0700) with the owning runner's id in it (local folders only)."""
    if "://" in root:
        return
    folder = Path(root) / name
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    (folder / RUNNER_FILE).write_text(runner.id)


def clean_runs(root: str, now: float | None = None) -> list[str]:
    """Remove experiment folders left behind by runners that were killed: those of a dead runner on
    this host, and any not touched for :data:`STALE_RUN_AGE_S`. Returns the names removed."""
    base = Path(root)
    if "://" in root or not base.is_dir():
        return []
    now = time.time() if now is None else now
    removed = []
    for folder in base.iterdir():
        if not folder.is_dir() or not re.search(r"-[0-9a-f]{12}$", folder.name):
            continue
        alive: bool | None = True
        with contextlib.suppress(OSError):  # unreadable: somebody else's, left alone
            marker = folder / RUNNER_FILE
            owner = store.Runner.parse(marker.read_text()) if marker.is_file() else None
            alive = owner.alive_locally() if owner is not None else None
            if alive is None:
                newest = max([p.stat().st_mtime for p in folder.rglob("*")] + [folder.stat().st_mtime])
                alive = now - newest < STALE_RUN_AGE_S
        if alive is False:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder.name)
    return removed


def private_dir(root: str, *names: str) -> None:
    """Create ``root`` and each of ``root/names...`` (local paths) as folders only this user can open
    (0700): checkpoints, Ray's ``tuner.pkl`` and trial logs are nobody else's business. A bucket URI is
    left to the bucket's own access rules."""
    if "://" in root:
        return
    folders = [Path(root)]
    for name in names:
        folders.append(folders[-1] / name)
    for path in folders:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        with contextlib.suppress(OSError):  # a shared root made by someone else stays as it is
            if path.stat().st_uid == os.getuid():
                path.chmod(0o700)


def remove_run(root: str, name: str) -> None:
    """Delete one experiment's folder under :func:`resolve_runs_dir` (a local path or a bucket URI)."""
    if "://" not in root:
        shutil.rmtree(Path(root) / name, ignore_errors=True)
        return
    with contextlib.suppress(Exception):
        import pyarrow.fs  # type: ignore[import-untyped]

        fs, path = pyarrow.fs.FileSystem.from_uri(root)
        fs.delete_dir(f"{path.rstrip('/')}/{name}")


def lost_store_stopper(searchers: list[OptunaSearcher]) -> Any:
    """A Ray Tune stopper that ends the experiment once a searcher has lost the store."""
    from ray import tune

    class _StoreLost(tune.Stopper):
        def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
            return False

        def stop_all(self) -> bool:
            return any(getattr(s, "lost", None) is not None for s in searchers)

    return _StoreLost()


def make_callback(searcher: OptunaSearcher, progress: ProgressLine, study_label: str, n_trials: int,
                  objectives: list[Any], after: Callable[[], None] | None = None) -> Callback:
    """The run's Ray callback for one study; ``after`` (several tasks at once) draws every line instead
    of this study's own."""
    from ray import tune

    class _Events(tune.Callback):
        """Failure reasons and kept checkpoints into the store, and the progress line."""

        def __init__(self) -> None:
            self._seen = -1
            self._next = 0.0

        def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            text = _error_text(trial)
            searcher.fail(trial.trial_id, _error_reason(text), lost=_lost_worker(trial, text))
            self._refresh(force=True)

        def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            self._refresh(force=True)

        def on_checkpoint(self, iteration: int, trials: list, trial: Any, checkpoint: Any,
                          **info: Any) -> None:
            result = trial.last_result or {}
            searcher.keep_checkpoint(trial.trial_id, checkpoint,
                                     result.get(BUDGET_KEY, result.get("training_iteration")))

        def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            searcher.mark_started(trial.trial_id)
            self._refresh(force=True)

        def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
            self._refresh()

        def _refresh(self, force: bool = False) -> None:
            now = time.monotonic()
            quiet = not force and now < self._next and searcher.changed == self._seen
            hidden = after is None and not progress.enabled  # no line to draw: no store queries
            if searcher.lost is not None or quiet or hidden:
                return
            self._seen, self._next = searcher.changed, now + 1.0
            try:  # best-effort: one try, and a store that is away is left alone for a while
                if after is not None:
                    after()
                else:
                    progress.update(snapshot(searcher._study, study_label, n_trials, objectives))
            except Exception:
                self._next = now + 5.0

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
                    counts["pruned"], counts["failed"], best)


def total_snapshot(snaps: list[Snapshot]) -> Snapshot:
    """The sum of the tasks' snapshots a run holds at once (the ``[total]`` line; no store reads)."""
    return Snapshot("total", sum(s.finished for s in snaps), sum(s.n_trials for s in snaps),
                    sum(s.running for s in snaps), sum(s.complete for s in snaps),
                    sum(s.pruned for s in snaps), sum(s.failed for s in snaps))




def recording_stops(scheduler: TrialScheduler, searcher: OptunaSearcher) -> TrialScheduler:
    """Tell the searcher which trials the scheduler stopped (PRUNED even when no budget is known)."""
    decide = scheduler.on_trial_result

    def on_trial_result(tune_controller: Any, trial: Any, result: dict[str, Any]) -> str:
        decision: str = decide(tune_controller, trial, result)
        if decision == "STOP":
            searcher.mark_stopped(trial.trial_id)
        return decision

    scheduler.on_trial_result = on_trial_result  # type: ignore[method-assign]
    return scheduler
