"""Ray beyond one local instance: another Ray already on the machine, and a real two-node cluster."""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path

import optuna
import pytest
import yaml

from genft_search import store
from genft_search.config import StudyConfig, load_study_config
from genft_search.tune import _checkpoints, run_study, validate_study
from tests.support.cluster_trainable import lrs_started_on, nodes_used
from tests.support.engine import run_cli, toy_study
from tests.support.ray_cluster import head_in_subprocess, ray_tmpdir, two_node_cluster


@pytest.mark.slow
def test_plain_run_starts_its_own_ray_when_another_is_up(write_study, sqlite_url, unique_name, tmp_path):
    """A ``ray start``-style head is where a bare ``ray.init()`` attaches (its bootstrap file); ``run``
    without ``--address`` used to fail there ("object_store_memory must not be provided").

    ``--runs-dir`` is given as a URI (``file://``), the form bucket storage takes: Ray writes under it and
    the run's folder is removed at the end.
    """
    path = write_study(toy_study(unique_name, storage=sqlite_url))
    runs = tmp_path / "runs"
    with ray_tmpdir() as tmp, head_in_subprocess(tmp) as address:
        result = run_cli("run", str(path), "--quiet", "--runs-dir", runs.as_uri(), env={"RAY_TMPDIR": tmp},
                         timeout=300)
        assert result.returncode == 0, result.stderr
        assert runs.is_dir() and not list(runs.iterdir())
        lines = [ln for ln in result.stderr.splitlines() if ln.startswith("ray: ")]
        assert lines == [f"ray: another Ray instance is running at {address}; starting a separate local "
                         f"one for this run (--address auto runs on that one)"]
    study = optuna.load_study(study_name=f"{unique_name}/a", storage=sqlite_url)
    counts = store.state_counts(study)
    assert counts["complete"] == 4 and counts["running"] == 0


@pytest.fixture(scope="module")
def cluster():
    with two_node_cluster() as running:
        yield running


def _cluster_study(name: str, url: str, marks: Path, n_trials: int, sleep: float) -> StudyConfig:
    doc = toy_study(name, storage=url, trainable="tests.support.cluster_trainable:train",
                    params={"lr": {"float": [0.05, 1.0], "log": True}},
                    objective={"metric": "score", "direction": "maximize"},
                    fixed={"epochs": 4, "sleep": sleep, "marks": str(marks)}, budget={"n_trials": n_trials})
    path = marks.parent / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return load_study_config(path)


def _assert_exact(study: optuna.Study, n_trials: int) -> None:
    counts = store.state_counts(study)
    assert counts["finished"] == n_trials, counts
    assert counts["running"] == 0 and counts["waiting"] == 0, counts


@pytest.mark.slow
@pytest.mark.postgres
def test_a_study_runs_on_every_node_of_a_cluster(cluster, pg_url, unique_name, tmp_path):
    marks = tmp_path / "marks"
    marks.mkdir()
    config = _cluster_study(unique_name, pg_url, marks, n_trials=4, sleep=0.5)
    lines = validate_study(config, address=cluster.address)
    assert f"up to 2 trials at once on the Ray cluster at {cluster.address}" in lines[0]
    assert "ray: 2 nodes, 2 CPUs, 0 GPUs; 1 CPUs and 0 GPUs per trial: 2 trials fit at once" in lines

    runs = tmp_path / "runs"
    studies = run_study(config, address=cluster.address, progress=False, runs_dir=runs)
    _assert_exact(studies["a"], 4)
    assert store.state_counts(studies["a"])["complete"] == 4
    used = nodes_used(marks)
    worker = next(iter(cluster.worker_nodes))
    assert set(used) == {cluster.head_node.node_id, worker.node_id}, used
    assert runs.is_dir()  # Ray's experiment storage went to --runs-dir (its run folder is removed after)


@pytest.mark.slow
@pytest.mark.postgres
def test_losing_a_node_mid_trial_resumes_the_trial_elsewhere_and_ends_at_exactly_n_trials(
        cluster, pg_url, unique_name, tmp_path, monkeypatch):
    monkeypatch.setenv("GENFT_CHECKPOINT_DIR", str(tmp_path / "checkpoints"))
    marks = tmp_path / "marks"
    marks.mkdir()
    doomed = cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    config = _cluster_study(unique_name, pg_url, marks, n_trials=5, sleep=1.0)
    name = f"{unique_name}/a"
    killed: list[int] = []

    def kill_after_a_kept_epoch_there() -> None:
        storage = optuna.storages.RDBStorage(pg_url)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed:
            lrs = lrs_started_on(marks, doomed.node_id)
            with contextlib.suppress(KeyError):
                for trial in optuna.load_study(study_name=name, storage=storage).get_trials():
                    kept = _checkpoints.kept(name, trial.number)
                    if trial.params.get("lr") in lrs and trial.state.name == "RUNNING" and kept:
                        cluster.remove_node(doomed, allow_graceful=False)
                        killed.append(trial.number)
                        break
            time.sleep(0.2)
        storage.engine.dispose()

    killer = threading.Thread(target=kill_after_a_kept_epoch_there, daemon=True)
    killer.start()
    studies = run_study(config, address=cluster.address, progress=False, runs_dir=tmp_path / "runs")
    killer.join(timeout=5)
    assert killed, "no trial ran on the node to kill"
    study = studies["a"]
    _assert_exact(study, 5)
    trials = {t.number: t for t in study.get_trials()}
    lost = trials[killed[0]]
    assert lost.state.name == "FAIL" and lost.user_attrs.get("requeued") is True, lost.user_attrs
    assert "worker or node was lost" in lost.user_attrs["fail_reason"]
    retry = next(t for t in trials.values() if t.user_attrs.get(store.ATTR_RETRY_OF) == killed[0])
    assert retry.state.name == "COMPLETE" and retry.params == lost.params
    resumed = retry.user_attrs[store.ATTR_RESUMED_FROM_EPOCH]
    assert resumed >= 1 and retry.user_attrs["metrics"]["started_at"] == resumed + 1
    assert sorted(retry.intermediate_values) == [1, 2, 3, 4]
