"""All tasks of a study file in one Ray Tune experiment: slots stay busy while any task has trials left.

Measured from the trial timeline in the store: with two tasks of one trial each, the file keeps two
trials running at once (one task alone never can), and ``--tasks-at-once 1`` runs them one after another.
"""

from __future__ import annotations

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from genft_search import store
from tests.support.engine import run_cli, toy_study

pytestmark = pytest.mark.slow
optuna.logging.set_verbosity(optuna.logging.WARNING)


def _most_at_once(spans: list[tuple[float, float]]) -> int:
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans], key=lambda x: (x[0], x[1]))
    most = now = 0
    for _, step in events:
        now += step
        most = max(most, now)
    return most


def _spans(url: str, name: str, tasks: list[str]) -> list[tuple[float, float]]:
    rdb = optuna.storages.RDBStorage(url)
    out = []
    for task in tasks:
        study = optuna.load_study(study_name=f"{name}/{task}", storage=rdb)
        trials = study.get_trials()
        assert [t.state for t in trials] == [TrialState.COMPLETE], trials
        assert store.state_counts(study)["running"] == 0
        out += [(t.datetime_start.timestamp(), t.datetime_complete.timestamp()) for t in trials]
    rdb.engine.dispose()
    return out


@pytest.mark.parametrize("flag, expected", [([], 2), (["--tasks-at-once", "1"], 1)])
def test_tasks_of_a_file_run_at_once(flag, expected, sqlite_url, unique_name, tmp_path):
    tasks = ["a", "b"]
    doc = toy_study(unique_name, data={"kind": "vtab1k", "tasks": tasks}, fixed={"epochs": 3, "sleep": 1.0},
                    budget={"n_trials": 1}, resources={"cpu": 1})
    path = tmp_path / "two.yaml"
    path.write_text(yaml.safe_dump(doc))
    result = run_cli("run", str(path), "--storage", sqlite_url, *flag, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert _most_at_once(_spans(sqlite_url, unique_name, tasks)) == expected
    for task in tasks:
        assert f"{unique_name}/{task}: 1 finished (1 complete" in result.stdout
    if expected == 2:
        assert "[total] 2/2 finished" in result.stderr, "a total line beside one line per task"
        for task in tasks:
            assert f"[{unique_name}/{task}] 1/1 finished" in result.stderr
