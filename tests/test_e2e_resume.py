"""Crash safety end to end: SIGKILL a runner mid-study and rerun; two runners sharing one study.

Runners are real ``genft-search run`` processes (each with its own local Ray) on the tiny torch
trainable; the store is SQLite or the PostgreSQL test database.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from genft_search import store
from tests.support.engine import load_trials, run_cli, toy_study

pytestmark = pytest.mark.slow
optuna.logging.set_verbosity(optuna.logging.WARNING)


def _start(path, url, log):
    return subprocess.Popen([sys.executable, "-m", "genft_search", "run", str(path), "--storage", url],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)




def _wait_for(predicate, proc, timeout=240.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        assert proc.poll() is None, "the runner ended before the condition was met"
        time.sleep(0.3)
    pytest.fail("timed out waiting for the runner")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'kill.db'}"
    return request.getfixturevalue("pg_url")


def test_sigkill_mid_study_then_rerun(any_url, unique_name, tmp_path):
    n_trials = 6
    doc = toy_study(unique_name, fixed={"epochs": 3, "sleep": 0.5}, budget={"n_trials": n_trials})
    path = tmp_path / "kill.yaml"
    path.write_text(yaml.safe_dump(doc))
    name = f"{unique_name}/a"
    store.open_storage(any_url, create=True).engine.dispose()  # polled below before the runner creates it
    with open(tmp_path / "first.log", "w") as log:
        proc = _start(path, any_url, log)
        try:
            def mid_study():
                trials = load_trials(any_url, name)
                finished = [t for t in trials if t.state.is_finished()]
                running = [t for t in trials if t.state == TrialState.RUNNING and t.intermediate_values]
                return len(finished) >= 2 and running

            _wait_for(mid_study, proc)
        finally:
            os.killpg(proc.pid, signal.SIGKILL)  # the runner and its local Ray, like a machine crash
            proc.wait(timeout=60)
    before = {t.number: t for t in load_trials(any_url, name)}
    orphans = [n for n, t in before.items() if t.state == TrialState.RUNNING]
    finished_before = {n: (t.state, t.values, t.params) for n, t in before.items() if t.state.is_finished()}
    assert orphans and len(finished_before) >= 2

    result = run_cli("run", str(path), "--storage", any_url, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    after = {t.number: t for t in load_trials(any_url, name)}
    assert all(t.state not in (TrialState.RUNNING, TrialState.WAITING) for t in after.values())
    assert {n: (after[n].state, after[n].values, after[n].params) for n in finished_before} == finished_before
    for number in orphans:
        orphan = after[number]
        assert orphan.state == TrialState.FAIL and "died while the trial was RUNNING" in orphan.user_attrs[
            "fail_reason"]
        assert orphan.user_attrs["requeued"] is True
        retries = [t for t in after.values() if t.user_attrs.get("retry_of") == number]
        assert len(retries) == 1 and retries[0].params == orphan.params
        assert retries[0].state in (TrialState.COMPLETE, TrialState.PRUNED)
    counted = [t for t in after.values() if t.state in (TrialState.COMPLETE, TrialState.PRUNED)
               or (t.state == TrialState.FAIL and not t.user_attrs.get("requeued"))]
    assert len(counted) == n_trials
    assert f"{name}: {n_trials} finished" in result.stdout


@pytest.mark.postgres
def test_two_runners_share_one_postgres_study(pg_url, unique_name, tmp_path):
    n_trials = 6
    doc = toy_study(unique_name, fixed={"epochs": 3, "sleep": 0.6}, budget={"n_trials": n_trials})
    path = tmp_path / "shared.yaml"
    path.write_text(yaml.safe_dump(doc))
    with open(tmp_path / "runner0.log", "w") as log0, open(tmp_path / "runner1.log", "w") as log1:
        procs = [_start(path, pg_url, log) for log in (log0, log1)]
        try:
            codes = [p.wait(timeout=600) for p in procs]
        finally:
            for p in procs:
                if p.poll() is None:
                    os.killpg(p.pid, signal.SIGKILL)
    output = [(tmp_path / f"runner{i}.log").read_text() for i in range(2)]
    assert codes == [0, 0], output
    trials = load_trials(pg_url, f"{unique_name}/a")
    assert len(trials) == n_trials, "the study lock keeps the total exact across runners"
    assert {t.state for t in trials} <= {TrialState.COMPLETE, TrialState.PRUNED}
    runners = {t.system_attrs.get(store.ATTR_RUNNER) for t in trials}
    assert len(runners) == 2, "both runners worked on the study"
    assert all("Traceback" not in text for text in output)
